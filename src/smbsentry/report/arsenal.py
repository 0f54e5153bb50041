"""The Shadow Brokers arsenal view shared by the HTML report and the dashboard.

    table(results, lang="en")        # results: HostResult objects or host dicts
    for_scan(store, scan_id, lang)   # the same rows for a stored scan

For each of the 18 tools (checks.shadowbrokers.arsenal): how many hosts it applies
to, which ones (the first HOST_CAP, then "+N") and the fix.  In Chinese the module's
Chinese name leads.  Rows are plain data: the templates escape every string.
"""

from __future__ import annotations

from .. import i18n
from ..checks.shadowbrokers import arsenal
from ..kb.findings import meta

HOST_CAP = 20

LABELS = {lang: i18n.labels("arsenal", lang) for lang in i18n.LANGS}


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
