"""Test helper: locate the shared capture corpus and pull SMB messages out of it.

Not part of the package.  The corpus lives beside the repository
(``<repo>/../shared/corpus``, overridable with ``SMBSENTRY_CORPUS``) and is
never copied into it; tests that need it skip when it is absent.

Reassembly is deliberately simple (good enough for these small, clean
captures): per TCP flow direction, segments are ordered by sequence number,
duplicates/retransmissions dropped, overlaps trimmed and the rest
concatenated.  A hole in the sequence space (data the capture missed) ends a
piece; parsing resynchronises in the next piece on a NetBIOS header followed
by an SMB protocol id (wannacry.pcap has lost segments).  Each piece is split into NetBIOS
session messages: a type byte and a 24-bit big-endian length (on 445 the type
is always 0x00; on 139 the 17-bit length with its flag bit reads the same
way).  Only session messages (type 0x00) become :class:`Message`; session
request/response/keep-alive (0x81-0x85) are consumed and dropped.
"""

from __future__ import annotations

import bisect
import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from smbsentry.detect.capture import read_capture
from smbsentry.detect.packet import TCP, decode

SMB_PORTS = (445, 139)
SMB1 = b"\xffSMB"
SMB2 = b"\xfeSMB"


def corpus_dir() -> Path | None:
    """The corpus folder (holding ``pcaps/`` and ``MANIFEST.md``), or None if absent."""
    env = os.environ.get("SMBSENTRY_CORPUS")
    base = (
        Path(env)
        if env
        else Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    )
    if (base / "pcaps").is_dir():
        return base
    if base.is_dir() and base.name == "pcaps":
        return base.parent
    return None


def corpus_path(name: str) -> Path:
    """Path of one corpus capture; skips the calling test when it is not available."""
    base = corpus_dir()
    if base is None:
        pytest.skip(
            "capture corpus not found (expected ../shared/corpus beside the repository, "
            "or set SMBSENTRY_CORPUS)"
        )
    path = base / "pcaps" / name
    if not path.is_file():
        pytest.skip(f"corpus capture {name} not found in {base / 'pcaps'}")
    return path


def corpus_files() -> list[Path]:
    """Every capture in the corpus (empty when the corpus is absent)."""
    base = corpus_dir()
    if base is None:
        return []
    return sorted(p for p in (base / "pcaps").iterdir() if p.is_file())


@dataclass(frozen=True, slots=True)
class Message:
    frame: int
    """Frame number of the segment holding the message's first byte (its NetBIOS header)."""
    last_frame: int
    """Frame number of the segment holding the message's last byte."""
    src: str
    dst: str
    sport: int
    dport: int
    is_server_reply: bool
    data: bytes
    """The SMB message, without the 4-byte NetBIOS session header."""


_SMB_MAGICS = frozenset({b"\xffSMB", b"\xfeSMB", b"\xfdSMB", b"\xfcSMB"})
_RESYNC = re.compile(rb"\x00[\x00-\x01]..[\xfc-\xff]SMB", re.DOTALL)

# A flow direction: (src_addr, sport, dst_addr, dport)
_Key = tuple[bytes, int, bytes, int]


def _collect_segments(
    path: Path,
) -> dict[_Key, tuple[str, str, list[tuple[int, int, bytes]]]]:
    flows: dict[_Key, tuple[str, str, list[tuple[int, int, bytes]]]] = {}
    for frame, _ts, linktype, data, _wirelen in read_capture(path):
        pkt = decode(linktype, data)
        if not pkt or pkt.proto != TCP or not pkt.payload:
            continue
        if pkt.sport not in SMB_PORTS and pkt.dport not in SMB_PORTS:
            continue
        key = (pkt.src_addr, pkt.sport, pkt.dst_addr, pkt.dport)
        entry = flows.get(key)
        if entry is None:
            entry = flows[key] = (pkt.src, pkt.dst, [])
        entry[2].append((pkt.seq, frame, pkt.payload))
    return flows


def _pieces(
    segments: list[tuple[int, int, bytes]],
) -> list[tuple[bytes, list[int], list[int]]]:
    """Reassemble one direction into contiguous pieces: (bytes, piece offsets, frames)."""
    base = segments[0][0]
    rel = []
    for seq, frame, payload in segments:
        r = (seq - base) & 0xFFFFFFFF
        if r >= 0x80000000:
            r -= 1 << 32
        rel.append((r, frame, payload))
    rel.sort(key=lambda s: (s[0], s[1]))
    pieces = []
    parts: list[bytes] = []
    starts: list[int] = []
    frames: list[int] = []
    cursor = None
    length = 0
    for r, frame, payload in rel:
        if cursor is not None and r > cursor:  # hole: close the current piece
            pieces.append((b"".join(parts), starts, frames))
            parts, starts, frames, cursor, length = [], [], [], None, 0
        if cursor is None:
            cursor = r
        if r + len(payload) <= cursor:  # duplicate / retransmission
            continue
        payload = payload[cursor - r :]
        parts.append(payload)
        starts.append(length)
        frames.append(frame)
        length += len(payload)
        cursor += len(payload)
    if parts:
        pieces.append((b"".join(parts), starts, frames))
    return pieces


@lru_cache(maxsize=64)
def _all_messages(path: Path) -> tuple[Message, ...]:
    messages: list[tuple[int, int, Message]] = []
    for key, (src, dst, segments) in _collect_segments(path).items():
        _src_addr, sport, _dst_addr, dport = key
        is_reply = sport in SMB_PORTS
        for index, (stream, starts, frames) in enumerate(_pieces(segments)):
            pos = 0
            n = len(stream)
            # The first piece starts on a message boundary; one after a hole may not.
            synced = index == 0
            while pos + 4 <= n:
                mtype = stream[pos]
                length = struct.unpack_from(">I", stream, pos)[0] & 0xFFFFFF
                end = pos + 4 + length
                ok = end <= n and (
                    (
                        mtype == 0x00
                        and (synced or stream[pos + 4 : pos + 8] in _SMB_MAGICS)
                    )
                    or (mtype in (0x81, 0x82, 0x83, 0x84, 0x85) and length <= 0x1FFFF)
                )
                if not ok:
                    # lost framing (or a message cut by a hole): resynchronise on the
                    # next NetBIOS header followed by an SMB protocol id
                    match = _RESYNC.search(stream, pos + 1)
                    if match is None:
                        break
                    pos = match.start()
                    synced = False
                    continue
                synced = True
                if mtype == 0x00:
                    first = frames[bisect.bisect_right(starts, pos) - 1]
                    last = frames[bisect.bisect_right(starts, end - 1) - 1]
                    msg = Message(
                        first,
                        last,
                        src,
                        dst,
                        sport,
                        dport,
                        is_reply,
                        stream[pos + 4 : end],
                    )
                    messages.append((first, last, msg))
                pos = end
    messages.sort(key=lambda m: (m[0], m[1]))
    return tuple(m[2] for m in messages)


def smb_messages(name: str, direction: str = "both") -> list[Message]:
    """NetBIOS session messages of a corpus capture in frame order.

    ``direction``: ``"server"`` (replies, source port 445/139), ``"client"``
    (requests, destination port 445/139) or ``"both"``.
    """
    if direction not in ("server", "client", "both"):
        raise ValueError(
            f"direction must be 'server', 'client' or 'both', not {direction!r}"
        )
    msgs = _all_messages(corpus_path(name))
    if direction == "both":
        return list(msgs)
    want = direction == "server"
    return [m for m in msgs if m.is_server_reply == want]


def smb_command(data: bytes) -> int | None:
    """Command of an SMB1 (byte at offset 4) or SMB2 (LE uint16 at offset 12) message."""
    if data[:4] == SMB1 and len(data) >= 5:
        return data[4]
    if data[:4] == SMB2 and len(data) >= 14:
        return struct.unpack_from("<H", data, 12)[0]
    return None


def _filter(
    msgs: list[Message], first_bytes: bytes, command: int | None
) -> list[Message]:
    if command is not None and first_bytes not in (SMB1, SMB2):
        raise ValueError(
            "command filtering needs first_bytes SMB1 (b'\\xffSMB') or SMB2 (b'\\xfeSMB')"
        )
    out = []
    for m in msgs:
        if not m.data.startswith(first_bytes):
            continue
        if command is not None and smb_command(m.data) != command:
            continue
        out.append(m)
    return out


def server_replies(
    name: str, first_bytes: bytes = SMB2, command: int | None = None
) -> list[Message]:
    """Server replies starting with ``first_bytes``, optionally of one command.

    For SMB2 compounds only the first header of each message is looked at.
    """
    return _filter(smb_messages(name, "server"), first_bytes, command)


def client_requests(
    name: str, first_bytes: bytes = SMB2, command: int | None = None
) -> list[Message]:
    """Client requests starting with ``first_bytes``, optionally of one command."""
    return _filter(smb_messages(name, "client"), first_bytes, command)
