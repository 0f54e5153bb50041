"""Connection-oriented DCE/RPC PDUs (C706 chapter 12, MS-RPCE 2.2.2), no I/O.

Only what a share listing over a named pipe needs, from both sides: BIND with
one presentation context (an abstract syntax and the NDR transfer syntax),
BIND_ACK / BIND_NAK, REQUEST, RESPONSE and FAULT.  No authentication: a PDU
with an auth trailer is accepted and the trailer is stripped.

A PDU is a 16-byte common header, a per-type fixed part and the stub (NDR
data).  `frag_length` is checked against the buffer and against
MAX_FRAGMENT before anything else is read.  Calls bigger than one fragment
arrive as several PDUs flagged PFC_FIRST_FRAG ... PFC_LAST_FRAG;
`Reassembler` joins their stubs up to MAX_STUB, `parse_response` does the
same for a buffer that must hold the whole call.  Only little-endian NDR
(data representation 0x10) is accepted: every Windows and Samba host uses it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from .errors import ProtocolError
from .fields import Layout, take

# PDU types
REQUEST = 0
RESPONSE = 2
FAULT = 3
BIND = 11
BIND_ACK = 12
BIND_NAK = 13
ALTER_CONTEXT = 14
ALTER_CONTEXT_RESP = 15

PTYPE_NAMES = {
    REQUEST: "REQUEST",
    RESPONSE: "RESPONSE",
    FAULT: "FAULT",
    BIND: "BIND",
    BIND_ACK: "BIND_ACK",
    BIND_NAK: "BIND_NAK",
    ALTER_CONTEXT: "ALTER_CONTEXT",
    ALTER_CONTEXT_RESP: "ALTER_CONTEXT_RESP",
}

# pfc_flags
PFC_FIRST_FRAG = 0x01
PFC_LAST_FRAG = 0x02
PFC_PENDING_CANCEL = 0x04
PFC_CONC_MPX = 0x10
PFC_DID_NOT_EXECUTE = 0x20
PFC_MAYBE = 0x40
PFC_OBJECT_UUID = 0x80

#: Little-endian integers, ASCII characters, IEEE floats.
DREP_LE = b"\x10\x00\x00\x00"

NDR_SYNTAX = (uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860"), 2, 0)

#: The fragment size Windows clients offer; servers answer with <= this.
DEFAULT_MAX_FRAG = 4280
MAX_FRAGMENT = 0xFFFF  # frag_length is 16 bits; nothing bigger can exist
MAX_STUB = 1 << 20  # a reassembled call; share lists are a few KiB
MAX_FRAGMENTS = 1024
MAX_CONTEXTS = 16
MAX_SECONDARY_ADDRESS = 256

# BIND_ACK result codes (p_cont_def_result_t) and reasons (p_provider_reason_t)
ACCEPTANCE = 0
USER_REJECTION = 1
PROVIDER_REJECTION = 2
NEGOTIATE_ACK = 3
RESULT_NAMES = {ACCEPTANCE: "acceptance", USER_REJECTION: "user rejection",
                PROVIDER_REJECTION: "provider rejection", NEGOTIATE_ACK: "negotiate ack"}
REASON_NOT_SPECIFIED = 0
REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED = 1
REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED = 2
REASON_LOCAL_LIMIT_EXCEEDED = 3
REASON_NAMES = {
    REASON_NOT_SPECIFIED: "reason not specified",
    REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED: "abstract syntax not supported",
    REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED: "proposed transfer syntaxes not supported",
    REASON_LOCAL_LIMIT_EXCEEDED: "local limit exceeded",
}
# BIND_NAK provider_reject_reason
NAK_REASONS = {
    0: "reason not specified",
    1: "temporary congestion",
    2: "local limit exceeded",
    3: "called paddr unknown",
    4: "protocol version not supported",
    5: "default context not supported",
    6: "user data not readable",
    7: "no PSAP available",
    8: "authentication type not recognized",
    9: "invalid checksum",
}

# FAULT status codes seen from Windows and Samba
NCA_S_OP_RNG_ERROR = 0x1C010002
NCA_S_UNK_IF = 0x1C010003
NCA_S_PROTO_ERROR = 0x1C01000B
NCA_S_FAULT_NDR = 0x000006F7
FAULT_ACCESS_DENIED = 0x00000005
FAULT_NAMES = {
    FAULT_ACCESS_DENIED: "access denied",
    NCA_S_OP_RNG_ERROR: "nca_s_op_rng_error (unknown operation)",
    NCA_S_UNK_IF: "nca_s_unk_if (unknown interface)",
    NCA_S_PROTO_ERROR: "nca_s_proto_error",
    NCA_S_FAULT_NDR: "rpc_x_bad_stub_data",
    0x1C00001A: "nca_s_fault_context_mismatch",
    0x1C010013: "nca_s_fault_remote_no_memory",
    0x1C000021: "nca_s_fault_unspec",
    0x00000721: "rpc_s_sec_pkg_error",
}


def describe_fault(code: int) -> str:
    name = FAULT_NAMES.get(code)
    return f"0x{code:08X} ({name})" if name else f"0x{code:08X}"


# -- layouts ------------------------------------------------------------------


class CommonHeader(Layout):
    _fields_ = [
        ("rpc_vers", "B", 5),
        ("rpc_vers_minor", "B", 0),
        ("ptype", "B", 0),
        ("pfc_flags", "B", PFC_FIRST_FRAG | PFC_LAST_FRAG),
        ("drep", "4s", DREP_LE),
        ("frag_length", "H", 0),
        ("auth_length", "H", 0),
        ("call_id", "I", 0),
    ]


class BindFixed(Layout):
    _fields_ = [
        ("max_xmit_frag", "H", DEFAULT_MAX_FRAG),
        ("max_recv_frag", "H", DEFAULT_MAX_FRAG),
        ("assoc_group_id", "I", 0),
        ("n_context_elem", "B", 0),
        ("reserved", "B", 0),
        ("reserved2", "H", 0),
    ]


class ContextElemHead(Layout):
    """p_cont_elem_t up to the abstract syntax (its transfer syntaxes follow)."""

    _fields_ = [
        ("context_id", "H", 0),
        ("n_transfer_syn", "B", 1),
        ("reserved", "B", 0),
        ("abstract_uuid", "16s", b"\x00" * 16),
        ("abstract_version", "H", 0),
        ("abstract_minor", "H", 0),
    ]


class SyntaxId(Layout):
    _fields_ = [("uuid", "16s", b"\x00" * 16), ("version", "H", 0), ("minor", "H", 0)]


class BindAckFixed(Layout):
    _fields_ = [("max_xmit_frag", "H", DEFAULT_MAX_FRAG), ("max_recv_frag", "H", DEFAULT_MAX_FRAG),
                ("assoc_group_id", "I", 0), ("sec_addr_length", "H", 0)]


class ResultListHead(Layout):
    _fields_ = [("n_results", "B", 0), ("reserved", "B", 0), ("reserved2", "H", 0)]


class ResultEntry(Layout):
    _fields_ = [
        ("result", "H", 0),
        ("reason", "H", 0),
        ("syntax_uuid", "16s", b"\x00" * 16),
        ("syntax_version", "H", 0),
        ("syntax_minor", "H", 0),
    ]


class RequestFixed(Layout):
    _fields_ = [("alloc_hint", "I", 0), ("context_id", "H", 0), ("opnum", "H", 0)]


class ResponseFixed(Layout):
    _fields_ = [("alloc_hint", "I", 0), ("context_id", "H", 0), ("cancel_count", "B", 0), ("reserved", "B", 0)]


class FaultFixed(Layout):
    _fields_ = [
        ("alloc_hint", "I", 0),
        ("context_id", "H", 0),
        ("cancel_count", "B", 0),
        ("reserved", "B", 0),
        ("status", "I", 0),
        ("reserved2", "I", 0),
    ]


class BindNakFixed(Layout):
    _fields_ = [("reason", "H", 0)]


# -- generic PDU --------------------------------------------------------------


@dataclass(slots=True)
class Pdu:
    """One PDU: its header and the bytes after the header up to frag_length,
    without an auth trailer."""

    header: CommonHeader
    body: bytes

    @property
    def ptype(self) -> int:
        return self.header.ptype

    @property
    def call_id(self) -> int:
        return self.header.call_id

    @property
    def flags(self) -> int:
        return self.header.pfc_flags


def _pdu(ptype: int, call_id: int, body: bytes, flags: int = PFC_FIRST_FRAG | PFC_LAST_FRAG) -> bytes:
    length = CommonHeader.size + len(body)
    if length > MAX_FRAGMENT:
        raise ProtocolError(f"dcerpc: a {length}-byte fragment exceeds {MAX_FRAGMENT}")
    return CommonHeader(ptype=ptype, pfc_flags=flags, frag_length=length, call_id=call_id).pack() + body


def pdu_length(buf: bytes, offset: int = 0) -> int | None:
    """frag_length of the PDU at `offset`, or None while its header is incomplete."""
    if len(buf) - offset < CommonHeader.size:
        return None
    return _check_header(CommonHeader.unpack_from(buf, offset)).frag_length


def _check_header(hdr: CommonHeader) -> CommonHeader:
    if hdr.rpc_vers != 5 or hdr.rpc_vers_minor > 1:
        raise ProtocolError(f"dcerpc: version {hdr.rpc_vers}.{hdr.rpc_vers_minor}, expected 5.0/5.1")
    if not hdr.drep[0] & 0x10:
        raise ProtocolError("dcerpc: big-endian data representation is not supported")
    if hdr.frag_length < CommonHeader.size:
        raise ProtocolError(f"dcerpc: frag_length {hdr.frag_length} shorter than the header")
    if hdr.auth_length and hdr.auth_length + 8 > hdr.frag_length - CommonHeader.size:
        raise ProtocolError(f"dcerpc: auth_length {hdr.auth_length} does not fit frag_length {hdr.frag_length}")
    return hdr


def parse_pdu(buf: bytes, offset: int = 0) -> tuple[Pdu, int]:
    """Parse the PDU at `offset`; return it and the offset after it."""
    hdr = _check_header(CommonHeader.unpack_from(buf, offset))
    end = offset + hdr.frag_length
    if end > len(buf):
        raise ProtocolError(f"dcerpc: frag_length {hdr.frag_length} runs past the {len(buf) - offset} bytes received")
    body_end = end - (hdr.auth_length + 8 if hdr.auth_length else 0)
    body = bytes(buf[offset + CommonHeader.size : body_end])
    return Pdu(hdr, body), end


def _expect(pdu: Pdu, *ptypes: int) -> None:
    if pdu.ptype not in ptypes:
        want = "/".join(PTYPE_NAMES.get(p, str(p)) for p in ptypes)
        raise ProtocolError(f"dcerpc: expected {want}, got {PTYPE_NAMES.get(pdu.ptype, pdu.ptype)}")


def _single(buf: bytes) -> Pdu:
    pdu, end = parse_pdu(buf)
    if end != len(buf):
        raise ProtocolError(f"dcerpc: {len(buf) - end} bytes after the PDU")
    return pdu


def _syntax(value: tuple[uuid.UUID, int, int]) -> bytes:
    u, major, minor = value
    return SyntaxId(uuid=u.bytes_le, version=major, minor=minor).pack()


# -- BIND ---------------------------------------------------------------------


@dataclass(slots=True)
class PresentationContext:
    context_id: int
    abstract_syntax: tuple[uuid.UUID, int, int]  # (uuid, major, minor)
    transfer_syntaxes: list[tuple[uuid.UUID, int, int]]


@dataclass(slots=True)
class Bind:
    call_id: int
    max_xmit_frag: int
    max_recv_frag: int
    assoc_group_id: int
    contexts: list[PresentationContext]
    alter: bool = False  # ALTER_CONTEXT rather than BIND


def bind(
    call_id: int,
    abstract_syntax: tuple[uuid.UUID, int, int],
    context_id: int = 0,
    transfer_syntax: tuple[uuid.UUID, int, int] = NDR_SYNTAX,
    max_xmit_frag: int = DEFAULT_MAX_FRAG,
    max_recv_frag: int = DEFAULT_MAX_FRAG,
    assoc_group_id: int = 0,
) -> bytes:
    """Client: BIND offering one presentation context with one transfer syntax."""
    body = BindFixed(max_xmit_frag=max_xmit_frag, max_recv_frag=max_recv_frag,
                     assoc_group_id=assoc_group_id, n_context_elem=1).pack()
    u, major, minor = abstract_syntax
    body += ContextElemHead(context_id=context_id, n_transfer_syn=1, abstract_uuid=u.bytes_le,
                            abstract_version=major, abstract_minor=minor).pack()
    body += _syntax(transfer_syntax)
    return _pdu(BIND, call_id, body)


def parse_bind(buf: bytes) -> Bind:
    """Server: a BIND (or ALTER_CONTEXT) PDU with its presentation contexts."""
    pdu = _single(buf)
    _expect(pdu, BIND, ALTER_CONTEXT)
    fixed = BindFixed.unpack_from(pdu.body)
    if fixed.n_context_elem > MAX_CONTEXTS:
        raise ProtocolError(f"dcerpc: {fixed.n_context_elem} presentation contexts exceeds {MAX_CONTEXTS}")
    off = BindFixed.size
    contexts = []
    for _ in range(fixed.n_context_elem):
        head = ContextElemHead.unpack_from(pdu.body, off)
        off += ContextElemHead.size
        syntaxes = []
        for _ in range(head.n_transfer_syn):
            s = SyntaxId.unpack_from(pdu.body, off)
            off += SyntaxId.size
            syntaxes.append((uuid.UUID(bytes_le=s.uuid), s.version, s.minor))
        contexts.append(
            PresentationContext(
                head.context_id, (uuid.UUID(bytes_le=head.abstract_uuid), head.abstract_version, head.abstract_minor),
                syntaxes,
            )
        )
    return Bind(pdu.call_id, fixed.max_xmit_frag, fixed.max_recv_frag, fixed.assoc_group_id, contexts,
                pdu.ptype == ALTER_CONTEXT)


# -- BIND_ACK / BIND_NAK ------------------------------------------------------


@dataclass(slots=True)
class ContextResult:
    result: int
    reason: int
    transfer_syntax: tuple[uuid.UUID, int, int]

    @property
    def accepted(self) -> bool:
        return self.result == ACCEPTANCE


@dataclass(slots=True)
class BindAck:
    """A BIND_ACK, or a BIND_NAK (`nak_reason` set, no results)."""

    call_id: int
    max_xmit_frag: int = 0
    max_recv_frag: int = 0
    assoc_group_id: int = 0
    secondary_address: str = ""
    results: list[ContextResult] = field(default_factory=list)
    nak_reason: int | None = None

    @property
    def accepted(self) -> bool:
        """The first (only) offered context was accepted."""
        return self.nak_reason is None and bool(self.results) and self.results[0].accepted

    def describe(self) -> str:
        """Why the bind failed, for evidence."""
        if self.nak_reason is not None:
            return f"BIND_NAK ({NAK_REASONS.get(self.nak_reason, f'reason {self.nak_reason}')})"
        if not self.results:
            return "BIND_ACK without results"
        r = self.results[0]
        if r.accepted:
            return "accepted"
        return (f"{RESULT_NAMES.get(r.result, f'result {r.result}')}: "
                f"{REASON_NAMES.get(r.reason, f'reason {r.reason}')}")


def bind_ack(
    call_id: int,
    results: list[tuple[int, int, tuple[uuid.UUID, int, int]]] | None = None,
    max_xmit_frag: int = DEFAULT_MAX_FRAG,
    max_recv_frag: int = DEFAULT_MAX_FRAG,
    assoc_group_id: int = 0x12345,
    secondary_address: str = "\\PIPE\\srvsvc",
    alter: bool = False,
) -> bytes:
    """Server: BIND_ACK with one (result, reason, transfer syntax) per offered
    context; the default accepts one context with NDR."""
    if results is None:
        results = [(ACCEPTANCE, 0, NDR_SYNTAX)]
    sec = secondary_address.encode("latin-1") + b"\x00" if secondary_address else b""
    body = BindAckFixed(max_xmit_frag=max_xmit_frag, max_recv_frag=max_recv_frag,
                        assoc_group_id=assoc_group_id, sec_addr_length=len(sec)).pack() + sec
    # the result list is 4-byte aligned relative to the PDU start
    body += b"\x00" * ((4 - (CommonHeader.size + len(body)) % 4) % 4)
    body += ResultListHead(n_results=len(results)).pack()
    for result, reason, (u, major, minor) in results:
        body += ResultEntry(result=result, reason=reason, syntax_uuid=u.bytes_le,
                            syntax_version=major, syntax_minor=minor).pack()
    return _pdu(ALTER_CONTEXT_RESP if alter else BIND_ACK, call_id, body)


def bind_nak(call_id: int, reason: int = 0) -> bytes:
    """Server: BIND_NAK with a provider_reject_reason and the supported
    versions (5.0)."""
    return _pdu(BIND_NAK, call_id, BindNakFixed(reason=reason).pack() + b"\x01\x05\x00")


def parse_bind_ack(buf: bytes) -> BindAck:
    """Client: BIND_ACK (or ALTER_CONTEXT_RESP), or BIND_NAK."""
    pdu = _single(buf)
    _expect(pdu, BIND_ACK, ALTER_CONTEXT_RESP, BIND_NAK)
    if pdu.ptype == BIND_NAK:
        return BindAck(pdu.call_id, nak_reason=BindNakFixed.unpack_from(pdu.body).reason)
    fixed = BindAckFixed.unpack_from(pdu.body)
    off = BindAckFixed.size
    raw = take(pdu.body, off, fixed.sec_addr_length, "dcerpc: secondary address", cap=MAX_SECONDARY_ADDRESS)
    off += fixed.sec_addr_length
    off += (4 - (CommonHeader.size + off) % 4) % 4
    head = ResultListHead.unpack_from(pdu.body, off)
    off += ResultListHead.size
    if head.n_results > MAX_CONTEXTS:
        raise ProtocolError(f"dcerpc: {head.n_results} bind results exceeds {MAX_CONTEXTS}")
    results = []
    for _ in range(head.n_results):
        e = ResultEntry.unpack_from(pdu.body, off)
        off += ResultEntry.size
        results.append(ContextResult(e.result, e.reason,
                                     (uuid.UUID(bytes_le=e.syntax_uuid), e.syntax_version, e.syntax_minor)))
    return BindAck(
        pdu.call_id, fixed.max_xmit_frag, fixed.max_recv_frag, fixed.assoc_group_id,
        raw.split(b"\x00", 1)[0].decode("latin-1"), results,
    )


# -- REQUEST ------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    call_id: int
    context_id: int
    opnum: int
    stub: bytes
    object_uuid: uuid.UUID | None = None


def request(call_id: int, opnum: int, stub: bytes, context_id: int = 0) -> bytes:
    """Client: a single-fragment REQUEST."""
    return _pdu(REQUEST, call_id, RequestFixed(alloc_hint=len(stub), context_id=context_id, opnum=opnum).pack() + stub)


def request_fragments(call_id: int, opnum: int, stub: bytes, context_id: int = 0,
                      max_frag: int = DEFAULT_MAX_FRAG) -> list[bytes]:
    """Client: a REQUEST split into fragments of at most `max_frag` bytes."""
    room = max_frag - CommonHeader.size - RequestFixed.size
    if room < 8:
        raise ProtocolError(f"dcerpc: max_frag {max_frag} is too small")
    room -= room % 8  # fragments other than the last carry a multiple of 8
    out = []
    chunks = [stub[i : i + room] for i in range(0, len(stub), room)] or [b""]
    remaining = len(stub)
    for i, chunk in enumerate(chunks):
        flags = (PFC_FIRST_FRAG if i == 0 else 0) | (PFC_LAST_FRAG if i == len(chunks) - 1 else 0)
        fixed = RequestFixed(alloc_hint=remaining, context_id=context_id, opnum=opnum)
        out.append(_pdu(REQUEST, call_id, fixed.pack() + chunk, flags))
        remaining -= len(chunk)
    return out


def parse_request(buf: bytes, max_stub: int = MAX_STUB) -> Request:
    """Server: one REQUEST call from one or more fragments in `buf`."""
    r = Reassembler(REQUEST, max_stub=max_stub)
    r.feed(buf)
    if not r.complete:
        raise ProtocolError("dcerpc: request ends before its last fragment")
    if r.leftover:
        raise ProtocolError(f"dcerpc: {len(r.leftover)} bytes after the request")
    assert r.result is not None
    return r.result  # type: ignore[return-value]


# -- RESPONSE / FAULT ---------------------------------------------------------


@dataclass(slots=True)
class Response:
    """A reassembled RESPONSE, or a FAULT (`fault` holds its status)."""

    call_id: int
    context_id: int
    stub: bytes
    fault: int | None = None
    fragments: int = 1

    @property
    def ok(self) -> bool:
        return self.fault is None


def response_fragments(call_id: int, stub: bytes, context_id: int = 0,
                       max_frag: int = DEFAULT_MAX_FRAG) -> list[bytes]:
    """Server: RESPONSE fragments of at most `max_frag` bytes each (the
    client's max_recv_frag)."""
    room = max_frag - CommonHeader.size - ResponseFixed.size
    if room < 8:
        raise ProtocolError(f"dcerpc: max_frag {max_frag} is too small")
    room -= room % 8
    chunks = [stub[i : i + room] for i in range(0, len(stub), room)] or [b""]
    out = []
    remaining = len(stub)
    for i, chunk in enumerate(chunks):
        flags = (PFC_FIRST_FRAG if i == 0 else 0) | (PFC_LAST_FRAG if i == len(chunks) - 1 else 0)
        fixed = ResponseFixed(alloc_hint=remaining, context_id=context_id)
        out.append(_pdu(RESPONSE, call_id, fixed.pack() + chunk, flags))
        remaining -= len(chunk)
    return out


def response(call_id: int, stub: bytes, context_id: int = 0, max_frag: int = DEFAULT_MAX_FRAG) -> bytes:
    """Server: the whole RESPONSE call, its fragments concatenated."""
    return b"".join(response_fragments(call_id, stub, context_id, max_frag))


def fault(call_id: int, status: int, context_id: int = 0) -> bytes:
    """Server: FAULT with an NCA status (e.g. NCA_S_OP_RNG_ERROR) or a
    Win32 error (5 access denied)."""
    return _pdu(FAULT, call_id, FaultFixed(context_id=context_id, status=status).pack(),
                PFC_FIRST_FRAG | PFC_LAST_FRAG | PFC_DID_NOT_EXECUTE)


class Reassembler:
    """Joins the fragments of one REQUEST or RESPONSE call.

    Feed it bytes as they come out of the pipe (several PDUs, or a PDU in
    pieces); `complete` turns true at PFC_LAST_FRAG or at a FAULT, and
    `result` holds the Response (or Request).  Raises ProtocolError for a
    PDU of another type or call, a missing first fragment, more than
    `max_stub` stub bytes or MAX_FRAGMENTS fragments, or buffered bytes
    beyond one fragment that cannot be a PDU.
    """

    __slots__ = ("ptype", "call_id", "max_stub", "_buf", "_parts", "_size", "_first", "result", "leftover")

    def __init__(self, ptype: int = RESPONSE, call_id: int | None = None, max_stub: int = MAX_STUB) -> None:
        if ptype not in (REQUEST, RESPONSE):
            raise ProtocolError("dcerpc: only REQUEST and RESPONSE calls are reassembled")
        self.ptype = ptype
        self.call_id = call_id
        self.max_stub = max_stub
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self._first: Pdu | None = None
        self.result: Response | Request | None = None
        self.leftover = b""

    @property
    def complete(self) -> bool:
        return self.result is not None

    def feed(self, data: bytes) -> bool:
        """Add bytes; return `complete`."""
        if self.result is not None:
            self.leftover += bytes(data)
            return True
        self._buf += data
        while self.result is None:
            length = pdu_length(self._buf)
            if length is None or length > len(self._buf):
                break
            pdu, end = parse_pdu(self._buf)
            del self._buf[:end]
            self._add(pdu)
        if self.result is not None:
            self.leftover = bytes(self._buf)
            self._buf.clear()
        return self.result is not None

    def _add(self, pdu: Pdu) -> None:
        if self.call_id is None:
            self.call_id = pdu.call_id
        elif pdu.call_id != self.call_id:
            raise ProtocolError(f"dcerpc: fragment of call {pdu.call_id} inside call {self.call_id}")
        if self.ptype == RESPONSE and pdu.ptype == FAULT:
            f = FaultFixed.unpack_from(pdu.body)
            self.result = Response(pdu.call_id, f.context_id, b"", f.status, len(self._parts) + 1)
            return
        _expect(pdu, self.ptype)
        first = self._first is None
        if first != bool(pdu.flags & PFC_FIRST_FRAG):
            raise ProtocolError("dcerpc: fragment order broken (PFC_FIRST_FRAG)")
        if len(self._parts) >= MAX_FRAGMENTS:
            raise ProtocolError(f"dcerpc: more than {MAX_FRAGMENTS} fragments")
        if self.ptype == REQUEST:
            fixed_size = RequestFixed.size
            if pdu.flags & PFC_OBJECT_UUID:
                fixed_size += 16
        else:
            fixed_size = ResponseFixed.size
        if len(pdu.body) < fixed_size:
            raise ProtocolError(f"dcerpc: {PTYPE_NAMES[self.ptype]} fragment shorter than its fixed part")
        stub = pdu.body[fixed_size:]
        if self._size + len(stub) > self.max_stub:
            raise ProtocolError(f"dcerpc: call stub exceeds the cap of {self.max_stub} bytes")
        if first:
            self._first = pdu
        self._parts.append(stub)
        self._size += len(stub)
        if pdu.flags & PFC_LAST_FRAG:
            head = self._first
            assert head is not None
            joined = b"".join(self._parts)
            if self.ptype == REQUEST:
                fixed = RequestFixed.unpack_from(head.body)
                obj = None
                if head.flags & PFC_OBJECT_UUID:
                    obj = uuid.UUID(bytes_le=head.body[RequestFixed.size : RequestFixed.size + 16])
                self.result = Request(head.call_id, fixed.context_id, fixed.opnum, joined, obj)
            else:
                fixed = ResponseFixed.unpack_from(head.body)
                self.result = Response(head.call_id, fixed.context_id, joined, None, len(self._parts))


def parse_response(buf: bytes, call_id: int | None = None, max_stub: int = MAX_STUB) -> Response:
    """Client: a whole RESPONSE call (all fragments) or a FAULT."""
    r = Reassembler(RESPONSE, call_id, max_stub)
    r.feed(buf)
    if not r.complete:
        raise ProtocolError("dcerpc: response ends before its last fragment")
    if r.leftover:
        raise ProtocolError(f"dcerpc: {len(r.leftover)} bytes after the response")
    assert isinstance(r.result, Response)
    return r.result


def parse_fault(buf: bytes) -> int:
    """The status of a FAULT PDU."""
    pdu = _single(buf)
    _expect(pdu, FAULT)
    return FaultFixed.unpack_from(pdu.body).status
