"""What the dashboard's pages show, built from the store and the scan's digest (digest.py), in one language.

    rows = action_rows(store, scan_id, digest.actions[:15], lang)   # the ranked list, ready for a template
    addrs = host_addresses(store, digest, scan_id, filters, state, "risk")
    summaries = host_summaries(store, digest, scan_id, addrs[:50], lang)
    csv_text(header, rows)                                         # a download, CSV injection guarded

Templates escape everything; evidence sentences arrive as Markup from
lang.sentence (remote strings inside escaped and marked; a sentence the
catalog cannot render in Chinese marked as English).
"""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

from markupsafe import Markup

from .. import i18n
from ..kb.findings import meta
from ..model import SEVERITIES, STATUSES
from ..report import charts
from ..remediate.actions import RANKS  # noqa: F401 - the pages' rank filter
from ..report.actions import action_rows as _report_rows
from .digest import Digest
from .lang import sentence

PAGE = 50
TOP_ACTIONS = 15
BAD = ("vulnerable", "likely")
STATUS_FILTERS = ("bad",) + STATUSES  # "bad": vulnerable or likely
STATES = ("isolate-now", "vulnerable", "likely", "hardening", "verify", "untested", "clean", "other-only")
HOST_SORTS = ("risk",)  # besides the store's SORTS
CSV_RISKY = ("=", "+", "-", "@", "\t", "\r")
OS_BARS = 8


# ---------------------------------------------------------------- CSV
def csv_cell(value) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ (or a tab / CR) gets a leading '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_RISKY) else text


def csv_text(header: list[str], rows) -> str:
    """UTF-8 with a BOM (spreadsheet programs then read Chinese right), CRLF, every cell guarded."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([csv_cell(h) for h in header])
    for r in rows:
        w.writerow([csv_cell(c) for c in r])
    return "\ufeff" + buf.getvalue()


# ---------------------------------------------------------------- names
def host_name(h: dict) -> str:
    ident = h.get("identity") or {}
    return ident.get("netbios_name") or ident.get("dns_name") or h.get("hostname") or ""


def host_os(h: dict) -> str:
    return (h.get("identity") or {}).get("os_name") or (h.get("smb1") or {}).get("native_os") or ""


def title(fid: str, fallback: str | None, lang: str) -> str:
    try:
        m = meta(fid)
    except KeyError:
        return fallback or fid
    return (m.get("title_zh") if lang == "zh" else None) or m.get("title") or fallback or fid


# ---------------------------------------------------------------- the ranked list
def action_rows(store, scan_id: int, rows: list, lang: str) -> list[dict]:
    """Rows of the ranked list as the report shows them (rank, isolate badge, why, next step as Markup)."""
    records = store.hosts_at(scan_id, [str(r.address) for r in rows if r.address])
    return _report_rows(SimpleNamespace(actions=rows), records, lang)


def action_csv_rows(store, scan_id: int, rows: list, lang: str, chunk: int = 500):
    """(rank, host, address, findings, severity, why, step, next) as plain text, a chunk of hosts at a time."""
    sev = i18n.labels("severity", lang)
    for i in range(0, len(rows), chunk):
        for r in action_rows(store, scan_id, rows[i:i + chunk], lang):
            yield [r["label"], r["host"] or "", r["address"] or "", " ".join(r["findings"]), sev.get(r["severity"], r["severity"]),
                   Markup(r["why"]).striptags(), r["step"], Markup(r["next"]).striptags()]


# ---------------------------------------------------------------- hosts
def host_addresses(store, digest: Digest, scan_id: int, filters: dict, state: str | None, sort: str) -> list[str]:
    """Every address matching the filters, in the asked order ("risk": the ranked list's order)."""
    addrs = store.host_addresses(scan_id, sort="address" if sort == "risk" else sort, **filters)
    if state:
        addrs = [a for a in addrs if in_state(digest, a, state)]
    if sort == "risk":
        addrs.sort(key=digest.risk_key)
    return addrs


def in_state(digest: Digest, address: str, state: str) -> bool:
    r = digest.risk_of(address)
    if state == "isolate-now":
        return r.isolate
    if state == "untested":
        return r.untested
    if state == "clean":
        return r.smb and not r.categories and not r.untested
    if state == "other-only":
        return not r.smb
    return state in r.categories


def summary(h: dict, digest: Digest, lang: str) -> dict:
    """One row of a host list."""
    risk = digest.risk_of(str(h["address"]))
    status, severity = i18n.labels("status", lang), i18n.labels("severity", lang)
    found: dict[str, dict] = {}
    for f in h.get("findings") or []:
        if f.get("status") in BAD and f.get("id") not in found:
            found[f["id"]] = {"id": f["id"], "status": f["status"], "severity": f.get("severity"),
                              "label": f"{status.get(f['status'], f['status'])}, {severity.get(f.get('severity'), f.get('severity'))}"}
    role = (h.get("role") or {}).get("value")
    return {"address": h["address"], "name": host_name(h), "os": host_os(h), "risk": risk, "state": risk.state,
            "role": i18n.label("role", role, lang) if role and role != "unknown" else "", "findings": list(found.values())}


def host_summaries(store, digest: Digest, scan_id: int, addresses: list[str], lang: str) -> list[dict]:
    return [summary(h, digest, lang) for h in store.hosts_at(scan_id, addresses)]


def state_label(state: str, lang: str) -> str:
    if state in ("isolate-now", "vulnerable", "likely", "hardening", "verify"):
        return i18n.label("rank", state, lang)
    return i18n.label("web", "state_" + state.replace("-", "_"), lang)


def host_csv_rows(store, digest: Digest, scan_id: int, addresses: list[str], lang: str, chunk: int = 500):
    """The CSV rows of these hosts, from the digest's briefs; hosts stored since it was made (a running
    scan) are read from the store."""
    yes = i18n.label("web", "yes", lang)
    for i in range(0, len(addresses), chunk):
        part = addresses[i:i + chunk]
        missing = [a for a in part if a not in digest.briefs]
        stored = {str(h["address"]): h for h in store.hosts_at(scan_id, missing)} if missing else {}
        for a in part:
            h = digest.briefs.get(a) or stored.get(a)
            if h is None:
                continue
            s = summary(h, digest, lang)
            yield [s["address"], s["name"], s["os"], s["role"], state_label(s["state"], lang),
                   yes if s["risk"].untested else "", " ".join(f["id"] for f in s["findings"])]


# ---------------------------------------------------------------- the overview
def chart_list(stats: dict, scan_id: int, lang: str, trend: list) -> list[tuple[str, Markup, str | None, bool]]:
    """(caption, SVG, link, whether the whole chart is the link) from the store's counts (no host is
    read): captions, bars and shares lead to the hosts they count."""
    from urllib.parse import quote

    ch, sev_label = i18n.labels("chart", lang), i18n.labels("severity", lang)
    base = f"/hosts?scan={scan_id}"
    sev = dict(stats["by_severity"])
    bars = [(sev_label.get(s, s), sev[s], charts.COLORS[s], f"{base}&status=bad&severity={s}") for s in SEVERITIES if sev.get(s)]
    unknown = i18n.label("report", "unknown_os", lang)
    oses = list(stats["by_os"])
    by_os = [(o or unknown, n, None, f"{base}&os={quote(o, safe='')}" if o else None) for o, n in oses[:OS_BARS]]
    if len(oses) > OS_BARS:
        by_os.append((ch["other"], sum(n for _, n in oses[OS_BARS:]), "#7a8394", None))
    smb = stats["smb_hosts"]
    out = [(ch["by_severity"].format(n=sum(sev.values())), charts.bars(bars), f"{base}&status=bad", False),
           (ch["by_os"].format(n=stats["hosts"]), charts.bars(by_os), None, False)]
    for key, part, color, finding in (("smb1_share", stats["smb1"], "#c96a00", "smbv1-enabled"),
                                      ("unsigned_share", stats["unsigned"], "#b3261e", "smb-signing-not-required")):
        text = ch["share"].format(label=ch[key], part=part, total=smb, pct=_pct(part, smb))
        out.append((ch[key], charts.share(part, smb, text, color), f"{base}&finding={finding}", True))
    if trend:
        out.append((ch["trend"], charts.trend(trend, (ch["trend_hosts"], ch["trend_exposed"])), "/scans", False))
    return out


def _pct(part: int, total: int) -> str:
    return f"{100.0 * part / total:.1f}%" if total else "-"


def tiles(stats: dict, scan: dict, digest: Digest) -> dict:
    verify = len({r.key for r in digest.actions if r.category == "verify"})
    untested = sum(1 for r in digest.risk.values() if r.untested)
    isolate = len({r.key for r in digest.actions if r.rank == 1})
    return {"hosts": stats["hosts"], "smb": stats["smb_hosts"], "other": stats["other_hosts"], "smb1": stats["smb1"],
            "unsigned": stats["unsigned"], "exposed": scan["exposed"], "verify": verify, "untested": untested, "isolate": isolate,
            "pct_smb1": _pct(stats["smb1"], stats["smb_hosts"]), "pct_unsigned": _pct(stats["unsigned"], stats["smb_hosts"]),
            "pct_exposed": _pct(scan["exposed"], stats["hosts"])}


def top_findings(digest: Digest, lang: str) -> list[dict]:
    """The findings vulnerable or likely somewhere, most severe and widest first (counted once per scan)."""
    out = []
    for fid, hosts in digest.bad_hosts.items():
        try:
            sev = meta(fid)["severity"]
        except KeyError:
            sev = "info"
        out.append({"id": fid, "severity": sev, "title": title(fid, None, lang), "hosts": hosts})
    return sorted(out, key=lambda t: (SEVERITIES.index(t["severity"]) if t["severity"] in SEVERITIES else 9, -t["hosts"], t["id"]))


# ---------------------------------------------------------------- one host
STATUS_ORDER = {"vulnerable": 0, "likely": 1, "unknown": 2, "not_vulnerable": 3}
FACTS = ("os_name", "os_version", "service_pack", "build", "ubr", "architecture", "edition", "domain", "domain_controller",
         "installed_kbs", "smb1_server", "server_service", "smb_signing_required", "samba_version")


def host_plan(h: dict, audits: list[dict], usage: list[dict], lang: str):
    """The plan of this one host with its joined inventories and recorded SMB1 use: (HostPlan or None, plan or None, error)."""
    from ..report.view import make_plan

    errors: list[str] = []
    p = make_plan([h] + audits + usage, lang, errors)
    hp = p.host(str(h["address"])) if p is not None else None
    return hp, p, (errors[0] if errors else None)


def findings_rows(h: dict, conflicts: set[str], lang: str) -> list[dict]:
    status, severity = i18n.labels("status", lang), i18n.labels("severity", lang)
    rows = []
    for f in sorted(h.get("findings") or [], key=lambda f: (STATUS_ORDER.get(f.get("status"), 9),
                                                           SEVERITIES.index(f["severity"]) if f.get("severity") in SEVERITIES else 9)):
        rows.append({"id": f.get("id"), "title": title(str(f.get("id")), f.get("title"), lang), "status": f.get("status"),
                     "status_label": status.get(f.get("status"), f.get("status")), "severity": f.get("severity"),
                     "severity_label": severity.get(f.get("severity"), f.get("severity")), "port": f.get("port"),
                     "inferred": bool(f.get("inferred")), "cves": f.get("cves") or [],
                     "evidence": sentence(f.get("evidence"), lang), "reason": sentence(f.get("reason"), lang),
                     "conflict": f.get("id") in conflicts})
    return rows


def audit_rows(audits: list[dict], conflicts: set[str], lang: str) -> list[dict]:
    """The joined inventories: source, known facts (labelled), verdicts (conflicting ones marked)."""
    status = i18n.labels("status", lang)
    web = i18n.labels("web", lang)
    out = []
    for a in audits:
        facts = a.get("facts") if isinstance(a.get("facts"), dict) else {}
        shown = []
        for k in FACTS + tuple(k for k in facts if k not in FACTS):
            v = facts.get(k)
            if v is None or v == [] or k in ("product", "file_versions", "firewall_rules", "software"):
                continue
            if isinstance(v, bool):
                v = web["yes"] if v else web["no"]
            elif isinstance(v, (list, tuple)):
                v = ", ".join(map(str, v[:300])) + (f" (+{len(v) - 300})" if len(v) > 300 else "")
            shown.append((web.get("fact_" + k), k, str(v)[:2000]))
        verdicts = [{"id": v.get("id"), "status": v.get("status"), "label": status.get(v.get("status"), v.get("status")),
                     "evidence": sentence(v.get("evidence"), lang),
                     "fix": _fix_ids(v.get("fix")),
                     "conflict": v.get("id") in conflicts}
                    for v in a.get("verdicts") or [] if isinstance(v, dict)]
        out.append({"source": a.get("source") or "", "host": a.get("host") or "", "address": a.get("address") or "",
                    "facts": shown, "verdicts": verdicts})
    return out


def _fix_ids(fix) -> str:
    """An audit verdict's fix as the ids it names (KBs, kb action ids); its words are the plan's, in the page's language."""
    items = fix if isinstance(fix, list) else [fix] if fix else []
    ids = [str(x.get("kb") or x.get("action") or x.get("id") or "") if isinstance(x, dict) else str(x) for x in items[:20]]
    return ", ".join(i for i in ids if i)


def smb1_use(usage: list[dict], coverage: list[dict]) -> dict:
    """Who spoke SMB1 to this host in the recorded traffic, or the captures that saw nobody do so."""
    clients = []
    for rec in usage:
        for c in ((rec.get("smb1_usage") or {}).get("clients") or [])[:500]:
            if isinstance(c, dict):
                clients.append({k: c.get(k) for k in ("client", "dialect", "client_native_os", "first_seen", "last_seen")})
    clients.sort(key=lambda c: str(c.get("last_seen") or ""), reverse=True)
    spans = [c["span"] for c in coverage if c.get("span")]
    first = min((s[0] for s in spans if s and s[0]), default=None)
    last = max((s[1] for s in spans if len(s) > 1 and s[1]), default=None)
    captures = list(dict.fromkeys(x for c in coverage for x in c.get("captures") or []))
    return {"clients": clients, "recorded": bool(coverage), "first": first, "last": last, "captures": captures[:20],
            "more_captures": max(0, len(captures) - 20)}


def role_of(h: dict, lang: str) -> dict | None:
    role = h.get("role")
    if not isinstance(role, dict) or not role.get("value"):
        return None
    return {"value": role["value"], "label": i18n.label("role", role["value"], lang),
            "evidence": [sentence(str(e), lang) for e in (role.get("evidence") or [])[:8]],
            "data_shares": [str(s) for s in role.get("data_shares") or []][:50]}


# ---------------------------------------------------------------- diff
def diff_view(d, lang: str) -> dict:
    """The like-with-like diff in one language: warnings, host lists, finding tables, identity changes."""
    from ..report.scans import _warning

    t, status, severity = i18n.labels("diff", lang), i18n.labels("status", lang), i18n.labels("severity", lang)
    words = {**i18n.labels("term", lang), "on": i18n.label("report", "smb1_on", lang), "off": i18n.label("report", "smb1_off", lang)}

    def item(i: dict, why: bool = False) -> dict:
        return {**i, "severity_label": severity.get(i["severity"], i["severity"]),
                "before": status.get(i["old_status"], i["old_status"]) if i["old_status"] else "-",
                "after": status.get(i["new_status"], i["new_status"]) if i["new_status"] else "-",
                "why_label": t.get("why_" + str(i.get("why")), i.get("why")) if why else None}

    def shown(c: dict, v):
        return "-" if v is None else (words.get(v, v) if c["field"] in ("signing", "smb1") else v)

    return {
        "warnings": [_warning(w, t) for w in d.warnings],
        "hosts": [(t[k], hs) for k, hs in (("new_hosts", d.new_hosts), ("gone_hosts", d.gone_hosts),
                                           ("not_scanned_hosts", d.not_scanned_hosts)) if hs],
        "tables": [(k, t[k], [item(i, k == "not_checked") for i in items])
                   for k, items in (("new_findings", d.new_findings), ("fixed_findings", d.fixed_findings),
                                    ("changed_findings", d.changed_findings), ("not_checked", d.not_checked_findings)) if items],
        "identity": [{"address": c["address"], "field": t.get("field_" + c["field"], c["field"]), "before": shown(c, c["before"]),
                      "after": shown(c, c["after"])} for c in d.identity_changes],
        "empty": d.empty,
    }


def diff_csv_rows(view: dict):
    for key, _label, items in view["tables"]:
        for i in items:
            yield [key, i["address"], i["port"] or "", i["id"], i["severity_label"], i["before"], i["after"], i.get("why_label") or ""]
    for c in view["identity"]:
        yield ["identity", c["address"], "", c["field"], "", c["before"], c["after"], ""]


def usage_run(scan: dict) -> bool:
    """A `detect --store` run (SMB1 traffic), not a scan of hosts."""
    from ..resultfile import usage_runs

    return bool(usage_runs([scan]))
