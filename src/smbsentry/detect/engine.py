"""The traffic detector's engine: the batch loop, TCP, and SMB dispatch to the detectors.

:class:`Engine` is sans-I/O: feed it capture records
(``(frame, timestamp, linktype, data, wirelen)``, see
:mod:`smbsentry.detect.capture`) with :meth:`Engine.run` or
:meth:`Engine.packet`; it calls ``sink(event)`` with each event (a dict,
Suricata EVE style) the moment it is found, so alerts from the start of a
capture are out even if the capture turns out to be damaged later.

Only what can matter is decoded: TCP to or from ports 445/139 (SMB) and UDP
to or from port 53 (DNS); any other packet costs one header unpack and a
counter.  The reasoning behind each detector, and its limits, are in the
package documentation (:mod:`smbsentry.detect`).

The engine owns the rooms it dispatches to:

* ``table`` (:mod:`.flows`): the flows and their lifecycle, each with its
  reassembly (:mod:`.reassembly`);
* ``smb1`` (:mod:`.smb1_exploits`): MS17-010 and DoublePulsar rules on
  SMB1 transactions; :mod:`.smbghost` on SMB 3 compression transforms;
  ``dns`` (:mod:`.killswitch`): WannaCry's kill-switch lookups; ``scan``
  (:mod:`.wormscan`): worm-like SYN scanning;
* ``inventory`` (:mod:`.inventory`): who speaks SMBv1 to whom;
* ``out`` (:mod:`.events`): every event, stamped and counted; the summary
  and a shard's state are :mod:`.summary`'s.

Memory is bounded whatever the capture's length: at most ``max_flows`` flows
(idle and closed ones are retired, the least recently active evicted beyond
the cap), per direction at most ``head_max`` bytes of a message plus the
out-of-order cap (see :mod:`smbsentry.detect.reassembly`), and capped tables
for transactions, pending requests, scanners, DNS and SMBv1 pairs.

Events (``event_type``):

``alert``
    the contract's alert shape; ``alert.evidence`` says what matched.  One
    alert per signature per flow (later matches are counted in the flow
    event's ``alerts`` and the summary's ``alerts_suppressed``).
``flow``
    one per SMB flow when it ends (FIN/RST, idle timeout, eviction or the end
    of the input): packets, bytes, gaps, SMB versions, dialect, commands.
``smb1-usage``
    from :meth:`Engine.finish`, one per (client, server, port) that spoke
    SMBv1 (the server answered in SMB1) or whose client offered only SMB1
    dialects: dialect, NativeOS/NativeLanMan of both sides when seen.
"""

from __future__ import annotations

import gc
import math
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

try:
    import cython
except ImportError:  # Cython is only needed to compile this module (see setup.py)
    from . import _nocython as cython

from ..protocol.smb1 import NEGOTIATE, NT_TRANSACT, SESSION_SETUP_ANDX, TRANSACTION, TRANSACTION2
from . import summary as _summary
from .config import Config
from .events import Events, iso_time
from .flows import SMB_PORTS, Flow, FlowTable, flow_id, flow_key
from .inventory import Smb1Inventory, negotiate_or_setup_reply, negotiate_request, setup_request
from .killswitch import KillswitchDns
from .packet import ACK, FIN, RST, SYN, decode
from .reassembly import MASK, Framer, TcpStream
from .smb1_exploits import DETAIL, Smb1Exploits
from .smbghost import check_transform
from .smbmsg import SMB2_DIALECTS
from .wormscan import ScanTracker, WormScan

__all__ = ["Config", "Engine", "ScanTracker", "flow_id", "flow_key", "iso_time"]

DNS_PORT = 53
#: The SMB1 requests read at all: the exploit rules' and the two the inventory reads.
_REQUESTS = DETAIL | {NEGOTIATE, SESSION_SETUP_ANDX}

# SMB1 header: command at 4, status 5, flags 9, flags2 10, pid_high 12, signature 14,
# reserved 22, tid 24, pid 26, uid 28, mid 30, then WordCount at 32
_smb1_req_ids = struct.Struct("<H10xHHHHB").unpack_from  # at 12: pid_high, tid, pid, uid, mid, wc
# Ethernet type, then IPv4 (version/IHL, total length, fragment, protocol; the addresses skipped),
# then the TCP ports, sequence and acknowledgement numbers, data offset and flags: bytes 12..48
_eth_ip4_tcp = struct.Struct("!HBxH2xHxB10xHHIIBB").unpack_from
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from


@contextmanager
def _rare_young_collections() -> Iterator[None]:
    """Collect the young generation every 50,000 allocations instead of 700, for a while.

    Reading a capture makes a few short-lived, acyclic objects per packet
    (the record, its bytes, slices); at the default threshold the collector
    walks the young generation every ~150 packets, about 5% of a run, and
    finds nothing.  Collections still happen, so memory stays bounded.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 50_000), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class Engine:
    """See the module docstring."""

    def __init__(
        self,
        sink: Callable[[dict[str, Any]], None],
        config: Config | None = None,
        shard: int = 0,
        shards: int = 1,
    ) -> None:
        """``shard``/``shards``: analyse only the SMB flows hashed to ``shard`` of
        ``shards`` (see :mod:`smbsentry.detect.parallel`); shard 0 also does
        the DNS and scan detection for all traffic."""
        if not 0 <= shard < shards:
            raise ValueError("shard must be in 0..shards-1")
        self.shard = shard
        self.shards = shards
        self.cfg = cfg = config or Config()
        cfg.validate()
        self.out = out = Events(sink)
        self.table = FlowTable(cfg)
        self.smb1 = Smb1Exploits(out)
        self.dns = KillswitchDns(cfg, out)
        self.scan = WormScan(cfg, self.table.flows, out)
        self.inventory = Smb1Inventory(cfg.max_smb1_pairs)
        self.sources_seen: list[str] = []
        # counters (the other rooms keep theirs; see summary.py)
        self.packets = 0
        self.bytes = 0
        self.malformed = 0
        self.truncated = 0
        self.not_tcp_udp = 0
        self.other_ports = 0
        self.smb_packets = 0
        self.dns_packets = 0
        self.smb_messages = 0
        self.smb_malformed = 0

    @property
    def nflows(self) -> int:
        """Flows tracked now."""
        return self.table.nflows

    # ------------------------------------------------------------------
    # input
    # ------------------------------------------------------------------
    def run(self, records: Iterable[tuple], source: str | None, key: str = "pcap_file") -> None:
        """Process every record of one input (a file or an interface).

        ``records``: an iterable of records, or a reader with ``batches()``
        (see :class:`~smbsentry.detect.capture.CaptureReader`), which is
        faster.  Exceptions from ``records`` (a damaged capture) propagate
        after every record before the damage has been processed; call
        :meth:`end_source` afterwards in any case to retire the input's flows.
        """
        with _rare_young_collections():
            self._run(records, source, key)

    def _run(self, records: Iterable[tuple], source: str | None, key: str) -> None:
        self.begin_source(source, key)
        batches = getattr(records, "batches", None)
        if batches is not None:
            if self.shards == 1:
                for batch in batches():
                    self.batch(batch)
                return
            # the reader leaves out other shards' SMB packets; count them (shard 0's
            # packet and byte totals are the whole input's)
            seen = records.dropped  # type: ignore[attr-defined]
            try:
                for batch in batches(self.shard, self.shards):
                    self.batch(batch)
                    now = records.dropped  # type: ignore[attr-defined]
                    self.packets += now[0] - seen[0]
                    self.bytes += now[1] - seen[1]
                    seen = now
            finally:
                now = records.dropped  # type: ignore[attr-defined]
                self.packets += now[0] - seen[0]
                self.bytes += now[1] - seen[1]
            return
        it = iter(records)
        while True:
            batch = list(islice(it, 1024))
            if not batch:
                return
            self.batch(batch)

    def begin_source(self, source: str | None, key: str = "pcap_file") -> None:
        self.table.next_sweep = -math.inf
        self.out.source = source
        self.out.source_key = key
        if source is not None:
            self.sources_seen.append(source)

    # The hot loop stays one function: compiled, its locals are C variables and every call it
    # saves is saved once per packet (split up, it loses measurable packets/s).
    def batch(self, records: list) -> None:
        """Process a list of records (the hot loop; same results as :meth:`packet` one by one).

        Ethernet + IPv4 (no options, not a later fragment, not cut by the
        snap length) + TCP to or from 445/139 on a known flow without
        SYN/FIN/RST is handled inline; everything else goes through
        :meth:`packet`.
        """
        table: FlowTable = self.table
        out: Events = self.out
        flows_get = table.flows.get
        slow = self._packet
        deliver = self._deliver
        headers = _eth_ip4_tcp
        smb_ports = SMB_PORTS
        shard: cython.int = self.shard
        shards: cython.int = self.shards
        npk: cython.longlong = 0
        nbytes: cython.longlong = 0
        nsmb: cython.longlong = 0
        nother: cython.longlong = 0
        nmsg: cython.longlong = 0
        next_sweep: cython.double = table.next_sweep
        ts: cython.double
        wirelen: cython.longlong  # 64 bits also where Py_ssize_t has 32
        lt: cython.int
        et: cython.uint
        vihl: cython.uint
        tot: cython.uint
        frag: cython.uint
        proto: cython.uint
        sport: cython.uint
        dport: cython.uint
        seq: cython.uint
        ack: cython.uint
        doff: cython.uint
        flags: cython.uint
        start: cython.Py_ssize_t
        end: cython.Py_ssize_t
        n: cython.Py_ssize_t
        d: cython.int
        h: cython.ulonglong = 0
        data: bytes
        flow: Flow
        st: TcpStream
        fr: Framer
        other: TcpStream
        for frame, ts, lt, data, wirelen in records:
            if ts >= next_sweep:
                self._housekeeping(ts, self.packets + npk)
                next_sweep = table.next_sweep
            if lt != 1 or len(data) != wirelen or wirelen < 54:
                slow(frame, ts, lt, data, wirelen)
                continue
            if cython.compiled:  # the same fields as _eth_ip4_tcp, read in C
                p: cython.p_uchar = data
                et = (p[12] << 8) | p[13]
                vihl = p[14]
                tot = (p[16] << 8) | p[17]
                frag = (p[20] << 8) | p[21]
                proto = p[23]
                sport = (p[34] << 8) | p[35]
                dport = (p[36] << 8) | p[37]
                seq = (cython.cast(cython.uint, p[38]) << 24) | (p[39] << 16) | (p[40] << 8) | p[41]
                ack = (cython.cast(cython.uint, p[42]) << 24) | (p[43] << 16) | (p[44] << 8) | p[45]
                doff = p[46]
                flags = p[47]
            else:
                et, vihl, tot, frag, proto, sport, dport, seq, ack, doff, flags = headers(data, 12)
            if et != 0x0800 or vihl != 0x45 or proto != 6 or frag & 0x1FFF or tot < 40 or tot + 14 > wirelen:
                slow(frame, ts, lt, data, wirelen)
                continue
            if dport != 445 and dport != 139 and sport != 445 and sport != 139:  # SMB_PORTS
                npk += 1
                nbytes += wirelen
                nother += 1
                continue
            if shards > 1:
                h = sport + dport  # 64 bits in C: the product below needs 64 (and fits)
                h = ((h * 40503 + (data[29] + data[33]) * 313 + data[28] + data[32]) * 2654435761) >> 20
                if h % shards != shard:
                    npk += 1
                    nbytes += wirelen
                    if not shard and flags & 0x12 == 0x02 and dport in smb_ports:
                        out.frame = frame
                        out.ts = ts
                        self.scan.syn(data[26:30], sport, data[30:34], dport, ts)
                    continue
            start = 34 + ((doff >> 4) << 2)
            end = 14 + tot
            if start > end or doff < 0x50:
                slow(frame, ts, lt, data, wirelen)
                continue
            npk += 1
            nbytes += wirelen
            nsmb += 1
            if doff & 1:
                flags |= 0x100
            ent = flows_get(data[26:38])  # flow_key(src, sport, dst, dport)
            if ent is None or flags & 0x07:  # new flow, SYN, FIN or RST: the general path
                out.frame = frame
                out.ts = ts
                self._tcp(data[26:30], data[30:34], sport, dport, flags, seq, ack, data[start:end], ts, 0)
                continue
            flow, d, st, fr, other = ent
            flow.last_ts = ts
            st.pkts += 1
            if flags & 0x10:
                other.peer_ack = ack
                if other.ooo:
                    out.frame = frame
                    out.ts = ts
                    chunks = other.ack_seen(ack, ts)
                    if chunks:
                        deliver(flow, d ^ 1, chunks)
            if start == end:
                continue
            out.frame = frame
            out.ts = ts
            n = end - start
            st.nbytes += n
            if st.next_seq == seq and not st.ooo:
                st.next_seq = (seq + n) & 0xFFFFFFFF
                if (
                    n >= 37
                    and not data[start]
                    and ((data[start + 1] << 16) | (data[start + 2] << 8) | data[start + 3]) + 4 == n
                    and data[start + 4] == 0xFF
                    and data[start + 5] == 0x53  # 'SMB'
                    and data[start + 6] == 0x4D
                    and data[start + 7] == 0x42
                    and fr.synced
                    and not fr.buf
                    and not fr.skip
                ):  # exactly one whole SMB1 message: skip the framer
                    flow.messages += 1
                    nmsg += 1
                    self._smb1(flow, d, data[start + 4 : end])
                else:
                    for head, length in fr.feed(data[start:end]):
                        self._message(flow, d, head, length)
            else:
                chunks = st.add(seq, data[start:end], 0, ts)
                if chunks:
                    deliver(flow, d, chunks)
        self.smb_messages += nmsg
        self.packets += npk
        self.bytes += nbytes
        self.smb_packets += nsmb
        self.other_ports += nother

    def packet(self, frame: int, ts: float, linktype: int, data: bytes | bytearray | memoryview, wirelen: int) -> None:
        """Process one captured frame (``data``: bytes, or anything bytes() takes)."""
        if type(data) is not bytes:
            data = bytes(data)
        if ts >= self.table.next_sweep:
            self._housekeeping(ts, self.packets)
        self._packet(frame, ts, linktype, data, wirelen)

    def _packet(self, frame: int, ts: float, linktype: int, data: bytes, wirelen: int) -> None:
        self.packets += 1
        self.bytes += wirelen
        out = self.out
        out.frame = frame
        out.ts = ts
        pkt = decode(linktype, data)
        if not pkt:
            if pkt is None:
                self.malformed += 1
            else:
                self.not_tcp_udp += 1
            return
        src, dst, sport, dport, proto, flags, seq, ack, payload = pkt
        if proto == 6:
            if dport in SMB_PORTS or sport in SMB_PORTS:
                if self.shards > 1 and (
                    ((sport + dport) * 40503 + (src[-1] + dst[-1]) * 313 + src[-2] + dst[-2]) * 2654435761 >> 20
                ) % self.shards != self.shard:
                    if not self.shard and flags & 0x12 == 0x02 and dport in SMB_PORTS:
                        self.scan.syn(src, sport, dst, dport, ts)
                    return
                self.smb_packets += 1
                cut = wirelen - len(data)
                if cut > 0:
                    self.truncated += 1
                else:
                    cut = 0
                self._tcp(src, dst, sport, dport, flags, seq, ack, payload, ts, cut)
            else:
                self.other_ports += 1
        elif dport == DNS_PORT or sport == DNS_PORT:
            if not self.shard:
                self.dns_packets += 1
                self.dns.packet(src, dst, sport, dport, payload, ts)
        else:
            self.other_ports += 1

    # ------------------------------------------------------------------
    # TCP
    # ------------------------------------------------------------------
    def _tcp(
        self,
        src: bytes,
        dst: bytes,
        sport: cython.int,
        dport: cython.int,
        flags: cython.int,
        seq: cython.longlong,
        ack: cython.longlong,
        payload: bytes,
        ts: cython.double,
        cut: cython.longlong,
    ) -> None:
        ent = self.table.flows.get(flow_key(src, sport, dst, dport))
        if ent is None:
            if not (flags & SYN or payload or cut):
                return  # a bare ACK/FIN/RST of a connection we never saw
            ent = self._new_flow(src, sport, dst, dport, flags, ts)
        elif flags & SYN and not flags & ACK and ent[1] == 0:
            flow = ent[0]
            nxt = flow.streams[0].next_seq
            if flow.closed or (nxt >= 0 and nxt != (seq + 1) & MASK):
                self._retire(flow, flow.state if flow.closed else "reused")  # port reuse
                ent = self._new_flow(src, sport, dst, dport, flags, ts)
        flow, d, st, _fr, other = ent
        flow.last_ts = ts
        st.pkts += 1
        if flags & SYN:
            st.syn(seq)
            if not flags & ACK and dport in SMB_PORTS and not self.shard:
                self.scan.syn(src, sport, dst, dport, ts)
        if flags & ACK:
            other.peer_ack = ack
            if other.ooo:
                chunks = other.ack_seen(ack, ts)
                if chunks:
                    self._deliver(flow, d ^ 1, chunks)
        if payload or cut:
            n = len(payload)
            st.nbytes += n
            if not cut and st.next_seq == seq and not st.ooo:
                st.next_seq = (seq + n) & MASK
                msgs = flow.framers[d].feed(payload)
                if msgs:
                    message = self._message
                    for head, length in msgs:
                        message(flow, d, head, length)
            else:
                chunks = st.add(seq, payload, cut, ts)
                if chunks:
                    self._deliver(flow, d, chunks)
        if flags & (FIN | RST):
            if flags & RST:
                flow.closed = True
                flow.state = "reset"
            else:
                flow.fin |= 1 << d
                if flow.fin == 3:
                    flow.closed = True
                    flow.state = "closed"

    def _new_flow(self, src: bytes, sport: int, dst: bytes, dport: int, flags: int, ts: float) -> tuple:
        if self.table.full():
            self._evict()
        return self.table.open(src, sport, dst, dport, flags, ts)

    def _deliver(self, flow: Flow, d: int, chunks: list) -> None:
        fr = flow.framers[d]
        message = self._message
        for c in chunks:
            if c is None:
                fr.gap()
            else:
                for head, length in fr.feed(c):
                    message(flow, d, head, length)

    # ------------------------------------------------------------------
    # SMB dispatch
    # ------------------------------------------------------------------
    def _message(self, flow: Flow, d: cython.int, m: bytes, length: cython.Py_ssize_t) -> None:
        flow.messages += 1
        self.smb_messages += 1
        magic = m[:4]
        if magic == b"\xffSMB":
            self._smb1(flow, d, m)
        elif magic == b"\xfeSMB":
            self._smb2(flow, m)
        elif magic == b"\xfdSMB":
            flow.encrypted += 1
            flow.versions |= 4
        elif magic == b"\xfcSMB":
            flow.compressed += 1
            flow.versions |= 4
            check_transform(self.out, flow, d, m, length)
        else:
            flow.malformed += 1
            self.smb_malformed += 1

    def _smb2(self, flow: Flow, m: bytes) -> None:
        """Every message of an SMB2 compound: commands counted, the dialect of a NEGOTIATE answer."""
        flow.versions |= 2
        cmds = flow.commands
        off = 0
        n = len(m)
        count = 0
        while off + 64 <= n and count < 64:
            count += 1
            cmd = _u16(m, off + 12)[0]
            k = 0x10000 | cmd
            cmds[k] = cmds.get(k, 0) + 1
            if cmd == 0 and off + 72 <= n and m[off + 16] & 1 and not _u32(m, off + 8)[0]:
                dialect = _u16(m, off + 68)[0]
                if dialect != 0x02FF:
                    flow.dialect = SMB2_DIALECTS.get(dialect, f"0x{dialect:04x}")
                    if dialect >= 0x0300:
                        flow.versions |= 4
            nxt = _u32(m, off + 20)[0]
            if not nxt:
                return
            if nxt < 64 or nxt & 7:
                break
            off += nxt
        if not count or off + 64 > n:
            flow.malformed += 1
            self.smb_malformed += 1

    def _smb1(self, flow: Flow, d: cython.int, m: bytes) -> None:
        """An SMB1 message: replies to the exploit rules or the inventory, requests that can matter likewise."""
        n: cython.Py_ssize_t = len(m)
        cmd: cython.int
        mid: cython.int
        wc: cython.int
        flow.versions |= 1
        if n < 33:
            flow.malformed += 1
            self.smb_malformed += 1
            return
        cmd = m[4]
        cmds = flow.commands
        cmds[cmd] = cmds.get(cmd, 0) + 1
        if m[9] & 0x80:  # a reply (the hot case: fields are read only when needed)
            if cmd == TRANSACTION2 or cmd == TRANSACTION or cmd == NT_TRANSACT:
                flow.smb1_spoken = True
                self.smb1.reply(flow, d, m, cmd)
            elif cmd == NEGOTIATE or cmd == SESSION_SETUP_ANDX:
                wc = m[32]
                if 33 + 2 * wc <= n:
                    negotiate_or_setup_reply(flow, m, cmd, wc)
            else:
                flow.smb1_spoken = True
            return
        if cmd in _REQUESTS:
            ph, tid, pid, uid, mid, wc = _smb1_req_ids(m, 12)
            if 33 + 2 * wc > n:
                flow.malformed += 1
                self.smb_malformed += 1
                return
            if cmd == NEGOTIATE:
                negotiate_request(flow, m)
            elif cmd == SESSION_SETUP_ANDX:
                setup_request(flow, m)
            else:
                self.smb1.request(flow, d, m, cmd, wc, ((ph << 16) | pid, mid, tid, uid), mid)

    # ------------------------------------------------------------------
    # flow lifecycle
    # ------------------------------------------------------------------
    def _housekeeping(self, ts: float, packets: int) -> None:
        """Retire closed and idle flows, cap out-of-order bytes overall (see :meth:`FlowTable.sweep`).

        Called before the packet at ``ts`` by both :meth:`packet` and
        :meth:`batch`, so both give the same events.
        """
        swept = self.table.sweep(ts, packets)
        if swept is None:
            return
        due, ooo_total = swept
        for f, state in due:
            self._retire(f, state)
        for f, d in self.table.ooo_cuts(ooo_total):
            self._deliver(f, d, f.streams[d].flush())

    def _evict(self) -> None:
        """At the flow cap: retire the least recently active tenth (and make room for one)."""
        for f in self.table.evictable():
            self._retire(f, "evicted")

    def _retire(self, flow: Flow, state: str) -> None:
        """Flush a flow's streams, forget it, add it to the SMBv1 inventory and emit its flow event."""
        for d in (0, 1):
            chunks = flow.streams[d].flush()
            if chunks:
                self._deliver(flow, d, chunks)
        self.table.remove(flow)
        self.inventory.note(flow, self.out.source)
        if self.cfg.flow_events:
            self.out.flow_event(flow, state)

    def end_source(self) -> None:
        """The current input ended: retire all its flows."""
        for f in self.table.alive():
            self._retire(f, f.state if f.closed else "end")

    # ------------------------------------------------------------------
    # the end, and shards (smbsentry.detect.parallel)
    # ------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Retire every flow, emit the smb1-usage events and return the summary."""
        self.end_source()
        self.inventory.usage_events(self.out)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return _summary.summary(self)

    def export_state(self) -> dict[str, Any]:
        """Counters and SMBv1 pairs, JSON-able (call after :meth:`end_source`)."""
        return _summary.export_state(self)

    def merge_state(self, state: dict[str, Any], primary: bool) -> None:
        """Add a shard's :meth:`export_state`; ``primary``: shard 0 (whole-traffic counters)."""
        _summary.merge_state(self, state, primary)
