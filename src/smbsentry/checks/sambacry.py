"""CVE-2017-7494 (SambaCry), inferred: an affected Samba version plus a share
the scanner's logons may write to.  The version comes from SMB1's
NativeLanMan; the write permission from the tree connect's maximal access,
so nothing is ever written or uploaded."""

from __future__ import annotations

from ..kb.findings import samba_affected
from ..model import Finding
from .base import Check, HostAccess


class SambaCry(Check):
    id = "cve-2017-7494"

    async def run(self, host: HostAccess) -> list[Finding]:
        ident = host.result.identity
        if ident.implementation != "samba":
            return []
        if not ident.samba_version:
            return [self.unknown("Samba version not visible (SMBv1 is off, and SMB2 does not disclose it)")]
        affected, matched = samba_affected(self.id, ident.samba_version)
        if not affected:
            return [self.finding("not_vulnerable", evidence=f"Samba {ident.samba_version} is outside the affected ranges", inferred=True)]
        writable: list[str] = []
        tried = []
        for kind in ("anonymous", "guest"):
            acc = await host.access(kind, list_shares=True)
            tried.append(f"{kind}: {acc.detail}")
            writable += [f"{name} ({kind})" for name, a in acc.share_access.items() if a == "writable"]
        if writable:
            return [
                self.finding(
                    "likely",
                    evidence=f"Samba {ident.samba_version} ({matched}) with writable share(s): {', '.join(writable)}",
                    reason="inferred from the version and share permissions; no payload is uploaded",
                    inferred=True,
                    details={"writable_shares": writable},
                )
            ]
        return [
            self.finding(
                "unknown",
                evidence=f"Samba {ident.samba_version} is in the affected range ({matched})",
                reason="no writable share was reachable anonymously or as guest; an authenticated user may still have one",
                inferred=True,
            )
        ]
