"""From what a person asked for to a scan ready to run: one place for every way a scan starts.

`prepare(ScanRequest)` checks the request (format, checks, ports, dialects,
targets, the password), opens the store and begins the scan there (or, with
`resume`, takes the stored scan's targets and options and the hosts it has),
and returns the scan.runner.LocalScan that runs it.  Everything it refuses
is a RequestError with one line, which the callers print and turn into exit
status 2; a store that cannot be opened is a RequestError too (the caller
may say --no-store).

`scan_options()` is the one builder of the scanner's ScanOptions from the
request's words (checks, ports, timeout, dialects, credentials): the local
scan, `respond`, the dashboard's scans and the Celery scan engines
(engines/app.py, from a signed job) all build their options here.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..protocol.transport import SMB_PORTS_TEXT
from ..scan.runner import LocalScan

LANGS = ("en", "zh")


class RequestError(ValueError):
    """A request that cannot be run: the message is one line for the person who made it."""


@dataclass
class ScanRequest:
    targets: list[str] = field(default_factory=list)
    targets_files: list[Path] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    ports: str = SMB_PORTS_TEXT
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
    resume: int | None = None  # a stored scan to complete: its targets and options, its finished hosts skipped
    allow_failed_logon: bool = False  # the opt-in probes that send a logon the host refuses (LDAP binds on DCs)


_PATHS = ("targets_files", "output")


def request_to_json(req: ScanRequest) -> str:
    """The request as one JSON object (paths as strings): how a scan is handed to a worker process."""
    data = {f.name: getattr(req, f.name) for f in fields(ScanRequest)}
    data["targets_files"] = [str(p) for p in req.targets_files]
    data["output"] = str(req.output) if req.output is not None else None
    return json.dumps(data)


def request_from_json(text: str) -> ScanRequest:
    """request_to_json's inverse; RequestError for anything that is not such an object (bounded by the caller)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(ScanRequest)}:
            raise ValueError("not a scan request")
        data["targets_files"] = [Path(p) for p in data.get("targets_files") or []]
        data["output"] = Path(data["output"]) if data.get("output") is not None else None
        return ScanRequest(**data)
    except (ValueError, TypeError, RecursionError) as exc:
        raise RequestError(f"bad scan request: {exc}") from None


def parse_ports(text: str) -> tuple[int, ...]:
    ports = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise RequestError(f"bad port {part!r} in --ports (expected e.g. {SMB_PORTS_TEXT})")
        ports.append(int(part))
    return tuple(dict.fromkeys(ports))


def password_for(user: str, domain: str) -> str:
    """SMBSENTRY_PASSWORD, or a prompt on a terminal: never the command line.  The one prompt of
    every credentialed command (scan, respond, audit --remote)."""
    password = os.environ.get("SMBSENTRY_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise RequestError("--user needs a password: set SMBSENTRY_PASSWORD (it is never read from the command line)")
        password = getpass.getpass(f"Password for {domain + chr(92) if domain else ''}{user}: ")
    return password


def check_kb() -> None:
    """The knowledge base loads (the packaged data and a newer catalog `kb update` kept): checked before a scan, so a
    damaged user catalog is one line and exit 2, not an internal error on every host and a clean-looking exit 0."""
    from ..kb.store import KbDataError, kb

    try:
        kb()
    except KbDataError as exc:
        raise RequestError(f"the knowledge base cannot be read: {exc} (`smbsentry kb info` says which file)") from None


def check_format(fmt: str) -> None:
    from ..report.output import FORMATS

    if fmt not in FORMATS:
        raise RequestError(f"unknown --format {fmt!r} (choose from {', '.join(FORMATS)})")


def select_checks(checks: str) -> tuple:
    """The Check objects `--checks` names (default | all | none | ids)."""
    from ..checks.registry import select

    try:
        return tuple(select(checks))
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def split(ports: tuple[int, ...], selected: tuple) -> tuple[tuple[int, ...], set[int]]:
    """(SMB ports, service ports): the service ports the checks ask for among those given."""
    from ..scan.host import split_ports

    return split_ports(ports, selected)


def target_set(targets, files, exclude, smb_ports, service_ports):
    """The TargetSet of a request: nmap/masscan hosts count when one of the TCP ports probed is open."""
    from ..discover.targets import TargetError, TargetSet

    try:
        return TargetSet(list(targets or []), files=list(files or []), excludes=list(exclude or []),
                         ports=set(smb_ports) | (set(service_ports) - {137}))
    except TargetError as exc:
        raise RequestError(str(exc)) from None


def scan_options(selected: tuple, ports: tuple[int, ...], *, timeout: float = 5.0, dialects: str = "range",
                 user: str | None = None, password: str = "", domain: str = "", host_timeout: float | None = None,
                 failed_logon_probes: bool = False):
    """The scanner's ScanOptions: SMB ports and the asked service ports, the checks, the credentials."""
    from ..scan.fingerprint import ScanOptions
    from ..scan.session import Credentials

    from ..scan.host import domain_only_ports

    smb_ports, service_ports = split(ports, selected)
    creds = Credentials(user, password, domain) if user else None
    return ScanOptions(ports=smb_ports, timeout=timeout, credentials=creds, dialect_method=dialects, checks=selected,
                       service_ports=service_ports, domain_only_ports=domain_only_ports(ports, selected) & service_ports,
                       host_timeout=host_timeout or None,
                       failed_logon_probes=failed_logon_probes)


def _resumed(req: ScanRequest):
    """(the request with the stored scan's targets and options, the store, the addresses it has)."""
    if req.targets or req.targets_files:
        raise RequestError("--resume takes its targets from the stored scan: give no targets")
    if not req.store:
        raise RequestError("--resume needs the store")
    from ..store import Store, StoreError

    store = None
    try:
        store = Store.open(req.db)
        meta = store.scan(req.resume)
        done = store.resume_scan(req.resume)
    except StoreError as exc:
        _close(store)
        raise RequestError(str(exc)) from None
    saved = meta.get("options") or {}
    req = replace(
        req, targets=saved.get("targets", meta.get("targets") or []),
        targets_files=[Path(f) for f in saved.get("targets_files", [])], exclude=saved.get("exclude", []),
        ports=saved.get("ports", req.ports), checks=saved.get("checks", req.checks),
        timeout=saved.get("timeout", req.timeout), host_timeout=saved.get("host_timeout", req.host_timeout),
        dialects=saved.get("dialects", req.dialects),
        discovery=saved.get("discovery", "none"),  # a scan recorded before discovery existed swept nothing
        retries=saved.get("retries", req.retries), allow_failed_logon=saved.get("allow_failed_logon", False))
    return req, store, done


def _close(store) -> None:
    if store is not None:
        from ..store import StoreError

        try:
            store.close()
        except StoreError:
            pass


def _check(req: ScanRequest) -> tuple:
    """The request's words checked, in the order the command line always said them; the checks selected."""
    selected = select_checks(req.checks)
    from ..model import SEVERITIES

    if req.fail_on is not None and req.fail_on not in SEVERITIES[:-1]:
        raise RequestError(f"unknown --fail-on {req.fail_on!r} (choose from critical, high, medium, low)")
    if req.lang not in LANGS:
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
    return selected


def _begin(req: ScanRequest):
    """The store with the scan begun in it, and the scan's id."""
    from ..store import Store, StoreError

    store = None
    try:
        store = Store.open(req.db)
        scan_id = store.begin_scan(
            list(req.targets) + [str(f) for f in req.targets_files],
            {"targets": list(req.targets), "targets_files": [str(f) for f in req.targets_files], "exclude": list(req.exclude),
             "ports": req.ports, "checks": req.checks, "timeout": req.timeout, "dialects": req.dialects, "user": req.user,
             "domain": req.domain, "host_timeout": req.host_timeout, "discovery": req.discovery, "retries": req.retries,
             "allow_failed_logon": req.allow_failed_logon},
        )
    except StoreError as exc:
        _close(store)
        raise RequestError(str(exc)) from None
    return store, scan_id


def prepare(req: ScanRequest) -> LocalScan:
    """The LocalScan for a request, its scan begun (or resumed) in the store; RequestError otherwise."""
    check_format(req.fmt)
    check_kb()
    store, scan_id, done = None, None, set()
    if req.resume is not None:
        req, store, done = _resumed(req)
        scan_id = req.resume
    try:
        selected = _check(req)
        ports = parse_ports(req.ports)
        smb_ports, service_ports = split(ports, selected)
        targets = target_set(req.targets, req.targets_files, req.exclude, smb_ports, service_ports)
        password = password_for(req.user, req.domain) if req.user else ""
    except RequestError:
        _close(store)
        raise
    options = scan_options(selected, ports, timeout=req.timeout, dialects=req.dialects, user=req.user, password=password,
                           domain=req.domain, host_timeout=req.host_timeout,
                           failed_logon_probes=req.allow_failed_logon)
    if store is None and req.store:
        store, scan_id = _begin(req)
    from ..report.output import Writer

    return LocalScan(options, targets, fmt=req.fmt, lang=req.lang, output=req.output, quiet=req.quiet,
                     concurrency=req.concurrency, rate=req.rate, store=store, scan_id=scan_id, done=done,
                     fail_on=req.fail_on, discovery=req.discovery, retries=req.retries, writer=Writer)
