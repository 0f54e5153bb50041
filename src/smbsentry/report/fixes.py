"""How to fix a finding, from each host's remediation plan (remediate.planner).

    plan_fixes(plan, records, lang)    # finding id -> [fix group], for the report's "How to fix"
    fix_text(finding_id, hosts, lang)  # plain paragraphs for one finding (the dashboard's host page)

The planner already knows each host's product level (the service pack
NativeOS or the collector shows, the architecture, the updates installed),
so a Server 2003 SP2 host is never told to install SP2 and a Windows 7 RTM
host is told to install SP1 first.  Hosts whose plans share a step (same
step, same update, same text) share a group: the step's text, its KB, the
update's files and the hosts, each marked when its plan puts a backup
before any change.
"""

from __future__ import annotations

from .. import i18n
from ..kb.findings import meta
from .actions import step_html

HOST_CAP = 20
SKIP = {"backup"}  # the gate is shown per host ("back up first"), not as a fix of a finding


def _label(hp) -> str:
    if hp.name and hp.address:
        return f"{hp.name} ({hp.address})"
    return hp.name or hp.address or hp.key


def plan_fixes(plan, records: list[dict], lang: str, cap: int = HOST_CAP) -> dict[str, list[dict]]:
    """finding id -> groups {"step", "kb", "text" (Markup), "title", "files", "alternatives", "reboot", "hosts", "more"}."""
    by_addr = {str(r.get("address")): r for r in records if r.get("address")}
    groups: dict[tuple, dict] = {}
    by_finding: dict[str, list[dict]] = {}
    for hp in plan.hosts:
        rec = by_addr.get(str(hp.address)) if hp.address else None
        backup = any(s.id == "backup" for s in hp.steps)
        for s in hp.steps:
            if s.id in SKIP or not s.findings:
                continue
            text = step_html(s, rec, lang)
            key = (s.id, s.kb, str(text), s.note)
            g = groups.get(key)
            if g is None:
                g = groups[key] = {"step": s.id, "kb": s.kb if (s.kb or "").startswith("KB") else None, "text": text,
                                   "title": s.title, "note": i18n.sentence_html(s.note, lang) if s.note else None,
                                   "files": sorted(s.files.items()), "alternatives": list(s.alternatives),
                                   "reboot": s.reboot, "hosts": [], "count": 0, "findings": []}
            g["count"] += 1
            if len(g["hosts"]) < cap:
                g["hosts"].append((_label(hp), backup))
            for fid in s.findings:
                if fid not in g["findings"]:
                    g["findings"].append(fid)
                    by_finding.setdefault(fid, []).append(g)
    for gs in groups.values():
        gs["more"] = gs["count"] - len(gs["hosts"])
    return by_finding


def _group_text(g: dict, lang: str) -> str:
    head = g["text"].striptags()
    lines = [f"{g['kb']}: {head}" if g["kb"] else head]
    if g["files"]:
        lines.append("  " + ", ".join(f"{arch}: {name}" for arch, name in g["files"]))
    hosts = ", ".join(name + (" *" if backup else "") for name, backup in g["hosts"])
    more = f" (+{g['more']})" if g["more"] else ""
    lines.append(("  主机：" if lang == "zh" else "  hosts: ") + hosts + more)
    return "\n".join(lines)


def fix_text(finding_id: str, hosts: list[dict], lang: str = "en") -> list[str]:
    """Plain-text paragraphs of how to fix `finding_id` on these hosts (host result dicts); * marks a backup first."""
    from ..remediate.planner import plan

    try:
        meta(finding_id)
        p = plan([h for h in hosts if isinstance(h, dict)], lang)
    except (KeyError, ValueError):
        return []
    return [_group_text(g, lang) for g in plan_fixes(p, hosts, lang).get(finding_id, [])]
