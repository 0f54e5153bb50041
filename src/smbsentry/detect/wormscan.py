"""The worm-scan detector: one source sending connection attempts to many SMB destinations.

The engine shows it every SYN without ACK to port 445/139 (shard 0 sees
them all, see :mod:`smbsentry.detect.parallel`); :class:`ScanTracker`
keeps the distinct destinations per source within a sliding window of
capture time, bounded in sources and in destinations per source, and the
alert fires once per burst (again after a quiet window).
"""

from __future__ import annotations

from .config import Config
from .events import Events
from .flows import flow_id, flow_key
from .packet import format_addr

__all__ = ["ScanTracker", "WormScan"]


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


class WormScan:
    """smb-worm-scan over all traffic; ``flows``: the engine's flow table (for the alert's flow id)."""

    def __init__(self, cfg: Config, flows: dict[bytes, tuple], out: Events) -> None:
        self.cfg = cfg
        self.flows = flows
        self.out = out
        self.tracker = ScanTracker(cfg.scan_threshold, cfg.scan_window, cfg.max_scan_sources)

    def syn(self, src: bytes, sport: int, dst: bytes, dport: int, ts: float) -> None:
        """A connection attempt (SYN without ACK) to an SMB port."""
        n = self.tracker.note(src, dst, ts)
        if not n:
            return
        ent = self.flows.get(flow_key(src, sport, dst, dport))
        fid = ent[0].id if ent is not None else flow_id(6, src, sport, dst, dport, ts)
        cfg = self.cfg
        ev, src_ip = self.out.alert(
            ts, fid, src, sport, dst, dport, "TCP", "smb-worm-scan",
            f"{format_addr(src)} sent connection attempts (SYN) to {n} distinct SMB destinations "
            f"within {cfg.scan_window:g} s (threshold {cfg.scan_threshold})",
        )  # fmt: skip
        ev["scan"] = {"distinct_destinations": n, "window_s": cfg.scan_window, "threshold": cfg.scan_threshold}
        self.out.emit(ev, "smb-worm-scan", src_ip)
