"""From what a person asked for to a scan ready to run: one place for the CLI's `scan` and `respond`.

`prepare(ScanRequest)` checks the request (checks, ports, dialects, targets,
the password), opens the store and begins the scan there, and returns the
scan.runner.LocalScan that runs it. Everything it refuses is a RequestError
with one line, which the callers print and turn into exit status 2; a store
that cannot be opened is a RequestError too (the caller may say --no-store).
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..scan.runner import LocalScan


class RequestError(ValueError):
    """A request that cannot be run: the message is one line for the person who made it."""


@dataclass
class ScanRequest:
    targets: list[str] = field(default_factory=list)
    targets_files: list[Path] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    ports: str = "445,139"
    checks: str = "default"
    timeout: float = 5.0
    host_timeout: float = 30.0
    dialects: str = "range"
    user: str | None = None
    domain: str = ""
    concurrency: int = 256
    rate: float = 0
    db: str | None = None
    store: bool = True
    fmt: str = "jsonl"
    lang: str = "en"
    output: Path | None = None
    quiet: bool = False
    fail_on: str | None = None
    discovery: str = "auto"  # smbsentry.discover.stage.MODES or none
    retries: int = 0


def parse_ports(text: str) -> tuple[int, ...]:
    ports = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise RequestError(f"bad port {part!r} in --ports (expected e.g. 445,139)")
        ports.append(int(part))
    return tuple(dict.fromkeys(ports))


def password_for(user: str, domain: str) -> str:
    """SMBSENTRY_PASSWORD, or a prompt on a terminal: never the command line."""
    password = os.environ.get("SMBSENTRY_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise RequestError("--user needs a password: set SMBSENTRY_PASSWORD (it is never read from the command line)")
        password = getpass.getpass(f"Password for {domain + chr(92) if domain else ''}{user}: ")
    return password


def prepare(req: ScanRequest) -> LocalScan:
    """The LocalScan for a request, its scan begun in the store (when req.store); RequestError otherwise."""
    from ..checks.registry import select
    from ..model import SEVERITIES
    from ..scan.fingerprint import ScanOptions
    from ..scan.host import split_ports
    from ..scan.session import Credentials
    from ..discover.targets import TargetError, TargetSet

    try:
        selected = tuple(select(req.checks))
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    if req.fail_on is not None and req.fail_on not in SEVERITIES[:-1]:
        raise RequestError(f"unknown --fail-on {req.fail_on!r} (choose from critical, high, medium, low)")
    if req.lang not in ("en", "zh"):
        raise RequestError(f"unknown --lang {req.lang!r} (en or zh)")
    if req.dialects not in ("range", "exact"):
        raise RequestError(f"unknown --dialects {req.dialects!r} (range or exact)")
    from ..discover.stage import check_mode

    try:
        check_mode(req.discovery)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    if not req.targets and not req.targets_files:
        raise RequestError("no targets: give addresses, ranges or --targets-file")
    smb_ports, service_ports = split_ports(parse_ports(req.ports), selected)
    try:
        target_set = TargetSet(req.targets, files=req.targets_files, excludes=req.exclude,
                               ports=set(smb_ports) | (service_ports - {137}))
    except TargetError as exc:
        raise RequestError(str(exc)) from None
    creds = Credentials(req.user, password_for(req.user, req.domain), req.domain) if req.user else None
    options = ScanOptions(ports=smb_ports, timeout=req.timeout, credentials=creds, dialect_method=req.dialects, checks=selected,
                          service_ports=service_ports, host_timeout=req.host_timeout or None)
    store = scan_id = None
    if req.store:
        from ..store import Store, StoreError

        try:
            store = Store.open(req.db)
            scan_id = store.begin_scan(
                list(req.targets) + [str(f) for f in req.targets_files],
                {"targets": list(req.targets), "targets_files": [str(f) for f in req.targets_files], "exclude": list(req.exclude),
                 "ports": req.ports, "checks": req.checks, "timeout": req.timeout, "dialects": req.dialects, "user": req.user,
                 "domain": req.domain, "host_timeout": req.host_timeout, "discovery": req.discovery, "retries": req.retries},
            )
        except StoreError as exc:
            raise RequestError(str(exc)) from None
    from ..report.output import Writer

    return LocalScan(options, target_set, fmt=req.fmt, lang=req.lang, output=req.output, quiet=req.quiet,
                     concurrency=req.concurrency, rate=req.rate, store=store, scan_id=scan_id, fail_on=req.fail_on,
                     discovery=req.discovery, retries=req.retries, writer=Writer)
