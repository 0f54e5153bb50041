"""`systeminfo` output, English and Chinese, one or many hosts per file.

The list format aligns values in a column, continuation lines (processors,
hotfixes, network cards) are indented, and several labels contain a colon
themselves ("Virtual Memory: Max Size:"), so a line is split at its first
colon and only the labels below are read.  `systeminfo /fo csv` (header
"Host Name","OS Name",...) is read too.
"""

from __future__ import annotations

import csv
import re

from ..errors import InventoryError
from ..facts import KB_RE, HostFacts

LABELS = {
    "host name": "host", "主机名": "host",
    "os name": "os_name", "os 名称": "os_name",
    "os version": "os_version", "os 版本": "os_version",
    "os configuration": "config", "os 配置": "config",
    "system type": "arch", "系统类型": "arch",
    "hotfix(s)": "hotfix", "修补程序": "hotfix",
    "network card(s)": "nic", "网卡": "nic",
}
VERSION = re.compile(r"^(\d+\.\d+\.\d+)\s+(?:Service Pack (\d+)|N/A)\s+Build\s+(\d+)", re.I)
COUNT = re.compile(r"(\d+)\s*Hotfix\(s\) Installed|安装了\s*(\d+)\s*个修补程序")
IPV4 = re.compile(r"^\s*\[\d+\]:\s*(\d{1,3}(?:\.\d{1,3}){3})\s*$")
DC = ("domain controller", "域控制器")


def looks_like(lines: list[str]) -> bool:
    return any(re.match(r"^(Host Name|主机名)\s*:", ln) for ln in lines[:40])


def arch_of(text: str) -> str | None:
    t = text.lower()
    for word, arch in (("arm64", "arm64"), ("x64", "x64"), ("amd64", "x64"), ("64-bit", "x64"), ("64 位", "x64"), ("itanium", "ia64"),
                       ("ia64", "ia64"), ("x86", "x86"), ("32-bit", "x86"), ("32 位", "x86")):
        if word in t:
            return arch
    return None


def _blocks(lines: list[str]) -> list[tuple[int, list[tuple[int, str, str]]]]:
    """[(first line number, [(line number, key, value), ...]), ...] per host."""
    blocks: list[tuple[int, list]] = []
    key = None
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if blocks and key:
                blocks[-1][1].append((no, key + "+", line))
            continue
        label, _, value = line.partition(":")
        key = LABELS.get(label.strip().lower())
        if key == "host":
            blocks.append((no, []))
        if key and blocks:
            blocks[-1][1].append((no, key, value.strip()))
    return blocks


def _host(first: int, items: list[tuple[int, str, str]], path: str) -> HostFacts:
    facts = HostFacts()
    kbs: list[str] = []
    declared = None
    declared_at = first
    seen_entries = 0
    in_ip = False
    for no, key, value in items:
        if key == "host":
            facts.host = value or None
        elif key == "os_name":
            facts.os_name = value or None
        elif key == "os_version":
            m = VERSION.match(value)
            if not m:
                raise InventoryError(path, no, f"cannot read OS Version {value!r}", facts.host)
            facts.os_version, facts.service_pack, facts.build = m.group(1), int(m.group(2) or 0), int(m.group(3))
        elif key == "config":
            facts.domain_controller = any(w in value.lower() for w in DC)
        elif key == "arch":
            facts.architecture = arch_of(value)
        elif key == "hotfix":
            m = COUNT.search(value)
            declared_at = no
            declared = int(next(g for g in m.groups() if g)) if m else (0 if value.upper() == "N/A" else None)
            if declared is None:
                raise InventoryError(path, no, f"cannot read the hotfix count {value!r}", facts.host)
        elif key == "hotfix+":
            entry = value.strip()
            cut = entry.find("]:")
            if entry.startswith("[") and cut > 0:
                seen_entries += 1
                ident = entry[cut + 2:].strip()
                if ident[:2] in ("KB", "kb") and ident[2:].isdigit():  # the common case, without a regex
                    kbs.append(ident.upper())
                else:
                    kbs += [k.upper() for k in KB_RE.findall(ident)]
        elif key == "nic+":
            in_ip = in_ip or "ip" in value.lower()
            m = IPV4.match(value)
            if in_ip and m and facts.address is None:
                facts.address = m.group(1)
    if facts.os_name is None or facts.os_version is None:
        raise InventoryError(path, first, "systeminfo block has no OS Name or OS Version line", facts.host)
    if declared is None:
        raise InventoryError(path, first, "systeminfo block has no Hotfix(s) line (output cut short?)", facts.host)
    if seen_entries != declared:
        raise InventoryError(path, declared_at, f"{declared} hotfixes announced, {seen_entries} listed (output cut short?)", facts.host)
    facts.add_kbs(kbs, clean=True)
    return facts


def parse(text: str, path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    lines = text.split("\n")
    if lines and lines[0].lstrip().startswith('"'):
        return _parse_csv(lines, path)
    hosts, errors = [], []
    for first, items in _blocks(lines):
        try:
            hosts.append(_host(first, items, path))
        except InventoryError as exc:
            errors.append(exc)
    if not hosts and not errors:
        errors.append(InventoryError(path, 1, "no systeminfo host block found"))
    return hosts, errors


def _parse_csv(lines: list[str], path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    """`systeminfo /fo csv`: one row per host, the hotfix cell is "N Hotfix(s) Installed.,[01]: KB...,..."."""
    rows = list(csv.reader(lines))
    header = [LABELS.get(h.strip().lower()) for h in rows[0]]
    hosts, errors = [], []
    for no, row in enumerate(rows[1:], 2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            errors.append(InventoryError(path, no, f"{len(row)} columns, the header has {len(header)}"))
            continue
        items = [(no, key, cell) for key, cell in zip(header, row) if key]
        expanded: list[tuple[int, str, str]] = []
        for n, key, cell in items:
            if key in ("hotfix", "nic"):
                head, *rest = cell.split(",")
                expanded.append((n, key, head))
                expanded += [(n, key + "+", r) for r in rest]
            else:
                expanded.append((n, key, cell))
        try:
            hosts.append(_host(no, expanded, path))
        except InventoryError as exc:
            errors.append(exc)
    return hosts, errors
