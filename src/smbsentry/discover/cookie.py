"""The SYN cookie: which SYN-ACKs answer our probes, with no per-probe state.

A stateless scanner remembers nothing about the SYNs it sent, so it must be
able to tell from a reply alone that the reply answers one of them (and not
a stray packet, a spoofed one, or a reply to a scan of an earlier run).
As masscan and ZMap do, the SYN's sequence number is a keyed hash of the
probe's (destination address, destination port, source port); a SYN-ACK
from that address and port, to that source port, acknowledges
``sequence + 1``.  The key is random per scan and never leaves the process.

The hash is SipHash-2-4 (Aumasson and Bernstein, 2012: a keyed function
made for short inputs), computed here in Python and, bit for bit the same,
in the C sender (_fastsend.c); the tests check that the two agree.
"""

from __future__ import annotations

import os
import struct

__all__ = ["KEY_SIZE", "cookie", "new_key", "siphash24", "valid_ack"]

KEY_SIZE = 16
_MASK = (1 << 64) - 1


def new_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _rounds(v0: int, v1: int, v2: int, v3: int, n: int) -> tuple[int, int, int, int]:
    for _ in range(n):
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 of `data` under a 16-byte key, as a 64-bit integer (the reference's byte order)."""
    if len(key) != KEY_SIZE:
        raise ValueError("SipHash takes a 16-byte key")
    k0, k1 = struct.unpack("<QQ", key)
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    whole = len(data) - len(data) % 8
    for off in range(0, whole, 8):
        (m,) = struct.unpack_from("<Q", data, off)
        v3 ^= m
        v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 2)
        v0 ^= m
    last = (len(data) & 0xFF) << 56 | int.from_bytes(data[whole:], "little")
    v3 ^= last
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 2)
    v0 ^= last
    v2 ^= 0xFF
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


def cookie(key: bytes, dst: int, dport: int, sport: int) -> int:
    """The 32-bit sequence number of our SYN to dst:dport from sport (dst as an integer)."""
    return siphash24(key, struct.pack("<IHH", dst, dport, sport)) & 0xFFFFFFFF


def valid_ack(key: bytes, src: int, sport: int, dport: int, ack: int) -> bool:
    """Does a SYN-ACK from src:sport to our dport acknowledge the SYN we would have sent?"""
    return ack == (cookie(key, src, sport, dport) + 1) & 0xFFFFFFFF
