"""The Shadow Brokers arsenal view shared by the HTML report and the dashboard.

    table(results, lang="en")        # results: HostResult objects or host dicts
    for_scan(store, scan_id, lang)   # the same rows for a stored scan

For each of the 18 tools (`arsenal`, from the Shadow Brokers findings): how many hosts it applies
to, which ones (the first HOST_CAP, then "+N") and the fix.  In Chinese the module's
Chinese name leads.  Rows are plain data: the templates escape every string.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from .. import i18n
from ..checks.modules import MODULES
from ..kb.findings import meta, windows_targets
from ..model import BAD

HOST_CAP = 20

LABELS = {lang: i18n.labels("arsenal", lang) for lang in i18n.LANGS}

# The SMB tools are judged by the scanner's own findings: tool -> the finding id that proves it.
# The NT versions each tool targets are the KB's (kb.findings.windows_targets); DoublePulsar, any.
SMB_TOOLS = {"eternalblue": "ms17-010", "eternalromance": "ms17-010", "eternalsynergy": "ms17-010", "eternalchampion": "ms17-010",
             "doublepulsar": "doublepulsar"}
TOOLS = tuple(SMB_TOOLS) + MODULES


def _targets(tool: str) -> tuple[str, ...] | None:
    """NT versions a tool targets; None: any (an implant, or a module judged by its own check)."""
    if tool not in SMB_TOOLS or SMB_TOOLS[tool] == tool:
        return None
    return tuple(windows_targets(tool))


def address_key(address: object) -> tuple:
    """Addresses in numeric order (v4 before v6), then names: the order every report lists hosts in."""
    return _address_key(str(address))


@lru_cache(maxsize=1 << 16)
def _address_key(address: str) -> tuple:
    """(Cached: a report sorts the same addresses in several tables.)"""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return (0, ip.version, int(ip), "")
    except ValueError:
        return (1, 0, 0, str(address))


def _findings_by_id(results: list[dict]) -> dict[str, list[tuple]]:
    """finding id -> (address, "major.minor" OS version or None, status) per host finding, in one pass
    (the arsenal asks for 18 finding ids; scanning every host 18 times was most of a report's time)."""
    out: dict[str, list[tuple]] = {}
    for r in results:
        ver = ".".join(((r.get("identity") or {}).get("os_version") or "").split(".")[:2]) or None
        for f in r.get("findings", []):
            out.setdefault(f.get("id"), []).append((r.get("address"), ver, f.get("status")))
    return out


def arsenal(results: list[dict]) -> list[dict]:
    """For each of the 18 tools: the hosts it applies to (a vulnerable or likely finding), and the fix.

    `results` are host dicts (HostResult.to_dict()).  Row: {"tool", "name", "name_zh", "finding", "count",
    "hosts", "statuses" ({status: count} over the hosts with that finding), "fix", "ports"}.
    """
    by_finding = _findings_by_id(results)
    rows = []
    for tool in TOOLS:
        m = meta(tool)
        finding, versions = SMB_TOOLS.get(tool, tool), _targets(tool)
        hosts, statuses = [], {}
        for address, ver, st in by_finding.get(finding, ()):
            if versions is not None and ver is not None and ver not in versions and st in BAD:
                continue
            statuses[st] = statuses.get(st, 0) + 1
            if st in BAD:
                hosts.append(address)
        mod = m.get("module") or {}
        hosts = sorted(set(hosts), key=address_key)  # a host once, in address order
        rows.append({"tool": tool, "name": mod.get("name", tool.title()), "name_zh": mod.get("name_zh"), "finding": finding,
                     "count": len(hosts), "hosts": hosts, "statuses": statuses, "fix": m.get("fix_text"),
                     "ports": list(m.get("ports", []))})
    return rows


def _fix(row: dict, lang: str) -> str | None:
    """The tool's fix in `lang` (kb fix_text_zh where the knowledge base has it)."""
    if lang == "zh":
        try:
            return meta(row["tool"]).get("fix_text_zh") or row.get("fix")
        except KeyError:
            pass
    return row.get("fix")


def table(results: list, lang: str = "en", cap: int = HOST_CAP) -> list[dict]:
    """arsenal() rows plus display fields: label, alt (the other-language name), shown, more."""
    i18n.check_lang(lang)
    dicts = [r.to_dict() if hasattr(r, "to_dict") else r for r in results]
    rows = []
    for row in arsenal(dicts):
        zh = lang == "zh" and row.get("name_zh")
        hosts = [h for h in row["hosts"] if h]
        rows.append({**row, "label": row["name_zh"] if zh else row["name"], "alt": row["name"] if zh else None, "fix": _fix(row, lang),
                     "shown": hosts[:cap], "more": max(0, len(hosts) - cap)})
    return rows


def for_scan(store, scan_id: int, lang: str = "en") -> list[dict]:
    return table(store.hosts(scan_id, limit=None), lang)
