"""Flows and their lifecycle: one record per TCP connection to an SMB port, and the table.

:class:`Flow` is everything the detector keeps about one connection: its
two :class:`~smbsentry.detect.reassembly.TcpStream` and
:class:`~smbsentry.detect.reassembly.Framer` (reassembly), the SMB facts
the flow event reports, and the per-flow state of the SMB1 exploit rules.

:class:`FlowTable` holds the flows, keyed once per direction, and decides
when one ends: idle and closed flows are due at each sweep, the least
recently active are evicted at the cap, and the largest out-of-order stores
are given up when all of them together hold too much.  It only says which;
the engine (:mod:`smbsentry.detect.engine`) retires them, because retiring
delivers a flow's last bytes to the SMB dispatch.
"""

from __future__ import annotations

import hashlib
import math
import struct

from ..protocol import transport
from .config import Config
from .packet import ACK, SYN
from .reassembly import Framer, TcpStream

__all__ = ["SMB_PORTS", "Flow", "FlowTable", "flow_id", "flow_key"]

SMB_PORTS = frozenset(transport.SMB_PORTS)
#: Housekeeping (retiring idle and closed flows) is due every this many seconds of capture time ...
SWEEP_INTERVAL = 2.0
#: ... once at least this many packets have come since the last one.
SWEEP_PACKETS = 4096

_ports = struct.Struct("!HH").pack


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
        self.open_trans: dict[tuple[int, int, int, int], object] = {}  # see smb1_exploits
        self.pending_t2: dict[int, int] = {}  # MIDs of Trans2 requests not yet answered
        self.pending_ss: dict[int, int] = {}
        self.pending_peek: dict[int, int] = {}
        self.orphan_t2s = 0
        self.alerts: dict[str, int] = {}


class FlowTable:
    """The flows being followed (keyed both ways), when they end, and what their ends counted."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        # flow_key(src, sport, dst, dport) -> (flow, direction, its stream, its framer, the other stream)
        self.flows: dict[bytes, tuple] = {}
        self.nflows = 0
        self.next_sweep = -math.inf  # capture time from which housekeeping is due
        self.sweep_packets = 0  # packet count at the last housekeeping
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

    def full(self) -> bool:
        """Is the table at its cap (evict before opening another flow)?"""
        return self.nflows >= self.cfg.max_flows

    def open(self, src: bytes, sport: int, dst: bytes, dport: int, flags: int, ts: float) -> tuple:
        """A new flow for a packet from ``src`` to ``dst``; returns that packet's direction's entry.

        The client is the side not on an SMB port (or the SYN's sender, or
        the one on the higher port when both are SMB ports).
        """
        syn_only = flags & SYN and not flags & ACK
        if dport in SMB_PORTS and (sport not in SMB_PORTS or syn_only or dport < sport):
            client, cport, server, sp = src, sport, dst, dport
        else:
            client, cport, server, sp = dst, dport, src, sport
        cfg = self.cfg
        flow = Flow(flow_id(6, client, cport, server, sp, ts), client, cport, server, sp, ts, cfg, bool(flags & SYN))
        self.flows_total += 1
        self.nflows += 1
        s0, s1 = flow.streams
        e0 = (flow, 0, s0, flow.framers[0], s1)
        e1 = (flow, 1, s1, flow.framers[1], s0)
        self.flows[flow_key(client, cport, server, sp)] = e0
        self.flows[flow_key(server, sp, client, cport)] = e1
        return e0 if client == src and cport == sport else e1

    def alive(self) -> list:
        """Every flow in the table (once each)."""
        return [e[0] for e in self.flows.values() if e[1] == 0]

    def sweep(self, ts: float, packets: int) -> tuple[list, int] | None:
        """Housekeeping before the packet at ``ts``: the flows to retire now, or None when not due.

        Due every SWEEP_INTERVAL seconds of capture time, done when at least
        SWEEP_PACKETS packets came since the last time (so a sparse capture
        does not walk the flow table every few packets).  Returns the closed
        and idle flows with the state to retire them in, and the
        out-of-order bytes the other flows hold (see :meth:`ooo_cuts`).
        """
        self.next_sweep = ts + SWEEP_INTERVAL
        if packets - self.sweep_packets < SWEEP_PACKETS and self.sweep_packets:
            return None
        self.sweep_packets = packets or 1
        cfg = self.cfg
        ooo_total = 0
        due = []
        for f in self.alive():
            age = ts - f.last_ts
            if (f.closed and age > cfg.closed_linger) or age > cfg.flow_timeout:
                if not f.closed:
                    self.flows_timed_out += 1
                due.append((f, f.state if f.closed else "timeout"))
            else:
                ooo_total += f.streams[0].ooo_bytes + f.streams[1].ooo_bytes
        return due, ooo_total

    def ooo_cuts(self, ooo_total: int) -> list:
        """(flow, direction) of the largest out-of-order stores to give up, when all hold too much."""
        cfg = self.cfg
        cuts: list = []
        if ooo_total <= cfg.max_ooo_total:
            return cuts
        streams = sorted(
            ((e[2].ooo_bytes, e[0], e[1]) for e in self.flows.values() if e[2].ooo),
            key=lambda x: -x[0],
        )
        for nbytes, f, d in streams:
            if ooo_total <= cfg.max_ooo_total // 2:
                break
            self.ooo_cut += 1
            ooo_total -= nbytes
            cuts.append((f, d))
        return cuts

    def evictable(self) -> list:
        """At the flow cap: the least recently active tenth (and room for one), counted as evicted."""
        cfg = self.cfg
        alive = sorted(self.alive(), key=lambda f: f.last_ts)
        out = alive[: self.nflows - cfg.max_flows + 1 + cfg.max_flows // 10]
        self.flows_evicted += len(out)
        return out

    def remove(self, flow: Flow) -> None:
        """Forget a retired flow (its streams already flushed) and add up its reassembly counters."""
        flows = self.flows
        k0 = flow_key(flow.client, flow.cport, flow.server, flow.sport)
        k1 = flow_key(flow.server, flow.sport, flow.client, flow.cport)
        if flows.get(k0, (None,))[0] is flow:
            del flows[k0]
            self.nflows -= 1
        if flows.get(k1, (None,))[0] is flow:
            del flows[k1]
        for st in flow.streams:
            self.gaps += st.gaps
            self.gap_bytes += st.gap_bytes
            self.dup_bytes += st.dup_bytes
            self.overlap_bytes += st.overlap_bytes
        for fr in flow.framers:
            self.desyncs += fr.desyncs
            self.resync_skipped_bytes += fr.skipped_bytes
