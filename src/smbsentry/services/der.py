"""A minimal DER encoder/decoder: enough for Kerberos errors and CredSSP TSRequest.

decode() checks every length against the buffer and nests at most MAX_DEPTH deep.

Our own rather than pyasn1's (installed with impacket): this runs per host on
the scan path, and pyasn1 handles these messages 10-30x slower (bench/libraries,
docs/architecture.md).  tests/test_der_pyasn1.py checks our messages
against pyasn1 with the published structures.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import ServiceError

MAX_DEPTH = 16


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _len(len(value)) + value


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def ctx(n: int, value: bytes) -> bytes:
    """[n] EXPLICIT, constructed."""
    return tlv(0xA0 | n, value)


def app(n: int, value: bytes) -> bytes:
    return tlv(0x60 | n, value)


def integer(v: int) -> bytes:
    if v == 0:
        return tlv(0x02, b"\x00")
    b = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
    return tlv(0x02, b)


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def general_string(s: str) -> bytes:
    return tlv(0x1B, s.encode("ascii", "replace"))


def generalized_time(s: str) -> bytes:
    return tlv(0x18, s.encode("ascii"))


def bit_string(b: bytes) -> bytes:
    return tlv(0x03, b"\x00" + b)


@dataclass(slots=True)
class Node:
    tag: int
    value: bytes
    children: list["Node"] | None = None

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def child(self, ctx_n: int) -> "Node | None":
        """The inner value of the [ctx_n] EXPLICIT field of a SEQUENCE (self), or None."""
        for c in self.children or []:
            if c.tag == (0xA0 | ctx_n) and c.children:
                return c.children[0]
        return None

    def as_int(self) -> int:
        if self.tag != 0x02 or not self.value or len(self.value) > 8:
            raise ServiceError(f"der: expected INTEGER, got tag 0x{self.tag:02x}")
        return int.from_bytes(self.value, "big", signed=True)

    def as_str(self) -> str:
        return self.value.decode("utf-8", "replace")


def decode_one(data: bytes, pos: int = 0, depth: int = 0) -> tuple[Node, int]:
    if depth > MAX_DEPTH:
        raise ServiceError("der: nested too deep")
    if pos + 2 > len(data):
        raise ServiceError("der: truncated header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ServiceError("der: multi-byte tags not supported")
    ln = data[pos + 1]
    pos += 2
    if ln & 0x80:
        k = ln & 0x7F
        if k == 0 or k > 4 or pos + k > len(data):
            raise ServiceError("der: bad length")
        ln = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    if pos + ln > len(data):
        raise ServiceError("der: length runs past the data")
    value = data[pos:pos + ln]
    node = Node(tag, value)
    if tag & 0x20:
        node.children = []
        p = 0
        while p < len(value):
            c, p = decode_one(value, p, depth + 1)
            node.children.append(c)
    return node, pos + ln


def decode(data: bytes) -> Node:
    return decode_one(data)[0]


def sequence_complete(buf: bytes) -> bool:
    """True once `buf` holds one whole DER SEQUENCE, or cannot start one (stop reading: the parser says why).
    What a reader of CredSSP TSRequests or LDAP messages waits for."""
    if buf[:1] not in (b"", b"\x30"):
        return True
    if len(buf) < 2:
        return False
    n, pos = buf[1], 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4:
            return True
        if len(buf) < 2 + k:
            return False
        n, pos = int.from_bytes(buf[2:2 + k], "big"), 2 + k
    return len(buf) >= pos + n
