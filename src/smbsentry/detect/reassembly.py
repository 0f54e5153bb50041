"""TCP stream reassembly and NetBIOS session framing, both bounded.

:class:`TcpStream` orders one direction of a TCP connection by sequence
number.  :meth:`TcpStream.add` returns the bytes that became contiguous (in
order), with ``None`` standing for bytes the capture lost (a *gap*):

* in-order data is passed through without copying;
* retransmissions are dropped, overlaps trimmed (bytes already delivered
  win: the first copy of a byte is the one analysed);
* data beyond a hole waits in a bounded out-of-order store; the hole is
  declared lost (a gap) when the store exceeds its byte or segment cap, when
  the other side has acknowledged data beyond the hole (the receiver got
  bytes the capture did not: "ACKed unseen segment") and the hole is either
  wide or has persisted a little (captures do show an ACK just before the
  GRO-merged data it acknowledges), or when the flow ends;
* sequence numbers wrap modulo 2**32.

:class:`Framer` cuts the contiguous bytes of one direction into NetBIOS
session messages (4-byte header: type, 24-bit length; on port 139 the 17-bit
length with its flag bit reads the same way).  Messages longer than
``head_max`` are not buffered whole: their first ``head_max`` bytes are kept
and the rest is skipped as it streams past, so memory per direction stays
below ``head_max`` plus one segment.  After a gap, or when a header is not
plausible, it resynchronises on the next plausible NetBIOS header followed by
an SMB protocol id (0xFF/0xFE/0xFD/0xFC 'SMB').

Neither class raises on any input; both count what they dropped.
"""

from __future__ import annotations

import re

try:
    import cython
except ImportError:  # Cython is only needed to compile this module (see setup.py)
    from . import _nocython as cython

__all__ = [
    "DEFAULT_HEAD_MAX",
    "DEFAULT_MAX_OOO_BYTES",
    "DEFAULT_MAX_OOO_SEGMENTS",
    "MAX_MESSAGE",
    "Framer",
    "TcpStream",
]

MASK = 0xFFFFFFFF
HALF = 0x80000000
#: Out-of-order bytes one direction may hold before its first hole is declared lost.
DEFAULT_MAX_OOO_BYTES = 256 * 1024
#: Out-of-order segments one direction may hold.
DEFAULT_MAX_OOO_SEGMENTS = 256
#: A segment further than this beyond the expected sequence number is not
#: waited for: the stream jumps there (lost framing, port reuse, garbage).
MAX_WINDOW = 8 * 1024 * 1024
#: A hole the receiver has acknowledged is declared lost at once when it is at least
#: this long (wider than any reordering), else once it has persisted ...
BIG_HOLE = 64 * 1024
#: ... this many seconds of capture time ...
REORDER_WAIT = 0.2
#: ... or this many further segments / acknowledgements of the flow.
REORDER_EVENTS = 4
#: Bytes of a message kept for analysis (the rest of a longer one is skipped).
DEFAULT_HEAD_MAX = 16 * 1024
#: Largest NetBIOS message length accepted (SMB2 allows 8 MiB + headers).
MAX_MESSAGE = 16 * 1024 * 1024

_EMPTY: tuple = ()


def _signed(x: int) -> int:
    """A 32-bit sequence difference as a signed number."""
    return (x ^ HALF) - HALF


class TcpStream:
    """One direction of a TCP connection (see the module docstring)."""

    __slots__ = (
        "dup_bytes",
        "gap_bytes",
        "gaps",
        "max_ooo_bytes",
        "max_ooo_segments",
        "nbytes",
        "next_seq",
        "ooo",
        "ooo_bytes",
        "ooo_events",
        "ooo_since",
        "overlap_bytes",
        "peer_ack",
        "pkts",
    )

    def __init__(
        self,
        max_ooo_bytes: int = DEFAULT_MAX_OOO_BYTES,
        max_ooo_segments: int = DEFAULT_MAX_OOO_SEGMENTS,
    ) -> None:
        #: Sequence number of the next byte expected, -1 until the first SYN or data.
        self.next_seq: int = -1
        #: Data beyond a hole: absolute sequence number -> bytes.
        self.ooo: dict[int, bytes] = {}
        self.ooo_bytes = 0
        self.max_ooo_bytes = max_ooo_bytes
        self.max_ooo_segments = max_ooo_segments
        self.gaps = 0
        self.gap_bytes = 0
        self.dup_bytes = 0
        self.overlap_bytes = 0
        #: The latest acknowledgement number the other side sent (bytes it has received), -1 before.
        self.peer_ack: int = -1
        #: Packets and payload bytes seen in this direction (kept by the engine).
        self.pkts = 0
        self.nbytes = 0
        self.ooo_since = 0.0  # capture time the out-of-order store became non-empty
        self.ooo_events = 0  # segments and acknowledgements seen since

    def syn(self, seq: int) -> None:
        """A SYN (or SYN-ACK) with initial sequence number ``seq``."""
        if self.next_seq < 0:
            self.next_seq = (seq + 1) & MASK

    def add(self, seq: int, data: bytes, missing: int = 0, now: float = 0.0) -> list | tuple:
        """Add a segment; return the chunks now in order (``None`` = a gap).

        ``missing``: bytes the segment carried on the wire beyond ``data``
        (cut by the capture's snap length); they are delivered as a gap.
        ``now``: the segment's capture time.
        """
        seq &= MASK
        n = len(data)
        nxt = self.next_seq
        if nxt < 0:  # first data of a stream picked up mid-way
            self.next_seq = (seq + n) & MASK
            if missing:
                self.next_seq = (self.next_seq + missing) & MASK
                self.gaps += 1
                self.gap_bytes += missing
                return [data, None]
            return [data]
        off = _signed((seq - nxt) & MASK)
        if off < 0:  # starts before the expected byte: retransmission / overlap
            back = -off
            if back >= n + missing:
                self.dup_bytes += n
                return _EMPTY
            if back >= n:  # only the cut-off part is new
                self.dup_bytes += n
                data, n, missing = b"", 0, missing - (back - n)
            else:
                self.overlap_bytes += back
                data = data[back:]
                n -= back
            off = 0
        if off == 0:
            out: list = [data] if n else []
            nxt = (nxt + n) & MASK
            if missing:
                nxt = (nxt + missing) & MASK
                self.gaps += 1
                self.gap_bytes += missing
                out.append(None)
            self.next_seq = nxt
            if self.ooo:
                self._drain(out)
            return out
        # beyond a hole
        if off > MAX_WINDOW:
            return self._jump(seq, data, missing)
        if not self.ooo:
            self.ooo_since = now
            self.ooo_events = 0
        else:
            self.ooo_events += 1
        if n:
            old = self.ooo.get(seq)
            if old is None or len(old) < n:
                self.ooo[seq] = data
                self.ooo_bytes += n - (len(old) if old is not None else 0)
            else:
                self.dup_bytes += n
        if self.ooo_bytes > self.max_ooo_bytes or len(self.ooo) > self.max_ooo_segments:
            out = self.skip_gap()
            while self.ooo and (self.ooo_bytes > self.max_ooo_bytes or len(self.ooo) > self.max_ooo_segments):
                out += self.skip_gap()  # later holes too, until the store is within its caps
            return out
        if self.ooo and self.peer_ack >= 0 and self._acked_hole_lost(now):
            return self.skip_gap()
        return _EMPTY

    def _acked_hole_lost(self, now: float) -> bool:
        """Has the receiver acknowledged past the first hole, and is it wide or old?"""
        nxt = self.next_seq
        assert nxt >= 0 and self.peer_ack >= 0
        first = self._first_held(nxt)
        if _signed((self.peer_ack - first) & MASK) < 0:
            return False  # the acknowledged part ends inside the hole
        return (
            (first - nxt) & MASK >= BIG_HOLE
            or self.ooo_events >= REORDER_EVENTS
            or now - self.ooo_since >= REORDER_WAIT
        )

    def _first_held(self, nxt: int) -> int:
        """The held (out-of-order) segment that starts closest after ``nxt``, modulo 2**32."""
        start: cython.longlong = nxt
        best: cython.longlong = -1
        best_off: cython.longlong = 1 << 33
        off: cython.longlong
        s: cython.longlong
        for s in self.ooo:
            off = (s - start) & 0xFFFFFFFF  # MASK
            if off < best_off:
                best, best_off = s, off
        return best

    def _jump(self, seq: int, data: bytes, missing: int) -> list:
        """Give up on the bytes between here and a far-away segment."""
        out: list = [None]
        self.gaps += 1
        self.ooo.clear()
        self.ooo_bytes = 0
        if data:
            out.append(data)
        self.next_seq = (seq + len(data) + missing) & MASK
        if missing:
            out.append(None)
        return out

    def _drain(self, out: list) -> None:
        """Deliver the out-of-order segments that have become contiguous."""
        nxt = self.next_seq
        assert nxt >= 0
        ooo = self.ooo
        adv = 0
        for rel, s in sorted((_signed((s - nxt) & MASK), s) for s in ooo):
            r = rel - adv
            if r > 0:
                break
            d = ooo.pop(s)
            self.ooo_bytes -= len(d)
            if -r >= len(d):
                self.dup_bytes += len(d)
                continue
            if r:
                self.overlap_bytes += -r
                d = d[-r:]
            out.append(d)
            adv += len(d)
        self.next_seq = (nxt + adv) & MASK

    def skip_gap(self) -> list:
        """Declare the first hole lost; return ``[None, chunks...]`` (empty if no hole)."""
        if not self.ooo or self.next_seq < 0:
            return []
        nxt = self.next_seq
        first = self._first_held(nxt)
        self.gaps += 1
        self.gap_bytes += (first - nxt) & MASK
        self.next_seq = first
        out: list = [None]
        self._drain(out)
        return out

    def ack_seen(self, ack: int, now: float = 0.0) -> list:
        """The other side acknowledged ``ack``: a hole it covers may have been lost by the capture."""
        self.peer_ack = ack
        if not self.ooo or self.next_seq < 0:
            return []
        self.ooo_events += 1
        if self._acked_hole_lost(now):
            return self.skip_gap()
        return []

    def flush(self) -> list:
        """End of the stream: deliver whatever waits beyond holes (with gap markers)."""
        out: list = []
        while self.ooo:
            out.extend(self.skip_gap())
        return out


# A NetBIOS session message header followed by an SMB protocol id.
_RESYNC = re.compile(rb"\x00[\x00-\x0f]..[\xfc-\xff]SMB", re.DOTALL)
# Smallest plausible NetBIOS length per protocol id byte.
_MIN_LEN = {0xFF: 33, 0xFE: 64, 0xFD: 52, 0xFC: 16}
_NB_CONTROL = frozenset({0x81, 0x82, 0x83, 0x84, 0x85})


class Framer:
    """NetBIOS session framing of one direction (see the module docstring).

    :meth:`feed` returns a list of ``(head, length)`` for every message
    completed by the data: ``head`` is the SMB message (without the 4-byte
    NetBIOS header), cut to ``head_max`` bytes; ``length`` is its full length.
    """

    __slots__ = (
        "buf",
        "control",
        "desyncs",
        "head_max",
        "max_message",
        "pending",
        "skip",
        "skipped_bytes",
        "synced",
    )

    def __init__(
        self,
        synced: bool = True,
        head_max: int = DEFAULT_HEAD_MAX,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.buf = bytearray()
        self.synced = synced
        self.head_max = head_max
        self.max_message = max_message
        self.skip = 0  # bytes of a long message still to pass over
        self.pending: tuple[bytes, int] | None = None  # its head, until it completes
        #: Times the framing was lost (implausible header) and searched for again.
        self.desyncs = 0
        #: Bytes passed over while searching for a header.
        self.skipped_bytes = 0
        #: NetBIOS session control messages (request, responses, keep-alive).
        self.control = 0

    def gap(self) -> None:
        """Bytes were lost: drop the message in progress and resynchronise."""
        if self.buf or self.pending is not None or self.synced:
            self.skipped_bytes += len(self.buf)
            self.buf = bytearray()
            self.skip = 0
            self.pending = None
            self.synced = False

    def feed(self, data: bytes) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        n: cython.Py_ssize_t
        pos: cython.Py_ssize_t
        start: cython.Py_ssize_t
        length: cython.Py_ssize_t
        end: cython.Py_ssize_t
        head_max: cython.Py_ssize_t
        if self.skip:
            n = len(data)
            if n < self.skip:
                self.skip -= n
                return out
            data = data[self.skip :]
            self.skip = 0
            assert self.pending is not None
            out.append(self.pending)
            self.pending = None
            if not data:
                return out
        buf = self.buf
        if buf:
            buf += data
            b: bytes | bytearray = buf
        else:
            b = data
        n = len(b)
        pos = 0
        head_max = self.head_max
        while True:
            if not self.synced:
                m = _RESYNC.search(b, pos)
                while m is not None:
                    start = m.start()
                    length = (b[start + 1] << 16) | (b[start + 2] << 8) | b[start + 3]
                    if _MIN_LEN[b[start + 4]] <= length <= self.max_message:
                        break
                    m = _RESYNC.search(b, start + 1)
                if m is None:
                    keep = max(pos, n - 7)
                    self.skipped_bytes += keep - pos
                    pos = keep
                    break
                self.skipped_bytes += m.start() - pos
                pos = m.start()
                self.synced = True
            if n - pos < 4:
                break
            t = b[pos]
            length = (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3]
            if t:
                if t in _NB_CONTROL and length <= 0x1FFFF:
                    if n - pos - 4 < length:
                        break
                    self.control += 1
                    pos += 4 + length
                    continue
                self._lost()
                pos += 1
                continue
            if length < 4 or length > self.max_message:
                if length == 0:  # an empty session message: nothing to analyse
                    self.control += 1
                    pos += 4
                    continue
                self._lost()
                pos += 1
                continue
            if n - pos >= 8:
                if b[pos + 5 : pos + 8] != b"SMB" or b[pos + 4] < 0xFC:
                    self._lost()
                    pos += 1
                    continue
            else:
                break  # wait for the protocol id
            end = pos + 4 + length
            if end <= n:
                out.append((bytes(b[pos + 4 : end]), length))
                pos = end
                continue
            if length > head_max and n - pos >= 4 + head_max:
                self.pending = (bytes(b[pos + 4 : pos + 4 + head_max]), length)
                self.skip = end - n
                pos = n
            break
        if b is buf:
            if pos:
                del buf[:pos]
        elif pos < n:
            self.buf = bytearray(b[pos:]) if pos else bytearray(b)
        return out

    def _lost(self) -> None:
        self.desyncs += 1
        self.synced = False
