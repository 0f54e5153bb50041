"""The client side of an SMB2/3 dialogue, without I/O (see session.py for the shape).

`Smb2Session` numbers the requests (MessageId: 0 for NEGOTIATE, then one up
per request, each charging one credit), keeps the credit balance the server
grants, the negotiated reply, the pending NTLM leg and the trees connected.
Every reply must carry the MessageId of the request it answers; interim
STATUS_PENDING replies and oplock breaks are skipped (a bounded number),
and the real reply is read next.
"""

from __future__ import annotations

import struct
from typing import Any

from . import ntlm, smb1, smb2, smb2_pipe, spnego
from .errors import ProtocolError
from .netbios import DEFAULT_MAX_FRAME
from .session import NTLM_INIT, Challenge, ClientSession, Credentials, Logon, Negotiated, Step
from .status import NtStatus, describe

#: Interim (STATUS_PENDING) or unsolicited messages skipped per request.
MAX_SKIPPED = 8
OPLOCK_BREAK_ID = 0xFFFFFFFFFFFFFFFF
STATUS_PENDING, FLAG_ASYNC = smb2_pipe.STATUS_PENDING, smb2_pipe.FLAG_ASYNC
# Where the reply checks read, from the header's one declaration
HEADER_SIZE = smb2.Header.size
ID_AT, STATUS_AT, FLAGS_AT, CREDITS_AT = (smb2.Header.offsets[n] for n in ("message_id", "status", "flags", "credits"))
_u16, _u32, _u64 = (struct.Struct(f).unpack_from for f in ("<H", "<I", "<Q"))


class Smb2Session(ClientSession):
    """An SMB2/3 dialogue: negotiate with contexts, NTLM identity, logons, trees, pipes."""

    __slots__ = ("message_id", "credits", "negotiated", "trees", "_want_id", "_skipped", "_offered")

    def __init__(self, max_message: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(max_message)
        self.message_id = 0
        self.credits = 1  # what a client may send before the server has granted any
        self.negotiated: smb2.NegotiateResponse | None = None
        self.trees: dict[tuple[int, str], int] = {}  # (session id, path) -> tree id
        self._want_id = 0
        self._skipped = 0
        self._offered: tuple[int, ...] = ()

    def next_id(self) -> int:
        self.message_id += 1
        return self.message_id

    def _send(self, msg: bytes, handler, message_id: int, charge: int = 1) -> Step:
        if self._handler is not None:
            raise ProtocolError("a request is still outstanding")
        self._handler = handler
        self._want_id, self._skipped = message_id, 0
        self.credits -= charge
        return Step(msg)

    def _check(self, data: bytes) -> bool:
        if data[:4] != smb2.MAGIC:
            if data[:4] == smb1.MAGIC and self.negotiated is None:
                return True  # the negotiate handler says what an SMB1 answer means
            raise ProtocolError("reply is not SMB2")
        if len(data) < HEADER_SIZE:
            raise ProtocolError(f"SMB2 reply of {len(data)} bytes, shorter than its header")
        (message_id,) = _u64(data, ID_AT)
        (status,) = _u32(data, STATUS_AT)
        if message_id == OPLOCK_BREAK_ID or (status == STATUS_PENDING and _u32(data, FLAGS_AT)[0] & FLAG_ASYNC):
            self._skipped += 1
            if self._skipped > MAX_SKIPPED:
                raise ProtocolError(f"more than {MAX_SKIPPED} interim or unsolicited replies")
            return False
        if message_id != self._want_id:
            raise ProtocolError(f"reply MessageId {message_id}, expected {self._want_id}")
        self.credits += _u16(data, CREDITS_AT)[0]
        return True

    # -- NEGOTIATE -------------------------------------------------------------------

    def negotiate(self, dialects: tuple[int, ...] = smb2.ALL_DIALECTS, contexts: list | None = None) -> Step:
        """The event is Negotiated: a refusal when none of `dialects` is accepted."""
        self._offered = dialects
        return self._send(smb2.negotiate_request(dialects, contexts, message_id=0), self._negotiated, 0, charge=0)

    def _negotiated(self, reply: bytes) -> Step:
        if reply[:4] == smb1.MAGIC:
            return Step(event=Negotiated(None, "answered the SMB2 negotiate with SMB1"))
        hdr = smb2.parse_header(reply)
        if hdr.status != 0:
            return Step(event=Negotiated(None, f"negotiate refused with {describe(hdr.status)}"))
        resp = smb2.parse_negotiate_response(reply)
        if resp.dialect not in smb2.DIALECTS or resp.dialect not in self._offered:
            return Step(event=Negotiated(None, f"server chose dialect 0x{resp.dialect:04x}, which was not offered"))
        self.negotiated = resp
        return Step(event=Negotiated(resp))

    # -- SESSION_SETUP ---------------------------------------------------------------

    def ntlm_challenge(self) -> Step:
        """First leg of a logon; the event is Challenge (the server's identity)."""
        msg = smb2.session_setup_request(NTLM_INIT, self.next_id(), session_id=0)
        return self._send(msg, self._challenged, self.message_id, charge=0)

    def _challenged(self, reply: bytes) -> Step:
        resp = smb2.parse_session_setup_response(reply)
        first = self._first_leg(resp, resp.status, resp.security_blob)
        if self._logon is not None:
            (kind, creds), self._logon = self._logon, None
            return self._complete(kind, creds)
        return Step(event=first)

    def logon(self, kind: str, creds: Credentials | None = None) -> Step:
        """A logon of `kind`; the event is a Logon.  Uses the pending first leg
        when there is one."""
        if self._pending is None:
            self._logon = (kind, creds)
            return self.ntlm_challenge()
        return self._complete(kind, creds)

    def _second_leg(self, kind: str, first: Challenge, auth: ntlm.AuthResult) -> Step:
        msg = smb2.session_setup_request(spnego.neg_token_resp(auth.message), self.next_id(),
                                         session_id=first.response.session_id)

        def done(reply: bytes) -> Step:
            resp = smb2.parse_session_setup_response(reply)
            flags = resp.session_flags
            return Step(event=Logon(kind, resp.status, resp.session_id, bool(flags & smb2.SESSION_FLAG_GUEST),
                                    bool(flags & smb2.SESSION_FLAG_NULL), auth.session_key))

        return self._send(msg, done, self.message_id, charge=0)

    # -- trees and pipes -------------------------------------------------------------

    def call(self, build, parse, *head: Any, session_id: int, tree_id: int, **kw: Any) -> Step:
        """smb2_pipe's client builders take (..., message_id, session_id, tree_id):
        `head` are the arguments before the message id; the event is parse(reply)."""
        message_id = self.next_id()
        msg = build(*head, message_id, session_id, tree_id, **kw)
        return self._send(msg, lambda reply: Step(event=parse(reply)), message_id)

    def tree_connect(self, path: str, session_id: int) -> Step:
        """TREE_CONNECT; event smb2_pipe.TreeConnectResponse (MaximalAccess, ShareType)."""
        message_id = self.next_id()

        def done(reply: bytes) -> Step:
            tree = smb2_pipe.parse_tree_connect_response(reply)
            if tree.status == NtStatus.SUCCESS:
                self.trees[(session_id, path)] = tree.tree_id
            return Step(event=tree)

        return self._send(smb2_pipe.tree_connect_request(path, message_id, session_id), done, message_id)

    def tree_disconnect(self, session_id: int, tree_id: int) -> Step:
        def done(reply: bytes) -> Step:
            resp = smb2_pipe.parse_tree_disconnect_response(reply)
            for key in [k for k, v in self.trees.items() if v == tree_id and k[0] == session_id]:
                del self.trees[key]
            return Step(event=resp)

        message_id = self.next_id()
        return self._send(smb2_pipe.tree_disconnect_request(message_id, session_id, tree_id), done, message_id)

