"""`Get-ComputerInfo` output: the console list (`Get-ComputerInfo > f`) and `| ConvertTo-Json`.

Property names are English in every display language (values may not be).
What is read: CsName, OsName / WindowsProductName, OsVersion, OsBuildNumber,
WindowsUBR, OsServicePackMajorVersion, OsArchitecture, CsDomain,
CsDomainRole and OsHotFixes.  The console list shows OsHotFixes as "{KB1, KB2, KB3...}": the
trailing "..." means PowerShell cut the list (its enumeration limit), which
is recorded like systeminfo's cap; the JSON form lists every update.
"""

from __future__ import annotations

import re

from ..errors import InventoryError
from ..facts import KB_RE, HostFacts
from .systeminfo import arch_of

NAMES = ("CsName", "OsName", "WindowsProductName", "OsVersion", "OsBuildNumber", "WindowsUBR", "OsServicePackMajorVersion",
         "OsArchitecture", "CsDomain", "CsDomainRole", "OsHotFixes", "CsDNSHostName")
DC_ROLES = {"4", "5", "backupdomaincontroller", "primarydomaincontroller"}


def looks_like(lines: list[str]) -> bool:
    keys = {ln.split(":", 1)[0].strip() for ln in lines[:400] if ":" in ln and ln[:1] not in " \t"}
    return "CsName" in keys and ("OsName" in keys or "OsHotFixes" in keys or "WindowsProductName" in keys)


def is_json(item: dict) -> bool:
    return "CsName" in item and ("OsName" in item or "OsHotFixes" in item or "WindowsProductName" in item)


def _list(text: str) -> dict[str, tuple[int, str]]:
    """Property -> (line, value) of the console list; indented lines continue the previous value."""
    out: dict[str, tuple[int, str]] = {}
    last = None
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line[0] in " \t" and last:
            out[last] = (out[last][0], out[last][1] + " " + line.strip())
            continue
        key, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z]\w*", key.strip()):
            last = key.strip()
            out.setdefault(last, (no, value.strip()))
    return out


def _facts(get, path: str, line: int) -> HostFacts:
    host = str(get("CsName") or get("CsDNSHostName") or "").strip() or None
    if host is None:
        raise InventoryError(path, line, "Get-ComputerInfo output has no CsName")
    facts = HostFacts(host=host, os_name=str(get("OsName") or get("WindowsProductName") or "").strip() or None)
    version = str(get("OsVersion") or "").strip()
    m = re.match(r"(\d+\.\d+)\.(\d+)", version)
    if m:
        facts.os_version, facts.build = version.split(" ")[0], int(m.group(2))
    elif str(get("OsBuildNumber") or "").strip().isdigit():
        facts.build = int(str(get("OsBuildNumber")).strip())
    ubr = str(get("WindowsUBR") or "").strip()
    facts.ubr = int(ubr) if ubr.isdigit() else None
    sp = str(get("OsServicePackMajorVersion") or "").strip()
    facts.service_pack = int(sp) if sp.isdigit() else None
    facts.architecture = arch_of(str(get("OsArchitecture") or ""))
    facts.domain = str(get("CsDomain") or "").strip()[:255] or None
    role = str(get("CsDomainRole") or "").strip().lower()
    if role:
        facts.domain_controller = role in DC_ROLES
    return facts


def parse_text(text: str, path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    props = _list(text)

    def get(name):
        return props.get(name, (0, None))[1]

    try:
        facts = _facts(get, path, 1)
    except InventoryError as exc:
        return [], [exc]
    hot = get("OsHotFixes")
    if hot is not None:
        kbs = [k.upper() for k in KB_RE.findall(hot)]
        facts.add_kbs(kbs, clean=True)
        if hot.rstrip("}").rstrip().endswith("..."):
            facts.hotfixes_declared = len(kbs) + 1  # at least one more than shown
    return [facts], []


def parse_json(items: list[dict], lines_of: dict[int, int], path: str) -> tuple[list[HostFacts], list[InventoryError]]:
    hosts, errors = [], []
    for i, item in enumerate(items):
        try:
            facts = _facts(item.get, path, lines_of.get(i, 1))
        except InventoryError as exc:
            errors.append(exc)
            continue
        hot = item.get("OsHotFixes")
        if isinstance(hot, list):
            facts.add_kbs([h.get("HotFixID") if isinstance(h, dict) else h for h in hot])
        hosts.append(facts)
    return hosts, errors
