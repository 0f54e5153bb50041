"""Input records -> one view per host.

The planner accepts what the other commands write, in any mix:
* scan host results (contract.md "Host result": address, identity, smb1,
  findings with scanner statuses vulnerable / likely / not_vulnerable /
  unknown, share lists in findings' details);
* audit results ("Audit result": host, address, facts, verdicts with
  patched / missing / not_applicable / unknown);
* merged results (scan results whose findings carry details.audit).
Records that describe the same machine (same address, or an audit host name
equal to the scan's NetBIOS / DNS name) are combined.  A remote answer
decides over an inventory for the same finding (merge.py's rule 1).

Names and other strings in these records may come from the network and are
attacker-controlled: they are kept as data here and sanitised only where
they are written (see scripts.safe_label and writer.md_text).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..audit.evaluate import resolve_product
from ..audit.facts import HostFacts
from ..audit.join import match
from ..kb import query
from ..kb.model import Product
from ..kb.store import kb
from ..model import cap
from ..protocol.transport import SMB_PORTS

SCAN_NEED = {"vulnerable": True, "likely": True, "not_vulnerable": False}
AUDIT_NEED = {"missing": True, "patched": False, "not_applicable": False}
DATA_ROLES = {"file-server", "fileserver", "file server", "data", "database", "domain-controller", "dc", "backup", "nas"}


@dataclass
class HostView:
    key: str
    address: str | None = None
    names: list[str] = field(default_factory=list)
    scan: dict[str, dict] = field(default_factory=dict)  # finding id -> finding
    audit: dict[str, dict] = field(default_factory=dict)  # finding id -> verdict
    facts: dict[str, Any] = field(default_factory=dict)
    smb1_enabled: bool | None = None
    os_text: str | None = None
    os_label: str | None = None  # the scan's os_name: one product, or the range the build may be ("Windows 10 2004-22H2 / Server 2004-20H2")
    os_build: int | None = None
    candidates: list[str] = field(default_factory=list)
    implementation: str | None = None
    samba_version: str | None = None
    shares: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    holds_data_flag: bool | None = None
    sources: list[str] = field(default_factory=list)
    arch_hint: str | None = None  # from the wire: DoublePulsar's reply says x86 or x64
    smb_closed: bool | None = None  # the scan saw no SMB port open (the host answered on other services)
    shares_visible: bool = False  # a share listing succeeded (NetShareEnum, the collector, the input's "shares")
    role: str | None = None  # domain-controller | file-server | unknown (scan/role.py), None: not assessed
    role_evidence: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the scan's per-host errors (why a host could not be tested)
    scanned: bool = False  # a scan result describes this host
    smb1_clients: list[dict] = field(default_factory=list)  # who spoke SMB1 to this host in recorded traffic (detect --store)
    smb1_coverage: list[dict] = field(default_factory=list)  # the captures recorded at all: {"captures": [...], "span": [a, b]}
    # resolved
    product: Product | None = None
    product_note: str | None = None
    arch: str | None = None

    @property
    def name(self) -> str | None:
        return self.names[0] if self.names else None

    def status(self, finding_id: str) -> tuple[str | None, str | None]:
        s, a = self.scan.get(finding_id), self.audit.get(finding_id)
        return (s or {}).get("status"), (a or {}).get("status")

    def need(self, finding_id: str) -> bool | None:
        """True: needs a remedy; False: fine; None: not known."""
        scan, audit = self.status(finding_id)
        if scan == "vulnerable":
            return True
        if scan == "not_vulnerable":
            return False
        if scan == "likely":
            return audit not in ("patched", "not_applicable")
        return AUDIT_NEED.get(audit)

    def evidence(self, finding_id: str) -> str:
        f = self.scan.get(finding_id) or self.audit.get(finding_id) or {}
        return str(f.get("evidence") or f.get("reason") or "")

    @property
    def installed(self) -> frozenset[str]:
        return frozenset(self.facts.get("installed_kbs") or ())

    @property
    def implanted(self) -> bool:
        """DoublePulsar answered on the wire (an audit's 'doublepulsar missing' only means the patch is missing)."""
        return (self.scan.get("doublepulsar") or {}).get("status") == "vulnerable"

    @property
    def wannacry(self) -> list[str]:
        return [str(x) for x in self.facts.get("wannacry_indicators") or ()]

    @property
    def data_shares(self) -> list[str]:
        """Shares people keep data in: everything but the hidden / administrative ones (IPC$, ADMIN$, C$, print$)."""
        return [s for s in dict.fromkeys(self.shares) if s and not s.endswith("$")]

    @property
    def is_dc(self) -> bool:
        return self.role == "domain-controller" or bool(self.facts.get("domain_controller")) or \
            bool({"domain-controller", "dc"} & set(self.roles))

    @property
    def holds_data(self) -> bool:
        if self.holds_data_flag is not None:
            return self.holds_data_flag
        return bool(self.data_shares) or self.is_dc or bool(set(self.roles) & DATA_ROLES)

    @property
    def proven_no_data(self) -> bool:
        """Shares were listed, none holds data, and nothing says it is a DC or a data host.
        "Could not see" (no listing) is never "has none"."""
        return self.shares_visible and not self.holds_data

    @property
    def untested(self) -> bool:
        """SMB answered the scan but nothing about the host could be learned (silent, garbage, resets)."""
        if not self.scanned or self.smb_closed or self.product is not None:
            return False
        vulns = kb().vulns
        decided = [fid for fid, f in self.scan.items() if f.get("status") in ("vulnerable", "likely", "not_vulnerable")
                   and fid in vulns and (set(vulns[fid].ports) & set(SMB_PORTS)
                                         or vulns[fid].kind == "configuration" and not vulns[fid].udp_ports)]
        return not decided and self.os_text is None and not self.candidates and self.implementation is None

    def conflicts(self) -> list[tuple[str, str, str]]:
        """(finding id, scan status, audit status) where the wire and the inventory disagree:
        a proven answer on one side, the opposite verdict on the other."""
        out = []
        for fid, f in self.scan.items():
            scan, audit = f.get("status"), (self.audit.get(fid) or {}).get("status")
            if (scan == "vulnerable" and audit in ("patched", "not_applicable")) or \
                    (scan == "not_vulnerable" and not f.get("inferred") and audit == "missing"):
                out.append((fid, scan, audit))
        return out

    def unknowns(self) -> list[tuple[str, str]]:
        """(finding id, reason) of the scan's `unknown` findings that no audit verdict settles."""
        out = []
        for fid, f in self.scan.items():
            if f.get("status") != "unknown":
                continue
            if (self.audit.get(fid) or {}).get("status") in ("patched", "missing", "not_applicable"):
                continue
            out.append((fid, str(f.get("reason") or f.get("evidence") or "")))
        return out


def _valid_ip(text: Any) -> str | None:
    return _parse_ip(text.strip()) if isinstance(text, str) else None


@lru_cache(maxsize=1 << 16)
def _parse_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _kind(rec: dict) -> str:
    if rec.get("kind") == "smb1-usage":
        return "usage"
    if "verdicts" in rec or ("facts" in rec and "findings" not in rec):
        return "audit"
    if "findings" in rec or "identity" in rec or "ports" in rec:
        return "scan"
    raise ValueError("neither a scan result (address, findings) nor an audit result (host, facts, verdicts)")


def _names(rec: dict) -> list[str]:
    ident = rec.get("identity") or {}
    out = [rec.get("host"), ident.get("netbios_name"), ident.get("dns_name"), rec.get("hostname")]
    return [cap(str(n).strip(), 128) for n in out if n and str(n).strip()]


def _absorb(view: HostView, rec: dict) -> None:
    kind = _kind(rec)
    for n in _names(rec):
        if n.upper() not in (x.upper() for x in view.names):
            view.names.append(n)
    addr = _valid_ip(rec.get("address")) if rec.get("address") else None
    view.address = view.address or addr
    if rec.get("source"):
        view.sources.append(str(rec["source"]))
    for key in ("role", "roles", "tags"):
        val = rec.get(key)
        for r in ([val] if isinstance(val, str) else val or []):
            view.roles.append(str(r).strip().lower())
    if isinstance(rec.get("holds_data"), bool):
        view.holds_data_flag = rec["holds_data"]
    if isinstance(rec.get("shares"), list):
        view.shares += [str(s) for s in rec["shares"] if isinstance(s, str)]
        view.shares_visible = True
    facts = rec.get("facts") or {}
    if kind == "audit":
        for k, v in facts.items():
            if v is not None and view.facts.get(k) is None:
                view.facts[k] = v
        if isinstance(facts.get("shares"), list):
            view.shares += [str(s.get("name") if isinstance(s, dict) else s) for s in facts["shares"]]
            view.shares_visible = True
        for v in rec.get("verdicts") or ():
            if isinstance(v, dict) and v.get("id"):
                view.audit[v["id"]] = v
        return
    view.scanned = True
    view.errors += [cap(str(e), 200) for e in (rec.get("errors") or [])[:20]]
    role = rec.get("role")
    if isinstance(role, dict) and isinstance(role.get("value"), str):
        if view.role in (None, "unknown"):
            view.role = cap(role["value"], 40)
            view.role_evidence = [cap(str(e), 300) for e in (role.get("evidence") or [])[:8]]
        view.shares_visible = view.shares_visible or role.get("shares_visible") is True
        view.shares += [str(s) for s in role.get("data_shares") or () if isinstance(s, str)]
    ident = rec.get("identity") or {}
    ports = rec.get("ports")
    if isinstance(ports, dict) and rec.get("services"):
        smb_open = any(state == "open" for state in ports.values())
        view.smb_closed = (view.smb_closed is not False) and not smb_open  # one record seeing it open wins
    elif isinstance(ports, dict) and any(state == "open" for state in ports.values()):
        view.smb_closed = False
    smb1 = rec.get("smb1") or {}
    if smb1.get("enabled") is not None:
        view.smb1_enabled = bool(smb1["enabled"])
    view.os_text = view.os_text or smb1.get("native_os") or None
    view.os_label = view.os_label or (cap(str(ident["os_name"]), 120) if ident.get("os_name") else None)
    if ident.get("os_name") and not view.candidates:
        view.candidates = [str(c) for c in ident.get("os_candidates") or () if c]
        if not view.candidates and not ident.get("os_build_shared"):
            view.candidates = [str(ident["os_name"])]
    view.os_build = view.os_build or ident.get("os_build") or None
    view.implementation = view.implementation or ident.get("implementation")
    view.samba_version = view.samba_version or ident.get("samba_version")
    for f in rec.get("findings") or ():
        if not isinstance(f, dict) or not f.get("id"):
            continue
        fid = f["id"]
        prev = view.scan.get(fid)
        # one finding per port (smbv1-enabled): the worst status wins
        order = {"vulnerable": 0, "likely": 1, "unknown": 2, "not_vulnerable": 3}
        if prev is None or order.get(f.get("status"), 9) < order.get(prev.get("status"), 9):
            view.scan[fid] = f
        details = f.get("details") or {}
        if isinstance(details.get("shares"), list):
            view.shares += [str(s) for s in details["shares"] if isinstance(s, str)]
            view.shares_visible = True
        if fid == "doublepulsar" and details.get("architecture") in ("x86", "x64"):
            view.arch_hint = details["architecture"]
        audit = details.get("audit")
        if isinstance(audit, dict) and audit.get("status") and fid not in view.audit:
            view.audit[fid] = {"id": fid, **audit}


def _resolve(view: HostView) -> None:
    """The knowledge-base product and architecture of a host, from the best evidence available."""
    f = view.facts
    view.arch = f.get("architecture") or view.arch_hint
    if f.get("product"):
        try:
            view.product = query.product(f["product"])
            return
        except ValueError:
            pass
    if f.get("os_name") or f.get("samba_version"):
        facts = HostFacts.from_dict({k: v for k, v in f.items() if k != "product"})
        product, _why, assumed = resolve_product(facts)
        if product is not None:
            view.product, view.arch = product, facts.architecture or view.arch
            view.product_note = assumed
            return
    if view.implementation == "samba" or (view.os_text and "samba" in view.os_text.lower()):
        view.product = query.product("samba")
        return
    if view.os_text:
        try:
            m = query.product_from_os_string(view.os_text, None, None, view.os_build if (view.os_build or 0) > 0 else None)
            view.product, view.arch = m.product, view.arch or m.architecture
            return
        except ValueError:
            pass
    products = []
    for name in view.candidates:
        p = kb().names.get(name)
        if p is None:
            try:
                p = query.product_from_os_string(name, None, None, view.os_build if (view.os_build or 0) > 0 else None).product
            except ValueError:
                p = None
        if p is not None:
            products.append(p)
    if products and len({p.family for p in products}) == 1:
        # releases of one line on one base build (19041: Windows 10 2004 to 22H2) take the
        # updates of the latest, which the host most likely runs; the note names the range
        line = products[0].name.rpartition(" ")[0]
        view.product = [p for p in products if p.name.rpartition(" ")[0] == line][-1]
        if len(products) > 1:
            view.product_note = view.os_label if view.os_label and " / " in view.os_label else " / ".join(p.name for p in products)


def collect_hosts(records: list[dict]) -> list[HostView]:
    """One HostView per machine, in first-seen order; ValueError names the first bad record.

    Scan records of one address are one machine; an inventory joins the scanned
    host that audit/join.py names (address, DNS name, NetBIOS name with its
    domain, a bare name only when unique), never a host that merely shares a
    name; inventories that join no scanned host are grouped by address or name."""
    kinds = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"record {i + 1}: not a JSON object")
        try:
            kinds.append(_kind(rec))
        except ValueError as exc:
            raise ValueError(f"record {i + 1}: {exc}") from None
        if kinds[-1] == "scan" and not _valid_ip(rec.get("address")) and not rec.get("address"):
            raise ValueError(f"record {i + 1}: scan result without an address")
    views: list[HostView] = []
    first: list[dict] = []  # the first scan record of each scanned view, for the join
    by_addr: dict[str, HostView] = {}
    for i, rec in enumerate(records):
        if kinds[i] != "scan":
            continue
        addr = _valid_ip(rec.get("address")) or str(rec.get("address"))
        view = by_addr.get(addr)
        if view is None:
            view = by_addr[addr] = HostView(key=addr)
            views.append(view)
            first.append(rec)
        _absorb(view, rec)
    audits = [(i, rec) for i, rec in enumerate(records) if kinds[i] == "audit"]
    joined = match(first, [rec for _, rec in audits])
    by_name: dict[str, HostView] = {}
    for j, (i, rec) in enumerate(audits):
        if j in joined:
            view = views[joined[j]]
        else:
            addr = _valid_ip(rec.get("address")) if rec.get("address") else None
            names = [n.upper() for n in _names(rec)]
            view = (by_addr.get(addr) if addr else None) or next((by_name[n] for n in names if n in by_name), None)
            if view is None:
                view = HostView(key=addr or (names[0].lower() if names else f"record-{i + 1}"))
                views.append(view)
            if addr:
                by_addr.setdefault(addr, view)
            for n in names:
                by_name.setdefault(n, view)
        _absorb(view, rec)
    _attach_usage([rec for i, rec in enumerate(records) if kinds[i] == "usage"], by_addr, views)
    for v in views:
        _resolve(v)
    return views


def _attach_usage(records: list[dict], by_addr: dict[str, HostView], views: list[HostView]) -> None:
    """SMB1 traffic records join the host of the same address; the captures they cover go to every host."""
    coverage = []
    for rec in records:
        usage = rec.get("smb1_usage") if isinstance(rec.get("smb1_usage"), dict) else {}
        cov = {"captures": [cap(str(c), 120) for c in (usage.get("captures") or [])[:20]],
               "span": [cap(str(x), 40) if x else None for x in (usage.get("span") or [None, None])[:2]]}
        if cov not in coverage:
            coverage.append(cov)
        view = by_addr.get(_valid_ip(rec.get("address")) or "")
        if view is not None:
            view.smb1_clients += [c for c in usage.get("clients") or [] if isinstance(c, dict)][:500]
    for v in views:
        v.smb1_coverage = coverage
