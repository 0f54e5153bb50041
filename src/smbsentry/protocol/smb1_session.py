"""The client side of an SMB1 dialogue, without I/O (see session.py for the shape).

`Smb1Session` numbers the requests (MID), remembers the negotiated NT LM 0.12
reply, the first SESSION_SETUP reply (NativeOS, the identity), the pending
NTLM leg, and checks that every reply is SMB1 and carries the MID of the
request it answers.  The one exception is a transaction sent with a MID of
the caller's choosing (`transaction(..., mid=65)`): the DoublePulsar ping,
whose implant answers with MID + 16, and that answer is the evidence.
"""

from __future__ import annotations

import struct
from typing import Any

from . import ntlm, smb1, smb1_pipe, smb1_trans, smb1_tree, smb2, spnego
from .errors import ProtocolError
from .netbios import DEFAULT_MAX_FRAME
from .session import NTLM_INIT, READ_MORE, Challenge, ClientSession, Credentials, Logon, Negotiated, Step
from .status import NtStatus, describe, is_error

#: Messages one transaction reply may come in (a reply split by the server).
MAX_PARTS = 512
# Where the reply checks read, from the header's one declaration
HEADER_SIZE, MID_AT = smb1.Header.size, smb1.Header.offsets["mid"]
_u16 = struct.Struct("<H").unpack_from


class Smb1Session(ClientSession):
    """An SMB1 dialogue: negotiate NT LM 0.12, logons, trees, transactions, pipes."""

    __slots__ = ("mid", "negotiated", "first_setup", "challenge", "trees", "_want_mid")

    def __init__(self, max_message: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(max_message)
        self.mid = 0
        self.negotiated: smb1.NegotiateResponse | None = None
        self.first_setup: smb1.SessionSetupResponse | None = None
        self.challenge: ntlm.Challenge | None = None
        self.trees: dict[tuple[int, str], int] = {}  # (uid, path) -> tid of the trees connected
        self._want_mid: int | None = None  # the MID the outstanding reply must carry (None: any)

    def next_mid(self) -> int:
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    def _send(self, msg: bytes, handler, mid: int | None) -> Step:
        if self._handler is not None:
            raise ProtocolError("a request is still outstanding")
        self._handler = handler
        self._want_mid = mid
        return Step(msg)

    def _check(self, data: bytes) -> bool:
        if data[:4] != smb1.MAGIC:
            if data[:4] == smb2.MAGIC and self.negotiated is None:
                return True  # the negotiate handler says what an SMB2 answer means
            raise ProtocolError("reply is not SMB1")
        if len(data) < HEADER_SIZE:
            raise ProtocolError(f"SMB1 reply of {len(data)} bytes, shorter than its header")
        want = self._want_mid
        if want is not None:
            (mid,) = _u16(data, MID_AT)
            if mid != want:
                raise ProtocolError(f"reply MID {mid}, expected {want}")
        return True

    # -- NEGOTIATE -------------------------------------------------------------------

    def negotiate(self) -> Step:
        """Offer only NT LM 0.12; the event is Negotiated (a refusal when the
        server answers in SMB2, refuses, or accepts no dialect)."""
        mid = self.next_mid()
        return self._send(smb1.negotiate_request(mid=mid), self._negotiated, mid)

    def _negotiated(self, reply: bytes) -> Step:
        if reply[:4] == smb2.MAGIC:
            return Step(event=Negotiated(None, "answered the SMB1 negotiate with SMB2"))
        resp = smb1.parse_negotiate_response(reply)
        if resp.status != 0:
            return Step(event=Negotiated(None, f"negotiate refused with {describe(resp.status)}"))
        if resp.dialect_index != 0 or resp.security_mode is None:
            return Step(event=Negotiated(None, "no NT LM 0.12 dialect accepted"))
        self.negotiated = resp
        return Step(event=Negotiated(resp))

    # -- SESSION_SETUP ---------------------------------------------------------------

    def ntlm_challenge(self) -> Step:
        """First leg of an extended-security logon: NativeOS/NativeLanMan and
        the NTLM CHALLENGE (the server's identity) come back; event Challenge."""
        mid = self.next_mid()
        return self._send(smb1.session_setup_request(NTLM_INIT, mid=mid), self._challenged, mid)

    def _challenged(self, reply: bytes) -> Step:
        resp = smb1.parse_session_setup_response(reply)
        first = self._first_leg(resp, resp.status, resp.security_blob)
        if self.first_setup is None:
            self.first_setup, self.challenge = resp, first.challenge
        if self._logon is not None:
            (kind, creds), self._logon = self._logon, None
            return self._complete(kind, creds)
        return Step(event=first)

    def logon(self, kind: str, creds: Credentials | None = None) -> Step:
        """A logon: anonymous, guest (user Guest, empty password) or with the
        user's credentials; the event is a Logon.  Uses the pending first leg
        when there is one."""
        if self.negotiated is None:
            raise ProtocolError("logon before negotiate")
        if not self.negotiated.extended_security:
            return self._basic_logon(kind)
        if self._pending is None:
            self._logon = (kind, creds)
            return self.ntlm_challenge()
        return self._complete(kind, creds)

    def _second_leg(self, kind: str, first: Challenge, auth: ntlm.AuthResult) -> Step:
        mid = self.next_mid()
        msg = smb1.session_setup_request(spnego.neg_token_resp(auth.message), mid=mid, uid=first.response.uid)

        def done(reply: bytes) -> Step:
            resp = smb1.parse_session_setup_response(reply)
            return Step(event=Logon(kind, resp.status, resp.uid, resp.guest, kind == "anonymous", auth.session_key))

        return self._send(msg, done, mid)

    def _basic_logon(self, kind: str) -> Step:
        if kind not in ("anonymous", "guest"):
            # Plain-text or LM challenge-response logons are not offered: a
            # server without extended security gets only null/guest probes.
            return Step(event=Logon(kind, NtStatus.NOT_SUPPORTED))
        mid = self.next_mid()
        msg = smb1.session_setup_basic_request(mid, account="Guest" if kind == "guest" else "")

        def done(reply: bytes) -> Step:
            resp = smb1.parse_session_setup_response(reply)
            if self.first_setup is None:
                self.first_setup = resp
            return Step(event=Logon(kind, resp.status, resp.uid, resp.guest, kind == "anonymous"))

        return self._send(msg, done, mid)

    # -- trees, pipes, transactions -------------------------------------------------------

    def call(self, build, parse, *head: Any, uid: int, tid: int, **kw: Any) -> Step:
        """smb1_pipe's client builders take (..., mid, uid, tid): `head` are the
        arguments before the MID; the event is parse(reply)."""
        mid = self.next_mid()
        return self._send(build(*head, mid, uid, tid, **kw), lambda reply: Step(event=parse(reply)), mid)

    def tree_connect(self, path: str, uid: int) -> Step:
        """TREE_CONNECT_ANDX asking for the extended response; event
        smb1_tree.TreeConnectResponse (status, tid, service, maximal access)."""
        mid = self.next_mid()

        def done(reply: bytes) -> Step:
            tree = smb1_tree.parse_tree_connect_response(reply)
            if tree.status == NtStatus.SUCCESS:
                self.trees[(uid, path)] = tree.tid
            return Step(event=tree)

        return self._send(smb1_tree.tree_connect_request(path, mid, uid), done, mid)

    def tree_disconnect(self, uid: int, tid: int) -> Step:
        mid = self.next_mid()

        def done(reply: bytes) -> Step:
            resp = smb1_pipe.parse_tree_disconnect_response(reply)
            for key in [k for k, v in self.trees.items() if v == tid and k[0] == uid]:
                del self.trees[key]
            return Step(event=resp)

        return self._send(smb1_pipe.tree_disconnect_request(mid, uid, tid), done, mid)

    def transaction(self, command: int, uid: int, tid: int, setup: tuple[int, ...], *, mid: int | None = None,
                    **fields: Any) -> Step:
        """TRANSACTION / TRANSACTION2 (smb1.transaction_request's fields);
        event smb1.TransactionResponse.  `mid`: send this MID and take a
        reply with any MID (the DoublePulsar ping reads the implant's MID)."""
        want = self.next_mid() if mid is None else None
        msg = smb1.transaction_request(command, mid if want is None else want, uid, tid, setup, **fields)
        return self._send(msg, lambda reply: Step(event=smb1.parse_transaction_response(reply)), want)

    def raw_transaction(self, msg: bytes) -> Step:
        """A transaction the caller built whole (its own MID): any reply MID."""
        return self._send(msg, lambda reply: Step(event=smb1.parse_transaction_response(reply)), None)

    def pipe_transact(self, fid: int, pdu: bytes, uid: int, tid: int, max_data: int) -> Step:
        """TRANSACT_NMPIPE: write `pdu`, read the reply; a reply split over
        several messages is joined by its displacements.  The event is
        (status, data): an error status comes with no data."""
        mid = self.next_mid()
        msg = smb1_pipe.transact_nmpipe_request(fid, pdu, mid, uid, tid, max_data)
        data = bytearray()
        parts = [0]

        def part(reply: bytes) -> Step:
            got = smb1_trans.parse_transaction_response_part(reply)
            if is_error(got.status):
                return Step(event=(got.status, b""))
            if got.data_displacement != len(data):
                if not parts[0]:
                    raise ProtocolError(f"first transaction reply part at {got.data_displacement}")
                raise ProtocolError(f"transaction reply part at {got.data_displacement}, expected {len(data)}")
            if parts[0] and not got.data:
                raise ProtocolError("empty transaction reply part")
            data.extend(got.data)
            if len(data) >= got.total_data:
                return Step(event=(got.status, bytes(data)))
            parts[0] += 1
            if parts[0] > MAX_PARTS:
                raise ProtocolError(f"transaction reply in more than {MAX_PARTS} parts")
            return READ_MORE

        return self._send(msg, part, mid)
