"""The asyncio drivers of the SMB1 and SMB2 client sessions.

The dialogue's state (message ids, credits, the pending NTLM leg, the logon
order, trees) lives in the sans-I/O session objects of the protocol layer
(protocol/smb1_session.py, protocol/smb2_session.py).  A driver here only
moves their bytes over a Connection: `_run` sends what a Step asks, feeds
the reply back, and returns the Step's event.  The fingerprint and the checks
drive them step by step and share one connection among several steps
(negotiate, identity, null and guest logons, IPC$, transactions), which is
where the scanner's economy of connections comes from.  Every method raises
ScanError (from connection.py) and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..protocol import ntlm, smb1, smb2
from ..protocol.errors import ProtocolError
from ..protocol.netbios import DEFAULT_MAX_FRAME
from ..protocol.session import NTLM_INIT, Challenge, Credentials, Logon, Negotiated, Step
from ..protocol.smb1_session import Smb1Session
from ..protocol.smb2_session import Smb2Session
from .connection import CLOSED, PROTOCOL, RESET, Connection, ScanError

__all__ = ["NTLM_INIT", "Credentials", "Logon", "Smb1Client", "Smb2Client"]


class _Driver:
    """Moves one session's bytes over one connection."""

    __slots__ = ("conn", "timeout", "session")

    def __init__(self, conn: Connection, timeout: float, session) -> None:
        self.conn = conn
        self.timeout = timeout
        self.session = session

    async def run(self, start: Callable[..., Step], *args: Any, label: str = "", wrap: bool = True, **kw: Any) -> Any:
        """start(*args, **kw), then send, receive and feed until the event.
        A ProtocolError becomes ScanError(protocol-error), prefixed with
        `label` (unless `wrap` is false: the checks report it themselves)."""
        session, conn, timeout = self.session, self.conn, self.timeout
        try:
            step = start(*args, **kw)
            while step.event is None:
                reply = await (conn.request(step.send, timeout) if step.send else conn.recv(timeout))
                step = session.feed(reply)
        except ProtocolError as exc:
            if not wrap:
                raise
            raise ScanError(PROTOCOL, f"{label}: {exc}" if label else str(exc)) from None
        return step.event

    async def _negotiate(self, start, *args: Any, what: str) -> tuple[Any, str | None]:
        try:
            got: Negotiated = await self.run(start, *args)
        except ScanError as exc:
            if exc.kind in (RESET, CLOSED):
                return None, f"{exc.kind} after {what} negotiate"
            raise
        return got.response, got.refusal


class Smb1Client(_Driver):
    """An SMB1 dialogue: negotiate NT LM 0.12, logons, IPC$, transactions."""

    __slots__ = ()
    session: Smb1Session

    def __init__(self, conn: Connection, timeout: float) -> None:
        super().__init__(conn, timeout, Smb1Session(getattr(conn, "max_frame", DEFAULT_MAX_FRAME)))

    @property
    def negotiated(self) -> smb1.NegotiateResponse | None:
        return self.session.negotiated

    @property
    def first_setup(self) -> smb1.SessionSetupResponse | None:
        return self.session.first_setup

    @property
    def challenge(self) -> ntlm.Challenge | None:
        return self.session.challenge

    def next_mid(self) -> int:
        return self.session.next_mid()

    async def negotiate(self) -> tuple[smb1.NegotiateResponse | None, str | None]:
        """(reply, None) when SMB1 answers, or (None, why) when the server
        refused SMB1 (reset, close, SMB2 reply, no dialect accepted).
        Timeouts and garbage still raise."""
        return await self._negotiate(self.session.negotiate, what="SMB1")

    async def ntlm_challenge(self) -> tuple[smb1.SessionSetupResponse, ntlm.Challenge | None]:
        """First leg of an extended-security logon: NativeOS/NativeLanMan and
        the NTLM CHALLENGE (the server's identity) come back here."""
        got: Challenge = await self.run(self.session.ntlm_challenge)
        return got.response, got.challenge

    async def logon(self, kind: str, creds: Credentials | None = None) -> Logon:
        """A logon: anonymous, guest (user Guest, empty password) or with the user's credentials."""
        return await self.run(self.session.logon, kind, creds)

    async def tree_connect(self, path: str, uid: int, label: str = ""):
        """TREE_CONNECT_ANDX: smb1_tree.TreeConnectResponse (status, tid, maximal access)."""
        return await self.run(self.session.tree_connect, path, uid, label=label)

    async def transaction(self, request: bytes) -> smb1.TransactionResponse:
        """A transaction the caller built whole, with its own MID."""
        return await self.run(self.session.raw_transaction, request)

    def ipc_transaction(self, uid: int, tid: int) -> Callable[..., Awaitable[smb1.TransactionResponse]]:
        """The checks' transaction call on the tree `tid` (checks.base.IpcSession):
        built and numbered by the session; a reply that does not parse
        raises ProtocolError, which the check runner reports as such."""

        async def transaction(command: int, setup: tuple[int, ...], **fields: Any) -> smb1.TransactionResponse:
            return await self.run(self.session.transaction, command, uid, tid, setup, wrap=False, **fields)

        return transaction


class Smb2Client(_Driver):
    """An SMB2/3 dialogue: negotiate with contexts, NTLM identity, logons."""

    __slots__ = ()
    session: Smb2Session

    def __init__(self, conn: Connection, timeout: float) -> None:
        super().__init__(conn, timeout, Smb2Session(getattr(conn, "max_frame", DEFAULT_MAX_FRAME)))

    @property
    def negotiated(self) -> smb2.NegotiateResponse | None:
        return self.session.negotiated

    def next_id(self) -> int:
        return self.session.next_id()

    async def negotiate(
        self, dialects: tuple[int, ...] = smb2.ALL_DIALECTS, contexts: list | None = None
    ) -> tuple[smb2.NegotiateResponse | None, str | None]:
        """Returns (reply, None), or (None, why) when none of `dialects` is accepted."""
        return await self._negotiate(self.session.negotiate, dialects, contexts, what="SMB2")

    async def ntlm_challenge(self) -> tuple[smb2.SessionSetupResponse, ntlm.Challenge | None]:
        got: Challenge = await self.run(self.session.ntlm_challenge)
        return got.response, got.challenge

    async def logon(self, kind: str, creds: Credentials | None = None) -> Logon:
        return await self.run(self.session.logon, kind, creds)
