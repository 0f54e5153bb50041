"""Map the NTLM-reported OS version and build to product names.

The CHALLENGE's Version field gives major.minor.build but no update revision
and no edition, and client and server editions share builds (7601 is both
Windows 7 SP1 and Server 2008 R2 SP1).  So a lookup returns every candidate
and says when the build is shared, instead of picking one.
"""

from __future__ import annotations

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
    products = tuple(entry["products"])
    name = products[0] if len(products) == 1 else " / ".join(_shorten(products))
    return OsGuess(name, products, len(products) > 1, "windows", entry.get("note"))


def _shorten(products: tuple[str, ...]) -> list[str]:
    """'Windows 10 1903', 'Windows Server 1903' -> 'Windows 10 1903', 'Server 1903'."""
    out = [products[0]]
    for p in products[1:]:
        out.append(p[len("Windows ") :] if p.startswith("Windows Server") else p)
    return out
