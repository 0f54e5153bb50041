"""Host facts -> one verdict per finding id, with the evidence that decided it.

The rule (knowledge.md): an update fix is proven by (a) an installed KB
that is, supersedes, or by a documented rule carries a fixing KB, else (b)
an OS build revision at or above the fixed build, where the build revision
rises with every update (Windows 10 / Server 2016 and later only: on 8.1 /
2012 R2 and older, security-only updates leave the UBR alone), else (c) the
fixed file version (srv.sys).  Evidence names which one decided.  Without
any of them an update list that contains updates newer than the knowledge
base knows for the product is `unknown`, never `missing`: hard-coded KB
lists that call later cumulative updates "missing" are the classic false
positive of patch audits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from ..kb import findings, query
from ..kb.model import Product, Vulnerability, version_tuple
from ..kb.store import kb
from .facts import HostFacts
from .result import Verdict

SOFTWARE_NAMES = {"mdaemon-worldclient": ("mdaemon", "worldclient"), "ibm-lotus-notes": ("lotus notes", "ibm notes"),
                  "ibm-lotus-domino": ("domino",), "microsoft-exchange": ("exchange",)}
EXCHANGE_YEARS = {6: 2003, 8: 2007, 14: 2010, 15: 2013}


@dataclass
class _Host:
    facts: HostFacts
    product: Product | None
    why_unknown: str | None
    assumed: str | None
    installed: frozenset[str] | None
    as_of: date
    decisions: dict[str, tuple[str, str, list | None]] = field(default_factory=dict)
    _newer: list[str] | None = None

    def newer_unknown(self) -> list[str]:
        """Installed updates the knowledge base does not know and that are newer than everything in its catalog."""
        if self._newer is None:
            known, top = kb().fixes, _newest_known(self.product.id)
            self._newer = sorted((k for k in self.installed or () if k not in known and int(k[2:]) > top), key=lambda k: int(k[2:]))
        return self._newer


def resolve_product(facts: HostFacts) -> tuple[Product | None, str | None, str | None]:
    """(the knowledge-base product of a host or None, why it is None, what had to be assumed)."""
    if facts.os_name is None:
        if facts.samba_version:
            return query.product("samba"), None, None
        return None, "the inventory has no OS name (combine it with systeminfo or a host,os,build,kbs CSV for this host)", None
    try:
        match = query.product_from_os_string(facts.os_name, facts.service_pack, facts.architecture, facts.build)
    except ValueError as exc:
        return None, f"OS not recognised: {exc}", None
    # Facts the OS string stated ("Windows 7 Professional SP1 x64" in a CSV) fill what other lines did not.
    facts.edition = facts.edition or match.edition
    facts.architecture = facts.architecture or match.architecture
    if facts.service_pack is None and match.product.service_pack is not None and not match.assumed:
        facts.service_pack = match.product.service_pack
    return match.product, None, "; ".join(match.assumed) or None


@lru_cache(maxsize=None)
def _newest_known(product_id: str) -> int:
    """The highest update number the catalog knows (KB numbers rise with time); without a catalog, the product's highest."""
    cat = kb().catalog
    if cat is not None:
        return max(cat.newest_kb, max(f.number for f in kb().fixes.values()))
    return max((f.number for f in kb().fixes.values() if product_id in f.products), default=0)


def _fix_list(v: Vulnerability, h: _Host) -> list[dict]:
    p = h.product
    options = query.fixes_for(v.id, p, h.facts.architecture, h.installed or frozenset()) if p else []
    if options:
        return [o.to_dict() for o in options]
    acts = query.actions_for(v.id, p) if p else query.actions_for(v.id)
    return [{"action": a.id, "kind": a.kind, "text": a.text_en} for a in acts]


def _missing_text(v: Vulnerability, h: _Host, base: str) -> str:
    p = h.product
    options = query.fixes_for(v.id, p, h.facts.architecture) if p else []
    if options and options[0].product.id != p.id:
        sps = " then ".join(f"{pre.kb}" for pre in options[0].prerequisites if pre.kind == "service-pack")
        kbs = " or ".join(o.fix.kb for o in options)
        return (f"{base}; {p.name} has no update for {v.bulletin} (\"update not applicable\"): install "
                f"{options[0].product.name.replace(p.line, '').strip() or 'the service pack'} ({sps}) first, then {kbs}")
    return base


def _patch_decision(v: Vulnerability, h: _Host) -> tuple[str, str, list | None]:
    """patched / missing / unknown for an update-fixed vulnerability on an affected product (cached per bulletin)."""
    b, p, facts = v.bulletin, h.product, h.facts
    if b in h.decisions:
        return h.decisions[b]
    covers = query.covering_updates(b, p.id)
    if h.installed:
        hits = [covers[k] for k in h.installed & covers.keys()]
        if hits:
            best = min(hits, key=lambda c: (c.rank, c.kb))
            return h.decisions.setdefault(b, ("patched", best.evidence, None))
    fb = query.fixed_build(b, p)
    note = ""
    if fb and facts.ubr is not None:
        build, ubr, fixing = fb
        if p.ubr_is_proof:
            if facts.ubr >= ubr:
                return h.decisions.setdefault(b, ("patched", f"OS build {build}.{facts.ubr} is at or above {build}.{ubr} ({fixing})", None))
            return h.decisions.setdefault(b, ("missing", f"OS build {build}.{facts.ubr} is below {build}.{ubr} ({fixing})", _fix_list(v, h)))
    elif facts.ubr is not None and not p.ubr_is_proof:
        note = f"; the build revision ({facts.ubr}) is not proof on {p.name}: security-only updates do not raise it"
    name = v.fixed_file or "srv.sys"
    version = (facts.file_versions or {}).get(name)
    if version:
        got = query.file_verdict(b, p, name, version)
        if got:
            fixed, threshold = got
            status = "patched" if fixed else "missing"
            text = f"{name} {version} is {'at or above' if fixed else 'below'} {threshold}"
            return h.decisions.setdefault(b, (status, text, None if fixed else _fix_list(v, h)))
    if not query.fixes_for(v.id, p):
        return h.decisions.setdefault(b, ("missing", f"no {b} update exists for {p.name}: upgrade the system, or apply the workarounds{note}", _fix_list(v, h)))
    if h.installed is None:
        return h.decisions.setdefault(b, ("unknown", f"the inventory lists no installed updates, no build revision and no {name} version{note}", None))
    capped = _capped(h, b, name)
    if capped:
        return h.decisions.setdefault(b, ("unknown", capped + note, None))
    newer = h.newer_unknown()
    if newer:
        shown = ", ".join(newer[-3:])
        cat = kb().catalog
        where = f"the update catalog ({cat.date})" if cat else f"the knowledge base's data for {p.name}"
        return h.decisions.setdefault(b, ("unknown", (
            f"no known {b} update among {len(h.installed)} installed updates, but {shown} "
            f"{'is' if len(newer) == 1 else 'are'} newer than {where} and may carry it: "
            f"load a newer catalog (smbsentry kb update) or check the {name} version or the build revision{note}"), None))
    early = _predates_rollups(h, b)
    if early:
        return h.decisions.setdefault(b, ("unknown", early + note, None))
    base = f"none of the {len(h.installed)} installed updates fixes {b} on {p.name}{_newest_text(h, b)}{note}"
    return h.decisions.setdefault(b, ("missing", _missing_text(v, h, base), _fix_list(v, h)))


def _capped(h: _Host, bulletin: str, file_name: str) -> str | None:
    """Why the verdict stays open when systeminfo listed only part of the updates."""
    declared = h.facts.hotfixes_declared
    if declared is None or h.installed is None or declared <= len(h.installed):
        return None
    return (f"the inventory lists {len(h.installed)} of {declared}{'' if 'computerinfo' not in ' '.join(h.facts.sources) else ' or more'} installed "
            f"hotfixes (systeminfo, like PowerShell's console list, cuts a long list): none of the listed fixes {bulletin}, "
            f"and the fix could be among the {declared - len(h.installed)} unlisted; export the whole list with `wmic qfe list full "
            f"/format:csv`, `Get-HotFix | Export-Csv` or `smbsentry collector` and audit it with this file, or check the {file_name} version")


def _newest_installed(h: _Host):
    """The newest installed update of the product's rollup / cumulative chain, or None."""
    chain = query.chain_of(h.product.id)
    return next((f for f in reversed(chain) if f.kb in h.installed), None)


def _newest_text(h: _Host, bulletin: str) -> str:
    newest, fixing = _newest_installed(h), query.first_fix(bulletin, h.product.id)
    if newest is None or fixing is None:
        return ""
    pid = h.product.id
    latest = query.chain_of(pid)[-1]
    return (f"; the newest installed, {newest.kb} ({newest.label(pid)}), predates the fix {fixing.kb} ({fixing.released_on(pid)}): "
            f"install {fixing.kb} or any later {'cumulative update' if latest.kind == 'cumulative' else 'monthly rollup'}, "
            f"the newest in the catalog being {latest.kb} ({latest.label(pid)})")


def _predates_rollups(h: _Host, bulletin: str) -> str | None:
    """unknown when the fix came before the product's rollups and the host has rollups: the data does not say they carry it."""
    pid = h.product.id
    chain, fixing, newest = query.chain_of(pid), query.first_fix(bulletin, pid), _newest_installed(h)
    if not chain or fixing is None or newest is None or fixing.released_on(pid) >= chain[0].released_on(pid):
        return None
    return (f"{fixing.kb} ({fixing.released_on(pid)}) is not installed and Microsoft's supersedence data does not say whether the "
            f"{'cumulative updates' if newest.kind == 'cumulative' else 'monthly rollups'} of {h.product.name} (from {chain[0].released_on(pid):%Y-%m}) "
            f"carry it; the newest installed is {newest.kb} ({newest.label(pid)}): check the fixed file's version")


def _affected(v: Vulnerability, p: Product, arch: str | None):
    return next((a for a in v.affected if p.id in a.products and (a.architectures is None or arch is None or arch in a.architectures)), None)


def _not_affected(v: Vulnerability, h: _Host) -> Verdict:
    p = h.product
    if p.id in v.unassessed:
        return Verdict(v.id, "unknown", f"{p.name} left support on {p.end_of_support} before {v.bulletin or v.id} ({v.released}) and was not assessed for it")
    what = query.affected_summary(v)
    arch = f" {h.facts.architecture}" if any(p.id in a.products for a in v.affected) else ""
    return Verdict(v.id, "not_applicable", f"{p.name}{arch} is not affected by {v.module or v.bulletin or v.id} (affected: {what})")


def _smb_off(f: HostFacts) -> str | None:
    if f.smb_device_enabled is False:
        return "SMBDeviceEnabled=0"
    if f.server_service in ("stopped", "disabled"):
        return f"Server service {f.server_service}"
    if f.firewall_blocks_smb:
        return "host firewall blocks inbound SMB"
    if f.listening is not None and f.listening.get("445") is False and f.listening.get("139") is not True:
        return "nothing listens on 445"
    return None


def _wannacry(f: HostFacts) -> str:
    return f"; WannaCry indicators present: {', '.join(f.wannacry_indicators)} (host compromised)" if f.wannacry_indicators else ""


def _update_vuln(v: Vulnerability, h: _Host) -> Verdict:
    p = h.product
    a = _affected(v, p, h.facts.architecture)
    if a is None:
        return _not_affected(v, h)
    role_note = ""
    if a.role == "domain-controller":
        if h.facts.domain_controller is False:
            return Verdict(v.id, "not_applicable", f"not a domain controller: {v.module or v.bulletin} is exploitable on domain controllers only")
        if h.facts.domain_controller is None:
            role_note = " (domain-controller role not in the inventory: only domain controllers are exploitable)"
    status, evidence, fix = _patch_decision(v, h)
    if v.kind == "implant":
        evidence = f"the implant is delivered through {v.bulletin}: {evidence}"
        if status == "patched":
            evidence += "; an implant planted before the update stays: only a remote probe shows it"
    if v.id in ("ms17-010", "eternalblue", "doublepulsar"):
        evidence += _wannacry(h.facts)
    return Verdict(v.id, status, evidence + role_note, fix)


def _no_patch_module(v: Vulnerability, h: _Host) -> Verdict:
    f, p = h.facts, h.product
    if not v.affected:
        off = _smb_off(f)
        if off:
            return Verdict(v.id, "patched", f"no update exists; the workaround is in place: {off}")
        return Verdict(v.id, "unknown", f"{v.module}'s affected Windows versions were never published ({v.affected_text}); SMB is not shown to be off")
    if _affected(v, p, f.architecture) is None:
        return _not_affected(v, h)
    if "3389" in map(str, v.ports):
        off = "Remote Desktop disabled" if f.rdp_enabled is False else ("nothing listens on 3389" if (f.listening or {}).get("3389") is False else None)
    elif v.id == "explodingcan":
        if f.iis_webdav is None:
            return Verdict(v.id, "unknown", f"{p.name} is affected if IIS 6.0 serves WebDAV; the inventory does not say whether it does")
        off = "IIS 6.0 WebDAV not enabled" if f.iis_webdav is False else None
    else:
        off = _smb_off(f)
    if off:
        return Verdict(v.id, "patched", f"no update exists for {p.name}; the workaround is in place: {off}")
    return Verdict(v.id, "missing", f"no update exists for {p.name} ({v.fix_text})", _fix_list(v, h))


def _older(version: str, fixed: str) -> bool:
    have, want = version_tuple(version), version_tuple(fixed)
    if want and want[0] >= 1990 and have and have[0] < 100:  # Exchange: 8.3 means 2007
        have = (EXCHANGE_YEARS.get(have[0], have[0]),)
    return have < want


def _application_module(v: Vulnerability, h: _Host) -> Verdict:
    f, a = h.facts, v.affected[0]
    pid = next(iter(a.products))
    name = query.product(pid).name
    if a.platforms and h.product and h.product.family not in a.platforms:
        return Verdict(v.id, "not_applicable", f"{v.module} targets {name} on {v.affected_text.split(' on ')[-1]}; this host runs {h.product.name}")
    if f.software is None:
        return Verdict(v.id, "unknown", f"the inventory lists no applications: {v.module} affects {v.affected_text}")
    found = [(n, ver) for n, ver in f.software.items() if any(w in n.lower() for w in SOFTWARE_NAMES[pid])]
    if not found:
        return Verdict(v.id, "not_applicable", f"{name} is not among the {len(f.software)} installed applications")
    n, ver = found[0]
    if a.fixed_version and ver and not _older(ver, a.fixed_version):
        return Verdict(v.id, "patched", f"{n} {ver} is at or above {a.fixed_version}")
    return Verdict(v.id, "missing", f"{n} {ver or '(version unknown)'}: {v.fix_text}", _fix_list(v, h))


RULES_ONLY = frozenset({"firewall-exposure"})  # findings of `smbsentry rules`, never of a host inventory
# findings read from the wire by `smbsentry scan` (relay paths, the 24H2 / 2025 baseline): an inventory
# holds none of the negotiate facts they compare, so the audit leaves them out unless asked
SCAN_ONLY = frozenset({"ntlm-relay", "smb-baseline", "baseline-signing", "baseline-smb1", "baseline-smb311-aes256",
                       "baseline-encryption", "baseline-guest", "smb-over-quic", "smb-over-quic-cert"})


def _configuration(v: Vulnerability, h: _Host) -> Verdict:
    f = h.facts
    fam = h.product.family if h.product else None
    if v.id == "smbv1-enabled":
        if f.smb1_server is True:
            return Verdict(v.id, "missing", "the SMB1 server is enabled per the inventory", _fix_list(v, h))
        if f.smb1_server is False:
            return Verdict(v.id, "patched", "the SMB1 server is disabled per the inventory")
        if fam == "windows-nt5" and _smb_off(f):
            return Verdict(v.id, "patched", f"SMB (SMB1 only on this system) is off: {_smb_off(f)}")
        return Verdict(v.id, "unknown", "the inventory does not say whether the SMB1 server is enabled")
    if v.id in RULES_ONLY:
        return Verdict(v.id, "unknown", "firewall exposure is judged by `smbsentry rules` on firewall exports, not from an inventory")
    if v.id in SCAN_ONLY:
        return Verdict(v.id, "unknown", "judged from the network by `smbsentry scan`, not from an inventory")
    flag, good, bad, ask = {
        "smb-signing-not-required": (f.smb_signing_required, "SMB signing is required", "SMB signing is not required", "whether SMB signing is required"),
        "smb-null-session": (f.restrict_null_sessions, "anonymous (null session) access is restricted", "anonymous (null session) access is allowed",
                             "whether anonymous (null session) access is restricted"),
        "smb-guest-access": (None if f.guest_enabled is None else not f.guest_enabled, "the Guest account is disabled", "the Guest account is enabled",
                             "whether the Guest account is enabled"),
    }[v.id]
    if flag is None:
        return Verdict(v.id, "unknown", f"the inventory does not say {ask}")
    return Verdict(v.id, "patched", good + " per the inventory") if flag else Verdict(v.id, "missing", bad + " per the inventory", _fix_list(v, h))


def _eol(v: Vulnerability, h: _Host) -> Verdict:
    p = h.product
    if p.end_of_support is None:
        return Verdict(v.id, "not_applicable", f"no end-of-support date for {p.name}")
    note = f" (the date of its {p.lifecycle_note} edition; other editions ended earlier)" if p.lifecycle_note else ""
    if p.end_of_support < h.as_of:
        return Verdict(v.id, "missing", f"{p.name}: extended support ended {p.end_of_support}{note}", _fix_list(v, h))
    return Verdict(v.id, "not_applicable", f"{p.name} is supported until {p.end_of_support}{note}")


def _samba(v: Vulnerability, h: _Host) -> Verdict:
    f = h.facts
    if f.samba_version:
        bad, rng = findings.samba_affected(v.id, f.samba_version)
        if bad:
            return Verdict(v.id, "missing", f"Samba {rng}", _fix_list(v, h))
        return Verdict(v.id, "patched", f"Samba {f.samba_version} is outside the affected ranges")
    if h.product and h.product.windows:
        return Verdict(v.id, "not_applicable", f"{h.product.name}: {v.id} affects Samba only")
    return Verdict(v.id, "unknown", "no Samba version in the inventory")


@lru_cache(maxsize=None)
def _is_application(vuln_id: str) -> bool:
    v = kb().vulns[vuln_id]
    return bool(v.affected) and all(not kb().products[x].windows for a in v.affected for x in a.products)


def _one(v: Vulnerability, h: _Host) -> Verdict:
    if v.kind == "configuration":
        return _configuration(v, h)
    if v.id == "cve-2017-7494":
        return _samba(v, h)
    if h.product is None:
        return Verdict(v.id, "unknown", h.why_unknown or "OS not known")
    if v.kind == "lifecycle":
        return _eol(v, h)
    if _is_application(v.id):
        return _application_module(v, h)
    if not h.product.windows:
        return Verdict(v.id, "not_applicable", f"{h.product.name} is not Windows")
    if v.bulletin:
        return _update_vuln(v, h)
    return _no_patch_module(v, h)


def evaluate(facts: HostFacts, *, as_of: date | None = None, ids=None) -> list[Verdict]:
    """Verdicts for every finding id of the knowledge base (or `ids`), in its order."""
    product, why, assumed = resolve_product(facts)
    facts.product = product.id if product else None
    installed = frozenset(facts.installed_kbs) if facts.installed_kbs is not None else None
    h = _Host(facts, product, why, assumed, installed, as_of or date.today())
    vulns = kb().vulns
    chosen = [i for i in vulns if i not in RULES_ONLY and i not in SCAN_ONLY] if ids is None else [i for i in ids]
    out = []
    for vid in chosen:
        if vid not in vulns:
            raise ValueError(f"unknown finding id {vid!r}")
        v = _one(vulns[vid], h)
        if assumed and v.status != "unknown" and vulns[vid].kind not in ("configuration",):
            v.evidence += f" ({assumed})"
        out.append(v)
    return out
