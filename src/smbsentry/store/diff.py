"""What changed between two stored scans, comparing like with like.

A finding is "fixed" only when the newer scan says `not_vulnerable` for it.
When the newer scan has no verdict, the finding is "not checked", with why:
its check was not run (the scans' check sets differ), its port was not
scanned, or the check ran and said nothing about the host (it answered
less, or the check does not apply any more): none of these is a fix.  The
scans' targets, checks and ports are compared and every difference is a
warning; hosts outside the newer scan's targets are "not scanned", never
"gone".  Per host, changes of identity (name, OS, SMB2/3 dialects, signing,
SMBv1) are listed: a different machine on the same address, or a
reconfigured one, explains many finding changes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from ..model import BAD


@lru_cache(maxsize=1)
def _service_ports() -> frozenset[int]:
    """The other services' ports (kb/data/services.json): --ports may name them, they are not SMB ports."""
    from ..services import service_ports  # with QUIC's

    return frozenset(p for ps in service_ports().values() for p in ps)


@dataclass
class Diff:
    old_id: int
    new_id: int
    new_hosts: list[str] = field(default_factory=list)
    gone_hosts: list[str] = field(default_factory=list)
    new_findings: list[dict] = field(default_factory=list)
    fixed_findings: list[dict] = field(default_factory=list)
    changed_findings: list[dict] = field(default_factory=list)
    not_checked_findings: list[dict] = field(default_factory=list)  # item["why"]: check-not-run | port-not-scanned | no-verdict
    not_scanned_hosts: list[str] = field(default_factory=list)  # outside the newer scan's targets
    identity_changes: list[dict] = field(default_factory=list)  # {address, field, before, after}
    warnings: list[dict] = field(default_factory=list)  # {code: targets|checks|ports|options-unknown, old, new}
    scans: dict[str, Any] = field(default_factory=dict)  # {"old": {...}, "new": {...}}: targets, checks, ports

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def empty(self) -> bool:
        return not (self.new_hosts or self.gone_hosts or self.new_findings or self.fixed_findings or self.changed_findings
                    or self.not_checked_findings or self.identity_changes or self.not_scanned_hosts)


# -- what a scan ran --------------------------------------------------------------------------------

def check_ids(options: dict) -> list[str] | None:
    """The check ids a scan ran, from its recorded --checks (None: not recorded, or not a check scan)."""
    if options.get("kind") == "rules":
        return ["firewall-exposure"]
    spec = options.get("checks")
    if not isinstance(spec, str):
        return None
    from ..checks.registry import select

    try:
        return sorted(c.id for c in select(spec))
    except ValueError:
        return None


def smb_ports(options: dict) -> list[int] | None:
    spec = options.get("ports")
    if spec is None:
        return None
    try:
        ports = [int(p) for p in str(spec).replace(" ", "").split(",") if p]
    except ValueError:
        return None
    service = _service_ports()
    return sorted({p for p in ports if p not in service})


def _span(target: str) -> tuple[int, int, int] | None:
    """(version, first, last) of an address, a CIDR block or a range (10.0.0.1-50, a-b); None otherwise."""
    t = target.strip()
    try:
        net = ipaddress.ip_network(t, strict=False)
        return net.version, int(net.network_address), int(net.broadcast_address)
    except ValueError:
        pass
    lo, sep, hi = t.partition("-")
    if not sep:
        return None
    try:
        first = ipaddress.ip_address(lo)
        last = ipaddress.ip_address(hi) if ("." in hi or ":" in hi) else ipaddress.ip_address(lo.rsplit(".", 1)[0] + "." + hi)
    except ValueError:
        return None
    return (first.version, int(first), int(last)) if first.version == last.version else None


def target_spans(targets: list[str]) -> list[tuple[int, int, int]] | None:
    """Every target as an address span, or None when one is a name or a file (membership cannot be decided)."""
    spans = [_span(t) for t in targets]
    return None if any(s is None for s in spans) or not spans else spans


def covers(spans: list[tuple[int, int, int]], address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(v == ip.version and lo <= int(ip) <= hi for v, lo, hi in spans)


def describe(scan: dict) -> dict:
    opts = scan.get("options") or {}
    return {"targets": list(scan.get("targets") or []), "checks": opts.get("checks") if isinstance(opts.get("checks"), str)
            else ("rules" if opts.get("kind") == "rules" else None), "check_ids": check_ids(opts), "ports": smb_ports(opts)}


def warnings(old: dict, new: dict, old_id: int, new_id: int) -> list[dict]:
    out = []
    if sorted(old["targets"]) != sorted(new["targets"]):
        out.append({"code": "targets", "old": " ".join(old["targets"]), "new": " ".join(new["targets"])})
    for sid, d in ((old_id, old), (new_id, new)):
        if d["check_ids"] is None:
            out.append({"code": "options-unknown", "scan": sid, "what": "checks"})
    if old["check_ids"] is not None and new["check_ids"] is not None and old["check_ids"] != new["check_ids"]:
        out.append({"code": "checks", "old": old["checks"], "new": new["checks"]})
    if old["ports"] is not None and new["ports"] is not None and old["ports"] != new["ports"]:
        out.append({"code": "ports", "old": ",".join(map(str, old["ports"])), "new": ",".join(map(str, new["ports"]))})
    return out


# -- identity ---------------------------------------------------------------------------------------

def identity(h: dict) -> dict[str, str | None]:
    ident, s1, s2 = h.get("identity") or {}, h.get("smb1") or {}, h.get("smb2") or {}
    smb1 = None if h.get("smb1") is None else ("on" if s1.get("enabled") else "off")
    return {"name": ident.get("netbios_name") or ident.get("dns_name") or h.get("hostname"),
            "os": ident.get("os_name") or s1.get("native_os"),
            "dialects": " ".join(s2.get("dialects") or []) or None,
            "signing": s2.get("signing") or s1.get("signing"), "smb1": smb1}


def identity_changes(old: dict[str, dict], new: dict[str, dict], order) -> list[dict]:
    out = []
    for address in sorted(set(old) & set(new), key=order):
        a, b = identity(old[address]), identity(new[address])
        for key in a:
            if a[key] != b[key] and (a[key] is not None and b[key] is not None or key in ("name", "os")):
                out.append({"address": address, "field": key, "before": a[key], "after": b[key]})
    return out


# -- findings ---------------------------------------------------------------------------------------

def not_checked_why(key: tuple, new: dict) -> str:
    """Why the newer scan has no verdict for this finding key (address, id, port)."""
    if new["check_ids"] is not None and key[1] not in new["check_ids"]:
        return "check-not-run"
    port = key[2]
    if new["ports"] is not None and port is not None and port not in _service_ports() and port not in new["ports"]:
        return "port-not-scanned"
    return "no-verdict"


def classify(d: Diff, old_f: dict, new_f: dict, new_hosts: set[str], new_meta: dict, order) -> None:
    """Sort the finding keys of both scans into new, fixed, changed and not checked."""
    def item(key, before, after, **extra):
        ref = after or before
        return {"address": key[0], "id": key[1], "port": key[2], "severity": ref[1], "title": ref[2],
                "old_status": before[0] if before else None, "new_status": after[0] if after else None, **extra}

    for key in sorted(set(old_f) | set(new_f), key=lambda k: (order(k[0]), k[1], k[2] or 0)):
        before, after = old_f.get(key), new_f.get(key)
        b, a = before[0] if before else None, after[0] if after else None
        if a in BAD and b not in BAD:
            d.new_findings.append(item(key, before, after))
        elif b in BAD and a == "not_vulnerable":
            d.fixed_findings.append(item(key, before, after))
        elif b in BAD and a is None and key[0] in new_hosts:
            d.not_checked_findings.append(item(key, before, after, why=not_checked_why(key, new_meta)))
        elif a is not None and b is not None and a != b:
            d.changed_findings.append(item(key, before, after))
