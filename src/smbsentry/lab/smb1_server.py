"""SMB1 as an emulated host answers it, one connection at a time.

Covers what scanners send: NEGOTIATE (NT LM 0.12, or the SMB2 upgrade when
"SMB 2.002"/"SMB 2.???" is offered), SESSION_SETUP_ANDX in both forms,
TREE_CONNECT_ANDX, TRANSACTION (PeekNamedPipe: the MS17-010 probe; named
pipes when the pipe layer is present), TRANSACTION2 SESSION_SETUP (the
DoublePulsar ping), ECHO, TREE_DISCONNECT and LOGOFF_ANDX.  Everything else
gets an error reply.  Values come from the profile; the reply layouts come
from smbsentry.protocol.smb1, the same module the scanner parses them with.
"""

from __future__ import annotations

import os

from ..protocol import smb1, smb1_find, smb1_replies, smb1_trans, smb1_tree, status
from ..protocol.errors import ProtocolError
from . import auth
from .access import admit_tree, maximal_access
from .conn import Connection
from .files import Smb1Files

TREE_DISCONNECT = 0x71
NT_CREATE_ANDX = 0xA2
TRANS_PEEK_NAMED_PIPE = 0x0023
TRANS_TRANSACT_NM_PIPE = 0x0026
TRANS2_SESSION_SETUP = 0x000E
MAX_SESSIONS = 16

SMB2_DIALECT_STRINGS = ("SMB 2.002", "SMB 2.???")


class Smb1Server:
    """Per-connection SMB1 state: negotiated or not, sessions (UID -> logon
    kind), logons in progress and tree connects (TID -> share)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.profile = conn.profile
        self.cfg = conn.profile.smb1
        self.negotiated = False
        self.sessions: dict[int, str] = {}
        self.pending: dict[int, auth.Exchange] = {}
        self.trees: dict[int, object] = {}
        self.next_uid = self.cfg.first_uid if self.cfg else 2048
        self.next_tid = self.cfg.first_tid if self.cfg else 2048
        self.files = Smb1Files(conn.profile)  # disk-share searches (listings)

    # -- dispatch ------------------------------------------------------------

    def handle(self, msg: bytes) -> bytes | str | None:
        """Reply bytes, None (no reply) or "reset"/"close"."""
        hdr = smb1.Header.unpack_from(msg)
        if hdr.command == smb1.NEGOTIATE:
            return self.negotiate(msg)
        if not self.negotiated:
            return "close"  # Windows drops a connection that skips NEGOTIATE
        handler = _HANDLERS.get(hdr.command)
        if handler is None:
            return self._error(hdr, status.NOT_IMPLEMENTED)
        try:
            return handler(self, msg, hdr)
        except ProtocolError:
            return self._error(hdr, status.INVALID_PARAMETER)

    def _error(self, hdr: smb1.Header, code: int, **kw: object) -> bytes:
        return smb1_replies.error_reply(hdr, code, **self._style(hdr), **kw)

    def _style(self, hdr: smb1.Header) -> dict:
        """Reply flags and flags2 as the emulated server sets them: Windows
        echoes the request's flags2 (adding NT status), Samba builds its own
        from the Unicode and extended-security bits of the request, the
        latter only when it negotiates extended security at all (Samba 3.6
        reply_nt1 removes FLAGS2_EXTENDED_SECURITY from its common flags2
        otherwise: arkime-smbclient-samba363.pcap frames 6 and 9 answer a
        request's 0xc801 with 0xc003)."""
        if self.cfg is None:
            return {"flags": smb1_replies.REPLY_FLAGS_WINDOWS}
        style: dict = {"flags": self.cfg.reply_flags}
        if self.cfg.samba_flags2:
            echoed = smb1.FLAGS2_UNICODE
            if self.cfg.capabilities & smb1.CAP_EXTENDED_SECURITY:
                echoed |= smb1.FLAGS2_EXTENDED_SECURITY
            kept = hdr.flags2 & echoed
            style["flags2"] = kept | smb1.FLAGS2_NT_STATUS | smb1.FLAGS2_LONG_NAMES | smb1.FLAGS2_EAS
        return style

    # -- NEGOTIATE -----------------------------------------------------------

    def negotiate(self, msg: bytes) -> bytes | str:
        if self.negotiated:
            return "close"
        m, dialects = smb1_replies.parse_negotiate_request(msg)
        smb2cfg = self.profile.smb2
        if smb2cfg is not None:
            if "SMB 2.???" in dialects and smb2cfg.max_dialect >= 0x0210:
                return self.conn.smb2_upgrade(0x02FF)
            if "SMB 2.002" in dialects and smb2cfg.supports(0x0202):
                return self.conn.smb2_upgrade(0x0202)
        cfg = self.cfg
        if cfg is None or not cfg.on(self.conn.role):
            return "reset"  # SMBv1 disabled: Windows resets the connection
        if smb1.NT_LM_012 not in dialects:
            return smb1_replies.negotiate_refusal(m.header, **self._style(m.header))
        self.negotiated = True
        common = dict(
            security_mode=cfg.security_mode,
            max_mpx=cfg.max_mpx,
            max_vcs=cfg.max_vcs,
            max_buffer=cfg.max_buffer,
            max_raw=cfg.max_raw,
            session_key=0,
            capabilities=cfg.capabilities,
            system_time=self.conn.now(),
            timezone=cfg.timezone,
            **self._style(m.header),
        )
        index = dialects.index(smb1.NT_LM_012)
        if m.header.flags2 & smb1.FLAGS2_EXTENDED_SECURITY and cfg.capabilities & smb1.CAP_EXTENDED_SECURITY:
            guid = self.conn.server_guid(cfg.server_guid)
            return smb1_replies.negotiate_response(
                m.header, index, server_guid=guid, security_blob=auth.negotiate_blob(self.profile), **common
            )
        return smb1_replies.negotiate_response(
            m.header,
            index,
            challenge=os.urandom(8),
            domain=self.profile.netbios_domain,
            server_name=self.profile.netbios_name if cfg.server_name_in_negotiate else None,
            **common,
        )

    # -- SESSION_SETUP_ANDX ----------------------------------------------------

    def session_setup(self, msg: bytes, hdr: smb1.Header) -> bytes:
        req = smb1_replies.parse_session_setup_request(msg)
        if not req.extended:
            step = auth.basic_logon(self.profile, req.anonymous, req.account)
            if step.status != status.SUCCESS:
                return self._error(hdr, step.status, uid=0)
            uid = self._new_session(step.kind)
            if uid is None:
                return self._error(hdr, status.REQUEST_NOT_ACCEPTED, uid=0)
            return smb1_replies.session_setup_response(
                hdr, 0, uid, int(step.guest), None, self._strings(extended=False), **self._style(hdr)
            )
        uid = hdr.uid
        exchange = self.pending.get(uid)
        if exchange is None:
            if len(self.pending) >= MAX_SESSIONS:
                return self._error(hdr, status.REQUEST_NOT_ACCEPTED, uid=0)
            uid = self._allocate_uid()
            exchange = self.pending[uid] = auth.Exchange(self.profile, "smb1")
        step = exchange.step(req.security_blob, self.conn.now())
        if step.status == status.MORE_PROCESSING_REQUIRED:
            return smb1_replies.session_setup_response(
                hdr, step.status, uid, 0, step.blob, self._strings(extended=True), **self._style(hdr)
            )
        del self.pending[uid]
        if step.status != status.SUCCESS:
            return self._error(hdr, step.status, uid=0)
        if len(self.sessions) >= MAX_SESSIONS:
            return self._error(hdr, status.REQUEST_NOT_ACCEPTED, uid=0)
        self.sessions[uid] = step.kind or "anonymous"
        return smb1_replies.session_setup_response(
            hdr, 0, uid, int(step.guest), step.blob or b"", self._strings(extended=True), **self._style(hdr)
        )

    def _strings(self, extended: bool) -> list[str]:
        cfg = self.cfg
        texts = [cfg.native_os, cfg.native_lm]
        if not extended or cfg.primary_domain_in_extended_reply:
            texts.append(cfg.primary_domain)
        return texts

    def _allocate_uid(self) -> int:
        uid = self.next_uid
        self.next_uid = (self.next_uid + 1) & 0xFFFF or 1
        return uid

    def _new_session(self, kind: str | None) -> int | None:
        if len(self.sessions) >= MAX_SESSIONS:
            return None
        uid = self._allocate_uid()
        self.sessions[uid] = kind or "anonymous"
        return uid

    # -- TREE_CONNECT_ANDX / TREE_DISCONNECT / LOGOFF -----------------------

    def tree_connect(self, msg: bytes, hdr: smb1.Header) -> bytes:
        kind = self.sessions.get(hdr.uid)
        if kind is None:
            return self._error(hdr, status.SMB_BAD_UID)
        req = smb1_tree.parse_tree_connect_request(msg)
        share, refusal = admit_tree(self.profile, req.share, kind, len(self.trees))
        if share is None:
            return self._error(hdr, refusal)
        tid = self.next_tid
        self.next_tid = (self.next_tid + 1) & 0xFFFF or 1
        self.trees[tid] = share
        ipc = share.type == "ipc"
        access = maximal_access(self.profile, share)
        extended = req.flags & smb1_tree.TREE_CONNECT_EXTENDED_RESPONSE
        return smb1_tree.tree_connect_response(
            hdr,
            tid,
            service="IPC" if ipc else ("LPT1:" if share.type == "print" else "A:"),
            native_fs="" if ipc else "NTFS",
            optional_support=smb1_tree.SMB_SUPPORT_SEARCH_BITS,
            maximal_access=access if extended else None,
            guest_maximal_access=access if (ipc or share.guest) else 0,
            **self._style(hdr),
        )

    def tree_disconnect(self, msg: bytes, hdr: smb1.Header) -> bytes:
        if self.trees.pop(hdr.tid, None) is None:
            return self._error(hdr, status.SMB_BAD_TID)
        return smb1_replies.error_reply(hdr, 0, **self._style(hdr))

    def logoff(self, msg: bytes, hdr: smb1.Header) -> bytes:
        if self.sessions.pop(hdr.uid, None) is None:
            return self._error(hdr, status.SMB_BAD_UID)
        return smb1_replies.logoff_response(hdr, **self._style(hdr))

    def echo(self, msg: bytes, hdr: smb1.Header) -> bytes | None:
        m = smb1.parse_message(msg)
        count = smb1.EchoWords.unpack_from(m.words).count if len(m.words) >= smb1.EchoWords.size else 0
        if count == 0:
            return None  # MS-CIFS: an echo count of zero gets no reply
        return smb1_replies.echo_response(hdr, 1, m.data[:4096], **self._style(hdr))

    # -- TRANSACTION / TRANSACTION2 --------------------------------------------

    def _tree(self, hdr: smb1.Header) -> tuple[object | None, int]:
        if hdr.uid not in self.sessions:
            return None, status.SMB_BAD_UID
        tree = self.trees.get(hdr.tid)
        if tree is None:
            return None, status.SMB_BAD_TID
        return tree, 0

    def transaction(self, msg: bytes, hdr: smb1.Header) -> bytes:
        tree, err = self._tree(hdr)
        if tree is None:
            return self._error(hdr, err)
        req = smb1_trans.parse_transaction_request(msg)
        sub = req.setup[0] if req.setup else None
        fid = req.setup[1] if len(req.setup) > 1 else 0
        pipes = self.conn.pipes
        if sub == TRANS_PEEK_NAMED_PIPE and (pipes is None or not pipes.is_open(fid)):
            # FID 0 is never open: an unpatched srv.sys still walks into
            # the transaction and fails for resources (MS17-010 probe).
            return self._error(hdr, self.profile.ms17_010_status)
        if pipes is not None and sub in (TRANS_PEEK_NAMED_PIPE, TRANS_TRANSACT_NM_PIPE):
            return pipes.smb1_transaction(self, hdr, req, sub, fid)
        return self._error(hdr, status.NOT_SUPPORTED)

    def transaction2(self, msg: bytes, hdr: smb1.Header) -> bytes:
        tree, err = self._tree(hdr)
        if tree is None:
            return self._error(hdr, err)
        req = smb1_trans.parse_transaction_request(msg)
        if req.setup[:1] == (TRANS2_SESSION_SETUP,):
            signature = self.profile.doublepulsar
            if signature is not None:
                # The implant answers its ping with the MID moved by 16 and
                # its key material in the signature field.
                return self._error(hdr, status.NOT_IMPLEMENTED, mid=(hdr.mid + 16) & 0xFFFF, signature=signature)
            return self._error(hdr, self.profile.trans2_status)
        if getattr(tree, "type", None) == "disk":
            return self.files.transaction2(hdr, req, tree)
        return self._error(hdr, status.NOT_SUPPORTED)

    def find_close(self, msg: bytes, hdr: smb1.Header) -> bytes:
        tree, err = self._tree(hdr)
        if tree is None:
            return self._error(hdr, err)
        return self.files.find_close(hdr, msg)

    def nt_create(self, msg: bytes, hdr: smb1.Header) -> bytes:
        tree, err = self._tree(hdr)
        if tree is None:
            return self._error(hdr, err)
        pipes = self.conn.pipes
        if pipes is not None and getattr(tree, "type", None) == "ipc":
            return pipes.smb1_create(self, hdr, msg)
        return self._error(hdr, status.OBJECT_NAME_NOT_FOUND if getattr(tree, "type", None) == "ipc" else status.ACCESS_DENIED)

    def _pipe_io(self, msg: bytes, hdr: smb1.Header, operation: str) -> bytes:
        """READ_ANDX / WRITE_ANDX on an open pipe (the pipe layer checks the FID)."""
        tree, err = self._tree(hdr)
        if tree is None:
            return self._error(hdr, err)
        pipes = self.conn.pipes
        if pipes is not None:
            return getattr(pipes, operation)(self, hdr, msg)
        return self._error(hdr, status.INVALID_HANDLE)

    def read(self, msg: bytes, hdr: smb1.Header) -> bytes:
        return self._pipe_io(msg, hdr, "smb1_read")

    def write(self, msg: bytes, hdr: smb1.Header) -> bytes:
        return self._pipe_io(msg, hdr, "smb1_write")

    def close_fid(self, msg: bytes, hdr: smb1.Header) -> bytes:
        pipes = self.conn.pipes
        if pipes is not None:
            return pipes.smb1_close(self, hdr, msg)
        return self._error(hdr, status.INVALID_HANDLE)


_HANDLERS = {
    smb1.SESSION_SETUP_ANDX: Smb1Server.session_setup,
    smb1.TREE_CONNECT_ANDX: Smb1Server.tree_connect,
    TREE_DISCONNECT: Smb1Server.tree_disconnect,
    smb1.LOGOFF_ANDX: Smb1Server.logoff,
    smb1.ECHO: Smb1Server.echo,
    smb1.TRANSACTION: Smb1Server.transaction,
    smb1.TRANSACTION2: Smb1Server.transaction2,
    NT_CREATE_ANDX: Smb1Server.nt_create,
    0x04: Smb1Server.close_fid,  # SMB_COM_CLOSE
    0x2E: Smb1Server.read,  # SMB_COM_READ_ANDX
    smb1.WRITE_ANDX: Smb1Server.write,
    smb1_find.FIND_CLOSE2: Smb1Server.find_close,
}
