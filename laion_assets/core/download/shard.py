"""`download_shard`: every input row ends in exactly one status row, whatever the network does.

The event loop runs in its own thread. Two watchdogs: inside the loop, rows still running at
`shard_timeout_s` are cancelled and end as failed/shard_timeout; outside it, the calling thread
joins the loop thread with a hard deadline, so not even a stuck resolver or a blocked executor can
hang the shard (img2dataset's most reported bug).
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
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from .config import DownloadConfig
from .fetcher import Fetcher, FetchFailure, check_url
from .resizer import ImageRejected, content_type_format, process_image
from .status import RowResult, rows_to_table, summarize, table_to_rows
from .writer import TarWriter, read_samples

WATCHDOG_GRACE_S = 10.0


@dataclass
class DownloadResult:
    status: pa.Table  # DOWNLOAD_SCHEMA, one row per input pair, input order
    tar_paths: list[Path]
    stats: dict[str, int | float] = field(default_factory=dict)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def interleave_by_host(indices: list[int], urls: list[str]) -> Iterator[int]:
    """Round-robin over hosts so one big host cannot fill the in-flight window (politeness and no
    head-of-line blocking behind its per-host limit)."""
    queues: dict[str, deque[int]] = defaultdict(deque)
    for i in indices:
        queues[_host(urls[i])].append(i)
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


class _Run:
    def __init__(self, pairs: pa.Table, out_dir: Path, config: DownloadConfig, progress):
        self.cfg = config
        self.keys: list[str] = pairs.column("key").to_pylist()
        self.urls: list[str] = pairs.column("url").to_pylist()
        self.texts: list[str] = (
            pairs.column("text").to_pylist() if "text" in pairs.column_names else [""] * len(self.keys)
        )
        self.page_urls = (
            pairs.column("page_url").to_pylist() if "page_url" in pairs.column_names else [None] * len(self.keys)
        )
        self.optout = (
            pairs.column("optout_page").to_pylist() if "optout_page" in pairs.column_names
            else [False] * len(self.keys)
        )
        self.optout_reasons = (
            pairs.column("optout_reasons").to_pylist() if "optout_reasons" in pairs.column_names
            else [None] * len(self.keys)
        )
        self.results: list[RowResult | None] = [None] * len(self.keys)
        self.prior_attempts: dict[int, int] = {}  # re-run: attempts of earlier runs are summed
        self.writer = TarWriter(out_dir, config.images_per_tar)
        self.progress = progress
        self.done = 0
        self._last_progress = 0.0
        self.fetch_stats: dict[str, float] = {}

    # -------------------------------------------------------------------- bookkeeping
    def finish(self, i: int, row: RowResult) -> None:
        if self.results[i] is None:
            self.results[i] = row
            self.done += 1
            now = time.monotonic()
            if self.progress and (now - self._last_progress > 0.5 or self.done == len(self.keys)):
                self._last_progress = now
                self.progress(self.done, len(self.keys))

    def carry_over(self, previous_status: pa.Table | None, previous_dir: Path | None) -> list[int]:
        """Copy previous ok samples (status row + tar members) and skipped rows; return the rows
        that still need fetching (failed, new, changed URL, or ok but its member is missing)."""
        todo = list(range(len(self.keys)))
        if previous_status is None:
            return todo
        prev = {r.key: r for r in table_to_rows(previous_status)}
        wanted_by_tar: dict[str, set[str]] = defaultdict(set)
        for i, key in enumerate(self.keys):
            p = prev.get(key)
            if p is not None and p.url == self.urls[i] and p.status == "ok" and p.tar_path:
                wanted_by_tar[p.tar_path].add(key)
        samples: dict[str, dict[str, bytes]] = {}
        if previous_dir is not None:
            for tar_name, keys in wanted_by_tar.items():
                path = Path(previous_dir) / tar_name
                if path.exists():
                    samples.update(read_samples(path, keys))
        todo = []
        for i, key in enumerate(self.keys):
            p = prev.get(key)
            if p is None or p.url != self.urls[i] or p.status == "failed":
                if p is not None and p.url == self.urls[i]:
                    self.prior_attempts[i] = p.attempts or 0
                todo.append(i)
                continue
            if p.status == "skipped":
                self.finish(i, p)
                continue
            s = samples.get(key, {})
            if "jpg" not in s:
                todo.append(i)  # ok before, but the image is gone: fetch again
                continue
            loc = self.writer.write_raw(key, s)
            if loc is None:
                todo.append(i)
                continue
            p.tar_path, p.tar_member = loc
            self.finish(i, p)
        return todo

    # -------------------------------------------------------------------- one row
    async def row(self, i: int, fetcher: Fetcher, pool: _DecodePool, decode_sem) -> None:
        cfg = self.cfg
        row = RowResult(key=self.keys[i], url=self.urls[i], attempts=self.prior_attempts.get(i, 0))
        started = time.monotonic()
        row.fetched_at = dt.datetime.now(dt.timezone.utc)
        try:
            if cfg.respect_page_optout and self.optout[i]:
                raise FetchFailure("page_optout", self.optout_reasons[i] or "optout_page")
            check_url(row.url)

            def count() -> None:
                row.attempts += 1

            fetched = await fetcher.fetch(row.url, count)
            row.http_status, row.content_type = fetched.http_status, fetched.content_type
            row.bytes = len(fetched.body)
            async with decode_sem:
                await pool.run(self._process_and_write, i, row, fetched.body)
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
        self.finish(i, row)

    def _process_and_write(self, i: int, row: RowResult, body: bytes) -> None:
        """Runs in a worker thread: decode/resize/encode, then append to the tar."""
        cfg = self.cfg
        declared = content_type_format(row.content_type)
        p = process_image(
            body, image_size=cfg.image_size, resize_mode=cfg.resize_mode, max_pixels=cfg.max_pixels,
            encode_quality=cfg.encode_quality, resize_only_if_bigger=cfg.resize_only_if_bigger,
            border_color=cfg.border_color,
        )
        if declared is not None and declared != p.format:
            raise ImageRejected("unsupported_content_type", f"{row.content_type} but bytes are {p.format}")
        row.width, row.height = p.width, p.height
        row.resized_width, row.resized_height = p.resized_width, p.resized_height
        row.sha256, row.md5 = p.sha256, p.md5
        meta = {
            "key": row.key, "url": row.url, "caption": self.texts[i], "page_url": self.page_urls[i],
            "width": p.resized_width, "height": p.resized_height,
            "original_width": p.width, "original_height": p.height, "original_format": p.format,
            "sha256": p.sha256, "md5": p.md5, "bytes": row.bytes, "status": "ok",
        }
        loc = self.writer.write(row.key, p.jpeg, self.texts[i] or "", meta)
        if loc is None:
            raise FetchFailure("shard_timeout", "finished after the watchdog closed the shard")
        row.tar_path, row.tar_member = loc
        row.status, row.reason = "ok", None

    # -------------------------------------------------------------------- the loop
    async def run(self, todo: list[int], deadline: float) -> None:
        cfg = self.cfg
        fetcher = Fetcher(cfg)
        pool = _DecodePool(cfg.workers, asyncio.get_running_loop())
        decode_sem = asyncio.Semaphore(cfg.workers * 2)
        window = max(cfg.concurrency * 2, 64)
        order = interleave_by_host(todo, self.urls)

        async def lane() -> None:  # `window` lanes share one row iterator: no task per row
            for i in order:
                await self.row(i, fetcher, pool, decode_sem)

        active = {asyncio.create_task(lane()) for _ in range(min(window, len(todo)))}
        try:
            if active:
                _, active = await asyncio.wait(active, timeout=max(0.0, deadline - time.monotonic()))
            for t in active:
                t.cancel()
            if active:
                await asyncio.wait(active, timeout=WATCHDOG_GRACE_S)
        finally:
            pool.close()
            try:
                await asyncio.wait_for(fetcher.aclose(), WATCHDOG_GRACE_S)
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


def download_shard(
    pairs: pa.Table,
    out_dir: Path,
    *,
    config: DownloadConfig = DownloadConfig(),
    previous_status: pa.Table | None = None,
    previous_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DownloadResult:
    """Download, resize and tar one shard of pairs into `out_dir` (a fresh empty directory).

    With `previous_status`/`previous_dir` (a prior run of the same shard), ok rows are carried
    over with their tar members copied, skipped rows are kept, and only failed/new rows are fetched.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    run = _Run(pairs, out_dir, config, progress)
    todo = run.carry_over(previous_status, previous_dir)
    carried = len(run.keys) - len(todo)
    deadline = started + config.shard_timeout_s
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run.run(todo, deadline))
        except BaseException as e:  # noqa: BLE001 - reported as internal_error rows below
            errors.append(e)

    thread = threading.Thread(target=target, name="download-shard", daemon=True)
    if todo:
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()) + 3 * WATCHDOG_GRACE_S)
    run.writer.close()  # late writes from a stuck worker are dropped from here on
    for i, r in enumerate(run.results):
        if r is None:
            row = RowResult(key=run.keys[i], url=run.urls[i])
            if errors:
                row.fail("internal_error", repr(errors[0]))
            else:
                row.fail("shard_timeout", f"shard_timeout_s={config.shard_timeout_s}")
            run.results[i] = row
        elif r.status == "ok" and (r.tar_path is None):  # defensive: ok without a member
            r.fail("internal_error", "ok row without tar member")
    rows = [r for r in run.results if r is not None]
    elapsed = time.monotonic() - started
    stats = summarize(rows, elapsed)
    stats.update(run.fetch_stats)
    stats["carried_over"] = carried
    stats["fetched_rows"] = len(todo)
    stats["tars"] = len(run.writer.paths)
    stats["watchdog_fired"] = int(thread.is_alive() or stats["reason_shard_timeout"] > 0)
    return DownloadResult(rows_to_table(rows), list(run.writer.paths), stats)
