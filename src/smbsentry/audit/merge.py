"""Merge what the inventory says into a remote scan result.

Rules (a remote answer from a probe is evidence of the running system; an
inventory is a statement about installed updates, possibly stale):

1. A remote `vulnerable` or `not_vulnerable` is never changed.  When the
   inventory disagrees (remote vulnerable, inventory patched, or the other
   way) the finding keeps its status and its evidence gains
   "inventory disagrees: ..." (a stale inventory, or an update installed
   but the host not restarted).
2. cve-2020-0796 `likely` (3.1.1 with compression on build 18362/18363,
   patch level not visible remotely): inventory `patched` (build revision
   >= 720 or a fixing update) -> `not_vulnerable`; inventory `missing`
   (revision < 720) -> `vulnerable`: the compressed code path was seen and
   the fix is proven absent.
3. ms17-010 `unknown` (the probe could not run): inventory `patched` ->
   `not_vulnerable`; inventory `missing` -> `likely` with evidence "patch
   missing per inventory": not `vulnerable`, because nothing was proven on
   the wire (SMB1 may be off, which is why the probe could not run).
4. Any other `likely` or `unknown` finding (version-inferred ms08-067,
   ms09-050, ms10-061, ...): inventory `patched` or `not_applicable` ->
   `not_vulnerable`; inventory `missing` -> `likely` (never `vulnerable`).
5. Inventory `unknown` changes nothing.
Every changed finding gets `inferred: true`, the inventory's evidence, and
`details.audit` = {status, evidence, source}; its reason is cleared when the
question it explained is settled.  Audit verdicts with no remote finding
are not added: the scan result describes what the network shows.
"""

from __future__ import annotations

import copy
from typing import Any

from ..model import HostResult
from .result import AuditResult


def _settle(finding: dict, status: str, evidence: str, audit: dict, clear_reason: bool) -> None:
    finding["status"] = status
    finding["evidence"] = evidence
    finding["inferred"] = True
    if clear_reason:
        finding["reason"] = None
    finding.setdefault("details", {})["audit"] = audit


def merge_scan_audit(host: HostResult | dict[str, Any], audit: AuditResult) -> dict[str, Any]:
    """A new host-result dict (contract shape) with the rules above applied; the inputs are not modified."""
    out = copy.deepcopy(host.to_dict() if isinstance(host, HostResult) else host)
    verdicts = {v.id: v for v in audit.verdicts}
    for f in out.get("findings", []):
        v = verdicts.get(f["id"])
        if v is None or v.status == "unknown":
            continue
        info = {"status": v.status, "evidence": v.evidence, "source": audit.source}
        remote = f["status"]
        ok = v.status in ("patched", "not_applicable")
        if remote in ("vulnerable", "not_vulnerable"):
            if (remote == "vulnerable") == ok and v.status != "not_applicable":
                f["evidence"] = f"{f.get('evidence') or ''}; inventory disagrees: {v.status} ({v.evidence})".lstrip("; ")
                f.setdefault("details", {})["audit"] = info
            continue
        inv = f"{'patched' if v.status == 'patched' else v.status.replace('_', ' ')} per inventory: {v.evidence}"
        if f["id"] == "cve-2020-0796" and remote == "likely":
            _settle(f, "not_vulnerable" if ok else "vulnerable", inv, info, True)
        elif ok:
            _settle(f, "not_vulnerable", inv, info, True)
        else:
            _settle(f, "likely", f"patch missing per inventory: {v.evidence}", info, False)
    return out


def merge_results(hosts: list[dict[str, Any]], results: list[AuditResult]) -> list[dict[str, Any]]:
    """Scan host records settled by the audit results that match them (join.match, the one join rule),
    in the scan's order; a host no audit matches is kept as it was.  `audit --merge` and `respond` call this."""
    from .join import match

    pairs = match(hosts, [r.to_dict() for r in results])
    by_host = {i: results[j] for j, i in pairs.items()}
    return [merge_scan_audit(h, by_host[i]) if i in by_host else h for i, h in enumerate(hosts)]
