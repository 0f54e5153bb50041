"""Reports from the store: history, diff, the scan report (html/csv/json) and OCSF export.

    render_history(store, "table" | "json")
    render_diff(store.diff(a, b), "table" | "json")
    render_report(store, scan_id, "html" | "csv" | "json" | "ocsf", lang="en" | "zh")
    export_ocsf(store, scan_id) -> list of OCSF 1.x Vulnerability Finding (class 2002) objects
"""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime, timezone

from .. import i18n
from ..kb.findings import meta
from ..model import BAD
from . import view
from .convert import hosts_csv
from .html import render

HISTORY_FORMATS = ("table", "json")
REPORT_FORMATS = ("html", "csv", "json", "ocsf")
OCSF_VERSION = "1.1.0"
OCSF_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
OCSF_SEVERITY_NAME = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 0: "Unknown"}


def _width(text: str) -> int:
    """Columns a terminal gives `text`: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(headers: list[str], rows: list[list]) -> str:
    cells = [[str("" if c is None else c) for c in r] for r in rows]
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells]) + "\n"


def _check(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(allowed)})")


def render_history(store, fmt: str = "table") -> str:
    _check(fmt, HISTORY_FORMATS)
    scans = store.scans()
    if fmt == "json":
        return json.dumps(scans, indent=2, ensure_ascii=False) + "\n"
    rows = [[s["id"], (s["started"] or "")[:19].replace("T", " "), s["status"], s["hosts"], s["exposed"], s["findings"],
             " ".join(s["targets"])[:60]] for s in scans]
    return _table(["ID", "STARTED (UTC)", "STATUS", "HOSTS", "EXPOSED", "FINDINGS", "TARGETS"], rows)


def _warning(w: dict, t: dict) -> str:
    if w["code"] == "targets":
        return t["targets_differ"].format(old=w["old"], new=w["new"])
    if w["code"] == "checks":
        return t["checks_differ"].format(old=w["old"], new=w["new"])
    if w["code"] == "ports":
        return t["ports_differ"].format(old=w["old"], new=w["new"])
    return t["options_unknown"].format(id=w["scan"], what=t["what_" + w["what"]])


def render_diff(diff, fmt: str = "table", lang: str = "en") -> str:
    """The diff as a text table (English or Chinese) or JSON (the Diff's fields, language-neutral)."""
    _check(fmt, HISTORY_FORMATS)
    if fmt == "json":
        return json.dumps(diff.to_dict(), indent=2, ensure_ascii=False) + "\n"
    t, status, term = i18n.labels("diff", lang), i18n.labels("status", lang), i18n.labels("term", lang)
    sev = i18n.labels("severity", lang)
    out = [t["heading"].format(old=diff.old_id, new=diff.new_id) + "\n"]
    out += [_warning(w, t) + "\n" for w in diff.warnings]
    if diff.empty:
        return "".join(out) + t["no_changes"] + "\n"
    for key, hosts in (("new_hosts", diff.new_hosts), ("gone_hosts", diff.gone_hosts), ("not_scanned_hosts", diff.not_scanned_hosts)):
        if hosts:
            out.append(f"\n{t[key]} ({len(hosts)}): " + " ".join(hosts) + "\n")
    head = [t["col_address"], t["col_port"], t["col_finding"], t["col_severity"], t["col_before"], t["col_after"]]
    st = lambda s: status.get(s, s) if s else "-"  # noqa: E731
    for key, items in (("new_findings", diff.new_findings), ("fixed_findings", diff.fixed_findings),
                       ("changed_findings", diff.changed_findings), ("not_checked", diff.not_checked_findings)):
        if items:
            why = key == "not_checked"
            out.append(f"\n{t[key]} ({len(items)}):\n")
            out.append(_table(head + ([t["col_why"]] if why else []),
                              [[i["address"], i["port"] or "", i["id"], sev.get(i["severity"], i["severity"]), st(i["old_status"]),
                                st(i["new_status"])] + ([t["why_" + i["why"]]] if why else []) for i in items]))
    if diff.identity_changes:
        words = {**term, "on": i18n.label("report", "smb1_on", lang), "off": i18n.label("report", "smb1_off", lang)}
        shown = lambda c, v: "-" if v is None else (words.get(v, v) if c["field"] in ("signing", "smb1") else v)  # noqa: E731
        out.append(f"\n{t['identity']} ({len(diff.identity_changes)}):\n")
        out.append(_table([t["col_address"], t["col_field"], t["col_before"], t["col_after"]],
                          [[c["address"], t["field_" + c["field"]], shown(c, c["before"]), shown(c, c["after"])]
                           for c in diff.identity_changes]))
    return "".join(out)


def _all_hosts(store, scan_id: int) -> list[dict]:
    return store.hosts(scan_id, limit=None)


def _trend(store, scan_id: int) -> list[tuple[str, int, int]]:
    return [(f"#{s['id']} {(s['started'] or '')[:10]}", s["hosts"], s["exposed"]) for s in store.trend(scan_id)]


def _charts(store, scan_id: int, lang: str, hosts: list[dict] | None = None) -> list:
    """(caption, SVG) for a stored scan (the dashboard's overview): counts over `hosts` (default: all of the scan's)."""
    hosts = _all_hosts(store, scan_id) if hosts is None else hosts
    return view.chart_list(hosts, view.counts(hosts), lang, _trend(store, scan_id))


_rule_fixes = view._rule_fixes  # the dashboard's host page


def render_report(store, scan_id: int, fmt: str = "html", lang: str = "en") -> str:
    """A stored scan as html, csv, json (the hosts, the counts and the ranked action list) or OCSF."""
    _check(fmt, REPORT_FORMATS)
    i18n.check_lang(lang)
    scan = store.scan(scan_id)
    if fmt == "ocsf":
        return json.dumps(export_ocsf(store, scan_id), indent=2, ensure_ascii=False) + "\n"
    hosts = _all_hosts(store, scan_id)
    if fmt == "json":
        head = view.report_json_head(scan, hosts, view.make_plan(hosts, lang))
        return json.dumps({**head, "hosts": hosts}, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return hosts_csv(hosts)
    title = f"{i18n.label('report', 'title', lang)} #{scan_id}"
    return render(hosts, lang=lang, title=title, scan=scan, trend=_trend(store, scan_id))


def relay_targets(store, scan_id: int) -> str:
    """The scan's NTLM relay targets for `report --relay-list`: one address per line (report/relay.py)."""
    from .relay import relay_list

    return relay_list(_all_hosts(store, scan_id))


def _ms(iso: str | None) -> int:
    if not iso:
        return int(datetime.now(timezone.utc).timestamp() * 1000)
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def export_ocsf(store, scan_id: int) -> list[dict]:
    """Vulnerable and likely findings as OCSF Vulnerability Finding objects (class_uid 2002)."""
    scan = store.scan(scan_id)
    when = _ms(scan["finished"] or scan["updated"] or scan["started"])
    names, rule_fixes = {}, {}
    for h in _all_hosts(store, scan_id):
        ident = h.get("identity") or {}
        names[h["address"]] = ident.get("dns_name") or ident.get("netbios_name") or h.get("hostname")
        if h.get("kind") == "rules":
            rule_fixes[h["address"]] = (h.get("rules") or {}).get("platform")
        for hf in h.get("findings") or []:  # `smbsentry rules` findings carry their exact fix
            if (hf.get("details") or {}).get("fix") and hf.get("status") in BAD:
                rule_fixes.setdefault((h["address"], hf.get("id"), hf.get("port")), []).append(hf["details"]["fix"])
    out = []
    for f in store.findings(scan_id, status=BAD):
        sev = OCSF_SEVERITY.get(f["severity"], 0)
        try:
            m = meta(f["id"])
        except KeyError:
            m = {}
        title = f["title"] or m.get("title") or f["id"]
        desc = f["evidence"] or f["reason"] or title
        resource = {"type": "host", "ip": f["address"]}
        if f["address"] in rule_fixes:  # a security group / firewall rule set, not a host (smbsentry rules)
            resource = {"type": f"firewall ({rule_fixes[f['address']]})", "uid": f["address"]}
        if names.get(f["address"]):
            resource["name" if "uid" in resource else "hostname"] = names[f["address"]]
        vulns = [{"cve": {"uid": c}, "title": title, "severity": f["severity"].capitalize()} for c in (f["cves"] or m.get("cves") or [])]
        if not vulns:
            vulns = [{"title": title, "desc": desc, "severity": f["severity"].capitalize()}]
        fixes = rule_fixes.get((f["address"], f["id"], f["port"]))
        if fixes:
            for v in vulns:
                v["remediation"] = {"desc": "\n".join(dict.fromkeys(fixes))}
        out.append({
            "class_uid": 2002, "class_name": "Vulnerability Finding", "category_uid": 2, "category_name": "Findings",
            "activity_id": 1, "activity_name": "Create", "type_uid": 200201,
            "severity_id": sev, "severity": OCSF_SEVERITY_NAME[sev],
            "status_id": 1, "status": "New",
            "confidence_id": 3 if f["status"] == "vulnerable" else 2,
            "time": when,
            "finding_info": {"uid": f"smbsentry:{scan_id}:{f['address']}:{f['id']}:{f['port'] or ''}", "title": title, "desc": desc,
                             "types": [f["id"]]},
            "vulnerabilities": vulns,
            "resources": [resource],
            "metadata": {"product": {"name": "smbsentry", "vendor_name": "smbsentry"}, "version": OCSF_VERSION},
            "unmapped": {"smbsentry_status": f["status"], "inferred": f["inferred"], "port": f["port"], "scan_id": scan_id},
        })
    return out
