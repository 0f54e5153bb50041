"""SMB2/3 as an emulated host answers it, one connection at a time.

NEGOTIATE picks the highest offered dialect inside the profile's min..max
(Windows, Samba and ksmbd all implement a contiguous range) and, for 3.1.1
only, returns the contexts the profile supports among those offered:
preauth always, then encryption, compression (the SMBGhost precondition)
and signing.  SESSION_SETUP runs the shared NTLMSSP exchange and marks
anonymous and guest sessions with the SMB2 session flags; TREE_CONNECT,
TREE_DISCONNECT, LOGOFF and ECHO follow; named pipes are handed to the pipe
layer when it is present, disk shares to lab.files (read-only listings:
CREATE, QUERY_DIRECTORY, QUERY_INFO, READ, CLOSE); anything else gets
STATUS_NOT_SUPPORTED.
"""

from __future__ import annotations

import os

from ..protocol import smb2, smb2_dir, smb2_pipe, status
from ..protocol.errors import ProtocolError
from . import auth
from .access import admit_tree, maximal_access
from .conn import Connection
from .files import DiskFiles

MAX_SESSIONS = 16
SMB3_ONLY_CAPS = 0x08 | 0x10 | 0x20 | 0x40  # multichannel, persistent, dir leasing, encryption


class Smb2Server:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.profile = conn.profile
        self.cfg = conn.profile.smb2
        self.dialect: int | None = None
        self.wildcard = False  # answered 0x02FF: an SMB2 NEGOTIATE must follow
        self.sessions: dict[int, str] = {}
        self.pending: dict[int, auth.Exchange] = {}
        self.trees: dict[int, object] = {}
        self.next_session = int.from_bytes(os.urandom(2), "little") << 32 | 0x0000100000000001
        self.next_tree = 1
        self.files = DiskFiles(conn.profile)  # disk-share opens (listings)

    # -- dispatch ----------------------------------------------------------

    def handle(self, msg: bytes) -> bytes | str | None:
        hdr = smb2.parse_header(msg)
        if hdr.flags & smb2.FLAG_RESPONSE:
            return "close"
        if hdr.command == smb2.NEGOTIATE:
            return self.negotiate(msg)
        if self.dialect is None:
            return "close"
        handler = _HANDLERS.get(hdr.command)
        if handler is None:
            return self._error(hdr, status.NOT_SUPPORTED)
        try:
            return handler(self, msg, hdr)
        except ProtocolError:
            return self._error(hdr, status.INVALID_PARAMETER)

    def _credits(self, hdr: smb2.Header) -> int:
        return max(1, min(hdr.credits, 64))

    def _error(self, hdr: smb2.Header, code: int) -> bytes:
        return smb2.error_response(
            hdr.command,
            hdr.message_id,
            code,
            session_id=hdr.session_id,
            tree_id=hdr.tree_id,
            credits=self._credits(hdr),
            process_id=hdr.process_id,
        )

    # -- NEGOTIATE ------------------------------------------------------------

    def response_for(self, dialect: int, message_id: int = 0, client_caps: int = 0, contexts=()) -> bytes:
        """A NEGOTIATE response for `dialect` (0x02FF included: the answer to
        a multi-protocol SMB1 negotiate offering "SMB 2.???")."""
        cfg = self.cfg
        assert cfg is not None
        caps = cfg.capabilities.get(dialect)
        if caps is None:  # 0x02FF: Windows reports its 2.1 capabilities
            caps = cfg.capabilities.get(0x0210, cfg.capabilities.get(0x0202, 0))
        if dialect >= 0x0300:
            caps &= client_caps | ~SMB3_ONLY_CAPS
        size = 65536 if dialect == 0x0202 else cfg.max_size
        return smb2.negotiate_response(
            message_id,
            dialect,
            cfg.security_mode,
            self.conn.server_guid(cfg.server_guid),
            caps,
            size,
            size,
            size,
            self.conn.now(),
            self.conn.start_time if cfg.start_time else 0,
            auth.negotiate_blob(self.profile),
            list(contexts),
        )

    def negotiate(self, msg: bytes) -> bytes | str:
        if self.cfg is None:
            return "reset"  # no SMB2 at all (XP, 2003): the frame is not understood
        if self.dialect is not None and not self.wildcard:
            return "close"  # a second NEGOTIATE ends the connection on Windows
        req = smb2.parse_negotiate_request(msg)
        hdr = req.header
        offered = [d for d in req.dialects if self.cfg.supports(d)]
        if not offered:
            return self._error(hdr, status.NOT_SUPPORTED)
        dialect = max(offered)
        contexts: list[tuple[int, bytes]] = []
        if dialect == 0x0311:
            if smb2.CTX_PREAUTH not in req.contexts.types:
                return self._error(hdr, status.INVALID_PARAMETER)
            contexts = self._contexts(req.contexts)
        self.dialect, self.wildcard = dialect, False
        return self.response_for(dialect, hdr.message_id, req.capabilities, contexts)

    def _contexts(self, offer: smb2.NegotiateContexts) -> list[tuple[int, bytes]]:
        cfg = self.cfg
        cipher = signing = None
        compression: tuple[int, ...] = ()
        flags = 0
        if smb2.CTX_ENCRYPTION in offer.types and cfg.ciphers:
            cipher = next((c for c in cfg.ciphers if c in offer.ciphers), 0)
        if smb2.CTX_COMPRESSION in offer.types and cfg.compression:
            compression = tuple(a for a in cfg.compression if a in offer.compression) or (0,)
            flags = 1 if (offer.compression_flags or 0) & 1 and cfg.compression_chained else 0
        if smb2.CTX_SIGNING in offer.types and cfg.signing_algorithms:
            signing = next((a for a in cfg.signing_algorithms if a in offer.signing), None)
        return smb2.server_contexts(os.urandom(32), cipher, compression, flags, signing)

    # -- SESSION_SETUP / LOGOFF ----------------------------------------------

    def session_setup(self, msg: bytes, hdr: smb2.Header) -> bytes:
        req = smb2.parse_session_setup_request(msg)
        sid = hdr.session_id
        exchange = self.pending.get(sid)
        if exchange is None:
            if sid and sid not in self.sessions:
                return self._error(hdr, status.USER_SESSION_DELETED)
            if len(self.pending) + len(self.sessions) >= MAX_SESSIONS:
                return self._error(hdr, status.REQUEST_NOT_ACCEPTED)
            sid = self.next_session
            self.next_session += 4
            exchange = self.pending[sid] = auth.Exchange(self.profile, "smb2")
        step = exchange.step(req.security_blob, self.conn.now())
        credits = self._credits(hdr)
        if step.status == status.MORE_PROCESSING_REQUIRED:
            return smb2.session_setup_response(hdr.message_id, step.status, sid, 0, step.blob or b"", credits)
        del self.pending[sid]
        if step.status != status.SUCCESS:
            return smb2.error_response(
                smb2.SESSION_SETUP, hdr.message_id, step.status, session_id=sid, credits=credits, process_id=hdr.process_id
            )
        self.sessions[sid] = step.kind or "anonymous"
        flags = smb2.SESSION_FLAG_GUEST if step.guest else 0
        if step.kind == "anonymous" and self.cfg.null_session_flag:
            flags = smb2.SESSION_FLAG_NULL
        return smb2.session_setup_response(hdr.message_id, 0, sid, flags, step.blob or b"", credits)

    def logoff(self, msg: bytes, hdr: smb2.Header) -> bytes:
        if self.sessions.pop(hdr.session_id, None) is None:
            return self._error(hdr, status.USER_SESSION_DELETED)
        return smb2.simple_response(smb2.LOGOFF, hdr.message_id, hdr.session_id, credits=self._credits(hdr))

    def echo(self, msg: bytes, hdr: smb2.Header) -> bytes:
        return smb2.simple_response(smb2.ECHO, hdr.message_id, hdr.session_id, credits=self._credits(hdr))

    # -- TREE_CONNECT / TREE_DISCONNECT -----------------------------------------

    def tree_connect(self, msg: bytes, hdr: smb2.Header) -> bytes:
        kind = self.sessions.get(hdr.session_id)
        if kind is None:
            return self._error(hdr, status.USER_SESSION_DELETED)
        share, refusal = admit_tree(self.profile, smb2_pipe.parse_tree_connect_request(msg).share, kind, len(self.trees))
        if share is None:
            return self._error(hdr, refusal)
        tid = self.next_tree
        self.next_tree += 4
        self.trees[tid] = share
        share_type = {"ipc": smb2_pipe.SHARE_TYPE_PIPE, "print": smb2_pipe.SHARE_TYPE_PRINT}.get(share.type, smb2_pipe.SHARE_TYPE_DISK)
        return smb2_pipe.tree_connect_response(hdr, tid, share_type, maximal_access(self.profile, share), credits=self._credits(hdr))

    def tree_disconnect(self, msg: bytes, hdr: smb2.Header) -> bytes:
        if self.trees.pop(hdr.tree_id, None) is None:
            return self._error(hdr, status.NETWORK_NAME_DELETED)
        return smb2.simple_response(smb2.TREE_DISCONNECT, hdr.message_id, hdr.session_id, hdr.tree_id, self._credits(hdr))

    # -- named pipes (when the pipe layer is available) -----------------------

    def pipe_request(self, msg: bytes, hdr: smb2.Header) -> bytes:
        if hdr.session_id not in self.sessions:
            return self._error(hdr, status.USER_SESSION_DELETED)
        tree = self.trees.get(hdr.tree_id)
        if tree is None:
            return self._error(hdr, status.NETWORK_NAME_DELETED)
        if getattr(tree, "type", None) == "disk":
            return self.files.smb2_request(self, hdr, msg, tree)
        pipes = self.conn.pipes
        if pipes is None or getattr(tree, "type", None) != "ipc":
            code = status.OBJECT_NAME_NOT_FOUND if hdr.command == smb2.CREATE else status.NOT_SUPPORTED
            return self._error(hdr, code)
        return pipes.smb2_request(self, hdr, msg)


_HANDLERS = {
    smb2.SESSION_SETUP: Smb2Server.session_setup,
    smb2.LOGOFF: Smb2Server.logoff,
    smb2.TREE_CONNECT: Smb2Server.tree_connect,
    smb2.TREE_DISCONNECT: Smb2Server.tree_disconnect,
    smb2.ECHO: Smb2Server.echo,
    smb2.CREATE: Smb2Server.pipe_request,
    smb2.CLOSE: Smb2Server.pipe_request,
    smb2.READ: Smb2Server.pipe_request,
    smb2.WRITE: Smb2Server.pipe_request,
    smb2.IOCTL: Smb2Server.pipe_request,
    smb2_dir.QUERY_DIRECTORY: Smb2Server.pipe_request,
    smb2_dir.QUERY_INFO: Smb2Server.pipe_request,
}
