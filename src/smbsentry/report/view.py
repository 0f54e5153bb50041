"""What a scan report shows, computed once from the host records, in one language.

    v = build(records, lang, scan=None, trend=None)

`records` are host result dicts (contract.md, as the store keeps them).  The
counts state their denominators: hosts that answered, hosts with SMB (TCP
139 or 445 open), hosts seen through other services only.  Every label comes
from the i18n catalog and every evidence sentence goes through its
translator; remote strings stay data (the template escapes them).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from markupsafe import Markup

from .. import i18n
from ..kb.findings import meta
from ..model import BAD, SEVERITIES, Verdict
from . import charts
from .actions import action_rows
from .arsenal import address_key as _address_key
from .arsenal import table as arsenal_table
from .fixes import plan_fixes
from .relay import host_relay_rows, relay_section

STATUS_ORDER = ("vulnerable", "likely", "unknown", "not_vulnerable")
ACTION_CAP = 1000  # rows in the HTML; isolate-now rows are always all shown; JSON has every row
OS_BARS = 8


@dataclass
class Counts:
    total: int  # hosts that answered (every record)
    smb: int  # TCP 139 or 445 open
    other: int  # seen through other services only
    smb1: int  # hosts with SMB whose SMBv1 answered
    unsigned: int  # hosts with SMB whose signing is not required
    exposed: int  # a critical or high finding vulnerable or likely
    verify: int  # hosts with something to verify (unknowns, untestable)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def smb_open(h: dict) -> bool:
    return any(state == "open" for state in (h.get("ports") or {}).values())


def pct(part: int, total: int) -> str:
    return f"{100.0 * part / total:.1f}%" if total else "-"


def counts(records: list[dict], verify_hosts: int = 0) -> Counts:
    smb = [h for h in records if smb_open(h)]
    smb1 = sum(1 for h in smb if (h.get("smb1") or {}).get("enabled"))
    unsigned = sum(1 for h in smb if any(f.get("id") == "smb-signing-not-required" and f.get("status") == "vulnerable"
                                         for f in h.get("findings") or []))
    exposed = sum(1 for h in records if any(f.get("status") in BAD and f.get("severity") in ("critical", "high")
                                            for f in h.get("findings") or []))
    return Counts(len(records), len(smb), len(records) - len(smb), smb1, unsigned, exposed, verify_hosts)


# addresses in numeric order (names after them), the arsenal's order; cached: a report sorts each address often
address_key = lru_cache(maxsize=1 << 16)(_address_key)


def os_of(h: dict) -> str | None:
    return (h.get("identity") or {}).get("os_name") or (h.get("smb1") or {}).get("native_os")


def _rule_fixes(records: list[dict], lang: str, limit: int = 200) -> dict[str, str]:
    """Per finding, the exact fixes `smbsentry rules` recorded in details.fix."""
    lines: dict[str, dict[str, None]] = {}
    for h in records:
        if h.get("kind") != "rules":
            continue  # other checks' details.fix (the Shadow Brokers modules') is the kb's text, shown as such
        for f in h.get("findings") or []:
            fix = (f.get("details") or {}).get("fix") if f.get("status") in BAD else None
            if fix:
                lines.setdefault(f["id"], {})[f"- {h['address']}: {fix}"] = None
    head = "按规则修复：" if lang == "zh" else "Rule fixes:"
    out = {}
    for fid, seen in lines.items():
        items = list(seen)
        more = len(items) - limit
        out[fid] = head + "\n" + "\n".join(items[:limit]) + (f"\n\u2026 (+{more})" if more > 0 else "")
    return out


class Pieces(NamedTuple):
    """One record's share of the page in one language. respond makes them while the scan runs (app/ahead.py);
    build(pieces=) takes them instead of reading the record again, for the record they were made from."""
    findings: list  # finding_entries()
    host: tuple  # host_row()
    relay: tuple  # relay.host_relay_rows()


def pieces(h: dict, lang: str) -> Pieces:
    return Pieces(finding_entries(h, lang), host_row(h, lang), host_relay_rows(h, lang))


def _made(made: dict | None, h: dict) -> Pieces | None:
    """The pieces made for this very record (made: address -> (record, Pieces)), or None."""
    got = made.get(h.get("address")) if made else None
    return got[1] if got is not None and got[0] is h else None


def _relay_made(made: dict | None):
    """relay_section's `made`: a record's relay rows from its pieces (None without)."""
    if not made:
        return None
    return lambda h: got.relay if (got := _made(made, h)) is not None else None


def finding_entries(h: dict, lang: str) -> list[tuple]:
    """(finding id, status, section row or None) per finding of one record; rows for the hosts not proven clean."""
    sentence = i18n.sentence_html
    name = (h.get("identity") or {}).get("netbios_name") or ""
    out = []
    for f in h.get("findings") or []:
        st = f.get("status")
        row = None
        if st in BAD or st == Verdict.UNKNOWN:
            port = f.get("port")
            row = (STATUS_ORDER.index(st), h["address"], f"{h['address']}:{port}" if port else h["address"],
                   name, st, bool(f.get("inferred")), sentence(f.get("evidence"), lang), sentence(f.get("reason"), lang))
        out.append((f.get("id"), st, row))
    return out


def sections(records: list[dict], lang: str, fixes: dict[str, list[dict]], made: dict | None = None) -> list[dict]:
    """One section per finding id: counts per status, the hosts not proven clean, the fix groups."""
    by_finding: dict[str, dict] = defaultdict(lambda: {"rows": [], "counts": Counter()})
    for h in records:
        got = _made(made, h)
        for fid, st, row in got.findings if got is not None else finding_entries(h, lang):
            entry = by_finding[fid]
            entry["counts"][st] += 1
            if row is not None:
                entry["rows"].append(row)
    status = i18n.labels("status", lang)
    severity = i18n.labels("severity", lang)
    rules = _rule_fixes(records, lang)
    out = []
    for fid, entry in by_finding.items():
        try:
            m = meta(fid)
        except KeyError:
            m = {"title": fid, "severity": "info"}
        entry["rows"].sort(key=lambda r: (r[0], address_key(r[1])))
        bad = entry["counts"]["vulnerable"] + entry["counts"]["likely"]
        sev = m["severity"]
        out.append({
            "id": fid, "title": (m.get("title_zh") if lang == "zh" else None) or m["title"], "severity": sev,
            "severity_label": severity.get(sev, sev), "cves": m.get("cves", []),
            "counts": [(s, status.get(s, s), entry["counts"][s]) for s in STATUS_ORDER if entry["counts"][s]],
            "rows": [(where, name, st, status.get(st, st), inferred, ev, rs) for _, _, where, name, st, inferred, ev, rs in entry["rows"]],
            "bad": bad, "fixes": fixes.get(fid, []), "rules": rules.get(fid),
        })
    out.sort(key=lambda s: (-min(s["bad"], 1), SEVERITIES.index(s["severity"]) if s["severity"] in SEVERITIES else 9,
                            -s["bad"], s["id"]))
    return out


def host_row(h: dict, lang: str) -> tuple:
    """One record's all-hosts row but its marker: address, name, OS, role, SMBv1, dialects, signing, bad findings,
    errors; and whether SMB is open (the marker depends on the plan's untested hosts too)."""
    t = i18n.labels("report", lang)
    role, term = i18n.labels("role", lang), i18n.labels("term", lang)
    ident, s1, s2 = h.get("identity") or {}, h.get("smb1"), h.get("smb2") or {}
    r = (h.get("role") or {}).get("value")
    bad = [(f.get("id"), f.get("status")) for f in h.get("findings") or [] if f.get("status") in BAD]
    errors = Markup("; ").join(i18n.sentence_html(e, lang) for e in h.get("errors") or [])
    return ((h["address"], ident.get("netbios_name") or "", os_of(h) or "", role.get(r, r) if r else "",
             "" if s1 is None else (t["smb1_on"] if s1.get("enabled") else t["smb1_off"]),
             " ".join(s2.get("dialects") or []), term.get(s2.get("signing"), s2.get("signing") or ""),
             list(dict.fromkeys(bad)), errors), smb_open(h))


def host_rows(records: list[dict], lang: str, untested: set[str], made: dict | None = None) -> list[tuple]:
    """The all-hosts table: address, name, OS, role, SMBv1, dialects, signing, bad findings, errors, marker."""
    t = i18n.labels("report", lang)
    rows = []
    for h in sorted(records, key=lambda h: address_key(h["address"])):
        got = _made(made, h)
        row, smb = got.host if got is not None else host_row(h, lang)
        mark = t["untested"] if h["address"] in untested else ("" if smb else t["other_only"])
        rows.append((*row, mark))
    return rows


def chart_list(records: list[dict], c: Counts, lang: str, trend: list | None = None) -> list[tuple[str, Markup]]:
    """(caption, inline SVG): severities, OS, the SMBv1 and signing shares of hosts with SMB, the trend."""
    ch, sev_label = i18n.labels("chart", lang), i18n.labels("severity", lang)
    sev = Counter(f.get("severity") for h in records for f in h.get("findings") or [] if f.get("status") in BAD)
    bars = [(sev_label.get(s, s), sev[s], charts.COLORS[s]) for s in SEVERITIES if sev[s]]
    oses = Counter(os_of(h) for h in records).most_common()
    unknown = i18n.label("report", "unknown_os", lang)
    by_os = [(o or unknown, n, None) for o, n in oses[:OS_BARS]]
    if len(oses) > OS_BARS:
        by_os.append((ch["other"], sum(n for _, n in oses[OS_BARS:]), "#7a8394"))
    out = [(ch["by_severity"].format(n=sum(sev.values())), charts.bars(bars)),
           (ch["by_os"].format(n=c.total), charts.bars(by_os))]
    for key, part, color in (("smb1_share", c.smb1, "#c96a00"), ("unsigned_share", c.unsigned, "#b3261e")):
        text = ch["share"].format(label=ch[key], part=part, total=c.smb, pct=pct(part, c.smb))
        out.append((ch[key], charts.share(part, c.smb, text, color)))
    if trend:
        out.append((ch["trend"], charts.trend(trend, (ch["trend_hosts"], ch["trend_exposed"]))))
    return out


def build(records: list[dict], lang: str, *, scan: dict | None = None, trend: list | None = None, plan=None,
          pieces: dict | None = None) -> dict:
    """Everything the template needs; `plan` is remediate.planner.plan(records, lang) when the caller has it,
    `pieces` address -> (record, Pieces in `lang`) made earlier for some of the records."""
    i18n.check_lang(lang)
    errors: list[str] = []
    if plan is None:
        plan = make_plan(records, lang, errors)
    acts = plan.actions if plan is not None else []
    rows = action_rows(plan, records, lang, ACTION_CAP) if plan is not None else []
    untested = {str(hp.address) for hp in (plan.hosts if plan else [])
                for s in hp.steps if s.id == "verify" and s.text_key == "verify-untested"}
    c = counts(records, len({r.key for r in acts if r.category == "verify"}))
    hidden = acts[len(rows):]
    ranks = i18n.labels("rank", lang)
    fixes = plan_fixes(plan, records, lang) if plan is not None else {}
    return {
        "counts": c, "pct": {"smb1": pct(c.smb1, c.smb), "unsigned": pct(c.unsigned, c.smb), "exposed": pct(c.exposed, c.total)},
        "actions": rows, "actions_hidden": len(hidden),
        "actions_hidden_ranks": ", ".join(dict.fromkeys(ranks.get(r.category, r.category) for r in hidden)),
        "sections": sections(records, lang, fixes, pieces), "hosts": host_rows(records, lang, untested, pieces),
        "charts": chart_list(records, c, lang, trend), "arsenal": arsenal_table(records, lang),
        "relay": relay_section(records, lang, _relay_made(pieces)),
        "plan_error": errors[0] if errors else None,
    }


def report_json_head(scan: dict | None, records: list[dict], plan) -> dict:
    """report.json (`report N --format json`, respond) but its "hosts", which comes last: the format, the scan
    row, the counts and the ranked action list (empty without a plan)."""
    actions = [r.to_dict() for r in plan.actions] if plan is not None else []
    verify = len({r["key"] for r in actions if r["category"] == "verify"})
    return {"format": "smbsentry-report", "version": 1, "scan": scan, "counts": counts(records, verify).to_dict(),
            "actions": actions}


def make_plan(records: list[dict], lang: str, errors: list[str] | None = None):
    """The remediation plan, or None when the records cannot be planned (the report is still written;
    the reason goes to `errors`)."""
    from ..remediate.planner import plan

    try:
        return plan(records, lang)
    except ValueError as exc:
        if errors is not None:
            errors.append(str(exc)[:300])
        return None
