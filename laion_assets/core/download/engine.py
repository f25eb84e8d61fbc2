"""One downloader process's work: an event loop fetching rows, decode threads turning bodies into
samples. `shard.py` runs one Engine in this process or several in spawned processes (`workers.py`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pyarrow as pa

from laion_assets.core.lib.ids import sample_id

from .config import DownloadConfig
from .fetcher import Fetcher, FetchFailure, check_url
from .keys import member_key
from .resizer import ImageRejected, content_type_format, process_image
from .status import RowResult
from .writer import TarWriter

WATCHDOG_GRACE_S = 10.0


def watchdog_grace_s(shard_timeout_s: float) -> float:
    """How long the watchdog waits for cancelled rows (and the parent, 3x this, for a downloader
    process) after the shard timeout: 10 s, less for short timeouts (a test's 1 s shard)."""
    return min(WATCHDOG_GRACE_S, max(0.2, shard_timeout_s / 4))


def decode_inline(body: bytes, timeout_s: float, **kwargs):
    """Decode in the calling thread (a daemonic caller, which may not start decoder processes):
    bounded in memory by the resizer's limits, not in time."""
    return process_image(body, **kwargs)


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def interleave_by_host(indices: list[int], urls: list[str]) -> Iterator[int]:
    """Round-robin over hosts so one big host cannot fill the in-flight window (politeness and no
    head-of-line blocking behind its per-host limit)."""
    queues: dict[str, deque[int]] = defaultdict(deque)
    for i in indices:
        queues[host_of(urls[i])].append(i)
    active = deque(queues.values())
    while active:
        q = active.popleft()
        yield q.popleft()
        if q:
            active.append(q)


class _DecodePool:
    """`workers` daemon threads running decode/resize/encode/hash/tar-append jobs for the loop.

    Results go back through one loop callback per *batch*: a finishing thread queues its result and
    wakes the loop (a self-pipe write) only if no wake-up is already pending, so jobs that finish
    while the loop is busy cost no extra wake-up. Queued jobs are dropped after `close()`."""

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._results: list[tuple[asyncio.Future, BaseException | None]] = []
        self._lock = threading.Lock()
        self._wake_pending = False
        self.closed = False
        self.threads = [threading.Thread(target=self._work, name=f"decode_{k}", daemon=True)
                        for k in range(n)]
        for t in self.threads:
            t.start()

    def run(self, fn, *args) -> asyncio.Future:
        fut = self.loop.create_future()
        self.jobs.put((fut, fn, args))
        return fut

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None or self.closed:
                return
            fut, fn, args = job
            exc: BaseException | None = None
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting row
                exc = e
            with self._lock:
                self._results.append((fut, exc))
                wake = not self._wake_pending
                self._wake_pending = True
            if wake:
                try:
                    self.loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is gone (watchdog): nobody waits for this row
                    return

    def _deliver(self) -> None:
        with self._lock:
            results, self._results = self._results, []
            self._wake_pending = False
        for fut, exc in results:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        for _ in self.threads:
            self.jobs.put(None)


@dataclass
class Rows:
    """The columns a downloader needs for a set of rows; `ids` are the rows' positions in the shard."""

    ids: list[int]
    keys: list[str]
    urls: list[str]
    texts: list[str]
    page_urls: list[str | None]
    optout: list[bool]
    optout_reasons: list[str | None]
    members: list[str]  # WebDataset member key per row (`<shard>_<key>`)
    prior_attempts: dict[int, int] = field(default_factory=dict)  # by local position

    @classmethod
    def from_pairs(cls, pairs: pa.Table, shard: str | None) -> Rows:
        n = pairs.num_rows
        col = pairs.column_names

        def get(name, default):
            return pairs.column(name).to_pylist() if name in col else [default] * n

        keys = pairs.column("key").to_pylist()
        return cls(list(range(n)), keys, pairs.column("url").to_pylist(), get("text", ""),
                   get("page_url", None), get("optout_page", False), get("optout_reasons", None),
                   [member_key(shard, k) for k in keys])

    def subset(self, positions: list[int]) -> Rows:
        def pick(xs):
            return [xs[p] for p in positions]
        return Rows(pick(self.ids), pick(self.keys), pick(self.urls), pick(self.texts),
                    pick(self.page_urls), pick(self.optout), pick(self.optout_reasons),
                    pick(self.members),
                    {k: self.prior_attempts[p] for k, p in enumerate(positions) if p in self.prior_attempts})


@dataclass
class Sample:
    """One processed image waiting for its tar: what `TarWriter.write` takes."""

    member: str
    jpeg: bytes
    caption: str
    meta: dict


def place_sample(writer: TarWriter, row: RowResult, sample: Sample) -> None:
    """Append to the tar and name the member on the row; a closed writer (watchdog) fails the row."""
    loc = writer.write(sample.member, sample.jpeg, sample.caption, sample.meta)
    if loc is None:
        row.tar_path = row.tar_member = None
        raise FetchFailure("shard_timeout", "finished after the watchdog closed the shard")
    row.tar_path, row.tar_member = loc
    row.status, row.reason = "ok", None


class Engine:
    """Fetch and decode a set of rows on one event loop plus decode threads.

    `on_done(local_pos, row, sample)` gets each finished row. With a `writer` the decode thread
    appends the image to the tar itself (one process) and `sample` is None; without one the sample
    is handed over for the parent process to write."""

    def __init__(self, rows: Rows, config: DownloadConfig, threads: int, writer: TarWriter | None,
                 on_done: Callable[[int, RowResult, Sample | None], None], decoder=None):
        self.rows, self.cfg, self.threads, self.writer, self.on_done = rows, config, threads, writer, on_done
        self.decoder = decoder  # a decodepool.DecoderClient; None: decode in the thread
        self.decode = decoder.decode if decoder is not None else decode_inline
        self.pending: dict[int, Sample] = {}
        self.fetch_stats: dict[str, float] = {}

    async def row(self, i: int, fetcher: Fetcher, pool: _DecodePool, decode_sem) -> None:
        cfg, rows = self.cfg, self.rows
        row = RowResult(key=rows.keys[i], url=rows.urls[i], attempts=rows.prior_attempts.get(i, 0))
        started = time.monotonic()
        row.fetched_at = dt.datetime.now(dt.timezone.utc)
        try:
            if cfg.respect_page_optout and rows.optout[i]:
                raise FetchFailure("page_optout", rows.optout_reasons[i] or "optout_page")
            check_url(row.url, cfg.max_url_chars)

            def count() -> None:
                row.attempts += 1

            fetched = await fetcher.fetch(row.url, count)
            row.http_status, row.content_type = fetched.http_status, fetched.content_type
            row.bytes = len(fetched.body)
            async with decode_sem:
                await pool.run(self._process, i, row, fetched.body)
        except FetchFailure as e:
            row.http_status = row.http_status or e.http_status
            row.content_type = row.content_type or e.content_type
            row.fail(e.reason, e.detail)
        except ImageRejected as e:
            row.fail(e.reason, e.detail)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - one row must never take the shard down
            row.fail("internal_error", f"{type(e).__name__}: {e}")
        row.elapsed_ms = (time.monotonic() - started) * 1000
        sample = self.pending.pop(i, None)
        if row.status != "ok":
            sample = None
        self.on_done(i, row, sample)

    def _process(self, i: int, row: RowResult, body: bytes) -> None:
        """Runs in a decode thread: decode/resize/encode/hash, then the tar (or hand-over)."""
        cfg, rows = self.cfg, self.rows
        declared = content_type_format(row.content_type)
        p = self.decode(
            body, cfg.decode_timeout_s, image_size=cfg.image_size, resize_mode=cfg.resize_mode, max_pixels=cfg.max_pixels,
            encode_quality=cfg.encode_quality, resize_only_if_bigger=cfg.resize_only_if_bigger,
            border_color=cfg.border_color, downscale_filter=cfg.downscale_filter,
            max_output_pixels=cfg.max_output_pixels, max_decode_bytes=cfg.max_decode_bytes,
        )
        if declared is not None and declared != p.format:
            raise ImageRejected("unsupported_content_type", f"{row.content_type} but bytes are {p.format}")
        row.width, row.height = p.width, p.height
        row.resized_width, row.resized_height = p.resized_width, p.resized_height
        row.sha256, row.md5, row.sha1 = p.sha256, p.md5, p.sha1
        row.pdq, row.pdq_quality = p.pdq, p.pdq_quality
        text = rows.texts[i] or ""
        meta = sample_meta(rows.members[i], row, text, rows.page_urls[i])
        meta.update({"original_format": p.format, "bytes": row.bytes})
        sample = Sample(rows.members[i], p.jpeg, text, meta)
        if self.writer is not None:
            place_sample(self.writer, row, sample)
        else:
            row.status, row.reason = "ok", None
            self.pending[i] = sample

    async def run(self, todo: list[int], deadline: float, tick: Callable[[], None] | None = None) -> None:
        cfg = self.cfg
        fetcher = Fetcher(cfg)
        pool = _DecodePool(self.threads, asyncio.get_running_loop())
        decode_sem = asyncio.Semaphore(self.threads * 2)
        window = max(cfg.concurrency * 2, 64)
        order = interleave_by_host(todo, self.rows.urls)

        async def lane() -> None:  # `window` lanes share one row iterator: no task per row
            for i in order:
                await self.row(i, fetcher, pool, decode_sem)

        async def ticker() -> None:  # lets a worker process send finished rows while it waits
            while True:
                await asyncio.sleep(0.05)
                tick()

        ticking = asyncio.create_task(ticker()) if tick is not None else None
        active = {asyncio.create_task(lane()) for _ in range(min(window, len(todo)))}
        try:
            if active:
                _, active = await asyncio.wait(active, timeout=max(0.0, deadline - time.monotonic()))
            for t in active:
                t.cancel()
            if active:
                await asyncio.wait(active, timeout=watchdog_grace_s(cfg.shard_timeout_s))
        finally:
            if ticking is not None:
                ticking.cancel()
            pool.close()
            if self.decoder is not None:
                self.decoder.stop()
            try:
                await asyncio.wait_for(fetcher.aclose(), watchdog_grace_s(cfg.shard_timeout_s))
            except Exception:  # noqa: BLE001 - closing sockets must not fail the shard
                pass
            s = fetcher.stats
            self.fetch_stats = {
                "requests": s.requests, "redirects": s.redirects, "retries": s.retries,
                "hosts_backed_off": s.hosts_backed_off, "retry_wait_s": round(s.waits_s, 3),
                "robots_fetches": fetcher.policy.robots_fetches,
                "tdmrep_fetches": fetcher.policy.tdmrep_fetches,
                "dns_lookups": fetcher.resolver.lookups,
            }


def sample_meta(member: str, row: RowResult, text: str, page_url: str | None) -> dict:
    """The sample's `.json`: its member key, the pair key, SAMPLE_ID (joins it to a release row)."""
    return {
        "key": member, "pair_key": row.key, "SAMPLE_ID": sample_id(row.url, text), "url": row.url,
        "caption": text, "page_url": page_url, "width": row.resized_width, "height": row.resized_height,
        "original_width": row.width, "original_height": row.height, "sha256": row.sha256,
        "md5": row.md5, "sha1": row.sha1, "pdq": row.pdq, "pdq_quality": row.pdq_quality, "status": "ok",
    }


