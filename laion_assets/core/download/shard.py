"""`download_shard`: every input row ends in exactly one status row, whatever the network does.

Decode/resize/encode is ~85 % of a row's CPU: it runs in this process's decoder pool
(`decodepool.py`, `config.decode_pool_size()` killable processes, kept across shards) that every
downloader process feeds, so every core decodes whatever the host mix. The shard's hosts are split
over `config.process_count(rows)` downloader processes (each host in one of them: per-host limits
hold), and this process only writes the tars and the status. Two watchdogs: inside each loop, rows
still running at `shard_timeout_s` are cancelled and end as failed/shard_timeout; outside it, this
process stops waiting at a hard deadline and kills a stuck downloader process, so not even a stuck
resolver or native code holding a downloader's GIL can hang the shard (img2dataset's most reported
bug). Only a daemonic caller (which may not start children) runs the loop in a thread here.
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing as mp
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from PIL import Image

from .config import DownloadConfig
from .engine import (
    Engine,
    Rows,
    Sample,
    host_of,
    place_sample,
    sample_meta,
    watchdog_grace_s,
)
from .fetcher import FetchFailure
from .keys import image_member
from .resizer import pdq_hash
from .status import RowResult, rows_to_table, summarize, table_to_rows
from .writer import TarWriter, read_samples


@dataclass
class DownloadResult:
    status: pa.Table  # DOWNLOAD_SCHEMA, one row per input pair, input order
    tar_paths: list[Path]
    stats: dict[str, int | float] = field(default_factory=dict)


class Collector:
    """The shard's results by position: exactly one row each, progress reported at most every 0.5 s."""

    def __init__(self, n: int, progress: Callable[[int, int], None] | None):
        self.results: list[RowResult | None] = [None] * n
        self.progress = progress
        self.done = 0
        self._last_progress = 0.0

    def finish(self, i: int, row: RowResult) -> None:
        if self.results[i] is None:
            self.results[i] = row
            self.done += 1
            now = time.monotonic()
            n = len(self.results)
            if self.progress and (now - self._last_progress > 0.5 or self.done == n):
                self._last_progress = now
                self.progress(self.done, n)


def carry_over(rows: Rows, out: Collector, writer: TarWriter, previous_status: pa.Table | None,
               previous_dir: Path | None) -> list[int]:
    """Copy previous ok samples (status row + tar members, renamed to this run's member keys) and
    skipped rows; return the rows that still need fetching (failed, new, changed URL, or ok but its
    member is missing). Rows from before PDQ get their PDQ from the stored image."""
    todo = list(range(len(rows.keys)))
    if previous_status is None:
        return todo
    prev = {r.key: r for r in table_to_rows(previous_status)}
    wanted_by_tar: dict[str, set[str]] = defaultdict(set)
    for i, key in enumerate(rows.keys):
        p = prev.get(key)
        if p is not None and p.url == rows.urls[i] and p.status == "ok" and p.tar_path:
            wanted_by_tar[p.tar_path].add(image_member(key, p.tar_member).rpartition(".")[0])
    samples: dict[str, dict[str, bytes]] = {}
    if previous_dir is not None:
        for tar_name, stems in wanted_by_tar.items():
            path = Path(previous_dir) / tar_name
            if path.exists():
                samples.update(read_samples(path, stems))
    todo = []
    for i, key in enumerate(rows.keys):
        p = prev.get(key)
        if p is None or p.url != rows.urls[i] or p.status == "failed":
            if p is not None and p.url == rows.urls[i]:
                rows.prior_attempts[i] = p.attempts or 0
            todo.append(i)
            continue
        if p.status == "skipped":
            out.finish(i, p)
            continue
        s = samples.get(image_member(key, p.tar_member).rpartition(".")[0], {})
        if "jpg" not in s:
            todo.append(i)  # ok before, but the image is gone: fetch again
            continue
        if p.pdq is None:
            p.pdq, p.pdq_quality = stored_pdq(s["jpg"])
        text = rows.texts[i] or ""
        meta = {**(json.loads(s["json"]) if "json" in s else {}),
                **sample_meta(rows.members[i], p, text, rows.page_urls[i])}
        try:
            place_sample(writer, p, Sample(rows.members[i], s["jpg"], text, meta))
        except FetchFailure:
            todo.append(i)
            continue
        out.finish(i, p)
    return todo


def stored_pdq(jpeg: bytes) -> tuple[str | None, int | None]:
    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            return pdq_hash(img)
    except Exception:  # noqa: BLE001 - an unreadable stored image keeps a null hash
        return None, None


def split_by_host(todo: list[int], urls: list[str], n: int) -> list[list[int]]:
    """`n` groups of rows, each host in exactly one group (so per-host limits hold across
    processes), balanced by row count: largest host first into the smallest group."""
    by_host: dict[str, list[int]] = defaultdict(list)
    for i in todo:
        by_host[host_of(urls[i])].append(i)
    groups: list[list[int]] = [[] for _ in range(n)]
    for rows in sorted(by_host.values(), key=len, reverse=True):
        min(groups, key=len).extend(rows)
    return [sorted(g) for g in groups if g]


def _run_here(rows: Rows, todo: list[int], config: DownloadConfig, writer: TarWriter, out: Collector,
              deadline: float, stats: dict) -> tuple[threading.Thread, list[BaseException]]:
    """A daemonic caller: the event loop in a thread, decodes in its threads (no decoder processes),
    appending to the tars themselves."""
    engine = Engine(rows, config, config.decode_pool_size(), writer,
                    lambda i, row, _sample: out.finish(i, row))
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(engine.run(todo, deadline))
        except BaseException as e:  # noqa: BLE001 - reported as internal_error rows below
            errors.append(e)
        stats.update(engine.fetch_stats)

    thread = threading.Thread(target=target, name="download-shard", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()) + 3 * watchdog_grace_s(config.shard_timeout_s))
    return thread, errors


def download_shard(
    pairs: pa.Table,
    out_dir: Path,
    *,
    config: DownloadConfig = DownloadConfig(),
    previous_status: pa.Table | None = None,
    previous_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    shard: str | None = None,
) -> DownloadResult:
    """Download, resize and tar one shard of pairs into `out_dir` (a fresh empty directory).

    Members are named `<shard>_<key>` (see `keys.member_key`). The rows are split by host over
    `config.process_count` downloader processes that fetch (and feed this process's decoder pool),
    and this process writes the tars. With `previous_status`/`previous_dir` (a prior
    run of the same shard), ok rows are carried over with their tar members copied, skipped rows
    are kept, and only failed/new rows are fetched.
    """
    if getattr(mp.current_process(), "_inheriting", False):  # re-run by a child importing __main__
        raise RuntimeError("download_shard called while a worker process starts: the calling script "
                           "has no `if __name__ == '__main__':` guard; add it")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows = Rows.from_pairs(pairs, shard)
    out = Collector(len(rows.keys), progress)
    writer = TarWriter(out_dir, config.images_per_tar)
    todo = carry_over(rows, out, writer, previous_status, previous_dir)
    carried = len(rows.keys) - len(todo)
    deadline = started + config.shard_timeout_s
    n_proc = config.process_count(len(todo))
    daemonic = mp.current_process().daemon  # a daemonic process may not start children: all here
    if daemonic:
        n_proc = 1
    fetch_stats: dict = {}
    errors: list[BaseException] = []
    alive = False
    groups: list[list[int]] = [todo] if todo else []
    if todo and daemonic:
        thread, errors = _run_here(rows, todo, config, writer, out, deadline, fetch_stats)
        alive = thread.is_alive()
    elif todo:
        from .decodepool import decoder_pool
        from .workers import run_processes

        groups = split_by_host(todo, rows.urls, n_proc)
        try:
            with decoder_pool(config.decode_pool_size()) as pool:
                cpu0, starts0 = pool.cpu_s(), pool.starts
                alive, errors = run_processes([rows.subset(g) for g in groups], config, writer, out,
                                              deadline, fetch_stats, pool.handle)
                fetch_stats["decoder_cpu_s"] = round(pool.cpu_s() - cpu0, 3)
                fetch_stats["decoder_starts"] = pool.starts - starts0
                fetch_stats["decoders"] = pool.size
        except RuntimeError as e:  # the pool could not start (e.g. an unguarded script): fail at once
            errors = [e]
    writer.close()  # late writes from a stuck worker are dropped from here on
    for i, r in enumerate(out.results):
        if r is None:
            row = RowResult(key=rows.keys[i], url=rows.urls[i])
            if errors:
                row.fail("internal_error", repr(errors[0]))
            else:
                row.fail("shard_timeout", f"shard_timeout_s={config.shard_timeout_s}")
            out.results[i] = row
        elif r.status == "ok" and (r.tar_path is None):  # defensive: ok without a member
            r.fail("internal_error", "ok row without tar member")
    results = [r for r in out.results if r is not None]
    elapsed = time.monotonic() - started
    stats = summarize(results, elapsed)
    stats.update(fetch_stats)
    stats["carried_over"] = carried
    stats["fetched_rows"] = len(todo)
    stats["processes"] = len(groups)  # downloader processes that ran (one host: one, whatever n_proc)
    stats["tars"] = len(writer.paths)
    stats["watchdog_fired"] = int(alive or stats["reason_shard_timeout"] > 0)
    return DownloadResult(rows_to_table(results), list(writer.paths), stats)
