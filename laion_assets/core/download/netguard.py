"""SSRF guard: only public addresses (plus an explicit allow-list) are ever connected to.

"Public" is decided by `special_addresses.py`: the IANA special-purpose registries written out as
data (never this interpreter's `ipaddress.is_global`). The allow-list refuses networks wider than
/8, which would switch the guard off.

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
import re
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import httpcore

from laion_assets.core.lib.validation import ConfigError

from .special_addresses import IPAddress, denial_reason, is_public
from .transport import open_stream

__all__ = ["AddressPolicy", "BlockedAddress", "DNSError", "GuardedBackend", "Resolver", "is_public",
           "parse_allow_list"]


class BlockedAddress(Exception):
    """The host is or resolves to an address we must not connect to."""


class DNSError(Exception):
    """The host name did not resolve."""


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


MIN_ALLOW_PREFIX = 8  # an allow-list network wider than /8 (either family) is refused
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")


def parse_allow_list(
    entries: Iterable[str], setting: str = "allow_private_hosts"
) -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], set[str]]:
    """IPs/CIDRs and host names the guard lets through although they are not public.

    Refused (ConfigError naming `setting`): networks wider than /8, which switch the guard off
    (0.0.0.0/0 and ::/0 included: the cloud metadata service, every private network); entries that
    are neither an IP, a network nor a host name (a mistyped CIDR such as 10.0.0.0/33 used to be
    kept as a host name that never matches).
    """
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    hostnames: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        try:
            net = ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            name = entry.lower().rstrip(".")
            if not _HOSTNAME.match(name) or "/" in entry:
                raise ConfigError(setting, raw, "each entry must be an IP address, a CIDR network or a host name") from None
            hostnames.add(name)
            continue
        if net.prefixlen < MIN_ALLOW_PREFIX:
            raise ConfigError(
                setting, raw,
                f"networks wider than /{MIN_ALLOW_PREFIX} are refused: they switch the SSRF guard off "
                "(list the private networks or hosts you need)",
            )
        networks.append(net)
    return networks, hostnames


class AddressPolicy:
    """Which addresses may be connected to: public ones, plus `allow` (IPs, CIDRs or host names)."""

    def __init__(self, allow: Iterable[str] = ()):
        self.networks, self.hostnames = parse_allow_list(allow)

    def denial_reason(self, ip: IPAddress, hostname: str | None = None) -> str | None:
        why = denial_reason(ip)
        if why is None:
            return None
        if hostname is not None and hostname.lower().rstrip(".") in self.hostnames:
            return None
        if any(ip.version == n.version and ip in n for n in self.networks):
            return None
        return why

    def allowed(self, ip: IPAddress, hostname: str | None = None) -> bool:
        return self.denial_reason(ip, hostname) is None


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
        for a in addrs:
            why = self.policy.denial_reason(a, host)
            if why is not None:
                # Refuse the host if *any* answer is non-public: a mixed answer is a rebinding setup.
                raise BlockedAddress(f"{host} -> {a} is not a public address: {why}")
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
