"""SMB2 tree and named-pipe messages (MS-SMB2 2.2.9-2.2.32), both sides, no I/O.

TREE_CONNECT (the response carries ShareType and MaximalAccess: what this
session may do on the share, without opening anything), CREATE of a pipe
("srvsvc" on IPC$) returning its FileId, IOCTL FSCTL_PIPE_TRANSCEIVE (write
one DCE/RPC PDU, read the reply), WRITE and READ (the fallback, and the way
to fetch the rest of a reply answered with STATUS_BUFFER_OVERFLOW), CLOSE and
TREE_DISCONNECT.

Client builders take message_id, session_id and tree_id and charge one
credit (every payload here stays below 64 KiB).  Server builders take the
parsed request header and echo its MessageId, SessionId, TreeId and
ProcessId.  Offsets are from the start of the SMB2 header, as in smb2.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from . import smb2
from .errors import ProtocolError
from .status import NtStatus, is_error
from .fields import Layout, take
from .smb2 import CLOSE, CREATE, IOCTL, READ, TREE_CONNECT, TREE_DISCONNECT, WRITE  # one definition, in smb2

COMMAND_NAMES = {TREE_CONNECT: "TREE_CONNECT", TREE_DISCONNECT: "TREE_DISCONNECT", CREATE: "CREATE",
                 CLOSE: "CLOSE", READ: "READ", WRITE: "WRITE", IOCTL: "IOCTL"}

STATUS_PENDING = NtStatus.PENDING
STATUS_BUFFER_OVERFLOW = NtStatus.BUFFER_OVERFLOW
FLAG_ASYNC = 0x00000002

FSCTL_PIPE_TRANSCEIVE = 0x0011C017
IOCTL_IS_FSCTL = 0x00000001

SHARE_TYPE_DISK = 0x01
SHARE_TYPE_PIPE = 0x02
SHARE_TYPE_PRINT = 0x03
SHARE_TYPE_NAMES = {SHARE_TYPE_DISK: "disk", SHARE_TYPE_PIPE: "pipe", SHARE_TYPE_PRINT: "print"}

# access masks (MS-SMB2 2.2.13.1)
FILE_READ_DATA = 0x00000001
FILE_WRITE_DATA = 0x00000002
FILE_APPEND_DATA = 0x00000004
READ_CONTROL = 0x00020000
SYNCHRONIZE = 0x00100000
GENERIC_ALL = 0x10000000
GENERIC_WRITE = 0x40000000
#: read/write data, EAs and attributes, READ_CONTROL, SYNCHRONIZE: what
#: Windows asks for when it opens an RPC pipe.
PIPE_ACCESS = 0x0012019F

FILE_SHARE_READ = 0x1
FILE_SHARE_WRITE = 0x2
FILE_OPEN = 0x1
IMPERSONATION = 2

MAX_PATH = 1024  # bytes of a UNC path or file name
MAX_DATA = 1 << 16  # one credit's worth of data
MAX_CONTEXTS_BLOB = 4096

ZERO_FILE_ID = b"\x00" * 16


# -- fixed parts ---------------------------------------------------------------


class TreeConnectRequestFixed(Layout):
    _fields_ = [("structure_size", "H", 9), ("flags", "H", 0), ("path_offset", "H", 0), ("path_length", "H", 0)]


class TreeConnectResponseFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 16),
        ("share_type", "B", SHARE_TYPE_PIPE),
        ("reserved", "B", 0),
        ("share_flags", "I", 0),
        ("capabilities", "I", 0),
        ("maximal_access", "I", 0),
    ]


class SmallFixed(Layout):
    """TREE_DISCONNECT request and response, LOGOFF."""

    _fields_ = [("structure_size", "H", 4), ("reserved", "H", 0)]


class CreateRequestFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 57),
        ("security_flags", "B", 0),
        ("oplock_level", "B", 0),
        ("impersonation", "I", IMPERSONATION),
        ("create_flags", "Q", 0),
        ("reserved", "Q", 0),
        ("desired_access", "I", PIPE_ACCESS),
        ("attributes", "I", 0),
        ("share_access", "I", FILE_SHARE_READ | FILE_SHARE_WRITE),
        ("disposition", "I", FILE_OPEN),
        ("create_options", "I", 0),
        ("name_offset", "H", 0),
        ("name_length", "H", 0),
        ("contexts_offset", "I", 0),
        ("contexts_length", "I", 0),
    ]


class CreateResponseFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 89),
        ("oplock_level", "B", 0),
        ("flags", "B", 0),
        ("create_action", "I", 1),
        ("creation_time", "Q", 0),
        ("last_access_time", "Q", 0),
        ("last_write_time", "Q", 0),
        ("change_time", "Q", 0),
        ("allocation_size", "Q", 0),
        ("end_of_file", "Q", 0),
        ("attributes", "I", 0x80),
        ("reserved", "I", 0),
        ("file_id", "16s", ZERO_FILE_ID),
        ("contexts_offset", "I", 0),
        ("contexts_length", "I", 0),
    ]


class IoctlRequestFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 57),
        ("reserved", "H", 0),
        ("ctl_code", "I", FSCTL_PIPE_TRANSCEIVE),
        ("file_id", "16s", ZERO_FILE_ID),
        ("input_offset", "I", 0),
        ("input_count", "I", 0),
        ("max_input_response", "I", 0),
        ("output_offset", "I", 0),
        ("output_count", "I", 0),
        ("max_output_response", "I", 0),
        ("flags", "I", IOCTL_IS_FSCTL),
        ("reserved2", "I", 0),
    ]


class IoctlResponseFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 49),
        ("reserved", "H", 0),
        ("ctl_code", "I", FSCTL_PIPE_TRANSCEIVE),
        ("file_id", "16s", ZERO_FILE_ID),
        ("input_offset", "I", 0),
        ("input_count", "I", 0),
        ("output_offset", "I", 0),
        ("output_count", "I", 0),
        ("flags", "I", 0),
        ("reserved2", "I", 0),
    ]


class WriteRequestFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 49),
        ("data_offset", "H", 0),
        ("length", "I", 0),
        ("offset", "Q", 0),
        ("file_id", "16s", ZERO_FILE_ID),
        ("channel", "I", 0),
        ("remaining", "I", 0),
        ("channel_info_offset", "H", 0),
        ("channel_info_length", "H", 0),
        ("flags", "I", 0),
    ]


class WriteResponseFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 17),
        ("reserved", "H", 0),
        ("count", "I", 0),
        ("remaining", "I", 0),
        ("channel_info_offset", "H", 0),
        ("channel_info_length", "H", 0),
    ]


class ReadRequestFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 49),
        ("padding", "B", 0x50),
        ("flags", "B", 0),
        ("length", "I", 0),
        ("offset", "Q", 0),
        ("file_id", "16s", ZERO_FILE_ID),
        ("minimum_count", "I", 0),
        ("channel", "I", 0),
        ("remaining", "I", 0),
        ("channel_info_offset", "H", 0),
        ("channel_info_length", "H", 0),
    ]


class ReadResponseFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 17),
        ("data_offset", "B", 0),
        ("reserved", "B", 0),
        ("data_length", "I", 0),
        ("data_remaining", "I", 0),
        ("reserved2", "I", 0),
    ]


class CloseRequestFixed(Layout):
    _fields_ = [("structure_size", "H", 24), ("flags", "H", 0), ("reserved", "I", 0), ("file_id", "16s", ZERO_FILE_ID)]


class CloseResponseFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 60),
        ("flags", "H", 0),
        ("reserved", "I", 0),
        ("creation_time", "Q", 0),
        ("last_access_time", "Q", 0),
        ("last_write_time", "Q", 0),
        ("change_time", "Q", 0),
        ("allocation_size", "Q", 0),
        ("end_of_file", "Q", 0),
        ("attributes", "I", 0),
    ]


class ErrorResponseFixed(Layout):
    _fields_ = [("structure_size", "H", 9), ("context_count", "B", 0), ("reserved", "B", 0), ("byte_count", "I", 0)]


# -- headers -----------------------------------------------------------------------


def _request(command: int, message_id: int, session_id: int, tree_id: int, body: bytes, credits: int = 31) -> bytes:
    return smb2.header(command, message_id, session_id=session_id, tree_id=tree_id, credits=credits,
                       credit_charge=1) + body


def reply_header(req: smb2.Header, status: int = 0, tree_id: int | None = None, session_id: int | None = None,
                 credits: int | None = None, command: int | None = None) -> bytes:
    """Server: a response header echoing the request's ids; grants what the
    request asked for (1..64 credits) unless `credits` says otherwise."""
    return smb2.Header(
        command=req.command if command is None else command,
        status=status,
        credit_charge=req.credit_charge,
        credits=max(1, min(req.credits, 64)) if credits is None else credits,
        flags=smb2.FLAG_RESPONSE,
        message_id=req.message_id,
        process_id=req.process_id,
        tree_id=req.tree_id if tree_id is None else tree_id,
        session_id=req.session_id if session_id is None else session_id,
    ).pack()


def error_response(req: smb2.Header, status: int, tree_id: int | None = None, command: int | None = None) -> bytes:
    """Server: the ERROR response (StructureSize 9, one zero byte of data)."""
    return reply_header(req, status, tree_id=tree_id, command=command) + ErrorResponseFixed().pack() + b"\x00"


def interim_response(req: smb2.Header, async_id: int = 1) -> bytes:
    """Server: the STATUS_PENDING interim response of an async operation."""
    hdr = smb2.Header(command=req.command, status=STATUS_PENDING, credit_charge=req.credit_charge,
                      credits=1, flags=smb2.FLAG_RESPONSE | FLAG_ASYNC, message_id=req.message_id,
                      process_id=async_id & 0xFFFFFFFF, tree_id=async_id >> 32, session_id=req.session_id)
    return hdr.pack() + ErrorResponseFixed().pack() + b"\x00"


def parse_request_header(msg: bytes) -> smb2.Header:
    """Server: the header of any SMB2 request, to dispatch on its command."""
    hdr = smb2.parse_header(msg)
    if hdr.flags & smb2.FLAG_RESPONSE:
        raise ProtocolError("smb2: a response where a request was expected")
    return hdr


def _request_of(msg: bytes, command: int) -> smb2.Header:
    hdr = parse_request_header(msg)
    if hdr.command != command:
        raise ProtocolError(f"smb2: expected a {COMMAND_NAMES[command]} request, got command {hdr.command}")
    return hdr


def _response_of(msg: bytes, command: int) -> smb2.Header:
    hdr = smb2.parse_header(msg)
    if hdr.command != command or not hdr.flags & smb2.FLAG_RESPONSE:
        raise ProtocolError(f"smb2: expected a {COMMAND_NAMES[command]} response, got command {hdr.command}")
    return hdr


def is_interim(msg: bytes) -> bool:
    """True for a STATUS_PENDING interim response (the real one follows)."""
    hdr = smb2.parse_header(msg)
    return hdr.status == STATUS_PENDING and bool(hdr.flags & FLAG_ASYNC)


def _has_body(msg: bytes, hdr: smb2.Header, fixed: type[Layout], ok: tuple[int, ...] = (0,)) -> bool:
    """Whether the response carries the command's own body (not an ERROR
    structure); ProtocolError when a success status comes with a bad one."""
    if hdr.status not in ok:
        return False
    raw = take(msg, smb2.Header.size, 2, f"smb2: {COMMAND_NAMES[hdr.command]} response body")
    (size,) = struct.unpack("<H", raw)
    if size == 9 and hdr.status != 0:
        return False
    want = fixed._defaults[0]
    if size != want:
        raise ProtocolError(f"smb2: {COMMAND_NAMES[hdr.command]} response structure size {size}, expected {want}")
    fixed.unpack_from(msg, smb2.Header.size)  # the whole fixed part is there
    return True


def _utf16(raw: bytes) -> str:
    return raw[: len(raw) - len(raw) % 2].decode("utf-16-le", "replace")


# -- TREE_CONNECT / TREE_DISCONNECT ---------------------------------------------------


def tree_connect_request(path: str, message_id: int, session_id: int) -> bytes:
    """Client: TREE_CONNECT to a UNC path such as \\\\127.0.0.1\\IPC$."""
    raw = path.encode("utf-16-le")
    if len(raw) > MAX_PATH:
        raise ProtocolError(f"smb2: path of {len(raw)} bytes exceeds {MAX_PATH}")
    fixed = TreeConnectRequestFixed(path_offset=smb2.Header.size + TreeConnectRequestFixed.size, path_length=len(raw))
    return _request(TREE_CONNECT, message_id, session_id, 0, fixed.pack() + raw)


@dataclass(slots=True)
class TreeConnectRequest:
    header: smb2.Header
    path: str
    flags: int

    @property
    def share(self) -> str:
        """The share name: the last component of the UNC path."""
        return self.path.rstrip("\\").rsplit("\\", 1)[-1]


def parse_tree_connect_request(msg: bytes) -> TreeConnectRequest:
    hdr = _request_of(msg, TREE_CONNECT)
    fixed = TreeConnectRequestFixed.unpack_from(msg, smb2.Header.size)
    raw = take(msg, fixed.path_offset, fixed.path_length, "smb2: tree connect path", cap=MAX_PATH)
    return TreeConnectRequest(hdr, _utf16(raw), fixed.flags)


def tree_connect_response(
    req: smb2.Header,
    tree_id: int,
    share_type: int = SHARE_TYPE_PIPE,
    maximal_access: int = 0x001F01FF,
    share_flags: int = 0,
    capabilities: int = 0,
    status: int = 0,
    credits: int | None = None,
) -> bytes:
    """Server: TREE_CONNECT response assigning `tree_id` (or the ERROR
    response for a refusal such as STATUS_ACCESS_DENIED or
    STATUS_BAD_NETWORK_NAME).  The one TREE_CONNECT builder: the lab's
    SMB2 server answers with it too (`credits`: its grant)."""
    if status:
        return error_response(req, status, command=TREE_CONNECT)
    body = TreeConnectResponseFixed(share_type=share_type, share_flags=share_flags, capabilities=capabilities,
                                    maximal_access=maximal_access).pack()
    return reply_header(req, 0, tree_id=tree_id, credits=credits, command=TREE_CONNECT) + body


@dataclass(slots=True)
class TreeConnectResponse:
    status: int
    tree_id: int
    share_type: int | None = None
    share_flags: int | None = None
    capabilities: int | None = None
    maximal_access: int | None = None
    header: smb2.Header | None = None

    @property
    def share_type_name(self) -> str | None:
        return None if self.share_type is None else SHARE_TYPE_NAMES.get(self.share_type, str(self.share_type))


def parse_tree_connect_response(msg: bytes) -> TreeConnectResponse:
    hdr = _response_of(msg, TREE_CONNECT)
    if not _has_body(msg, hdr, TreeConnectResponseFixed):
        return TreeConnectResponse(hdr.status, hdr.tree_id, header=hdr)
    f = TreeConnectResponseFixed.unpack_from(msg, smb2.Header.size)
    return TreeConnectResponse(hdr.status, hdr.tree_id, f.share_type, f.share_flags, f.capabilities,
                               f.maximal_access, hdr)


def tree_disconnect_request(message_id: int, session_id: int, tree_id: int) -> bytes:
    return _request(TREE_DISCONNECT, message_id, session_id, tree_id, SmallFixed().pack())


def parse_tree_disconnect_request(msg: bytes) -> smb2.Header:
    hdr = _request_of(msg, TREE_DISCONNECT)
    SmallFixed.unpack_from(msg, smb2.Header.size)
    return hdr


def tree_disconnect_response(req: smb2.Header, status: int = 0) -> bytes:
    if status:
        return error_response(req, status, command=TREE_DISCONNECT)
    return reply_header(req, command=TREE_DISCONNECT) + SmallFixed().pack()


@dataclass(slots=True)
class SimpleResponse:
    status: int
    header: smb2.Header


def parse_tree_disconnect_response(msg: bytes) -> SimpleResponse:
    hdr = _response_of(msg, TREE_DISCONNECT)
    return SimpleResponse(hdr.status, hdr)


# -- CREATE ----------------------------------------------------------------------------


def create_request(
    name: str,
    message_id: int,
    session_id: int,
    tree_id: int,
    desired_access: int = PIPE_ACCESS,
    share_access: int = FILE_SHARE_READ | FILE_SHARE_WRITE,
    disposition: int = FILE_OPEN,
    create_options: int = 0,
) -> bytes:
    """Client: CREATE of `name` relative to the tree (a pipe: "srvsvc")."""
    raw = name.encode("utf-16-le")
    if len(raw) > MAX_PATH:
        raise ProtocolError(f"smb2: name of {len(raw)} bytes exceeds {MAX_PATH}")
    fixed = CreateRequestFixed(desired_access=desired_access, share_access=share_access, disposition=disposition,
                               create_options=create_options,
                               name_offset=smb2.Header.size + CreateRequestFixed.size, name_length=len(raw))
    return _request(CREATE, message_id, session_id, tree_id, fixed.pack() + (raw or b"\x00"))


@dataclass(slots=True)
class CreateRequest:
    header: smb2.Header
    name: str
    desired_access: int
    share_access: int
    disposition: int
    create_options: int
    impersonation: int


def parse_create_request(msg: bytes) -> CreateRequest:
    hdr = _request_of(msg, CREATE)
    f = CreateRequestFixed.unpack_from(msg, smb2.Header.size)
    raw = take(msg, f.name_offset, f.name_length, "smb2: create name", cap=MAX_PATH) if f.name_length else b""
    if f.contexts_length:
        take(msg, f.contexts_offset, f.contexts_length, "smb2: create contexts", cap=MAX_CONTEXTS_BLOB)
    return CreateRequest(hdr, _utf16(raw), f.desired_access, f.share_access, f.disposition, f.create_options,
                         f.impersonation)


def create_response(req: smb2.Header, file_id: bytes, status: int = 0, create_action: int = 1,
                    attributes: int = 0x80) -> bytes:
    """Server: CREATE response with a 16-byte FileId (or the ERROR response)."""
    if status:
        return error_response(req, status, command=CREATE)
    if len(file_id) != 16:
        raise ProtocolError("smb2: a FileId is 16 bytes")
    body = CreateResponseFixed(create_action=create_action, attributes=attributes, file_id=file_id).pack()
    return reply_header(req, command=CREATE) + body


@dataclass(slots=True)
class CreateResponse:
    status: int
    file_id: bytes | None = None
    create_action: int | None = None
    attributes: int | None = None
    end_of_file: int | None = None
    header: smb2.Header | None = None


def parse_create_response(msg: bytes) -> CreateResponse:
    hdr = _response_of(msg, CREATE)
    if not _has_body(msg, hdr, CreateResponseFixed):
        return CreateResponse(hdr.status, header=hdr)
    f = CreateResponseFixed.unpack_from(msg, smb2.Header.size)
    if f.contexts_length:
        take(msg, f.contexts_offset, f.contexts_length, "smb2: create contexts", cap=MAX_CONTEXTS_BLOB)
    return CreateResponse(hdr.status, f.file_id, f.create_action, f.attributes, f.end_of_file, hdr)


# -- IOCTL FSCTL_PIPE_TRANSCEIVE ---------------------------------------------------------


def ioctl_request(
    file_id: bytes,
    data: bytes,
    message_id: int,
    session_id: int,
    tree_id: int,
    max_output: int = 4280,
    ctl_code: int = FSCTL_PIPE_TRANSCEIVE,
) -> bytes:
    """Client: IOCTL (FSCTL) writing `data` to the pipe and asking for up to
    `max_output` bytes of reply."""
    if len(file_id) != 16:
        raise ProtocolError("smb2: a FileId is 16 bytes")
    if len(data) > MAX_DATA or max_output > MAX_DATA:
        raise ProtocolError(f"smb2: IOCTL payloads above {MAX_DATA} bytes need more than one credit")
    offset = smb2.Header.size + IoctlRequestFixed.size
    fixed = IoctlRequestFixed(ctl_code=ctl_code, file_id=file_id, input_offset=offset if data else 0,
                              input_count=len(data), output_offset=offset if data else 0,
                              max_output_response=max_output)
    return _request(IOCTL, message_id, session_id, tree_id, fixed.pack() + data)


@dataclass(slots=True)
class IoctlRequest:
    header: smb2.Header
    ctl_code: int
    file_id: bytes
    input: bytes
    max_output: int
    flags: int


def parse_ioctl_request(msg: bytes) -> IoctlRequest:
    hdr = _request_of(msg, IOCTL)
    f = IoctlRequestFixed.unpack_from(msg, smb2.Header.size)
    data = take(msg, f.input_offset, f.input_count, "smb2: ioctl input", cap=MAX_DATA) if f.input_count else b""
    return IoctlRequest(hdr, f.ctl_code, f.file_id, data, f.max_output_response, f.flags)


def ioctl_response(req: smb2.Header, file_id: bytes, output: bytes, status: int = 0,
                   ctl_code: int = FSCTL_PIPE_TRANSCEIVE) -> bytes:
    """Server: IOCTL response carrying `output`; status STATUS_BUFFER_OVERFLOW
    says the pipe message continues (the client READs the rest).  An error
    status gives the ERROR response."""
    if status and status != STATUS_BUFFER_OVERFLOW:
        return error_response(req, status, command=IOCTL)
    offset = smb2.Header.size + IoctlResponseFixed.size
    body = IoctlResponseFixed(ctl_code=ctl_code, file_id=file_id, input_offset=offset, output_offset=offset,
                              output_count=len(output)).pack()
    return reply_header(req, status, command=IOCTL) + body + output


@dataclass(slots=True)
class IoctlResponse:
    status: int
    output: bytes = b""
    ctl_code: int | None = None
    file_id: bytes | None = None
    header: smb2.Header | None = None

    @property
    def more(self) -> bool:
        """The pipe message did not fit: READ the rest."""
        return self.status == STATUS_BUFFER_OVERFLOW


def parse_ioctl_response(msg: bytes) -> IoctlResponse:
    hdr = _response_of(msg, IOCTL)
    if not _has_body(msg, hdr, IoctlResponseFixed, (0, STATUS_BUFFER_OVERFLOW)):
        return IoctlResponse(hdr.status, header=hdr)
    f = IoctlResponseFixed.unpack_from(msg, smb2.Header.size)
    out = take(msg, f.output_offset, f.output_count, "smb2: ioctl output", cap=MAX_DATA) if f.output_count else b""
    return IoctlResponse(hdr.status, out, f.ctl_code, f.file_id, hdr)


# -- WRITE / READ ---------------------------------------------------------------------------


def write_request(file_id: bytes, data: bytes, message_id: int, session_id: int, tree_id: int,
                  offset: int = 0) -> bytes:
    """Client: WRITE of `data` (to a pipe: one DCE/RPC PDU)."""
    if len(file_id) != 16:
        raise ProtocolError("smb2: a FileId is 16 bytes")
    if len(data) > MAX_DATA:
        raise ProtocolError(f"smb2: WRITE above {MAX_DATA} bytes needs more than one credit")
    fixed = WriteRequestFixed(data_offset=smb2.Header.size + WriteRequestFixed.size, length=len(data),
                              offset=offset, file_id=file_id)
    return _request(WRITE, message_id, session_id, tree_id, fixed.pack() + data)


@dataclass(slots=True)
class WriteRequest:
    header: smb2.Header
    file_id: bytes
    offset: int
    data: bytes


def parse_write_request(msg: bytes) -> WriteRequest:
    hdr = _request_of(msg, WRITE)
    f = WriteRequestFixed.unpack_from(msg, smb2.Header.size)
    data = take(msg, f.data_offset, f.length, "smb2: write data", cap=MAX_DATA) if f.length else b""
    return WriteRequest(hdr, f.file_id, f.offset, data)


def write_response(req: smb2.Header, count: int, status: int = 0) -> bytes:
    if status:
        return error_response(req, status, command=WRITE)
    return reply_header(req, command=WRITE) + WriteResponseFixed(count=count).pack()


@dataclass(slots=True)
class WriteResponse:
    status: int
    count: int = 0
    header: smb2.Header | None = None


def parse_write_response(msg: bytes) -> WriteResponse:
    hdr = _response_of(msg, WRITE)
    if not _has_body(msg, hdr, WriteResponseFixed):
        return WriteResponse(hdr.status, header=hdr)
    return WriteResponse(hdr.status, WriteResponseFixed.unpack_from(msg, smb2.Header.size).count, hdr)


def read_request(file_id: bytes, length: int, message_id: int, session_id: int, tree_id: int,
                 offset: int = 0) -> bytes:
    """Client: READ of up to `length` bytes (the 1-byte buffer is required)."""
    if len(file_id) != 16:
        raise ProtocolError("smb2: a FileId is 16 bytes")
    if length > MAX_DATA:
        raise ProtocolError(f"smb2: READ above {MAX_DATA} bytes needs more than one credit")
    fixed = ReadRequestFixed(length=length, offset=offset, file_id=file_id)
    return _request(READ, message_id, session_id, tree_id, fixed.pack() + b"\x00")


@dataclass(slots=True)
class ReadRequest:
    header: smb2.Header
    file_id: bytes
    length: int
    offset: int
    minimum_count: int


def parse_read_request(msg: bytes) -> ReadRequest:
    hdr = _request_of(msg, READ)
    f = ReadRequestFixed.unpack_from(msg, smb2.Header.size)
    return ReadRequest(hdr, f.file_id, f.length, f.offset, f.minimum_count)


def read_response(req: smb2.Header, data: bytes, status: int = 0, remaining: int = 0) -> bytes:
    """Server: READ response; STATUS_BUFFER_OVERFLOW with data says the pipe
    message continues.  An error status (e.g. STATUS_END_OF_FILE) with no
    data gives the ERROR response."""
    if status and status != STATUS_BUFFER_OVERFLOW:
        return error_response(req, status, command=READ)
    offset = smb2.Header.size + ReadResponseFixed.size
    body = ReadResponseFixed(data_offset=offset, data_length=len(data), data_remaining=remaining).pack()
    return reply_header(req, status, command=READ) + body + data


@dataclass(slots=True)
class ReadResponse:
    status: int
    data: bytes = b""
    remaining: int = 0
    header: smb2.Header | None = None

    @property
    def more(self) -> bool:
        return self.status == STATUS_BUFFER_OVERFLOW


def parse_read_response(msg: bytes) -> ReadResponse:
    hdr = _response_of(msg, READ)
    if not _has_body(msg, hdr, ReadResponseFixed, (0, STATUS_BUFFER_OVERFLOW)):
        return ReadResponse(hdr.status, header=hdr)
    f = ReadResponseFixed.unpack_from(msg, smb2.Header.size)
    data = take(msg, f.data_offset, f.data_length, "smb2: read data", cap=MAX_DATA) if f.data_length else b""
    return ReadResponse(hdr.status, data, f.data_remaining, hdr)


# -- CLOSE ------------------------------------------------------------------------------------


def close_request(file_id: bytes, message_id: int, session_id: int, tree_id: int) -> bytes:
    if len(file_id) != 16:
        raise ProtocolError("smb2: a FileId is 16 bytes")
    return _request(CLOSE, message_id, session_id, tree_id, CloseRequestFixed(file_id=file_id).pack())


@dataclass(slots=True)
class CloseRequest:
    header: smb2.Header
    file_id: bytes
    flags: int


def parse_close_request(msg: bytes) -> CloseRequest:
    hdr = _request_of(msg, CLOSE)
    f = CloseRequestFixed.unpack_from(msg, smb2.Header.size)
    return CloseRequest(hdr, f.file_id, f.flags)


def close_response(req: smb2.Header, status: int = 0) -> bytes:
    if status:
        return error_response(req, status, command=CLOSE)
    return reply_header(req, command=CLOSE) + CloseResponseFixed().pack()


def parse_close_response(msg: bytes) -> SimpleResponse:
    hdr = _response_of(msg, CLOSE)
    if _has_body(msg, hdr, CloseResponseFixed):
        CloseResponseFixed.unpack_from(msg, smb2.Header.size)
    return SimpleResponse(hdr.status, hdr)
