"""Emulated-host profiles: loaded from the JSON files in lab/profiles/.

A profile is data, not code: every value an emulated host sends (negotiate
fields, NativeOS strings, NTLM names and version, what anonymous and guest
logons may reach, the MS17-010 and DoublePulsar answers) and the findings a
correct scanner must report for it.  Each file names the capture frames (or
checks.md, or the local Samba 4.17 run) its values come from.  Loading is
strict: an unknown key, finding id or status is an error, so a typo in a
profile cannot silently change what the lab answers.

`eol-os` is not written in the files: it depends on the scan date, so it is
derived from the profile's OS candidates and their end-of-support dates
(`expected_findings`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from .profile_model import (  # the vocabulary callers read as profiles.X (tests, cli, the lab)
    COMPRESSION_CODES,
    DEFAULT_ORDER,
    ROLES,
    Profile,
    ProfileError,
    Share,
    doublepulsar_key,
)
from .schema import parse_profile

__all__ = ["COMPRESSION_CODES", "DEFAULT_ORDER", "ROLES", "Profile", "ProfileError", "Share", "doublepulsar_key",
           "parse_profile", "load_all", "get", "ordered_names"]


@lru_cache(maxsize=1)
def load_all() -> dict[str, Profile]:
    """Every profile shipped in lab/profiles/, keyed by name."""
    out: dict[str, Profile] = {}
    folder = resources.files("smbsentry.lab").joinpath("profiles")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            doc = json.loads(entry.read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{entry.name}: {exc}") from None
        profile = parse_profile(doc)
        if profile.name + ".json" != entry.name:
            raise ProfileError(f"{entry.name}: the file name must be the profile name")
        out[profile.name] = profile
    return out


def get(name: str) -> Profile:
    profiles = load_all()
    try:
        return profiles[name]
    except KeyError:
        raise ProfileError(f"unknown profile {name!r}; known: {', '.join(ordered_names())}") from None


def ordered_names() -> list[str]:
    """Profile names in the built-in mix order (DEFAULT_ORDER, then any others)."""
    names = load_all()
    return [n for n in DEFAULT_ORDER if n in names] + sorted(n for n in names if n not in DEFAULT_ORDER)
