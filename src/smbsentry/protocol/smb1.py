"""SMB1 (CIFS) messages for fingerprinting and the MS17-010 / DoublePulsar checks.

NEGOTIATE, SESSION_SETUP_ANDX (extended security with SPNEGO/NTLMSSP, and the
old non-extended form for servers without it), TRANSACTION and TRANSACTION2.  A message is a 32-byte header, a word block
(WordCount x 2 bytes) and a byte block (ByteCount bytes); `parse_message`
checks those counts once and every parser below reads from its result.
Offsets inside a message are counted from the start of the SMB header.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError
from .fields import Layout, asciiz, read_u16s, take, u16s, utf16z

MAGIC = b"\xffSMB"

NEGOTIATE = 0x72
SESSION_SETUP_ANDX = 0x73
LOGOFF_ANDX = 0x74
TREE_CONNECT_ANDX = 0x75
TRANSACTION = 0x25
TRANSACTION_SECONDARY = 0x26
TRANSACTION2 = 0x32
TRANSACTION2_SECONDARY = 0x33
NT_TRANSACT = 0xA0
NT_TRANSACT_SECONDARY = 0xA1
ECHO = 0x2B
WRITE_ANDX = 0x2F

COMMAND_NAMES = {
    NEGOTIATE: "NEGOTIATE",
    SESSION_SETUP_ANDX: "SESSION_SETUP_ANDX",
    LOGOFF_ANDX: "LOGOFF_ANDX",
    TREE_CONNECT_ANDX: "TREE_CONNECT_ANDX",
    TRANSACTION: "TRANSACTION",
    TRANSACTION_SECONDARY: "TRANSACTION_SECONDARY",
    TRANSACTION2: "TRANSACTION2",
    TRANSACTION2_SECONDARY: "TRANSACTION2_SECONDARY",
    NT_TRANSACT: "NT_TRANSACT",
    NT_TRANSACT_SECONDARY: "NT_TRANSACT_SECONDARY",
    ECHO: "ECHO",
    WRITE_ANDX: "WRITE_ANDX",
}

FLAGS_CASE_INSENSITIVE = 0x08
FLAGS_CANONICAL_PATHS = 0x10
FLAGS_REPLY = 0x80

FLAGS2_LONG_NAMES = 0x0001
FLAGS2_EAS = 0x0002
FLAGS2_SIGNATURES = 0x0004
FLAGS2_IS_LONG_NAME = 0x0040
FLAGS2_EXTENDED_SECURITY = 0x0800
FLAGS2_DFS = 0x1000
FLAGS2_NT_STATUS = 0x4000
FLAGS2_UNICODE = 0x8000

DEFAULT_FLAGS2 = FLAGS2_LONG_NAMES | FLAGS2_EXTENDED_SECURITY | FLAGS2_NT_STATUS | FLAGS2_UNICODE | FLAGS2_IS_LONG_NAME

SECMODE_USER = 0x01
SECMODE_ENCRYPT = 0x02
SECMODE_SIGNING_ENABLED = 0x04
SECMODE_SIGNING_REQUIRED = 0x08

CAP_UNICODE = 0x00000004
CAP_LARGE_FILES = 0x00000008
CAP_NT_SMBS = 0x00000010
CAP_STATUS32 = 0x00000040
CAP_EXTENDED_SECURITY = 0x80000000
CLIENT_CAPABILITIES = CAP_UNICODE | CAP_LARGE_FILES | CAP_NT_SMBS | CAP_STATUS32 | CAP_EXTENDED_SECURITY

NT_LM_012 = "NT LM 0.12"

MAX_STRING = 512
MAX_BLOB = 16384


class Header(Layout):
    _fields_ = [
        ("protocol", "4s", MAGIC),
        ("command", "B", 0),
        ("status", "I", 0),
        ("flags", "B", FLAGS_CASE_INSENSITIVE | FLAGS_CANONICAL_PATHS),
        ("flags2", "H", DEFAULT_FLAGS2),
        ("pid_high", "H", 0),
        ("signature", "8s", b"\x00" * 8),
        ("reserved", "H", 0),
        ("tid", "H", 0),
        ("pid", "H", 0xFEFF),
        ("uid", "H", 0),
        ("mid", "H", 0),
    ]


class ByteCount(Layout):
    """The count between the word block and the byte block of every message
    (the WordCount before the words is one byte, written as bytes([n]))."""

    _fields_ = [("byte_count", "H", 0)]


_BYTE_COUNT = ByteCount.codec  # packed and read on every message: no object built


@dataclass(slots=True)
class Message:
    """A parsed SMB1 message: header, word block and byte block."""

    header: Header
    words: bytes
    data: bytes
    data_offset: int  # offset of `data` from the start of the SMB header
    raw: bytes

    @property
    def status(self) -> int:
        return self.header.status

    @property
    def unicode(self) -> bool:
        return bool(self.header.flags2 & FLAGS2_UNICODE)


def parse_message(msg: bytes) -> Message:
    """Split an SMB1 message; ProtocolError when the counts overrun it."""
    hdr = Header.unpack_from(msg)
    if hdr.protocol != MAGIC:
        raise ProtocolError("smb1: not an SMB1 message")
    off = Header.size
    if off >= len(msg):
        raise ProtocolError("smb1: message ends before WordCount")
    word_count = msg[off]
    words = take(msg, off + 1, 2 * word_count, "smb1: word block")
    off += 1 + 2 * word_count
    if off == len(msg):
        # Some servers end error replies right after a zero WordCount.
        return Message(hdr, words, b"", off, bytes(msg))
    if off + 2 > len(msg):
        raise ProtocolError("smb1: message ends inside ByteCount")
    (byte_count,) = _BYTE_COUNT.unpack_from(msg, off)
    data = take(msg, off + 2, byte_count, "smb1: byte block")
    return Message(hdr, words, data, off + 2, bytes(msg))


def block_start(words_length: int) -> int:
    """Where the byte block begins, counted from the header start: header,
    WordCount, `words_length` bytes of words, ByteCount.  String pads and
    transaction offsets are counted from the header, so a builder needs this
    before the message exists."""
    return Header.size + 1 + words_length + ByteCount.size


def _header(command: int, mid: int, uid: int = 0, tid: int = 0, flags2: int = DEFAULT_FLAGS2, pid: int = 0xFEFF) -> bytes:
    return Header.build(command=command, mid=mid, uid=uid, tid=tid, flags2=flags2, pid=pid)


def _message(head: bytes, words: bytes, data: bytes) -> bytes:
    if len(words) % 2 or len(words) > 510 or len(data) > 0xFFFF:
        raise ProtocolError("smb1: word or byte block too large")
    return head + bytes([len(words) // 2]) + words + _BYTE_COUNT.pack(len(data)) + data


def _ustr(text: str, offset: int, unicode: bool) -> bytes:
    """A NUL-terminated string placed at `offset` from the header start,
    with the pad byte Unicode strings need to land on an even offset."""
    if unicode:
        pad = b"\x00" if offset % 2 else b""
        return pad + text.encode("utf-16-le") + b"\x00\x00"
    return text.encode("latin-1", "replace") + b"\x00"


# -- NEGOTIATE ---------------------------------------------------------------


def negotiate_request(dialects: tuple[str, ...] = (NT_LM_012,), mid: int = 0, flags2: int = DEFAULT_FLAGS2) -> bytes:
    data = b"".join(b"\x02" + d.encode("ascii") + b"\x00" for d in dialects)
    return _message(_header(NEGOTIATE, mid, flags2=flags2), b"", data)


@dataclass(slots=True)
class NegotiateResponse:
    dialect_index: int
    security_mode: int | None = None
    max_mpx: int | None = None
    max_vcs: int | None = None
    max_buffer: int | None = None
    capabilities: int | None = None
    system_time: int | None = None
    timezone: int | None = None
    challenge: bytes | None = None
    server_guid: bytes | None = None
    security_blob: bytes = b""
    domain: str | None = None
    server_name: str | None = None
    status: int = 0

    @property
    def extended_security(self) -> bool:
        return bool(self.capabilities and self.capabilities & CAP_EXTENDED_SECURITY)


class NegotiateWordsCore(Layout):
    """NEGOTIATE reply, WordCount 1: a core dialect, or 0xFFFF when no
    offered dialect is accepted.  Every NEGOTIATE reply's words begin so."""

    _fields_ = [("dialect_index", "H", 0xFFFF)]


class NegotiateWordsNT(Layout):
    _fields_ = [
        ("dialect_index", "H", 0),
        ("security_mode", "B", 0),
        ("max_mpx", "H", 0),
        ("max_vcs", "H", 0),
        ("max_buffer", "I", 0),
        ("max_raw", "I", 0),
        ("session_key", "I", 0),
        ("capabilities", "I", 0),
        ("system_time", "Q", 0),
        ("timezone", "h", 0),
        ("challenge_length", "B", 0),
    ]


def parse_negotiate_response(msg: bytes) -> NegotiateResponse:
    m = parse_message(msg)
    if m.header.command != NEGOTIATE:
        raise ProtocolError(f"smb1: expected NEGOTIATE reply, got 0x{m.header.command:02x}")
    if m.status != 0:
        return NegotiateResponse(dialect_index=0xFFFF, status=m.status)
    if len(m.words) < NegotiateWordsCore.size:
        raise ProtocolError("smb1: negotiate reply without a dialect index")
    (index,) = NegotiateWordsCore.codec.unpack_from(m.words)
    if len(m.words) != NegotiateWordsNT.size:
        # WordCount 1: no dialect accepted (0xFFFF) or a core dialect;
        # WordCount 13: a LANMAN dialect.  Neither is NT LM 0.12.
        return NegotiateResponse(dialect_index=index)
    w = NegotiateWordsNT.unpack_from(m.words)
    resp = NegotiateResponse(
        dialect_index=index,
        security_mode=w.security_mode,
        max_mpx=w.max_mpx,
        max_vcs=w.max_vcs,
        max_buffer=w.max_buffer,
        capabilities=w.capabilities,
        system_time=w.system_time,
        timezone=w.timezone,
    )
    if w.capabilities & CAP_EXTENDED_SECURITY:
        resp.server_guid = take(m.data, 0, 16, "smb1: server GUID")
        resp.security_blob = take(m.data, 16, len(m.data) - 16, "smb1: security blob", cap=MAX_BLOB)
    else:
        resp.challenge = take(m.data, 0, w.challenge_length, "smb1: challenge", cap=64)
        off = w.challenge_length
        if off < len(m.data):
            # Unlike other SMB1 strings, these two follow the challenge with
            # no alignment pad, and are Unicode whenever the server has
            # CAP_UNICODE, even with FLAGS2_UNICODE clear (Windows 7 / 2008 R2,
            # Samba 3.6.3 and 4.7.4 in the capture corpus all do this).
            if m.unicode or w.capabilities & CAP_UNICODE:
                resp.domain, off = utf16z(m.data, off, MAX_STRING, "smb1: domain name")
                if off < len(m.data):
                    resp.server_name, off = utf16z(m.data, off, MAX_STRING, "smb1: server name")
            else:
                resp.domain, off = asciiz(m.data, off, MAX_STRING, "smb1: domain name")
                if off < len(m.data):
                    resp.server_name, off = asciiz(m.data, off, MAX_STRING, "smb1: server name")
    return resp


# -- SESSION_SETUP_ANDX ------------------------------------------------------


#: The AndX block that opens the words of every ...ANDX message.
ANDX = [("andx_command", "B", 0xFF), ("andx_reserved", "B", 0), ("andx_offset", "H", 0)]
_SETUP_HEAD = ANDX + [("max_buffer", "H", 0xFFFF), ("max_mpx", "H", 50), ("vc_number", "H", 0), ("session_key", "I", 0)]


class SessionSetupExtWords(Layout):
    """SESSION_SETUP_ANDX request, extended security (WordCount 12)."""

    _fields_ = _SETUP_HEAD + [("blob_length", "H", 0), ("reserved", "I", 0), ("capabilities", "I", 0)]


class SessionSetupBasicWords(Layout):
    """SESSION_SETUP_ANDX request with account and passwords (WordCount 13)."""

    _fields_ = _SETUP_HEAD + [("oem_length", "H", 0), ("unicode_length", "H", 0), ("reserved", "I", 0),
                              ("capabilities", "I", 0)]


class SessionSetupOldWords(Layout):
    """SESSION_SETUP_ANDX request of LAN Manager clients (WordCount 10)."""

    _fields_ = _SETUP_HEAD + [("oem_length", "H", 0), ("reserved", "I", 0)]


class SessionSetupReplyWords(Layout):
    """SESSION_SETUP_ANDX reply: WordCount 3 (Action), 4 adds the blob length."""

    _fields_ = ANDX + [("action", "H", 0)]


class SessionSetupExtReplyWords(Layout):
    _fields_ = ANDX + [("action", "H", 0), ("blob_length", "H", 0)]


def session_setup_request(
    blob: bytes,
    mid: int,
    uid: int = 0,
    max_buffer: int = 0xFFFF,
    native_os: str = "Windows 7 Professional 7601 Service Pack 1",
    native_lm: str = "Windows 7 Professional 6.1",
    flags2: int = DEFAULT_FLAGS2,
    capabilities: int = CLIENT_CAPABILITIES,
) -> bytes:
    """Extended-security SESSION_SETUP_ANDX (WordCount 12) carrying `blob`."""
    words = SessionSetupExtWords.build(max_buffer=max_buffer, blob_length=len(blob), capabilities=capabilities)
    data_offset = block_start(len(words))
    unicode = bool(flags2 & FLAGS2_UNICODE)
    data = blob
    data += _ustr(native_os, data_offset + len(data), unicode)
    data += _ustr(native_lm, data_offset + len(data), unicode)
    return _message(_header(SESSION_SETUP_ANDX, mid, uid=uid, flags2=flags2), words, data)


def session_setup_basic_request(
    mid: int,
    account: str = "",
    domain: str = "",
    oem_password: bytes = b"",
    unicode_password: bytes = b"",
    max_buffer: int = 0xFFFF,
    native_os: str = "Unix",
    native_lm: str = "smbsentry",
    flags2: int = DEFAULT_FLAGS2 & ~FLAGS2_EXTENDED_SECURITY,
) -> bytes:
    """Non-extended SESSION_SETUP_ANDX (WordCount 13), for servers without
    extended security; empty account and passwords ask for a null session."""
    caps = CLIENT_CAPABILITIES & ~CAP_EXTENDED_SECURITY
    words = SessionSetupBasicWords.build(max_buffer=max_buffer, oem_length=len(oem_password),
                                         unicode_length=len(unicode_password), capabilities=caps)
    data_offset = block_start(len(words))
    unicode = bool(flags2 & FLAGS2_UNICODE)
    data = oem_password + unicode_password
    for text in (account, domain, native_os, native_lm):
        data += _ustr(text, data_offset + len(data), unicode)
    return _message(_header(SESSION_SETUP_ANDX, mid, flags2=flags2), words, data)


@dataclass(slots=True)
class SessionSetupResponse:
    status: int
    uid: int
    action: int
    security_blob: bytes
    native_os: str | None
    native_lm: str | None
    primary_domain: str | None

    @property
    def guest(self) -> bool:
        return bool(self.action & 0x0001)


def parse_session_setup_response(msg: bytes) -> SessionSetupResponse:
    m = parse_message(msg)
    if m.header.command != SESSION_SETUP_ANDX:
        raise ProtocolError(f"smb1: expected SESSION_SETUP_ANDX reply, got 0x{m.header.command:02x}")
    action = 0
    blob = b""
    off = 0
    if len(m.words) >= SessionSetupExtReplyWords.size:
        w = SessionSetupExtReplyWords.unpack_from(m.words)
        action, blob_len = w.action, w.blob_length
        blob = take(m.data, 0, blob_len, "smb1: security blob", cap=MAX_BLOB)
        off = blob_len
    elif len(m.words) >= SessionSetupReplyWords.size:
        action = SessionSetupReplyWords.unpack_from(m.words).action
    strings = read_strings(m.data, m.data_offset, off, 3, m.unicode, "smb1: session setup string", strict=True)
    return SessionSetupResponse(m.status, m.header.uid, action, blob, strings[0], strings[1], strings[2])


# TREE_CONNECT_ANDX, both sides, is declared once in smb1_tree.py.


# -- TRANSACTION / TRANSACTION2 ---------------------------------------------


class TransactionRequestWords(Layout):
    """TRANSACTION / TRANSACTION2 primary request (WordCount 14 + SetupCount;
    the setup words follow, see fields.u16s)."""

    _fields_ = [
        ("total_params", "H", 0),
        ("total_data", "H", 0),
        ("max_params", "H", 0),
        ("max_data", "H", 0),
        ("max_setup", "B", 0),
        ("reserved", "B", 0),
        ("flags", "H", 0),
        ("timeout", "I", 0),
        ("reserved2", "H", 0),
        ("param_count", "H", 0),
        ("param_offset", "H", 0),
        ("data_count", "H", 0),
        ("data_offset", "H", 0),
        ("setup_count", "B", 0),
        ("reserved3", "B", 0),
    ]


def transaction_request(
    command: int,
    mid: int,
    uid: int,
    tid: int,
    setup: tuple[int, ...],
    name: str | None = "\\PIPE\\",
    params: bytes = b"",
    data: bytes = b"",
    max_param: int = 0xFFFF,
    max_data: int = 0xFFFF,
    max_setup: int = 0,
    timeout: int = 0,
    flags2: int = DEFAULT_FLAGS2 & ~FLAGS2_UNICODE,
    total_params: int | None = None,
    total_data: int | None = None,
) -> bytes:
    """TRANSACTION (0x25, with a pipe/mailslot name) or TRANSACTION2 (0x32,
    name omitted).  The MS17-010 probe is TRANSACTION, setup (0x23, 0),
    name "\\PIPE\\" in ASCII, which puts parameters and data at 0x4A."""
    if command not in (TRANSACTION, TRANSACTION2):
        raise ProtocolError("smb1: transaction_request builds TRANSACTION or TRANSACTION2")
    word_count = TransactionRequestWords.size // 2 + len(setup)
    data_start = block_start(2 * word_count)
    unicode = bool(flags2 & FLAGS2_UNICODE)
    name_bytes = b""
    if command == TRANSACTION and name is not None:
        name_bytes = _ustr(name, data_start, unicode)
    elif command == TRANSACTION2:
        name_bytes = b"\x00"  # Trans2 carries an empty name (one pad/NUL byte)
    param_offset = data_start + len(name_bytes)
    pad1 = b"" if command == TRANSACTION else b"\x00" * ((4 - param_offset % 4) % 4)
    param_offset += len(pad1)
    data_offset = param_offset + len(params)
    pad2 = b"" if command == TRANSACTION else b"\x00" * ((4 - data_offset % 4) % 4)
    data_offset += len(pad2)
    words = TransactionRequestWords.build(
        total_params=len(params) if total_params is None else total_params,
        total_data=len(data) if total_data is None else total_data,
        max_params=max_param,
        max_data=max_data,
        max_setup=max_setup,
        timeout=timeout,
        param_count=len(params),
        param_offset=param_offset,
        data_count=len(data),
        data_offset=data_offset,
        setup_count=len(setup),
    ) + u16s(setup)
    body = name_bytes + pad1 + params + pad2 + data
    return _message(_header(command, mid, uid=uid, tid=tid, flags2=flags2), words, body)


@dataclass(slots=True)
class TransactionResponse:
    status: int
    mid: int
    setup: tuple[int, ...]
    params: bytes
    data: bytes
    header: Header


class TransactionResponseWords(Layout):
    _fields_ = [
        ("total_params", "H", 0),
        ("total_data", "H", 0),
        ("reserved", "H", 0),
        ("param_count", "H", 0),
        ("param_offset", "H", 0),
        ("param_displacement", "H", 0),
        ("data_count", "H", 0),
        ("data_offset", "H", 0),
        ("data_displacement", "H", 0),
        ("setup_count", "B", 0),
        ("reserved2", "B", 0),
    ]


def parse_transaction_response(msg: bytes) -> TransactionResponse:
    """TRANSACTION / TRANSACTION2 reply.  Error replies (WordCount 0) keep
    their status and MID: both matter to the MS17-010 and DoublePulsar checks."""
    m = parse_message(msg)
    if m.header.command not in (TRANSACTION, TRANSACTION2):
        raise ProtocolError(f"smb1: expected a transaction reply, got 0x{m.header.command:02x}")
    if len(m.words) < TransactionResponseWords.size:
        return TransactionResponse(m.status, m.header.mid, (), b"", b"", m.header)
    w = TransactionResponseWords.unpack_from(m.words)
    setup = read_u16s(m.words, TransactionResponseWords.size, w.setup_count, "smb1: transaction setup")
    raw = m.raw
    params = take(raw, w.param_offset, w.param_count, "smb1: transaction parameters") if w.param_count else b""
    data = take(raw, w.data_offset, w.data_count, "smb1: transaction data") if w.data_count else b""
    return TransactionResponse(m.status, m.header.mid, tuple(setup), params, data, m.header)


class LogoffWords(Layout):
    """LOGOFF_ANDX, both ways: the AndX block alone (WordCount 2)."""

    _fields_ = ANDX


class EchoWords(Layout):
    """ECHO: EchoCount in the request, SequenceNumber in each reply (WordCount 1)."""

    _fields_ = [("count", "H", 1)]


_LOGOFF_WORDS = LogoffWords.build()


def logoff_request(mid: int, uid: int) -> bytes:
    return _message(_header(LOGOFF_ANDX, mid, uid=uid), _LOGOFF_WORDS, b"")


def read_strings(
    data: bytes, data_offset: int, off: int, count: int, unicode: bool, what: str = "smb1: string", strict: bool = False
) -> list[str | None]:
    """``count`` NUL-terminated strings from ``data[off:]``, UTF-16 ones aligned to the SMB header.

    ``data_offset``: where ``data`` starts in the message.  Lenient (requests:
    clients pad and terminate these loosely) keeps the strings read before
    damage; ``strict`` (replies) raises ProtocolError and also stops when the
    alignment pad is the last byte.
    """
    out: list[str | None] = [None] * count
    try:
        for i in range(count):
            if off >= len(data):
                break
            if unicode:
                if (data_offset + off) % 2:
                    off += 1
                if strict and off >= len(data):
                    break
                out[i], off = utf16z(data, off, MAX_STRING, what)
            else:
                out[i], off = asciiz(data, off, MAX_STRING, what)
    except ProtocolError:
        if strict:
            raise
    return out


def _read_strings(m: Message, off: int, count: int) -> list[str | None]:
    return read_strings(m.data, m.data_offset, off, count, m.unicode)
