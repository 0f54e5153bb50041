"""The traffic detector: flows, reassembly, SMB dispatch, detectors, events.

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
import hashlib
import math
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from typing import Any

try:
    import cython
except ImportError:  # Cython is only needed to compile this module (see setup.py)
    from . import _nocython as cython

from ..protocol.doublepulsar import architecture, xor_key
from .dns import killswitch_domain, parse_question
from .packet import ACK, FIN, RST, SYN, decode, format_addr
from .reassembly import (
    DEFAULT_HEAD_MAX,
    DEFAULT_MAX_OOO_BYTES,
    DEFAULT_MAX_OOO_SEGMENTS,
    MASK,
    Framer,
    TcpStream,
)
from .signatures import SIGNATURES
from .smbmsg import (
    COMPRESSION_ALGORITHMS,
    SMB2_DIALECTS,
    compression_problem,
    session_setup_strings,
    smb1_command_name,
    smb1_dialects,
    smb2_command_name,
)

__all__ = ["Config", "Engine", "ScanTracker", "flow_id", "flow_key", "iso_time"]

SMB_PORTS = frozenset({445, 139})
DNS_PORT = 53

# SMB1 commands: one definition, in the protocol layer
from ..protocol.smb1 import (  # noqa: E402
    NEGOTIATE,
    NT_TRANSACT,
    NT_TRANSACT_SECONDARY,
    SESSION_SETUP_ANDX,
    TRANSACTION,
    TRANSACTION2,
    TRANSACTION2_SECONDARY,
    TRANSACTION_SECONDARY,
    WRITE_ANDX,
)
_SMB1_DETAIL = frozenset(
    {
        NEGOTIATE,
        SESSION_SETUP_ANDX,
        TRANSACTION,
        TRANSACTION_SECONDARY,
        TRANSACTION2,
        TRANSACTION2_SECONDARY,
        NT_TRANSACT,
        NT_TRANSACT_SECONDARY,
        WRITE_ANDX,
    }
)

PEEK_NAMED_PIPE = 0x0023
TRANS2_SESSION_SETUP = 0x000E
NT_TRANSACT_RENAME = 0x0005
STATUS_INSUFF_SERVER_RESOURCES = 0xC0000205
# DoublePulsar reads its command from the Trans2 Timeout: the sum of its four bytes, low 8 bits.
DP_PING, DP_EXEC, DP_KILL = 0x23, 0xC8, 0x77
DP_MID_DELTA = 16
#: TRANSACTION2_SECONDARY requests belonging to no TRANSACTION2 before eternalblue fires.
ORPHAN_T2_SECONDARIES = 8

# Per-flow table caps
MAX_OPEN_TRANS = 64
MAX_PENDING = 256
#: Housekeeping (retiring idle and closed flows) is due every this many seconds of capture time ...
SWEEP_INTERVAL = 2.0
#: ... once at least this many packets have come since the last one.
SWEEP_PACKETS = 4096

_trans_words = struct.Struct("<HHHHBBHIHHHHHB").unpack_from  # TRANSACTION / TRANSACTION2
_nt_words = struct.Struct("<BHIIIIIIIIBH").unpack_from  # NT_TRANSACT
_sec_words = struct.Struct("<HHHHHHHH").unpack_from  # TRANSACTION(2)_SECONDARY
_ntsec_words = struct.Struct("<3xIIIIIIII").unpack_from  # NT_TRANSACT_SECONDARY
# SMB1 header: command at 4, status 5, flags 9, flags2 10, pid_high 12, signature 14,
# reserved 22, tid 24, pid 26, uid 28, mid 30, then WordCount at 32
_smb1_reply_ids = struct.Struct("<IxxxH10xHHHHB").unpack_from  # at 5: status, pid_high, tid, pid, uid, mid, wc
_smb1_req_ids = struct.Struct("<H10xHHHHB").unpack_from  # at 12: pid_high, tid, pid, uid, mid, wc
# Ethernet type, then IPv4 (version/IHL, total length, fragment, protocol; the addresses skipped),
# then the TCP ports, sequence and acknowledgement numbers, data offset and flags: bytes 12..48
_eth_ip4_tcp = struct.Struct("!HBxH2xHxB10xHHIIBB").unpack_from
_ports = struct.Struct("!HH").pack
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from


_PAIR_TEXT = ("dialect", "client_native_os", "client_native_lm", "server_native_os", "server_native_lm")


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    """The flow table's key for one direction: source and destination address, then both ports.

    For IPv4 this is bytes 26..38 of an Ethernet frame as they are, which
    the hot loop takes with one slice.
    """
    return src + dst + _ports(sport, dport)


def flow_id(proto: int, a: bytes, ap: int, b: bytes, bp: int, ts: float) -> int:
    """A flow's id: a 51-bit hash of its protocol, endpoints and first timestamp.

    Stable across runs and independent of processing order (Suricata's
    flow_id is likewise a hash); 51 bits stay exact in JSON numbers.
    """
    h = hashlib.blake2b(a + b + struct.pack("!HHBd", ap, bp, proto, ts), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 13


#: Whole second -> its "YYYY-MM-DDTHH:MM:SS" (flows of a capture start and end within a few seconds
#: of each other, so a few entries serve most events; cleared when full).
_iso_cache: dict[int, str] = {}
_ISO_CACHE_MAX = 4096


def iso_time(ts: float) -> str:
    """Seconds since the epoch as ISO 8601 UTC with microseconds and a Z."""
    try:
        sec = math.floor(ts)
        usec = round((ts - sec) * 1e6)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        text = _iso_cache.get(sec)
        if text is None:
            if len(_iso_cache) >= _ISO_CACHE_MAX:
                _iso_cache.clear()
            text = _iso_cache[sec] = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{text}.{usec:06d}Z"
    except (OverflowError, OSError, ValueError):
        return "1970-01-01T00:00:00.000000Z"


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


@dataclass
class Config:
    """Thresholds and bounds of the detector."""

    #: smb-worm-scan: distinct destinations (445/139) from one source ...
    scan_threshold: int = 20
    #: ... within this many seconds (capture time).
    scan_window: float = 10.0
    #: Emit a ``flow`` event for every SMB flow.
    flow_events: bool = True
    #: Flows tracked at once; beyond it the least recently active are retired.
    max_flows: int = 32768
    #: A flow idle this long (capture time) is retired.
    flow_timeout: float = 600.0
    #: A closed (FIN both ways / RST) flow is retired after this long.
    closed_linger: float = 5.0
    head_max: int = DEFAULT_HEAD_MAX
    max_ooo_bytes: int = DEFAULT_MAX_OOO_BYTES
    max_ooo_segments: int = DEFAULT_MAX_OOO_SEGMENTS
    #: Out-of-order bytes held over all flows before the largest holes are given up.
    max_ooo_total: int = 64 * 1024 * 1024
    max_scan_sources: int = 65536
    max_smb1_pairs: int = 65536
    max_dns_seen: int = 65536

    def validate(self) -> None:
        if self.scan_threshold < 2:
            raise ValueError("scan threshold must be at least 2 destinations")
        if not self.scan_window > 0:
            raise ValueError("scan window must be a positive number of seconds")
        if self.max_flows < 1 or self.head_max < 64:
            raise ValueError("max_flows must be >= 1 and head_max >= 64")


class _Trans:
    """An SMB1 transaction the client opened: kind, function, bytes expected/sent."""

    __slots__ = ("function", "got", "kind", "need")

    def __init__(self, kind: int, function: int, need: int, got: int) -> None:
        self.kind = kind
        self.function = function
        self.need = need
        self.got = got


class Flow:
    """One TCP connection to an SMB port (direction 0: client to server)."""

    __slots__ = (
        "alerts",
        "client",
        "client_lm",
        "client_os",
        "closed",
        "commands",
        "compressed",
        "cport",
        "dialect",
        "encrypted",
        "fin",
        "first_ts",
        "framers",
        "id",
        "last_ts",
        "malformed",
        "messages",
        "open_trans",
        "orphan_t2s",
        "pending_t2",
        "pending_peek",
        "pending_ss",
        "saw_syn",
        "server",
        "server_lm",
        "server_os",
        "smb1_dialects",
        "smb1_spoken",
        "sport",
        "state",
        "streams",
        "versions",
    )

    def __init__(
        self, fid: int, client: bytes, cport: int, server: bytes, sport: int, ts: float, cfg: Config, synced: bool
    ) -> None:
        self.id = fid
        self.client = client
        self.cport = cport
        self.server = server
        self.sport = sport
        self.first_ts = ts
        self.last_ts = ts
        self.streams = (
            TcpStream(cfg.max_ooo_bytes, cfg.max_ooo_segments),
            TcpStream(cfg.max_ooo_bytes, cfg.max_ooo_segments),
        )
        self.framers = (Framer(synced, cfg.head_max), Framer(synced, cfg.head_max))
        self.saw_syn = synced
        self.fin = 0
        self.closed = False
        self.state = "established"
        self.versions = 0  # bit 1: SMB1, 2: SMB2, 4: SMB3
        self.dialect: str | None = None
        self.commands: dict[int, int] = {}  # SMB1 cmd, 0x10000 | SMB2 cmd -> messages
        self.messages = 0
        self.encrypted = 0
        self.compressed = 0
        self.malformed = 0
        self.smb1_dialects: list[str] | None = None
        self.smb1_spoken = False
        self.client_os: str | None = None
        self.client_lm: str | None = None
        self.server_os: str | None = None
        self.server_lm: str | None = None
        self.open_trans: dict[tuple[int, int, int, int], _Trans] = {}
        self.pending_t2: dict[int, int] = {}  # MIDs of Trans2 requests not yet answered
        self.pending_ss: dict[int, int] = {}
        self.pending_peek: dict[int, int] = {}
        self.orphan_t2s = 0
        self.alerts: dict[str, int] = {}


class ScanTracker:
    """Distinct SMB destinations per source within a sliding window (bounded)."""

    def __init__(self, threshold: int, window: float, max_sources: int) -> None:
        self.threshold = threshold
        self.window = window
        self.max_sources = max_sources
        self.max_per_source = max(threshold * 4, 1024)
        self.sources: dict[bytes, dict[bytes, float]] = {}
        self.alerted: set[bytes] = set()

    def note(self, src: bytes, dst: bytes, ts: float) -> int:
        """Record a connection attempt; return the distinct count when it first crosses the threshold."""
        sources = self.sources
        s = sources.get(src)
        if s is None:
            if len(sources) >= self.max_sources:
                old = next(iter(sources))
                del sources[old]
                self.alerted.discard(old)
            s = sources[src] = {}
        elif dst in s:
            del s[dst]  # re-insert below: the dict stays ordered by last sight
        s[dst] = ts
        limit = ts - self.window
        while s:
            first = next(iter(s))
            if s[first] >= limit and len(s) <= self.max_per_source:
                break
            del s[first]
        n = len(s)
        if n >= self.threshold:
            if src not in self.alerted:
                self.alerted.add(src)
                return n
        elif n == 1:
            self.alerted.discard(src)  # a quiet window: a later burst alerts again
        return 0


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
        self.sink = sink
        self.cfg = cfg = config or Config()
        cfg.validate()
        # flow_key(src, sport, dst, dport) -> (flow, direction, its stream, its framer, the other stream)
        self.flows: dict[bytes, tuple] = {}
        self.nflows = 0
        self.scan = ScanTracker(cfg.scan_threshold, cfg.scan_window, cfg.max_scan_sources)
        self.source: str | None = None
        self.source_key = "pcap_file"
        self.frame = 0
        self.ts = 0.0
        self.next_sweep = -math.inf  # capture time from which housekeeping is due
        self.sweep_packets = 0  # packet count at the last housekeeping
        self.udp_ids: dict[tuple[bytes, int, bytes, int], int] = {}
        self.dns_seen: dict[tuple[bytes, bytes, str], int] = {}
        self.smb1_pairs: dict[tuple[bytes, bytes, int], dict[str, Any]] = {}
        self.smb1_pairs_dropped = 0
        # counters
        self.packets = 0
        self.bytes = 0
        self.malformed = 0
        self.truncated = 0
        self.not_tcp_udp = 0
        self.other_ports = 0
        self.smb_packets = 0
        self.dns_packets = 0
        self.dns_malformed = 0
        self.smb_messages = 0
        self.smb_malformed = 0
        self.flows_total = 0
        self.flows_evicted = 0
        self.flows_timed_out = 0
        self.gaps = 0
        self.gap_bytes = 0
        self.dup_bytes = 0
        self.overlap_bytes = 0
        self.desyncs = 0
        self.resync_skipped_bytes = 0
        self.ooo_cut = 0
        self.alerts_total = 0
        self.alerts_suppressed = 0
        self.alerts_by_signature: Counter[str] = Counter()
        self.alert_sources: Counter[str] = Counter()
        self.events = Counter()  # event_type -> count
        self.sources_seen: list[str] = []

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
        self.next_sweep = -math.inf
        self.source = source
        self.source_key = key
        if source is not None:
            self.sources_seen.append(source)

    def batch(self, records: list) -> None:
        """Process a list of records (the hot loop; same results as :meth:`packet` one by one).

        Ethernet + IPv4 (no options, not a later fragment, not cut by the
        snap length) + TCP to or from 445/139 on a known flow without
        SYN/FIN/RST is handled inline; everything else goes through
        :meth:`packet`.
        """
        flows_get = self.flows.get
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
        next_sweep: cython.double = self.next_sweep
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
                next_sweep = self.next_sweep
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
                        self.frame = frame
                        self.ts = ts
                        self._scan_syn(data[26:30], sport, data[30:34], dport, ts)
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
                self.frame = frame
                self.ts = ts
                self._tcp(data[26:30], data[30:34], sport, dport, flags, seq, ack, data[start:end], ts, 0)
                continue
            flow, d, st, fr, other = ent
            flow.last_ts = ts
            st.pkts += 1
            if flags & 0x10:
                other.peer_ack = ack
                if other.ooo:
                    self.frame = frame
                    self.ts = ts
                    chunks = other.ack_seen(ack, ts)
                    if chunks:
                        deliver(flow, d ^ 1, chunks)
            if start == end:
                continue
            self.frame = frame
            self.ts = ts
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
        if ts >= self.next_sweep:
            self._housekeeping(ts, self.packets)
        self._packet(frame, ts, linktype, data, wirelen)

    def _packet(self, frame: int, ts: float, linktype: int, data: bytes, wirelen: int) -> None:
        self.packets += 1
        self.bytes += wirelen
        self.frame = frame
        self.ts = ts
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
                        self._scan_syn(src, sport, dst, dport, ts)
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
                self._dns(src, dst, sport, dport, payload, ts)
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
        ent = self.flows.get(flow_key(src, sport, dst, dport))
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
                self._scan_syn(src, sport, dst, dport, ts)
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
        syn_only = flags & SYN and not flags & ACK
        if dport in SMB_PORTS and (sport not in SMB_PORTS or syn_only or dport < sport):
            client, cport, server, sp = src, sport, dst, dport
        else:
            client, cport, server, sp = dst, dport, src, sport
        if self.nflows >= self.cfg.max_flows:
            self._evict()
        flow = Flow(flow_id(6, client, cport, server, sp, ts), client, cport, server, sp, ts, self.cfg, bool(flags & SYN))
        self.flows_total += 1
        self.nflows += 1
        s0, s1 = flow.streams
        e0 = (flow, 0, s0, flow.framers[0], s1)
        e1 = (flow, 1, s1, flow.framers[1], s0)
        self.flows[flow_key(client, cport, server, sp)] = e0
        self.flows[flow_key(server, sp, client, cport)] = e1
        return e0 if client == src and cport == sport else e1

    def _deliver(self, flow: Flow, d: int, chunks: list) -> None:
        fr = flow.framers[d]
        message = self._message
        for c in chunks:
            if c is None:
                fr.gap()
            else:
                for head, length in fr.feed(c):
                    message(flow, d, head, length)

    def _scan_syn(self, src: bytes, sport: int, dst: bytes, dport: int, ts: float) -> None:
        """A connection attempt (SYN without ACK) to an SMB port: the worm-scan detector."""
        n = self.scan.note(src, dst, ts)
        if not n:
            return
        ent = self.flows.get(flow_key(src, sport, dst, dport))
        fid = ent[0].id if ent is not None else flow_id(6, src, sport, dst, dport, ts)
        cfg = self.cfg
        ev, src_ip = self._alert(
            ts, fid, src, sport, dst, dport, "TCP", "smb-worm-scan",
            f"{format_addr(src)} sent connection attempts (SYN) to {n} distinct SMB destinations "
            f"within {cfg.scan_window:g} s (threshold {cfg.scan_threshold})",
        )
        ev["scan"] = {"distinct_destinations": n, "window_s": cfg.scan_window, "threshold": cfg.scan_threshold}
        self._emit(ev, "smb-worm-scan", src_ip)

    # ------------------------------------------------------------------
    # SMB
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
            problem = compression_problem(m, length)
            if problem is not None:
                original, algorithm, cflags, offset = struct.unpack_from("<IHHI", m, 4)
                self._emit_alert(
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
        else:
            flow.malformed += 1
            self.smb_malformed += 1

    def _smb2(self, flow: Flow, m: bytes) -> None:
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
                ot = flow.open_trans
                if ot:
                    status, ph, tid, pid, uid, mid, wc = _smb1_reply_ids(m, 5)
                    if status or wc:
                        ot.pop(((ph << 16) | pid, mid, tid, uid), None)  # a final answer ends it
                if cmd == TRANSACTION2:
                    ps = flow.pending_ss
                    pt = flow.pending_t2
                    if ps or pt:
                        mid = m[30] | (m[31] << 8)
                        answered = pt.pop(mid, None) is not None
                        if ps and ps.pop(mid, None) is None and not answered:
                            self._implant_reply(flow, d, m, mid)
                elif cmd == TRANSACTION and flow.pending_peek:
                    self._peek_reply(flow, d, _u32(m, 5)[0], m[30] | (m[31] << 8))
            elif cmd == NEGOTIATE or cmd == SESSION_SETUP_ANDX:
                wc = m[32]
                if 33 + 2 * wc <= n:
                    self._smb1_reply(flow, m, cmd, wc)
            else:
                flow.smb1_spoken = True
            return
        if cmd in _SMB1_DETAIL:
            ph, tid, pid, uid, mid, wc = _smb1_req_ids(m, 12)
            if 33 + 2 * wc > n:
                flow.malformed += 1
                self.smb_malformed += 1
                return
            self._smb1_request(flow, d, m, cmd, wc, ((ph << 16) | pid, mid, tid, uid), mid)

    def _smb1_request(
        self, flow: Flow, d: cython.int, m: bytes, cmd: cython.int, wc: cython.int, key: tuple, mid: cython.int
    ) -> None:
        ot = flow.open_trans
        if cmd == TRANSACTION2 or cmd == TRANSACTION2_SECONDARY:
            pt = flow.pending_t2
            if len(pt) >= MAX_PENDING:
                del pt[next(iter(pt))]
            pt[mid] = 1
        if cmd == TRANSACTION or cmd == TRANSACTION2:
            if wc < 14:
                return
            tpc, tdc, _mpc, _mdc, _msc, _r, _fl, timeout, _r2, pc, _po, dc, _do, sc = _trans_words(m, 33)
            if sc > wc - 14:
                flow.malformed += 1
                return
            setup = struct.unpack_from(f"<{sc}H", m, 61) if sc else ()
            self._open(ot, key, cmd, 0, tpc + tdc, pc + dc)
            if cmd == TRANSACTION:
                if sc >= 2 and setup[0] == PEEK_NAMED_PIPE and setup[1] == 0:
                    pp = flow.pending_peek
                    if len(pp) >= MAX_PENDING:
                        del pp[next(iter(pp))]
                    pp[mid] = self.frame
                    self._emit_alert(
                        flow, d, "ms17-010-probe",
                        f"TRANSACTION PeekNamedPipe (setup 0x0023) on FID 0, MID {mid}",
                        smb=_smb(1, cmd, mid, 0),
                    )  # fmt: skip
                return
            if sc >= 1 and setup[0] == TRANS2_SESSION_SETUP:
                ps = flow.pending_ss
                if len(ps) >= MAX_PENDING:
                    del ps[next(iter(ps))]
                ps[mid] = self.frame
                op = (timeout + (timeout >> 8) + (timeout >> 16) + (timeout >> 24)) & 0xFF
                what = f"Trans2 SESSION_SETUP MID {mid}, Timeout 0x{timeout:08x} (command byte 0x{op:02x})"
                if op == DP_PING:
                    self._emit_alert(flow, d, "doublepulsar-ping", what + ": ping", smb=_smb(1, cmd, mid, 0))
                elif op == DP_EXEC or (tdc and tpc == 12):
                    self._emit_alert(
                        flow, d, "doublepulsar-upload",
                        f"{what}: exec/upload, {tdc} data bytes in total, {dc} in this message",
                        smb=_smb(1, cmd, mid, 0),
                    )  # fmt: skip
                elif op == DP_KILL:
                    self._emit_alert(flow, d, "doublepulsar-uninstall", what + ": uninstall", smb=_smb(1, cmd, mid, 0))
            return
        if cmd == NT_TRANSACT:
            if wc < 19:
                return
            _msc, _r, tpc, tdc, _mpc, _mdc, pc, _po, dc, _do, _sc, function = _nt_words(m, 33)
            self._open(ot, key, cmd, function, tpc + tdc, pc + dc)
            if tdc > 0xFFFF and not 1 <= function <= 8:
                self._emit_alert(
                    flow, d, "eternalblue",
                    f"NT_TRANSACT with undefined function {function} and TotalDataCount {tdc} "
                    f"(> 0xFFFF), MID {mid}",
                    smb=_smb(1, cmd, mid, 0),
                )  # fmt: skip
            return
        if cmd == TRANSACTION2_SECONDARY or cmd == TRANSACTION_SECONDARY:
            t = ot.get(key)
            if cmd == TRANSACTION2_SECONDARY:
                if t is not None and t.kind == NT_TRANSACT:
                    self._emit_alert(
                        flow, d, "eternalblue",
                        f"TRANSACTION2_SECONDARY continues an NT_TRANSACT (MID {mid}): "
                        "transaction type confusion",
                        smb=_smb(1, cmd, mid, 0),
                    )  # fmt: skip
                elif t is None or t.kind != TRANSACTION2:
                    flow.orphan_t2s += 1
                    if flow.orphan_t2s >= ORPHAN_T2_SECONDARIES:
                        self._emit_alert(
                            flow, d, "eternalblue",
                            f"{flow.orphan_t2s} TRANSACTION2_SECONDARY requests belong to no "
                            "TRANSACTION2 on this flow",
                            smb=_smb(1, cmd, mid, 0),
                        )  # fmt: skip
            elif t is None:
                if flow.saw_syn and not flow.streams[d].gaps:
                    self._emit_alert(
                        flow, d, "eternalromance",
                        f"TRANSACTION_SECONDARY MID {mid} for a transaction never opened on "
                        "this flow (MID rewritten in server memory)",
                        smb=_smb(1, cmd, mid, 0),
                    )  # fmt: skip
            if t is not None and wc >= 8:
                _tpc, _tdc, pc, _po, _pd, dc, _do, _dd = _sec_words(m, 33)
                t.got += pc + dc
            return
        if cmd == NT_TRANSACT_SECONDARY:
            t = ot.get(key)
            if t is not None and t.kind == NT_TRANSACT:
                if t.got >= t.need or t.function == NT_TRANSACT_RENAME:
                    why = "NT_TRANSACT_RENAME" if t.function == NT_TRANSACT_RENAME else "complete"
                    self._emit_alert(
                        flow, d, "eternalchampion",
                        f"NT_TRANSACT_SECONDARY (MID {mid}) races an unanswered {why} NT_TRANSACT",
                        smb=_smb(1, cmd, mid, 0),
                    )  # fmt: skip
                if wc >= 18:
                    _tpc, _tdc, pc, _po, _pd, dc, _do, _dd = _ntsec_words(m, 33)
                    t.got += pc + dc
            return
        if cmd == WRITE_ANDX:
            t = ot.get(key)
            if t is not None and t.got < t.need:
                self._emit_alert(
                    flow, d, "eternalromance",
                    f"WRITE_ANDX (MID {mid}) into a {smb1_command_name(t.kind)} still in progress "
                    f"({t.got} of {t.need} parameter+data bytes sent)",
                    smb=_smb(1, cmd, mid, 0),
                )  # fmt: skip
            return
        if cmd == NEGOTIATE:
            flow.smb1_dialects = smb1_dialects(m)
            return
        if cmd == SESSION_SETUP_ANDX and flow.client_os is None:
            flow.client_os, flow.client_lm = session_setup_strings(m, reply=False)

    @staticmethod
    def _open(ot: dict, key: tuple, kind: int, function: int, need: int, got: int) -> None:
        if key not in ot and len(ot) >= MAX_OPEN_TRANS:
            del ot[next(iter(ot))]
        ot[key] = _Trans(kind, function, need, got)

    def _implant_reply(self, flow: Flow, d: cython.int, m: bytes, mid: cython.int) -> None:
        """A Trans2 reply answering no outstanding MID: the implant's request MID + 16?"""
        req = mid - DP_MID_DELTA
        if flow.pending_ss.pop(req, None) is not None:
            status = _u32(m, 5)[0]
            sig = m[14:22]
            self._emit_alert(
                flow, d, "doublepulsar-reply",
                f"Trans2 SESSION_SETUP MID {req} answered with MID {mid} (+{DP_MID_DELTA}), "
                f"status 0x{status:08x}: implant present; XOR key 0x{xor_key(sig):08X}, "
                f"{architecture(sig)}",
                smb=_smb(1, TRANSACTION2, mid, status),
            )  # fmt: skip

    def _peek_reply(self, flow: Flow, d: int, status: int, mid: int) -> None:
        if flow.pending_peek.pop(mid, None) is not None and status == STATUS_INSUFF_SERVER_RESOURCES:
            self._emit_alert(
                flow, d, "ms17-010-vulnerable-reply",
                f"PeekNamedPipe on FID 0 (MID {mid}) answered 0xC0000205 "
                "STATUS_INSUFF_SERVER_RESOURCES: MS17-010 not installed",
                smb=_smb(1, TRANSACTION, mid, status),
            )  # fmt: skip

    def _smb1_reply(self, flow: Flow, m: bytes, cmd: int, wc: int) -> None:
        """NEGOTIATE and SESSION_SETUP_ANDX replies: dialect, SMBv1 use, NativeOS."""
        if cmd == NEGOTIATE:
            if wc >= 1:
                index = _u16(m, 33)[0]
                if index != 0xFFFF:
                    flow.smb1_spoken = True
                    dialects = flow.smb1_dialects
                    if dialects is not None and index < len(dialects):
                        flow.dialect = dialects[index]
                    elif flow.dialect is None:
                        flow.dialect = f"index {index}"
            return
        flow.smb1_spoken = True
        if flow.server_os is None:
            flow.server_os, flow.server_lm = session_setup_strings(m, reply=True)

    # ------------------------------------------------------------------
    # DNS
    # ------------------------------------------------------------------
    def _dns(self, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, ts: float) -> None:
        q = parse_question(payload)
        if q is None:
            self.dns_malformed += 1
            return
        response, name, qtype = q
        if response:
            return
        domain = killswitch_domain(name)
        if domain is None:
            return
        k = (src, dst, domain)
        seen = self.dns_seen
        if k in seen:
            seen[k] += 1
            self.alerts_suppressed += 1
            return
        if len(seen) >= self.cfg.max_dns_seen:
            del seen[next(iter(seen))]
        seen[k] = 1
        fkey = (src, sport, dst, dport)
        ids = self.udp_ids
        fid = ids.get(fkey) or ids.get((dst, dport, src, sport))
        if fid is None:
            if len(ids) >= 4096:
                del ids[next(iter(ids))]
            fid = ids[fkey] = flow_id(17, src, sport, dst, dport, ts)
        ev, src_ip = self._alert(ts, fid, src, sport, dst, dport, "UDP", "wannacry-killswitch-dns",
                                 f"DNS query for {name} (WannaCry kill-switch domain {domain})")
        ev["dns"] = {"query": name, "rrtype": qtype, "killswitch_domain": domain}
        self._emit(ev, "wannacry-killswitch-dns", src_ip)

    # ------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------
    def _emit_alert(
        self,
        flow: Flow,
        d: int,
        sid: str,
        evidence: str,
        smb: dict | None = None,
    ) -> None:
        alerts = flow.alerts
        if sid in alerts:
            alerts[sid] += 1
            self.alerts_suppressed += 1
            return
        alerts[sid] = alerts.get(sid, 0) + 1
        if d == 0:
            src, sport, dst, dport = flow.client, flow.cport, flow.server, flow.sport
        else:
            src, sport, dst, dport = flow.server, flow.sport, flow.client, flow.cport
        ev, src_ip = self._alert(self.ts, flow.id, src, sport, dst, dport, "TCP", sid, evidence)
        if smb is not None:
            ev["smb"] = smb
        self._emit(ev, sid, src_ip)

    def _alert(self, ts: float, fid: int, src: bytes, sport: int, dst: bytes, dport: int, proto: str, sid: str,
               evidence: str) -> tuple[dict[str, Any], str]:
        """The EVE alert event every detector emits (callers add their own section), and its source address."""
        sig = SIGNATURES[sid]
        src_ip = format_addr(src)
        return {
            "timestamp": iso_time(ts),
            "event_type": "alert",
            self.source_key: self.source,
            "frame": self.frame,
            "flow_id": fid,
            "src_ip": src_ip,
            "src_port": sport,
            "dest_ip": format_addr(dst),
            "dest_port": dport,
            "proto": proto,
            "alert": {
                "signature_id": sid,
                "signature": sig.signature,
                "category": sig.category,
                "severity": sig.severity,
                "evidence": evidence,
            },
        }, src_ip

    def _emit(self, ev: dict[str, Any], sid: str, src_ip: str) -> None:
        self.alerts_total += 1
        self.alerts_by_signature[sid] += 1
        srcs = self.alert_sources
        if src_ip in srcs or len(srcs) < 10000:
            srcs[src_ip] += 1
        self.events["alert"] += 1
        self.sink(ev)

    # ------------------------------------------------------------------
    # flow lifecycle
    # ------------------------------------------------------------------
    def _housekeeping(self, ts: float, packets: int) -> None:
        """Retire closed and idle flows, cap out-of-order bytes overall.

        Due every SWEEP_INTERVAL seconds of capture time, done when at least
        SWEEP_PACKETS packets came since the last time (so a sparse capture
        does not walk the flow table every few packets); called before the
        packet at ``ts`` by both :meth:`packet` and :meth:`batch`, so both
        give the same events.
        """
        self.next_sweep = ts + SWEEP_INTERVAL
        if packets - self.sweep_packets < SWEEP_PACKETS and self.sweep_packets:
            return
        self.sweep_packets = packets or 1
        cfg = self.cfg
        ooo_total = 0
        for f in [e[0] for e in self.flows.values() if e[1] == 0]:
            age = ts - f.last_ts
            if (f.closed and age > cfg.closed_linger) or age > cfg.flow_timeout:
                if not f.closed:
                    self.flows_timed_out += 1
                self._retire(f, f.state if f.closed else "timeout")
            else:
                ooo_total += f.streams[0].ooo_bytes + f.streams[1].ooo_bytes
        if ooo_total > cfg.max_ooo_total:
            streams = sorted(
                ((e[2].ooo_bytes, e[0], e[1]) for e in self.flows.values() if e[2].ooo),
                key=lambda x: -x[0],
            )
            for nbytes, f, d in streams:
                if ooo_total <= cfg.max_ooo_total // 2:
                    break
                self.ooo_cut += 1
                ooo_total -= nbytes
                self._deliver(f, d, f.streams[d].flush())

    def _evict(self) -> None:
        """At the flow cap: retire the least recently active tenth (and make room for one)."""
        cfg = self.cfg
        alive = sorted((e[0] for e in self.flows.values() if e[1] == 0), key=lambda f: f.last_ts)
        for f in alive[: self.nflows - cfg.max_flows + 1 + cfg.max_flows // 10]:
            self.flows_evicted += 1
            self._retire(f, "evicted")

    def _retire(self, flow: Flow, state: str) -> None:
        """Flush a flow's streams, emit its flow event and forget it."""
        for d in (0, 1):
            chunks = flow.streams[d].flush()
            if chunks:
                self._deliver(flow, d, chunks)
        k0 = flow_key(flow.client, flow.cport, flow.server, flow.sport)
        k1 = flow_key(flow.server, flow.sport, flow.client, flow.cport)
        if self.flows.get(k0, (None,))[0] is flow:
            del self.flows[k0]
            self.nflows -= 1
        if self.flows.get(k1, (None,))[0] is flow:
            del self.flows[k1]
        for st in flow.streams:
            self.gaps += st.gaps
            self.gap_bytes += st.gap_bytes
            self.dup_bytes += st.dup_bytes
            self.overlap_bytes += st.overlap_bytes
        for fr in flow.framers:
            self.desyncs += fr.desyncs
            self.resync_skipped_bytes += fr.skipped_bytes
        self._note_smb1(flow)
        if self.cfg.flow_events:
            self._flow_event(flow, state)

    def end_source(self) -> None:
        """The current input ended: retire all its flows."""
        for f in [e[0] for e in self.flows.values() if e[1] == 0]:
            self._retire(f, f.state if f.closed else "end")

    def _flow_event(self, flow: Flow, state: str) -> None:
        versions = list(_VERSIONS[flow.versions & 7])
        commands: dict[str, int] = {}
        names = _COMMAND_NAMES[flow.versions & 1]
        for k, c in flow.commands.items():
            name = names.get(k)
            if name is None:
                name = _command_name(k, flow.versions & 1)
                if len(names) < 4096:
                    names[k] = name
            commands[name] = commands.get(name, 0) + c
        st0, st1 = flow.streams
        fr0, fr1 = flow.framers
        start = iso_time(flow.first_ts)
        ev: dict[str, Any] = {
            "timestamp": start,
            "event_type": "flow",
            self.source_key: self.source,
            "flow_id": flow.id,
            "src_ip": format_addr(flow.client),
            "src_port": flow.cport,
            "dest_ip": format_addr(flow.server),
            "dest_port": flow.sport,
            "proto": "TCP",
            "flow": {
                "start": start,
                "end": iso_time(flow.last_ts),
                "pkts_toserver": st0.pkts,
                "pkts_toclient": st1.pkts,
                "bytes_toserver": st0.nbytes,
                "bytes_toclient": st1.nbytes,
                "state": state,
                "gaps": st0.gaps + st1.gaps,
                "desyncs": fr0.desyncs + fr1.desyncs,
            },
            "smb": {
                "versions": versions,
                "dialect": flow.dialect,
                "smb1_server": flow.smb1_spoken,
                "messages": flow.messages,
                "commands": commands,
                "encrypted_messages": flow.encrypted,
                "compressed_messages": flow.compressed,
                "malformed_messages": flow.malformed,
            },
        }
        if flow.alerts:
            ev["alerts"] = dict(flow.alerts)
        self.events["flow"] += 1
        self.sink(ev)

    def _note_smb1(self, flow: Flow) -> None:
        dialects = flow.smb1_dialects or []
        only_smb1 = bool(dialects) and not any(x.startswith("SMB 2") for x in dialects)
        if not (flow.smb1_spoken or only_smb1):
            return
        self._merge_pair(
            (flow.client, flow.server, flow.sport),
            {
                "first_ts": flow.first_ts,
                "last_ts": flow.last_ts,
                "source": self.source,
                "flows": 1,
                "messages": flow.messages,
                "spoken": flow.smb1_spoken,
                "dialect": flow.dialect if flow.versions & 1 and not flow.versions & 6 else None,
                "client_offers_smb2": any(x.startswith("SMB 2") for x in dialects) if dialects else None,
                "client_native_os": flow.client_os,
                "client_native_lm": flow.client_lm,
                "server_native_os": flow.server_os,
                "server_native_lm": flow.server_lm,
            },
        )

    def _merge_pair(self, key: tuple[bytes, bytes, int], c: dict[str, Any]) -> None:
        """Add one flow's (or a worker's) SMBv1 facts about a client/server pair."""
        c_ts = c.get("_ts") or dict.fromkeys(_PAIR_TEXT, c["first_ts"])
        pair = self.smb1_pairs.get(key)
        if pair is None:
            if len(self.smb1_pairs) >= self.cfg.max_smb1_pairs:
                self.smb1_pairs_dropped += 1
                return
            self.smb1_pairs[key] = pair = dict(c)
            pair["_ts"] = {k: (c_ts[k] if c[k] is not None else math.inf) for k in _PAIR_TEXT}
            return
        if c["first_ts"] < pair["first_ts"]:
            pair["first_ts"] = c["first_ts"]
            pair["source"] = c["source"]
        pair["last_ts"] = max(pair["last_ts"], c["last_ts"])
        pair["flows"] += c["flows"]
        pair["messages"] += c["messages"]
        pair["spoken"] = pair["spoken"] or c["spoken"]
        if c["client_offers_smb2"] is not None:
            pair["client_offers_smb2"] = bool(pair["client_offers_smb2"]) or c["client_offers_smb2"]
        ts = pair["_ts"]
        for k in _PAIR_TEXT:  # the earliest flow's value wins (the same whatever the order)
            if c[k] is not None and (pair[k] is None or c_ts[k] < ts[k]):
                pair[k] = c[k]
                ts[k] = c_ts[k]

    # ------------------------------------------------------------------
    # state of a shard (smbsentry.detect.parallel)
    # ------------------------------------------------------------------
    _SUMMED = (
        "smb_packets", "truncated", "smb_messages", "smb_malformed", "flows_total", "flows_evicted",
        "flows_timed_out", "gaps", "gap_bytes", "dup_bytes", "overlap_bytes", "desyncs",
        "resync_skipped_bytes", "ooo_cut", "alerts_total", "alerts_suppressed", "smb1_pairs_dropped",
    )  # fmt: skip
    #: Counters every shard sees whole (taken from shard 0).
    _WHOLE = ("packets", "bytes", "malformed", "not_tcp_udp", "other_ports", "dns_packets", "dns_malformed")

    def export_state(self) -> dict[str, Any]:
        """Counters and SMBv1 pairs, JSON-able (call after :meth:`end_source`)."""
        return {
            "counters": {k: getattr(self, k) for k in self._SUMMED + self._WHOLE},
            "alerts_by_signature": dict(self.alerts_by_signature),
            "alert_sources": dict(self.alert_sources),
            "events": dict(self.events),
            "sources": list(self.sources_seen),
            "smb1_pairs": [
                [c.hex(), s.hex(), port, {**p, "_ts": {k: (v if v != math.inf else None) for k, v in p["_ts"].items()}}]
                for (c, s, port), p in self.smb1_pairs.items()
            ],
        }

    def merge_state(self, state: dict[str, Any], primary: bool) -> None:
        """Add a shard's :meth:`export_state`; ``primary``: shard 0 (whole-traffic counters)."""
        counters = state["counters"]
        for k in self._SUMMED:
            setattr(self, k, getattr(self, k) + counters[k])
        if primary:
            for k in self._WHOLE:
                setattr(self, k, counters[k])
            self.sources_seen = list(state["sources"])
        self.alerts_by_signature.update(state["alerts_by_signature"])
        self.alert_sources.update(state["alert_sources"])
        self.events.update(state["events"])
        for c, s, port, p in state["smb1_pairs"]:
            p["_ts"] = {k: (math.inf if v is None else v) for k, v in p["_ts"].items()}
            self._merge_pair((bytes.fromhex(c), bytes.fromhex(s), port), p)

    def finish(self) -> dict[str, Any]:
        """Retire every flow, emit the smb1-usage events and return the summary."""
        self.end_source()
        for (client, server, port), p in self.smb1_pairs.items():
            ev = {
                "timestamp": iso_time(p["first_ts"]),
                "event_type": "smb1-usage",
                self.source_key: p["source"],
                "src_ip": format_addr(client),
                "dest_ip": format_addr(server),
                "dest_port": port,
                "proto": "TCP",
                "smb1": {
                    "client": format_addr(client),
                    "server": format_addr(server),
                    "server_port": port,
                    "spoken": p["spoken"],
                    "dialect": p["dialect"],
                    "client_offers_smb2": p["client_offers_smb2"],
                    "client_native_os": p["client_native_os"],
                    "client_native_lm": p["client_native_lm"],
                    "server_native_os": p["server_native_os"],
                    "server_native_lm": p["server_native_lm"],
                    "flows": p["flows"],
                    "messages": p["messages"],
                    "first_seen": iso_time(p["first_ts"]),
                    "last_seen": iso_time(p["last_ts"]),
                },
            }
            self.events["smb1-usage"] += 1
            self.sink(ev)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        speakers = sorted(
            (
                {
                    "client": format_addr(c),
                    "server": format_addr(s),
                    "port": port,
                    "spoken": p["spoken"],
                    "dialect": p["dialect"],
                    "server_native_os": p["server_native_os"],
                }
                for (c, s, port), p in self.smb1_pairs.items()
            ),
            key=lambda x: (not x["spoken"], x["server"], x["client"]),
        )
        return {
            "inputs": list(self.sources_seen),
            "packets": self.packets,
            "bytes": self.bytes,
            "smb_packets": self.smb_packets,
            "dns_packets": self.dns_packets,
            "smb_messages": self.smb_messages,
            "flows": self.flows_total,
            "alerts": self.alerts_total,
            "alerts_by_signature": dict(sorted(self.alerts_by_signature.items())),
            "alerts_suppressed": self.alerts_suppressed,
            "top_sources": [
                {"ip": ip, "alerts": n} for ip, n in sorted(self.alert_sources.items(), key=lambda x: (-x[1], x[0]))[:10]
            ],
            "smb1_pairs": len(self.smb1_pairs),
            "smb1_pairs_dropped": self.smb1_pairs_dropped,
            "smb1_speakers": speakers[:50],
            "skipped": {
                "malformed_packets": self.malformed,
                "truncated_packets": self.truncated,
                "not_tcp_udp": self.not_tcp_udp,
                "other_ports": self.other_ports,
                "malformed_smb_messages": self.smb_malformed,
                "malformed_dns": self.dns_malformed,
            },
            "reassembly": {
                "gaps": self.gaps,
                "gap_bytes": self.gap_bytes,
                "duplicate_bytes": self.dup_bytes,
                "overlap_bytes": self.overlap_bytes,
                "desyncs": self.desyncs,
                "resync_skipped_bytes": self.resync_skipped_bytes,
                "flows_evicted": self.flows_evicted,
                "flows_timed_out": self.flows_timed_out,
                "ooo_cut": self.ooo_cut,
            },
        }


#: SMB versions seen (Flow.versions bits 1, 2, 4) -> the flow event's list of versions.
_VERSIONS = tuple(tuple(v for bit, v in ((1, 1), (2, 2), (4, 3)) if bits & bit) for bits in range(8))
#: Command name by Flow.commands key, for flows without and with SMB1 (filled as met).
_COMMAND_NAMES: tuple[dict[int, str], dict[int, str]] = ({}, {})


def _command_name(k: int, smb1: int) -> str:
    """A Flow.commands key (SMB1 command, or 0x10000 | SMB2 command) as the flow event names it."""
    if not k & 0x10000:
        return smb1_command_name(k)
    name = smb2_command_name(k & 0xFFFF)
    return "SMB2_" + name if smb1 else name


def _smb(version: int, cmd: int, mid: int, status: int) -> dict[str, Any]:
    return {"version": version, "command": smb1_command_name(cmd), "mid": mid, "status": f"0x{status:08x}"}
