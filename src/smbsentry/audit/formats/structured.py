"""Inventories we define or that carry structured OS facts.

* osquery `os_version` rows (`osqueryi --json "SELECT os_version.*,
  system_info.hostname FROM os_version, system_info"`): name, build and, on
  recent osquery, `revision` (the UBR);
* a plain CSV `host,os,build,kbs` (build "7601", "6.1.7601" or
  "18363.720"; kbs separated by ';', '|' or spaces; an empty kbs cell means
  "not known", not "none"), optionally with address, sp, arch, ubr and any
  other fact name as extra columns;
* facts JSON: audit results written by `smbsentry audit --format json[l]`,
  or objects with fact names; smbsentry's own PowerShell collector output
  ({"format": "smbsentry-collector", ...}) is recognised by its marker and
  read by formats/collector.py.
"""

from __future__ import annotations

import csv
import re
from dataclasses import fields

from ..errors import InventoryError
from ..facts import HostFacts
from . import collector
from .systeminfo import arch_of

BOOL_TRUE = {"1", "true", "yes", "y", "on", "enabled"}
BOOL_FALSE = {"0", "false", "no", "n", "off", "disabled"}
FACT_TYPES = {f.name: f.type for f in fields(HostFacts)}


def os_version_rows(items: list[dict], lines_of: dict[int, int], path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    hosts, errors = [], []
    for i, row in enumerate(items):
        no = lines_of.get(i, 1)
        try:
            build = int(row["build"]) if str(row.get("build", "")).strip() else None
            rev = str(row.get("revision", "")).strip()
            facts = HostFacts(host=row.get("hostname") or row.get("computer_name") or None, os_name=row.get("name") or None,
                              os_version=row.get("version") or None, build=build, ubr=int(rev) if rev else None,
                              architecture=arch_of(str(row.get("arch", ""))), service_pack=0 if str(row.get("major")) == "10" else None)
        except (ValueError, KeyError) as exc:
            errors.append(InventoryError(path, no, f"bad os_version row: {exc}"))
            continue
        if facts.host is None:
            errors.append(InventoryError(path, no, "os_version row has no hostname: join system_info (see the docs) so it can be matched"))
            continue
        hosts.append(facts)
    return hosts, errors


def _value(name: str, text: str):
    text = text.strip()
    if not text:
        return None
    kind = str(FACT_TYPES.get(name, "str"))
    if kind.startswith("dict"):
        pairs = (part.split("=", 1) for part in re.split(r"[;|]+", text) if "=" in part)
        return {k.strip(): (_value("guest_enabled", v) if "bool" in kind else v.strip()) for k, v in pairs}
    if kind.startswith("list"):
        return [x for x in re.split(r"[;|]+", text) if x.strip()]
    if "bool" in kind:
        low = text.lower()
        if low in BOOL_TRUE:
            return True
        if low in BOOL_FALSE:
            return False
        raise ValueError(f"{name}: {text!r} is not yes/no")
    if "int" in kind:
        return int(text)
    return text


def plain_csv(text: str, path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    lines = text.split("\n")
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader)]
    hosts, errors = [], []
    for offset, row in enumerate(reader):
        no = offset + 2
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            errors.append(InventoryError(path, no, f"{len(row)} columns, the header has {len(header)}"))
            continue
        cells = dict(zip(header, row))
        try:
            facts = _csv_host(cells)
        except ValueError as exc:
            errors.append(InventoryError(path, no, str(exc), cells.get("host") or None))
            continue
        hosts.append(facts)
    return hosts, errors


def _csv_host(cells: dict[str, str]) -> HostFacts:
    host = cells.get("host", "").strip()
    if not host:
        raise ValueError("empty host cell")
    facts = HostFacts(host=host, os_name=cells.get("os", "").strip() or None)
    build = cells.get("build", "").strip()
    if build:
        m = re.fullmatch(r"(?:(\d+\.\d+)\.)?(\d{4,5})(?:\.(\d+))?", build)
        if not m:
            raise ValueError(f"cannot read build {build!r} (7601, 6.1.7601 or 18363.720)")
        facts.build = int(m.group(2))
        facts.ubr = int(m.group(3)) if m.group(3) else None
        if m.group(1):
            facts.os_version = f"{m.group(1)}.{facts.build}"
    if cells.get("kbs", "").strip():
        facts.add_kbs(re.split(r"[;|\s]+", cells["kbs"]))
    for name, text in cells.items():
        if name in ("host", "os", "build", "kbs"):
            continue
        target = {"sp": "service_pack", "arch": "architecture", "ip": "address"}.get(name, name)
        if target in FACT_TYPES and target not in ("installed_kbs", "sources"):
            value = _value(target, text)
            if target == "architecture" and value:
                value = arch_of(value) or value
            if value is not None:
                setattr(facts, target, value)
    return facts


def facts_json(items: list[dict], lines_of: dict[int, int], path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    hosts, errors = [], []
    for i, item in enumerate(items):
        if collector.is_collector(item):  # smbsentry's PowerShell collector, sniffed by its marker
            try:
                hosts.append(collector.parse_item(item, path, lines_of.get(i, 1)))
            except InventoryError as exc:
                errors.append(exc)
            continue
        body = item.get("facts", item)
        if not isinstance(body, dict):
            errors.append(InventoryError(path, lines_of.get(i, 1), "`facts` is not an object"))
            continue
        try:
            facts = HostFacts.from_dict(body)
        except TypeError as exc:
            errors.append(InventoryError(path, lines_of.get(i, 1), f"bad facts object: {exc}"))
            continue
        facts.host = item.get("host") or body.get("host") or facts.host
        facts.address = item.get("address") or body.get("address") or facts.address
        if facts.key is None:
            errors.append(InventoryError(path, lines_of.get(i, 1), "facts object names no host or address"))
            continue
        hosts.append(facts)
    return hosts, errors
