"""The one interface every check implements, and what a check may ask of a host.

Like zgrab2's modules, a check has an id, says what it needs (`Need`: an
open SMB port, an SMB1 session, an IPC$ tree, the SMB2 negotiate,
credentials, the other services' facts) and returns findings of one shape.
The engine reads `needs`: it runs a check that needs SMB only when an SMB
port answered, and probes the service ports only when a check needs
services.  The list of checks, in run order, is checks/registry.py's CHECKS.  Checks do no socket work of their own: the engine hands them
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
from enum import Enum
from typing import Any, ClassVar, Protocol

from ..kb.findings import meta
from ..model import Finding, HostResult, Verdict


class Need(Enum):
    """What a check asks the engine for.

    SMB: an open SMB port (without it the check does not run; the others judge
    from facts other services gave).  SERVICES: the non-SMB service probes
    (RDP, HTTP, Kerberos, ... whose ports come from smbsentry.services and the
    KB), attached as `HostAccess.services`.  QUIC: the SMB over QUIC probe
    (a QUIC Initial offering ALPN smb to the KB's UDP port, 443), attached as
    `HostAccess.services["quic"]`; apart from SERVICES so that the Shadow
    Brokers checks do not send it.  The session needs say which
    lazily opened parts of `HostAccess` the check will use."""

    SMB = "smb"
    SMB1_SESSION = "smb1-session"
    IPC = "ipc"
    SMB2_NEGOTIATE = "smb2-negotiate"
    CREDENTIALS = "credentials"
    SERVICES = "services"
    QUIC = "quic"


@dataclass(slots=True)
class IpcSession:
    """An SMB1 session whose tree connect to IPC$ succeeded.

    `transaction(command, setup, **fields)` sends a TRANSACTION or TRANSACTION2
    on this tree through the session object, which builds and numbers it
    (smb1.transaction_request's fields; `mid=` sends that MID and takes a
    reply with any MID) and returns the parsed smb1.TransactionResponse.  A
    reply it cannot parse raises ProtocolError; transport failures ScanError."""

    kind: str  # anonymous | guest | credentials
    port: int
    uid: int
    tid: int
    transaction: Callable[..., Awaitable[Any]]


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
    services: dict[str, Any]  # the other services' facts (smbsentry.services); empty when not probed

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
    # Without Need.SMB a check judges from other facts alone (the Shadow Brokers
    # modules, eol-os): it also runs on hosts whose SMB ports are closed.
    needs: ClassVar[frozenset[Need]] = frozenset({Need.SMB})
    # With Need.SERVICES: the services (smbsentry.services names) the check reads; None: every one of them
    # (the Shadow Brokers modules). A check that reads a few must not make the scan probe them all.
    services: ClassVar[frozenset[str] | None] = None
    # True: those services are worth probing only where a relayed domain logon can land (ntlm-relay); the scan
    # leaves them out on a workgroup host (checks.relay.not_probed_reason), unless --ports or another check asks.
    services_domain_only: ClassVar[bool] = False
    default: ClassVar[bool] = True
    description: ClassVar[str] = ""

    async def run(self, host: HostAccess) -> list[Finding]:
        raise NotImplementedError

    def finding(
        self,
        status: Verdict | str,
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
            status=Verdict(status).value,  # a typo fails here; the model keeps the contract's string
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
        return self.finding(Verdict.UNKNOWN, reason=reason, port=port)


class AccessCheck(Check):
    """A logon of one kind ("anonymous", "guest") that reaches IPC$ is the finding;
    the shares it lists, write access and ADMIN$/C$ are the evidence."""

    needs = frozenset({Need.SMB, Need.SMB1_SESSION, Need.IPC})

    logon: ClassVar[str]

    async def run(self, host: HostAccess) -> list[Finding]:
        acc = await host.access(self.logon, list_shares=True)
        if acc.reached is None:
            return [self.unknown(acc.detail)]
        evidence, details = access_evidence(acc)
        return [self.finding(Verdict.VULNERABLE if acc.reached else Verdict.NOT_VULNERABLE, evidence=evidence, details=details)]
