"""SMB1 TREE_CONNECT_ANDX, both sides, declared once (MS-CIFS 2.2.4.55, MS-SMB 2.2.4.7).

The scanner builds the request and parses the reply (protocol/smb1_session.py),
the lab parses the request and builds the reply (lab/smb1_server.py), and the
tests' fake servers do the same, all with the word layouts below; before,
the lab and the pipe module each had a parser and a builder of their own.
The detector only names the command (detect/smbmsg.py) and needs nothing here.

Request words: AndX, Flags, PasswordLength; bytes: password, path (Unicode
when FLAGS2_UNICODE), service (always ASCII).  Reply words: AndX,
OptionalSupport (WordCount 3), plus MaximalShareAccessRights and
GuestMaximalShareAccessRights in the extended response (WordCount 7) a
client asks for with TREE_CONNECT_EXTENDED_RESPONSE; bytes: service (ASCII),
native file system.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError
from .fields import Layout, asciiz, take, utf16z
from .smb1 import (ANDX, DEFAULT_FLAGS2, FLAGS2_UNICODE, TREE_CONNECT_ANDX, Header, _message, _read_strings,
                   _ustr, block_start, parse_message)
from .smb1_replies import error_reply, reply

TREE_CONNECT_EXTENDED_SIGNATURES = 0x0004
TREE_CONNECT_EXTENDED_RESPONSE = 0x0008
SMB_SUPPORT_SEARCH_BITS = 0x0001
SMB_SHARE_IS_IN_DFS = 0x0002

MAX_PASSWORD = 256
MAX_SERVICE = 16  # "?????", "IPC", "A:", "LPT1:", "COMM": a few ASCII bytes
MAX_NATIVE_FS = 256


class TreeConnectRequestWords(Layout):
    """WordCount 4; the scanner asks for the extended response and sends a
    one-byte (empty) password."""

    _fields_ = ANDX + [("flags", "H", TREE_CONNECT_EXTENDED_RESPONSE), ("password_length", "H", 1)]


class TreeConnectReplyWords(Layout):
    """WordCount 3: no MaximalShareAccessRights (servers before Vista, or a
    client that did not ask)."""

    _fields_ = ANDX + [("optional_support", "H", SMB_SUPPORT_SEARCH_BITS)]


class TreeConnectReplyWordsExt(Layout):
    """WordCount 7: the extended response."""

    _fields_ = TreeConnectReplyWords._fields_ + [("maximal_access", "I", 0), ("guest_maximal_access", "I", 0)]


# -- client: request out, reply in ----------------------------------------------


def tree_connect_request(path: str, mid: int, uid: int, flags2: int = DEFAULT_FLAGS2, service: str = "?????") -> bytes:
    """`path` is \\\\server\\share; service "?????" accepts any share type."""
    words = TreeConnectRequestWords.build()
    data_offset = block_start(len(words))
    data = b"\x00"  # the empty password
    data += _ustr(path, data_offset + len(data), bool(flags2 & FLAGS2_UNICODE))
    data += service.encode("ascii") + b"\x00"
    return _message(Header.build(command=TREE_CONNECT_ANDX, mid=mid, uid=uid, flags2=flags2), words, data)


@dataclass(slots=True)
class TreeConnectResponse:
    status: int
    tid: int
    service: str | None = None
    native_fs: str | None = None
    optional_support: int | None = None
    maximal_access: int | None = None  # None: no extended response
    guest_maximal_access: int | None = None


def parse_tree_connect_response(msg: bytes) -> TreeConnectResponse:
    """The reply, with MaximalShareAccessRights when the server sent the
    extended response (WordCount 7); an error reply keeps its status only."""
    m = parse_message(msg)
    if m.header.command != TREE_CONNECT_ANDX:
        raise ProtocolError(f"smb1: expected TREE_CONNECT_ANDX reply, got command 0x{m.header.command:02x}")
    out = TreeConnectResponse(m.status, m.header.tid)
    if m.status != 0:
        return out
    if len(m.words) >= TreeConnectReplyWordsExt.size:
        w = TreeConnectReplyWordsExt.unpack_from(m.words)
        out.optional_support = w.optional_support
        out.maximal_access = w.maximal_access
        out.guest_maximal_access = w.guest_maximal_access
    elif len(m.words) >= TreeConnectReplyWords.size:
        out.optional_support = TreeConnectReplyWords.unpack_from(m.words).optional_support
    if m.data:
        out.service, off = asciiz(m.data, 0, MAX_SERVICE, "smb1: service")
        if off < len(m.data):
            if m.unicode:
                off += (m.data_offset + off) % 2  # the pad that puts Unicode on an even offset
                out.native_fs, _ = utf16z(m.data, off, MAX_NATIVE_FS, "smb1: native file system")
            else:
                out.native_fs, _ = asciiz(m.data, off, MAX_NATIVE_FS, "smb1: native file system")
    return out


# -- server: request in, reply out ----------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeConnectRequest:
    header: Header
    flags: int
    password: bytes
    path: str
    service: str

    @property
    def share(self) -> str:
        """The share name: the last component of \\\\server\\share (or the
        bare name some clients, nmap among them, send)."""
        return self.path.rstrip("\\").rsplit("\\", 1)[-1]


def parse_tree_connect_request(msg: bytes) -> TreeConnectRequest:
    m = parse_message(msg)
    if m.header.command != TREE_CONNECT_ANDX:
        raise ProtocolError("smb1: not a TREE_CONNECT_ANDX request")
    if len(m.words) < TreeConnectRequestWords.size:
        raise ProtocolError("smb1: TREE_CONNECT_ANDX request with fewer than 4 words")
    w = TreeConnectRequestWords.unpack_from(m.words)
    password = take(m.data, 0, w.password_length, "smb1: tree connect password", cap=MAX_PASSWORD)
    path = _read_strings(m, w.password_length, 1)[0]
    if path is None:
        raise ProtocolError("smb1: tree connect without a path")
    # The service is always ASCII and follows the path's terminator; clients
    # pad and terminate it loosely, so it is read leniently and never refuses.
    raw = m.data
    tail = raw.rfind(b"\x00", 0, len(raw) - 1)
    service = ""
    if tail >= 0 and tail + 1 < len(raw):
        service = raw[tail + 1 :].split(b"\x00", 1)[0][:MAX_SERVICE].decode("latin-1")
    return TreeConnectRequest(m.header, w.flags, password, path, service or "?????")


def tree_connect_response(
    request: Header,
    tid: int,
    service: str = "IPC",
    native_fs: str = "",
    optional_support: int = SMB_SUPPORT_SEARCH_BITS,
    maximal_access: int | None = None,
    guest_maximal_access: int = 0,
    status: int = 0,
    **header: object,
) -> bytes:
    """WordCount 7 (the extended response, when `maximal_access` is given)
    or 3; a non-zero `status` is the error reply (WordCount 0).  `header`:
    the reply header's style (smb1_replies.reply_header: flags, flags2...)."""
    if status:
        return error_reply(request, status, command=TREE_CONNECT_ANDX, **header)
    unicode = bool(request.flags2 & FLAGS2_UNICODE)
    layout = TreeConnectReplyWords if maximal_access is None else TreeConnectReplyWordsExt
    data_offset = block_start(layout.size)
    data = service.encode("ascii", "replace") + b"\x00"
    data += _ustr(native_fs, data_offset + len(data), unicode)
    # AndXOffset points past the message, as Windows fills it when nothing is chained.
    fields = {"andx_offset": data_offset + len(data), "optional_support": optional_support}
    if maximal_access is not None:
        fields.update(maximal_access=maximal_access, guest_maximal_access=guest_maximal_access)
    return reply(request, layout.build(**fields), data, tid=tid, **header)
