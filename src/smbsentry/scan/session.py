"""SMB1 and SMB2 client sessions on top of a Connection.

These are the only places that pair the protocol builders with I/O.  The
fingerprint and the checks drive them step by step and share one connection
among several steps (negotiate, identity, null and guest logons, IPC$,
transactions), which is where the scanner's economy of connections comes
from.  Every method raises ScanError (from connection.py) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import ntlm, smb1, smb2, spnego, status
from ..protocol.errors import ProtocolError
from .connection import PROTOCOL, Connection, ScanError


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str
    domain: str = ""

    def __repr__(self) -> str:  # never print a password
        return f"Credentials(user={self.user!r}, domain={self.domain!r})"


@dataclass(slots=True)
class Logon:
    """The outcome of one session setup attempt."""

    kind: str  # anonymous | guest | credentials
    status: int
    uid: int = 0  # SMB1 UID or SMB2 SessionId
    guest: bool = False
    null: bool = False
    session_key: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == status.SUCCESS


#: The first leg of every logon is the same NegTokenInit(NTLMSSP NEGOTIATE).
NTLM_INIT = spnego.neg_token_init(ntlm.negotiate())


def _parse(fn, msg: bytes):
    try:
        return fn(msg)
    except ProtocolError as exc:
        raise ScanError(PROTOCOL, str(exc)) from None


class Smb1Client:
    """An SMB1 dialogue: negotiate NT LM 0.12, logons, IPC$, transactions."""

    def __init__(self, conn: Connection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.mid = 0
        self.negotiated: smb1.NegotiateResponse | None = None
        self.first_setup: smb1.SessionSetupResponse | None = None
        self.challenge: ntlm.Challenge | None = None
        # A first leg nobody has answered yet: the next logon completes it
        # instead of asking the server for a new challenge (one round trip less).
        self._pending: tuple[smb1.SessionSetupResponse, ntlm.Challenge | None] | None = None

    def next_mid(self) -> int:
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    async def negotiate(self) -> tuple[smb1.NegotiateResponse | None, str | None]:
        """Offer only NT LM 0.12.  Returns (reply, None) when SMB1 answers, or
        (None, why) when the server refused SMB1 (reset, close, SMB2 reply,
        no dialect accepted).  Timeouts and garbage still raise."""
        try:
            reply = await self.conn.request(smb1.negotiate_request(mid=self.next_mid()), self.timeout)
        except ScanError as exc:
            if exc.kind in ("connection-reset", "connection-closed"):
                return None, f"{exc.kind} after SMB1 negotiate"
            raise
        if reply[:4] == smb2.MAGIC:
            return None, "answered the SMB1 negotiate with SMB2"
        resp = _parse(smb1.parse_negotiate_response, reply)
        if resp.status != 0:
            return None, f"negotiate refused with {status.describe(resp.status)}"
        if resp.dialect_index != 0 or resp.security_mode is None:
            return None, "no NT LM 0.12 dialect accepted"
        self.negotiated = resp
        return resp, None

    async def _setup(self, blob: bytes, uid: int = 0) -> smb1.SessionSetupResponse:
        msg = smb1.session_setup_request(blob, mid=self.next_mid(), uid=uid)
        return _parse(smb1.parse_session_setup_response, await self.conn.request(msg, self.timeout))

    async def ntlm_challenge(self) -> tuple[smb1.SessionSetupResponse, ntlm.Challenge | None]:
        """First leg of an extended-security logon: NativeOS/NativeLanMan and
        the NTLM CHALLENGE (the server's identity) come back here."""
        resp = await self._setup(NTLM_INIT)
        challenge = None
        if resp.status == status.MORE_PROCESSING_REQUIRED and resp.security_blob:
            token = _parse(spnego.parse, resp.security_blob)
            if token.mech_token:
                challenge = _parse(ntlm.parse_challenge, token.mech_token)
        if self.first_setup is None:
            self.first_setup, self.challenge = resp, challenge
        self._pending = (resp, challenge)
        return resp, challenge

    async def logon(self, kind: str, creds: Credentials | None = None) -> Logon:
        """Complete a logon: anonymous, guest (user Guest, empty password) or
        with the user's credentials."""
        if self.negotiated is None:
            raise ScanError(PROTOCOL, "logon before negotiate")
        if not self.negotiated.extended_security:
            return await self._basic_logon(kind, creds)
        if self._pending is None:
            await self.ntlm_challenge()
        assert self._pending is not None
        (first, challenge), self._pending = self._pending, None
        if first.status != status.MORE_PROCESSING_REQUIRED or challenge is None:
            return Logon(kind, first.status)
        auth = _authenticate(challenge, kind, creds)
        resp = await self._setup(spnego.neg_token_resp(auth.message), uid=first.uid)
        return Logon(kind, resp.status, resp.uid, resp.guest, kind == "anonymous", auth.session_key)

    async def _basic_logon(self, kind: str, creds: Credentials | None) -> Logon:
        if kind == "anonymous":
            msg = smb1.session_setup_basic_request(self.next_mid())
        elif kind == "guest":
            msg = smb1.session_setup_basic_request(self.next_mid(), account="Guest")
        else:
            # Plain-text or LM challenge-response logons are not offered: a
            # server without extended security gets only null/guest probes.
            return Logon(kind, status.NOT_SUPPORTED)
        resp = _parse(smb1.parse_session_setup_response, await self.conn.request(msg, self.timeout))
        if self.first_setup is None:
            self.first_setup = resp
        return Logon(kind, resp.status, resp.uid, resp.guest, kind == "anonymous")

    async def tree_connect(self, path: str, uid: int) -> smb1.TreeConnectResponse:
        msg = smb1.tree_connect_request(path, mid=self.next_mid(), uid=uid)
        return _parse(smb1.parse_tree_connect_response, await self.conn.request(msg, self.timeout))

    async def transaction(self, request: bytes) -> smb1.TransactionResponse:
        return _parse(smb1.parse_transaction_response, await self.conn.request(request, self.timeout))


class Smb2Client:
    """An SMB2/3 dialogue: negotiate with contexts, NTLM identity, logons."""

    def __init__(self, conn: Connection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.message_id = 0
        self.negotiated: smb2.NegotiateResponse | None = None
        self._pending: tuple[smb2.SessionSetupResponse, ntlm.Challenge | None] | None = None

    def next_id(self) -> int:
        self.message_id += 1
        return self.message_id

    async def negotiate(
        self, dialects: tuple[int, ...] = smb2.ALL_DIALECTS, contexts: list | None = None
    ) -> tuple[smb2.NegotiateResponse | None, str | None]:
        """Returns (reply, None), or (None, why) when none of `dialects` is accepted."""
        try:
            reply = await self.conn.request(smb2.negotiate_request(dialects, contexts, message_id=0), self.timeout)
        except ScanError as exc:
            if exc.kind in ("connection-reset", "connection-closed"):
                return None, f"{exc.kind} after SMB2 negotiate"
            raise
        if reply[:4] == smb1.MAGIC:
            return None, "answered the SMB2 negotiate with SMB1"
        hdr = _parse(smb2.parse_header, reply)
        if hdr.status != 0:
            return None, f"negotiate refused with {status.describe(hdr.status)}"
        resp = _parse(smb2.parse_negotiate_response, reply)
        if resp.dialect not in smb2.DIALECTS or resp.dialect not in dialects:
            return None, f"server chose dialect 0x{resp.dialect:04x}, which was not offered"
        self.negotiated = resp
        return resp, None

    async def _setup(self, blob: bytes, session_id: int = 0) -> smb2.SessionSetupResponse:
        msg = smb2.session_setup_request(blob, self.next_id(), session_id=session_id)
        return _parse(smb2.parse_session_setup_response, await self.conn.request(msg, self.timeout))

    async def ntlm_challenge(self) -> tuple[smb2.SessionSetupResponse, ntlm.Challenge | None]:
        resp = await self._setup(NTLM_INIT)
        challenge = None
        if resp.status == status.MORE_PROCESSING_REQUIRED and resp.security_blob:
            token = _parse(spnego.parse, resp.security_blob)
            if token.mech_token:
                challenge = _parse(ntlm.parse_challenge, token.mech_token)
        self._pending = (resp, challenge)
        return resp, challenge

    async def logon(self, kind: str, creds: Credentials | None = None) -> Logon:
        if self._pending is None:
            await self.ntlm_challenge()
        assert self._pending is not None
        (first, challenge), self._pending = self._pending, None
        if first.status != status.MORE_PROCESSING_REQUIRED or challenge is None:
            return Logon(kind, first.status)
        auth = _authenticate(challenge, kind, creds)
        resp = await self._setup(spnego.neg_token_resp(auth.message), session_id=first.session_id)
        return Logon(
            kind,
            resp.status,
            resp.session_id,
            bool(resp.session_flags & smb2.SESSION_FLAG_GUEST),
            bool(resp.session_flags & smb2.SESSION_FLAG_NULL),
            auth.session_key,
        )


def _authenticate(challenge: ntlm.Challenge, kind: str, creds: Credentials | None) -> ntlm.AuthResult:
    if kind == "anonymous":
        return ntlm.authenticate(challenge, anonymous=True)
    if kind == "guest":
        # No key exchange: a guest session is never signed, so the RC4 step
        # would be wasted work on every host.
        return ntlm.authenticate(challenge, user="Guest", password="", domain="", key_exchange=False)
    if creds is None:
        raise ScanError(PROTOCOL, "credential logon without credentials")
    return ntlm.authenticate(challenge, user=creds.user, password=creds.password, domain=creds.domain)
