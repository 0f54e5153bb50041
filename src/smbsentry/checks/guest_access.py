"""Guest access: a logon as Guest with an empty password that the server
accepts as guest (SMB1 Action bit 0, SMB2 session flag IS_GUEST), the shares
it can list, which of them it may write to, and whether ADMIN$ or C$ open."""

from __future__ import annotations

from ..model import Finding
from .base import Check, HostAccess, access_evidence
from .registry import register


@register
class GuestAccess(Check):
    id = "smb-guest-access"

    async def run(self, host: HostAccess) -> list[Finding]:
        acc = await host.access("guest", list_shares=True)
        if acc.reached is None:
            return [self.unknown(acc.detail)]
        evidence, details = access_evidence(acc)
        return [self.finding("vulnerable" if acc.reached else "not_vulnerable", evidence=evidence, details=details)]
