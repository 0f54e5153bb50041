"""SMB signing not required, read directly from the negotiate SecurityMode.

SMB1: 0x08 means required; SMB2/3: 0x02 means required.  Libraries that
derive signing (impacket marks every 3.1.1 connection as required) have
caused false negatives, so nothing here is derived."""

from __future__ import annotations

from ..model import Finding
from .base import Check, HostAccess


def signing_per_dialect(host: HostAccess) -> list[tuple[str, str]]:
    """[("SMB2", "required" | ...), ("SMB1", ...)] as the negotiates answered; the reflected-relay
    check and the baseline read the same list."""
    r = host.result
    seen = []
    if r.smb2 is not None and r.smb2.signing:
        seen.append(("SMB2", r.smb2.signing))
    if r.smb1 is not None and r.smb1.enabled and r.smb1.signing:
        seen.append(("SMB1", r.smb1.signing))
    return seen


class SigningNotRequired(Check):
    id = "smb-signing-not-required"

    async def run(self, host: HostAccess) -> list[Finding]:
        seen = signing_per_dialect(host)
        if not seen:
            return []
        weak = [(p, s) for p, s in seen if s != "required"]
        evidence = "; ".join(f"{p} negotiate: signing {s}" for p, s in seen)
        return [self.finding("vulnerable" if weak else "not_vulnerable", evidence=evidence)]
