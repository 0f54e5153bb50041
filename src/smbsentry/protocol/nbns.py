"""NetBIOS name service messages (RFC 1002 4.2, UDP 137), both sides, no I/O.

The scanner sends a node status request (NBSTAT) for "*" and reads the name
table of the answer (`status_query`, `parse_status`); the lab reads name
queries (`parse_query`) and answers a node status request with its names
(`status_reply`) and a name query for its own name with its address
(`name_reply`).  The header, the question's type and class, the resource
record's fixed part and a node status name entry are declared once here as
big-endian Layouts; the first-level name encoding is protocol/netbios.py's.

Every read is bounded: a name is at most 64 labels, a name table at most 255
entries inside the record, and anything malformed raises ProtocolError.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError
from .fields import Layout
from .netbios import decode_half_bytes, encode_label

NB, NBSTAT = 0x0020, 0x0021
IN = 0x0001
RESPONSE = 0x8000
AUTHORITATIVE = 0x0400
RECURSION_DESIRED = 0x0100
GROUP = 0x8000  # name flags: a group name
ACTIVE = 0x0400  # name flags: the name is active
#: "*" padded with NULs (RFC 1002 4.2.18): the name a node status request asks about.
WILDCARD = b"*" + b"\x00" * 15
MAX_LABELS = 64
#: Statistics after the name table in the lab's replies (RFC 1002 4.2.18: the unit id, then 40 bytes of counters).
STATISTICS_PAD = 40

SUFFIXES = {0x00: "workstation / domain", 0x03: "messenger", 0x20: "file server", 0x1B: "domain master browser",
            0x1C: "domain controllers", 0x1D: "master browser", 0x1E: "browser election", 0x01: "browse"}


class Header(Layout):
    """The 12-byte name service header: transaction id, opcode and flags, four counts."""

    _byte_order_ = ">"
    _fields_ = [("txid", "H", 0), ("flags", "H", 0), ("qdcount", "H", 0), ("ancount", "H", 0),
                ("nscount", "H", 0), ("arcount", "H", 0)]


class Question(Layout):
    """What follows the question's name: type (NB or NBSTAT) and class (IN)."""

    _byte_order_ = ">"
    _fields_ = [("qtype", "H", NB), ("qclass", "H", IN)]


class RecordHeader(Layout):
    """What follows a resource record's name: type, class, TTL, RDATA length."""

    _byte_order_ = ">"
    _fields_ = [("rtype", "H", NB), ("rclass", "H", IN), ("ttl", "I", 0), ("rdlength", "H", 0)]


class NameEntry(Layout):
    """One entry of a node status name table: 15 name bytes, the suffix, the name flags."""

    _byte_order_ = ">"
    _fields_ = [("name", "15s", b""), ("suffix", "B", 0), ("flags", "H", 0)]


HEADER_SIZE = Header.size
QNAME_SIZE = 34  # a first-level encoded name without scope: length 32, 32 characters, root label
QUERY_SIZE = HEADER_SIZE + QNAME_SIZE + Question.size


# -- the scanner's side -----------------------------------------------------------


def status_query(txid: int) -> bytes:
    """A node status request (NBSTAT) for "*", the question every Windows host answers."""
    return Header.build(txid=txid, qdcount=1) + encode_label(WILDCARD) + Question.build(qtype=NBSTAT)


def skip_name(data: bytes, pos: int) -> int:
    """The offset after the (possibly compressed) name at `pos`; at most MAX_LABELS labels."""
    for _ in range(MAX_LABELS):
        if pos >= len(data):
            raise ProtocolError("nbns: truncated name")
        n = data[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + n
    raise ProtocolError("nbns: name too long")


def _printable(raw: bytes) -> str:
    """A name as text: trailing pad dropped, control characters shown as '?' (the peer chose them)."""
    name = raw.decode("latin-1").rstrip(" \x00")
    return "".join(ch if ch.isprintable() else "?" for ch in name)


def _name_table(rdata: bytes) -> list[dict]:
    count = rdata[0]
    if 1 + count * NameEntry.size > len(rdata):
        raise ProtocolError("nbns: name table runs past the record")
    names = []
    for i in range(count):
        entry = NameEntry.unpack_from(rdata, 1 + i * NameEntry.size)
        names.append({"name": _printable(entry.name), "suffix": entry.suffix, "group": bool(entry.flags & GROUP),
                      "flags": entry.flags, "role": SUFFIXES.get(entry.suffix)})
    return names


def _record(data: bytes) -> bytes:
    """The RDATA of the first answer of a node status reply (shorter when the datagram is)."""
    pos = skip_name(data, HEADER_SIZE)
    if pos + RecordHeader.size > len(data):
        raise ProtocolError("nbns: truncated record")
    rr = RecordHeader.unpack_from(data, pos)
    if rr.rtype != NBSTAT:
        raise ProtocolError(f"nbns: record type 0x{rr.rtype:x}, not NBSTAT")
    pos += RecordHeader.size
    rdata = data[pos:pos + rr.rdlength]
    if not rdata:
        raise ProtocolError("nbns: empty NBSTAT record")
    return rdata


def parse_status(data: bytes, txid: int | None = None) -> dict:
    """The facts of a node status reply: its names, the computer name and workgroup,
    the adapter MAC, whether it is a domain controller (a <1C> group) or a file server."""
    if len(data) < HEADER_SIZE:
        raise ProtocolError("nbns: short answer")
    hdr = Header.unpack_from(data)
    if txid is not None and hdr.txid != txid:
        raise ProtocolError("nbns: transaction id does not match")
    if not hdr.flags & RESPONSE or hdr.ancount < 1:
        raise ProtocolError("nbns: not a node status answer")
    rdata = _record(data)
    names = _name_table(rdata)
    stats = rdata[1 + len(names) * NameEntry.size:]
    mac = ":".join(f"{b:02x}" for b in stats[:6]) if len(stats) >= 6 else None
    computer = next((n["name"] for n in names if n["suffix"] == 0x00 and not n["group"]), None) or \
        next((n["name"] for n in names if n["suffix"] == 0x20 and not n["group"]), None)
    workgroup = next((n["name"] for n in names if n["suffix"] == 0x00 and n["group"]), None)
    dc = any(n["suffix"] == 0x1C and n["group"] for n in names)
    return {"names": names, "computer_name": computer, "workgroup": workgroup, "mac": mac,
            "domain_controller": dc, "file_server": any(n["suffix"] == 0x20 for n in names)}


# -- the lab's side -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """A request as the lab reads it: the header, the question's name as sent
    (34 bytes, echoed in the reply) and its type."""

    header: Header
    qname: bytes
    qtype: int

    def name(self) -> tuple[str, int] | None:
        """(name, suffix) of the question's name, or None when it is not a
        first-level encoded name (length 32, 'A'-'P')."""
        if self.qname[0] != 32:
            return None
        try:
            raw = decode_half_bytes(self.qname[1:33])
        except ProtocolError:
            return None
        return raw[:15].decode("latin-1").rstrip(" "), raw[15]


def parse_query(data: bytes) -> Query:
    """A request of at least header, unscoped name and question; a reply
    (the response bit set) or anything shorter raises ProtocolError."""
    if len(data) < QUERY_SIZE:
        raise ProtocolError(f"nbns: a query is at least {QUERY_SIZE} bytes, not {len(data)}")
    hdr = Header.unpack_from(data)
    if hdr.flags & RESPONSE:
        raise ProtocolError("nbns: a reply, not a query")
    qname = data[HEADER_SIZE:HEADER_SIZE + QNAME_SIZE]
    return Query(hdr, qname, Question.unpack_from(data, HEADER_SIZE + QNAME_SIZE).qtype)


def _reply(query: Query, flags: int, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return (Header.build(txid=query.header.txid, flags=flags, ancount=1) + query.qname
            + RecordHeader.build(rtype=rtype, ttl=ttl, rdlength=len(rdata)) + rdata)


def name_reply(query: Query, address: bytes, ttl: int) -> bytes:
    """Positive name query response (RFC 1002 4.2.13): a B-node, unique name, at `address` (4 bytes)."""
    if len(address) != 4:
        raise ProtocolError("nbns: an NB record carries an IPv4 address")
    flags = RESPONSE | AUTHORITATIVE | (query.header.flags & RECURSION_DESIRED)
    return _reply(query, flags, NB, ttl, b"\x00\x00" + address)


def status_reply(query: Query, names: list[tuple[str, int, bool]] | list[list], mac: bytes) -> bytes:
    """Node status response (RFC 1002 4.2.18): the name table (name, suffix,
    group) as active names, the unit id `mac`, 40 bytes of zero statistics."""
    if len(names) > 255:
        raise ProtocolError("nbns: a name table holds at most 255 names")
    table = b"".join(NameEntry.build(name=name.encode("latin-1")[:15].ljust(15, b" "), suffix=suffix,
                                     flags=(GROUP if group else 0) | ACTIVE) for name, suffix, group in names)
    rdata = bytes([len(names)]) + table + mac + b"\x00" * STATISTICS_PAD
    return _reply(query, RESPONSE | AUTHORITATIVE, NBSTAT, 0, rdata)
