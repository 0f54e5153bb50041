"""Client-side SMB session state without I/O: what SMB1 and SMB2 share.

A session object (`Smb1Session` in smb1_session.py, `Smb2Session` in
smb2_session.py) holds everything a dialogue with one server remembers: the
next message id, the credits granted, the negotiated dialect, the pending
NTLM leg, the logons made and the trees connected.  It does no I/O.  Each
operation returns a `Step`, and each reply the driver reads is given back to
`feed`, which returns the next `Step`, in the manner of the lab's
`HostConnection.feed(bytes) -> Action` (and of h11):

    step = session.tree_connect(path, uid)
    while not step.done:
        reply = send(step.send) if step.send else receive()
        step = session.feed(reply)
    step.event            # the typed answer: a parsed response, a Logon, ...

`send` and `feed` carry one SMB message each (the NetBIOS session header is
the driver's: netbios.frame and netbios.FrameReader).  Whatever is wrong with
a reply (truncated, the wrong message id, over the size cap, a reply nobody
asked for, another protocol) raises ProtocolError and nothing else, so the
asyncio driver (scan/session.py) has one exception to turn into its
"protocol-error", and the tests can drive a session with byte strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import ntlm, spnego
from .errors import ProtocolError
from .netbios import DEFAULT_MAX_FRAME
from .status import NtStatus

#: The first leg of every extended-security logon: NegTokenInit(NTLMSSP NEGOTIATE).
NTLM_INIT = spnego.neg_token_init(ntlm.negotiate())
#: The logon kinds, in the order the scanner tries them.
LOGON_ORDER = ("anonymous", "guest", "credentials")


@dataclass(frozen=True, slots=True)
class Step:
    """What a session asks of its driver.  `event` set: the operation is
    complete (and `send` is empty).  Otherwise send `send` (or, when it is
    empty, send nothing) and feed the next reply."""

    send: bytes = b""
    event: Any = None

    @property
    def done(self) -> bool:
        return self.event is not None


#: Read the next message without sending anything (an interim reply, a reply in parts).
READ_MORE = Step()


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome of a NEGOTIATE: `response`, or `refusal` saying why the
    server did not take this protocol or dialect (an ordinary result)."""

    response: Any = None
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    """The first leg of an NTLM logon: the server's reply and its CHALLENGE
    (None when the server gave none, e.g. it refused the first leg)."""

    response: Any
    challenge: ntlm.Challenge | None


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
        return self.status == NtStatus.SUCCESS


def authenticate(challenge: ntlm.Challenge, kind: str, creds: Credentials | None) -> ntlm.AuthResult:
    """The NTLM AUTHENTICATE of a logon of `kind`."""
    if kind == "anonymous":
        return ntlm.authenticate(challenge, anonymous=True)
    if kind == "guest":
        # No key exchange: a guest session is never signed, so the RC4 step
        # would be wasted work on every host.
        return ntlm.authenticate(challenge, user="Guest", password="", domain="", key_exchange=False)
    if creds is None:
        raise ProtocolError("credential logon without credentials")
    return ntlm.authenticate(challenge, user=creds.user, password=creds.password, domain=creds.domain)


def challenge_of(security_blob: bytes, status: int) -> ntlm.Challenge | None:
    """The NTLM CHALLENGE inside a first-leg SESSION_SETUP reply, if any."""
    if status != NtStatus.MORE_PROCESSING_REQUIRED or not security_blob:
        return None
    token = spnego.parse(security_blob)
    return ntlm.parse_challenge(token.mech_token) if token.mech_token else None


#: A reply handler: the whole reply message in, the next step out.
Handler = Callable[[bytes], Step]


class ClientSession:
    """What both dialects share: one outstanding request at a time, its
    handler, the reply size cap and the pending NTLM leg."""

    __slots__ = ("max_message", "_handler", "_pending", "_logon")

    def __init__(self, max_message: int = DEFAULT_MAX_FRAME) -> None:
        self.max_message = max_message
        self._handler: Handler | None = None
        # A first leg nobody has used yet, (reply, challenge): the next logon
        # completes it instead of asking the server again (one round trip less).
        self._pending: Challenge | None = None
        # (kind, credentials) of the logon waiting for its first leg
        self._logon: tuple[str, Credentials | None] | None = None

    @property
    def waiting(self) -> bool:
        """A request is outstanding: feed its reply before the next operation."""
        return self._handler is not None

    def feed(self, data: bytes) -> Step:
        """One reply message in; the next Step out (ProtocolError when the
        reply is not one the session can take)."""
        handler = self._handler
        if handler is None:
            raise ProtocolError("a reply nobody asked for")
        self._handler = None  # a ProtocolError leaves nothing outstanding
        if len(data) > self.max_message:
            raise ProtocolError(f"reply of {len(data)} bytes exceeds the {self.max_message}-byte cap")
        if not self._check(data):
            self._handler = handler  # not the reply yet (an interim one): read the next
            return READ_MORE
        step = handler(data)
        if not step.done and self._handler is None:
            self._handler = handler  # the reply continues in the next message
        return step

    def _check(self, data: bytes) -> bool:
        """Header checks common to every reply of the dialect: False for a
        message to skip, ProtocolError for a wrong one (overridden)."""
        return True

    # -- logons ------------------------------------------------------------------

    def _first_leg(self, reply: Any, status: int, blob: bytes) -> Challenge:
        pending = Challenge(reply, challenge_of(blob, status))
        self._pending = pending
        return pending

    def _complete(self, kind: str, creds: Credentials | None) -> Step:
        """Use the pending first leg: AUTHENTICATE, or the refusal as a Logon."""
        first, self._pending = self._pending, None
        assert first is not None
        if first.response.status != NtStatus.MORE_PROCESSING_REQUIRED or first.challenge is None:
            return Step(event=Logon(kind, first.response.status))
        auth = authenticate(first.challenge, kind, creds)
        return self._second_leg(kind, first, auth)

    def _second_leg(self, kind: str, first: Challenge, auth: ntlm.AuthResult) -> Step:
        raise NotImplementedError
