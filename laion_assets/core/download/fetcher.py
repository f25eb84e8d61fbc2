"""HTTP side: one pooled httpx client (keep-alive, connection reuse) on the SSRF-guarded backend,
manual redirects (each hop re-checked by the guard and by the opt-out rules), timeouts, body cap,
retries with backoff and Retry-After, per-host concurrency and per-host back-off.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

try:  # httpcore calls `import sniffio` inside every lock operation; when the optional package is
    import sniffio  # noqa: F401 - absent, each call rescans sys.path (~35% of our CPU per request
except ImportError:  # in the bench). Caching the miss gives the same answer without the scan.
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

from .config import DEFAULT_MAX_URL_CHARS, DownloadConfig
from .netguard import AddressPolicy, BlockedAddress, DNSError, GuardedBackend, Resolver
from .policy import PolicyCache, tdm_header_reserved, x_robots_optout
from .resizer import content_type_format
from .transport import ConnectionPool

REDIRECT_CODES = {301, 302, 303, 307, 308}
TRANSIENT_REASONS = {"timeout", "network_error", "incomplete_body", "http_error", "rate_limited"}


class FetchFailure(Exception):
    """A row's fetch ended with `reason`; `retryable` failures may be attempted again."""

    def __init__(self, reason: str, detail: str = "", *, retryable: bool = False,
                 retry_after: float | None = None, http_status: int | None = None,
                 content_type: str | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.retryable = reason, detail, retryable
        self.retry_after, self.http_status, self.content_type = retry_after, http_status, content_type


@dataclass
class Fetched:
    body: bytes
    http_status: int
    content_type: str | None
    final_url: str


@dataclass
class HostState:
    sem: asyncio.Semaphore
    not_before: float = 0.0  # monotonic time before which no request goes to this host
    consecutive_failures: int = 0
    dead: bool = False


@dataclass
class FetchStats:
    requests: int = 0
    redirects: int = 0
    retries: int = 0
    hosts_backed_off: int = 0
    waits_s: float = field(default=0.0)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP-date); None if absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def check_url(url: str, max_chars: int = DEFAULT_MAX_URL_CHARS) -> str:
    """Host of an absolute http(s) URL of at most `max_chars` characters, else FetchFailure
    (url_too_long: never requested, nor parsed further; invalid_url)."""
    if len(url) > max_chars:
        raise FetchFailure("url_too_long", f"{len(url)} chars > max_url_chars={max_chars}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise FetchFailure("invalid_url", str(e)) from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise FetchFailure("invalid_url", url[:200])
    return host


class Fetcher:
    def __init__(self, config: DownloadConfig):
        self.config = config
        self.resolver = Resolver(
            AddressPolicy(config.allow_private_hosts), config.dns_cache_ttl_s, config.connect_timeout_s
        )
        self.ssl_context = httpx.create_ssl_context()  # loading the CA bundle costs ~30 ms: once
        # One keep-alive pool for the shard (transport.py): HTTP/1.1 via h11/httpcore, connections
        # only through the guard, O(1) per request. Environment proxies are never consulted.
        self.pool = ConnectionPool(
            GuardedBackend(self.resolver), self.ssl_context,
            headers=[(b"User-Agent", config.user_agent.encode()), (b"Accept-Encoding", b"identity"),
                     (b"Accept", b"image/jpeg,image/png,image/webp;q=0.9,*/*;q=0.1")],
            timeouts={"connect": config.connect_timeout_s, "read": config.read_timeout_s,
                      "write": config.read_timeout_s, "pool": config.total_timeout_s},
            keepalive_expiry=30.0, max_idle=max(2 * config.concurrency, 16),
        )
        self.policy = PolicyCache(self._fetch_text, config.tokens, config.robots_max_bytes)
        self.hosts: dict[str, HostState] = {}
        self.global_sem = asyncio.Semaphore(config.concurrency)
        self.stats = FetchStats()

    async def aclose(self) -> None:
        self.pool.close()
        self.resolver.close()

    def host(self, name: str) -> HostState:
        st = self.hosts.get(name)
        if st is None:
            st = self.hosts[name] = HostState(asyncio.Semaphore(self.config.per_host_concurrency))
        return st

    # ------------------------------------------------------------------ small text (policy files)
    async def _fetch_text(self, url: str, max_bytes: int) -> tuple[int | None, str]:
        """GET a small policy file (robots.txt, tdmrep.json), following up to 5 redirects."""
        cfg = self.config
        try:
            async with asyncio.timeout(cfg.total_timeout_s):
                for _ in range(6):
                    check_url(url, self.config.max_url_chars)
                    await self.resolver.resolve(urlsplit(url).hostname or "")
                    async with self.pool.stream(url) as resp:
                        if resp.status_code in REDIRECT_CODES and "location" in resp.headers:
                            url = urljoin(url, resp.headers["location"])
                            continue
                        buf = bytearray()
                        async for chunk in resp.aiter_raw():
                            buf += chunk
                            if len(buf) >= max_bytes:
                                break
                        return resp.status_code, bytes(buf[:max_bytes]).decode("utf-8", "replace")
                return None, "robots_unreachable"
        except FetchFailure as e:
            return None, e.reason
        except BlockedAddress:
            return None, "blocked_address"
        except DNSError:
            return None, "dns_error"
        except (httpcore.TimeoutException, TimeoutError):
            return None, "timeout"
        except (httpx.InvalidURL, httpcore.UnsupportedProtocol):
            return None, "invalid_url"
        except (httpcore.ProtocolError, httpcore.NetworkError, OSError):
            return None, "network_error"

    # ------------------------------------------------------------------ one image, all attempts
    async def fetch(self, url: str, on_attempt) -> Fetched:
        """Fetch with retries. `on_attempt()` is called once per attempt (for the row's count)."""
        cfg = self.config
        host_name = check_url(url, self.config.max_url_chars).lower()
        attempt = 0
        while True:
            state = self.host(host_name)
            if state.dead:
                raise FetchFailure("host_backoff", f"{host_name} failed {state.consecutive_failures}x")
            on_attempt()
            try:
                result = await self._attempt(url)
            except FetchFailure as e:
                if not e.retryable:
                    raise
                # A 429/503 *with Retry-After* is the host pacing us (it pauses the host below), not a
                # sign that it is gone: counting it would give up every row of a rate-limiting host.
                # Without Retry-After a 503 is an error like any other.
                if e.reason != "rate_limited" or e.retry_after is None:
                    state.consecutive_failures += 1
                if state.consecutive_failures >= cfg.host_failure_threshold and not state.dead:
                    state.dead = True
                    self.stats.hosts_backed_off += 1
                if attempt >= cfg.retries:
                    raise
                wait = e.retry_after
                if wait is None:
                    wait = cfg.backoff_base_s * (2**attempt) * (1 + random.random() / 2)
                elif wait > cfg.max_retry_after_s:
                    raise FetchFailure("rate_limited", f"Retry-After {wait:.0f}s too long",
                                       http_status=e.http_status) from None
                if e.retry_after is not None:  # pause the whole host, not just this row
                    state.not_before = max(state.not_before, time.monotonic() + wait)
                attempt += 1
                self.stats.retries += 1
                self.stats.waits_s += wait
                await asyncio.sleep(wait)
                continue
            state.consecutive_failures = 0
            return result

    async def _attempt(self, url: str) -> Fetched:
        cfg = self.config
        budget = cfg.total_timeout_s
        for hop in range(cfg.max_redirects + 1):
            host_name = check_url(url, self.config.max_url_chars).lower()
            try:
                await self.resolver.resolve(host_name)  # refuse before any packet is sent
            except BlockedAddress as e:
                raise FetchFailure("blocked_address", str(e)) from None
            except DNSError as e:
                raise FetchFailure("dns_error", str(e)) from None
            await self._check_origin_policy(url)
            state = self.host(host_name)
            async with state.sem, self.global_sem:
                if state.dead:  # it may have died while this row queued for the host
                    raise FetchFailure("host_backoff", f"{host_name} given up")
                delay = state.not_before - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = time.monotonic()
                try:
                    async with asyncio.timeout(budget):
                        outcome = await self._request(url)
                except TimeoutError:
                    raise FetchFailure("timeout", f"total_timeout_s={cfg.total_timeout_s}",
                                       retryable=True) from None
                budget -= time.monotonic() - started
            if isinstance(outcome, Fetched):
                return outcome
            url = outcome  # redirect target
            self.stats.redirects += 1
        raise FetchFailure("too_many_redirects", f"> {cfg.max_redirects} hops")

    async def _check_origin_policy(self, url: str) -> None:
        cfg = self.config
        if cfg.respect_robots_txt:
            rules = await self.policy.robots(url)
            if isinstance(rules, str):  # unreachable: RFC 9309 says assume disallowed
                raise FetchFailure(rules, "robots.txt could not be fetched")
            if not rules.allowed(url):
                raise FetchFailure("robots_txt", "disallowed for " + cfg.user_agent_token)
        if cfg.respect_tdmrep and await self.policy.tdm_reserved(url):
            raise FetchFailure("tdm_reservation", "/.well-known/tdmrep.json")

    async def _request(self, url: str) -> Fetched | str:
        """One HTTP exchange: the image, or the next URL of a redirect."""
        cfg = self.config
        self.stats.requests += 1
        try:
            async with self.pool.stream(url) as resp:
                code = resp.status_code
                ctype = resp.headers.get("content-type")
                if code in REDIRECT_CODES and resp.headers.get("location"):
                    return urljoin(url, resp.headers["location"])
                if cfg.respect_x_robots_tag:
                    tag = x_robots_optout(resp.headers.get_list("x-robots-tag"), cfg.tokens)
                    if tag:
                        raise FetchFailure("x_robots_tag", tag, http_status=code, content_type=ctype)
                if cfg.respect_tdmrep and tdm_header_reserved(resp.headers.get("tdm-reservation")):
                    raise FetchFailure("tdm_reservation", "header", http_status=code, content_type=ctype)
                if code in (429, 503):
                    raise FetchFailure("rate_limited", f"HTTP {code}", retryable=True, http_status=code,
                                       retry_after=parse_retry_after(resp.headers.get("retry-after")))
                if code != 200:
                    raise FetchFailure("http_error", f"HTTP {code}", retryable=code >= 500 or code == 408,
                                       http_status=code, content_type=ctype)
                if ctype is not None and content_type_format(ctype) is None:
                    raise FetchFailure("unsupported_content_type", ctype, http_status=code,
                                       content_type=ctype)
                enc = resp.headers.get("content-encoding", "identity").strip().lower()
                if enc not in ("identity", ""):
                    raise FetchFailure("unsupported_content_type", f"content-encoding {enc}",
                                       http_status=code, content_type=ctype)
                declared = resp.headers.get("content-length")
                if declared and declared.strip().isdigit() and int(declared) > cfg.max_bytes:
                    raise FetchFailure("too_large", f"Content-Length {declared}", http_status=code,
                                       content_type=ctype)
                chunks: list[bytes] = []  # joined once at the end (one chunk: no copy at all)
                size = 0
                async for chunk in resp.aiter_raw():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > cfg.max_bytes:
                        raise FetchFailure("too_large", f"> {cfg.max_bytes} bytes streamed",
                                           http_status=code, content_type=ctype)
                if size < cfg.min_bytes:
                    raise FetchFailure("too_small", f"{size} bytes", http_status=code,
                                       content_type=ctype)
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return Fetched(body, code, ctype, url)
        except httpcore.TimeoutException as e:
            raise FetchFailure("timeout", type(e).__name__, retryable=True) from None
        except httpcore.RemoteProtocolError as e:
            reason = "incomplete_body" if "incomplete" in str(e) or "complete message" in str(e) else "network_error"
            raise FetchFailure(reason, str(e), retryable=True) from None
        except (httpx.InvalidURL, httpcore.UnsupportedProtocol) as e:
            raise FetchFailure("invalid_url", str(e)) from None
        except (httpcore.ProtocolError, httpcore.NetworkError, OSError) as e:
            raise FetchFailure("network_error", f"{type(e).__name__}: {e}", retryable=True) from None
        except BlockedAddress as e:
            raise FetchFailure("blocked_address", str(e)) from None
        except DNSError as e:
            raise FetchFailure("dns_error", str(e)) from None
