"""The SSRF guard against the IANA special-purpose registries, address by address.

Issue 11 found most of 192.0.0.0/24 passing because the guard used this Python's `is_global` table.
Every denied block is tested at its first, last and a middle address, in every embedded-IPv4
spelling, and the decision must not depend on the interpreter's `ipaddress` tables.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import ipaddress

import pytest

from laion_assets.core.download import netguard, special_addresses
from laion_assets.core.download.netguard import AddressPolicy, BlockedAddress, Resolver, parse_allow_list
from laion_assets.core.download.special_addresses import (
    IPV4_MULTICAST,
    IPV4_SPECIAL,
    IPV6_SPECIAL,
    denial_reason,
    is_public,
)
from laion_assets.core.lib.validation import ConfigError

DENIED = [b for b in (*IPV4_SPECIAL, *IPV6_SPECIAL, IPV4_MULTICAST) if b.denied]
ALLOWED = [b for b in (*IPV4_SPECIAL, *IPV6_SPECIAL) if not b.denied]


def _first_mid_last(net) -> list:
    first, last = int(net.network_address), int(net.broadcast_address)
    cls = type(net.network_address)
    return [cls(first), cls((first + last) // 2), cls(last)]


def test_every_registry_entry_false_or_na_is_denied_and_true_only_inside_denied_blocks():
    for block in (*IPV4_SPECIAL, *IPV6_SPECIAL):
        assert block.globally_reachable in ("False", "N/A", "True")
        if block.globally_reachable != "True":
            assert block.denied, block
        elif block.denied:  # a True entry we deny must sit inside a denied (False / N/A) block
            assert any(o.denied and o.globally_reachable != "True" and block.network != o.network
                       and block.network.subnet_of(o.network) for o in DENIED
                       if o.network.version == block.network.version), block
        assert block.rfc.startswith("RFC"), block


@pytest.mark.parametrize("block", DENIED, ids=lambda b: b.cidr)
def test_denied_blocks_first_middle_last(block):
    for ip in _first_mid_last(block.network):
        assert denial_reason(ip) is not None, ip
        assert not AddressPolicy(()).allowed(ip), ip


@pytest.mark.parametrize("block", ALLOWED, ids=lambda b: b.cidr)
def test_globally_reachable_blocks_outside_denied_ones_pass(block):
    probes = _first_mid_last(block.network)
    if block.cidr == "64:ff9b::/96":  # NAT64: the embedded IPv4 decides (0.0.0.0 / 255.255.255.255 deny)
        probes = [ipaddress.ip_address("64:ff9b::8.8.8.8"), ipaddress.ip_address("64:ff9b::93.184.215.14")]
    for ip in probes:
        assert is_public(ip), (ip, denial_reason(ip))


def test_all_of_192_0_0_0_24_is_denied():
    """The finding itself: 3.11's table passes 192.0.0.8 - 192.0.0.169 and 192.0.0.172 - 255."""
    for i in range(256):
        assert not is_public(ipaddress.ip_address(f"192.0.0.{i}")), i


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "192.0.1.1", "192.0.3.0",
                                "198.17.255.255", "198.20.0.0", "223.255.255.255", "100.63.255.255",
                                "100.128.0.0", "2606:4700::6810:85e5", "2a00:1450:4001:82a::200e",
                                "2001:200::1", "3fff:1000::1", "2001:4860:4860::8888"])
def test_public_neighbours_of_denied_blocks_pass(ip):
    assert is_public(ipaddress.ip_address(ip)), denial_reason(ipaddress.ip_address(ip))


def _teredo(server: str, client: str) -> ipaddress.IPv6Address:
    """RFC 4380 s4: 2001:0000:<server v4>:<flags>:<port ^ 0xffff>:<client v4 ^ 0xffffffff>."""
    s, c = int(ipaddress.IPv4Address(server)), int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    return ipaddress.IPv6Address((0x20010000 << 96) | (s << 64) | (0x8000 << 48) | (0xFFFF ^ 80) << 32 | c)


def _embedded_forms(v4: str) -> dict[str, ipaddress.IPv6Address]:
    n = int(ipaddress.IPv4Address(v4))
    return {
        "ipv4-mapped": ipaddress.IPv6Address(f"::ffff:{v4}"),
        "ipv4-compatible": ipaddress.IPv6Address(n),
        "nat64": ipaddress.IPv6Address(f"64:ff9b::{v4}"),
        "nat64-local": ipaddress.IPv6Address((int(ipaddress.IPv6Address("64:ff9b:1::")) | n)),
        "6to4": ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1),
        "teredo-client": _teredo("8.8.8.8", v4),
        "teredo-server": _teredo(v4, "8.8.8.8"),
    }


NON_PUBLIC_V4 = ["127.0.0.1", "10.1.2.3", "169.254.169.254", "172.16.0.1", "192.168.1.1", "100.64.0.1",
                 "0.0.0.0", "192.0.0.8", "192.0.0.100", "192.0.0.200", "198.18.0.1", "240.0.0.1",
                 "255.255.255.255", "224.0.0.251"]


@pytest.mark.parametrize("v4", NON_PUBLIC_V4)
def test_every_ipv6_spelling_of_a_denied_ipv4_is_denied(v4):
    for form, ip in _embedded_forms(v4).items():
        assert denial_reason(ip) is not None, (form, ip)


def test_embedded_forms_of_a_public_ipv4():
    """Only NAT64's well-known prefix is globally reachable; the other forms are False/N/A entries."""
    forms = _embedded_forms("8.8.8.8")
    assert is_public(forms.pop("nat64"))
    for form, ip in forms.items():
        assert not is_public(ip), form


def test_decision_does_not_use_the_interpreters_tables():
    tables = {"is_global", "is_private", "is_reserved", "is_loopback", "is_link_local", "is_multicast",
              "is_unspecified", "is_site_local", "ipv4_mapped", "sixtofour", "teredo"}
    for module in (special_addresses, netguard):
        used = {n.attr for n in ast.walk(ast.parse(inspect.getsource(module))) if isinstance(n, ast.Attribute)}
        assert not used & tables, (module.__name__, used & tables)


def test_blocked_message_names_the_registry_entry():
    async def go():
        r = Resolver(AddressPolicy(()), ttl_s=60)
        try:
            await r.resolve("192.0.0.100")
        finally:
            r.close()

    with pytest.raises(BlockedAddress, match=r"192\.0\.0\.0/24 IETF Protocol Assignments \(RFC 6890"):
        asyncio.run(go())


@pytest.mark.parametrize("entry", ["0.0.0.0/0", "::/0", "0.0.0.0/1", "10.0.0.0/7", "fc00::/7", "::/1"])
def test_allow_lists_wider_than_slash_8_are_refused(entry):
    with pytest.raises(ConfigError, match=r"allow_private_hosts=.*wider than /8 are refused"):
        AddressPolicy(["127.0.0.1", entry])


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "*", "127.0.0.1:8080", "http://127.0.0.1", "a b"])
def test_malformed_allow_list_entries_are_refused(entry):
    with pytest.raises(ConfigError, match="IP address, a CIDR network or a host name"):
        parse_allow_list([entry])


def test_narrow_allow_list_lets_through_only_what_it_names():
    policy = AddressPolicy(["127.0.0.0/8", "fd00::/8", "images.internal", "[::1]"])
    assert policy.allowed(ipaddress.ip_address("127.255.0.1"))
    assert policy.allowed(ipaddress.ip_address("::1"))
    assert policy.allowed(ipaddress.ip_address("10.0.0.1"), "Images.Internal.")
    assert not policy.allowed(ipaddress.ip_address("10.0.0.1"), "other.internal")
    assert not policy.allowed(ipaddress.ip_address("169.254.169.254"))
