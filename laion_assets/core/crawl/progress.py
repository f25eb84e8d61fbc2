"""A crawl's progress from per-shard facts: counts per stage, rows so far, download success rate,
and the time left at the recent completion rate. Plain data in, plain data out (the Dagster side
gathers the facts from the instance)."""

from __future__ import annotations

from dataclasses import dataclass, field

STAGES = ("image_text_pairs", "image_downloads", "clip_scores", "filtered_pairs")


@dataclass
class CrawlProgress:
    crawl: str
    registered: int
    materialized: dict[str, int] = field(default_factory=dict)  # stage -> shards
    failed: int = 0  # unmaterialized shards whose newest run failed
    given_up: list[str] = field(default_factory=list)
    in_flight: int = 0
    pairs: int = 0
    images_attempted: int = 0
    images_ok: int = 0
    done_timestamps: list[float] = field(default_factory=list)  # filtered_pairs materializations

    @property
    def done(self) -> int:
        return self.materialized.get(STAGES[-1], 0)

    @property
    def download_success_rate(self) -> float | None:
        return self.images_ok / self.images_attempted if self.images_attempted else None

    def shards_per_hour(self, now: float, window_s: float = 6 * 3600) -> float | None:
        """Completions in the last `window_s` (or since the first, if later) per hour."""
        recent = [t for t in self.done_timestamps if t >= now - window_s]
        if not recent:
            return None
        span = max(now - min(recent), 60.0)
        return len(recent) / span * 3600

    def eta_s(self, now: float) -> float | None:
        left = self.registered - self.done - len(self.given_up)
        if left <= 0:
            return 0.0
        rate = self.shards_per_hour(now)
        return left / rate * 3600 if rate else None

    def as_row(self, now: float) -> dict[str, object]:
        rate, eta = self.download_success_rate, self.eta_s(now)
        return {
            "crawl": self.crawl, "registered": self.registered,
            **{f"done_{s}": self.materialized.get(s, 0) for s in STAGES},
            "in_flight": self.in_flight, "failed": self.failed, "given_up": len(self.given_up),
            "pairs": self.pairs, "images_ok": self.images_ok,
            "download_success_rate": round(rate, 4) if rate is not None else None,
            "eta_h": round(eta / 3600, 2) if eta is not None else None,
        }


def format_summary(rows: list[CrawlProgress], now: float) -> str:
    """One block per crawl, for the CLI."""
    out = []
    for p in rows:
        r = p.as_row(now)
        stages = " ".join(f"{s}={r[f'done_{s}']}" for s in STAGES)
        rate = "-" if r["download_success_rate"] is None else f"{100 * r['download_success_rate']:.1f}%"
        eta = "unknown (no shard finished in the last 6 h)" if r["eta_h"] is None else f"{r['eta_h']} h"
        out.append(f"{p.crawl}: {p.done}/{p.registered} shards done; {stages}; in flight {p.in_flight}, "
                   f"failed {p.failed}, given up {len(p.given_up)}\n"
                   f"  pairs {p.pairs}, images ok {p.images_ok}/{p.images_attempted} ({rate}), time left {eta}")
        if p.given_up:
            out.append("  given up (fix, then `python -m laion_assets.ops shards retry KEY`): " + ", ".join(p.given_up))
    return "\n".join(out) or "no crawl registered"
