"""The detector's summary, and a shard's state for the merge (:mod:`smbsentry.detect.parallel`).

The engine's counters live with the part that counts them (the engine: packets
and messages; its flow table: flows and reassembly; its events: alerts; the
SMBv1 inventory and the DNS detector: theirs).  :func:`summary` gathers them
into the ``stats`` shape; :func:`export_state` and :func:`merge_state` carry
them, with the SMBv1 inventory, from worker processes to the parent.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_state", "merge_state", "summary"]

#: Counters summed over shards.
_SUMMED = (
    "smb_packets", "truncated", "smb_messages", "smb_malformed", "flows_total", "flows_evicted",
    "flows_timed_out", "gaps", "gap_bytes", "dup_bytes", "overlap_bytes", "desyncs",
    "resync_skipped_bytes", "ooo_cut", "alerts_total", "alerts_suppressed", "smb1_pairs_dropped",
)  # fmt: skip
#: Counters every shard sees whole (taken from shard 0).
_WHOLE = ("packets", "bytes", "malformed", "not_tcp_udp", "other_ports", "dns_packets", "dns_malformed")
_TABLE = (
    "flows_total", "flows_evicted", "flows_timed_out", "gaps", "gap_bytes", "dup_bytes", "overlap_bytes",
    "desyncs", "resync_skipped_bytes", "ooo_cut",
)  # fmt: skip


def _places(engine: Any) -> dict[str, tuple[Any, str]]:
    """Counter name (as exported) -> the object that keeps it and its attribute there."""
    places: dict[str, tuple[Any, str]] = {k: (engine, k) for k in _SUMMED + _WHOLE}
    places.update({k: (engine.table, k) for k in _TABLE})
    places["alerts_total"] = (engine.out, "alerts_total")
    places["alerts_suppressed"] = (engine.out, "alerts_suppressed")
    places["smb1_pairs_dropped"] = (engine.inventory, "dropped")
    places["dns_malformed"] = (engine.dns, "malformed")
    return places


def export_state(engine: Any) -> dict[str, Any]:
    """Counters and SMBv1 pairs, JSON-able (call after the engine's ``end_source``)."""
    out = engine.out
    return {
        "counters": {k: getattr(obj, attr) for k, (obj, attr) in _places(engine).items()},
        "alerts_by_signature": dict(out.alerts_by_signature),
        "alert_sources": dict(out.alert_sources),
        "events": dict(out.counts),
        "sources": list(engine.sources_seen),
        "smb1_pairs": engine.inventory.export(),
    }


def merge_state(engine: Any, state: dict[str, Any], primary: bool) -> None:
    """Add a shard's :func:`export_state`; ``primary``: shard 0 (whole-traffic counters)."""
    counters = state["counters"]
    places = _places(engine)
    for k in _SUMMED:
        obj, attr = places[k]
        setattr(obj, attr, getattr(obj, attr) + counters[k])
    if primary:
        for k in _WHOLE:
            obj, attr = places[k]
            setattr(obj, attr, counters[k])
        engine.sources_seen = list(state["sources"])
    out = engine.out
    out.alerts_by_signature.update(state["alerts_by_signature"])
    out.alert_sources.update(state["alert_sources"])
    out.counts.update(state["events"])
    engine.inventory.load(state["smb1_pairs"])


def summary(engine: Any) -> dict[str, Any]:
    """The ``stats`` summary of everything the engine has seen."""
    table, out, inventory = engine.table, engine.out, engine.inventory
    return {
        "inputs": list(engine.sources_seen),
        "packets": engine.packets,
        "bytes": engine.bytes,
        "smb_packets": engine.smb_packets,
        "dns_packets": engine.dns_packets,
        "smb_messages": engine.smb_messages,
        "flows": table.flows_total,
        "alerts": out.alerts_total,
        "alerts_by_signature": dict(sorted(out.alerts_by_signature.items())),
        "alerts_suppressed": out.alerts_suppressed,
        "top_sources": [
            {"ip": ip, "alerts": n} for ip, n in sorted(out.alert_sources.items(), key=lambda x: (-x[1], x[0]))[:10]
        ],
        "smb1_pairs": len(inventory.pairs),
        "smb1_pairs_dropped": inventory.dropped,
        "smb1_speakers": inventory.speakers(50),
        "skipped": {
            "malformed_packets": engine.malformed,
            "truncated_packets": engine.truncated,
            "not_tcp_udp": engine.not_tcp_udp,
            "other_ports": engine.other_ports,
            "malformed_smb_messages": engine.smb_malformed,
            "malformed_dns": engine.dns.malformed,
        },
        "reassembly": {
            "gaps": table.gaps,
            "gap_bytes": table.gap_bytes,
            "duplicate_bytes": table.dup_bytes,
            "overlap_bytes": table.overlap_bytes,
            "desyncs": table.desyncs,
            "resync_skipped_bytes": table.resync_skipped_bytes,
            "flows_evicted": table.flows_evicted,
            "flows_timed_out": table.flows_timed_out,
            "ooo_cut": table.ooo_cut,
        },
    }
