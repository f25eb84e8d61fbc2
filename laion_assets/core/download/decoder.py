"""Decode/resize/encode in a killable process, so a decode's time budget holds whatever the bytes are.

Pillow cannot be interrupted: a progressive JPEG of thousands of (tiny, all-EOB) scans makes libjpeg
walk every block once per scan, for minutes, and a thread cannot be stopped. So each decode thread
owns one decoder process (forked from a fork server): it sends the body, waits `decode_timeout_s` for the answer, and
on overrun kills the process (the row ends as skipped/decode_timeout) and starts a fresh one for the
next job. A decoder that dies (the OOM killer) fails only its row. Idle decoders are kept for the
next shard in this process (start-up, ~0.3-1 s, is paid once per thread, not per shard).

A daemonic process may not have children: there the decode runs in the calling thread, unbounded
in time (bounded in memory by the resizer's limits); `bounded()` says which one applies.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from multiprocessing.connection import wait

from .resizer import ImageRejected, Processed, process_image

_start_error: RuntimeError | None = None  # a decoder that died at start-up fails every later decode
START_TIMEOUT_S = 60.0  # interpreter start + imports (numpy, Pillow, pdqhash) on a loaded machine
MAX_IDLE = 32  # idle decoders kept per process


def bounded() -> bool:
    """True when decodes run in killable processes (the caller may start children)."""
    return not mp.current_process().daemon


def watch_parent() -> None:
    """An orphan (the process that started it was SIGKILLed) exits instead of decoding on. The
    watch is on that process's sentinel, not on the fork server: the fork server lives as long as
    any of its children do, so watching it would keep orphans (and it) alive."""
    parent = mp.parent_process()

    def watch() -> None:
        if parent is not None:
            wait([parent.sentinel])
        else:  # not started by multiprocessing: fall back to the parent pid
            ppid = os.getppid()
            while os.getppid() == ppid:
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def answer_job(body: bytes, kwargs: dict) -> tuple:
    """("ok", Processed) or ("rejected", reason, detail): one image never ends a decoder."""
    try:
        return ("ok", process_image(body, **kwargs))
    except ImageRejected as e:
        return ("rejected", e.reason, e.detail)
    except Exception as e:  # noqa: BLE001 - one image must not end the decoder
        return ("rejected", "decode_error", f"{type(e).__name__}: {e}")


def _decoder_main(conn) -> None:
    """The decoder: answer ("ok", Processed) or ("rejected", reason, detail) per job."""
    watch_parent()
    conn.send(("ready",))
    while True:
        try:
            body, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(answer_job(body, kwargs))


def _context():
    """A fork server with Pillow/numpy/pdqhash and the fetch stack preloaded: a decoder or a
    downloader process is a fork of it (~10 ms), not a fresh interpreter (spawn: 0.3-1 s each). The
    server is a clean single-threaded process, so forking it is safe whatever threads and locks the
    caller holds (a Dagster run)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "laion_assets.core.download.decodepool",
                                "laion_assets.core.download.workers"])
    return ctx


class DecoderProcess:
    """One decoder process, started on first use and again after a kill."""

    def __init__(self) -> None:
        self.proc = None
        self.conn = None
        self.starts = 0

    def _start(self) -> None:
        ctx = _context()
        recv, send = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_decoder_main, args=(send,), name="laion-decoder", daemon=True)
        self.proc.start()
        send.close()
        self.conn = recv
        self.starts += 1
        if not recv.poll(START_TIMEOUT_S):
            self.kill()
            raise RuntimeError(f"decoder process did not start within {START_TIMEOUT_S} s")
        try:
            recv.recv()
        except (EOFError, OSError):
            code = self.proc.exitcode
            self.kill()
            global _start_error
            _start_error = RuntimeError(f"decoder process exited at start-up (exit code {code}); a script "
                               "that downloads must guard its entry point with "
                               "`if __name__ == '__main__':`")
            raise _start_error from None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5.0)
        if self.conn is not None:
            self.conn.close()
        self.proc = self.conn = None

    def run(self, body: bytes, kwargs: dict, timeout_s: float) -> Processed:
        if _start_error is not None:  # deterministic (an unguarded script): every row fails at once
            raise _start_error
        if self.proc is None or not self.proc.is_alive():
            self.kill()
            self._start()
        started = time.monotonic()
        try:
            self.conn.send((body, kwargs))
            ready = self.conn.poll(timeout_s)
        except OSError:
            ready = True  # the decoder died: recv below says so
        if not ready:
            self.kill()
            raise ImageRejected("decode_timeout", f"decode ran past decode_timeout_s={timeout_s}; killed")
        try:
            answer = self.conn.recv()
        except (EOFError, OSError):
            code = self.proc.exitcode if self.proc is not None else None
            self.kill()
            raise ImageRejected("decode_error", f"decoder process died (exit code {code}) after "
                                f"{time.monotonic() - started:.1f} s") from None
        if answer[0] == "ok":
            return answer[1]
        raise ImageRejected(answer[1], answer[2])


_idle: list[DecoderProcess] = []
_idle_lock = threading.Lock()
_local = threading.local()


def decode(body: bytes, timeout_s: float, **kwargs) -> Processed:
    """`process_image(body, **kwargs)` within `timeout_s` (in this thread's decoder process)."""
    if not bounded():
        return process_image(body, **kwargs)
    dec = getattr(_local, "decoder", None)
    if dec is None:
        with _idle_lock:
            dec = _idle.pop() if _idle else DecoderProcess()
        _local.decoder = dec
    return dec.run(body, kwargs, timeout_s)


def release_thread_decoder() -> None:
    """Hand this thread's decoder back for the next shard (call when the thread ends)."""
    dec = getattr(_local, "decoder", None)
    _local.decoder = None
    if dec is None:
        return
    with _idle_lock:
        if len(_idle) < MAX_IDLE and dec.proc is not None and dec.proc.is_alive():
            _idle.append(dec)
            return
    dec.kill()
