"""Opt-out rules: robots.txt (RFC 9309), X-Robots-Tag AI directives and TDMRep.

Parsing is pure; `PolicyCache` fetches robots.txt and tdmrep.json once per origin (concurrent rows
of one origin share the same in-flight fetch) through a fetch function the caller supplies, so the
same guarded HTTP client and SSRF checks apply to them.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .wildcard import WildcardPattern

AI_DIRECTIVES = frozenset({"noai", "noimageai", "noml"})
# X-Robots-Tag directives whose value contains a colon; anything else before a colon is a bot name.
_COLON_DIRECTIVES = frozenset(
    {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
)


# ---------------------------------------------------------------------------------- X-Robots-Tag
def x_robots_optout(values: Iterable[str], tokens: Iterable[str]) -> str | None:
    """The AI directive that opts this response out for us (global or scoped to one of `tokens`).

    `X-Robots-Tag: noai`, `X-Robots-Tag: laion-assets: noimageai`; `otherbot: noai` does not apply.
    """
    tokens = {t.lower() for t in tokens}
    for value in values:
        scope = None
        m = re.match(r"^\s*([A-Za-z0-9_.*-]+)\s*:(.*)$", value)
        if m and m.group(1).lower() not in _COLON_DIRECTIVES:
            scope, value = m.group(1).lower(), m.group(2)
        if scope is not None and scope not in tokens and scope != "*":
            continue
        for directive in value.split(","):
            d = directive.strip().lower()
            if d in AI_DIRECTIVES:
                return d
    return None


# ---------------------------------------------------------------------------------- robots.txt
def _pattern_regex(pattern: str) -> WildcardPattern:
    """robots/TDMRep path pattern: prefix match, `*` any run of characters, trailing `$` anchors;
    matched in linear time (`wildcard.py`: a regex here backtracked for minutes on host rules)."""
    return WildcardPattern(pattern)


@dataclass
class RobotsRules:
    """The rule group that applies to our tokens (or `*`), longest match wins, allow wins ties."""

    rules: list[tuple[bool, int, WildcardPattern]]  # (allow, specificity, pattern)

    @classmethod
    def allow_all(cls) -> RobotsRules:
        return cls([])

    @classmethod
    def disallow_all(cls) -> RobotsRules:
        return cls([(False, 1, WildcardPattern(""))])

    @classmethod
    def parse(cls, text: str, tokens: Iterable[str]) -> RobotsRules:
        tokens = [t.lower() for t in tokens]
        groups: list[tuple[list[str], list[tuple[bool, str]]]] = []
        agents: list[str] = []
        rules: list[tuple[bool, str]] = []
        last_was_agent = False
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if ":" not in line:
                continue
            field, value = (s.strip() for s in line.split(":", 1))
            field = field.lower()
            if field == "user-agent":
                if not last_was_agent and (agents or rules):
                    groups.append((agents, rules))
                    agents, rules = [], []
                agents.append(value.lower())
                last_was_agent = True
            elif field in ("allow", "disallow"):
                last_was_agent = False
                if agents:
                    rules.append((field == "allow", value))
            else:
                last_was_agent = False if field != "sitemap" else last_was_agent
        if agents:
            groups.append((agents, rules))
        mine = [r for a, r in groups if any(ag != "*" and ag in tokens for ag in a)]
        chosen = [r for rs in mine for r in rs] if mine else [
            r for a, rs in groups if "*" in a for r in rs
        ]
        compiled = [
            (allow, len(path), _pattern_regex(path)) for allow, path in chosen if path
        ]  # an empty Disallow allows everything: no rule
        # Longest first, allow before disallow at equal length: the first match decides, so a URL
        # stops at its best rule instead of trying every one of a 500 KiB file's rules.
        compiled.sort(key=lambda r: (-r[1], not r[0]))
        return cls(compiled)

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for allow, _spec, pattern in self.rules:  # sorted: the first match is the best one
            if pattern.match(path):
                return allow
        return True


# ---------------------------------------------------------------------------------- TDMRep
def tdm_header_reserved(value: str | None) -> bool:
    return value is not None and value.strip() == "1"


def parse_tdmrep(text: str) -> list[tuple[WildcardPattern, bool]]:
    """/.well-known/tdmrep.json: a list of {location, tdm-reservation, tdm-policy?} rules."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    out = []
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("location"), str):
            loc = item["location"]
            loc = loc if loc.startswith("/") else "/" + loc
            out.append((_pattern_regex(loc), str(item.get("tdm-reservation", 0)).strip() == "1"))
    return out


def tdmrep_reserved(rules: list[tuple[WildcardPattern, bool]], url: str) -> bool:
    """First matching rule decides (TDMRep processes the array in order)."""
    path = urlsplit(url).path or "/"
    for rx, reserved in rules:
        if rx.match(path):
            return reserved
    return False


# ---------------------------------------------------------------------------------- cache
def origin_of(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme.lower()}://{p.netloc.lower()}"


# fetch(url, max_bytes) -> (http_status, body text), or (None, failure reason) when no answer came
FetchText = Callable[[str, int], Awaitable[tuple[int | None, str]]]


class PolicyCache:
    """robots.txt and tdmrep.json per origin, each fetched at most once per shard."""

    def __init__(self, fetch: FetchText, tokens: Iterable[str], robots_max_bytes: int):
        self.fetch = fetch
        self.tokens = list(tokens)
        self.robots_max_bytes = robots_max_bytes
        self._robots: dict[str, asyncio.Future] = {}
        self._tdm: dict[str, asyncio.Future] = {}
        self.robots_fetches = 0
        self.tdmrep_fetches = 0

    async def _once(self, cache: dict[str, asyncio.Future], origin: str, make):
        fut = cache.get(origin)
        if fut is None:
            fut = asyncio.ensure_future(make(origin))
            cache[origin] = fut
        return await asyncio.shield(fut)

    async def robots(self, url: str) -> RobotsRules | str:
        """Rules for the URL's origin, or why robots.txt was unreachable (RFC 9309: then the origin
        counts as fully disallowed): 'robots_unreachable' for 5xx, else the network failure."""
        return await self._once(self._robots, origin_of(url), self._load_robots)

    async def _load_robots(self, origin: str) -> RobotsRules | str:
        self.robots_fetches += 1
        status, text = await self.fetch(origin + "/robots.txt", self.robots_max_bytes)
        if status is None:
            return text or "robots_unreachable"
        if status >= 500:
            return "robots_unreachable"
        if status != 200:  # 4xx: "unavailable", crawling allowed
            return RobotsRules.allow_all()
        return RobotsRules.parse(text, self.tokens)

    async def tdm_reserved(self, url: str) -> bool:
        rules = await self._once(self._tdm, origin_of(url), self._load_tdm)
        return tdmrep_reserved(rules, url)

    async def _load_tdm(self, origin: str):
        self.tdmrep_fetches += 1
        status, text = await self.fetch(origin + "/.well-known/tdmrep.json", 256 * 1024)
        return parse_tdmrep(text) if status == 200 else []
