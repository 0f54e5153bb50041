"""The list of checks, and `--checks default|all|ID,...` selection."""

from __future__ import annotations

from .base import Check

_REGISTRY: dict[str, type[Check]] = {}
_loaded = False


def register(cls: type[Check]) -> type[Check]:
    if cls.id in _REGISTRY:
        raise ValueError(f"check {cls.id!r} registered twice")
    _REGISTRY[cls.id] = cls
    return cls


def _load() -> None:
    global _loaded
    _loaded = True
    # Importing the modules registers them; the order here is the run order
    # (cheap facts first, then the session-based probes).
    from . import (  # noqa: F401
        doublepulsar,
        eol_os,
        guest_access,
        ms08_067,
        ms09_050,
        ms10_061,
        ms17_010,
        null_session,
        sambacry,
        shadowbrokers,
        signing,
        smbghost,
        smbv1,
    )


ORDER = [
    "smbv1-enabled",
    "smb-signing-not-required",
    "cve-2020-0796",
    "ms17-010",
    "doublepulsar",
    "smb-null-session",
    "smb-guest-access",
    "ms08-067",
    "ms09-050",
    "ms10-061",
    "cve-2017-7494",
    "eol-os",
    # the rest of the Shadow Brokers table (checks/shadowbrokers.py; not default)
    "eclipsedwing",
    "educatedscholar",
    "emeraldthread",
    "erraticgopher",
    "zippybeer",
    "esteemaudit",
    "explodingcan",
    "eskimoroll",
    "englishmansdentist",
    "emphasismine",
    "ewokfrenzy",
    "easypi",
    "easybee",
]


def all_ids() -> list[str]:
    if not _loaded:
        _load()
    return [i for i in ORDER if i in _REGISTRY] + sorted(set(_REGISTRY) - set(ORDER))


def select(spec: str = "default") -> list[Check]:
    """Checks for a --checks value; ValueError naming an unknown id."""
    ids = all_ids()
    spec = spec.strip()
    if spec in ("", "none"):
        return []
    if spec == "all":
        chosen = ids
    elif spec == "default":
        chosen = [i for i in ids if _REGISTRY[i].default]
    else:
        chosen = []
        for part in spec.split(","):
            part = part.strip().lower()
            if part == "default":
                chosen += [i for i in ids if _REGISTRY[i].default]
            elif part not in _REGISTRY:
                raise ValueError(f"unknown check {part!r} (known: {', '.join(ids)})")
            else:
                chosen.append(part)
        chosen = list(dict.fromkeys(chosen))
    return [_REGISTRY[i]() for i in chosen]
