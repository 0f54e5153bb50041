"""SMB1 from the server's side: the requests the lab parses and the replies it builds.

The scanner's side (and the message layouts both share) is smb1.py; these are
kept apart so that neither module grows past what one reader holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError
from .fields import asciiz, take
from .smb1 import (CAP_EXTENDED_SECURITY, CAP_UNICODE, FLAGS2_NT_STATUS, FLAGS2_UNICODE, FLAGS_CANONICAL_PATHS,
                   FLAGS_CASE_INSENSITIVE, FLAGS_REPLY, MAX_BLOB, NEGOTIATE, SESSION_SETUP_ANDX,
                   EchoWords, Header, LogoffWords, Message, NegotiateWordsCore, NegotiateWordsNT, SessionSetupBasicWords,
                   SessionSetupExtReplyWords, SessionSetupExtWords, SessionSetupOldWords, SessionSetupReplyWords,
                   _message, _read_strings, _ustr, block_start,
                   parse_message)

# -- server side (the lab) ---------------------------------------------------
# Requests parsed and replies built from the server's point of view, so that
# the emulated hosts and the scanner exchange the very same layouts.  Windows
# echoes the request's PID/TID/UID/MID and flags2 (adding NT status codes);
# callers override what changes (a new UID, the DoublePulsar MID + 16).

REPLY_FLAGS_WINDOWS = FLAGS_REPLY | FLAGS_CANONICAL_PATHS | FLAGS_CASE_INSENSITIVE  # 0x98
REPLY_FLAGS_SAMBA = FLAGS_REPLY | FLAGS_CASE_INSENSITIVE  # 0x88
MAX_DIALECTS = 64


def reply_header(
    request: Header,
    command: int | None = None,
    status: int = 0,
    *,
    flags: int = REPLY_FLAGS_WINDOWS,
    flags2: int | None = None,
    uid: int | None = None,
    tid: int | None = None,
    mid: int | None = None,
    signature: bytes | None = None,
) -> bytes:
    return request.replace(
        command=request.command if command is None else command,
        status=status,
        flags=flags,
        flags2=(request.flags2 | FLAGS2_NT_STATUS) if flags2 is None else flags2,
        uid=request.uid if uid is None else uid,
        tid=request.tid if tid is None else tid,
        mid=request.mid if mid is None else mid,
        signature=b"\x00" * 8 if signature is None else signature,
    ).pack()


def reply(request: Header, words: bytes, data: bytes, status: int = 0, **header: object) -> bytes:
    """A reply to `request` with the given word and byte blocks."""
    return _message(reply_header(request, status=status, **header), words, data)  # type: ignore[arg-type]


def error_reply(request: Header, status: int, **header: object) -> bytes:
    """WordCount 0, ByteCount 0: how Windows answers a failed request."""
    return reply(request, b"", b"", status, **header)


def strings_block(texts: list[str], data_offset: int, unicode: bool, prefix: bytes = b"") -> bytes:
    """`prefix` followed by NUL-terminated strings, Unicode ones aligned to
    even offsets from the header start (the pad byte Windows inserts)."""
    data = prefix
    for text in texts:
        data += _ustr(text, data_offset + len(data), unicode)
    return data


def parse_negotiate_request(msg: bytes) -> tuple[Message, list[str]]:
    """The dialect strings of a NEGOTIATE request, in the client's order."""
    m = parse_message(msg)
    if m.header.command != NEGOTIATE:
        raise ProtocolError("smb1: not a NEGOTIATE request")
    dialects: list[str] = []
    off = 0
    while off < len(m.data) and len(dialects) < MAX_DIALECTS:
        if m.data[off] != 0x02:
            raise ProtocolError("smb1: dialect entry without its 0x02 marker")
        text, off = asciiz(m.data, off + 1, 64, "smb1: dialect")
        dialects.append(text)
    return m, dialects


def negotiate_response(
    request: Header,
    dialect_index: int,
    *,
    security_mode: int,
    max_mpx: int,
    max_vcs: int,
    max_buffer: int,
    max_raw: int,
    session_key: int,
    capabilities: int,
    system_time: int,
    timezone: int,
    server_guid: bytes | None = None,
    security_blob: bytes = b"",
    challenge: bytes | None = None,
    domain: str = "",
    server_name: str | None = None,
    **header: object,
) -> bytes:
    """NT LM 0.12 reply (WordCount 17).  With `server_guid` it is the
    extended-security form (GUID + SPNEGO blob); otherwise the challenge is
    followed by the domain and server names, Unicode and unpadded whenever
    CAP_UNICODE is set (as Windows and Samba send them)."""
    extended = server_guid is not None
    if extended:
        capabilities |= CAP_EXTENDED_SECURITY
        data = server_guid + security_blob
    else:
        capabilities &= ~CAP_EXTENDED_SECURITY
        challenge = challenge or b""
        texts = [domain] + ([server_name] if server_name is not None else [])
        if capabilities & CAP_UNICODE:
            data = challenge + b"".join(t.encode("utf-16-le") + b"\x00\x00" for t in texts)
        else:
            data = challenge + b"".join(t.encode("latin-1", "replace") + b"\x00" for t in texts)
    words = NegotiateWordsNT(
        dialect_index=dialect_index,
        security_mode=security_mode,
        max_mpx=max_mpx,
        max_vcs=max_vcs,
        max_buffer=max_buffer,
        max_raw=max_raw,
        session_key=session_key,
        capabilities=capabilities,
        system_time=system_time,
        timezone=timezone,
        challenge_length=0 if extended else len(challenge or b""),
    ).pack()
    return reply(request, words, data, **header)


def negotiate_refusal(request: Header, **header: object) -> bytes:
    """WordCount 1, DialectIndex 0xFFFF: none of the offered dialects."""
    return reply(request, NegotiateWordsCore.build(dialect_index=0xFFFF), b"", **header)


@dataclass(slots=True)
class SessionSetupRequest:
    header: Header
    extended: bool
    security_blob: bytes = b""
    account: str = ""
    domain: str = ""
    oem_password: bytes = b""
    unicode_password: bytes = b""
    native_os: str | None = None
    native_lm: str | None = None
    capabilities: int = 0

    @property
    def anonymous(self) -> bool:
        """Non-extended null session: no account and no (or a one-NUL) password."""
        return (
            not self.account
            and self.oem_password in (b"", b"\x00")
            and self.unicode_password in (b"", b"\x00")
        )


def parse_session_setup_request(msg: bytes) -> SessionSetupRequest:
    """WordCount 12 (extended security blob) or 13 / 10 (account + passwords)."""
    m = parse_message(msg)
    if m.header.command != SESSION_SETUP_ANDX:
        raise ProtocolError("smb1: not a SESSION_SETUP_ANDX request")
    wc = len(m.words) // 2
    if wc == 12:
        ext = SessionSetupExtWords.unpack_from(m.words)
        blob_len, caps = ext.blob_length, ext.capabilities
        blob = take(m.data, 0, blob_len, "smb1: security blob", cap=MAX_BLOB)
        os_, lm = _read_strings(m, blob_len, 2)
        return SessionSetupRequest(m.header, True, blob, native_os=os_, native_lm=lm, capabilities=caps)
    if wc == 13:
        basic = SessionSetupBasicWords.unpack_from(m.words)
        oem_len, uni_len, caps = basic.oem_length, basic.unicode_length, basic.capabilities
    elif wc == 10:
        oem_len, uni_len, caps = SessionSetupOldWords.unpack_from(m.words).oem_length, 0, 0
    else:
        raise ProtocolError(f"smb1: SESSION_SETUP_ANDX with WordCount {wc}")
    oem = take(m.data, 0, oem_len, "smb1: OEM password", cap=256)
    uni = take(m.data, oem_len, uni_len, "smb1: Unicode password", cap=1024)
    account, domain, os_, lm = _read_strings(m, oem_len + uni_len, 4)
    return SessionSetupRequest(
        m.header, False, b"", account or "", domain or "", oem, uni, os_, lm, caps
    )


def session_setup_response(
    request: Header,
    status: int,
    uid: int,
    action: int = 0,
    security_blob: bytes | None = None,
    strings: list[str] = (),  # type: ignore[assignment]
    **header: object,
) -> bytes:
    """WordCount 4 (with `security_blob`, extended security) or 3; then
    NativeOS, NativeLanMan and (when given) PrimaryDomain, in Unicode when the
    request asked for it."""
    unicode = bool(request.flags2 & FLAGS2_UNICODE)
    word_count = 4 if security_blob is not None else 3
    data_offset = block_start(2 * word_count)
    data = strings_block(list(strings), data_offset, unicode, prefix=security_blob or b"")
    # AndXOffset points past the message, as Windows fills it when nothing is chained.
    end = data_offset + len(data)
    if security_blob is None:
        words = SessionSetupReplyWords.build(andx_offset=end, action=action)
    else:
        words = SessionSetupExtReplyWords.build(andx_offset=end, action=action, blob_length=len(security_blob))
    return reply(request, words, data, status, uid=uid, **header)


# TREE_CONNECT_ANDX: smb1_tree.py (the request parser and this reply, with the scanner's side).


# TRANSACTION / TRANSACTION2: smb1_trans.py (the request parser and the reply, with the pipe reader's side).


def echo_response(request: Header, sequence: int, data: bytes, **header: object) -> bytes:
    return reply(request, EchoWords.build(count=sequence), data, **header)


def logoff_response(request: Header, **header: object) -> bytes:
    end = block_start(LogoffWords.size)  # AndXOffset: past the message, as Windows fills it
    return reply(request, LogoffWords.build(andx_offset=end), b"", **header)
