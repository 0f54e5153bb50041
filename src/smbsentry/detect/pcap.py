"""pcap and pcapng parsed sans-I/O: :class:`CaptureParser` turns bytes into records.

Standard library only (``struct``).  Feed the parser bytes, take the records
that are complete (:meth:`CaptureParser.records`, or a list at a time with
:meth:`CaptureParser.record_batch`, the detector's fast path), and call
:meth:`CaptureParser.close` at end of input.  Reading files, gzip and chunk
sizes are :mod:`smbsentry.detect.capture`'s.

Every record is a plain tuple, in this order::

    (frame, timestamp, linktype, data, wirelen)

``frame`` counts from 1 across the whole file (matching Wireshark's frame
numbers), ``timestamp`` is float seconds since the epoch (0.0 for pcapng
Simple Packet Blocks, which carry none), ``linktype`` is the LINKTYPE_* value
of the record's interface, ``data`` the captured bytes and ``wirelen`` the
original length on the wire.

All lengths are bounds-checked.  Damage (a truncated final record, a corrupt
block, an absurd length) raises :class:`CaptureError` at the point of damage,
after every good record before it has been produced.  Input that is not a
capture at all raises ``CaptureError("not a pcap or pcapng file")`` before
any record.
"""

from __future__ import annotations

try:
    import cython
except ImportError:  # Cython is only needed to compile this module (see setup.py)
    from . import _nocython as cython

import struct
from collections.abc import Iterator

__all__ = ["MAX_BLOCK_LEN", "MAX_CAPLEN", "NOT_A_CAPTURE", "CaptureError", "CaptureParser", "Record", "damage"]

#: Largest captured length accepted for one packet (256 KiB, libpcap's maximum snaplen).
MAX_CAPLEN = 256 * 1024
#: Largest pcapng block accepted (16 MiB).
MAX_BLOCK_LEN = 16 * 1024 * 1024

#: ``(frame, timestamp, linktype, data, wirelen)``
Record = tuple[int, float, int, bytes, int]

_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
# pcap magic as it appears on disk -> (struct byte order, timestamp fraction divisor)
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
_PCAP_MODIFIED = (
    b"\x34\xcd\xb2\xa1",
    b"\xa1\xb2\xcd\x34",
)  # Kuznetzov's patched libpcap

#: pcapng byte order -> block header (type, length) and 32-bit readers
_BLOCK_HEADER = {bo: struct.Struct(bo + "II").unpack_from for bo in "<>"}
_U32 = {bo: struct.Struct(bo + "I").unpack_from for bo in "<>"}

_SHB = 0x0A0D0D0A
_IDB = 1
_OPB = 2
_SPB = 3
_EPB = 6

NOT_A_CAPTURE = "not a pcap or pcapng file"
# From byte 12 of an Ethernet frame: ethertype, IPv4 version/IHL, total length,
# fragment field, protocol, the last two bytes of each address, the TCP ports
# and flags (what a flow-sharded batch needs to leave a packet out).
_shard_peek = struct.Struct("!HBxH2xHxB4xBB2xBBHH9xB").unpack_from


class CaptureError(Exception):
    """A capture file is unreadable or damaged.

    The message is one line naming the byte offset (in the decompressed
    stream for gzip input); the offset is also available as :attr:`offset`.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


def damage(what: str, offset: int) -> CaptureError:
    return CaptureError(f"{what} at byte offset {offset}", offset)


def _other_shard(buf: bytes, start: cython.Py_ssize_t, caplen: cython.longlong, shard: cython.int,
                 shards: cython.int) -> cython.bint:
    """Is the Ethernet frame at ``buf[start:]`` an IPv4 TCP packet to or from 445/139 that another
    shard analyses (the same flow hash as :class:`smbsentry.detect.engine.Engine`)?  Shard 0
    keeps the SYNs to those ports (the worm-scan detector sees all of them)."""
    et: cython.uint
    vihl: cython.uint
    tot: cython.uint
    frag: cython.uint
    proto: cython.uint
    s2: cython.uint
    s3: cython.uint
    d2: cython.uint
    d3: cython.uint
    sport: cython.uint
    dport: cython.uint
    flags: cython.uint
    h: cython.ulonglong
    if cython.compiled:  # the fields _shard_peek unpacks, read in C
        q: cython.p_uchar = buf
        q += start
        et = (q[12] << 8) | q[13]
        vihl = q[14]
        tot = (q[16] << 8) | q[17]
        frag = (q[20] << 8) | q[21]
        proto = q[23]
        s2 = q[28]
        s3 = q[29]
        d2 = q[32]
        d3 = q[33]
        sport = (q[34] << 8) | q[35]
        dport = (q[36] << 8) | q[37]
        flags = q[47]
    else:
        et, vihl, tot, frag, proto, s2, s3, d2, d3, sport, dport, flags = _shard_peek(buf, start + 12)
    if not (
        et == 0x0800
        and vihl == 0x45
        and proto == 6
        and not frag & 0x1FFF
        and 40 <= tot
        and tot + 14 <= caplen
        and (sport == 445 or sport == 139 or dport == 445 or dport == 139)
    ):
        return False
    h = sport + dport  # 64 bits in C: the product below needs 64 (and fits)
    h = ((h * 40503 + (s3 + d3) * 313 + s2 + d2) * 2654435761) >> 20
    return h % shards != shard and (shard or flags & 0x12 != 0x02 or (dport != 445 and dport != 139))


class _Interface:
    __slots__ = ("divisor", "linktype", "snaplen", "tsoffset")

    def __init__(
        self, linktype: int, snaplen: int, divisor: float, tsoffset: int
    ) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.divisor = divisor
        self.tsoffset = tsoffset


class CaptureParser:
    """Sans-I/O pcap/pcapng parser.

    Usage::

        parser = CaptureParser()
        for chunk in chunks:
            parser.feed(chunk)
            for record in parser.records():
                ...
        parser.close()   # raises CaptureError if the input ended mid-record

    :meth:`feed` raises ``CaptureError("not a pcap or pcapng file")`` as soon
    as the first four bytes are known not to be a capture.  :meth:`records`
    yields the complete records buffered so far and raises at the first
    damaged one (and again on every later call: errors are sticky).
    """

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0  # parse position inside _buf
        self._base = 0  # absolute stream offset of _buf[0]
        self._frame = 0
        self._error: CaptureError | None = None
        self._closed = False
        #: Records left out by a sharded :meth:`record_batch`, and their wire bytes.
        self.dropped_packets = 0
        self.dropped_bytes = 0
        #: ``"pcap"`` or ``"pcapng"`` once known, else ``None``.
        self.format: str | None = None
        #: pcap: the file's link type.  pcapng: the link type of the most recent interface.
        self.linktype: int | None = None
        #: pcap: snapshot length from the file header.
        self.snaplen: int | None = None
        self.nanosecond = False
        # pcap state
        self._pcap_hdr: struct.Struct | None = None
        self._pcap_div = 1e6
        self._header_done = False
        # pcapng state
        self._bo = "<"
        self._ifaces: list[_Interface] = []

    # -- input -------------------------------------------------------------
    @property
    def offset(self) -> int:
        """Absolute stream offset of the next unparsed byte."""
        return self._base + self._pos

    @property
    def frames(self) -> int:
        """Number of records produced so far."""
        return self._frame

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("feed() after close()")
        if not data:
            return
        pos = self._pos
        if pos:
            self._base += pos
            self._buf = self._buf[pos:] + bytes(data)
            self._pos = 0
        elif self._buf:
            self._buf += bytes(data)
        else:
            self._buf = bytes(data)
        if self.format is None:
            self._sniff(final=False)
        if self.format == "pcap" and not self._header_done and len(self._buf) >= 24:
            bo = self._pcap_hdr.format[0]  # type: ignore[union-attr]
            _major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
                bo + "HHiIII", self._buf, 4
            )
            self.snaplen = snaplen
            self.linktype = network & 0x03FFFFFF  # high bits: FCS length information
            self._pos = 24
            self._header_done = True

    def wanted(self) -> int:
        """Bytes still missing from the record or block that starts the buffer (0: unknown or none).

        Readers read at least this much next, so that a large block is
        joined in one step, not copied again with every small chunk.
        """
        buf = self._buf
        avail = len(buf) - self._pos
        if self.format == "pcap" and self._header_done and avail >= 16:
            need = 16 + self._pcap_hdr.unpack_from(buf, self._pos)[2]  # type: ignore[union-attr]
        elif self.format == "pcapng" and avail >= 8 and buf[self._pos : self._pos + 4] != b"\x0a\x0d\x0d\x0a":
            need = struct.unpack_from(self._bo + "I", buf, self._pos + 4)[0]  # (a section header sets its own order)
        else:
            return 0
        return need - avail if avail < need <= MAX_BLOCK_LEN else 0

    @property
    def bytes_fed(self) -> int:
        """Total number of bytes fed so far."""
        return self._base + len(self._buf)

    def _sniff(self, final: bool) -> None:
        buf = self._buf
        if len(buf) < 4:
            if final:
                raise CaptureError(NOT_A_CAPTURE, 0)
            return
        magic = buf[:4]
        if magic == _PCAPNG_SHB:
            self.format = "pcapng"
        elif magic in _PCAP_MAGICS:
            self.format = "pcap"
            bo, self._pcap_div = _PCAP_MAGICS[magic]
            self.nanosecond = self._pcap_div == 1e9
            self._pcap_hdr = struct.Struct(bo + "IIII")
        elif magic in _PCAP_MODIFIED:
            raise CaptureError(
                "unsupported modified-pcap (Kuznetzov) format at byte offset 0", 0
            )
        else:
            raise CaptureError(NOT_A_CAPTURE, 0)

    # -- output ------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        """Yield every complete record buffered so far."""
        if self._error is not None:
            raise self._error
        if self.format is None:
            return iter(())
        if self.format == "pcap":
            return self._guard(self._pcap_records())
        return self._guard(self._pcapng_records())

    def record_batch(self, shard: int = 0, shards: int = 1) -> list[Record]:
        """Every complete record buffered so far, as a list (the fast form of :meth:`records`).

        On damage, the good records before it are returned first; the next
        call raises (errors are sticky, as with :meth:`records`).

        ``shard``/``shards`` (pcap only): leave out the Ethernet/IPv4/TCP
        packets to or from port 445/139 whose flow belongs to another shard
        (the same hash as :class:`smbsentry.detect.engine.Engine` uses), but
        keep SYNs to those ports for shard 0; they are counted in
        :attr:`dropped_packets` / :attr:`dropped_bytes`.  Frame numbers are
        unaffected.
        """
        if self._error is not None:
            raise self._error
        if self.format == "pcap":
            return self._pcap_batch(shard, shards)
        out: list[Record] = []
        if self.format is None:
            return out
        try:
            out.extend(self._pcapng_records())
        except CaptureError as exc:
            self._error = exc
            if not out:
                raise
        return out

    def _pcap_batch(self, shard: int = 0, shards: int = 1) -> list[Record]:
        """The records of a pcap (see :meth:`record_batch`); sharding needs Ethernet frames."""
        out: list[Record] = []
        if not self._header_done:
            return out
        lt = self.linktype
        sharded: cython.bint = shards > 1 and lt == 1
        buf: bytes = self._buf
        pos: cython.Py_ssize_t = self._pos
        n: cython.Py_ssize_t = len(buf)
        unpack = self._pcap_hdr.unpack_from  # type: ignore[union-attr]
        div: cython.double = self._pcap_div
        frame: cython.longlong = self._frame
        append = out.append
        little = self._pcap_hdr.format[0] == "<"  # type: ignore[union-attr]
        dropped: cython.longlong = 0
        dropped_bytes: cython.longlong = 0
        start: cython.Py_ssize_t
        end: cython.Py_ssize_t
        caplen: cython.longlong  # 64 bits also where Py_ssize_t has 32: a 4-byte length never goes negative
        wirelen: cython.longlong
        sec: cython.uint
        frac: cython.uint
        q: cython.p_uchar
        my_shard: cython.int = shard
        nshards: cython.int = shards
        while pos + 16 <= n:
            if cython.compiled and little:  # the record header read in C
                q = buf
                q += pos
                sec = q[0] | (q[1] << 8) | (q[2] << 16) | (cython.cast(cython.uint, q[3]) << 24)
                frac = q[4] | (q[5] << 8) | (q[6] << 16) | (cython.cast(cython.uint, q[7]) << 24)
                caplen = q[8] | (q[9] << 8) | (q[10] << 16) | (cython.cast(cython.longlong, q[11]) << 24)
                wirelen = q[12] | (q[13] << 8) | (q[14] << 16) | (cython.cast(cython.longlong, q[15]) << 24)
            else:
                sec, frac, caplen, wirelen = unpack(buf, pos)
            if caplen > MAX_CAPLEN:
                self._error = damage(
                    f"absurd captured length {caplen} (frame {frame + 1}, limit {MAX_CAPLEN})",
                    self._base + pos,
                )
                break
            start = pos + 16
            end = start + caplen
            if end > n:
                break
            pos = end
            frame += 1
            if sharded and caplen == wirelen and caplen >= 54 and _other_shard(buf, start, caplen, my_shard, nshards):
                dropped += 1
                dropped_bytes += wirelen
                continue
            append((frame, sec + frac / div, lt, buf[start:end], wirelen))  # type: ignore[arg-type]
        self._pos = pos
        self._frame = frame
        self.dropped_packets += dropped
        self.dropped_bytes += dropped_bytes
        if self._error is not None and not out:
            raise self._error
        return out

    def _guard(self, gen: Iterator[Record]) -> Iterator[Record]:
        try:
            yield from gen
        except CaptureError as exc:
            self._error = exc
            raise

    def close(self) -> None:
        """Signal end of input; raise :class:`CaptureError` if it ended mid-record.

        Call after the last :meth:`records` iteration has been exhausted.
        """
        self._closed = True
        if self._error is not None:
            raise self._error
        if self.format is None:
            self._sniff(final=True)
        remaining = len(self._buf) - self._pos
        if self.format == "pcap" and not self._header_done:
            self._error = damage(
                f"truncated pcap file header ({len(self._buf)} of 24 bytes)", 0
            )
        elif remaining:
            self._error = self._truncation(remaining)
        if self._error is not None:
            raise self._error

    def _truncation(self, remaining: int) -> CaptureError:
        buf, pos, off = self._buf, self._pos, self.offset
        if self.format == "pcap":
            if remaining < 16:
                return damage(
                    f"truncated record header ({remaining} of 16 bytes)", off
                )
            caplen = self._pcap_hdr.unpack_from(buf, pos)[2]  # type: ignore[union-attr]
            return damage(
                f"truncated record (frame {self._frame + 1}: {caplen} captured bytes, "
                f"{remaining - 16} present)",
                off,
            )
        if remaining < 8 or (remaining < 12 and buf[pos : pos + 4] == _PCAPNG_SHB):
            return damage(f"truncated pcapng block header ({remaining} bytes)", off)
        blen = struct.unpack_from(self._bo + "I", buf, pos + 4)[0]
        return damage(
            f"truncated pcapng block ({blen} bytes, {remaining} present)", off
        )

    # -- pcap --------------------------------------------------------------
    def _pcap_records(self) -> Iterator[Record]:
        if not self._header_done:
            return
        buf = self._buf
        pos = self._pos
        n = len(buf)
        unpack = self._pcap_hdr.unpack_from  # type: ignore[union-attr]
        div = self._pcap_div
        lt = self.linktype
        frame = self._frame
        try:
            while pos + 16 <= n:
                sec, frac, caplen, wirelen = unpack(buf, pos)
                if caplen > MAX_CAPLEN:
                    raise damage(
                        f"absurd captured length {caplen} (frame {frame + 1}, limit {MAX_CAPLEN})",
                        self._base + pos,
                    )
                start = pos + 16
                end = start + caplen
                if end > n:
                    break
                pos = end
                frame += 1
                yield (frame, sec + frac / div, lt, buf[start:end], wirelen)  # type: ignore[misc]
        finally:
            self._pos = pos
            self._frame = frame

    # -- pcapng ------------------------------------------------------------
    def _pcapng_records(self) -> Iterator[Record]:
        buf = self._buf
        pos = self._pos
        n = len(buf)
        base = self._base
        frame = self._frame
        epb = struct.Struct(self._bo + "IIIII").unpack_from
        hdr = _BLOCK_HEADER[self._bo]
        u32 = _U32[self._bo]
        ifaces = self._ifaces
        try:
            while pos + 8 <= n:
                btype, blen = hdr(buf, pos)
                end = pos + blen
                if (
                    btype == _SHB
                    or blen < 12
                    or blen & 3
                    or blen > MAX_BLOCK_LEN
                    or end > n
                    or u32(buf, end - 4)[0] != blen
                ):  # a section header, damage or a block not all there: _block_bounds says which
                    btype, end = self._block_bounds(buf, pos, n)
                    if end < 0:
                        break  # the rest of the block is still to come
                    hdr = _BLOCK_HEADER[self._bo]
                    u32 = _U32[self._bo]
                if btype == _EPB or btype == _OPB:
                    # The Obsolete Packet Block (16-bit interface id) is decoded, not
                    # skipped, so frame numbers stay aligned with Wireshark's.
                    what = "enhanced packet block" if btype == _EPB else "packet block"
                    blen = end - pos
                    if blen < 32:
                        raise damage(f"corrupt {what} (length {blen})", base + pos)
                    iface, ts_hi, ts_lo, caplen, wirelen = epb(buf, pos + 8)
                    if btype == _OPB:
                        iface = struct.unpack_from(self._bo + "H", buf, pos + 8)[0]
                    start = pos + 28
                    if caplen > MAX_CAPLEN or start + caplen > end - 4:
                        raise damage(
                            f"corrupt {what} (captured length {caplen}, block length {blen})",
                            base + pos,
                        )
                    if iface >= len(ifaces):
                        raise damage(
                            f"packet block for undefined interface {iface}", base + pos
                        )
                    itf = ifaces[iface]
                    pos = end
                    frame += 1
                    yield (
                        frame,
                        ((ts_hi << 32) | ts_lo) / itf.divisor + itf.tsoffset,
                        itf.linktype,
                        buf[start : start + caplen],
                        wirelen,
                    )
                    continue
                if btype == _SPB:
                    linktype, start, caplen, wirelen = self._simple_packet(buf, pos, end)
                    pos = end
                    frame += 1
                    yield (frame, 0.0, linktype, buf[start : start + caplen], wirelen)
                    continue
                if btype == _SHB:
                    self._section_header(buf, pos, end)
                    epb = struct.Struct(self._bo + "IIIII").unpack_from
                    ifaces = self._ifaces
                elif btype == _IDB:
                    if end - pos < 20:
                        raise damage(
                            f"corrupt interface description block (length {end - pos})",
                            base + pos,
                        )
                    ifaces.append(self._parse_idb(buf, pos, end, self._bo))
                    self.linktype = ifaces[-1].linktype
                # any other block type (NRB, ISB, DSB, custom, ...) is skipped
                pos = end
        finally:
            self._pos = pos
            self._frame = frame

    def _block_bounds(self, buf: bytes, pos: int, n: int) -> tuple[int, int]:
        """The type and end of the pcapng block at ``pos`` (end -1: not all there yet), lengths checked.

        A Section Header Block sets the byte order of its section first (its
        type, 0x0A0D0D0A, reads the same in both orders).
        """
        base = self._base
        btype, blen = _BLOCK_HEADER[self._bo](buf, pos)
        if btype == _SHB:
            if pos + 12 > n:
                return btype, -1
            bom = buf[pos + 8 : pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                self._bo = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                self._bo = ">"
            else:
                raise damage("corrupt pcapng section header (bad byte-order magic)", base + pos)
            blen = _BLOCK_HEADER[self._bo](buf, pos)[1]
        if blen < 12 or blen & 3 or blen > MAX_BLOCK_LEN:
            raise damage(f"corrupt pcapng block (type 0x{btype:x}, length {blen})", base + pos)
        end = pos + blen
        if end > n:
            return btype, -1
        trailer = _U32[self._bo](buf, end - 4)[0]
        if trailer != blen:
            raise damage(
                f"corrupt pcapng block (type 0x{btype:x}: trailing length {trailer} != {blen})",
                base + pos,
            )
        return btype, end

    def _section_header(self, buf: bytes, pos: int, end: int) -> None:
        """A complete Section Header Block: a new section, with no interfaces yet."""
        if end - pos < 28:
            raise damage(f"corrupt pcapng section header (length {end - pos})", self._base + pos)
        major = struct.unpack_from(self._bo + "H", buf, pos + 12)[0]
        if major != 1:
            raise damage(f"unsupported pcapng major version {major}", self._base + pos)
        self._ifaces = []

    def _simple_packet(self, buf: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
        """A Simple Packet Block's link type, data start, captured and original length."""
        blen = end - pos
        if blen < 16:
            raise damage(f"corrupt simple packet block (length {blen})", self._base + pos)
        if not self._ifaces:
            raise damage("simple packet block without an interface", self._base + pos)
        itf = self._ifaces[0]
        wirelen = struct.unpack_from(self._bo + "I", buf, pos + 8)[0]
        caplen = min(wirelen, blen - 16, MAX_CAPLEN)
        if itf.snaplen:
            caplen = min(caplen, itf.snaplen)
        return itf.linktype, pos + 12, caplen, wirelen

    def _parse_idb(self, buf: bytes, pos: int, end: int, bo: str) -> _Interface:
        linktype, _reserved, snaplen = struct.unpack_from(bo + "HHI", buf, pos + 8)
        divisor: float = 1e6
        tsoffset = 0
        opt = pos + 16
        limit = end - 4
        u16x2 = struct.Struct(bo + "HH").unpack_from
        while opt + 4 <= limit:
            code, olen = u16x2(buf, opt)
            if code == 0:  # opt_endofopt
                break
            vstart = opt + 4
            if vstart + olen > limit:
                raise damage(
                    f"corrupt interface description option (code {code}, length {olen})",
                    self._base + opt,
                )
            if code == 9 and olen >= 1:  # if_tsresol
                v = buf[vstart]
                exp = v & 0x7F
                if v & 0x80:
                    if exp > 63:
                        raise damage(
                            f"unsupported if_tsresol 0x{v:02x}", self._base + opt
                        )
                    divisor = float(1 << exp)
                else:
                    if exp > 18:
                        raise damage(f"unsupported if_tsresol {v}", self._base + opt)
                    divisor = float(10**exp)
            elif code == 14 and olen >= 8:  # if_tsoffset (seconds)
                tsoffset = struct.unpack_from(bo + "q", buf, vstart)[0]
            opt = vstart + ((olen + 3) & ~3)
        return _Interface(linktype, snaplen, divisor, tsoffset)
