"""The platform-neutral shape every parser produces, and the address/port helpers they share.

Each firewall dialect is turned into Containers of ordered Rules, so one
evaluator (evaluate.py) can answer "is TCP 445 reachable from 0.0.0.0/0?"
for all of them; only the combining mode and the fix syntax differ.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Callable

ANY_WORDS = {"*", "any", "任何", "all", "0.0.0.0/0,::/0"}
_IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:/(\d{1,2}))?$")
INTERNET_WORDS = {"internet"}


@dataclass(frozen=True)
class Source:
    """One source address object: `any`, a named tag (Internet, LocalSubnet, ...) or a network."""

    kind: str  # "any" | "tag" | "net"
    text: str
    net: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    @property
    def tag(self) -> str:
        return self.text.lower()


def src_any(text: str = "any") -> Source:
    return Source("any", text)


def parse_source(text: str) -> list[Source]:
    """Turn one written address (CIDR, mask form, a-b range, keyword) into Sources.

    Ranges become their covering CIDR blocks (0.0.0.0-255.255.255.255 is 0.0.0.0/0),
    so range and CIDR spellings compare alike. Raises ValueError on garbage.
    """
    t = text.strip()
    m = _IPV4.match(t)
    if m is not None and not any(len(x) > 1 and x[0] == "0" for x in m.group(1, 2, 3, 4)):
        # the common case (a million of them in a block list) without ipaddress's parser;
        # leading zeros are left to it (it refuses them)
        octets = [int(x) for x in m.group(1, 2, 3, 4)]
        prefix = int(m.group(5)) if m.group(5) is not None else 32
        if max(octets) <= 255 and prefix <= 32:
            value = int.from_bytes(bytes(octets), "big") & ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF)
            net = ipaddress.IPv4Network((value, prefix))
            return [Source("net", f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}/{prefix}", net)]
    low = t.lower()
    if low in ANY_WORDS:
        return [src_any(t)]
    if "-" in t and (t[0].isdigit() or ":" in t):
        a, b = (ipaddress.ip_address(x.strip()) for x in t.split("-", 1))
        return [Source("net", str(n), n) for n in ipaddress.summarize_address_range(a, b)]
    if "/" in t and "." in t.split("/", 1)[1]:  # Windows mask form 10.0.0.0/255.0.0.0
        net = ipaddress.ip_network(t, strict=False)
        return [Source("net", str(net), net)]
    try:
        net = ipaddress.ip_network(t, strict=False)
    except ValueError:
        if "/" in t or any(c.isdigit() for c in t.split(".")[0][:1]):
            raise
        return [Source("tag", t)]  # Internet, LocalSubnet, VirtualNetwork, DNS, ...
    return [Source("net", str(net), net)]


def covers(outer: Source, inner: Source) -> bool:
    """True when every address of `inner` is in `outer` (tags compared by meaning, loosely).

    `Internet` is taken to cover any/0.0.0.0/0 for exposure purposes: what it leaves
    out is private space, which is not a wide source.
    """
    if outer.kind == "any":
        return True
    if outer.kind == "tag":
        if outer.tag in INTERNET_WORDS:
            return (inner.kind in ("any",) or (inner.kind == "tag" and inner.tag in INTERNET_WORDS)
                    or (inner.kind == "net" and (inner.net.prefixlen == 0 or inner.net.is_global)))
        return inner.kind == "tag" and inner.tag == outer.tag
    # outer is a network
    if inner.kind == "net":
        return inner.net.version == outer.net.version and inner.net.subnet_of(outer.net)
    if inner.kind == "tag" and inner.tag in INTERNET_WORDS:
        return outer.net.prefixlen == 0
    return inner.kind == "any" and outer.net.prefixlen == 0


def parse_ports(text: str, sep: str = ",", rng: str = "-") -> tuple[tuple[int, int], ...] | None:
    """'445', '135,139,445', '440-450', '*'/'Any' -> ((lo, hi), ...); None means every port."""
    t = text.strip()
    if t.lower() in ANY_WORDS or t == "":
        return None
    out = []
    for part in t.split(sep):
        part = part.strip()
        if not part:
            continue
        if part.upper() == "RPC-EPMAP":  # Windows keyword for the endpoint mapper, 135
            out.append((135, 135))
            continue
        if part.upper() in ("RPC", "IPHTTPSIN", "IPHTTPSOUT", "TEREDO", "PLAYTODISCOVERY", "MDNS"):
            continue  # dynamic / special ports, never 445 and friends
        lo, _, hi = part.partition(rng)
        a, b = int(lo), int(hi or lo)
        if not (0 <= a <= b <= 65535):
            raise ValueError(f"bad port range {part!r}")
        out.append((a, b))
    return tuple(out)


@dataclass
class Rule:
    """One inbound rule in evaluation order.

    action: allow | deny | jump | return | skip (a rule that cannot match new
    inbound traffic, e.g. `-i lo` or `ct state established`).
    """

    label: str
    action: str
    protocol: str = "any"  # tcp | udp | any | (other: never matches)
    ports: tuple[tuple[int, int], ...] | None = None
    sources: tuple[Source, ...] | None = None  # None: every source
    negated: bool = False  # sources are "not these"
    target: str | None = None  # chain for jump
    data: dict = field(default_factory=dict)


@dataclass
class Container:
    """A rule set evaluated as a unit: a security group, an NSG, a chain, a host firewall.

    mode: `first` (first matching rule decides; Azure, Alibaba after sorting,
    iptables, nft), `union` (any allow grants; AWS), `block` (any matching block
    wins over every allow; Windows Firewall).
    """

    source: str
    platform: str
    name: str
    mode: str
    rules: list[Rule]
    default: str = "deny"
    default_label: str = "default deny"
    families: tuple[int, ...] | None = None  # address families of a rule with no source
    chains: dict[str, list[Rule]] = field(default_factory=dict)
    fixer: Callable[..., str] | None = None
    data: dict = field(default_factory=dict)
