"""Named pipe \\srvsvc on IPC$, so emulated hosts answer share listings.

Over SMB1 (NT_CREATE_ANDX, TRANSACTION TransactNmPipe, WRITE_ANDX, READ_ANDX,
CLOSE) and
SMB2 (CREATE, IOCTL FSCTL_PIPE_TRANSCEIVE, WRITE, READ, CLOSE) the client
writes DCE/RPC PDUs into the pipe and reads the replies; `RpcPipe` is the
DCE/RPC server behind it: BIND to SRVSVC 3.0 with NDR, then NetrShareEnum
(opnum 15) and NetrShareGetInfo (opnum 16, levels 0 and 1; the
administrators' levels refused) answered from the profile's shares, or WERROR 5 ACCESS_DENIED when
the profile does not let this session's kind (anonymous, guest) list shares.
A profile that restricts null sessions to its NullSessionPipes (Windows
since Vista / Server 2008) refuses the anonymous open itself with
STATUS_ACCESS_DENIED.
Layouts come from protocol.dcerpc / srvsvc / smb1_pipe / smb2_pipe, the
modules the scanner's share listing uses.

Pipes behave in message mode: each reply PDU is one message; a read smaller
than the message returns STATUS_BUFFER_OVERFLOW and leaves the rest for the
next READ, as on Windows.
"""

from __future__ import annotations

import collections
import os
import struct
import uuid

from ..protocol import dcerpc, smb1, smb1_pipe, smb1_trans, smb2_pipe, srvsvc, status
from ..protocol.errors import ProtocolError
from .profile_model import Profile
from .conn import Connection

PIPE_NAMES = {"srvsvc"}
MAX_PIPES = 16
MAX_PENDING = 1 << 16  # unread reply bytes kept per pipe
PIPE_STATE_CONNECTED = 0x0003
NULL_SYNTAX = (uuid.UUID(int=0), 0, 0)


def share_type(share) -> int:
    base = {"ipc": srvsvc.STYPE_IPC, "print": srvsvc.STYPE_PRINTQ}.get(share.type, srvsvc.STYPE_DISKTREE)
    special = share.special or share.type == "ipc"
    return base | (srvsvc.STYPE_SPECIAL if special else 0)


class RpcPipe:
    """One open \\srvsvc: a DCE/RPC server for one client."""

    __slots__ = ("profile", "kind", "inbuf", "out", "context_id", "max_frag")

    def __init__(self, profile: Profile, kind: str) -> None:
        self.profile = profile
        self.kind = kind  # anonymous | guest
        self.inbuf = bytearray()
        self.out: collections.deque[bytes] = collections.deque()
        self.context_id: int | None = None
        self.max_frag = dcerpc.DEFAULT_MAX_FRAG

    def write(self, data: bytes) -> None:
        """Take client bytes; every complete PDU gets its reply queued."""
        self.inbuf += data
        while True:
            length = dcerpc.pdu_length(self.inbuf)
            if length is None or length > len(self.inbuf):
                return
            pdu = bytes(self.inbuf[:length])
            del self.inbuf[:length]
            for reply in self._answer(pdu):
                if sum(map(len, self.out)) + len(reply) > MAX_PENDING:
                    raise ProtocolError("pipe: the client does not read its replies")
                self.out.append(reply)

    def read(self, size: int) -> tuple[bytes, bool]:
        """(bytes, more): up to `size` bytes of the next message; `more` when
        the message continues (STATUS_BUFFER_OVERFLOW)."""
        if not self.out:
            return b"", False
        message = self.out[0]
        if len(message) > size:
            self.out[0] = message[size:]
            return message[:size], True
        self.out.popleft()
        return message, False

    @property
    def available(self) -> int:
        return len(self.out[0]) if self.out else 0

    def _answer(self, raw: bytes) -> list[bytes]:
        pdu, _ = dcerpc.parse_pdu(raw)
        if pdu.ptype in (dcerpc.BIND, dcerpc.ALTER_CONTEXT):
            return [self._bind(raw)]
        if pdu.ptype == dcerpc.REQUEST:
            if self.context_id is None:
                return [dcerpc.fault(pdu.call_id, dcerpc.NCA_S_PROTO_ERROR)]
            req = dcerpc.parse_request(raw)
            if req.opnum == srvsvc.OPNUM_NETR_SHARE_ENUM:
                stub = self._share_enum(req.stub)
            elif req.opnum == srvsvc.OPNUM_NETR_SHARE_GET_INFO:
                stub = self._share_get_info(req.stub)
            else:
                return [dcerpc.fault(req.call_id, dcerpc.NCA_S_OP_RNG_ERROR, req.context_id)]
            return dcerpc.response_fragments(req.call_id, stub, req.context_id, self.max_frag)
        return [dcerpc.fault(pdu.call_id, dcerpc.NCA_S_PROTO_ERROR)]

    def _bind(self, raw: bytes) -> bytes:
        bind = dcerpc.parse_bind(raw)
        self.max_frag = max(1024, min(bind.max_recv_frag, dcerpc.DEFAULT_MAX_FRAG))
        results = []
        for ctx in bind.contexts:
            if ctx.abstract_syntax != srvsvc.SRVSVC_SYNTAX:
                results.append((dcerpc.PROVIDER_REJECTION, dcerpc.REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED,
                                NULL_SYNTAX))
            elif dcerpc.NDR_SYNTAX not in ctx.transfer_syntaxes:
                results.append((dcerpc.PROVIDER_REJECTION, dcerpc.REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED,
                                NULL_SYNTAX))
            else:
                results.append((dcerpc.ACCEPTANCE, 0, dcerpc.NDR_SYNTAX))
                if self.context_id is None:
                    self.context_id = ctx.context_id
        return dcerpc.bind_ack(bind.call_id, results, self.max_frag, self.max_frag, 0x5A3C0000 | (bind.call_id & 0xFFFF),
                               "\\PIPE\\srvsvc", alter=bind.alter)

    def _listing_allowed(self) -> bool:
        listing = self.profile.access.share_listing
        return listing == "anonymous" or (listing == "guest" and self.kind == "guest")

    def _share_get_info(self, stub: bytes) -> bytes:
        """NetrShareGetInfo: levels 0 and 1 to whoever may list shares;
        level 2, 502 and 503 (path, permissions) need an administrator
        (MS-SRVS 3.1.4.10), which an anonymous or guest session never is."""
        try:
            req = srvsvc.parse_share_get_info_request(stub)
        except ProtocolError:
            return srvsvc.share_get_info_response(None, 0, srvsvc.WERR_INVALID_PARAMETER)
        if not self._listing_allowed() or req.level in (2, 502, 503):
            return srvsvc.share_get_info_response(None, req.level, srvsvc.WERR_ACCESS_DENIED)
        share = self.profile.share(req.net_name)
        if share is None:
            return srvsvc.share_get_info_response(None, req.level, srvsvc.WERR_NET_NAME_NOT_FOUND)
        return srvsvc.share_get_info_response(srvsvc.Share(share.name, share_type(share), share.remark), req.level)

    def _share_enum(self, stub: bytes) -> bytes:
        try:
            req = srvsvc.parse_share_enum_request(stub)
        except ProtocolError:
            return srvsvc.share_enum_response(None, srvsvc.WERR_INVALID_PARAMETER)
        if not self._listing_allowed():
            return srvsvc.share_enum_response(None, srvsvc.WERR_ACCESS_DENIED)
        if req.level not in (0, 1):
            return srvsvc.share_enum_response(None, srvsvc.WERR_INVALID_LEVEL)
        shares = [srvsvc.Share(s.name, share_type(s), s.remark) for s in self.profile.shares]
        return srvsvc.share_enum_response(shares, level=req.level)


class PipeServer:
    """The open pipes of one connection (SMB1 FIDs, SMB2 FileIds)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.fids: dict[int, RpcPipe] = {}
        self.files: dict[bytes, RpcPipe] = {}
        self.next_fid = 0x4000

    def _open(self, name: str, kind: str) -> RpcPipe | int:
        pipe = name.strip("\\").lower().removeprefix("pipe\\")
        if pipe not in PIPE_NAMES:
            return status.OBJECT_NAME_NOT_FOUND
        if not self.conn.profile.access.may_open_pipe(kind, pipe):
            # RestrictNullSessAccess: a null session opens only the pipes in
            # NullSessionPipes; the create fails before any RPC is spoken.
            return status.ACCESS_DENIED
        if len(self.fids) + len(self.files) >= MAX_PIPES:
            return status.INSUFF_SERVER_RESOURCES
        return RpcPipe(self.conn.profile, kind)

    # -- SMB1 ---------------------------------------------------------------------

    def is_open(self, fid: int) -> bool:
        return fid in self.fids

    def smb1_create(self, server, hdr: smb1.Header, msg: bytes) -> bytes:
        req = smb1_pipe.parse_nt_create_request(msg)
        pipe = self._open(req.name, server.sessions.get(hdr.uid, "anonymous"))
        if isinstance(pipe, int):
            return smb1_pipe.error_response(hdr, pipe)
        fid = self.next_fid
        self.next_fid = self.next_fid + 1 if self.next_fid < 0xFFFE else 0x4000
        self.fids[fid] = pipe
        return smb1_pipe.nt_create_response(hdr, fid)

    def smb1_transaction(self, server, hdr: smb1.Header, req: smb1_trans.TransactionRequest, sub: int, fid: int) -> bytes:
        pipe = self.fids.get(fid)
        if pipe is None:
            return smb1_pipe.error_response(hdr, status.INVALID_HANDLE)
        if sub == smb1_pipe.TRANS_PEEK_NMPIPE:
            params = struct.pack("<HHH", pipe.available, pipe.available, PIPE_STATE_CONNECTED)
            return smb1_trans.transaction_response(hdr, params=params)
        try:
            pipe.write(req.data)
        except ProtocolError:
            return smb1_pipe.error_response(hdr, status.INVALID_PARAMETER)
        data, more = pipe.read(req.max_data or 0xFFFF)
        return smb1_trans.transaction_response(hdr, data=data, status=smb1_pipe.STATUS_BUFFER_OVERFLOW if more else 0)

    def smb1_read(self, server, hdr: smb1.Header, msg: bytes) -> bytes:
        req = smb1_pipe.parse_read_andx_request(msg)
        pipe = self.fids.get(req.fid)
        if pipe is None:
            return smb1_pipe.error_response(hdr, status.INVALID_HANDLE)
        data, more = pipe.read(req.max_count or 0xFFFF)
        if not data:
            return smb1_pipe.error_response(hdr, status.PIPE_EMPTY)
        return smb1_pipe.read_andx_response(hdr, data, smb1_pipe.STATUS_BUFFER_OVERFLOW if more else 0)

    def smb1_write(self, server, hdr: smb1.Header, msg: bytes) -> bytes:
        """WRITE_ANDX into a pipe: the bytes join the pipe's input; the reply
        waits for the client's READ_ANDX.  A raw-mode message start (mode
        0x000C, what impacket sends when a PDU exceeds MaxBufferSize) begins
        with a two-byte length that is not part of the message."""
        req = smb1_pipe.parse_write_andx_request(msg)
        pipe = self.fids.get(req.fid)
        if pipe is None:
            return smb1_pipe.error_response(hdr, status.INVALID_HANDLE)
        data = req.data
        raw_start = smb1_pipe.WRITE_MODE_RAW | smb1_pipe.WRITE_MODE_MESSAGE_START
        if req.write_mode & raw_start == raw_start:
            data = data[2:]
        try:
            pipe.write(data)
        except ProtocolError:
            return smb1_pipe.error_response(hdr, status.INVALID_PARAMETER)
        return smb1_pipe.write_andx_response(hdr, len(req.data))

    def smb1_close(self, server, hdr: smb1.Header, msg: bytes) -> bytes:
        req = smb1_pipe.parse_close_request(msg)
        if self.fids.pop(req.fid, None) is None:
            return smb1_pipe.error_response(hdr, status.INVALID_HANDLE)
        return smb1_pipe.close_response(hdr)

    # -- SMB2 -------------------------------------------------------------------------

    def smb2_request(self, server, hdr, msg: bytes) -> bytes:
        command = hdr.command
        if command == smb2_pipe.CREATE:
            req = smb2_pipe.parse_create_request(msg)
            pipe = self._open(req.name, server.sessions.get(hdr.session_id, "anonymous"))
            if isinstance(pipe, int):
                return smb2_pipe.error_response(hdr, pipe)
            file_id = os.urandom(8) + os.urandom(8)
            self.files[file_id] = pipe
            return smb2_pipe.create_response(hdr, file_id)
        if command == smb2_pipe.IOCTL:
            req = smb2_pipe.parse_ioctl_request(msg)
            if req.ctl_code != smb2_pipe.FSCTL_PIPE_TRANSCEIVE:
                return smb2_pipe.error_response(hdr, status.INVALID_DEVICE_REQUEST)
            pipe = self.files.get(req.file_id)
            if pipe is None:
                return smb2_pipe.error_response(hdr, status.FILE_CLOSED)
            pipe.write(req.input)
            data, more = pipe.read(min(req.max_output, smb2_pipe.MAX_DATA))
            return smb2_pipe.ioctl_response(hdr, req.file_id, data, smb2_pipe.STATUS_BUFFER_OVERFLOW if more else 0)
        if command == smb2_pipe.WRITE:
            req = smb2_pipe.parse_write_request(msg)
            pipe = self.files.get(req.file_id)
            if pipe is None:
                return smb2_pipe.error_response(hdr, status.FILE_CLOSED)
            pipe.write(req.data)
            return smb2_pipe.write_response(hdr, len(req.data))
        if command == smb2_pipe.READ:
            req = smb2_pipe.parse_read_request(msg)
            pipe = self.files.get(req.file_id)
            if pipe is None:
                return smb2_pipe.error_response(hdr, status.FILE_CLOSED)
            data, more = pipe.read(min(req.length, smb2_pipe.MAX_DATA))
            if not data:
                return smb2_pipe.error_response(hdr, status.PIPE_EMPTY)
            return smb2_pipe.read_response(hdr, data, smb2_pipe.STATUS_BUFFER_OVERFLOW if more else 0)
        if command == smb2_pipe.CLOSE:
            req = smb2_pipe.parse_close_request(msg)
            if self.files.pop(req.file_id, None) is None:
                return smb2_pipe.error_response(hdr, status.FILE_CLOSED)
            return smb2_pipe.close_response(hdr)
        return smb2_pipe.error_response(hdr, status.NOT_SUPPORTED)
