"""Contract JSON (as stored) back into model objects, for the writers that take HostResult."""

from __future__ import annotations

from dataclasses import fields
from functools import lru_cache

from ..model import Finding, HostResult, Identity, Smb1Info, Smb2Info


@lru_cache(maxsize=None)
def _names(cls) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def _make(cls, data: dict | None):
    if data is None:
        return None
    names = _names(cls)
    return cls(**{k: v for k, v in data.items() if k in names})


def host_from_dict(d: dict) -> HostResult:
    findings = []
    for f in d.get("findings") or []:
        f = dict(f)
        f.setdefault("title", f.get("id", ""))
        f.setdefault("severity", "info")
        f.setdefault("status", "unknown")
        findings.append(_make(Finding, f))
    return HostResult(
        address=d["address"], hostname=d.get("hostname"), ports=dict(d.get("ports") or {}),
        smb1=_make(Smb1Info, d.get("smb1")) if d.get("smb1") is not None else None,
        smb2=_make(Smb2Info, d.get("smb2")) if d.get("smb2") is not None else None,
        identity=_make(Identity, d.get("identity") or {}), findings=findings,
        errors=list(d.get("errors") or []), duration_ms=d.get("duration_ms") or 0, connections=d.get("connections") or 0,
        services=dict(d.get("services") or {}), role=d.get("role") if isinstance(d.get("role"), dict) else None,
    )


def hosts_csv(records: list[dict], lines: list[str] | None = None) -> str:
    """Host records (as stored) as the scan's CSV, header first: `report --format csv` and respond's hosts.csv.
    `lines`: csv_line() of each record, when the caller made them already (respond, as the scan wrote them)."""
    from .output import CSV_COLUMNS

    return _csv_text(CSV_COLUMNS) + "".join(lines if lines is not None else map(csv_line, records))


def csv_line(record: dict) -> str:
    """One host record's CSV row, line end included."""
    from .output import csv_row

    return _csv_text(csv_row(record))


def _csv_text(row) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue()
