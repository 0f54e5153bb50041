"""SMB2/SMB3 messages the scanner and the lab exchange (MS-SMB2).

NEGOTIATE with its 3.1.1 negotiate contexts (preauth integrity, encryption,
compression, signing, netname) and SESSION_SETUP carrying SPNEGO/NTLMSSP.
Builders return the SMB2 message without the NetBIOS header; parsers take
it the same way.  Offsets inside messages are measured from the start of the
SMB2 header, as the specification does.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from .errors import ProtocolError
from .fields import Layout, take
from .status import NtStatus

MAGIC = b"\xfeSMB"
TRANSFORM_MAGIC = b"\xfdSMB"
COMPRESSION_MAGIC = b"\xfcSMB"

NEGOTIATE = 0x0000
SESSION_SETUP = 0x0001
LOGOFF = 0x0002
TREE_CONNECT = 0x0003
ECHO = 0x000D

FLAG_RESPONSE = 0x00000001

SIGNING_ENABLED = 0x0001
SIGNING_REQUIRED = 0x0002

DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}
DIALECT_CODES = {v: k for k, v in DIALECTS.items()}
WILDCARD_DIALECT = 0x02FF
ALL_DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)

CAPABILITIES = [
    (0x01, "dfs"),
    (0x02, "leasing"),
    (0x04, "large_mtu"),
    (0x08, "multi_channel"),
    (0x10, "persistent_handles"),
    (0x20, "directory_leasing"),
    (0x40, "encryption"),
    (0x80, "notifications"),
]
CLIENT_CAPABILITIES = 0x7F

# negotiate context types
CTX_PREAUTH = 1
CTX_ENCRYPTION = 2
CTX_COMPRESSION = 3
CTX_NETNAME = 5
CTX_TRANSPORT = 6
CTX_RDMA = 7
CTX_SIGNING = 8

CIPHERS = {1: "AES-128-CCM", 2: "AES-128-GCM", 3: "AES-256-CCM", 4: "AES-256-GCM"}
COMPRESSION = {0: "none", 1: "LZNT1", 2: "LZ77", 3: "LZ77+Huffman", 4: "Pattern_V1", 5: "LZ4"}
SIGNING_ALGORITHMS = {0: "HMAC-SHA256", 1: "AES-CMAC", 2: "AES-GMAC"}
HASH_SHA512 = 1

MAX_CONTEXTS = 32
MAX_CONTEXT_DATA = 1024
MAX_SECURITY_BUFFER = 16384
#: SESSION_SETUP answers that carry a security blob and session flags
_SETUP_CONTINUES = (NtStatus.SUCCESS, NtStatus.MORE_PROCESSING_REQUIRED)


class Header(Layout):
    _fields_ = [
        ("protocol", "4s", MAGIC),
        ("structure_size", "H", 64),
        ("credit_charge", "H", 0),
        ("status", "I", 0),
        ("command", "H", 0),
        ("credits", "H", 1),
        ("flags", "I", 0),
        ("next_command", "I", 0),
        ("message_id", "Q", 0),
        ("process_id", "I", 0xFEFF),
        ("tree_id", "I", 0),
        ("session_id", "Q", 0),
        ("signature", "16s", b"\x00" * 16),
    ]


class NegotiateRequestFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 36),
        ("dialect_count", "H", 0),
        ("security_mode", "H", SIGNING_ENABLED),
        ("reserved", "H", 0),
        ("capabilities", "I", CLIENT_CAPABILITIES),
        ("client_guid", "16s", b"\x00" * 16),
        ("context_offset", "I", 0),
        ("context_count", "H", 0),
        ("reserved2", "H", 0),
    ]


class NegotiateResponseFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 65),
        ("security_mode", "H", 0),
        ("dialect", "H", 0),
        ("context_count", "H", 0),
        ("server_guid", "16s", b"\x00" * 16),
        ("capabilities", "I", 0),
        ("max_transact", "I", 0),
        ("max_read", "I", 0),
        ("max_write", "I", 0),
        ("system_time", "Q", 0),
        ("start_time", "Q", 0),
        ("security_offset", "H", 0),
        ("security_length", "H", 0),
        ("context_offset", "I", 0),
    ]


class ContextHeader(Layout):
    _fields_ = [("type", "H", 0), ("length", "H", 0), ("reserved", "I", 0)]


class SessionSetupRequestFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 25),
        ("flags", "B", 0),
        ("security_mode", "B", SIGNING_ENABLED),
        ("capabilities", "I", 1),
        ("channel", "I", 0),
        ("security_offset", "H", 0),
        ("security_length", "H", 0),
        ("previous_session_id", "Q", 0),
    ]


class SessionSetupResponseFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 9),
        ("session_flags", "H", 0),
        ("security_offset", "H", 0),
        ("security_length", "H", 0),
    ]


class CompressionTransformHeader(Layout):
    """The 3.1.1 compression transform (0xFC 'SMB') that SMBGhost abuses."""

    _fields_ = [
        ("protocol", "4s", COMPRESSION_MAGIC),
        ("original_size", "I", 0),
        ("algorithm", "H", 0),
        ("flags", "H", 0),
        ("offset", "I", 0),
    ]


SESSION_FLAG_GUEST = 0x0001
SESSION_FLAG_NULL = 0x0002
SESSION_FLAG_ENCRYPT = 0x0004


def _pad8(n: int) -> int:
    return (8 - n % 8) % 8


def _context(ctx_type: int, data: bytes) -> bytes:
    return ContextHeader(type=ctx_type, length=len(data)).pack() + data


def _context_list(contexts, start: int) -> tuple[int, bytes]:
    """(offset, bytes) of a negotiate context list that follows a body ending
    at `start`: padded to 8 bytes, and every context but the last padded to 8."""
    if not contexts:
        return 0, b""
    pad = _pad8(start)
    parts = []
    for i, (t, d) in enumerate(contexts):
        item = _context(t, d)
        if i < len(contexts) - 1:
            item += b"\x00" * _pad8(len(item))
        parts.append(item)
    return start + pad, b"\x00" * pad + b"".join(parts)


def default_contexts(
    compression: tuple[int, ...] = (1, 2, 3, 4),
    ciphers: tuple[int, ...] = (2, 1, 4, 3),
    signing: tuple[int, ...] = (2, 1, 0),
    netname: str | None = None,
    salt: bytes | None = None,
) -> list[tuple[int, bytes]]:
    """The contexts a modern client sends: preauth (SHA-512 + 32-byte salt),
    encryption, compression (LZNT1 first), signing and optionally the netname."""
    salt = salt if salt is not None else os.urandom(32)
    ctx = [
        (CTX_PREAUTH, struct.pack("<HHH", 1, len(salt), HASH_SHA512) + salt),
        (CTX_ENCRYPTION, struct.pack("<H", len(ciphers)) + struct.pack(f"<{len(ciphers)}H", *ciphers)),
    ]
    if compression:
        ctx.append(
            (CTX_COMPRESSION, struct.pack("<HHI", len(compression), 0, 0) + struct.pack(f"<{len(compression)}H", *compression))
        )
    if signing:
        ctx.append((CTX_SIGNING, struct.pack("<H", len(signing)) + struct.pack(f"<{len(signing)}H", *signing)))
    if netname:
        ctx.append((CTX_NETNAME, netname.encode("utf-16-le")))
    return ctx


def header(command: int, message_id: int, session_id: int = 0, tree_id: int = 0, credits: int = 31, credit_charge: int = 0) -> bytes:
    return Header.build(
        command=command,
        message_id=message_id,
        session_id=session_id,
        tree_id=tree_id,
        credits=credits,
        credit_charge=credit_charge,
    )


def negotiate_request(
    dialects: tuple[int, ...] = ALL_DIALECTS,
    contexts: list[tuple[int, bytes]] | None = None,
    client_guid: bytes | None = None,
    security_mode: int = SIGNING_ENABLED,
    capabilities: int = CLIENT_CAPABILITIES,
    message_id: int = 0,
) -> bytes:
    """NEGOTIATE offering `dialects`; contexts are sent only when 3.1.1 is offered."""
    if not dialects:
        raise ProtocolError("smb2: negotiate needs at least one dialect")
    if 0x0311 in dialects and contexts is None:
        contexts = default_contexts()
    if 0x0311 not in dialects:
        contexts = []
    guid = client_guid if client_guid is not None else os.urandom(16)
    dialect_bytes = struct.pack(f"<{len(dialects)}H", *dialects)
    fixed_end = Header.size + NegotiateRequestFixed.size + len(dialect_bytes)
    ctx_offset, ctx_blob = _context_list(contexts, fixed_end)
    fixed = NegotiateRequestFixed(
        dialect_count=len(dialects),
        security_mode=security_mode,
        capabilities=capabilities,
        client_guid=guid,
        context_offset=ctx_offset,
        context_count=len(contexts or []),
    )
    return header(NEGOTIATE, message_id, credits=1) + fixed.pack() + dialect_bytes + ctx_blob


@dataclass(slots=True)
class NegotiateContexts:
    preauth_hashes: list[int] = field(default_factory=list)
    ciphers: list[int] = field(default_factory=list)
    compression: list[int] = field(default_factory=list)
    compression_flags: int | None = None
    signing: list[int] = field(default_factory=list)
    netname: str | None = None
    transport_flags: int | None = None
    rdma: bytes | None = None
    types: list[int] = field(default_factory=list)


@dataclass(slots=True)
class NegotiateResponse:
    status: int
    dialect: int
    security_mode: int
    server_guid: bytes
    capabilities: int
    max_transact: int
    max_read: int
    max_write: int
    system_time: int
    start_time: int
    security_blob: bytes
    contexts: NegotiateContexts

    @property
    def dialect_name(self) -> str | None:
        return DIALECTS.get(self.dialect)

    @property
    def capability_names(self) -> list[str]:
        return [name for bit, name in CAPABILITIES if self.capabilities & bit]


def parse_header(msg: bytes) -> Header:
    hdr = Header.unpack_from(msg)
    if hdr.protocol != MAGIC:
        raise ProtocolError("smb2: not an SMB2 message")
    return hdr


def _u16_list(data: bytes, off: int, count: int, what: str) -> list[int]:
    raw = take(data, off, 2 * count, what, cap=2 * 64)
    return list(struct.unpack(f"<{count}H", raw))


def parse_contexts(msg: bytes, offset: int, count: int) -> NegotiateContexts:
    if count > MAX_CONTEXTS:
        raise ProtocolError(f"smb2: {count} negotiate contexts exceeds the cap of {MAX_CONTEXTS}")
    out = NegotiateContexts()
    off = offset
    for i in range(count):
        hdr = ContextHeader.unpack_from(msg, off)
        data = take(msg, off + ContextHeader.size, hdr.length, "smb2: negotiate context", cap=MAX_CONTEXT_DATA)
        out.types.append(hdr.type)
        if hdr.type == CTX_PREAUTH and len(data) >= 4:
            n, _salt_len = struct.unpack_from("<HH", data)
            out.preauth_hashes = _u16_list(data, 4, n, "smb2: preauth hashes")
        elif hdr.type == CTX_ENCRYPTION and len(data) >= 2:
            (n,) = struct.unpack_from("<H", data)
            out.ciphers = _u16_list(data, 2, n, "smb2: ciphers")
        elif hdr.type == CTX_COMPRESSION and len(data) >= 8:
            n, _pad, flags = struct.unpack_from("<HHI", data)
            out.compression = _u16_list(data, 8, n, "smb2: compression algorithms")
            out.compression_flags = flags
        elif hdr.type == CTX_SIGNING and len(data) >= 2:
            (n,) = struct.unpack_from("<H", data)
            out.signing = _u16_list(data, 2, n, "smb2: signing algorithms")
        elif hdr.type == CTX_NETNAME:
            out.netname = data.decode("utf-16-le", "replace")
        elif hdr.type == CTX_TRANSPORT and len(data) >= 4:
            (out.transport_flags,) = struct.unpack_from("<I", data)
        elif hdr.type == CTX_RDMA:
            out.rdma = data
        off += ContextHeader.size + hdr.length
        if i < count - 1:
            off += _pad8(off)
    return out


def parse_negotiate_response(msg: bytes) -> NegotiateResponse:
    hdr = parse_header(msg)
    if hdr.command != NEGOTIATE or not hdr.flags & FLAG_RESPONSE:
        raise ProtocolError(f"smb2: expected a NEGOTIATE response, got command {hdr.command}")
    if hdr.status != 0:
        raise ProtocolError(f"smb2: negotiate failed with status 0x{hdr.status:08X}")
    fixed = NegotiateResponseFixed.unpack_from(msg, Header.size)
    if fixed.structure_size != 65:
        raise ProtocolError(f"smb2: negotiate response structure size {fixed.structure_size}")
    blob = b""
    if fixed.security_length:
        blob = take(msg, fixed.security_offset, fixed.security_length, "smb2: security buffer", cap=MAX_SECURITY_BUFFER)
    contexts = NegotiateContexts()
    if fixed.dialect == 0x0311 and fixed.context_count:
        contexts = parse_contexts(msg, fixed.context_offset, fixed.context_count)
    return NegotiateResponse(
        status=hdr.status,
        dialect=fixed.dialect,
        security_mode=fixed.security_mode,
        server_guid=fixed.server_guid,
        capabilities=fixed.capabilities,
        max_transact=fixed.max_transact,
        max_read=fixed.max_read,
        max_write=fixed.max_write,
        system_time=fixed.system_time,
        start_time=fixed.start_time,
        security_blob=blob,
        contexts=contexts,
    )


def session_setup_request(
    blob: bytes,
    message_id: int,
    session_id: int = 0,
    security_mode: int = SIGNING_ENABLED,
) -> bytes:
    offset = Header.size + SessionSetupRequestFixed.size
    fixed = SessionSetupRequestFixed(security_mode=security_mode, security_offset=offset, security_length=len(blob))
    return header(SESSION_SETUP, message_id, session_id=session_id, credits=31, credit_charge=1) + fixed.pack() + blob


@dataclass(frozen=True, slots=True)
class SessionSetupResponse:
    status: int
    session_id: int
    session_flags: int
    security_blob: bytes


def parse_session_setup_response(msg: bytes) -> SessionSetupResponse:
    hdr = parse_header(msg)
    if hdr.command != SESSION_SETUP or not hdr.flags & FLAG_RESPONSE:
        raise ProtocolError(f"smb2: expected a SESSION_SETUP response, got command {hdr.command}")
    if len(msg) < Header.size + SessionSetupResponseFixed.size:
        # Error responses (ERROR structure, size 9) are shorter than a
        # session setup body only when truncated; report the status we have.
        return SessionSetupResponse(hdr.status, hdr.session_id, 0, b"")
    fixed = SessionSetupResponseFixed.unpack_from(msg, Header.size)
    blob = b""
    if hdr.status in _SETUP_CONTINUES and fixed.security_length:
        blob = take(msg, fixed.security_offset, fixed.security_length, "smb2: security buffer", cap=MAX_SECURITY_BUFFER)
    flags = fixed.session_flags if hdr.status in _SETUP_CONTINUES else 0
    return SessionSetupResponse(hdr.status, hdr.session_id, flags, blob)


def logoff_request(message_id: int, session_id: int) -> bytes:
    return header(LOGOFF, message_id, session_id=session_id, credit_charge=1) + struct.pack("<HH", 4, 0)


# -- server side (the lab) ---------------------------------------------------
# Requests parsed and responses built from the server's point of view: the
# emulated hosts answer with these, so scanner and lab share every layout.

TREE_DISCONNECT = 0x0004
CREATE = 0x0005
CLOSE = 0x0006
READ = 0x0008
WRITE = 0x0009
IOCTL = 0x000B

@dataclass(slots=True)
class NegotiateRequest:
    header: Header
    dialects: list[int]
    security_mode: int
    capabilities: int
    client_guid: bytes
    contexts: NegotiateContexts
    contexts_malformed: bool = False


def parse_negotiate_request(msg: bytes) -> NegotiateRequest:
    """A client NEGOTIATE.  Contexts are read leniently: nmap 7.93, for one,
    sends a preauth context whose data begins with its cipher list, and
    Windows still answers it; a context list that cannot be walked at all is
    flagged rather than fatal."""
    hdr = parse_header(msg)
    if hdr.command != NEGOTIATE or hdr.flags & FLAG_RESPONSE:
        raise ProtocolError("smb2: not a NEGOTIATE request")
    fixed = NegotiateRequestFixed.unpack_from(msg, Header.size)
    if fixed.dialect_count == 0 or fixed.dialect_count > 64:
        raise ProtocolError(f"smb2: negotiate with {fixed.dialect_count} dialects")
    dialects = _u16_list(msg, Header.size + NegotiateRequestFixed.size, fixed.dialect_count, "smb2: dialects")
    contexts, malformed = NegotiateContexts(), False
    if 0x0311 in dialects and fixed.context_count:
        try:
            contexts = parse_contexts(msg, fixed.context_offset, fixed.context_count)
        except ProtocolError:
            malformed = True
    return NegotiateRequest(hdr, dialects, fixed.security_mode, fixed.capabilities, fixed.client_guid, contexts, malformed)


def response_header(
    command: int,
    message_id: int,
    status: int = 0,
    session_id: int = 0,
    tree_id: int = 0,
    credits: int = 1,
    process_id: int = 0xFEFF,
    credit_charge: int = 0,
) -> bytes:
    return Header(
        command=command,
        status=status,
        flags=FLAG_RESPONSE,
        message_id=message_id,
        session_id=session_id,
        tree_id=tree_id,
        credits=credits,
        process_id=process_id,
        credit_charge=credit_charge,
    ).pack()


def error_response(command: int, message_id: int, status: int, **hdr: int) -> bytes:
    """The ERROR body (StructureSize 9, no error data beyond one byte)."""
    return response_header(command, message_id, status, **hdr) + struct.pack("<HBBI", 9, 0, 0, 0) + b"\x00"


def server_contexts(
    salt: bytes,
    cipher: int | None = None,
    compression: tuple[int, ...] = (),
    compression_flags: int = 0,
    signing: int | None = None,
) -> list[tuple[int, bytes]]:
    """The 3.1.1 contexts a server returns, in Windows' order: preauth
    (SHA-512 with its salt), then encryption, compression and signing, each
    with the one choice (or the algorithm list, for compression) made."""
    ctx = [(CTX_PREAUTH, struct.pack("<HHH", 1, len(salt), HASH_SHA512) + salt)]
    if cipher is not None:
        ctx.append((CTX_ENCRYPTION, struct.pack("<HH", 1, cipher)))
    if compression:
        algs = struct.pack(f"<{len(compression)}H", *compression)
        ctx.append((CTX_COMPRESSION, struct.pack("<HHI", len(compression), 0, compression_flags) + algs))
    if signing is not None:
        ctx.append((CTX_SIGNING, struct.pack("<HH", 1, signing)))
    return ctx


def negotiate_response(
    message_id: int,
    dialect: int,
    security_mode: int,
    server_guid: bytes,
    capabilities: int,
    max_transact: int,
    max_read: int,
    max_write: int,
    system_time: int,
    start_time: int,
    security_blob: bytes,
    contexts: list[tuple[int, bytes]] = (),  # type: ignore[assignment]
    credits: int = 1,
) -> bytes:
    """NEGOTIATE response; the security buffer sits at 0x80 as on Windows
    and Samba, the context list (3.1.1 only) 8-byte aligned after it."""
    sec_offset = Header.size + NegotiateResponseFixed.size
    body_end = sec_offset + len(security_blob)
    ctx_offset, ctx_blob = _context_list(contexts, body_end)
    fixed = NegotiateResponseFixed(
        security_mode=security_mode,
        dialect=dialect,
        context_count=len(contexts),
        server_guid=server_guid,
        capabilities=capabilities,
        max_transact=max_transact,
        max_read=max_read,
        max_write=max_write,
        system_time=system_time,
        start_time=start_time,
        security_offset=sec_offset if security_blob else 0,
        security_length=len(security_blob),
        context_offset=ctx_offset,
    )
    return response_header(NEGOTIATE, message_id, credits=credits) + fixed.pack() + security_blob + ctx_blob


@dataclass(frozen=True, slots=True)
class SessionSetupRequest:
    header: Header
    flags: int
    security_mode: int
    previous_session_id: int
    security_blob: bytes


def parse_session_setup_request(msg: bytes) -> SessionSetupRequest:
    hdr = parse_header(msg)
    if hdr.command != SESSION_SETUP or hdr.flags & FLAG_RESPONSE:
        raise ProtocolError("smb2: not a SESSION_SETUP request")
    fixed = SessionSetupRequestFixed.unpack_from(msg, Header.size)
    blob = take(msg, fixed.security_offset, fixed.security_length, "smb2: security buffer", cap=MAX_SECURITY_BUFFER)
    return SessionSetupRequest(hdr, fixed.flags, fixed.security_mode, fixed.previous_session_id, blob)


def session_setup_response(
    message_id: int, status: int, session_id: int, session_flags: int = 0, security_blob: bytes = b"", credits: int = 1
) -> bytes:
    offset = Header.size + SessionSetupResponseFixed.size
    fixed = SessionSetupResponseFixed(
        session_flags=session_flags, security_offset=offset if security_blob else 0, security_length=len(security_blob)
    )
    hdr = response_header(SESSION_SETUP, message_id, status, session_id=session_id, credits=credits, credit_charge=1)
    return hdr + fixed.pack() + security_blob


def simple_response(command: int, message_id: int, session_id: int = 0, tree_id: int = 0, credits: int = 1) -> bytes:
    """LOGOFF, TREE_DISCONNECT and ECHO responses: StructureSize 4, reserved."""
    hdr = response_header(command, message_id, session_id=session_id, tree_id=tree_id, credits=credits, credit_charge=1)
    return hdr + struct.pack("<HH", 4, 0)
