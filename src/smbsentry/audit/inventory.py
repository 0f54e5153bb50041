"""Read inventory files: detect the encoding, sniff the format, parse.

The format is decided from the content, never from the file name, because
people rename exports.  Every failure is an InventoryError naming the file
and line; a file that fails as a whole yields no hosts, a broken host inside
a good file yields an error for that host only.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..textio import MAX_JSON_DEPTH, InputTooLarge, NotRegularFile, json_depth, read_bounded
from .limits import MAX_FILE_BYTES, cap_errors, junk_error
from .encoding import decode
from .errors import InventoryError
from .facts import HostFacts
from .formats import computerinfo, hotfix, structured, systeminfo

FORMATS = ("systeminfo", "computerinfo", "computerinfo-json", "gethotfix-csv", "wmic-qfe-csv", "gethotfix-json", "osquery-patches", "osquery-os_version", "hosts-csv", "facts-json")


def _item_lines(text: str) -> dict[int, int]:
    """Line number where each top-level JSON object starts (index in the array -> line)."""
    out, depth, in_str, esc, line, idx = {}, 0, False, False, 1, 0
    top = 1 if text.lstrip().startswith("[") else 0
    for ch in text:
        if ch == "\n":
            line += 1
        if in_str:
            esc = not esc and ch == "\\"
            if ch == '"' and not esc:
                in_str = False
            continue
        if ch == '"':
            in_str, esc = True, False
        elif ch in "[{":
            if ch == "{" and depth == top:
                out[idx] = line
                idx += 1
            depth += 1
        elif ch in "]}":
            depth -= 1
    return out


def _load_json(text: str, path: str) -> tuple[list, dict[int, int]]:
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise InventoryError(path, 1, f"JSON nested {depth} levels deep (the limit is {MAX_JSON_DEPTH})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise InventoryError(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        items, lines = [], {}
        for no, ln in enumerate(text.split("\n"), 1):  # JSON Lines
            if ln.strip():
                try:
                    items.append(json.loads(ln))
                except json.JSONDecodeError as e2:
                    raise InventoryError(path, no, f"invalid JSON line: {e2.msg}") from None
                lines[len(items) - 1] = no
        return items, lines
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(i, dict) for i in items):
        raise InventoryError(path, 1, "JSON inventory must be an object or an array of objects")
    return items, _item_lines(text)


def sniff(text: str) -> str | None:
    lines = text.split("\n")
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("#TYPE"):
        return "gethotfix-csv"
    if first.startswith(("[", "{")):
        return "json"
    if first.startswith("Node,") and "HotFixID" in first:
        return "wmic-qfe-csv"
    if "HotFixID" in first and "," in first:
        return "gethotfix-csv"
    if computerinfo.looks_like(lines):
        return "computerinfo"
    if systeminfo.looks_like(lines) or _systeminfo_csv(lines):
        return "systeminfo"
    header = [h.strip().lower() for h in first.split(",")]
    if "host" in header and ("os" in header or "kbs" in header):
        return "hosts-csv"
    return None


def _systeminfo_csv(lines: list[str]) -> bool:
    """`systeminfo /fo csv` in any language: the first data row's third cell is an OS version."""
    rows = [ln for ln in lines[:4] if ln.strip()]
    if len(rows) < 2 or not rows[0].lstrip().startswith('"'):
        return False
    cells = next(csv.reader(rows[1:2]), [])
    return len(cells) > 2 and systeminfo.VERSION.match(cells[2]) is not None


def _json_kind(items: list[dict]) -> str | None:
    keys = set().union(*(i.keys() for i in items)) if items else set()
    if computerinfo.is_json(items[0] if items else {}):
        return "computerinfo-json"
    if "hotfix_id" in keys:
        return "osquery-patches"
    if "HotFixID" in keys:
        return "gethotfix-json"
    if {"platform", "build", "major"} <= keys:
        return "osquery-os_version"
    if "facts" in keys or "os_name" in keys or "installed_kbs" in keys:
        return "facts-json"
    return None


def parse_text(text: str, path: str) -> tuple[list[HostFacts], list[InventoryError], str]:
    """(hosts, per-host errors, format name) of decoded inventory text."""
    if not text.strip():
        raise InventoryError(path, 1, "empty file")
    kind = sniff(text)
    if kind == "json":
        items, lines_of = _load_json(text, path)
        kind = _json_kind(items)
        if kind in ("osquery-patches", "gethotfix-json"):
            hosts, errors = hotfix.parse_json(items, lines_of, path)
        elif kind == "osquery-os_version":
            hosts, errors = structured.os_version_rows(items, lines_of, path)
        elif kind == "computerinfo-json":
            hosts, errors = computerinfo.parse_json(items, lines_of, path)
        elif kind == "facts-json":
            hosts, errors = structured.facts_json(items, lines_of, path)
        else:
            raise InventoryError(path, 1, "JSON of an unknown kind (expected Get-HotFix / Win32_QuickFixEngineering, Get-ComputerInfo, osquery patches / os_version, or facts)")
    elif kind == "systeminfo":
        hosts, errors = systeminfo.parse(text, path)
        junk = junk_error(text, path) if not text.lstrip().startswith('"') else None
        errors += [junk] if junk else []
    elif kind == "computerinfo":
        hosts, errors = computerinfo.parse_text(text, path)
    elif kind in ("gethotfix-csv", "wmic-qfe-csv"):
        hosts, errors = hotfix.parse_csv(text, path)
    elif kind == "hosts-csv":
        hosts, errors = structured.plain_csv(text, path)
    else:
        first = next((i for i, ln in enumerate(text.split("\n"), 1) if ln.strip()), 1)
        raise InventoryError(path, first, "unknown inventory format (expected systeminfo, Get-ComputerInfo, Get-HotFix CSV/JSON, wmic qfe CSV, "
                                          "osquery patches/os_version JSON, a host,os,build,kbs CSV or facts JSON)")
    for h in hosts:
        h.sources.append(Path(path).name)
    return hosts, errors, kind


def read_file(path: str | Path) -> tuple[list[HostFacts], list[InventoryError], str]:
    """Read one file within the limits of limits.py (size checked before reading)."""
    p = str(path)
    try:
        data = read_bounded(path, MAX_FILE_BYTES)
    except NotRegularFile as exc:
        raise InventoryError(p, None, str(exc)) from None
    except InputTooLarge as exc:
        raise InventoryError(p, None, f"{exc} (split the export)") from None
    except OSError as exc:
        raise InventoryError(p, None, exc.strerror or str(exc)) from None
    text, _encoding = decode(data, p)
    del data
    hosts, errors, kind = parse_text(text, p)
    return hosts, cap_errors(errors, p), kind
