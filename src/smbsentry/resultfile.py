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

import codecs
import io
import json
import sys
from pathlib import Path

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


FINDING_KEYS = ("evidence", "reason", "inferred", "port")
DETAIL_KEYS = ("shares", "architecture", "xor_key", "audit", "exposed_to")
IDENTITY_KEYS = ("netbios_name", "netbios_domain", "dns_name", "dns_domain", "dns_forest", "os_version", "os_build", "os_name",
                 "os_candidates", "os_build_shared", "implementation", "samba_version", "source")
TEXT_CAP = 600


def _cap(value):
    return value[:TEXT_CAP] if isinstance(value, str) else value


def slim(rec):
    """What the planner reads of a scan record, and nothing else: a plan of 10,000 hosts must not hold
    10,000 full records (services, dialect lists, NTLM facts) in memory. Audit records pass unchanged."""
    if not isinstance(rec, dict) or "findings" not in rec or "verdicts" in rec:
        return rec
    out = {k: rec[k] for k in ("address", "hostname", "host", "ports", "errors", "role", "kind", "smb1_usage", "roles",
                               "tags", "holds_data", "shares", "source") if k in rec}
    if isinstance(out.get("errors"), list):
        out["errors"] = [_cap(e) for e in out["errors"][:20]]
    ident = rec.get("identity")
    if isinstance(ident, dict):
        out["identity"] = {k: ident[k] for k in IDENTITY_KEYS if k in ident}
    smb1 = rec.get("smb1")
    if isinstance(smb1, dict):
        out["smb1"] = {k: smb1[k] for k in ("enabled", "native_os") if k in smb1}
    services = rec.get("services")
    if isinstance(services, dict):
        out["services"] = {k: True for k, v in services.items() if v}
    findings = []
    for f in rec.get("findings") or ():
        if not isinstance(f, dict):
            findings.append(f)
            continue
        # ids and statuses repeat on every host: one string object each (titles and severities come from the kb)
        g = {"id": sys.intern(f["id"]) if isinstance(f.get("id"), str) else f.get("id"),
             "status": sys.intern(f["status"]) if isinstance(f.get("status"), str) else f.get("status")}
        g.update((k, _cap(f[k])) for k in FINDING_KEYS if k in f)
        details = f.get("details")
        if isinstance(details, dict):
            g["details"] = {k: details[k] for k in DETAIL_KEYS if k in details}
        findings.append(g)
    out["findings"] = findings
    return out


def _encoding(head: bytes) -> str:
    """The text encoding of a results file, from its first bytes (BOM, or the NULs of UTF-16)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return "utf-16-le"
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        return "utf-16-be"
    return "utf-8"


def _whole(fh, where: str, keep) -> list:
    """One JSON document (an array of hosts, a report, one host object)."""
    text = fh.read()
    try:
        items = _items(json.loads(text), where)
    except RecursionError:
        raise InventoryError(where, None, "JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InventoryError(where, exc.lineno, f"invalid or truncated JSON: {exc.msg}") from None
    del text
    return [keep(r) for r in items]


def _lines(fh, where: str, keep) -> list:
    """JSON Lines, one record at a time: a file of 10,000 hosts is never held whole."""
    items = []
    for no, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except RecursionError:
            raise InventoryError(where, no, "JSON nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise InventoryError(where, no, f"invalid or truncated JSON: {exc.msg}") from None
        except UnicodeDecodeError as exc:
            raise InventoryError(where, no, f"not valid UTF-8 at byte {exc.start} of the line") from None
        items += [keep(r) for r in _items(value, where)]
    return items


def _read(path: Path, keep) -> list:
    with path.open("rb") as raw:
        enc = _encoding(raw.read(4096))
        raw.seek(0)
        if enc == "utf-8" and raw.read(1) == b"{":  # JSON Lines in UTF-8 (the scan's own output): bytes straight to json
            raw.seek(0)
            try:
                json.loads(raw.readline())
                raw.seek(0)
                return _lines(raw, str(path), keep)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                pass
        raw.seek(0)
        with io.TextIOWrapper(raw, encoding=enc, errors="strict", newline=None) as fh:
            try:
                first = next((line for line in fh if line.strip()), "")
                if not first:
                    raise InventoryError(str(path), 1, "empty file")
                try:
                    json.loads(first)
                    whole = first.lstrip().startswith("[")
                except (json.JSONDecodeError, RecursionError):
                    whole = True  # a document spread over lines (indented JSON), or bad input _whole names
                fh.seek(0)
                return _whole(fh, str(path), keep) if whole else _lines(fh, str(path), keep)
            except UnicodeDecodeError as exc:
                raise InventoryError(str(path), None, f"not valid {enc} text at byte {exc.start}") from None


def _files(path: Path) -> list[Path]:
    from .textio import expand_files

    return expand_files([path])


def load_results(paths, shape=None) -> list[dict]:
    """Host objects from JSON, JSON Lines or report files (UTF-8 or UTF-16), in order; InventoryError on bad input.

    `shape` (e.g. `slim`) is applied to each record as it is read."""
    keep = shape or (lambda r: r)
    records: list[dict] = []
    for path in map(Path, paths):
        for f in _files(path):
            try:
                size = f.stat().st_size
                if size > MAX_BYTES:
                    raise InventoryError(str(f), None, f"{size} bytes: larger than the {MAX_BYTES >> 20} MiB this reads")
                items = _read(f, keep)
            except OSError as exc:
                raise InventoryError(str(f), None, exc.strerror or str(exc)) from None
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise InventoryError(str(f), None, f"item {i + 1} is not a JSON object")
            records += items
    return records


def load_stored_scan(db: str | None, scan_id: int, shape=None) -> list[dict]:
    """The host records of a stored scan; InventoryError (naming the scan) when there is none or it is empty."""
    from .store import Store, StoreError

    try:
        store = Store.open(db)
    except StoreError as exc:
        raise InventoryError(f"scan {scan_id}", None, str(exc)) from None
    try:
        store.scan(scan_id)
        hosts = [shape(h) for h in store.hosts(scan_id, limit=None)] if shape else list(store.hosts(scan_id, limit=None))
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
        return usage_records_in(store)
    except StoreError:
        return []
    finally:
        store.close()


def usage_runs(scans: list[dict]) -> list[dict]:
    """The `detect --store` runs among a store's scans (kind smb1-usage): traffic, not scans of hosts."""
    return [s for s in scans if (s.get("options") or {}).get("kind") == "smb1-usage"]


def usage_records_in(store) -> list[dict]:
    """The SMBv1 usage records of an open store, every run's."""
    return [h for s in usage_runs(store.scans()) for h in store.hosts(s["id"], limit=None)]


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
