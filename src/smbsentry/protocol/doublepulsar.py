"""What DoublePulsar's answer carries in the SMB1 signature field (no I/O).

An implanted host answers its ping with the request's MID plus 16; the
8-byte signature field of that answer holds the implant's XOR key (bytes
0-3, through the implant's derivation) and the architecture (bytes 4-7:
zero means x86).  The scanner's check and the traffic detector both read
it, so it lives here, below both.
"""

from __future__ import annotations

import struct

__all__ = ["architecture", "xor_key"]


def xor_key(signature: bytes) -> int:
    """The implant's XOR key from the first 4 bytes of the signature field."""
    s = struct.unpack_from("<I", signature)[0]
    return (2 * s ^ (((s & 0xFF00 | (s << 16)) << 8) | (((s >> 16) | s & 0xFF0000) >> 8))) & 0xFFFFFFFF


def architecture(signature: bytes) -> str:
    """``x86`` when bytes 4-7 of the signature field are zero, else ``x64``."""
    return "x86" if signature[4:8] == b"\x00\x00\x00\x00" else "x64"
