"""Finding metadata and version facts from kb/data/vulnerabilities.json."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("smbsentry.kb").joinpath("data/vulnerabilities.json").read_text("utf-8"))


def meta(finding_id: str) -> dict:
    """Title, severity, CVEs, references (and version facts) of a finding id."""
    try:
        return _data()["findings"][finding_id]
    except KeyError:
        raise KeyError(f"no knowledge-base entry for finding {finding_id!r}") from None


def affected_build(finding_id: str, version: str, build: int) -> bool:
    return any(b["version"] == version and b["build"] == build for b in meta(finding_id).get("affected_builds", []))


def _vtuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
        if not part.isdigit():
            break
    return tuple(out)


def samba_affected(finding_id: str, version: str) -> tuple[bool, str | None]:
    """(affected, the range that matched) for a Samba version like '4.5.9-Debian'."""
    v = _vtuple(version)
    for lo, hi in meta(finding_id).get("affected_samba", []):
        if _vtuple(lo) <= v < _vtuple(hi):
            return True, f"{lo} <= {version} < {hi}"
    return False, None
