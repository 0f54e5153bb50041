"""Installed-update lists: Get-HotFix (Export-Csv, ConvertTo-Json), `wmic qfe list full /format:csv`, osquery `patches`.

They carry no OS facts, only the computer name and the update ids, so a host
read from one of them is merged with the systeminfo (or CSV) facts of the
same name.  Ids that are not KB numbers ("File 1", "Q147222") are ignored.
"""

from __future__ import annotations

import csv

from ..errors import InventoryError
from ..facts import KB_RE, HostFacts

NAME_COLUMNS = ("CSName", "PSComputerName", "Node", "csname", "__SERVER")
ID_COLUMNS = ("HotFixID", "hotfix_id")


def _collect(rows: list[tuple[int, dict]], path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    hosts: dict[str, HostFacts] = {}
    errors = []
    for no, row in rows:
        name = next((str(row[c]).strip() for c in NAME_COLUMNS if row.get(c)), None)
        ident = next((row[c] for c in ID_COLUMNS if c in row), None)
        if ident is None:
            errors.append(InventoryError(path, no, "row has no HotFixID"))
            continue
        if not name:
            errors.append(InventoryError(path, no, f"{ident}: row names no computer (CSName / Node / PSComputerName)"))
            continue
        facts = hosts.setdefault(name.lower(), HostFacts(host=name, installed_kbs=[]))
        facts.add_kbs(KB_RE.findall(str(ident)))
    return list(hosts.values()), errors


def parse_csv(text: str, path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    """Export-Csv output (optionally led by a #TYPE line) or wmic's CSV (led by a blank line)."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#TYPE")), None)
    if start is None:
        return [], [InventoryError(path, 1, "no header line")]
    reader = csv.reader(lines[start:])
    header = next(reader)
    if not any(c in header for c in ID_COLUMNS):
        return [], [InventoryError(path, start + 1, "header has no HotFixID column")]
    rows, errors = [], []
    for offset, row in enumerate(reader):
        no = start + 2 + offset
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            errors.append(InventoryError(path, no, f"{len(row)} columns, the header has {len(header)}"))
            continue
        rows.append((no, dict(zip(header, row))))
    hosts, more = _collect(rows, path)
    return hosts, errors + more


def parse_json(items: list[dict], lines_of: dict[int, int], path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    """Get-HotFix | ConvertTo-Json objects, or osqueryi --json rows of the patches table."""
    return _collect([(lines_of.get(i, 1), item) for i, item in enumerate(items)], path)
