"""IPv4 and TCP headers for discovery's probes: a SYN out, a SYN-ACK or RST back.

Sans-I/O like the rest of the protocol package: bytes in, typed values out.
A probe is a 40-byte IPv4 + TCP SYN with no options (what masscan and ZMap
send: the smallest packet any stack answers); the headers are declared once
here and the C sender (discover/_fastsend.c) lays out the same 40 bytes,
which the tests compare.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ProtocolError
from .fields import Layout

__all__ = ["FIN", "SYN", "RST", "ACK", "IPv4Header", "TcpHeader", "Segment", "checksum", "syn", "rst", "parse_segment"]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP = 6
PROBE_TTL = 64
PROBE_WINDOW = 1024  # what masscan offers: any window makes a listener answer
PROBE_IP_ID = 0x5353  # fixed: the kernel would fill 0 in anyway for DF packets
DONT_FRAGMENT = 0x4000


class IPv4Header(Layout):
    _byte_order_ = ">"
    _fields_ = [
        ("version_ihl", "B", 0x45),
        ("tos", "B", 0),
        ("total_length", "H", 40),
        ("ident", "H", PROBE_IP_ID),
        ("flags_fragment", "H", DONT_FRAGMENT),
        ("ttl", "B", PROBE_TTL),
        ("protocol", "B", TCP),
        ("checksum", "H", 0),
        ("src", "I", 0),
        ("dst", "I", 0),
    ]


class TcpHeader(Layout):
    _byte_order_ = ">"
    _fields_ = [
        ("sport", "H", 0),
        ("dport", "H", 0),
        ("seq", "I", 0),
        ("ack", "I", 0),
        ("offset", "B", 5 << 4),
        ("flags", "B", SYN),
        ("window", "H", PROBE_WINDOW),
        ("checksum", "H", 0),
        ("urgent", "H", 0),
    ]


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _segment(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int, window: int) -> bytes:
    tcp = TcpHeader.build(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window)
    pseudo = struct.pack(">IIBBH", src, dst, 0, TCP, len(tcp))
    tcp = tcp[:16] + struct.pack(">H", checksum(pseudo + tcp)) + tcp[18:]
    ip = IPv4Header.build(src=src, dst=dst, total_length=IPv4Header.size + len(tcp))
    ip = ip[:10] + struct.pack(">H", checksum(ip)) + ip[12:]
    return ip + tcp


def syn(src: int, dst: int, sport: int, dport: int, seq: int) -> bytes:
    """The 40-byte probe: IPv4 + TCP SYN (addresses as integers)."""
    return _segment(src, dst, sport, dport, seq, 0, SYN, PROBE_WINDOW)


def rst(src: int, dst: int, sport: int, dport: int, seq: int) -> bytes:
    """A RST closing the half-open connection a SYN-ACK announced (seq = the SYN-ACK's ack)."""
    return _segment(src, dst, sport, dport, seq, 0, RST, 0)


@dataclass(frozen=True, slots=True)
class Segment:
    """The parts of a received TCP segment that discovery looks at."""

    src: int
    dst: int
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int

    @property
    def syn_ack(self) -> bool:
        return self.flags & (SYN | ACK | RST) == SYN | ACK

    @property
    def reset(self) -> bool:
        return bool(self.flags & RST)


def parse_segment(packet: bytes) -> Segment:
    """An IPv4 packet carrying TCP (what a raw IPPROTO_TCP socket reads) -> Segment; ProtocolError otherwise."""
    ip = IPv4Header.unpack_from(packet)
    if ip.version_ihl >> 4 != 4:
        raise ProtocolError("not IPv4")
    ihl = (ip.version_ihl & 0x0F) * 4
    if ihl < 20 or ip.protocol != TCP:
        raise ProtocolError("not a TCP packet")
    if ip.flags_fragment & 0x1FFF:
        raise ProtocolError("a later fragment")
    tcp = TcpHeader.unpack_from(packet, ihl)
    return Segment(ip.src, ip.dst, tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags)
