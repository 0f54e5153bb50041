"""Lean link/network/transport decoding for captured frames.

:func:`decode` turns ``(linktype, frame bytes)`` into a :class:`Packet` (TCP
or UDP over IPv4/IPv6), and never raises:

* ``Packet`` - a TCP or UDP segment;
* ``None`` - the frame is malformed or truncated below a header (count it);
* ``False`` (:data:`SKIP`) - a well-formed frame that carries no TCP/UDP we
  can decode: ARP and other ethertypes, ICMP and other IP protocols, IPsec ESP,
  non-first IP fragments, unsupported link types.

Both ``None`` and ``False`` are falsy, so ``if not pkt: continue`` skips both;
``pkt is None`` singles out the malformed ones.

Addresses stay ``bytes`` (4 or 16 bytes: hashable, cheap flow keys); the
``src``/``dst`` properties format them as strings on demand.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

__all__ = [
    "ACK",
    "FIN",
    "PSH",
    "RST",
    "SKIP",
    "SUPPORTED_LINKTYPES",
    "SYN",
    "TCP",
    "UDP",
    "URG",
    "Packet",
    "decode",
    "format_addr",
]

TCP = 6
UDP = 17

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

#: Returned for well-formed frames that carry nothing to decode (falsy, not None).
SKIP = False

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
# BSD loopback address family values for IPv6 (OpenBSD/NetBSD 24, FreeBSD 28, Darwin 30, Linux 10)
_AF_INET6_VALUES = frozenset({24, 28, 30, 10})
# IPv6 extension headers we step over: hop-by-hop, routing, destination options, mobility
_IP6_EXT_SIMPLE = frozenset({0, 43, 60, 135})

_ip4_unpack = struct.Struct(
    "!BxHxxHxB2x4s4s"
).unpack_from  # vihl, total len, frag, proto, src, dst
_ip6_unpack = struct.Struct(
    "!4xHBx16s16s"
).unpack_from  # payload len, next header, src, dst
_tcp_unpack = struct.Struct(
    "!HHIIBB"
).unpack_from  # sport, dport, seq, ack, offset, flags
_udp_unpack = struct.Struct("!HHH").unpack_from  # sport, dport, length
_u16 = struct.Struct("!H").unpack_from
_u32le = struct.Struct("<I").unpack_from
_u32be = struct.Struct(">I").unpack_from

_tuple_new = tuple.__new__


def format_addr(addr: bytes) -> str:
    """Format a 4- or 16-byte address as a string."""
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
    return socket.inet_ntop(socket.AF_INET6, addr)


class Packet(NamedTuple):
    """A decoded TCP or UDP segment (a tuple: cheap to build, immutable)."""

    src_addr: bytes
    """Source IP address, raw (4 bytes IPv4, 16 bytes IPv6)."""
    dst_addr: bytes
    sport: int
    dport: int
    proto: int
    """:data:`TCP` (6) or :data:`UDP` (17)."""
    flags: int
    """TCP flags (FIN 0x01 ... CWR 0x80, NS 0x100); 0 for UDP."""
    seq: int
    """TCP sequence number; 0 for UDP."""
    ack: int
    """TCP acknowledgement number; 0 for UDP."""
    payload: bytes
    """Transport payload, bounded by the IP length (Ethernet padding removed)."""

    @property
    def src(self) -> str:
        return format_addr(self.src_addr)

    @property
    def dst(self) -> str:
        return format_addr(self.dst_addr)

    @property
    def ip_version(self) -> int:
        return 4 if len(self.src_addr) == 4 else 6

    def __repr__(self) -> str:
        kind = "TCP" if self.proto == TCP else "UDP"
        return (
            f"Packet({kind} {self.src}:{self.sport} -> {self.dst}:{self.dport} "
            f"flags=0x{self.flags:02x} seq={self.seq} ack={self.ack} len={len(self.payload)})"
        )


def decode(linktype: int, data: bytes) -> Packet | None | bool:
    """Decode one captured frame; see the module docstring for the results."""
    n = len(data)
    if linktype == 1:  # Ethernet II, possibly 802.1Q/802.1ad tagged
        if n < 14:
            return None
        et = (data[12] << 8) | data[13]
        off = 14
        while et in _VLAN_TPIDS:
            if n < off + 4:
                return None
            et = (data[off + 2] << 8) | data[off + 3]
            off += 4
    elif linktype == 113:  # Linux cooked v1
        if n < 16:
            return None
        et = (data[14] << 8) | data[15]
        off = 16
    elif linktype == 276:  # Linux cooked v2
        if n < 20:
            return None
        et = (data[0] << 8) | data[1]
        off = 20
    elif linktype == 101 or linktype == 228 or linktype == 229:  # raw IP
        if n < 1:
            return None
        v = data[0] >> 4
        if v == 4 and linktype != 229:
            return _ipv4(data, 0, n)
        if v == 6 and linktype != 228:
            return _ipv6(data, 0, n)
        return None
    elif linktype == 0 or linktype == 108:  # BSD loopback / OpenBSD loop
        if n < 4:
            return None
        if linktype == 108:
            fam = _u32be(data, 0)[0]
        else:  # host byte order of the capturing machine; families are small numbers
            fam = _u32le(data, 0)[0] if data[0] else _u32be(data, 0)[0]
        if fam == 2:
            return _ipv4(data, 4, n)
        if fam in _AF_INET6_VALUES:
            return _ipv6(data, 4, n)
        return SKIP
    else:
        return SKIP
    if et == 0x0800:
        return _ipv4(data, off, n)
    if et == 0x86DD:
        return _ipv6(data, off, n)
    return SKIP


def _ipv4(data: bytes, off: int, n: int) -> Packet | None | bool:
    if n - off < 20:
        return None
    vihl, total, frag, proto, src, dst = _ip4_unpack(data, off)
    if vihl >> 4 != 4:
        return None
    hl = (vihl & 0x0F) << 2
    if hl < 20 or off + hl > n:
        return None
    if total:
        if total < hl:
            return None
        end = off + total
        if end > n:  # noqa: PLR1730 (hot path: cheaper than min()) snapped capture
            end = n
    else:  # 0 happens with TCP segmentation offload captures
        end = n
    if frag & 0x1FFF:  # not the first fragment
        return SKIP
    if proto == 6:
        return _tcp(data, off + hl, end, src, dst)
    if proto == 17:
        return _udp(data, off + hl, end, src, dst)
    return SKIP


def _ipv6(data: bytes, off: int, n: int) -> Packet | None | bool:
    if n - off < 40:
        return None
    plen, nxt, src, dst = _ip6_unpack(data, off)
    if data[off] >> 4 != 6:
        return None
    pos = off + 40
    if plen:
        end = pos + plen
        if end > n:  # noqa: PLR1730 (hot path: cheaper than min())
            end = n
    else:  # jumbogram or offload: take the captured length
        end = n
    for _ in range(8):
        if nxt == 6:
            return _tcp(data, pos, end, src, dst)
        if nxt == 17:
            return _udp(data, pos, end, src, dst)
        if nxt in _IP6_EXT_SIMPLE:
            if pos + 8 > end:
                return None
            nxt, hlen = data[pos], (data[pos + 1] + 1) << 3
        elif nxt == 44:  # fragment
            if pos + 8 > end:
                return None
            if _u16(data, pos + 2)[0] & 0xFFF8:  # non-zero fragment offset
                return SKIP
            nxt, hlen = data[pos], 8
        elif nxt == 51:  # authentication header
            if pos + 8 > end:
                return None
            nxt, hlen = data[pos], (data[pos + 1] + 2) << 2
        else:  # ESP, no next header, ICMPv6, anything else
            return SKIP
        pos += hlen
        if pos > end:
            return None
    return None


def _tcp(data: bytes, off: int, end: int, src: bytes, dst: bytes) -> Packet | None:
    if end - off < 20:
        return None
    sport, dport, seq, ack, doff, flags = _tcp_unpack(data, off)
    hl = (doff >> 4) << 2
    if hl < 20 or off + hl > end:
        return None
    if doff & 1:
        flags |= 0x100
    return _tuple_new(
        Packet, (src, dst, sport, dport, 6, flags, seq, ack, data[off + hl : end])
    )


def _udp(data: bytes, off: int, end: int, src: bytes, dst: bytes) -> Packet | None:
    if end - off < 8:
        return None
    sport, dport, ulen = _udp_unpack(data, off)
    if ulen:
        if ulen < 8:
            return None
        if off + ulen < end:  # noqa: PLR1730 (hot path: cheaper than min())
            end = off + ulen
    return _tuple_new(
        Packet, (src, dst, sport, dport, 17, 0, 0, 0, data[off + 8 : end])
    )
