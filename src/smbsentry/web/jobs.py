"""Scans started from the dashboard: checked against the admin's allowed ranges, then run through
the application layer (app/scans.py `run`, the same run as `smbsentry scan TARGETS --db URL
--format jsonl -o /dev/null -q`) in a worker process of its own, so the server stays responsive
and a scan can be stopped; the results go to the store as they come, and a scan that fails
says why (its last line on stderr) on the job page.

Targets here are stricter than on the command line: only IP addresses, CIDRs and ranges
(a.b.c.d-e.f.g.h, a.b.c.d-h), because a host name could resolve anywhere.  Every address of
every target must lie inside one of the allowed networks (``smbsentry serve --allow``);
no allowed ranges means no scans from the web at all.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_TARGETS = 64
MAX_RUNNING = 4
PORTS_RE = re.compile(r"^\d{1,5}(,\d{1,5}){0,7}$")
CHECKS = ("default", "all")
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(ValueError):
    """A target that is not an address, CIDR or range, or lies outside the allowed ranges."""


def parse_allowed(ranges: list[str]) -> list[Net]:
    nets: list[Net] = []
    for r in ranges:
        for part in str(r).replace(",", " ").split():
            lo, hi = _bounds(part)
            nets.extend(ipaddress.summarize_address_range(lo, hi))
    return list(ipaddress.collapse_addresses([n for n in nets if n.version == 4])) + \
        list(ipaddress.collapse_addresses([n for n in nets if n.version == 6]))


def _bounds(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    text = text.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return net.network_address, net.broadcast_address
        if "-" in text:
            a, b = text.split("-", 1)
            lo = ipaddress.ip_address(a)
            if lo.version == 4 and re.fullmatch(r"\d{1,3}", b):
                hi = ipaddress.ip_address(".".join(a.split(".")[:3] + [b]))
            else:
                hi = ipaddress.ip_address(b)
            if hi.version != lo.version or hi < lo:
                raise ValueError("bad range")
            return lo, hi
        ip = ipaddress.ip_address(text)
        return ip, ip
    except ValueError:
        raise TargetRefused(f"{text!r} is not an IP address, CIDR or range (host names are not accepted here)") from None


def check_targets(text: str, allowed: list[Net]) -> list[str]:
    """The targets of `text` (whitespace or comma separated), each inside an allowed network."""
    if not allowed:
        raise TargetRefused("scans from the dashboard are disabled: start smbsentry serve with --allow RANGE")
    parts = text.replace(",", " ").split()
    if not parts:
        raise TargetRefused("no targets")
    if len(parts) > MAX_TARGETS:
        raise TargetRefused(f"at most {MAX_TARGETS} targets")
    spans = _spans(allowed)
    for p in parts:
        lo, hi = _bounds(p)
        if not any(a.version == lo.version and a <= lo and hi <= b for a, b in spans):
            raise TargetRefused(f"{p} is outside the allowed ranges ({', '.join(map(str, allowed))})")
    return parts


def _spans(nets: list[Net]) -> list[tuple]:
    """The allowed networks as merged (first, last) address intervals, so a range may span adjacent networks."""
    spans: list[list] = []
    for n in sorted(nets, key=lambda n: (n.version, n.network_address)):
        lo, hi = n.network_address, n.broadcast_address
        if spans and spans[-1][0].version == lo.version and int(lo) <= int(spans[-1][1]) + 1:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    return [tuple(s) for s in spans]


@dataclass
class Job:
    id: int
    targets: list[str]
    ports: str
    checks: str
    started: float = field(default_factory=time.time)
    proc: Any = None  # the worker process (multiprocessing, spawned)
    returncode: int | None = None
    scan_id: int | None = None
    stderr: str = ""
    user: str = ""

    @property
    def state(self) -> str:
        if self.returncode is None:
            return "running"
        return "finished" if self.returncode == 0 else "failed"

    @property
    def error(self) -> str | None:
        """Why a failed scan failed: its last line on stderr, or its exit status."""
        if self.state != "failed":
            return None
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {self.returncode}"


class Jobs:
    """Scans started from the web, each in a spawned worker process with one thread here waiting for its end."""

    def __init__(self, db_url: str, store) -> None:
        self.db_url = db_url
        self.store = store
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._next = 1

    def start(self, targets: list[str], ports: str, checks: str, user: str) -> Job:
        if not PORTS_RE.match(ports) or not all(0 < int(p) < 65536 for p in ports.split(",")):
            raise TargetRefused(f"bad ports {ports!r}")
        if checks not in CHECKS:
            raise TargetRefused(f"bad checks {checks!r} (default or all)")
        with self._lock:
            if sum(1 for j in self._jobs.values() if j.returncode is None) >= MAX_RUNNING:
                raise TargetRefused(f"{MAX_RUNNING} scans are running already: wait for one to finish")
            job = Job(self._next, targets, ports, checks, user=user)
            self._next += 1
            self._jobs[job.id] = job
        from ..app.scanprep import ScanRequest
        from ..app.scans import worker

        # No credentials and no prompt from the web: the request carries only what the form allows.
        req = ScanRequest(list(targets), ports=ports, checks=checks, db=self.db_url, fmt="jsonl",
                          output=Path(os.devnull), quiet=True)
        ctx = multiprocessing.get_context("spawn")  # never fork a threaded server
        ours, theirs = ctx.Pipe(duplex=False)
        job.proc = ctx.Process(target=worker, args=(req, theirs), name=f"smbsentry-web-scan-{job.id}", daemon=True)
        job.proc.start()
        theirs.close()
        threading.Thread(target=self._wait, args=(job, ours), name=f"smbsentry-web-job-{job.id}", daemon=True).start()
        return job

    def _wait(self, job: Job, conn) -> None:
        code = None
        try:
            while True:
                kind, *rest = conn.recv()
                if kind == "scan":
                    job.scan_id = rest[0]
                elif kind == "end":
                    code, job.stderr = rest[0], rest[1]
        except (EOFError, OSError):
            pass
        finally:
            conn.close()
        job.proc.join()
        if code is None:  # ended before it could say (killed)
            code = job.proc.exitcode if job.proc.exitcode is not None else 1
            job.stderr = job.stderr or f"the scan process ended (exit status {code})"
        job.returncode = code

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.id)

    def stop_all(self) -> None:
        for job in self._jobs.values():
            if job.proc is not None and job.proc.is_alive():
                job.proc.terminate()
