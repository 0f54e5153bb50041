"""Share listing over SRVSVC and share access probes, on an established session.

    listing = await list_shares_smb1(client, uid, address)       # or _smb2
    access = await probe_share_access_smb2(client, session_id, address, "public")

A listing runs: tree connect \\\\ADDR\\IPC$, open the srvsvc pipe, DCE/RPC
BIND to SRVSVC 3.0, NetrShareEnum level 1, close the pipe, tree disconnect.
A step the server refuses (IPC$ denied, pipe not found, bind rejected, a
DCE/RPC fault, a WERROR such as 5 ACCESS_DENIED) is an ordinary result:
ShareListing names the step and its code.  Transport failures and replies
that cannot be parsed raise ScanError, and nothing else escapes.

A share access probe is a tree connect and a tree disconnect: the server's
MaximalAccess for this session on the share (SMB2 TREE_CONNECT response;
SMB1 TREE_CONNECT_ANDX extended response) tells whether it could write,
without creating, opening or writing anything.

Reply fragments: a DCE/RPC reply that does not fit one pipe read comes back
with STATUS_BUFFER_OVERFLOW, and the rest is READ (SMB1 READ_ANDX, SMB2
READ); SMB1 transaction replies split over several messages are joined by
their displacements.  Every loop is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import dcerpc, smb1_pipe, smb2_pipe, srvsvc, status
from ..protocol.errors import ProtocolError
from .connection import PROTOCOL, ScanError
from .session import Smb1Client, Smb2Client

#: The DCE/RPC fragment size we offer to send and receive (Windows' own).
MAX_FRAG = dcerpc.DEFAULT_MAX_FRAG
#: Bytes asked for per pipe transaction or read; a fragment that does not
#: fit comes back with STATUS_BUFFER_OVERFLOW and the rest is read.
PIPE_READ_SIZE = MAX_FRAG
#: Pipe reads for one reply: MAX_STUB / a small fragment, with room to spare.
MAX_READS = 512
#: IOCTL answers that mean "no FSCTL_PIPE_TRANSCEIVE here": fall back to WRITE + READ.
NO_TRANSCEIVE = (status.NOT_SUPPORTED, status.INVALID_DEVICE_REQUEST)

STEP_TREE = "tree connect IPC$"
STEP_OPEN = "open \\srvsvc"
STEP_BIND = "bind"
STEP_ENUM = "NetrShareEnum"

WRITE_RIGHTS = (smb2_pipe.FILE_WRITE_DATA | smb2_pipe.FILE_APPEND_DATA | smb2_pipe.GENERIC_WRITE
                | smb2_pipe.GENERIC_ALL)


@dataclass(slots=True)
class ShareListing:
    """The outcome of one share listing: `shares`, or the failed step."""

    protocol: str  # smb1 | smb2
    shares: list[srvsvc.Share] | None = None
    total_entries: int | None = None
    step: str | None = None  # the step that failed
    status: int | None = None  # its NT status (tree connect, open, pipe I/O)
    werror: int | None = None  # NetrShareEnum's return code
    fault: int | None = None  # a DCE/RPC FAULT status
    reason: str | None = None  # "NetrShareEnum: WERROR 5 (ACCESS_DENIED)"
    cleanup_error: str | None = None  # close / tree disconnect trouble after success

    @property
    def ok(self) -> bool:
        return self.shares is not None


@dataclass(slots=True)
class ShareAccess:
    """What a tree connect to one share said about this session's rights."""

    share: str
    status: int
    maximal_access: int | None = None  # None: the server did not say
    guest_maximal_access: int | None = None  # SMB1 only
    share_type: str | None = None  # SMB2 disk/pipe/print; SMB1 service (A:, IPC, ...)
    writable: bool | None = None  # None when maximal_access is unknown or the connect failed
    reason: str | None = None
    tree_id: int | None = None  # the tree left connected when disconnect=False

    @property
    def reachable(self) -> bool:
        return self.status == status.SUCCESS


def is_writable(access: int | None) -> bool | None:
    """FILE_WRITE_DATA, FILE_APPEND_DATA, GENERIC_WRITE or GENERIC_ALL granted."""
    return None if access is None else bool(access & WRITE_RIGHTS)


def _parse(step: str, fn, *args):
    try:
        return fn(*args)
    except ProtocolError as exc:
        raise ScanError(PROTOCOL, f"{step}: {exc}") from None


def _unc(address: str, share: str) -> str:
    return f"\\\\{address}\\{share}"


def _refused(listing: ShareListing, step: str, code: int) -> ShareListing:
    listing.step, listing.status = step, code
    listing.reason = f"{step}: {status.describe(code)}"
    return listing


# -- the pipe transports ----------------------------------------------------------
# Every message goes through the client's session object (protocol/smb1_session.py,
# protocol/smb2_session.py): it numbers the request, checks the reply's message id,
# skips interim replies and joins replies in parts; these classes only say what to send.


class _Smb1Pipe:
    def __init__(self, client: Smb1Client, uid: int, tid: int, fid: int) -> None:
        self.client, self.uid, self.tid, self.fid = client, uid, tid, fid

    async def transact(self, step: str, pdu: bytes) -> tuple[int, bytes]:
        c = self.client
        return await c.run(c.session.pipe_transact, self.fid, pdu, self.uid, self.tid, PIPE_READ_SIZE, label=step)

    async def read(self, step: str) -> tuple[int, bytes]:
        c = self.client
        resp = await c.run(c.session.call, smb1_pipe.read_andx_request, smb1_pipe.parse_read_andx_response, self.fid,
                           uid=self.uid, tid=self.tid, max_count=PIPE_READ_SIZE, label=step)
        return resp.status, resp.data


class _Smb2Pipe:
    def __init__(self, client: Smb2Client, session_id: int, tree_id: int, file_id: bytes) -> None:
        self.client, self.session_id, self.tree_id, self.file_id = client, session_id, tree_id, file_id

    async def _call(self, step: str, build, parse, *head, **kw):
        c = self.client
        return await c.run(c.session.call, build, parse, *head, session_id=self.session_id, tree_id=self.tree_id,
                           label=step, **kw)

    async def transact(self, step: str, pdu: bytes) -> tuple[int, bytes]:
        resp = await self._call(step, smb2_pipe.ioctl_request, smb2_pipe.parse_ioctl_response, self.file_id, pdu,
                                max_output=PIPE_READ_SIZE)
        if resp.status in NO_TRANSCEIVE:
            # a server without FSCTL_PIPE_TRANSCEIVE: WRITE the PDU, READ the reply
            w = await self._call(step, smb2_pipe.write_request, smb2_pipe.parse_write_response, self.file_id, pdu)
            if w.status != 0:
                return w.status, b""
            return await self.read(step)
        return resp.status, resp.output

    async def read(self, step: str) -> tuple[int, bytes]:
        resp = await self._call(step, smb2_pipe.read_request, smb2_pipe.parse_read_response, self.file_id,
                                PIPE_READ_SIZE)
        return resp.status, resp.data


# -- the RPC conversation, shared by both transports ---------------------------------


def _pipe_error(code: int) -> bool:
    return code not in (status.SUCCESS, smb2_pipe.STATUS_BUFFER_OVERFLOW)


async def _call(pipe: _Smb1Pipe | _Smb2Pipe, step: str, pdu: bytes,
                reader: dcerpc.Reassembler | None) -> tuple[int, object]:
    """Write `pdu`, read until `reader` is complete (or, without a reader,
    until one whole PDU is in).  Returns (0, result) or (NT status, None)."""
    code, data = await pipe.transact(step, pdu)
    buf = bytearray()
    for _ in range(MAX_READS):
        if _pipe_error(code):
            return code, None
        if reader is not None:
            if _parse(step, reader.feed, data):
                return 0, reader.result
        else:
            buf += data
            n = _parse(step, dcerpc.pdu_length, bytes(buf))
            if n is not None and n <= len(buf):
                return 0, bytes(buf[:n])
        code, data = await pipe.read(step)
        if not data and not _pipe_error(code):
            raise ScanError(PROTOCOL, f"{step}: empty pipe read before the reply was complete")
    raise ScanError(PROTOCOL, f"{step}: reply not complete after {MAX_READS} pipe reads")


async def _enumerate(pipe: _Smb1Pipe | _Smb2Pipe, listing: ShareListing, address: str) -> ShareListing:
    code, raw = await _call(pipe, STEP_BIND, dcerpc.bind(1, srvsvc.SRVSVC_SYNTAX, max_xmit_frag=MAX_FRAG,
                                                         max_recv_frag=MAX_FRAG), None)
    if code:
        return _refused(listing, STEP_BIND, code)
    assert isinstance(raw, bytes)
    ack = _parse(STEP_BIND, dcerpc.parse_bind_ack, raw)
    if ack.call_id != 1:
        raise ScanError(PROTOCOL, f"{STEP_BIND}: BIND_ACK for call {ack.call_id}, expected 1")
    if not ack.accepted:
        listing.step = STEP_BIND
        listing.reason = f"{STEP_BIND}: {ack.describe()}"
        return listing
    stub = _parse(STEP_ENUM, srvsvc.share_enum_request, address)
    request = _parse(STEP_ENUM, dcerpc.request, 2, srvsvc.OPNUM_NETR_SHARE_ENUM, stub)
    code, resp = await _call(pipe, STEP_ENUM, request, dcerpc.Reassembler(dcerpc.RESPONSE, call_id=2))
    if code:
        return _refused(listing, STEP_ENUM, code)
    assert isinstance(resp, dcerpc.Response)
    if resp.fault is not None:
        listing.step, listing.fault = STEP_ENUM, resp.fault
        listing.reason = f"{STEP_ENUM}: DCE/RPC fault {dcerpc.describe_fault(resp.fault)}"
        return listing
    result = _parse(STEP_ENUM, srvsvc.parse_share_enum_response, resp.stub)
    if result.werror not in (srvsvc.WERR_OK, srvsvc.WERR_MORE_DATA):
        listing.step, listing.werror = STEP_ENUM, result.werror
        listing.reason = f"{STEP_ENUM}: WERROR {srvsvc.describe_werror(result.werror)}"
        return listing
    # MORE_DATA (never seen with PreferedMaximumLength 0xFFFFFFFF): keep what came
    listing.werror = result.werror
    listing.shares, listing.total_entries = result.shares, result.total_entries
    return listing


# -- SMB1 --------------------------------------------------------------------------


async def _smb1_simple(client: Smb1Client, step: str, build, parse, *head, uid: int, tid: int) -> int:
    return (await client.run(client.session.call, build, parse, *head, uid=uid, tid=tid, label=step)).status


async def list_shares_smb1(client: Smb1Client, uid: int, address: str, tid: int | None = None) -> ShareListing:
    """List shares over SMB1 on the session `uid` (anonymous, guest or user).

    `tid`: an IPC$ tree the caller already holds (and keeps): no tree
    connect or disconnect of our own, two round trips less."""
    listing = ShareListing("smb1")
    own_tree = tid is None
    if own_tree:
        tree = await client.tree_connect(_unc(address, "IPC$"), uid, label=STEP_TREE)
        if tree.status != status.SUCCESS:
            return _refused(listing, STEP_TREE, tree.status)
        tid = tree.tid
    opened = await client.run(client.session.call, smb1_pipe.nt_create_request, smb1_pipe.parse_nt_create_response,
                              "\\" + srvsvc.PIPE_NAME, uid=uid, tid=tid, label=STEP_OPEN)
    if opened.status != status.SUCCESS or opened.fid is None:
        _refused(listing, STEP_OPEN, opened.status)
        await _smb1_cleanup(client, uid, tid, None, listing, own_tree)
        return listing
    await _enumerate(_Smb1Pipe(client, uid, tid, opened.fid), listing, address)
    await _smb1_cleanup(client, uid, tid, opened.fid, listing, own_tree)
    return listing


async def _smb1_cleanup(client: Smb1Client, uid: int, tid: int, fid: int | None, listing: ShareListing,
                        leave_tree: bool = True) -> None:
    """Close the pipe and leave IPC$; a refusal here does not undo the listing."""
    problems = []
    if fid is not None:
        code = await _smb1_simple(client, "close", smb1_pipe.close_request, smb1_pipe.parse_close_response, fid,
                                  uid=uid, tid=tid)
        if code:
            problems.append(f"close: {status.describe(code)}")
    if leave_tree:
        code = await _smb1_tree_disconnect(client, uid, tid)
        if code:
            problems.append(f"tree disconnect: {status.describe(code)}")
    if problems:
        listing.cleanup_error = "; ".join(problems)


async def _smb1_tree_disconnect(client: Smb1Client, uid: int, tid: int) -> int:
    return (await client.run(client.session.tree_disconnect, uid, tid, label="tree disconnect")).status


async def probe_share_access_smb1(client: Smb1Client, uid: int, address: str, share: str,
                                  disconnect: bool = True) -> ShareAccess:
    """Tree connect to `share` asking for the extended response; read
    MaximalShareAccessRights; disconnect (unless the caller is about to drop
    the connection anyway).  Nothing is opened or written."""
    step = f"tree connect {share}"
    tree = await client.tree_connect(_unc(address, share), uid, label=step)
    if tree.status != status.SUCCESS:
        return ShareAccess(share, tree.status, reason=f"{step}: {status.describe(tree.status)}")
    access = ShareAccess(share, tree.status, tree.maximal_access, tree.guest_maximal_access, tree.service,
                         is_writable(tree.maximal_access))
    if tree.maximal_access is None:
        access.reason = "no extended tree connect response: maximal access not reported"
    if disconnect:
        await _smb1_tree_disconnect(client, uid, tree.tid)
    return access


# -- SMB2 --------------------------------------------------------------------------


async def _smb2_tree_connect(client: Smb2Client, session_id: int, path: str,
                             step: str) -> smb2_pipe.TreeConnectResponse:
    return await client.run(client.session.tree_connect, path, session_id, label=step)


async def list_shares_smb2(client: Smb2Client, session_id: int, address: str,
                           tree_id: int | None = None) -> ShareListing:
    """List shares over SMB2/3 on the session `session_id` (`tree_id`: an IPC$
    tree the caller already holds and keeps, as for SMB1)."""
    listing = ShareListing("smb2")
    own_tree = tree_id is None
    if own_tree:
        tree = await _smb2_tree_connect(client, session_id, _unc(address, "IPC$"), STEP_TREE)
        if tree.status != status.SUCCESS:
            return _refused(listing, STEP_TREE, tree.status)
        tree_id = tree.tree_id
    opened = await client.run(client.session.call, smb2_pipe.create_request, smb2_pipe.parse_create_response,
                              srvsvc.PIPE_NAME, session_id=session_id, tree_id=tree_id, label=STEP_OPEN)
    if opened.status != status.SUCCESS or opened.file_id is None:
        _refused(listing, STEP_OPEN, opened.status)
        await _smb2_cleanup(client, session_id, tree_id, None, listing, own_tree)
        return listing
    await _enumerate(_Smb2Pipe(client, session_id, tree_id, opened.file_id), listing, address)
    await _smb2_cleanup(client, session_id, tree_id, opened.file_id, listing)
    return listing


async def _smb2_cleanup(client: Smb2Client, session_id: int, tree_id: int, file_id: bytes | None,
                        listing: ShareListing, leave_tree: bool = True) -> None:
    problems = []
    if file_id is not None:
        resp = await client.run(client.session.call, smb2_pipe.close_request, smb2_pipe.parse_close_response,
                                file_id, session_id=session_id, tree_id=tree_id, label="close")
        if resp.status:
            problems.append(f"close: {status.describe(resp.status)}")
    if leave_tree:
        code = await _smb2_tree_disconnect(client, session_id, tree_id)
        if code:
            problems.append(f"tree disconnect: {status.describe(code)}")
    if problems:
        listing.cleanup_error = "; ".join(problems)


async def _smb2_tree_disconnect(client: Smb2Client, session_id: int, tree_id: int) -> int:
    return (await client.run(client.session.tree_disconnect, session_id, tree_id, label="tree disconnect")).status


async def probe_share_access_smb2(client: Smb2Client, session_id: int, address: str, share: str,
                                  disconnect: bool = True) -> ShareAccess:
    """Tree connect to `share`; read MaximalAccess and ShareType; disconnect
    (unless `disconnect` is false).  Nothing is opened or written."""
    step = f"tree connect {share}"
    tree = await _smb2_tree_connect(client, session_id, _unc(address, share), step)
    if tree.status != status.SUCCESS:
        return ShareAccess(share, tree.status, reason=f"{step}: {status.describe(tree.status)}")
    access = ShareAccess(share, tree.status, tree.maximal_access, None, tree.share_type_name,
                         is_writable(tree.maximal_access))
    access.tree_id = tree.tree_id
    if disconnect:
        await _smb2_tree_disconnect(client, session_id, tree.tree_id)
    return access
