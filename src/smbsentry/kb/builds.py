"""Map the NTLM-reported OS version and build to product names.

The CHALLENGE's Version field gives major.minor.build but no update revision
and no edition, and client and server editions share builds (7601 is both
Windows 7 SP1 and Server 2008 R2 SP1).  So a lookup returns every candidate
and says when the build is shared, instead of picking one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .store import kb


@dataclass(frozen=True, slots=True)
class OsGuess:
    name: str | None
    candidates: tuple[str, ...]
    shared: bool
    implementation: str | None  # "windows" | "samba" | None
    note: str | None = None
    # one tuple per product line, oldest release first: ("Windows 10 2004", ..., "Windows 10 22H2");
    # later releases of a line share the base build through an enablement package
    lines: tuple[tuple[str, ...], ...] = ()


@lru_cache(maxsize=1)
def _table() -> tuple[dict[tuple[str, int], dict], dict]:
    raw = kb().builds  # validated against schema.BUILDS, product names checked against products.json
    table = {(b["version"], b["build"]): b for b in raw["builds"]}
    return table, raw["samba"]


def lookup(major: int, minor: int, build: int) -> OsGuess:
    table, samba = _table()
    version = f"{major}.{minor}"
    if version == samba["version"] and build == samba["build"]:
        return OsGuess("Samba", ("Samba",), False, "samba")
    entry = table.get((version, build))
    if entry is None:
        if major >= 5:
            return OsGuess(None, (), False, "windows", f"unknown build {version}.{build}")
        return OsGuess(None, (), False, None, f"unknown version {version}.{build}")
    later = entry.get("enablement", {})
    lines = tuple((p, *later.get(p, ())) for p in entry["products"])
    candidates = tuple(n for line in lines for n in line)
    name = " / ".join(_shorten([_range(line) for line in lines]))
    return OsGuess(name, candidates, len(candidates) > 1, "windows", entry.get("note"), lines)


@lru_cache(maxsize=1)
def samba_native_lm() -> re.Pattern[str] | None:
    """What a Samba server's SMB1 NativeLanMan looks like ("Samba 4.5.16"): group 1 is the version (builds.json)."""
    pattern = _table()[1].get("native_lm")
    return re.compile(pattern) if pattern else None


@lru_cache(maxsize=1)
def _nt_versions() -> dict[str, dict]:
    return {v["version"]: v for v in kb().builds.get("nt_versions", ())}


def nt_version_name(version: str) -> str:
    """'5.1' -> 'Windows XP': the name of an NT version whose build is not known (builds.json `nt_versions`)."""
    entry = _nt_versions().get(version)
    return entry["name"] if entry else f"Windows NT {version}"


def nt_version_ended(version: str) -> bool:
    """Every product of this NT version left support (builds.json `nt_versions[].end_of_life`)."""
    entry = _nt_versions().get(version)
    return bool(entry and entry["end_of_life"])


def _range(line: tuple[str, ...]) -> str:
    """('Windows 10 2004', ..., 'Windows 10 22H2') -> 'Windows 10 2004-22H2'."""
    if len(line) == 1:
        return line[0]
    first, last = line[0], line[-1]
    head, _, _ = first.rpartition(" ")
    return f"{first}-{last[len(head) + 1:]}" if last.startswith(head + " ") else f"{first} - {last}"


def _shorten(names: list[str]) -> list[str]:
    """'Windows 10 1903', 'Windows Server 1903' -> 'Windows 10 1903', 'Server 1903'."""
    out = [names[0]]
    for p in names[1:]:
        out.append(p[len("Windows ") :] if p.startswith("Windows Server") else p)
    return out
