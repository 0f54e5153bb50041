"""Effective exposure: which target ports a container lets in from wide sources, and through which rule.

Traffic is judged per class (protocol, port, source S) where S is either
"everything" or a wide source some allow rule names. A rule *definitely*
matches a class when its protocol and ports cover it and its source covers
all of S; only definite matches decide, so a deny for 10.0.0.0/8 does not
hide an allow for 0.0.0.0/0 (most of the Internet still gets in).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..protocol import transport
from .model import Container, Rule, Source, covers, parse_source

DEFAULT_TARGETS: tuple[tuple[str, int], ...] = (
    ("tcp", 135), ("tcp", 139), ("tcp", 445), ("tcp", 3389), ("udp", 137), ("udp", 138))
# Ports of the Shadow Brokers modules other than SMB (knowledge.md, seed 001 table 1).
SHADOW_BROKERS: tuple[tuple[str, int], ...] = (
    ("tcp", 25), ("tcp", 80), ("tcp", 88), ("tcp", 143), ("tcp", 1000), ("tcp", 3000), ("tcp", 3264))
# SMB itself (protocol/transport.py) and the NetBIOS name and datagram services beside it
SMB_PORTS = {("tcp", p) for p in transport.SMB_PORTS} | {("udp", 137), ("udp", 138)}
DEFAULT_WIDE_THRESHOLD = 8


def parse_targets(spec: str | None) -> tuple[tuple[str, int], ...]:
    """--ports: comma list of `default`, `shadowbrokers`, `N` (TCP), `tcp/N`, `udp/N`.

    None or empty is `default` (TCP 135, 139, 445, 3389 and UDP 137, 138).
    """
    if not spec:
        return DEFAULT_TARGETS
    out: list[tuple[str, int]] = []
    for item in (x.strip().lower() for x in spec.split(",")):
        if not item:
            continue
        if item == "default":
            out += DEFAULT_TARGETS
        elif item in ("shadowbrokers", "shadow-brokers", "sb"):
            out += SHADOW_BROKERS
        else:
            proto, _, num = item.rpartition("/")
            proto = proto or "tcp"
            if proto not in ("tcp", "udp") or not num.isdigit() or not 0 < int(num) < 65536:
                raise ValueError(f"bad --ports item {item!r} (use 445, tcp/445, udp/137, default, shadowbrokers)")
            out.append((proto, int(num)))
    return tuple(dict.fromkeys(out))


def wide_class(src: Source, threshold: int) -> str | None:
    """'internet', 'internal' or None (not wide).

    Wide: any/*/Any, the Internet tag, an IPv4 prefix of /threshold or shorter
    (default /8), an IPv6 prefix of /(4*threshold) or shorter (default /32, an
    ISP-sized block). Wide networks wholly in private space (10.0.0.0/8,
    fc00::/7) are 'internal': still reported, at lower severity.
    """
    if src.kind == "any" or (src.kind == "tag" and src.tag == "internet"):
        return "internet"
    if src.kind != "net":
        return None
    n = src.net
    if n.is_link_local or n.is_loopback:
        return None
    limit = threshold if n.version == 4 else threshold * 4
    if n.prefixlen > limit:
        return None
    if n.prefixlen == 0:
        return "internet"
    return "internet" if n.is_global or not n.is_private else "internal"


def severity(proto: str, port: int, klass: str) -> str:
    smb = (proto, port) in SMB_PORTS
    if klass == "internet":
        return "critical" if smb else "high"
    return "medium"


@dataclass(frozen=True)
class Exposure:
    source: str
    platform: str
    container: str
    rule: str
    protocol: str
    port: int
    exposed_to: str
    severity: str
    fix: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _proto_port(rule: Rule, proto: str, port: int) -> bool:
    if rule.protocol not in ("any", proto):
        return False
    return rule.ports is None or any(lo <= port <= hi for lo, hi in rule.ports)


def _definite(rule: Rule, proto: str, port: int, s: Source) -> bool:
    if not _proto_port(rule, proto, port):
        return False
    if rule.sources is None:
        return True
    if rule.negated:
        # "not X" lets part of S through unless X holds all of S: an allow counts (errs to
        # reporting); a deny or jump must hold for all of S, so S and X may not overlap.
        if rule.action == "allow":
            return not any(covers(x, s) for x in rule.sources)
        return s.kind == "net" and all(
            x.kind == "net" and (x.net.version != s.net.version or not x.net.overlaps(s.net)) for x in rule.sources)
    return any(covers(x, s) for x in rule.sources)


def _candidates(c: Container, threshold: int) -> list[Source]:
    """Every source class worth asking about: 'everything' per family plus each wide allowed source."""
    cands: list[Source] = []
    if c.families:
        cands += [Source("net", n, ipaddress.ip_network(n)) for n in
                  (("0.0.0.0/0",) if 4 in c.families else ()) + (("::/0",) if 6 in c.families else ())]
    else:
        cands.append(Source("any", "any"))
    known = set(cands)
    rules = list(c.rules) + [r for ch in c.chains.values() for r in ch]
    for r in rules:
        if r.action in ("allow", "jump") and r.sources and not r.negated:
            for s in r.sources:
                if s.kind == "any" and c.families:
                    continue
                if s not in known and wide_class(s, threshold):
                    known.add(s)
                    cands.append(s)
    return cands


def _walk(c: Container, rules: list[Rule], proto: str, port: int, s: Source, depth: int = 0):
    """First-match traversal with simple jumps; returns (action, rule) or None if it fell through."""
    if depth > 16:
        return None
    for r in rules:
        if r.action == "skip" or not _definite(r, proto, port, s):
            continue
        if r.action in ("allow", "deny"):
            return r.action, r
        if r.action == "return":
            return None
        if r.action == "jump" and r.target in c.chains:
            got = _walk(c, c.chains[r.target], proto, port, s, depth + 1)
            if got is not None:
                return got
            if r.data.get("goto"):
                return None
    return None


def relevance(targets, threshold: int = DEFAULT_WIDE_THRESHOLD):
    """A predicate: can this rule change what evaluate() reports for `targets`?

    False only when it provably cannot: a rule that never matches new
    inbound traffic ("skip"), or one that adds no candidate source and
    either matches none of the target ports or names only sources narrower
    than the threshold (such a source never holds a whole wide candidate,
    so the rule is never a definite match).  Lets a block list of a million
    single addresses be read without holding it."""
    targets = tuple(targets)

    def keep(rule: Rule) -> bool:
        if rule.action == "skip":
            return False
        if rule.action in ("allow", "jump") and rule.sources and not rule.negated and \
                any(wide_class(x, threshold) or x.kind == "any" for x in rule.sources):
            return True  # _candidates asks about its sources
        if not any(_proto_port(rule, proto, port) for proto, port in targets):
            return False
        if rule.sources is None or rule.negated:
            return True
        return any(x.kind != "net" or x.net.prefixlen <= (threshold if x.net.version == 4 else threshold * 4)
                   for x in rule.sources)

    return keep


def _granting(c: Container, proto: str, port: int, s: Source) -> list[Rule]:
    if c.mode == "first":
        got = _walk(c, c.rules, proto, port, s)
        if got is None:
            return [Rule(c.default_label, "allow", data={"default": True})] if c.default == "allow" else []
        return [got[1]] if got[0] == "allow" else []
    live = [r for r in c.rules if r.action != "skip" and _definite(r, proto, port, s)]
    if c.mode == "block" and any(r.action == "deny" for r in live):
        return []
    allows = [r for r in live if r.action == "allow"]
    if not allows and c.default == "allow":
        return [Rule(c.default_label, "allow", data={"default": True})]
    return allows


def _shown(s: Source, rule: Rule) -> str:
    """exposed_to: the network, or the rule's own spelling of 'any' (*, Any, 0.0.0.0/0)."""
    if s.kind == "any" and rule.sources:
        for x in rule.sources:
            if covers(x, s):
                return x.text
    return s.text


def evaluate(c: Container, targets, threshold: int = DEFAULT_WIDE_THRESHOLD) -> list[Exposure]:
    out: list[Exposure] = []
    seen = set()
    cands = _candidates(c, threshold)
    for proto, port in targets:
        for s in cands:
            klass = wide_class(s, threshold)
            for r in _granting(c, proto, port, s):
                shown = _shown(s, r)
                key = (r.label, proto, port, shown)
                if key in seen:
                    continue
                # a narrower candidate already granted by a broader one is the same exposure
                if any(k[0] == r.label and k[1:3] == (proto, port) and _covers_text(k[3], s) for k in seen):
                    continue
                seen.add(key)
                fix = c.fixer(c, r, proto, port, shown) if c.fixer else ""
                out.append(Exposure(c.source, c.platform, c.name, r.label, proto, port, shown,
                                    severity(proto, port, klass), fix))
    return out


def _covers_text(text: str, s: Source) -> bool:
    try:
        return any(covers(x, s) for x in parse_source(text))
    except ValueError:
        return False
