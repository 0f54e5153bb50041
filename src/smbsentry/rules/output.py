"""Render exposures as the contract's "Rule exposure" objects: jsonl, json, or a table for people."""

from __future__ import annotations

import json

from .evaluate import Exposure

FIELDS = ("source", "platform", "container", "rule", "protocol", "port", "exposed_to", "severity", "fix")


def render(exposures: list[Exposure], fmt: str) -> str:
    rows = [e.as_dict() for e in exposures]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    if fmt == "table":
        return _table(rows)
    raise ValueError(f"unknown format {fmt!r} (use table, jsonl or json)")


def _table(rows: list[dict]) -> str:
    if not rows:
        return "No exposed ports found.\n"
    cols = ("severity", "platform", "container", "protocol", "port", "exposed_to", "rule")
    width = {c: min(60, max(len(c), *(len(str(r[c])) for r in rows))) for c in cols}
    out = ["  ".join(c.upper().ljust(width[c]) for c in cols)]
    for r in rows:
        out.append("  ".join(_cut(str(r[c]), width[c]).ljust(width[c]) for c in cols))
        out.append(f"    fix: {r['fix']}")
    out.append(f"{len(rows)} exposure(s).")
    return "\n".join(out) + "\n"


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
