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


def windows_targets(finding_id: str) -> dict[str, frozenset[int]]:
    """NT version ("5.1") -> the builds of the Windows products the KB lists as affected by `finding_id`.

    The Shadow Brokers modules and the arsenal view judge applicability from
    this (kb/data/vulnerabilities.json `affected` products, with their version
    and build from products.json): the table lives in the data, not the checks."""
    k = kb()
    out: dict[str, set[int]] = {}
    for a in k.vulns[finding_id].affected:
        for pid in a.products:
            p = k.products.get(pid)
            if p is None or p.version is None or not p.family.startswith("windows"):
                continue
            builds = out.setdefault(".".join(p.version.split(".")[:2]), set())
            if p.build is not None:
                builds.add(p.build)
    return {v: frozenset(b) for v, b in sorted(out.items(), key=lambda kv: _vtuple(kv[0]))}


def affected_versions(finding_id: str) -> tuple[str, ...]:
    """The product versions (e.g. Domino "6.5.4") the KB lists as affected by `finding_id`."""
    return tuple(v for a in kb().vulns[finding_id].affected for v in a.versions)


def fixed_by(finding_id: str) -> tuple[str, ...]:
    """The KB numbers (references "KB...") the knowledge base names as the fix of `finding_id`."""
    return tuple(r for r in meta(finding_id).get("references", ()) if r.upper().startswith("KB"))


def fixed_revision(finding_id: str, build: int) -> tuple[int, tuple[str, ...]] | None:
    """(the lowest fixed build revision on `build`, the updates that bring it), or None when no update names one.

    Read from the updates that address the finding's bulletin (fixes.json,
    completed by the update catalog's build revisions): the same data the
    credentialed audit decides by, so a scan with credentials and an audit of
    the host's inventory agree."""
    k = kb()
    v = k.vulns.get(finding_id)
    if v is None or not v.bulletin:
        return None
    hits = [(f.fixed_builds[build], f.kb) for f in k.by_bulletin.get(v.bulletin, ()) if build in f.fixed_builds]
    if not hits:
        return None
    low = min(u for u, _ in hits)
    return low, tuple(sorted(kb_id for u, kb_id in hits if u == low))
