"""The SMBGhost detector (CVE-2020-0796): SMB 3.1.1 compression transforms that cannot be valid.

The vulnerable srv2.sys trusted OriginalCompressedSegmentSize and Offset
and allocated their (wrapping) sum; exploits and crash tools send
transforms whose sizes no legitimate compressor produces.
:func:`compression_problem` says why a transform cannot be valid; the
engine calls :func:`check_transform` on every compression transform
(0xFC 'SMB') message, and it alerts with the transform's fields.
"""

from __future__ import annotations

import struct

from ..protocol.smb2 import COMPRESSION
from .events import Events
from .flows import Flow

__all__ = ["COMPRESSION_ALGORITHMS", "check_transform", "compression_problem"]

#: CompressionAlgorithm -> name, as the alert's ``smb.transform.algorithm`` shows it: the protocol
#: layer's names (MS-SMB2 2.2.3.1.3), with algorithm 0 spelt as the specification does.
COMPRESSION_ALGORITHMS = {**COMPRESSION, 0: "NONE"}

#: Largest OriginalCompressedSegmentSize accepted as possible (SMB2 messages
#: top out near 8 MiB: MaxReadSize/MaxWriteSize plus headers).
MAX_ORIGINAL_SIZE = 16 * 1024 * 1024
#: LZNT1 cannot shrink data by more than this factor (one 4 KiB chunk of a
#: repeated byte needs a chunk header, flag bytes and a few tokens).
LZNT1_MAX_RATIO = 1024

_u32 = struct.Struct("<I").unpack_from
_transform = struct.Struct("<IHHI").unpack_from
_chained = struct.Struct("<HHI").unpack_from


def check_transform(out: Events, flow: Flow, d: int, m: bytes, length: int) -> None:
    """A compression transform message (its head ``m``, ``length`` bytes in all) on ``flow``."""
    problem = compression_problem(m, length)
    if problem is None:
        return
    original, algorithm, cflags, offset = _transform(m, 4)
    out.flow_alert(
        flow,
        d,
        "smbghost-exploit",
        problem,
        smb={
            "version": 3,
            "command": "COMPRESSION_TRANSFORM",
            "mid": None,
            "status": None,
            "transform": {
                "original_size": original,
                "algorithm": COMPRESSION_ALGORITHMS.get(algorithm, f"0x{algorithm:04x}"),
                "flags": cflags,
                "offset": offset,
                "length": length,
            },
        },
    )


def compression_problem(msg: bytes, length: int) -> str | None:
    """Why a compression transform message (0xFC 'SMB') cannot be valid, or None.

    ``msg`` is the message (possibly only its head), ``length`` its full
    length.  Unchained (Flags 0): Offset must leave compressed data inside the
    message, Offset + OriginalCompressedSegmentSize must not wrap 32 bits, the
    original size must be possible for SMB and, for LZNT1, reachable from the
    compressed bytes.  Chained (Flags 1, SMB 3.1.1 chained payloads): every
    payload header's Length must stay inside the message and every
    OriginalPayloadSize be possible.  Legitimately compressed data passes.
    """
    if len(msg) < 16 or length < 16:
        return None  # too short to be a transform at all: malformed, not an exploit
    original, algorithm, flags, offset = _transform(msg, 4)
    if original > MAX_ORIGINAL_SIZE:
        return (
            f"OriginalCompressedSegmentSize 0x{original:x} is beyond any SMB message "
            f"(limit 0x{MAX_ORIGINAL_SIZE:x})"
        )
    if flags == 1:
        return _chained_problem(msg, length)
    # Flags 0 (or an undefined value, which the vulnerable 1903/1909 code ignored)
    note = f" (Flags 0x{flags:04x} undefined)" if flags else ""
    segment = length - 16
    if offset >= segment:
        return f"Offset 0x{offset:x} is not inside the {segment}-byte compressed segment{note}"
    if original + offset > 0xFFFFFFFF:
        return f"OriginalCompressedSegmentSize 0x{original:x} + Offset 0x{offset:x} wraps 32 bits{note}"
    compressed = segment - offset
    if algorithm == 1 and original > LZNT1_MAX_RATIO * compressed + 4096:
        return (
            f"OriginalCompressedSegmentSize {original} cannot come from {compressed} "
            f"bytes of LZNT1 data{note}"
        )
    return None


def _chained_problem(msg: bytes, length: int) -> str | None:
    pos = 8
    avail = min(len(msg), length)
    count = 0
    while pos + 8 <= avail and count < 1024:
        count += 1
        algorithm, _flags, plen = _chained(msg, pos)
        pos += 8
        if plen > length - pos:
            return f"chained payload Length {plen} runs past the {length}-byte message"
        if algorithm in (1, 2, 3):
            if plen < 4:
                return f"chained payload Length {plen} has no room for OriginalPayloadSize"
            if pos + 4 <= avail:
                osize = _u32(msg, pos)[0]
                if osize > MAX_ORIGINAL_SIZE:
                    return f"chained OriginalPayloadSize 0x{osize:x} is beyond any SMB message"
        pos += plen
    return None
