"""Which IP addresses the downloader must never connect to, written out from the IANA registries.

Source: the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, RFC 8190), read
2025-10. Every entry whose "Globally Reachable" column is False or N/A is denied. Entries marked
True that lie *inside* a denied block (the registry's "more specific reservation" rule) are denied
too: they are protocol anycast addresses (PCP, TURN, DNS-SD SRP), AMT relays, AS112 sinks or
non-routable identifiers (ORCHIDv2, DETs) and never host web content, so denying them loses
nothing. Two rules come from outside those registries: IPv4 multicast (224.0.0.0/4, RFC 5771) is
not unicast, and in IPv6 only 2000::/3 is allocated for global unicast (IANA IPv6 Address Space)
so everything outside it is denied, except the NAT64 prefix 64:ff9b::/96 whose embedded IPv4
address is checked instead.

Written as data, compared with plain integer ranges: the answer never depends on the running
Python's `ipaddress.is_global` table (3.11 passes most of 192.0.0.0/24; 3.13 changed the table).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SpecialBlock:
    cidr: str
    name: str
    rfc: str
    globally_reachable: str  # the registry's column: "False", "N/A" or "True"
    denied: bool = True

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)


_IN_DENIED_BLOCK = True  # readability: a "True" entry inside a denied block stays denied

IPV4_SPECIAL: tuple[SpecialBlock, ...] = (
    SpecialBlock("0.0.0.0/8", '"This network"', "RFC 791 s3.2", "False"),
    SpecialBlock("0.0.0.0/32", '"This host on this network"', "RFC 1122 s3.2.1.3", "False"),
    SpecialBlock("10.0.0.0/8", "Private-Use", "RFC 1918", "False"),
    SpecialBlock("100.64.0.0/10", "Shared Address Space", "RFC 6598", "False"),
    SpecialBlock("127.0.0.0/8", "Loopback", "RFC 1122 s3.2.1.3", "False"),
    SpecialBlock("169.254.0.0/16", "Link Local", "RFC 3927", "False"),
    SpecialBlock("172.16.0.0/12", "Private-Use", "RFC 1918", "False"),
    SpecialBlock("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890 s2.1", "False"),
    SpecialBlock("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", "False"),
    SpecialBlock("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", "False"),
    SpecialBlock("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", "True", _IN_DENIED_BLOCK),
    SpecialBlock("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", "True",
                 _IN_DENIED_BLOCK),
    SpecialBlock("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 s2.2", "False"),
    SpecialBlock("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 s2.2", "False"),
    SpecialBlock("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", "False"),
    SpecialBlock("192.31.196.0/24", "AS112-v4", "RFC 7535", "True", denied=False),
    SpecialBlock("192.52.193.0/24", "AMT", "RFC 7450", "True", denied=False),
    SpecialBlock("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", "N/A"),
    SpecialBlock("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", "False"),
    SpecialBlock("192.168.0.0/16", "Private-Use", "RFC 1918", "False"),
    SpecialBlock("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", "True", denied=False),
    SpecialBlock("198.18.0.0/15", "Benchmarking", "RFC 2544", "False"),
    SpecialBlock("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", "False"),
    SpecialBlock("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", "False"),
    SpecialBlock("240.0.0.0/4", "Reserved", "RFC 1112 s4", "False"),
    SpecialBlock("255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 s7", "False"),
)

IPV6_SPECIAL: tuple[SpecialBlock, ...] = (
    SpecialBlock("::1/128", "Loopback Address", "RFC 4291", "False"),
    SpecialBlock("::/128", "Unspecified Address", "RFC 4291", "False"),
    SpecialBlock("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", "False"),
    SpecialBlock("64:ff9b::/96", "IPv4-IPv6 Translat. (NAT64, embedded IPv4 checked)", "RFC 6052", "True",
                 denied=False),
    SpecialBlock("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local use)", "RFC 8215", "False"),
    SpecialBlock("100::/64", "Discard-Only Address Block", "RFC 6666", "False"),
    SpecialBlock("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", "False"),
    SpecialBlock("2001::/23", "IETF Protocol Assignments", "RFC 2928", "False"),
    SpecialBlock("2001::/32", "TEREDO", "RFC 4380, RFC 8190", "N/A"),
    SpecialBlock("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", "True", _IN_DENIED_BLOCK),
    SpecialBlock("2001:1::2/128", "TURN Anycast", "RFC 8155", "True", _IN_DENIED_BLOCK),
    SpecialBlock("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", "True",
                 _IN_DENIED_BLOCK),
    SpecialBlock("2001:2::/48", "Benchmarking", "RFC 5180, RFC Errata 1752", "False"),
    SpecialBlock("2001:3::/32", "AMT", "RFC 7450", "True", _IN_DENIED_BLOCK),
    SpecialBlock("2001:4:112::/48", "AS112-v6", "RFC 7535", "True", _IN_DENIED_BLOCK),
    SpecialBlock("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", "N/A"),
    SpecialBlock("2001:20::/28", "ORCHIDv2", "RFC 7343", "True", _IN_DENIED_BLOCK),
    SpecialBlock("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", "True",
                 _IN_DENIED_BLOCK),
    SpecialBlock("2001:db8::/32", "Documentation", "RFC 3849", "False"),
    SpecialBlock("2002::/16", "6to4", "RFC 3056", "N/A"),
    SpecialBlock("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", "True", denied=False),
    SpecialBlock("3fff::/20", "Documentation", "RFC 9637", "False"),
    SpecialBlock("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", "False"),
    SpecialBlock("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190", "False"),
    SpecialBlock("fe80::/10", "Link-Local Unicast", "RFC 4291", "False"),
)

IPV4_MULTICAST = SpecialBlock("224.0.0.0/4", "Multicast", "RFC 5771", "N/A")
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # IANA IPv6 Address Space, RFC 4291 s2.4
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _ranges(blocks: tuple[SpecialBlock, ...]) -> tuple[tuple[int, int, SpecialBlock], ...]:
    return tuple(
        (int(b.network.network_address), int(b.network.broadcast_address), b) for b in blocks if b.denied
    )


# Most specific first, so a reason names the narrowest denied entry an address falls in.
_V4 = tuple(sorted(_ranges((*IPV4_SPECIAL, IPV4_MULTICAST)), key=lambda r: r[1] - r[0]))
_V6 = tuple(sorted(_ranges(IPV6_SPECIAL), key=lambda r: r[1] - r[0]))
_V6_UNICAST = (int(IPV6_GLOBAL_UNICAST.network_address), int(IPV6_GLOBAL_UNICAST.broadcast_address))
_NAT64 = (int(NAT64.network_address), int(NAT64.broadcast_address))


def _describe(block: SpecialBlock) -> str:
    return f"{block.cidr} {block.name} ({block.rfc})"


def denial_reason(ip: IPAddress) -> str | None:
    """Why `ip` must not be connected to (the registry entry it falls in), or None if it is public."""
    n = int(ip)
    if ip.version == 4:
        for lo, hi, block in _V4:
            if lo <= n <= hi:
                return _describe(block)
        return None
    for lo, hi, block in _V6:
        if lo <= n <= hi:
            return _describe(block)
    if _NAT64[0] <= n <= _NAT64[1]:
        inner = ipaddress.IPv4Address(n & 0xFFFFFFFF)
        why = denial_reason(inner)
        return None if why is None else f"NAT64 64:ff9b::/96 embeds {inner}: {why}"
    if not _V6_UNICAST[0] <= n <= _V6_UNICAST[1]:
        return "outside 2000::/3, the only IPv6 global unicast space (RFC 4291 s2.4, IANA IPv6 Address Space)"
    return None


def is_public(ip: IPAddress) -> bool:
    return denial_reason(ip) is None
