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
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

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
    proc: subprocess.Popen | None = None  # the worker process (app.scans.worker_main)
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
    """Scans started from the web, each in a worker process (app.scans.worker_main) with one thread here
    following it to its end."""

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
        from ..app.scanprep import ScanRequest, request_to_json

        # No credentials and no prompt from the web: the request carries only what the form allows.
        req = ScanRequest(list(targets), ports=ports, checks=checks, db=self.db_url, fmt="jsonl",
                          output=Path(os.devnull), quiet=True)
        job.proc = subprocess.Popen([sys.executable, "-c", "from smbsentry.app.scans import worker_main; worker_main()"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
        threading.Thread(target=self._wait, args=(job, request_to_json(req)), name=f"smbsentry-web-job-{job.id}",
                         daemon=True).start()
        return job

    def _wait(self, job: Job, request: str) -> None:
        """Hand the request over, follow what the worker says (the scan id, then its exit status), keep the
        last of its stderr; the job ends when the process has."""
        proc, said, code = job.proc, [], None
        tail = threading.Thread(target=lambda: said.append(proc.stderr.read()), daemon=True)
        tail.start()
        try:
            proc.stdin.write(request)
            proc.stdin.close()
        except OSError:
            pass
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and isinstance(msg.get("scan"), int):
                job.scan_id = msg["scan"]
            elif isinstance(msg, dict) and isinstance(msg.get("end"), int):
                code = msg["end"]
        proc.wait()
        tail.join()
        job.stderr = "".join(said)[-2000:]
        job.returncode = code if code is not None else proc.returncode  # killed before it could say

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.id)

    def stop_all(self) -> None:
        for job in self._jobs.values():
            if job.proc is not None and job.proc.poll() is None:
                job.proc.terminate()
