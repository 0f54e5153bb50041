"""Writing detector events: EVE-style JSON lines or a table, then a summary.

:class:`JsonlWriter` writes every event as one JSON object per line, alerts
flushed at once (a pipeline sees them while the capture is still being
read); the summary is a last ``{"event_type": "stats", ...}`` line.

:class:`TableWriter` prints one line per alert as it is found (flow and
smb1-usage events are folded into the summary) and, at the end, rich tables:
alerts by signature, top sources, SMBv1 speakers, input and reassembly
counters.  :func:`summary_lines` is the short human summary written to stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from .events import iso_time
from .signatures import SIGNATURES

__all__ = ["FORMATS", "JsonlWriter", "TableWriter", "json_encoder", "summary_lines"]

FORMATS = ("jsonl", "table")


def json_encoder() -> Callable[[Any], str]:
    """``json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))``, set up once.

    ``JSONEncoder.encode`` builds its C encoder again for every call; an
    event stream of tens of thousands of lines keeps one (with the same
    output: the tests compare; events are never circular, so the circular
    reference check is left out).  Without the C accelerator: JSONEncoder.
    """
    plain = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return plain.encode
    encode = make(None, plain.default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
    return lambda obj: "".join(encode(obj, 0))


class JsonlWriter:
    def __init__(self, stream: TextIO, flush_every: int = 256) -> None:
        self.stream = stream
        self.flush_every = flush_every
        self._pending = 0
        self._dumps = json_encoder()

    def event(self, ev: dict[str, Any]) -> None:
        self.stream.write(self._dumps(ev) + "\n")
        self._pending += 1
        if ev["event_type"] == "alert" or self._pending >= self.flush_every:
            self.stream.flush()
            self._pending = 0

    def raw(self, line: str, alert: bool) -> None:
        """An event already encoded (by a worker process), with its newline."""
        self.stream.write(line)
        self._pending += 1
        if alert or self._pending >= self.flush_every:
            self.stream.flush()
            self._pending = 0

    def summary(self, stats: dict[str, Any]) -> None:
        self.event({"timestamp": iso_time(time.time()), "event_type": "stats", "stats": stats})
        self.stream.flush()


_SEVERITY_STYLE = {1: "bold red", 2: "yellow", 3: "cyan"}


class TableWriter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.alerts = 0

    def event(self, ev: dict[str, Any]) -> None:
        if ev["event_type"] != "alert":
            return
        if not self.alerts:
            self.console.print(
                f"{'time (UTC)':27} {'sev':3} {'signature':26} {'source':>21} -> {'destination':21} "
                f"{'frame':>7}  evidence",
                style="bold",
                highlight=False,
                soft_wrap=True,
            )
        self.alerts += 1
        a = ev["alert"]
        src = _endpoint(ev["src_ip"], ev.get("src_port"))
        dst = _endpoint(ev["dest_ip"], ev.get("dest_port"))
        self.console.print(
            f"{ev['timestamp']:27} {a['severity']:<3} {a['signature_id']:26} {src:>21} -> {dst:21} "
            f"{ev.get('frame', ''):>7}  {a.get('evidence', '')}",
            style=_SEVERITY_STYLE.get(a["severity"], ""),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    def summary(self, stats: dict[str, Any]) -> None:
        c = self.console
        if not self.alerts:
            c.print("No alerts.", highlight=False)
        c.print()
        t = Table(title="Alerts by signature", title_justify="left")
        t.add_column("signature id")
        t.add_column("alerts", justify="right")
        t.add_column("sev", justify="right")
        t.add_column("signature")
        for sid, n in stats["alerts_by_signature"].items():
            sig = SIGNATURES.get(sid)
            t.add_row(sid, str(n), str(sig.severity) if sig else "", sig.signature if sig else "")
        if stats["alerts_by_signature"]:
            c.print(t)
        if stats["top_sources"]:
            t = Table(title="Top alert sources", title_justify="left")
            t.add_column("source")
            t.add_column("alerts", justify="right")
            for row in stats["top_sources"]:
                t.add_row(row["ip"], str(row["alerts"]))
            c.print(t)
        if stats["smb1_speakers"]:
            t = Table(title=f"SMBv1 speakers ({stats['smb1_pairs']} client/server pairs)", title_justify="left")
            for col in ("client", "server", "port", "SMBv1 answered", "dialect", "server OS"):
                t.add_column(col)
            for row in stats["smb1_speakers"]:
                t.add_row(
                    row["client"],
                    row["server"],
                    str(row["port"]),
                    "yes" if row["spoken"] else "offered only",
                    row["dialect"] or "",
                    row["server_native_os"] or "",
                )
            c.print(t)
        for line in summary_lines(stats):
            c.print(line, highlight=False, markup=False, soft_wrap=True)


def _endpoint(ip: str, port: int | None) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def summary_lines(stats: dict[str, Any]) -> list[str]:
    """A few lines for humans: inputs, alerts, SMBv1, what was skipped, errors."""
    sk = stats["skipped"]
    ra = stats["reassembly"]
    by_sig = ", ".join(f"{k} {v}" for k, v in stats["alerts_by_signature"].items()) or "none"
    lines = [
        f"{stats['packets']:,} packets ({stats['smb_packets']:,} SMB, {stats['dns_packets']:,} DNS), "
        f"{stats['flows']:,} SMB flows, {stats['smb_messages']:,} SMB messages",
        f"alerts: {stats['alerts']} ({by_sig})"
        + (f"; {stats['alerts_suppressed']} repeats folded into flow events" if stats["alerts_suppressed"] else ""),
        f"SMBv1: {stats['smb1_pairs']} client/server pairs",
        f"skipped: {sk['malformed_packets']} malformed packets, {sk['truncated_packets']} cut by the snap length, "
        f"{sk['malformed_smb_messages']} malformed SMB messages, {sk['malformed_dns']} malformed DNS; "
        f"reassembly: {ra['gaps']} gaps ({ra['gap_bytes']:,} bytes lost), {ra['desyncs']} resyncs, "
        f"{ra['flows_evicted']} flows evicted",
    ]
    for err in stats.get("errors", []):
        lines.append(f"error: {err}")
    if stats.get("interrupted"):
        lines.append("interrupted: the summary covers the packets read before the interruption")
    detector = stats.get("detector", "compiled")
    if detector != "compiled":
        lines.append(f"note: the detector ran as {detector}, at about half the compiled speed")
    return lines
