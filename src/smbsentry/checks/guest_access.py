"""Guest access: a logon as Guest with an empty password that the server
accepts as guest (SMB1 Action bit 0, SMB2 session flag IS_GUEST), the shares
it can list, which of them it may write to, and whether ADMIN$ or C$ open."""

from __future__ import annotations

from ..model import Finding
from .base import Check, HostAccess
from .registry import register


@register
class GuestAccess(Check):
    id = "smb-guest-access"

    async def run(self, host: HostAccess) -> list[Finding]:
        acc = await host.access("guest", list_shares=True)
        if acc.reached is None:
            return [self.unknown(acc.detail)]
        details: dict = {}
        evidence = acc.detail
        if acc.shares is not None:
            details["shares"] = [name for name, _, _ in acc.shares]
            evidence += f"; NetShareEnum listed {len(acc.shares)} share(s): {', '.join(details['shares'][:20])}"
        elif acc.shares_detail:
            evidence += f"; {acc.shares_detail}"
        if acc.share_access:
            details["share_access"] = dict(acc.share_access)
            writable = [n for n, a in acc.share_access.items() if a == "writable"]
            admin = [n for n in ("ADMIN$", "C$") if acc.share_access.get(n) in ("writable", "read")]
            if writable:
                evidence += f"; writable: {', '.join(writable)}"
            if admin:
                evidence += f"; administrative shares reachable: {', '.join(admin)}"
        return [self.finding("vulnerable" if acc.reached else "not_vulnerable", evidence=evidence, details=details)]
