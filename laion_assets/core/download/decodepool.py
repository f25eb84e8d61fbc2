"""The shard's decoder pool: one set of killable decoder processes that every downloader feeds.

Hosts are split over downloader processes (each host's requests in one place, so per-host limits
hold), but decode/resize/encode is ~85 % of a row's CPU: when each downloader decoded its own hosts'
images, one big host (a CDN with 60 % of the URLs) bounded the shard at its process's cores. Here the
process that runs `download_shard` owns `size` decoder processes (`available_cpus()`), and any
downloader thread takes whichever decoder is free:

- A free decoder is a 16-byte token `(slot, generation, pid)` in one pipe. A thread reads one token
  (reads of whole records from a pipe are atomic, and no lock is held while waiting, so a downloader
  SIGKILLed mid-wait cannot wedge the others), sends the body over its own connection to that
  decoder (a unix socket in a private 0700 directory), waits `decode_timeout_s`, and writes the token
  back. On overrun it SIGKILLs the decoder and keeps the token; the decoder also arms `SIGALRM` for
  `decode_timeout_s + ALARM_GRACE_S` itself, so a decode whose downloader died ends anyway.
- A supervisor thread here sees a decoder die (its sentinel), starts a fresh one on a new socket
  (the generation), and puts its token in the pipe. A token whose decoder is gone fails to connect
  and is dropped.
- The pool outlives the shard (`decoder_pool()`): decoders and the fork server they and the
  downloader processes are forked from are started once per process, so a short shard does not pay
  ~2 s of start-up. After each shard, decoders whose token did not come back (a downloader killed
  while one decoded for it) are killed and replaced.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from .decoder import START_TIMEOUT_S, _context, answer_job, watch_parent
from .resizer import ImageRejected, Processed

TOKEN = struct.Struct("<iiq")  # slot, generation, pid
ERROR_SLOT = -1  # the pool could not start a decoder: every decode fails at once with START_ERROR
ALARM_GRACE_S = 1.0
START_ERROR = ("decoder process exited at start-up; a script that downloads must guard its entry point "
               "with `if __name__ == '__main__':`")


@dataclass(frozen=True)
class PoolHandle:
    """What a downloader process needs to use the pool (picklable while a process starts)."""

    dir: str
    tokens_r: Connection
    tokens_w: Connection
    size: int


def address(directory: str, slot: int, gen: int) -> str:
    return os.path.join(directory, f"d{slot}.{gen}")


def _pool_decoder_main(listener: socket.socket, ready: Connection) -> None:
    """A pool decoder: serve one job at a time from any downloader's connection."""
    watch_parent()
    ready.send(("ready",))
    ready.close()
    conns: list = []
    while True:
        for obj in wait([listener, *conns]):
            if obj is listener:
                try:
                    sock, _ = listener.accept()
                except OSError:
                    continue
                conns.append(Connection(sock.detach()))
                continue
            try:
                body, kwargs, timeout_s = obj.recv()
            except (EOFError, OSError):  # that downloader is gone
                conns.remove(obj)
                obj.close()
                continue
            signal.setitimer(signal.ITIMER_REAL, timeout_s + ALARM_GRACE_S)  # default action: exit
            answer = answer_job(body, kwargs)
            signal.setitimer(signal.ITIMER_REAL, 0)
            try:
                obj.send(answer)
            except OSError:
                conns.remove(obj)
                obj.close()


class DecoderPool:
    """`size` decoder processes, restarted when they die; lives in the process running the shard."""

    def __init__(self, size: int):
        self.size = size
        self.ctx = _context()
        self.dir = tempfile.mkdtemp(prefix="laion-decoders-")  # 0700: only this user connects
        r, w = os.pipe()
        os.set_blocking(r, False)
        self.handle = PoolHandle(self.dir, Connection(r, writable=False), Connection(w, readable=False), size)
        self._w = w
        self.gens = [0] * size
        self.procs: list = [None] * size
        self.ready = [False] * size
        self.starts = 0
        self.error: RuntimeError | None = None
        self.closed = False
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        launched = [self._launch(k) for k in range(size)]
        for k, (proc, ready) in enumerate(launched):
            self._await_ready(k, proc, ready)
        if self.error is not None:
            err = self.error
            self.close()
            raise err
        self._thread = threading.Thread(target=self._supervise, name="decoder-pool", daemon=True)
        self._thread.start()

    def _launch(self, k: int):
        self.gens[k] += 1
        self.starts += 1
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address(self.dir, k, self.gens[k]))
        listener.listen(128)  # bound before the child starts: a client may connect at once
        ready_r, ready_w = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_pool_decoder_main, args=(listener, ready_w), name="laion-decoder",
                                daemon=True)
        proc.start()
        ready_w.close()
        listener.close()
        return proc, ready_r

    def _await_ready(self, k: int, proc, ready: Connection) -> None:
        try:
            ok = ready.poll(START_TIMEOUT_S) and ready.recv() == ("ready",)
        except (EOFError, OSError):
            ok = False
        ready.close()
        with self._lock:
            if not ok or self.closed:
                proc.kill()
                proc.join(5.0)
                if not self.closed:
                    self.error = RuntimeError(f"{START_ERROR} (exit code {proc.exitcode})")
                    self._put(ERROR_SLOT, 0, 0)
                return
            self.procs[k], self.ready[k] = proc, True
            self._put(k, self.gens[k], proc.pid)

    def _put(self, slot: int, gen: int, pid: int) -> None:
        os.write(self._w, TOKEN.pack(slot, gen, pid))

    def _supervise(self) -> None:
        while not self.closed and not sys.is_finalizing():
            with self._lock:
                by_sentinel = {p.sentinel: k for k, p in enumerate(self.procs) if p is not None}
            for s in wait([*by_sentinel, self._wake_r], timeout=1.0):
                if s == self._wake_r:
                    continue
                k = by_sentinel[s]
                with self._lock:
                    if self.closed or sys.is_finalizing():
                        return
                    self.procs[k].join(1.0)
                    self.procs[k], self.ready[k] = None, False
                    try:
                        os.unlink(address(self.dir, k, self.gens[k]))
                    except OSError:
                        pass
                    proc, ready = self._launch(k)
                self._await_ready(k, proc, ready)

    def _drain(self) -> list[tuple[int, int, int]]:
        tokens = []
        while True:
            try:
                data = os.read(self.handle.tokens_r.fileno(), TOKEN.size)
            except BlockingIOError:
                return tokens
            if len(data) != TOKEN.size:
                return tokens
            tokens.append(TOKEN.unpack(data))

    def after_shard(self) -> None:
        """Kill (the supervisor replaces) every ready decoder whose token did not come back: it is
        still decoding for a downloader that ended or was killed. Stale tokens are dropped."""
        with self._lock:
            back = {(s, g) for s, g, _ in self._drain()}
            for k, proc in enumerate(self.procs):
                if proc is None or not self.ready[k]:
                    continue
                if (k, self.gens[k]) in back:
                    self._put(k, self.gens[k], proc.pid)
                else:
                    self.ready[k] = False
                    proc.kill()
            if self.error is not None:
                self._put(ERROR_SLOT, 0, 0)

    def cpu_s(self) -> float:
        """CPU seconds of the live decoders (they are the fork server's children: no rusage here)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for p in list(self.procs):
            try:
                with open(f"/proc/{p.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (AttributeError, OSError, ValueError, IndexError):
                pass
        return total

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for p in self.procs:
                if p is not None:
                    p.kill()
        os.write(self._wake_w, b"x")
        for p in self.procs:
            if p is not None:
                p.join(5.0)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self.handle.tokens_r.close()
        self.handle.tokens_w.close()
        for name in os.listdir(self.dir):
            try:
                os.unlink(os.path.join(self.dir, name))
            except OSError:
                pass
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


_shared: DecoderPool | None = None
_shared_lock = threading.Lock()


@atexit.register
def _close_shared() -> None:
    """Before multiprocessing's own exit handler (registered earlier, so it runs later) terminates
    the decoders: else the supervisor would restart them during shutdown, orphans that hold the
    fork server and this process's stdout open."""
    if _shared is not None:
        _shared.close()


@contextmanager
def decoder_pool(size: int) -> Iterator[DecoderPool]:
    """This process's pool, kept for the next shard; a shard running while another holds it (two
    shards in threads of one process) gets a pool of its own, closed after it."""
    global _shared
    if not _shared_lock.acquire(blocking=False):
        pool = DecoderPool(size)
        try:
            yield pool
        finally:
            pool.close()
        return
    try:
        if _shared is not None and (_shared.size != size or _shared.error is not None):
            _shared.close()
            _shared = None
        if _shared is None:
            _shared = DecoderPool(size)
        try:
            yield _shared
        finally:
            _shared.after_shard()
    finally:
        _shared_lock.release()


class DecoderClient:
    """A downloader's side of the pool: `decode()` from any of its threads."""

    def __init__(self, handle: PoolHandle):
        self.handle = handle
        self.rfd, self.wfd = handle.tokens_r.fileno(), handle.tokens_w.fileno()
        self.conns: dict[int, tuple[int, Connection]] = {}
        self._lock = threading.Lock()
        self.stopped = False

    def stop(self) -> None:
        """Threads still waiting for a decoder give up (the shard is over)."""
        self.stopped = True

    def _take(self) -> tuple[int, int, int]:
        while not self.stopped:
            if not select.select([self.rfd], [], [], 0.5)[0]:
                continue
            try:
                data = os.read(self.rfd, TOKEN.size)
            except BlockingIOError:  # another thread or process took it first
                continue
            if len(data) != TOKEN.size:
                raise RuntimeError("decoder pool closed")
            slot, gen, pid = TOKEN.unpack(data)
            if slot == ERROR_SLOT:
                os.write(self.wfd, data)  # for every other thread
                raise RuntimeError(START_ERROR)
            return slot, gen, pid
        raise RuntimeError("the shard ended while waiting for a decoder")

    def _conn(self, slot: int, gen: int) -> Connection:
        with self._lock:
            cached = self.conns.get(slot)
        if cached is not None and cached[0] == gen:
            return cached[1]
        if cached is not None:
            cached[1].close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(address(self.handle.dir, slot, gen))
        except OSError:
            sock.close()
            raise
        conn = Connection(sock.detach())
        with self._lock:
            self.conns[slot] = (gen, conn)
        return conn

    def _drop(self, slot: int) -> None:
        with self._lock:
            cached = self.conns.pop(slot, None)
        if cached is not None:
            cached[1].close()

    def decode(self, body: bytes, timeout_s: float, **kwargs) -> Processed:
        """`process_image(body, **kwargs)` in a free pool decoder, within `timeout_s`."""
        while True:
            slot, gen, pid = self._take()
            try:
                conn = self._conn(slot, gen)
                conn.send((body, kwargs, timeout_s))
                break
            except OSError:  # a stale token (that decoder died idle): drop it, take another
                self._drop(slot)
        started = time.monotonic()
        ready = conn.poll(timeout_s)
        if not ready:
            try:
                os.kill(pid, signal.SIGKILL)  # the pool's supervisor starts a fresh one
            except OSError:
                pass
            self._drop(slot)
            raise ImageRejected("decode_timeout", f"decode ran past decode_timeout_s={timeout_s}; killed")
        try:
            answer = conn.recv()
        except (EOFError, OSError):
            self._drop(slot)
            elapsed = time.monotonic() - started
            if elapsed >= timeout_s:  # its own alarm ended it
                raise ImageRejected("decode_timeout", f"decode ran past decode_timeout_s={timeout_s}") from None
            raise ImageRejected("decode_error", f"decoder process died after {elapsed:.1f} s") from None
        os.write(self.wfd, TOKEN.pack(slot, gen, pid))
        if answer[0] == "ok":
            return answer[1]
        raise ImageRejected(answer[1], answer[2])
