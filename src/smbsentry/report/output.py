"""Result writers: jsonl (streamed), json, csv (streamed), a terminal table, html.

jsonl and csv write and flush each host as it finishes, so a killed scan
keeps everything it finished.  json and table need the whole set and are
written at the end, also after an interrupt.  Machine-readable output goes
to stdout or the file; progress and logs go to stderr only.
"""

from __future__ import annotations

import csv
import json
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..model import BAD, HostResult
from ..protocol.transport import SMB_PORT_NAMES

FORMATS = ("table", "jsonl", "json", "csv", "html")

CSV_COLUMNS = [
    "address",
    "hostname",
    "port_445",
    "port_139",
    "smb1",
    "smb1_signing",
    "smb2_dialects",
    "smb2_signing",
    "compression",
    "netbios_name",
    "netbios_domain",
    "dns_name",
    "os_name",
    "os_build",
    "native_os",
    "samba_version",
    "null_session",
    "guest_session",
    "findings",
    "errors",
]


def _flag(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def csv_row(d: dict) -> list[str]:
    """One host record (the contract's JSON: HostResult.to_dict() or a stored record) as a CSV row; read from
    the dict, so respond's follower needs no HostResult for each record it reads."""
    s1, s2, ident, ports = d.get("smb1"), d.get("smb2"), d.get("identity") or {}, d.get("ports") or {}
    build = ident.get("os_build")
    return [
        d["address"],
        d.get("hostname") or "",
        ports.get("445", ""),
        ports.get("139", ""),
        _flag(s1.get("enabled")) if s1 else "",
        (s1.get("signing") or "") if s1 else "",
        " ".join(s2.get("dialects") or ()) if s2 else "",
        (s2.get("signing") or "") if s2 else "",
        " ".join(s2.get("compression") or ()) if s2 else "",
        ident.get("netbios_name") or "",
        ident.get("netbios_domain") or "",
        ident.get("dns_name") or "",
        ident.get("os_name") or "",
        "" if build is None else str(build),
        (s1.get("native_os") or "") if s1 else "",
        ident.get("samba_version") or "",
        _flag(ident.get("null_session")),
        _flag(ident.get("guest_session")),
        " ".join(f"{f.get('id', '')}:{f.get('status', 'unknown')}" for f in d.get("findings") or ()),
        " | ".join(d.get("errors") or ()),
    ]


class Writer:
    def __init__(self, fmt: str, stream: IO[str], console: Console | None = None, lang: str = "en") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.fmt = fmt
        self.lang = lang
        self.stream = stream
        self.console = console
        self.results: list[HostResult] = []
        self._csv = None
        if fmt == "csv":
            self._csv = csv.writer(stream)
            self._csv.writerow(CSV_COLUMNS)
            stream.flush()

    def add(self, result: HostResult, data: dict | None = None) -> None:
        """Write or keep one host; `data` is result.to_dict() when the caller already made it."""
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(data if data is not None else result.to_dict(), ensure_ascii=False) + "\n")
            self.stream.flush()
        elif self.fmt == "csv":
            assert self._csv is not None
            self._csv.writerow(csv_row(data if data is not None else result.to_dict()))
            self.stream.flush()
        else:
            self.results.append(result)

    def finish(self) -> None:
        if self.fmt == "json":
            json.dump([r.to_dict() for r in self.results], self.stream, ensure_ascii=False, indent=2)
            self.stream.write("\n")
        elif self.fmt == "table":
            console = self.console or Console(file=self.stream)
            console.print(host_table(self.results))
        elif self.fmt == "html":
            from .html import render

            self.stream.write(render(self.results, lang=self.lang))
        self.stream.flush()


def host_table(results: list[HostResult]) -> Table:
    """One row per host; remote strings are passed as Text, never markup."""
    table = Table(title=f"hosts ({len(results)})", show_lines=False)
    for col in ("address", *SMB_PORT_NAMES, "SMBv1", "SMB2/3 dialects", "signing", "name", "domain", "OS", "findings (vulnerable, likely)"):
        table.add_column(col, overflow="fold")
    for r in sorted(results, key=_addr_key):
        s1, s2, ident = r.smb1, r.smb2, r.identity
        smb1 = "-" if s1 is None else ("ON" if s1.enabled else "off")
        signing = []
        if s1 and s1.enabled and s1.signing:
            signing.append(f"v1 {s1.signing}")
        if s2 and s2.signing:
            signing.append(f"v2 {s2.signing}")
        notes = _finding_notes(r)
        table.add_row(
            Text(r.address),
            *(Text(r.ports.get(p, "")) for p in SMB_PORT_NAMES),
            Text(smb1, style="bold red" if smb1 == "ON" else ""),
            Text(" ".join(s2.dialects) if s2 else "-"),
            Text(", ".join(signing)),
            Text(ident.netbios_name or ""),
            Text(ident.netbios_domain or ""),
            Text(ident.os_name or (s1.native_os if s1 and s1.native_os else "") or ""),
            notes,
        )
    return table


def _finding_notes(r: HostResult) -> Text:
    """Vulnerable ids in red, likely in yellow, then counts of unknowns and
    errors; per-port findings (smbv1-enabled) appear once with their ports."""
    groups: dict[str, list[str]] = {"vulnerable": [], "likely": []}
    unknown = 0
    for f in r.findings:
        if f.status in groups:
            label = f.id if f.port is None or f.id != "smbv1-enabled" else f"{f.id}({f.port})"
            groups[f.status].append(label)
        elif f.status == "unknown":
            unknown += 1
    text = Text()
    merged: dict[str, list[str]] = {}
    for status in BAD:
        for label in groups[status]:
            base, _, port = label.partition("(")
            merged.setdefault(f"{status}:{base}", []).append(port.rstrip(")"))
    for key, ports in merged.items():
        status, base = key.split(":", 1)
        ports = [p for p in ports if p]
        label = f"{base}({','.join(ports)})" if ports else base
        text.append(label + " ", style="bold red" if status == "vulnerable" else "yellow")
    if unknown:
        text.append(f"{unknown} unknown ", style="dim")
    if r.errors:
        text.append(f"{len(r.errors)} error(s)", style="dim")
    return text


def _addr_key(r: HostResult):
    import ipaddress

    try:
        ip = ipaddress.ip_address(r.address)
        return (ip.version, int(ip))
    except ValueError:
        return (9, 0)
