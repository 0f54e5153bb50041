"""Per-host state: options, the rate limiter, open sessions, and the access
that checks ask for (smbsentry.checks.base.HostAccess).

The fingerprint leaves its SMB1 and SMB2 sessions here; the checks reuse
them (IPC$ tree connects, transactions, share listing) instead of opening
connections of their own.  Every outcome is cached per host, so the
MS17-010, DoublePulsar, null-session and guest checks share one IPC$ tree.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..checks.base import Access, IpcSession, Need
from ..model import HostResult
from ..protocol import status
from ..protocol.session import LOGON_ORDER
from ..protocol.transport import NETBIOS_SESSION, SMB_PORTS
from .connection import RESET, Connection, ScanError
from .session import Credentials, Logon, Smb1Client, Smb2Client

ADMIN_SHARES = ("ADMIN$", "C$")
MAX_SHARES_PROBED = 16


def split_ports(asked: tuple[int, ...], checks) -> tuple[tuple[int, ...], frozenset[int]]:
    """(SMB ports, service ports) from --ports and the chosen checks.

    A service port asked by number (3389, 80, 443, 88, 25, 143, 1352, 3264,
    1000, 3000, 137) gets its service probe, not an SMB one; the Shadow Brokers
    checks ask for every service port but QUIC's, a check naming its services
    (Check.services: ntlm-relay's HTTP, HTTPS and LDAP) for theirs, the smb-over-quic check for
    QUIC's (UDP 443: which of HTTPS and QUIC 443 means is settled by the
    checks, see services.probe_services `skip`).  One rule for the local CLI
    and the engines."""
    from ..services import DEFAULT_PORTS, QUIC_PORTS

    known = DEFAULT_PORTS | frozenset(QUIC_PORTS)
    service = frozenset(p for p in asked if p in known).union(*(_wanted_ports(c) for c in checks))
    if any(Need.QUIC in c.needs for c in checks):
        service |= frozenset(QUIC_PORTS)
    return tuple(p for p in asked if p not in known), service


def domain_only_ports(asked: tuple[int, ...], checks) -> frozenset[int]:
    """The service ports only checks with `services_domain_only` (ntlm-relay's 80, 443, 389) want: not asked by
    number in --ports, not wanted by any other check (the Shadow Brokers checks, --checks all's others).
    host_service_ports leaves them out on a workgroup host; what anything else asks is probed as before."""
    gated = frozenset().union(*(_wanted_ports(c) for c in checks if c.services_domain_only))
    others = frozenset(asked).union(*(_wanted_ports(c) for c in checks if not c.services_domain_only))
    return gated - others


def _wanted_ports(check) -> frozenset[int]:
    """The TCP service ports a check's probes need: those of the services it reads (Check.services), or all of
    them; none for a check that needs no service probe."""
    from ..services import DEFAULT_PORTS, service_ports

    if Need.SERVICES not in check.needs:
        return frozenset()
    if check.services is None:
        return DEFAULT_PORTS
    by_name = service_ports()
    return frozenset(p for n in check.services for p in by_name[n])


def host_service_ports(result: HostResult, options: ScanOptions) -> set[int]:
    """The service ports to probe on this host, chosen once its SMB negotiate and NTLM facts are known: the
    scan's, less the domain-only ones on a workgroup host (checks.relay.not_probed_reason says why: a relayed
    domain logon lands nowhere there, and that is three connections per host saved)."""
    from ..checks.relay import not_probed_reason

    ports = set(options.service_ports)
    if options.domain_only_ports and not_probed_reason(result.identity.to_dict()):
        ports -= options.domain_only_ports
    return ports


@dataclass(slots=True)
class ScanOptions:
    ports: tuple[int, ...] = SMB_PORTS
    timeout: float = 5.0
    credentials: Credentials | None = None
    dialect_method: str = "range"  # range | exact
    called_name: str = "*SMBSERVER"
    max_frame: int = 1 << 20
    checks: tuple = ()  # Check instances, run after the fingerprint
    service_ports: frozenset[int] = frozenset()  # other services to fingerprint (issue 7's modules)
    domain_only_ports: frozenset[int] = frozenset()  # of those, probed only off workgroup hosts (domain_only_ports)
    host_timeout: float | None = 30.0  # seconds one host may take in all (None: no limit)
    failed_logon_probes: bool = False  # --allow-failed-logon: LDAP binds with bogus credentials on DCs


class RateLimiter:
    """Token bucket for new connections per second (shared by all hosts)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate if rate and rate > 0 else None
        self._next = 0.0

    async def acquire(self) -> None:
        if self.rate is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass(slots=True)
class HostContext:
    """Per-host state shared by the fingerprint steps and the checks."""

    address: str
    options: ScanOptions
    limiter: RateLimiter
    result: HostResult
    smb1_client: Smb1Client | None = None
    smb1_port: int | None = None
    smb2_client: Smb2Client | None = None
    smb2_port: int | None = None
    smb1_logons: dict[str, Logon] = field(default_factory=dict)
    smb2_logons: dict[str, Logon] = field(default_factory=dict)
    scan_date: date = field(default_factory=date.today)
    facts: dict[str, Any] = field(default_factory=dict)
    _ipc: tuple[IpcSession | None, str] | None = None
    _ipc_tids: dict[tuple[str, str], int] = field(default_factory=dict)
    _access: dict[str, Access] = field(default_factory=dict)
    # Every connection opened for this host, closed by close() whatever path
    # a step took (an error, a timeout, a cancellation).
    _conns: list[Connection] = field(default_factory=list)
    # The host's --host-timeout (an asyncio.Timeout), set by scan_host.
    deadline: Any = None

    @property
    def services(self) -> dict[str, Any]:
        """The other services' facts (RDP, HTTP, Kerberos, ...) for the
        Shadow Brokers checks; empty when they were not probed."""
        return self.result.services

    @property
    def credentials(self) -> Credentials | None:
        return self.options.credentials

    async def connect(self, port: int, retry_reset: bool = True) -> Connection:
        """Open a connection (rate-limited, counted); one retry on a reset."""
        called = self.options.called_name if port == NETBIOS_SESSION else None
        for attempt in (1, 2):
            await self.pace()
            self.result.connections += 1
            try:
                conn = await Connection.open(
                    self.address, port, self.options.timeout, self.options.max_frame, called_name=called
                )
                self._conns.append(conn)
                return conn
            except ScanError as exc:
                if exc.kind == RESET and retry_reset and attempt == 1:
                    continue
                raise
        raise AssertionError("unreachable")

    async def pace(self) -> None:
        """Wait for the --rate limiter.  The wait does not count against the
        host's --host-timeout: at a low rate, hosts queue for their turn, and
        that is the scan's doing, not the host's."""
        if self.limiter.rate is None:
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self.limiter.acquire()
        waited = loop.time() - start
        deadline = self.deadline
        if waited > 0 and deadline is not None and deadline.when() is not None and not deadline.expired():
            deadline.reschedule(deadline.when() + waited)

    def error(self, port: int, step: str, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, ScanError) else f"internal-error: {type(exc).__name__}: {exc}"
        self.result.errors.append(f"{port} {step}: {text}"[:300])

    def close(self) -> None:
        """Close every connection this host opened (again: a no-op)."""
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        self.smb1_client = self.smb2_client = None

    # -- what checks may ask (checks.base.HostAccess) ----------------------

    def _smb1_missing(self) -> str:
        s1 = self.result.smb1
        if s1 is not None and not s1.enabled:
            return "SMBv1 is disabled (the NT LM 0.12 negotiate was refused)"
        return "no SMB1 session (the SMB1 negotiate did not complete)"

    async def _smb1_tree(self, kind: str, uid: int, share: str) -> int:
        """Tree connect over SMB1; returns the NT status, caching IPC$ tids."""
        assert self.smb1_client is not None
        tc = await self.smb1_client.tree_connect(f"\\\\{self.address}\\{share}", uid)
        if tc.status == status.SUCCESS and share == "IPC$":
            self._ipc_tids[("SMB1", kind)] = tc.tid
        return tc.status

    async def logon(self, proto: str, kind: str) -> Logon | None:
        """The logon of `kind` over SMB1 or SMB2, tried once on first need
        and cached; None when that protocol has no session or, for
        "credentials", none were given."""
        client = self.smb1_client if proto == "SMB1" else self.smb2_client
        logons = self.smb1_logons if proto == "SMB1" else self.smb2_logons
        if kind in logons:
            return logons[kind]
        if client is None or (kind == "credentials" and self.credentials is None):
            return None
        logons[kind] = await client.logon(kind, self.credentials if kind == "credentials" else None)
        return logons[kind]

    async def _smb1_logon(self, kind: str) -> Logon | None:
        return await self.logon("SMB1", kind)

    async def smb1_ipc(self) -> tuple[IpcSession | None, str]:
        if self._ipc is not None:
            return self._ipc
        client = self.smb1_client
        if client is None:
            self._ipc = (None, self._smb1_missing())
            return self._ipc
        attempts = []
        for kind in LOGON_ORDER:
            logon = await self._smb1_logon(kind)
            if logon is None:
                continue
            if not logon.ok:
                attempts.append(f"{kind} logon refused with {status.describe(logon.status)}")
                continue
            tid = self._ipc_tids.get(("SMB1", kind))
            if tid is None:
                code = await self._smb1_tree(kind, logon.uid, "IPC$")
                if code != status.SUCCESS:
                    attempts.append(f"{kind} session: IPC$ tree connect refused with {status.describe(code)}")
                    continue
                tid = self._ipc_tids[("SMB1", kind)]
            self._ipc = (IpcSession(kind, self.smb1_port or 445, logon.uid, tid, client.ipc_transaction(logon.uid, tid)), "")
            return self._ipc
        if self.credentials is None:
            attempts.append("no credentials given")
        self._ipc = (None, "; ".join(attempts))
        return self._ipc

    async def access(self, kind: str, list_shares: bool = False) -> Access:
        cached = self._access.get(kind)
        if cached is not None and (cached.shares is not None or cached.shares_detail or not list_shares or not cached.reached):
            return cached
        if self.smb1_client is not None and await self.logon("SMB1", kind) is not None:
            acc = await self._access_smb1(kind, list_shares)
        elif self.smb2_client is not None and await self.logon("SMB2", kind) is not None:
            acc = await self._access_smb2(kind, list_shares)
        else:
            acc = Access(kind, None, f"no SMB session to try a {kind} logon on")
        self._access[kind] = acc
        return acc

    def _logon_refusal(self, kind: str, logon: Logon, proto: str) -> Access | None:
        if not logon.ok:
            return Access(kind, False, f"{proto} {kind} logon refused with {status.describe(logon.status)}", proto)
        if kind == "guest" and not logon.guest:
            return Access(kind, False, f"{proto} logon as Guest succeeded without guest access (the guest flag is clear)", proto)
        return None

    async def _access_smb1(self, kind: str, list_shares: bool) -> Access:
        logon = self.smb1_logons[kind]
        refused = self._logon_refusal(kind, logon, "SMB1")
        if refused:
            return refused
        if ("SMB1", kind) not in self._ipc_tids:
            code = await self._smb1_tree(kind, logon.uid, "IPC$")
            if code != status.SUCCESS:
                return Access(kind, False, f"SMB1 {kind} session; IPC$ tree connect refused with {status.describe(code)}", "SMB1")
        acc = Access(kind, True, f"SMB1 {kind} logon reached IPC$", "SMB1")
        if list_shares:
            await self._fill_shares(acc, "SMB1", logon)
        return acc

    async def _access_smb2(self, kind: str, list_shares: bool) -> Access:
        from . import shares as sh

        logon = self.smb2_logons[kind]
        refused = self._logon_refusal(kind, logon, "SMB2")
        if refused:
            return refused
        assert self.smb2_client is not None
        if ("SMB2", kind) not in self._ipc_tids:
            probe = await sh.probe_share_access_smb2(self.smb2_client, logon.uid, self.address, "IPC$", disconnect=False)
            if probe.status != status.SUCCESS:
                return Access(kind, False, f"SMB2 {kind} session; IPC$ tree connect refused with {status.describe(probe.status)}", "SMB2")
            assert probe.tree_id is not None
            self._ipc_tids[("SMB2", kind)] = probe.tree_id
        acc = Access(kind, True, f"SMB2 {kind} logon reached IPC$", "SMB2")
        if list_shares:
            await self._fill_shares(acc, "SMB2", logon)
        return acc

    async def _fill_shares(self, acc: Access, proto: str, logon: Logon) -> None:
        """NetShareEnum over IPC$, then the maximal access of each disk share
        and of ADMIN$/C$ from tree connects (nothing is written)."""
        from . import shares as sh

        tid = self._ipc_tids.get((proto, acc.kind))
        if proto == "SMB1":
            assert self.smb1_client is not None
            listing = await sh.list_shares_smb1(self.smb1_client, logon.uid, self.address, tid)
        else:
            assert self.smb2_client is not None
            listing = await sh.list_shares_smb2(self.smb2_client, logon.uid, self.address, tid)
        names: list[str] = []
        if listing.shares is not None:
            acc.shares = [(s.name, s.type, s.remark) for s in listing.shares]
            names = [s.name for s in listing.shares if s.type & 0xFF == 0][:MAX_SHARES_PROBED]
        else:
            acc.shares_detail = f"share listing failed: {listing.reason}"
        for name in dict.fromkeys(names + list(ADMIN_SHARES)):
            # The trees stay connected: the connection is closed after the
            # checks, and a disconnect per share would double the round trips.
            if proto == "SMB1":
                probe = await sh.probe_share_access_smb1(self.smb1_client, logon.uid, self.address, name, disconnect=False)
            else:
                probe = await sh.probe_share_access_smb2(self.smb2_client, logon.uid, self.address, name, disconnect=False)
            if probe.status != status.SUCCESS:
                acc.share_access[name] = "denied"
            else:
                acc.share_access[name] = "writable" if probe.writable else "read"
