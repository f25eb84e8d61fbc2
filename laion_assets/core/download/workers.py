"""Downloader processes: each fetches one group of hosts' rows and has them decoded by the shard's
decoder pool (`decodepool.py`, shared by all of them); this process writes tars.

Processes are forked from the preloaded fork server (`decoder._context()`, a clean single-threaded
process: never from the caller, which may hold threads and locks, e.g. a Dagster run), so one starts
in ~10-50 ms, and nothing is shared but what is pickled: the rows, the config, the pool handle and a
pipe. Even a shard of one process runs its event loop here, not in the caller: this process's
watchdog waits on pipes and kills the downloader at the hard deadline, whatever holds that
process's GIL (native code, or pure Python that never yields the loop). A worker sends its finished
rows in batches (status row + encoded JPEG + .json, ~25 kB each) every 50 ms or 64 rows, from a
sender thread; the parent appends them to the tars and records them. A worker that dies or outlives the deadline is killed; its rows
not yet received end as internal_error / shard_timeout in `download_shard`.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue
import resource
import threading
import time
from multiprocessing.connection import Connection, wait

from .config import DownloadConfig
from .decodepool import DecoderClient, PoolHandle
from .decoder import _context
from .engine import Engine, Rows, Sample, place_sample, watchdog_grace_s
from .fetcher import FetchFailure
from .status import RowResult
from .writer import TarWriter

BATCH_ROWS = 64
BATCH_S = 0.05
OUTBOX_BATCHES = 8


def _worker(conn: Connection, rows: Rows, config: DownloadConfig, threads: int, deadline: float,
            pool: PoolHandle) -> None:
    """Entry point of a downloader process."""
    batch: list[tuple[int, RowResult, Sample | None]] = []
    last = time.monotonic()
    # A sender thread does the pipe writes, so the event loop never waits while the parent is busy
    # with another process's batch; the bounded queue is the back-pressure (memory stays bounded).
    outbox: queue.Queue = queue.Queue(maxsize=OUTBOX_BATCHES)

    def sender() -> None:
        while (msg := outbox.get()) is not None:
            try:
                conn.send(msg)
            except OSError:  # the parent is gone (killed): nobody will read these rows
                os._exit(1)

    sending = threading.Thread(target=sender, name="downloader-send", daemon=True)
    sending.start()

    def send() -> None:
        nonlocal last
        if batch:
            outbox.put(("rows", batch[:]))
            batch.clear()
        last = time.monotonic()

    def on_done(i: int, row: RowResult, sample: Sample | None) -> None:
        batch.append((rows.ids[i], row, sample))
        if len(batch) >= BATCH_ROWS or time.monotonic() - last >= BATCH_S:
            send()

    parent = mp.parent_process()

    def tick() -> None:
        if parent is not None and not parent.is_alive():  # orphaned (parent SIGKILLed): stop now
            os._exit(1)
        if time.monotonic() - last >= BATCH_S:
            send()

    startup_cpu_s = time.process_time()  # interpreter start + imports, paid once per process
    engine = Engine(rows, config, threads, None, on_done, DecoderClient(pool))
    error = None
    try:
        asyncio.run(engine.run(list(range(len(rows.ids))), deadline, tick))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        error = f"{type(e).__name__}: {e}"
    send()
    outbox.put(None)
    sending.join()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send(("done", {**engine.fetch_stats, "peak_rss_mb_worker": round(peak_mb, 1),
                        "worker_startup_cpu_s": round(startup_cpu_s, 3),
                        "worker_cpu_s": round(time.process_time() - startup_cpu_s, 3)}, error))
    conn.close()


def run_processes(groups: list[Rows], config: DownloadConfig, writer: TarWriter, out,
                  deadline: float, stats: dict, pool: PoolHandle) -> tuple[bool, list[BaseException]]:
    """Run one downloader process per group; returns (a process had to be killed, errors)."""
    ctx = _context()
    threads = pool.size  # a thread per decoder: one process alone can keep every decoder busy
    procs: list = []
    conns: list[Connection] = []
    try:
        return _supervise(ctx, groups, config, threads, writer, out, deadline, stats, procs, conns, pool)
    finally:  # whatever happened here (a full disk in the tar writer...), no process outlives us
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5.0)
        for conn in conns:
            conn.close()


def _supervise(ctx, groups, config, threads, writer, out, deadline, stats, procs, conns, pool
               ) -> tuple[bool, list[BaseException]]:
    for rows in groups:
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(send, rows, config, threads, deadline, pool),
                        name="laion-downloader", daemon=False)
        p.start()
        send.close()  # only the child holds the write end: EOF when it exits
        procs.append(p)
        conns.append(recv)
    errors: list[BaseException] = []
    open_conns = set(conns)
    sent: set = set()  # processes that sent anything (a process that sent nothing failed at start)
    grace_s = watchdog_grace_s(config.shard_timeout_s)
    hard_deadline = deadline + 3 * grace_s
    while open_conns and time.monotonic() < hard_deadline:
        for conn in wait(list(open_conns), timeout=min(1.0, max(0.0, hard_deadline - time.monotonic()))):
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                open_conns.discard(conn)
                p = procs[conns.index(conn)]
                p.join(1.0)
                if p.exitcode not in (0, None):
                    hint = ("; if the calling script has no `if __name__ == '__main__':` guard, each spawned "
                            "process re-runs it and fails at start: add the guard") if conn not in sent else ""
                    errors.append(RuntimeError(f"downloader process exited with code {p.exitcode}{hint}"))
                continue
            sent.add(conn)
            if msg[0] == "rows":
                for i, row, sample in msg[1]:
                    if sample is not None:
                        try:
                            place_sample(writer, row, sample)
                        except FetchFailure as e:
                            row.fail(e.reason, e.detail)
                    out.finish(i, row)
            elif msg[0] == "done":
                for k, v in msg[1].items():  # counters add up; peaks are the largest
                    stats[k] = max(stats.get(k, 0), v) if k.startswith("peak_") else stats.get(k, 0) + v
                if msg[2]:
                    errors.append(RuntimeError(msg[2]))
    killed = False
    for p in procs:
        p.join(max(0.0, min(grace_s, hard_deadline - time.monotonic())))
        if p.is_alive():
            killed = True
            p.kill()
            p.join(5.0)
    return killed, errors
