"""The Shadow Brokers arsenal view shared by the HTML report and the dashboard.

    table(results, lang="en")        # results: HostResult objects or host dicts
    for_scan(store, scan_id, lang)   # the same rows for a stored scan

For each of the 18 tools (checks.shadowbrokers.arsenal): how many hosts it applies
to, which ones (the first HOST_CAP, then "+N") and the fix.  In Chinese the module's
Chinese name leads.  Rows are plain data: the templates escape every string.
"""

from __future__ import annotations

from ..checks.shadowbrokers import arsenal

HOST_CAP = 20

LABELS = {
    "en": {"heading": "Shadow Brokers arsenal", "tool": "Tool", "count": "Hosts", "hosts": "Affected hosts",
           "fix": "How to fix", "ports": "Ports",
           "intro": "The 18 Shadow Brokers tools: the hosts each one applies to (vulnerable or likely) and the fix."},
    "zh": {"heading": "影子经纪人武器库", "tool": "工具", "count": "主机数", "hosts": "受影响主机",
           "fix": "修复方法", "ports": "端口",
           "intro": "影子经纪人泄露的 18 个工具：每个工具可利用的主机（漏洞或疑似）及修复方法。"},
}


def table(results: list, lang: str = "en", cap: int = HOST_CAP) -> list[dict]:
    """arsenal() rows plus display fields: label, alt (the other-language name), shown, more."""
    if lang not in LABELS:
        raise ValueError(f"unknown language {lang!r} (en or zh)")
    dicts = [r.to_dict() if hasattr(r, "to_dict") else r for r in results]
    rows = []
    for row in arsenal(dicts):
        zh = lang == "zh" and row.get("name_zh")
        hosts = [h for h in row["hosts"] if h]
        rows.append({**row, "label": row["name_zh"] if zh else row["name"], "alt": row["name"] if zh else None,
                     "shown": hosts[:cap], "more": max(0, len(hosts) - cap)})
    return rows


def for_scan(store, scan_id: int, lang: str = "en") -> list[dict]:
    return table(store.hosts(scan_id, limit=None), lang)
