"""Host records from the files and stores other commands write, for `plan`, `audit --merge` and `respond`.

Read here, in one place:
* scan output: `scan --format json` (an array), `--format jsonl` (one object a line);
* audit output (`audit --format json|jsonl`), merged results (`audit --merge`);
* a report: `report N --format json` ({"scan": {...}, "hosts": [...]}, with
  "format": "smbsentry-report" and a version);
* a stored scan (`--scan N`): its host records, as the store keeps them.

Every file's size is checked before it is read (MAX_BYTES); JSON nested past
Python's recursion limit, a truncated file, a document of an unknown format
or version: one InventoryError naming the file (and line), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from .audit.encoding import decode
from .audit.errors import InventoryError

MAX_BYTES = 1 << 30  # 1 GiB of results: far beyond a /8's worth of hosts with SMB
KNOWN_FORMATS = {"smbsentry-report": (1,), "smbsentry-results": (1,)}


def _items(data, where: str) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and data.get("format") == "smbsentry-plan":
        raise InventoryError(where, None, "this is a plan (plan.json), not scan or audit results")
    if isinstance(data, dict) and isinstance(data.get("hosts"), list) and ("scan" in data or "format" in data):
        fmt, version = data.get("format"), data.get("version")
        if fmt is not None and (fmt not in KNOWN_FORMATS or version not in KNOWN_FORMATS[fmt]):
            raise InventoryError(where, None, f"unknown document format {fmt!r} version {version!r} "
                                              f"(this smbsentry reads {', '.join(f'{k} {v}' for k, vs in KNOWN_FORMATS.items() for v in vs)})")
        return data["hosts"]
    return [data]


def _parse(text: str, where: str) -> list:
    try:
        return _items(json.loads(text), where)
    except RecursionError:
        raise InventoryError(where, None, "JSON nested too deeply") from None
    except json.JSONDecodeError as whole:
        items = []
        lines = text.split("\n")
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except RecursionError:
                raise InventoryError(where, no, "JSON nested too deeply") from None
            except json.JSONDecodeError as exc:
                if len([x for x in lines if x.strip()]) == 1 or no == 1 and text.lstrip()[:1] in "[{" and not items:
                    raise InventoryError(where, whole.lineno, f"invalid or truncated JSON: {whole.msg}") from None
                raise InventoryError(where, no, f"invalid JSON: {exc.msg}") from None
        return items


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(x for x in path.iterdir() if x.is_file() and not x.name.startswith("."))
    return [path]


def load_results(paths) -> list[dict]:
    """Host objects from JSON, JSON Lines or report files (UTF-8 or UTF-16), in order; InventoryError on bad input."""
    records: list[dict] = []
    for path in map(Path, paths):
        for f in _files(path):
            try:
                size = f.stat().st_size
                if size > MAX_BYTES:
                    raise InventoryError(str(f), None, f"{size} bytes: larger than the {MAX_BYTES >> 20} MiB this reads")
                text, _enc = decode(f.read_bytes(), str(f))
            except OSError as exc:
                raise InventoryError(str(f), None, exc.strerror or str(exc)) from None
            if not text.strip():
                raise InventoryError(str(f), 1, "empty file")
            items = _parse(text, str(f))
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise InventoryError(str(f), None, f"item {i + 1} is not a JSON object")
            records += items
    return records


def load_stored_scan(db: str | None, scan_id: int) -> list[dict]:
    """The host records of a stored scan; InventoryError (naming the scan) when there is none or it is empty."""
    from .store import Store, StoreError

    try:
        store = Store.open(db)
    except StoreError as exc:
        raise InventoryError(f"scan {scan_id}", None, str(exc)) from None
    try:
        store.scan(scan_id)
        hosts = list(store.hosts(scan_id, limit=None))
    except (StoreError, KeyError, ValueError) as exc:
        raise InventoryError(f"scan {scan_id}", None, str(exc)) from None
    finally:
        store.close()
    if not hosts:
        raise InventoryError(f"scan {scan_id}", None, "the scan recorded no hosts")
    return hosts + smb1_usage_records(db)


def smb1_usage_records(db: str | None) -> list[dict]:
    """Every SMBv1 inventory `detect --store` recorded in this store (the planner asks before turning SMB1 off)."""
    from .store import Store, StoreError

    try:
        store = Store.open(db)
    except StoreError:
        return []
    try:
        runs = [s["id"] for s in store.scans() if (s.get("options") or {}).get("kind") == "smb1-usage"]
        return [h for sid in runs for h in store.hosts(sid, limit=None)]
    except StoreError:
        return []
    finally:
        store.close()


def plannable(records: list[dict]) -> list[dict]:
    """Records a plan can act on: an SMB port open, another service that answered, or audit facts."""
    out = []
    for r in records:
        ports = r.get("ports")
        if not isinstance(ports, dict):
            out.append(r)  # not a scan record: audit results, or something the planner will name as bad input
            continue
        if any(state == "open" for state in ports.values()) or r.get("services") or r.get("findings"):
            out.append(r)
    return out
