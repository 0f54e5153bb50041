"""The detector's thresholds and bounds (one object every room of the engine reads)."""

from __future__ import annotations

from dataclasses import dataclass

from .reassembly import DEFAULT_HEAD_MAX, DEFAULT_MAX_OOO_BYTES, DEFAULT_MAX_OOO_SEGMENTS

__all__ = ["Config"]


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
