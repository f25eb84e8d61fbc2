"""SSRF guard: only public addresses (plus an explicit allow-list) are ever connected to.

How rebinding (TOCTOU) is prevented: the HTTP client never resolves names itself. Its connection
pool is given `GuardedBackend`, whose `connect_tcp(host, port)` resolves `host` through our own
cache, checks *every* resolved address, and then opens the socket to the checked IP literal.
There is no second lookup an attacker's DNS could answer differently, and because the check lives
at connect time it covers every hop of a redirect chain, robots.txt and tdmrep.json fetches too.
TLS still verifies the certificate against the host name (httpcore passes it as SNI).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import httpcore

from .transport import open_stream

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(Exception):
    """The host is or resolves to an address we must not connect to."""


class DNSError(Exception):
    """The host name did not resolve."""


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast only: no loopback, private, link-local, CGNAT, multicast, reserved."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        ip = ip.sixtofour
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class AddressPolicy:
    """Which addresses may be connected to: public ones, plus `allow` (IPs, CIDRs or host names)."""

    def __init__(self, allow: Iterable[str] = ()):
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hostnames: set[str] = set()
        for entry in allow:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.hostnames.add(entry.lower().rstrip("."))

    def allowed(self, ip: IPAddress, hostname: str | None = None) -> bool:
        if is_public(ip):
            return True
        if hostname is not None and hostname.lower().rstrip(".") in self.hostnames:
            return True
        return any(ip.version == n.version and ip in n for n in self.networks)


class Resolver:
    """Cached, checked DNS. Lookups run in a small private thread pool with a timeout, so a hung
    resolver can delay a row but never the event loop's shutdown."""

    def __init__(self, policy: AddressPolicy, ttl_s: float = 300.0, timeout_s: float = 10.0):
        self.policy = policy
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._cache: dict[str, tuple[float, list[IPAddress] | BaseException]] = {}
        self._inflight: dict[str, asyncio.Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")
        self.lookups = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _lookup(self, host: str) -> list[IPAddress]:
        now = time.monotonic()
        hit = self._cache.get(host)
        if hit and hit[0] > now:
            if isinstance(hit[1], BaseException):
                raise hit[1]
            return hit[1]
        if host in self._inflight:
            return await asyncio.shield(self._inflight[host])
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[host] = fut
        try:
            self.lookups += 1
            loop = asyncio.get_running_loop()
            infos = await asyncio.wait_for(
                loop.run_in_executor(
                    self._pool, socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM
                ),
                self.timeout_s,
            )
            addrs = list(dict.fromkeys(ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos))
            if not addrs:
                raise DNSError(f"{host}: no addresses")
            self._cache[host] = (now + self.ttl_s, addrs)
            fut.set_result(addrs)
            return addrs
        except (OSError, asyncio.TimeoutError, DNSError) as e:
            err = e if isinstance(e, DNSError) else DNSError(f"{host}: {e!r}")
            self._cache[host] = (now + min(self.ttl_s, 60.0), err)
            fut.set_exception(err)
            fut.exception()  # mark retrieved
            raise err from None
        finally:
            self._inflight.pop(host, None)

    async def resolve(self, host: str) -> list[IPAddress]:
        """All addresses of `host`, every one of them allowed; else BlockedAddress / DNSError."""
        host = host.strip("[]").lower().rstrip(".")
        if not host:
            raise DNSError("empty host")
        ip = _parse_ip(host)
        addrs = [ip] if ip is not None else await self._lookup(host)
        bad = [a for a in addrs if not self.policy.allowed(a, host)]
        if bad:
            # Refuse the host if *any* answer is non-public: a mixed answer is a rebinding setup.
            raise BlockedAddress(f"{host} -> {bad[0]} is not a public address")
        return addrs


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses the Resolver checked (the only
    place connections to image hosts are opened)."""

    def __init__(self, resolver: Resolver):
        self.resolver = resolver

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addrs = await self.resolver.resolve(host)
        last: Exception | None = None
        for ip in addrs[:4]:
            try:
                return await open_stream(str(ip), port, timeout)  # the checked literal, no lookup
            except httpcore.ConnectError as e:  # try the next checked address
                last = e
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args, **kwargs):
        raise BlockedAddress("unix sockets are never used for downloads")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
