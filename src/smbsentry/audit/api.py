"""What the command line calls: read inventories, evaluate, render.

Facts about one host may come from several files (systeminfo for the OS,
Get-HotFix or wmic for the updates); they are merged by host name, or by
address when a file has no name, before the host is evaluated once.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from pathlib import Path
from typing import NamedTuple

from .. import i18n
from .errors import InventoryError
from .evaluate import evaluate
from .facts import HostFacts
from .inventory import read_file
from .result import AuditResult


class AuditRun(NamedTuple):
    results: list[AuditResult]
    errors: list[InventoryError]


def expand(paths) -> list[Path]:
    """Files as given; a directory stands for its files (textio.expand_files: sorted, not recursive, no dot files)."""
    from ..textio import expand_files

    return expand_files(paths)


def collect(paths) -> tuple[list[HostFacts], list[InventoryError]]:
    """Read every file; merge facts per host; per-file and per-host errors are returned, never raised."""
    merged: dict[str, HostFacts] = {}
    errors: list[InventoryError] = []
    for path in expand(paths):
        try:
            hosts, errs, _kind = read_file(path)
        except InventoryError as exc:
            errors.append(exc)
            continue
        errors += errs
        for h in hosts:
            key = h.key or f"{path}#{id(h)}"
            if key in merged:
                merged[key].merge(h)
            else:
                merged[key] = h
    return list(merged.values()), errors


def audit_files(paths, *, as_of: date | None = None, ids=None) -> AuditRun:
    """Audit results for every host in the files or directories (first-seen order) and the errors met on the way.

    Unpacks as `results, errors = audit_files(paths)`; a file that cannot be read, or a broken host
    inside a file, becomes an InventoryError in `errors` and never drops the other hosts.
    """
    hosts, errors = collect(paths)
    results = [AuditResult(h.host, h.address, ", ".join(h.sources), h, evaluate(h, as_of=as_of, ids=ids)) for h in hosts]
    return AuditRun(results, errors)


def render_audit(results: list[AuditResult], fmt: str = "table", errors: list[InventoryError] | None = None, lang: str = "en") -> str:
    """table (for people; not_applicable verdicts counted, not listed), jsonl (one host per line) or json (an array).

    `lang` is the table's language: zh gives statuses, headings and evidence in Chinese (each
    distinct sentence translated once; a sentence with no Chinese pattern stays English).  JSON
    and JSON Lines are the contract and stay English whatever `lang` says."""
    if fmt == "jsonl":
        return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in results)
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], ensure_ascii=False, indent=2) + "\n"
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (table, jsonl or json)")
    words = i18n.labels("audit", i18n.check_lang(lang))
    status = i18n.labels("status", lang)
    english = lang == "en"
    narrow = english  # one column a character everywhere: English output is formatted as it always was
    said: dict[str, str] = {}

    def say(text: str) -> str:
        got = said.get(text)
        if got is None:
            got = said[text] = i18n.sentence(text, lang)
        return got

    rows = []
    for r in results:
        name = r.host or r.address or "?"
        narrow = narrow and name.isascii()
        shown = [v for v in r.verdicts if v.status != "not_applicable"]
        hidden = len(r.verdicts) - len(shown)
        rows.append((name, r.facts.product or "?", "", words["not_applicable"].format(n=hidden) if hidden else ""))
        order = {"missing": 0, "unknown": 1, "patched": 2}
        for v in sorted(shown, key=lambda v: (order[v.status], v.id)):
            fix = ""
            if v.fix:
                fix = " -> " + ", ".join(x.get("kb") or x.get("action") for x in v.fix[:4])
            rows.append(("", v.id, status.get(v.status, v.status), (v.evidence if english else say(v.evidence)) + fix))
    head_words = (words["host"], words["finding"], words["status"])
    width = len if narrow else _width
    w0, w1, w2 = (max([width(c[i]) for c in rows] + [width(h)]) for i, h in enumerate(head_words))
    head = f"{_pad(head_words[0], w0)}  {_pad(head_words[1], w1)}  {_pad(head_words[2], w2)}  {words['evidence']}"
    lines = [head, "-" * width(head)]
    if narrow:
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}".rstrip() for a, b, c, d in rows]
    else:
        lines += [f"{_pad(a, w0)}  {_pad(b, w1)}  {_pad(c, w2)}  {d}".rstrip() for a, b, c, d in rows]
    for e in errors or ():
        lines.append(words["error"].format(error=e))
    return "\n".join(lines) + "\n"


def _width(text: str) -> int:
    """Terminal columns: Chinese characters take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
