"""Lean HTTP/1.1 transport for the download hot path.

HTTP itself is still h11 driven by `httpcore.AsyncHTTP11Connection` (no hand-written parsing);
what is replaced is the machinery around it that cost more CPU than the parsing:

- `BufferedStream`: an httpcore network stream on a plain asyncio Protocol. The socket is read
  continuously into a buffer (paused only above `HIGH_WATER` bytes) and `read()` hands back
  everything buffered, up to `READ_BYTES`, without a timer or a syscall when data is already
  there. anyio's stream paused/resumed reading (two epoll_ctl calls) and armed a cancel scope for
  every chunk of at most 64 KiB.
- `ConnectionPool`: idle keep-alive connections per origin in a LIFO list, O(1) to take and return,
  with one global LRU cap. httpcore's pool scanned every connection (a poll() syscall per idle one)
  whenever a request started or ended.

Connections are opened only by `GuardedBackend.connect_tcp` (netguard.py): resolve through the
checked cache, refuse non-public answers, connect to the checked IP literal. TLS is layered on
the same transport with `loop.start_tls` (certificate verified against the host name).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from typing import Self

import httpcore
import httpx

READ_BYTES = 1 << 20  # most bytes one read() returns (httpcore asks for 64 KiB by default)
HIGH_WATER = 4 << 20  # pause the socket when this much is buffered and unread


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.eof = False
        self.exc: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.paused_reading = False
        self.write_waiter: asyncio.Future | None = None
        self.write_paused = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.paused_reading and self.transport is not None:
            self.paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc) -> None:
        self.eof = True
        self.exc = exc
        self._wake()
        w = self.write_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        w = self.write_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)


class BufferedStream(httpcore.AsyncNetworkStream):
    """httpcore network stream over an asyncio transport (plain TCP or TLS)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol):
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        p = self._protocol
        if not p.chunks:
            if p.eof:
                if p.exc is not None:
                    raise httpcore.ReadError(str(p.exc) or type(p.exc).__name__)
                return b""
            p.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await p.waiter
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no data for {timeout} s") from None
            finally:
                p.waiter = None
            if not p.chunks:
                if p.exc is not None:
                    raise httpcore.ReadError(str(p.exc) or type(p.exc).__name__)
                return b""
        chunks = p.chunks
        if len(chunks) == 1 and len(chunks[0]) <= max_bytes:
            data = chunks.pop()
        else:
            data = b"".join(chunks)
            chunks.clear()
            if len(data) > max_bytes:
                chunks.append(data[max_bytes:])
                data = data[:max_bytes]
        p.buffered -= len(data)
        if p.paused_reading and p.buffered <= HIGH_WATER // 2 and not self._transport.is_closing():
            p.paused_reading = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        p = self._protocol
        if self._transport.is_closing() or p.exc is not None:
            raise httpcore.WriteError("connection closed")
        self._transport.write(buffer)
        if p.write_paused:
            p.write_waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await p.write_waiter
            except TimeoutError:
                raise httpcore.WriteTimeout(f"write blocked for {timeout} s") from None
            finally:
                p.write_waiter = None
            if p.exc is not None:
                raise httpcore.WriteError(str(p.exc))

    def close_now(self) -> None:
        self._transport.close()

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> BufferedStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                           server_hostname=server_hostname)
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake over {timeout} s") from None
        except (ssl.SSLError, OSError, ConnectionError) as e:
            self._transport.close()
            raise httpcore.ConnectError(f"TLS: {e}") from None
        if tls is None:  # the connection went away during the handshake
            raise httpcore.ConnectError("TLS: connection closed")
        return BufferedStream(tls, self._protocol)

    def get_extra_info(self, info: str):
        if info == "is_readable":  # idle keep-alive connection: data or EOF means the server hung up
            p = self._protocol
            return bool(p.chunks) or p.eof or self._transport.is_closing()
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info in ("ssl_object", "socket"):
            return self._transport.get_extra_info(info)
        return None


async def open_stream(ip: str, port: int, timeout: float | None) -> BufferedStream:
    """TCP connection to an IP literal (the caller has already checked it)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(_Protocol, ip, port)
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"connect to {ip}:{port} over {timeout} s") from None
    except OSError as e:
        raise httpcore.ConnectError(str(e)) from None
    return BufferedStream(transport, protocol)


class _Connection(httpcore.AsyncHTTP11Connection):
    READ_NUM_BYTES = READ_BYTES  # hand h11 everything that is buffered, not 64 KiB at a time


class Headers:
    """Response headers, case-insensitive; `get` joins repeated fields with ', ' like httpx."""

    __slots__ = ("_d",)

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        d: dict[str, list[str]] = {}
        for k, v in raw:
            d.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
        self._d = d

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self._d.get(name)
        return default if v is None else ", ".join(v)

    def get_list(self, name: str) -> list[str]:
        return list(self._d.get(name, ()))

    def __contains__(self, name: str) -> bool:
        return name in self._d

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._d[name])


class Response:
    """One exchange; use as `async with pool.stream(url) as resp:`. The connection goes back to the
    pool only if the body was read to the end; otherwise it is closed."""

    def __init__(self, pool: ConnectionPool, url: str):
        self._pool = pool
        self._url = url
        self._conn: _Connection | None = None
        self._stream: BufferedStream | None = None
        self._origin: tuple | None = None
        self._body = None
        self.status_code = 0
        self.headers: Headers | None = None

    async def __aenter__(self) -> Self:
        pool = self._pool
        u = httpx.URL(self._url)  # same normalisation as httpx (IDNA, percent-encoding)
        scheme = u.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(f"scheme {scheme!r}")
        port = u.port or (443 if scheme == b"https" else 80)
        origin = httpcore.Origin(scheme, u.raw_host, port)
        req = httpcore.Request(
            b"GET", httpcore.URL(scheme=scheme, host=u.raw_host, port=port, target=u.raw_path),
            headers=[(b"Host", u.netloc), *pool.headers], extensions={"timeout": pool.timeouts},
        )
        key = (scheme, u.raw_host, port)
        conn, stream = await pool.acquire(key, origin, u.host)
        self._conn, self._stream, self._origin = conn, stream, key
        try:
            resp = await conn.handle_async_request(req)
        except BaseException:
            stream.close_now()
            self._conn = None
            raise
        self.status_code = resp.status
        self.headers = Headers(resp.headers)
        self._body = resp.stream
        return self

    def aiter_raw(self):
        return self._body.__aiter__()

    async def __aexit__(self, *exc) -> None:
        conn, stream = self._conn, self._stream
        if conn is None:
            return
        self._conn = None
        try:
            await self._body.aclose()  # keep-alive if the message completed, else closes
        except BaseException:
            stream.close_now()
            raise
        if conn.is_idle():  # the whole message was read: reusable
            self._pool.release(self._origin, conn, stream)
        else:
            stream.close_now()


class ConnectionPool:
    """Keep-alive connections per origin (scheme, host, port): O(1) acquire and release."""

    def __init__(self, backend, ssl_context: ssl.SSLContext, *, headers: list[tuple[bytes, bytes]],
                 timeouts: dict[str, float], keepalive_expiry: float = 30.0, max_idle: int = 128):
        self.backend = backend
        self.ssl_context = ssl_context
        self.headers = headers
        self.timeouts = timeouts
        self.keepalive_expiry = keepalive_expiry
        self.max_idle = max_idle
        self._idle: dict[tuple, list[tuple[_Connection, BufferedStream]]] = {}
        self._lru: OrderedDict[int, tuple[tuple, _Connection, BufferedStream]] = OrderedDict()
        self.connections_opened = 0

    def stream(self, url: str) -> Response:
        return Response(self, url)

    async def acquire(self, key: tuple, origin: httpcore.Origin,
                      host: str) -> tuple[_Connection, BufferedStream]:
        idle = self._idle.get(key)
        while idle:
            conn, stream = idle.pop()
            self._lru.pop(id(conn), None)
            if conn.is_idle() and not conn.has_expired():
                return conn, stream
            stream.close_now()
        t = self.timeouts.get("connect")
        stream = await self.backend.connect_tcp(host, origin.port, timeout=t)
        if origin.scheme == b"https":
            stream = await stream.start_tls(self.ssl_context, server_hostname=host, timeout=t)
        self.connections_opened += 1
        return _Connection(origin, stream, keepalive_expiry=self.keepalive_expiry), stream

    def release(self, origin: tuple, conn: _Connection, stream: BufferedStream) -> None:
        self._idle.setdefault(origin, []).append((conn, stream))
        self._lru[id(conn)] = (origin, conn, stream)
        while len(self._lru) > self.max_idle:
            _, (o, c, s) = self._lru.popitem(last=False)
            lst = self._idle.get(o)
            if lst is not None:
                try:
                    lst.remove((c, s))
                except ValueError:
                    pass
                if not lst:
                    del self._idle[o]
            s.close_now()

    def close(self) -> None:
        for _, _, s in self._lru.values():
            s.close_now()
        self._lru.clear()
        self._idle.clear()
