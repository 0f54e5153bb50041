"""The one interface every check implements, and what a check may ask of a host.

Like zgrab2's modules, a check registers an id, says what it needs (an SMB1
session, an IPC$ tree, the SMB2 negotiate, credentials) and returns findings
of one shape.  Checks do no socket work of their own: the engine hands them
a `HostAccess`, which shares the fingerprint's connections and sessions.
`HostAccess` is a Protocol declared here so that checks depend on nothing in
smbsentry.scan (the arrows point scan -> checks -> protocol).

A check never raises into the engine: the runner turns any failure into an
`unknown` finding with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Protocol

from ..kb.findings import meta
from ..model import Finding, HostResult


@dataclass(slots=True)
class IpcSession:
    """An SMB1 session whose tree connect to IPC$ succeeded."""

    kind: str  # anonymous | guest | credentials
    port: int
    uid: int
    tid: int
    request: Callable[[bytes], Awaitable[bytes]]  # send one SMB1 message, get the reply
    next_mid: Callable[[], int]


@dataclass(slots=True)
class Access:
    """Whether a logon of one kind reached IPC$, and what it could see."""

    kind: str
    reached: bool | None  # None: could not be tested
    detail: str  # evidence or reason, one line
    protocol: str | None = None  # "SMB1" | "SMB2"
    shares: list[tuple[str, int, str]] | None = None  # (name, type, remark) from NetShareEnum
    shares_detail: str | None = None
    share_access: dict[str, str] = field(default_factory=dict)  # name -> "writable" | "read" | "denied"


class HostAccess(Protocol):
    result: HostResult
    credentials: Any | None
    scan_date: date
    facts: dict[str, Any]  # host-side facts from a credentialed audit (e.g. "ubr")

    async def smb1_ipc(self) -> tuple[IpcSession | None, str]:
        """IPC$ over SMB1: anonymous, then guest, then the user's credentials."""

    async def access(self, kind: str, list_shares: bool = False) -> Access:
        """Logon of `kind` (anonymous | guest) to IPC$ over SMB1 or SMB2."""


def access_evidence(acc: Access) -> tuple[str, dict[str, Any]]:
    """Evidence text and details for a logon's reach: IPC$, the shares
    NetShareEnum listed, which are writable, and ADMIN$/C$."""
    details: dict[str, Any] = {}
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
    return evidence, details


class Check:
    """Base class: subclasses set `id` (a finding id of contract.md)."""

    id: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    default: ClassVar[bool] = True
    description: ClassVar[str] = ""
    # False for checks that judge from other services' facts alone (the Shadow
    # Brokers modules): they also run on hosts whose SMB ports are closed.
    needs_smb: ClassVar[bool] = True

    async def run(self, host: HostAccess) -> list[Finding]:
        raise NotImplementedError

    def finding(
        self,
        status: str,
        *,
        evidence: str | None = None,
        reason: str | None = None,
        inferred: bool = False,
        port: int | None = None,
        details: dict[str, Any] | None = None,
        finding_id: str | None = None,
    ) -> Finding:
        m = meta(finding_id or self.id)
        return Finding(
            id=finding_id or self.id,
            status=status,
            severity=m["severity"],
            title=m["title"],
            cves=list(m.get("cves", [])),
            references=list(m.get("references", [])),
            evidence=evidence,
            reason=reason,
            inferred=inferred,
            port=port,
            details=details or {},
        )

    def unknown(self, reason: str, port: int | None = None) -> Finding:
        return self.finding("unknown", reason=reason, port=port)


class AccessCheck(Check):
    """A logon of one kind ("anonymous", "guest") that reaches IPC$ is the finding;
    the shares it lists, write access and ADMIN$/C$ are the evidence."""

    logon: ClassVar[str]

    async def run(self, host: HostAccess) -> list[Finding]:
        acc = await host.access(self.logon, list_shares=True)
        if acc.reached is None:
            return [self.unknown(acc.detail)]
        evidence, details = access_evidence(acc)
        return [self.finding("vulnerable" if acc.reached else "not_vulnerable", evidence=evidence, details=details)]
