"""Finding metadata and version facts from kb/data/vulnerabilities.json.

The remote checks read the raw entries (title, severity, CVEs, references,
affected_builds, affected_samba, fixed_ubr); the file is schema-checked by
store.py before anything here sees it.
"""

from __future__ import annotations

from .model import version_tuple as _vtuple
from .store import kb


def meta(finding_id: str) -> dict:
    """Title, severity, CVEs, references (and version facts) of a finding id."""
    try:
        return kb().findings[finding_id]
    except KeyError:
        raise KeyError(f"no knowledge-base entry for finding {finding_id!r}") from None


def affected_build(finding_id: str, version: str, build: int) -> bool:
    return any(b["version"] == version and b["build"] == build for b in meta(finding_id).get("affected_builds", []))


def samba_affected(finding_id: str, version: str) -> tuple[bool, str | None]:
    """(affected, the range that matched) for a Samba version like '4.5.9-Debian'."""
    v = _vtuple(version)
    for lo, hi in meta(finding_id).get("affected_samba", []):
        if _vtuple(lo) <= v < _vtuple(hi):
            return True, f"{lo} <= {version} < {hi}"
    return False, None
