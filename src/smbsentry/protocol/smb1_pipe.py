"""SMB1 named-pipe messages (MS-CIFS / MS-SMB), both sides, no I/O.

What a DCE/RPC call over `\\PIPE\\srvsvc` needs on an SMB1 session:
TREE_CONNECT_ANDX with the extended response (MaximalShareAccessRights, in smb1_tree.py),
NT_CREATE_ANDX (0xA2) to open the pipe and get its FID, TRANSACTION (0x25)
with setup (0x0026 TransactNmPipe, FID) to write a PDU and read the reply,
READ_ANDX (0x2E) for the rest of a reply that did not fit (status
STATUS_BUFFER_OVERFLOW), WRITE_ANDX (0x2F) for clients that write the PDU
and read the reply in two steps (impacket, nmap's msrpc.lua), CLOSE (0x04) and TREE_DISCONNECT (0x71).

Client request builders take (mid, uid, tid); server response builders take
the parsed request header and echo its PID/MID/UID/TID, as a server must.
Parsers take the SMB1 message without the NetBIOS header and raise only
ProtocolError; every count and offset is checked by `smb1.parse_message` and
`take`.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import smb1
from .errors import ProtocolError
from .status import NtStatus, is_error
from .fields import Layout, take

CLOSE = 0x04
TREE_DISCONNECT = 0x71
READ_ANDX = 0x2E
WRITE_ANDX = smb1.WRITE_ANDX
NT_CREATE_ANDX = 0xA2
TRANSACTION = smb1.TRANSACTION
TREE_CONNECT_ANDX = smb1.TREE_CONNECT_ANDX

COMMAND_NAMES = {
    CLOSE: "CLOSE",
    TREE_DISCONNECT: "TREE_DISCONNECT",
    READ_ANDX: "READ_ANDX",
    WRITE_ANDX: "WRITE_ANDX",
    NT_CREATE_ANDX: "NT_CREATE_ANDX",
    TRANSACTION: "TRANSACTION",
    TREE_CONNECT_ANDX: "TREE_CONNECT_ANDX",
}

TRANS_TRANSACT_NMPIPE = 0x0026
TRANS_PEEK_NMPIPE = 0x0023
PIPE_PATH = "\\PIPE\\"

STATUS_BUFFER_OVERFLOW = NtStatus.BUFFER_OVERFLOW

# access masks
FILE_READ_DATA = 0x00000001
FILE_WRITE_DATA = 0x00000002
FILE_APPEND_DATA = 0x00000004
FILE_READ_EA = 0x00000008
FILE_WRITE_EA = 0x00000010
FILE_READ_ATTRIBUTES = 0x00000080
FILE_WRITE_ATTRIBUTES = 0x00000100
READ_CONTROL = 0x00020000
SYNCHRONIZE = 0x00100000
GENERIC_ALL = 0x10000000
GENERIC_WRITE = 0x40000000
GENERIC_READ = 0x80000000
#: What Windows asks for when it opens an RPC pipe (read/write data, EAs,
#: attributes, READ_CONTROL, SYNCHRONIZE).
PIPE_ACCESS = 0x0012019F

FILE_SHARE_READ = 0x1
FILE_SHARE_WRITE = 0x2
FILE_OPEN = 0x1
SECURITY_IMPERSONATION = 2

# ResourceType in the NT_CREATE_ANDX response
FILE_TYPE_DISK = 0
FILE_TYPE_BYTE_MODE_PIPE = 1
FILE_TYPE_MESSAGE_MODE_PIPE = 2

ANDX = smb1.ANDX  # no chained command: one declaration, in smb1
MAX_NAME = 1024  # bytes of a file or pipe name
MAX_PATH = 1024


# -- headers -----------------------------------------------------------------


def _request_header(command: int, mid: int, uid: int, tid: int, flags2: int = smb1.DEFAULT_FLAGS2) -> bytes:
    return smb1.Header(command=command, mid=mid, uid=uid, tid=tid, flags2=flags2).pack()


def reply_header(req: smb1.Header, status: int = 0, command: int | None = None, tid: int | None = None,
                 uid: int | None = None) -> bytes:
    """Server: a reply header echoing the request's PID, MID, UID and TID."""
    return smb1.Header(
        command=req.command if command is None else command,
        status=status,
        flags=smb1.FLAGS_REPLY | smb1.FLAGS_CASE_INSENSITIVE | smb1.FLAGS_CANONICAL_PATHS,
        flags2=(req.flags2 | smb1.FLAGS2_NT_STATUS) & ~smb1.FLAGS2_SIGNATURES,
        pid_high=req.pid_high,
        tid=req.tid if tid is None else tid,
        pid=req.pid,
        uid=req.uid if uid is None else uid,
        mid=req.mid,
    ).pack()


_message = smb1._message  # header + WordCount + words + ByteCount + bytes: one builder, in smb1


def _unicode(flags2: int) -> bool:
    return bool(flags2 & smb1.FLAGS2_UNICODE)


def _encode(text: str, offset: int, unicode: bool) -> bytes:
    """A NUL-terminated string at `offset` from the header start (Unicode
    strings get the pad byte that puts them on an even offset)."""
    if unicode:
        return (b"\x00" if offset % 2 else b"") + text.encode("utf-16-le") + b"\x00\x00"
    return text.encode("latin-1", "replace") + b"\x00"


def _expect(m: smb1.Message, command: int, what: str) -> None:
    if m.header.command != command:
        raise ProtocolError(f"smb1: expected {what}, got command 0x{m.header.command:02x}")


def error_response(req: smb1.Header, status: int, command: int | None = None) -> bytes:
    """Server: the reply any command gets on failure: WordCount 0, ByteCount 0."""
    return _message(reply_header(req, status, command), b"", b"")


# TREE_CONNECT_ANDX (both sides) is declared once in smb1_tree.py.


# -- NT_CREATE_ANDX -------------------------------------------------------------


class NtCreateRequestWords(Layout):
    _fields_ = ANDX + [
        ("reserved", "B", 0),
        ("name_length", "H", 0),
        ("flags", "I", 0),
        ("root_fid", "I", 0),
        ("desired_access", "I", PIPE_ACCESS),
        ("allocation_size", "Q", 0),
        ("attributes", "I", 0),
        ("share_access", "I", FILE_SHARE_READ | FILE_SHARE_WRITE),
        ("disposition", "I", FILE_OPEN),
        ("create_options", "I", 0),
        ("impersonation", "I", SECURITY_IMPERSONATION),
        ("security_flags", "B", 0),
    ]


class NtCreateResponseWords(Layout):
    _fields_ = ANDX + [
        ("oplock_level", "B", 0),
        ("fid", "H", 0),
        ("create_action", "I", 1),
        ("creation_time", "Q", 0),
        ("last_access_time", "Q", 0),
        ("last_write_time", "Q", 0),
        ("change_time", "Q", 0),
        ("attributes", "I", 0x80),
        ("allocation_size", "Q", 0),
        ("end_of_file", "Q", 0),
        ("resource_type", "H", FILE_TYPE_MESSAGE_MODE_PIPE),
        ("nmpipe_status", "H", 0x05FF),
        ("directory", "B", 0),
    ]


def nt_create_request(
    name: str,
    mid: int,
    uid: int,
    tid: int,
    desired_access: int = PIPE_ACCESS,
    share_access: int = FILE_SHARE_READ | FILE_SHARE_WRITE,
    disposition: int = FILE_OPEN,
    create_options: int = 0,
    flags2: int = smb1.DEFAULT_FLAGS2,
) -> bytes:
    """Client: NT_CREATE_ANDX opening `name` (e.g. "\\\\srvsvc" on IPC$)."""
    unicode = _unicode(flags2)
    raw_name = name.encode("utf-16-le") if unicode else name.encode("latin-1", "replace")
    if len(raw_name) > MAX_NAME:
        raise ProtocolError(f"smb1: name of {len(raw_name)} bytes exceeds {MAX_NAME}")
    words = NtCreateRequestWords(name_length=len(raw_name), desired_access=desired_access,
                                 share_access=share_access, disposition=disposition,
                                 create_options=create_options).pack()
    data_offset = smb1.block_start(len(words))
    data = _encode(name, data_offset, unicode)
    return _message(_request_header(NT_CREATE_ANDX, mid, uid, tid, flags2), words, data)


@dataclass(slots=True)
class NtCreateRequest:
    header: smb1.Header
    name: str
    flags: int
    desired_access: int
    attributes: int
    share_access: int
    disposition: int
    create_options: int
    impersonation: int


def parse_nt_create_request(msg: bytes) -> NtCreateRequest:
    """Server: NT_CREATE_ANDX request; the name is read up to NameLength
    bytes or its NUL, whichever comes first."""
    m = smb1.parse_message(msg)
    _expect(m, NT_CREATE_ANDX, "NT_CREATE_ANDX")
    w = NtCreateRequestWords.unpack_from(m.words)
    off = 0
    if m.unicode and m.data_offset % 2:
        off = 1
    length = min(w.name_length, max(0, len(m.data) - off))
    raw = take(m.data, off, length, "smb1: create name", cap=MAX_NAME)
    if m.unicode:
        raw = raw[: len(raw) - len(raw) % 2]
        name = raw.decode("utf-16-le", "replace")
    else:
        name = raw.decode("latin-1")
    name = name.split("\x00", 1)[0]
    return NtCreateRequest(m.header, name, w.flags, w.desired_access, w.attributes, w.share_access,
                           w.disposition, w.create_options, w.impersonation)


def nt_create_response(
    req: smb1.Header,
    fid: int,
    status: int = 0,
    resource_type: int = FILE_TYPE_MESSAGE_MODE_PIPE,
    nmpipe_status: int = 0x05FF,
    create_action: int = 1,
    attributes: int = 0x80,
) -> bytes:
    """Server: NT_CREATE_ANDX reply (WordCount 34); an error status gives
    the WordCount 0 error reply."""
    if status:
        return error_response(req, status, NT_CREATE_ANDX)
    words = NtCreateResponseWords(fid=fid, create_action=create_action, attributes=attributes,
                                  resource_type=resource_type, nmpipe_status=nmpipe_status).pack()
    return _message(reply_header(req, 0, NT_CREATE_ANDX), words, b"")


@dataclass(slots=True)
class NtCreateResponse:
    status: int
    fid: int | None = None
    create_action: int | None = None
    attributes: int | None = None
    end_of_file: int | None = None
    resource_type: int | None = None
    nmpipe_status: int | None = None
    directory: bool | None = None


def parse_nt_create_response(msg: bytes) -> NtCreateResponse:
    """Client: NT_CREATE_ANDX reply (WordCount 34, or 42 for the extended
    response Windows sends; both start the same way)."""
    m = smb1.parse_message(msg)
    _expect(m, NT_CREATE_ANDX, "NT_CREATE_ANDX reply")
    if m.status != 0:
        return NtCreateResponse(m.status)
    if len(m.words) < NtCreateResponseWords.size:
        raise ProtocolError(f"smb1: NT_CREATE_ANDX reply with {len(m.words)} parameter bytes")
    w = NtCreateResponseWords.unpack_from(m.words)
    return NtCreateResponse(m.status, w.fid, w.create_action, w.attributes, w.end_of_file,
                            w.resource_type, w.nmpipe_status, bool(w.directory))


# -- TRANSACTION (TransactNmPipe) -----------------------------------------------


def transact_nmpipe_request(fid: int, data: bytes, mid: int, uid: int, tid: int, max_data: int = 4280) -> bytes:
    """Client: TRANSACTION, setup (0x0026, FID), name \\PIPE\\: write `data`
    (one DCE/RPC PDU) to the pipe and read up to `max_data` bytes back."""
    return smb1.transaction_request(
        TRANSACTION, mid, uid, tid, setup=(TRANS_TRANSACT_NMPIPE, fid), name=PIPE_PATH,
        data=data, max_param=0, max_data=max_data,
    )


# The lab's TRANSACTION request parser and reply builder, and the reader of one
# reply part, are declared once in smb1_trans.py.


# -- READ_ANDX ----------------------------------------------------------------------


class ReadRequestWordsCore(Layout):
    """WordCount 10: a 32-bit offset (MS-CIFS 2.2.4.42.1; older clients)."""

    _fields_ = ANDX + [
        ("fid", "H", 0),
        ("offset", "I", 0),
        ("max_count", "H", 0),
        ("min_count", "H", 0),
        ("timeout", "I", 0),
        ("remaining", "H", 0),
    ]


class ReadRequestWords(Layout):
    """WordCount 12: OffsetHigh added (MS-SMB 2.2.4.2.1); the scanner sends this one."""

    _fields_ = ReadRequestWordsCore._fields_ + [("offset_high", "I", 0)]


class ReadResponseWords(Layout):
    _fields_ = ANDX + [
        ("available", "H", 0),
        ("compaction_mode", "H", 0),
        ("reserved", "H", 0),
        ("data_length", "H", 0),
        ("data_offset", "H", 0),
        ("data_length_high", "H", 0),
        ("reserved2", "8s", b"\x00" * 8),
    ]


def read_andx_request(fid: int, mid: int, uid: int, tid: int, max_count: int = 4280, offset: int = 0) -> bytes:
    """Client: READ_ANDX (WordCount 12) of up to `max_count` bytes."""
    words = ReadRequestWords(fid=fid, offset=offset & 0xFFFFFFFF, max_count=max_count, min_count=max_count,
                             offset_high=offset >> 32).pack()
    return _message(_request_header(READ_ANDX, mid, uid, tid), words, b"")


@dataclass(slots=True)
class ReadRequest:
    header: smb1.Header
    fid: int
    offset: int
    max_count: int
    min_count: int


def parse_read_andx_request(msg: bytes) -> ReadRequest:
    m = smb1.parse_message(msg)
    _expect(m, READ_ANDX, "READ_ANDX")
    if len(m.words) < ReadRequestWordsCore.size:
        raise ProtocolError("smb1: READ_ANDX request with fewer than 10 words")
    if len(m.words) >= ReadRequestWords.size:
        w = ReadRequestWords.unpack_from(m.words)
        offset = w.offset | (w.offset_high << 32)
    else:
        w = ReadRequestWordsCore.unpack_from(m.words)
        offset = w.offset
    return ReadRequest(m.header, w.fid, offset, w.max_count, w.min_count)


def read_andx_response(req: smb1.Header, data: bytes, status: int = 0, available: int = 0) -> bytes:
    """Server: READ_ANDX reply; the data starts on an even offset."""
    if status and not data and is_error(status):
        return error_response(req, status, READ_ANDX)
    data_start = smb1.block_start(ReadResponseWords.size)
    pad = b"\x00" * (data_start % 2)
    words = ReadResponseWords(available=available, data_length=len(data) & 0xFFFF,
                              data_offset=data_start + len(pad), data_length_high=len(data) >> 16).pack()
    return _message(reply_header(req, status, READ_ANDX), words, pad + data)


@dataclass(slots=True)
class ReadResponse:
    status: int
    data: bytes = b""
    available: int = 0


def _reply_words(msg: bytes, command: int, layout: type[Layout]) -> tuple[smb1.Message, Layout | None]:
    """An AndX reply and its word block (None: an error reply without words)."""
    m = smb1.parse_message(msg)
    _expect(m, command, COMMAND_NAMES[command] + " reply")
    return m, (layout.unpack_from(m.words) if len(m.words) >= layout.size else None)


def parse_read_andx_response(msg: bytes) -> ReadResponse:
    m, w = _reply_words(msg, READ_ANDX, ReadResponseWords)
    if w is None:
        return ReadResponse(m.status)
    length = w.data_length | (w.data_length_high << 16)
    data = take(m.raw, w.data_offset, length, "smb1: read data", cap=0x1FFFF) if length else b""
    return ReadResponse(m.status, data, w.available)


# -- WRITE_ANDX ---------------------------------------------------------------------

WRITE_MODE_MESSAGE_START = 0x0008  # named pipes: these bytes begin a message (MS-CIFS 2.2.4.43.1)
WRITE_MODE_RAW = 0x0004  # named pipes: the first two bytes are the message length


class WriteRequestWordsCore(Layout):
    """WordCount 12: a 32-bit offset (MS-CIFS 2.2.4.43.1)."""

    _fields_ = ANDX + [
        ("fid", "H", 0),
        ("offset", "I", 0),
        ("timeout", "I", 0),
        ("write_mode", "H", 0),
        ("remaining", "H", 0),
        ("data_length_high", "H", 0),
        ("data_length", "H", 0),
        ("data_offset", "H", 0),
    ]


class WriteRequestWords(Layout):
    """WordCount 14: OffsetHigh added; the scanner sends this one."""

    _fields_ = WriteRequestWordsCore._fields_ + [("offset_high", "I", 0)]


class WriteResponseWords(Layout):
    _fields_ = ANDX + [
        ("count", "H", 0),
        ("available", "H", 0),
        ("count_high", "H", 0),
        ("reserved", "H", 0),
    ]


def write_andx_request(fid: int, data: bytes, mid: int, uid: int, tid: int,
                       write_mode: int = WRITE_MODE_MESSAGE_START) -> bytes:
    """Client: WRITE_ANDX (WordCount 14) of `data` at offset 0, the data on an even offset."""
    data_start = smb1.block_start(WriteRequestWords.size)
    pad = b"\x00" * (data_start % 2)
    words = WriteRequestWords(fid=fid, write_mode=write_mode, remaining=len(data) & 0xFFFF,
                              data_length_high=len(data) >> 16, data_length=len(data) & 0xFFFF,
                              data_offset=data_start + len(pad)).pack()
    return _message(_request_header(WRITE_ANDX, mid, uid, tid), words, pad + data)


@dataclass(slots=True)
class WriteRequest:
    header: smb1.Header
    fid: int
    write_mode: int
    data: bytes


def parse_write_andx_request(msg: bytes) -> WriteRequest:
    """Server: the FID and the bytes a WRITE_ANDX carries (WordCount 12 or 14;
    DataLengthHigh counts only where the data really is that long)."""
    m = smb1.parse_message(msg)
    _expect(m, WRITE_ANDX, "WRITE_ANDX")
    if len(m.words) < WriteRequestWordsCore.size:
        raise ProtocolError("smb1: WRITE_ANDX request with fewer than 12 words")
    w = WriteRequestWordsCore.unpack_from(m.words)  # the words WordCount 14 adds are not needed here
    length = w.data_length | (w.data_length_high << 16)
    data = take(m.raw, w.data_offset, length, "smb1: write data", cap=0x1FFFF) if length else b""
    return WriteRequest(m.header, w.fid, w.write_mode, data)


def write_andx_response(req: smb1.Header, count: int, status: int = 0) -> bytes:
    """Server: WRITE_ANDX reply (WordCount 6): how many bytes were taken."""
    if is_error(status):
        return error_response(req, status, WRITE_ANDX)
    words = WriteResponseWords(count=count & 0xFFFF, count_high=count >> 16, available=0xFFFF).pack()
    return _message(reply_header(req, status, WRITE_ANDX), words, b"")


@dataclass(slots=True)
class WriteResponse:
    status: int
    count: int = 0


def parse_write_andx_response(msg: bytes) -> WriteResponse:
    m, w = _reply_words(msg, WRITE_ANDX, WriteResponseWords)
    return WriteResponse(m.status) if w is None else WriteResponse(m.status, w.count | (w.count_high << 16))


# -- CLOSE, TREE_DISCONNECT -------------------------------------------------------------


class FidWord(Layout):
    """The FID a CLOSE request starts with: all its parser needs."""

    _fields_ = [("fid", "H", 0)]


class CloseRequestWords(Layout):
    """WordCount 3 (MS-CIFS 2.2.4.5.1): LastTimeModified 0 leaves the time as is."""

    _fields_ = FidWord._fields_ + [("last_time_modified", "I", 0)]


def close_request(fid: int, mid: int, uid: int, tid: int) -> bytes:
    """Client: CLOSE (WordCount 3: FID, LastTimeModified 0 = leave as is)."""
    return _message(_request_header(CLOSE, mid, uid, tid), CloseRequestWords.build(fid=fid), b"")


@dataclass(slots=True)
class CloseRequest:
    header: smb1.Header
    fid: int


def parse_close_request(msg: bytes) -> CloseRequest:
    m = smb1.parse_message(msg)
    _expect(m, CLOSE, "CLOSE")
    if len(m.words) < FidWord.size:
        raise ProtocolError("smb1: CLOSE request without a FID")
    return CloseRequest(m.header, FidWord.unpack_from(m.words).fid)


def close_response(req: smb1.Header, status: int = 0) -> bytes:
    return _message(reply_header(req, status, CLOSE), b"", b"")


def tree_disconnect_request(mid: int, uid: int, tid: int) -> bytes:
    return _message(_request_header(TREE_DISCONNECT, mid, uid, tid), b"", b"")


def tree_disconnect_response(req: smb1.Header, status: int = 0) -> bytes:
    return _message(reply_header(req, status, TREE_DISCONNECT), b"", b"")


@dataclass(slots=True)
class SimpleResponse:
    """A reply that carries nothing but its status (CLOSE, TREE_DISCONNECT)."""

    status: int
    header: smb1.Header


def parse_simple_response(msg: bytes, command: int) -> SimpleResponse:
    m = smb1.parse_message(msg)
    _expect(m, command, COMMAND_NAMES.get(command, f"0x{command:02x}") + " reply")
    return SimpleResponse(m.status, m.header)


def parse_close_response(msg: bytes) -> SimpleResponse:
    return parse_simple_response(msg, CLOSE)


def parse_tree_disconnect_response(msg: bytes) -> SimpleResponse:
    return parse_simple_response(msg, TREE_DISCONNECT)


def parse_request_header(msg: bytes) -> smb1.Header:
    """Server: the header of any SMB1 request, to dispatch on its command."""
    return smb1.parse_message(msg).header
