"""The events the detector emits (EVE style), stamped and counted in one place.

:class:`Events` knows where in the input the engine is (the source, the
frame number and the capture time of the packet being analysed) and builds
every event the detectors raise: alerts (one per signature per flow, later
matches counted as suppressed), the ``flow`` event of a flow that ended,
and any other finished event (the SMBv1 inventory's ``smb1-usage``).  Each
goes to ``sink`` the moment it exists.  The counters here (alerts by
signature and source, events by type) feed the summary
(:mod:`smbsentry.detect.summary`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .flows import Flow
from .packet import format_addr
from .signatures import SIGNATURES
from .smbmsg import smb1_command_name, smb2_command_name

__all__ = ["Events", "iso_time"]

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


class Events:
    """Builds, counts and hands on the detector's events (see the module docstring)."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self.sink = sink
        self.source: str | None = None
        self.source_key = "pcap_file"  # "in_iface" for a live capture
        self.frame = 0  # the packet being analysed
        self.ts = 0.0
        self.alerts_total = 0
        self.alerts_suppressed = 0
        self.alerts_by_signature: Counter[str] = Counter()
        self.alert_sources: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # event_type -> events emitted

    def flow_alert(self, flow: Flow, d: int, sid: str, evidence: str, smb: dict | None = None) -> None:
        """Alert ``sid`` on ``flow`` for the current packet (direction ``d``), once per flow."""
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
        ev, src_ip = self.alert(self.ts, flow.id, src, sport, dst, dport, "TCP", sid, evidence)
        if smb is not None:
            ev["smb"] = smb
        self.emit(ev, sid, src_ip)

    def alert(self, ts: float, fid: int, src: bytes, sport: int, dst: bytes, dport: int, proto: str, sid: str,
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

    def emit(self, ev: dict[str, Any], sid: str, src_ip: str) -> None:
        """Count and hand on an alert built by :meth:`alert`."""
        self.alerts_total += 1
        self.alerts_by_signature[sid] += 1
        srcs = self.alert_sources
        if src_ip in srcs or len(srcs) < 10000:
            srcs[src_ip] += 1
        self.counts["alert"] += 1
        self.sink(ev)

    def event(self, ev: dict[str, Any]) -> None:
        """Count and hand on any other finished event."""
        self.counts[ev["event_type"]] += 1
        self.sink(ev)

    def flow_event(self, flow: Flow, state: str) -> None:
        """The ``flow`` event of a flow that ended in ``state``."""
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
        self.counts["flow"] += 1
        self.sink(ev)


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
