"""`systeminfo` output in any display language, one or many hosts per file.

The list format aligns values in a column, continuation lines (processors,
hotfixes, network cards) are indented, and several labels contain a colon
themselves ("Virtual Memory: Max Size:"), so a line is split at its first
colon.  Fields are found by label (labels.py: 16 languages) and, where a
label is unknown, by place and value shape, which are the same in every
language: a block starts with the host name line, followed by the OS name
(a value naming Windows) and the OS version ("10.0.18363 暂缺 Build 18363",
"6.1.7601 Service Pack 1 сборка 7601", "5.2.3790 Build 3790"); the domain
is the line before the logon server "\\\\DC"; the hotfix header is the line
whose continuation lists "[01]: KB..." (or, with none installed, the line
after the logon server); the network cards follow it.  `systeminfo /fo
csv` (a header row, one row per host) is read too, by header label or by
column position.

systeminfo lists only part of a very long hotfix list while announcing the
whole count ("273 Hotfix(s) Installed." over 245 entries): when the block
goes on after the list, that is systeminfo's limit, recorded in
`hotfixes_declared`; when the file ends inside the list, the output was cut
and the host is refused.
"""

from __future__ import annotations

import csv
import re
from typing import NamedTuple

from ..errors import InventoryError
from ..facts import KB_RE, HostFacts
from .labels import DOMAIN_CONTROLLER, LABELS

VERSION = re.compile(r"^(\d+\.\d+\.\d+)\b(.*?)(\d+)\s*$")
SP = re.compile(r"Service Pack (\d+)", re.I)
ENTRY = re.compile(r"^\s*\[\d+\]:")
HOTFIX_ENTRY = re.compile(r"^\s*\[\d+\]:\s*(?:KB\d|File \d|Q\d)", re.I)
IPV4 = re.compile(r"^\s*\[\d+\]:\s*(\d{1,3}(?:\.\d{1,3}){3})\s*$")
ARCH_VALUE = re.compile(r"\b(x64|x86|arm64|itanium|ia64)\b", re.I)
CSV_COLUMNS = {0: "host", 1: "os_name", 2: "os_version", 4: "config", 13: "arch", 28: "domain", 30: "hotfix", 31: "nic"}


class Field(NamedTuple):
    line: int
    label: str
    value: str
    more: list[tuple[int, str]]  # continuation lines (line number, text)


def _fields(lines: list[str]) -> list[Field]:
    out: list[Field] = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if out:
                out[-1].more.append((no, line))
            continue
        label, sep, value = line.partition(":")
        if sep:
            out.append(Field(no, label.strip(), value.strip(), []))
    return out


def _starts_block(fields: list[Field], i: int) -> bool:
    if LABELS.get(fields[i].label.lower()) == "host":
        return True
    return i + 2 < len(fields) and "windows" in fields[i + 1].value.lower() and VERSION.match(fields[i + 2].value) is not None


def looks_like(lines: list[str]) -> bool:
    """A systeminfo list: a known host label, or a host / Windows name / version line triple near the top."""
    fields = _fields(lines[:80])
    return any(_starts_block(fields, i) for i in range(min(len(fields), 40)))


def arch_of(text: str) -> str | None:
    t = text.lower()
    for word, arch in (("arm64", "arm64"), ("x64", "x64"), ("amd64", "x64"), ("64-bit", "x64"), ("64 位", "x64"), ("itanium", "ia64"),
                       ("ia64", "ia64"), ("x86", "x86"), ("32-bit", "x86"), ("32 位", "x86")):
        if word in t:
            return arch
    return None


def _roles(block: list[Field]) -> dict[str, Field]:
    """Role -> field of one host block: by label, else by place and value shape."""
    roles: dict[str, Field] = {}
    for f in block:
        role = LABELS.get(f.label.lower())
        if role and role not in roles:
            roles[role] = f
    roles.setdefault("host", block[0])
    if len(block) > 2:
        if "windows" in block[1].value.lower():
            roles.setdefault("os_name", block[1])
        if VERSION.match(block[2].value):
            roles.setdefault("os_version", block[2])
    if "config" not in roles and len(block) > 4 and "microsoft" in block[3].value.lower():
        roles["config"] = block[4]
    if "hotfix" not in roles:
        for i, f in enumerate(block[3:], 3):
            if (f.more and HOTFIX_ENTRY.match(f.more[0][1])) or (block[i - 1].value.startswith("\\\\") and i > 5):
                roles["hotfix"] = f
                break
    if "domain" not in roles:  # the line before the logon server ("\\\\DC01")
        for i, f in enumerate(block[6:], 6):
            if f.value.startswith("\\\\"):
                roles["domain"] = block[i - 1]
                break
    if "nic" not in roles and "hotfix" in roles:
        at = block.index(roles["hotfix"])
        if at + 1 < len(block):
            roles["nic"] = block[at + 1]
    if "arch" not in roles:
        end = block.index(roles["hotfix"]) if "hotfix" in roles else len(block)
        for f in block[5:end]:
            if len(f.value) < 40 and ARCH_VALUE.search(f.value) and "windows" not in f.value.lower() and not f.more:
                roles["arch"] = f
                break
    return roles


def _version(facts: HostFacts, f: Field, path: str) -> None:
    m = VERSION.match(f.value)
    if not m:
        raise InventoryError(path, f.line, f"cannot read OS Version {f.value!r}", facts.host)
    version, middle, build = m.group(1), m.group(2), int(m.group(3))
    facts.os_version = version
    facts.build = int(version.split(".")[2]) if build != int(version.split(".")[2]) else build
    sp = SP.search(middle) or re.search(r"(\d+)", middle)  # "Service Pack 1", "Пакет обновления 1"; none: RTM ("N/A", "暂缺", "N/D")
    facts.service_pack = int(sp.group(1)) if sp else 0


def _hotfixes(facts: HostFacts, f: Field, block: list[Field], path: str) -> None:
    m = re.search(r"(\d+)", f.value)
    declared = int(m.group(1)) if m else 0  # "N/A", "暂缺", "Н/Д": none
    kbs: list[str] = []
    listed = 0
    for _no, text in f.more:
        entry = text.strip()
        cut = entry.find("]:")
        if not (entry.startswith("[") and cut > 0):
            continue
        listed += 1
        ident = entry[cut + 2:].strip()
        if ident[:2] in ("KB", "kb") and ident[2:].isdigit():  # the common case, without a regex
            kbs.append(ident.upper())
        else:
            kbs += [k.upper() for k in KB_RE.findall(ident)]
    if listed < declared:
        if block[-1] is f:  # the file (or the block) ends inside the list: cut short, not systeminfo's limit
            raise InventoryError(path, f.line, f"{declared} hotfixes announced, {listed} listed (output cut short?)", facts.host)
        facts.hotfixes_declared = declared
    elif listed > declared:
        raise InventoryError(path, f.line, f"{declared} hotfixes announced, {listed} listed", facts.host)
    facts.add_kbs(kbs, clean=True)


def _host(block: list[Field], path: str) -> HostFacts:
    roles = _roles(block)
    facts = HostFacts(host=roles["host"].value or None)
    if "os_name" not in roles or "os_version" not in roles:
        raise InventoryError(path, block[0].line, "systeminfo block has no OS Name or OS Version line", facts.host)
    facts.os_name = roles["os_name"].value or None
    _version(facts, roles["os_version"], path)
    if "config" in roles:
        value = roles["config"].value.lower()
        facts.domain_controller = any(w in value for w in DOMAIN_CONTROLLER)
    if "arch" in roles:
        facts.architecture = arch_of(roles["arch"].value)
    if "domain" in roles and roles["domain"].value:
        facts.domain = roles["domain"].value[:255]  # a DNS name is at most 253 characters: more is not a domain
    if "hotfix" not in roles:
        raise InventoryError(path, block[0].line, "systeminfo block has no Hotfix(s) line (output cut short?)", facts.host)
    _hotfixes(facts, roles["hotfix"], block, path)
    if "nic" in roles:
        in_ip = False
        for _no, text in roles["nic"].more:
            in_ip = in_ip or "ip" in text.lower()
            m = IPV4.match(text)
            if in_ip and m:
                facts.address = m.group(1)
                break
    return facts


def parse(text: str, path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    lines = text.split("\n")
    first = next((ln for ln in lines if ln.strip()), "")
    if first.lstrip().startswith('"'):
        return _parse_csv(lines, path)
    fields = _fields(lines)
    starts = [i for i in range(len(fields)) if _starts_block(fields, i)]
    hosts, errors = [], []
    for a, b in zip(starts, starts[1:] + [len(fields)]):
        try:
            hosts.append(_host(fields[a:b], path))
        except InventoryError as exc:
            errors.append(exc)
    if not hosts and not errors:
        errors.append(InventoryError(path, 1, "no systeminfo host block found"))
    return hosts, errors


def _parse_csv(lines: list[str], path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    """`systeminfo /fo csv`: one row per host, the hotfix cell is "N Hotfix(s) Installed.,[01]: KB...,..."."""
    rows = list(csv.reader(ln for ln in lines if ln.strip()))
    header = [LABELS.get(h.strip().lower()) for h in rows[0]]
    if "host" not in header:  # an unknown language: the columns' order is the same in every one
        header = [CSV_COLUMNS.get(i) for i in range(len(rows[0]))]
    hosts, errors = [], []
    for no, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            errors.append(InventoryError(path, no, f"{len(row)} columns, the header has {len(header)}"))
            continue
        block = []
        for role, cell in zip(header, row):
            if not role:
                continue
            if role in ("hotfix", "nic"):
                head, *rest = cell.split(",")
                block.append(Field(no, _CSV_LABEL[role], head, [(no, "  " + r) for r in rest]))
            else:
                block.append(Field(no, _CSV_LABEL[role], cell, []))
        block.sort(key=lambda f: _ORDER.index(f.label))
        try:
            hosts.append(_host(block, path))
        except InventoryError as exc:
            errors.append(exc)
    return hosts, errors


_CSV_LABEL = {"host": "Host Name", "os_name": "OS Name", "os_version": "OS Version", "config": "OS Configuration", "arch": "System Type",
              "domain": "Domain",
              "hotfix": "Hotfix(s)", "nic": "Network Card(s)"}
_ORDER = list(_CSV_LABEL.values())
