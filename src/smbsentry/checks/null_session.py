"""Null session: an anonymous logon that reaches IPC$, and what it can list.

Anonymous IPC$ plus share listing over SRVSVC (NetShareEnumAll) shows what a
worm can reach without credentials (checks.md)."""

from __future__ import annotations

from ..model import Finding
from .base import Check, HostAccess, access_evidence
from .registry import register


@register
class NullSession(Check):
    id = "smb-null-session"

    async def run(self, host: HostAccess) -> list[Finding]:
        acc = await host.access("anonymous", list_shares=True)
        if acc.reached is None:
            return [self.unknown(acc.detail)]
        evidence, details = access_evidence(acc)
        return [self.finding("vulnerable" if acc.reached else "not_vulnerable", evidence=evidence, details=details)]
