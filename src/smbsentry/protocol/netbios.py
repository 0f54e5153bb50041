"""NetBIOS session service framing (RFC 1002) as used by SMB on 445 and 139.

On 445 ("direct TCP") every SMB message carries a 4-byte header: type 0x00
and a 24-bit big-endian length.  On 139 the client first sends a SESSION
REQUEST (0x81) with encoded called/calling names and must get a POSITIVE
SESSION RESPONSE (0x82); after that the framing is the same.

`FrameReader` is the bounded receive buffer: the engine feeds it whatever
arrived and takes whole messages out.  A peer that announces more than
`max_frame` bytes is refused as soon as the header arrives, so a hostile
server cannot make us buffer megabytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ProtocolError
from .fields import Layout

SESSION_MESSAGE = 0x00
SESSION_REQUEST = 0x81
POSITIVE_RESPONSE = 0x82
NEGATIVE_RESPONSE = 0x83
RETARGET_RESPONSE = 0x84
KEEPALIVE = 0x85

#: Default cap for one SMB message.  Negotiate and session replies are a few
#: hundred bytes; share lists and transaction replies stay far below this.
DEFAULT_MAX_FRAME = 1 << 20

NEGATIVE_REASONS = {
    0x80: "not listening on called name",
    0x81: "not listening for calling name",
    0x82: "called name not present",
    0x83: "called name present, but insufficient resources",
    0x8F: "unspecified error",
}


class SessionHeader(Layout):
    """type (1), then a 24-bit length: flags byte (the top 7 bits must be 0 on
    139; 445 uses all 24 bits) and a 16-bit length."""

    _byte_order_ = ">"
    _fields_ = [("type", "B", 0), ("length_high", "B", 0), ("length_low", "H", 0)]

    @property
    def length(self) -> int:
        return (self.length_high << 16) | self.length_low


_TYPE_AND_LENGTH = struct.Struct(">I")


def frame(payload: bytes, msg_type: int = SESSION_MESSAGE) -> bytes:
    """Prefix `payload` with the session header (type byte, 24-bit length)."""
    n = len(payload)
    if n > 0xFFFFFF:
        raise ProtocolError(f"netbios: message of {n} bytes exceeds 24-bit length")
    return _TYPE_AND_LENGTH.pack((msg_type << 24) | n) + payload


def encode_label(raw: bytes) -> bytes:
    """First-level encoding (RFC 1001 14.1) of a 16-byte NetBIOS name: each
    byte split into two nibbles + 'A', prefixed with the length 32 and ended
    with the empty root label.  The one copy: the session request's names and
    the name service's (protocol/nbns.py) both come here."""
    if len(raw) != 16:
        raise ProtocolError(f"netbios: a NetBIOS name is 16 bytes, not {len(raw)}")
    out = bytearray([32])
    for b in raw:
        out.append(0x41 + (b >> 4))
        out.append(0x41 + (b & 0x0F))
    out.append(0)
    return bytes(out)


def decode_half_bytes(enc: bytes) -> bytes:
    """The 16 raw bytes of the 32 encoded characters ('A'-'P' each): the
    inverse of encode_label's body, without the length byte and terminator."""
    if len(enc) != 32:
        raise ProtocolError("netbios: bad encoded name")
    raw = bytearray()
    for i in range(0, 32, 2):
        hi, lo = enc[i] - 0x41, enc[i + 1] - 0x41
        if not (0 <= hi < 16 and 0 <= lo < 16):
            raise ProtocolError("netbios: bad encoded name character")
        raw.append((hi << 4) | lo)
    return bytes(raw)


def encode_name(name: str, suffix: int = 0x20) -> bytes:
    """First-level encoding of `name` (upper-cased, padded to 15 characters
    with spaces) and the suffix byte."""
    return encode_label(name.upper().encode("ascii", "replace")[:15].ljust(15, b" ") + bytes([suffix]))


def decode_name(data: bytes, offset: int = 0) -> tuple[str, int, int]:
    """Inverse of encode_name: return (name, suffix, offset after the name)."""
    if offset >= len(data) or data[offset] != 32 or len(data) < offset + 34:
        raise ProtocolError("netbios: bad encoded name")
    raw = decode_half_bytes(data[offset + 1 : offset + 33])
    if data[offset + 33] != 0:
        raise ProtocolError("netbios: scoped names are not supported")
    return raw[:15].decode("latin-1").rstrip(" "), raw[15], offset + 34


def session_request(called: str = "*SMBSERVER", calling: str = "SMBSENTRY") -> bytes:
    """The framed SESSION REQUEST for port 139."""
    return frame(encode_name(called) + encode_name(calling), SESSION_REQUEST)


@dataclass(frozen=True, slots=True)
class SessionResponse:
    positive: bool
    reason: str | None = None


def parse_session_response(msg_type: int, body: bytes) -> SessionResponse:
    """Interpret the reply to a SESSION REQUEST (type and body from FrameReader)."""
    if msg_type == POSITIVE_RESPONSE:
        return SessionResponse(True)
    if msg_type == NEGATIVE_RESPONSE:
        code = body[0] if body else 0x8F
        return SessionResponse(False, NEGATIVE_REASONS.get(code, f"error 0x{code:02x}"))
    if msg_type == RETARGET_RESPONSE:
        return SessionResponse(False, "retarget response (not followed)")
    raise ProtocolError(f"netbios: unexpected reply type 0x{msg_type:02x} to session request")


#: What a client may receive: session messages and the answers to its SESSION REQUEST.
CLIENT_TYPES = frozenset({SESSION_MESSAGE, POSITIVE_RESPONSE, NEGATIVE_RESPONSE, RETARGET_RESPONSE, KEEPALIVE})
#: What a server may receive: session messages and, first on 139, a SESSION REQUEST.
SERVER_TYPES = frozenset({SESSION_MESSAGE, SESSION_REQUEST, KEEPALIVE})


class FrameReader:
    """Bounded reassembly of NetBIOS session messages from a byte stream: the
    one reader for both sides (the scanner's connections with `CLIENT_TYPES`,
    the lab's with `SERVER_TYPES`)."""

    __slots__ = ("_buf", "max_frame", "accept")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, accept: frozenset[int] = CLIENT_TYPES) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame
        self.accept = accept

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return the complete (type, payload) messages.

        Keepalives are dropped.  Raises ProtocolError on an unknown type or a
        length over the cap, as soon as the 4-byte header is in.
        """
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        while len(buf) >= 4:
            msg_type = buf[0]
            length = (buf[1] << 16) | (buf[2] << 8) | buf[3]
            if msg_type not in self.accept:
                raise ProtocolError(f"netbios: unknown session message type 0x{msg_type:02x}")
            if length > self.max_frame:
                raise ProtocolError(f"netbios: peer announced a {length}-byte message (cap {self.max_frame})")
            if len(buf) < 4 + length:
                break
            payload = bytes(buf[4 : 4 + length])
            del buf[: 4 + length]
            if msg_type != KEEPALIVE:
                out.append((msg_type, payload))
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)
