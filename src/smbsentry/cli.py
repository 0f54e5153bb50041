"""The `smbsentry` command: parses arguments and calls the packages.

Thin on purpose: everything it does is a call into scan (and later audit,
detect, report, web).  Exit status follows contract.md: 0 success, 1 a
run-time failure (an output or the store could not be written; a scan lost
hosts to local resource errors), 2 bad usage or bad input (one line on
stderr, no traceback), 3 --fail-on, 130 after Ctrl-C or SIGTERM with the
finished hosts written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import __version__
from .protocol.transport import SMB_PORTS, SMB_PORTS_TEXT

app = typer.Typer(
    name="smbsentry",
    help="Find, prove, fix and watch SMB exposure (MS17-010, DoublePulsar, SMBGhost, SMBv1).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print one line on stderr and exit with `code`."""
    err.print(f"smbsentry: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"smbsentry {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Find, prove, fix and watch SMB exposure."""


@app.command(
    epilog=(
        "Examples:\n\n"
        "  smbsentry scan 10.0.0.0/24\n\n"
        "  smbsentry scan 10.0.0.1-50 10.0.1.0/24 --exclude 10.0.0.7 --format jsonl -o hosts.jsonl\n\n"
        "  smbsentry scan --targets-file nmap.xml --user audit --domain CORP   (password from SMBSENTRY_PASSWORD)"
    )
)
def scan(
    targets: list[str] = typer.Argument(None, help="Addresses, CIDRs, ranges (a.b.c.d-e.f.g.h, a.b.c.d-h), host names."),
    targets_file: list[Path] = typer.Option(
        [], "--targets-file", "-iL", help="File of targets: plain lines, nmap XML (-oX) or masscan JSON (-oJ)."
    ),
    exclude: list[str] = typer.Option([], "--exclude", help="Targets to skip (same syntax; repeatable)."),
    ports: str = typer.Option(SMB_PORTS_TEXT, "--ports", help="SMB ports to probe; the service ports 3389, 80, 443 (HTTPS), 88, 25, 143, 1352, 3264, 1000, 3000 137 (UDP) and 443 (UDP, SMB over QUIC, with the smb-over-quic check) add those services' safe fingerprints (all of them with --checks all)."),
    checks: str = typer.Option(
        "default", "--checks", help="default | all | none | comma-separated ids (see `smbsentry checks`)."
    ),
    fail_on: Optional[str] = typer.Option(
        None, "--fail-on", help="Exit 3 when a vulnerable or likely finding is at or above this severity (critical|high|medium|low)."
    ),
    concurrency: int = typer.Option(256, "--concurrency", min=1, max=100000, help="Hosts in flight at once."),
    rate: float = typer.Option(0, "--rate", min=0, help="Discovery probes per second (SYN packets, or connects without raw sockets; 0: 10,000), also the cap on new connections per second while fingerprinting (0: none)."),
    retries: int = typer.Option(0, "--retries", min=0, max=10, help="Discovery: probe silent addresses this many more times (for lossy links)."),
    discovery: Optional[str] = typer.Option(None, "--discovery", show_default=False, help="How address ranges are swept before fingerprinting: auto (syn with raw sockets, else connect; the default) | syn | connect | none (fingerprint every address). With --engines the default is none; auto, syn or connect has each engine sweep shard i of n of the ranges inside its --allow (syn where that engine may)."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.05, help="Seconds allowed for each step (connect, each reply)."),
    host_timeout: float = typer.Option(
        30.0, "--host-timeout", min=0, help="Seconds one host may take in all; then what was learned is kept and the undecided checks are unknown (0: no limit)."),
    dialects: str = typer.Option(
        "range",
        "--dialects",
        help="range: confirm the lowest and highest SMB2/3 dialect (3 connections); exact: negotiate each one.",
    ),
    user: Optional[str] = typer.Option(None, "--user", help="User for credentialed logons (password: SMBSENTRY_PASSWORD or a prompt)."),
    domain: str = typer.Option("", "--domain", help="Domain of --user."),
    allow_failed_logon: bool = typer.Option(False, "--allow-failed-logon", help="Allow probes that send a logon the host refuses (a random user that does not exist; Windows logs event 4625): LDAP signing and LDAPS channel binding on domain controllers (ntlm-relay). Off by default."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | jsonl | json | csv | html"),
    lang: str = typer.Option("en", "--lang", help="Language of the html report: en | zh."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write results to this file instead of stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary on stderr."),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL (SQLite path or postgresql://...); default SMBSENTRY_DB or the user data dir."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record this scan in the store."),
    resume: Optional[int] = typer.Option(None, "--resume", metavar="SCAN_ID", help="Complete a killed scan: same targets and options, finished hosts skipped."),
    engines: bool = typer.Option(False, "--engines", help="Scan through remote engines (Celery): shard the targets and route them to engine queues; with --discovery auto|syn|connect each engine sweeps shard i of n of the ranges inside its --allow."),
    queue: Optional[str] = typer.Option(None, "--queue", help="With --engines: the engine queue for every shard (or the default for unrouted ones)."),
    route: Optional[Path] = typer.Option(None, "--route", help="With --engines: ROUTES.yaml mapping queue -> CIDRs."),
    broker: Optional[str] = typer.Option(None, "--broker", help="With --engines: broker URL (default SMBSENTRY_BROKER or redis://127.0.0.1:6379/0)."),
    shard_size: int = typer.Option(256, "--shard-size", min=1, max=65536, help="With --engines: addresses per shard (within one /24)."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="With --engines: the shared job-signing key (default SMBSENTRY_ENGINE_KEY_FILE)."),
    broker_wait: float = typer.Option(60.0, "--broker-wait", min=0, help="With --engines: seconds to wait (retrying with backoff) for a broker that went away; then the scan stops, resumable with --resume."),
    stall_timeout: float = typer.Option(120.0, "--stall-timeout", min=0, help="With --engines: seconds of silence from an engine before its shard is sent again (0: never)."),
    engine_wait: float = typer.Option(5.0, "--engine-wait", min=0, help="With --engines: seconds to wait for a live engine with the same key on a queue before the scan stops."),
) -> None:
    """Discover SMB/NetBIOS hosts, fingerprint them and run the checks; every scan is recorded while it runs."""
    from .app.scanprep import ScanRequest
    from .app.scans import run as run_scan

    req = ScanRequest(list(targets or []), list(targets_file), list(exclude), ports, checks, timeout, host_timeout, dialects,
                      user, domain, concurrency, rate, db, not no_store, fmt=fmt, lang=lang, output=output, quiet=quiet,
                      fail_on=fail_on, discovery=discovery or ("none" if engines else "auto"), retries=retries, resume=resume,
                      allow_failed_logon=allow_failed_logon)
    if engines:
        raise typer.Exit(_scan_on_engines(req, queue, route, broker, shard_size, key_file, broker_wait, stall_timeout,
                                          engine_wait))
    raise typer.Exit(run_scan(req, err))


def _scan_on_engines(req, queue, route, broker, shard_size, key_file, broker_wait, stall_timeout, engine_wait) -> int:
    """`scan --engines`: what a local scan has and the engines have not yet is refused here, then engines/cli.py runs it."""
    from .app.scanprep import RequestError, check_format
    from .engines.cli import main_distributed_scan

    try:
        check_format(req.fmt)
    except RequestError as exc:
        fail(str(exc))
    if req.fmt not in ("jsonl", "table"):
        fail("--engines writes results to the store and, with --format jsonl, to -o/stdout")
    if req.discovery not in ("auto", "syn", "connect", "none"):
        fail(f"unknown --discovery {req.discovery!r} (choose from auto, syn, connect, none)")
    if req.retries and req.discovery == "none":
        fail("--retries is for discovery: with --engines give --discovery auto, syn or connect")
    if req.allow_failed_logon:
        fail("--allow-failed-logon is not carried to remote engines: scan locally to send the opt-in binds")
    if req.user and os.environ.get("SMBSENTRY_PASSWORD") is None:
        fail("--user needs a password: set SMBSENTRY_PASSWORD (it is never read from the command line)")
    return main_distributed_scan(
        req.targets, queue, str(route) if route else None, broker, req.db, shard_size,
        key_file=str(key_file) if key_file else None, targets_file=[str(f) for f in req.targets_files],
        exclude=req.exclude, ports=req.ports, checks=req.checks, timeout=req.timeout, dialects=req.dialects,
        rate=req.rate, user=req.user, domain=req.domain, quiet=req.quiet,
        output=(str(req.output) if req.output else ("-" if req.fmt == "jsonl" else None)), no_store=not req.store,
        resume=req.resume, broker_wait=broker_wait, stall_timeout=stall_timeout, engine_wait=engine_wait,
        discovery=req.discovery, retries=req.retries,
    )


@app.command(
    epilog=(
        "Examples:\n\n"
        "  smbsentry respond 10.0.0.0/24 -o response/\n\n"
        "  smbsentry respond 10.0.0.0/16 --exclude 10.0.9.0/24 -o response-zh/ --lang zh --inventories inventories/\n\n"
        "  SMBSENTRY_PASSWORD=... smbsentry respond 10.0.0.0/24 -o response/ --user audit --domain CORP --checks all"
    )
)
def respond(
    targets: list[str] = typer.Argument(None, help="Addresses, CIDRs, ranges, host names (as for scan)."),
    out_dir: Path = typer.Option(..., "--output", "-o", help="Folder for the reports, the plan and the results (written whole at the end): a new or empty folder, or one an earlier respond wrote and nothing else."),
    lang: str = typer.Option("en", "--lang", help="Language of the plan and of the list printed: en | zh (both reports are written)."),
    inventories: list[Path] = typer.Option([], "--inventories", help="Inventory files or folders to audit and merge (as for audit); repeatable."),
    targets_file: list[Path] = typer.Option([], "--targets-file", "-iL", help="File of targets: plain lines, nmap XML or masscan JSON."),
    exclude: list[str] = typer.Option([], "--exclude", help="Targets to skip (repeatable)."),
    ports: str = typer.Option(SMB_PORTS_TEXT, "--ports", help="As for scan: SMB ports, and service ports for their probes."),
    checks: str = typer.Option("default", "--checks", help="default | all | ID,... (as for scan)."),
    user: Optional[str] = typer.Option(None, "--user", help="User for credentialed logons (password: SMBSENTRY_PASSWORD or a prompt)."),
    domain: str = typer.Option("", "--domain", help="Domain of --user."),
    concurrency: int = typer.Option(256, "--concurrency", min=1, max=100000, help="Hosts in flight at once."),
    rate: float = typer.Option(0, "--rate", min=0, help="As for scan: discovery probes per second (0: 10,000), and the cap on new connections per second (0: none)."),
    retries: int = typer.Option(0, "--retries", min=0, max=10, help="As for scan: probe silent addresses this many more times."),
    discovery: str = typer.Option("auto", "--discovery", help="As for scan: auto | syn | connect | none."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.05, help="Seconds allowed for each step."),
    host_timeout: float = typer.Option(30.0, "--host-timeout", min=0, help="Seconds one host may take in all (0: no limit)."),
    top: int = typer.Option(20, "--top", min=0, max=100000, help="Rows of the ranked action list printed."),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL (SQLite path or postgresql://...)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the run in the store."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or scan summary on stderr."),
) -> None:
    """Scan, audit, plan and report in one run: the ranked to-do list of an outbreak.

    Scans the targets with the checks, merges the inventories given, plans the fix
    (isolate, back up, patch or work around, harden, verify), writes report.html,
    report-zh.html, report.json, hosts.csv, scan.jsonl and plan/ into the folder
    (all at once, never half-written), records the scan, the audits and the plan in
    the store, and prints the ranked action list."""
    from .app.respond import RespondRequest, respond as run_respond
    from .app.scanprep import ScanRequest

    if lang not in ("en", "zh"):
        fail(f"unknown --lang {lang!r} (en or zh)")
    scan_req = ScanRequest(list(targets or []), list(targets_file), list(exclude), ports, checks, timeout, host_timeout,
                           "range", user, domain, concurrency, rate, db, not no_store, quiet=quiet, lang=lang,
                           discovery=discovery, retries=retries)
    raise typer.Exit(run_respond(RespondRequest(scan_req, out_dir, lang, list(inventories), top), Console(), err))


@app.command(
    epilog=(
        "Examples:\n\n"
        "  smbsentry lab 127.50.0.1-40 --manifest lab.json\n\n"
        "  smbsentry lab 127.50.0.0/22 --mix win7-sp1-unpatched=500,win10-22h2=500 --port 4450\n\n"
        "  smbsentry lab 127.50.0.7 --mix win7-doublepulsar\n\n"
        "  smbsentry lab 127.50.0.1-19 --services 127.50.1.1-9   (then: smbsentry scan 127.50.1.1-9 --checks all)"
    )
)
def lab(
    lab_range: str = typer.Argument(..., metavar="RANGE", help="Loopback addresses to emulate (inside 127.0.0.0/8; any address of a network namespace you created, with --bind-mode per-address)."),
    port: list[str] = typer.Option([], "--port", help=f"Port to serve (repeatable or comma list; PORT=139 for NetBIOS framing). Default {SMB_PORTS_TEXT}; serving 139 also answers the NetBIOS name service on UDP 137, serving 445 SMB over QUIC on UDP 443 for the profiles that have it (Server 2025)."),
    mix: Optional[str] = typer.Option(None, "--mix", help="NAME, or PROFILE=COUNT,... (default: every profile in turn)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Write address -> profile -> expected findings as JSON."),
    bind_mode: str = typer.Option("auto", "--bind-mode", help="auto | device (one socket per port, bound to lo) | per-address (one socket per address)."),
    services: Optional[str] = typer.Option(None, "--services", metavar="RANGE", help="Also serve the service lab (RDP, HTTP/WebDAV, Kerberos, SMTP, IMAP, Notes, MDaemon, NBNS) on these loopback addresses, on the real ports."),
    services_mix: Optional[str] = typer.Option(None, "--services-mix", help="Service profiles: NAME or PROFILE=COUNT,... (default: every service profile in turn)."),
) -> None:
    """Serve emulated Windows and Samba hosts on loopback until interrupted.

    Each address answers as the profile the mix assigns it, built from the
    real replies in the capture corpus; the manifest says what a correct
    scanner must report for each address (`smbsentry lab-profiles` lists
    the profiles).  --services adds hosts with the other services the
    Shadow Brokers modules aim at; scan them with --checks all."""
    import logging

    from .lab.mix import LabConfigError
    from .lab.profiles import ProfileError
    from .lab.server import run as run_lab

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    try:
        run_lab(lab_range, port or SMB_PORTS, mix, str(manifest) if manifest else None, bind_mode, services, services_mix)
    except (LabConfigError, ProfileError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot serve: {exc}", code=1)
    except KeyboardInterrupt:
        pass


@app.command("lab-profiles")
def lab_profiles() -> None:
    """List the lab's profiles with the capture each reproduces."""
    from rich.table import Table

    from .lab import profiles

    table = Table(title="lab profiles")
    for col in ("profile", "description", "source"):
        table.add_column(col, overflow="fold")
    for name in profiles.ordered_names():
        p = profiles.get(name)
        table.add_row(name, p.description, "; ".join(f"{k}: {v}" for k, v in p.sources.items()))
    Console().print(table)
    from .lab.services import load_profiles as service_profiles

    data = service_profiles()
    table = Table(title="service lab profiles (smbsentry lab --services)")
    for col in ("profile", "services", "expected with --checks all"):
        table.add_column(col, overflow="fold")
    for name in data["order"]:
        prof = data["profiles"][name]
        table.add_row(name, ", ".join(prof["services"]), ", ".join(f"{k}: {v}" for k, v in prof["expected"].items()) or "-")
    Console().print(table)


@app.command("checks")
def list_checks() -> None:
    """List the checks: id, severity, whether it runs by default, and what it does."""
    from rich.table import Table

    from .checks.registry import select
    from .kb.findings import meta

    table = Table(title="checks")
    for col in ("id", "severity", "default", "title"):
        table.add_column(col)
    for check in select("all"):
        m = meta(check.id)
        table.add_row(check.id, m["severity"], "yes" if check.default else "no", m["title"])
    Console().print(table)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  smbsentry detect capture.pcapng.gz --format table\n\n"
        "  smbsentry detect *.pcap -o alerts.jsonl --jobs 0\n\n"
        "  smbsentry detect --interface eth0 --bpf 'tcp port 445 or tcp port 139 or udp port 53'   (root)\n\n"
        "  smbsentry detect --export-rules suricata -o smbsentry.rules"
    )
)
def detect(
    captures: list[Path] = typer.Argument(None, help="pcap / pcapng files, gzip-compressed too."),
    interface: Optional[str] = typer.Option(None, "--interface", "-i", help="Capture live from this interface (root)."),
    bpf: Optional[str] = typer.Option(None, "--bpf", help="Capture filter for --interface."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop a live capture after this many seconds."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl (EVE-style alerts and events) | table"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    scan_threshold: int = typer.Option(20, "--scan-threshold", min=2, help="Distinct SMB destinations from one source that raise smb-worm-scan..."),
    scan_window: float = typer.Option(10.0, "--scan-window", min=0.1, help="...within this many seconds."),
    no_flows: bool = typer.Option(False, "--no-flows", help="Do not emit the per-flow summary events."),
    jobs: int = typer.Option(1, "--jobs", min=0, max=256, help="Worker processes for capture files (0: one per CPU)."),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Exit 3 when an alert at or above this severity is raised."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on stderr."),
    store: bool = typer.Option(False, "--store", help="Record the SMBv1 inventory (who still speaks SMB1 to whom) in the store, for the plan and the dashboard."),
    db: Optional[str] = typer.Option(None, "--db", help="With --store: the store URL (default SMBSENTRY_DB or the user data dir)."),
    export_rules: Optional[str] = typer.Option(None, "--export-rules", help="Write the signatures as suricata or snort rules (sids 9710000-9710099) to --output or stdout, and exit."),
) -> None:
    """Detect SMB exploits, implants and worm spread in captures or live traffic.

    Signatures: ms17-010-probe, ms17-010-vulnerable-reply, eternalblue, eternalromance (EternalSynergy
    sends the same pattern), eternalchampion, doublepulsar-ping, doublepulsar-reply, doublepulsar-upload,
    doublepulsar-uninstall, smbghost-exploit, wannacry-killswitch-dns, smb-worm-scan; events: smb1-usage
    (who still speaks SMBv1 to whom) and per-flow summaries."""
    if export_rules is not None:
        from .detect.rules_export import FORMATS, export_rules as export

        if export_rules not in FORMATS:
            fail(f"--export-rules: {export_rules!r} is not one of {', '.join(FORMATS)}")
        _write_or_fail(export(export_rules, scan_threshold, scan_window), output)
        raise typer.Exit(0)
    from .detect.cli import main_detect

    code = main_detect(
        [str(c) for c in captures or []],
        interface,
        bpf,
        fmt,
        str(output) if output else None,
        scan_threshold,
        scan_window,
        flows=not no_flows,
        quiet=quiet,
        fail_on=fail_on,
        duration=duration,
        jobs=jobs,
        store=store or db is not None,
        db=db,
    )
    raise typer.Exit(code)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  aws ec2 describe-security-groups > sg.json && smbsentry rules sg.json\n\n"
        "  smbsentry rules iptables-save.txt nsg.json netsh-rules.txt --format jsonl\n\n"
        "  smbsentry rules exports/ --ports default,shadowbrokers"
    )
)
def rules(
    files: list[Path] = typer.Argument(..., help="AWS/Alibaba/Azure security group JSON, iptables-save, nft list ruleset, Get-NetFirewallRule CSV/JSON, netsh text (English or Chinese); folders too."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | jsonl | json"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    ports: Optional[str] = typer.Option(None, "--ports", help="default (tcp 135,139,445,3389, udp 137,138), shadowbrokers, N, tcp/N, udp/N; comma list."),
    wide_threshold: int = typer.Option(8, "--wide-threshold", min=0, max=32, help="IPv4 sources of this prefix length or shorter count as wide (IPv6: 4x)."),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL (SQLite path or postgresql://...); default SMBSENTRY_DB or the user data dir."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record this run in the store (as a scan of kind \"rules\")."),
) -> None:
    """Which firewall and security-group rules expose SMB, NetBIOS and RDP to wide sources, with the fix in each platform's syntax."""
    from .rules.cli import main_rules

    raise typer.Exit(main_rules([str(f) for f in files], fmt, str(output) if output else None, ports, wide_threshold,
                                db=db, store=not no_store))


@app.command(epilog="Example:  smbsentry engine --queue plant-floor --allow 10.20.0.0/16 --key-file /etc/smbsentry/engine.key")
def engine(
    queue: str = typer.Option(..., "--queue", help="The queue (network segment) this engine serves."),
    allow: list[str] = typer.Option([], "--allow", help="CIDR this engine may scan (repeatable; required)."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="Shared key the central side signs jobs with (default SMBSENTRY_ENGINE_KEY_FILE)."),
    concurrency: int = typer.Option(256, "--concurrency", min=1, max=100000, help="Hosts in flight per shard."),
    broker: Optional[str] = typer.Option(None, "--broker", help="Broker URL (default SMBSENTRY_BROKER or redis://127.0.0.1:6379/0)."),
    db: Optional[str] = typer.Option(None, "--db", help="Also write results to this store (the central side writes them in any case)."),
) -> None:
    """Run a scan engine: a Celery worker that scans the signed shards routed to its queue.

    The engine only connects out to the broker, runs only jobs signed with
    the shared key, each job once (on a Redis broker every engine shares the
    record of the jobs run, across restarts), and refuses targets outside
    its --allow ranges; refusals are reported to the central side."""
    from .engines.cli import main_engine

    raise typer.Exit(main_engine(queue, concurrency, broker, db, allow, str(key_file) if key_file else None))


@app.command("engines")
def engines_list(
    broker: Optional[str] = typer.Option(None, "--broker", help="Broker URL."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
) -> None:
    """List live engines with their queues, allowed ranges and load."""
    from .engines.cli import main_engines_list

    raise typer.Exit(main_engines_list(broker, as_json=as_json))


@app.command(epilog=(
    "Examples:\n\n"
    "  smbsentry serve --port 8080 --allow 10.20.0.0/16   (then open http://127.0.0.1:8080/)\n\n"
    "  smbsentry serve --host 0.0.0.0 --public-url https://scanner.corp.example   (behind an HTTPS proxy)"))
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (put anything but loopback behind HTTPS)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL (default SMBSENTRY_DB or the user data dir)."),
    allow: list[str] = typer.Option([], "--allow", help="Range the dashboard may start scans against (repeatable; none: scanning from the web is off)."),
    public_url: Optional[str] = typer.Option(None, "--public-url", help="The URL users open (https://... makes cookies Secure); its host name is answered."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="Another Host name to answer to (repeatable). Default: loopback names and the --host address only."),
) -> None:
    """The web dashboard in English and Chinese (?lang=zh): the ranked action list, hosts by risk, host detail with fixes, audits and plans, scans and diffs, CSV of every list, a JSON API.

    Login required. While no admin exists, /setup asks for a one-time
    token printed on this console. Requests for other Host names get 400
    (DNS rebinding); bodies are capped (4 KiB for /login and /setup, 64 KiB
    elsewhere: 413) before they are read; failed logins are throttled per
    address and per user (growing delays, then a 15-minute lockout) and
    logged here. Users and hashed session ids live in the store's web_*
    tables. `smbsentry users passwd` changes a password."""
    from .web import main_serve

    raise typer.Exit(main_serve(host, port, db, allow, public_url=public_url, allowed_host=allowed_host))


users_app = typer.Typer(help="Dashboard users (kept in the store's web_users table).", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("passwd", epilog="Example:  smbsentry users passwd            (asks twice)\n\n"
                                    "  printf '%s\\n' \"$PW\" | smbsentry users passwd --password-stdin")
def users_passwd(
    user: str = typer.Option("admin", "--user", help="The user whose password changes (created when missing)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the new password from the first line of stdin."),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL (default SMBSENTRY_DB or the user data dir)."),
) -> None:
    """Set a dashboard user's password; every session of that user ends (log in again)."""
    from .web.users import main_passwd

    raise typer.Exit(main_passwd(user, db, password_stdin))


def _open_store(db: Optional[str]):
    from .store import Store, StoreError

    try:
        return Store.open(db)
    except StoreError as exc:
        fail(str(exc))


@app.command()
def history(
    db: Optional[str] = typer.Option(None, "--db", help="Store URL (default SMBSENTRY_DB or the user data dir)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json"),
) -> None:
    """List recorded scans, newest first."""
    from .report.scans import render_history
    from .store import StoreError

    store = _open_store(db)
    try:
        typer.echo(render_history(store, fmt), nl=False)
    except (StoreError, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()


@app.command()
def diff(
    old: Optional[int] = typer.Argument(None, help="Older scan id (default: the scan before NEW)."),
    new: Optional[int] = typer.Argument(None, help="Newer scan id (default: the latest)."),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json"),
    lang: str = typer.Option("en", "--lang", help="Language of the table: en | zh."),
) -> None:
    """New, fixed, changed and not-checked findings, hosts and identity changes between two scans.

    Warns when the scans' targets, checks or ports differ: a finding whose check did
    not run (or whose port was not probed) in the newer scan is "not checked", never "fixed"."""
    from .report.scans import render_diff
    from .store import StoreError

    store = _open_store(db)
    try:
        ids = [s["id"] for s in store.scans()]
        if new is None:
            new = ids[0] if ids else None
        if old is None and new is not None:
            older = [i for i in ids if i < new]
            old = older[0] if older else None
        if old is None or new is None:
            fail("diff needs two scans (smbsentry history lists them)")
        typer.echo(render_diff(store.diff(old, new), fmt, lang), nl=False)
    except (StoreError, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()


@app.command()
def report(
    scan_id: Optional[int] = typer.Argument(None, help="Scan id (default: the latest)."),
    fmt: str = typer.Option("html", "--format", "-f", help="html | csv | json | ocsf"),
    lang: str = typer.Option("en", "--lang", help="en | zh"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    relay_list: Optional[Path] = typer.Option(
        None, "--relay-list", help="Also write the NTLM relay targets to this file: one address per line, the hosts whose SMB "
        "server does not require signing on some dialect (like NetExec's --gen-relay-list), then the HTTP(S) and LDAP "
        "targets as URLs (ntlmrelayx -tf reads both)."),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL."),
) -> None:
    """Render a recorded scan: a self-contained HTML report in English or Chinese (the ranked action list, counts with
    their denominators, charts, findings, relay paths, fixes per host), CSV, JSON (hosts, counts and the ranked
    `actions`) or OCSF findings for SIEMs."""
    from .report.scans import relay_targets, render_report
    from .store import StoreError

    store = _open_store(db)
    try:
        if scan_id is None:
            scan_id = store.latest_scan()
            if scan_id is None:
                fail("no scans recorded yet")
        text = render_report(store, scan_id, fmt, lang)
        targets = relay_targets(store, scan_id) if relay_list is not None else None
    except (StoreError, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()
    if targets is not None:
        _write_or_fail(targets, relay_list)
    _write_or_fail(text, output)


def _write_or_fail(text: str, output: Optional[Path]) -> None:
    """Write a command's result; a full disk is one line and exit 1."""
    from .textio import write_text

    problem = write_text(text, output)
    if problem is not None:
        fail(problem, 1)


kb_app = typer.Typer(help="Query the knowledge base (vulnerabilities, fixes, products, actions).", no_args_is_help=True)
app.add_typer(kb_app, name="kb")


@kb_app.command("show")
def kb_show_cmd(entry: str = typer.Argument(..., help="A finding id (ms17-010), a KB (KB4012212), a product or an action id.")) -> None:
    """Print one knowledge-base entry with its sources."""
    from .kb.show import kb_show

    try:
        typer.echo(kb_show(entry))
    except ValueError as exc:
        fail(str(exc))


@kb_app.command("which-kb", epilog='Example:  smbsentry kb which-kb --os "Windows 7 SP1 x64" ms17-010')
def which_kb_cmd(
    vuln: str = typer.Argument(..., help="Finding id, e.g. ms17-010 or cve-2020-0796."),
    os_text: str = typer.Option(..., "--os", help='The OS, e.g. "Windows 7 SP1 x64" or "Windows Server 2008 R2 x64".'),
) -> None:
    """Which updates fix VULN on this OS, with their prerequisites and file names."""
    from .kb.show import which_kb

    try:
        typer.echo(which_kb(os_text, vuln))
    except ValueError as exc:
        fail(str(exc))


@kb_app.command("info")
def kb_info_cmd() -> None:
    """Print the update catalog's date, source and counts (updates per kind, products)."""
    from .kb.show import catalog_info

    try:
        typer.echo(catalog_info())
    except ValueError as exc:
        fail(str(exc))


@kb_app.command("update", epilog="Example:  smbsentry kb update catalog.json   (made by scripts/import_catalog.py from newer MSRC data)")
def kb_update_cmd(file: Path = typer.Argument(..., help="A catalog.json written by scripts/import_catalog.py, newer than the one in use.")) -> None:
    """Load a newer update catalog without a new release: validated, then kept in the user data folder (SMBSENTRY_KB_DIR)."""
    from .kb.show import catalog_update

    try:
        typer.echo(catalog_update(file))
    except ValueError as exc:
        fail(str(exc))


@app.command(
    epilog=(
        "Examples:\n\n"
        "  smbsentry audit systeminfo-ws07.txt hotfix.csv\n\n"
        "  smbsentry audit inventories/ --format jsonl -o audit.jsonl\n\n"
        "  smbsentry audit inventories/ --lang zh   (the table in Chinese)\n\n"
        "  smbsentry audit inventories/ --merge scan.json --format jsonl   (scan results settled by patch facts)"
    )
)
def audit(
    inventory: list[Path] = typer.Argument(None, help="Inventory files or folders: systeminfo (any language, list or CSV), Get-ComputerInfo, Get-HotFix / Win32_QuickFixEngineering CSV/JSON, wmic qfe CSV, osquery JSON, host/os/build/kbs CSV, the collector's JSON."),
    remote: list[str] = typer.Option([], "--remote", help="Audit these targets over SMB with credentials (remote registry); repeatable, ranges allowed."),
    user: Optional[str] = typer.Option(None, "--user", help="With --remote: the account (password from SMBSENTRY_PASSWORD or a prompt)."),
    domain: str = typer.Option("", "--domain", help="With --remote: the account's domain."),
    start_remote_registry: bool = typer.Option(False, "--start-remote-registry", help="With --remote: start RemoteRegistry where it is stopped, and restore it after."),
    workers: int = typer.Option(16, "--workers", min=1, max=256, help="With --remote: hosts audited at once."),
    timeout: float = typer.Option(30.0, "--timeout", min=1, help="With --remote: seconds per host."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | jsonl | json"),
    lang: str = typer.Option("en", "--lang", help="Language of the table: en | zh (statuses and evidence in Chinese). JSON and JSON Lines stay English: they are the contract."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    merge: Optional[Path] = typer.Option(None, "--merge", help="Scan results (json, jsonl, or `report N --format json`) to settle with the patch facts; writes merged host results."),
    merge_scan: Optional[int] = typer.Option(None, "--scan", metavar="SCAN_ID", help="Like --merge, with a stored scan's hosts."),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL: the audit results are recorded there for the dashboard."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the results in the store."),
) -> None:
    """Audit patch state from exported inventories or over SMB with credentials: patched / missing / not applicable / unknown, with the evidence that decided."""
    import json as _json

    from .audit.api import audit_files, render_audit
    from .audit.merge import merge_results

    if fmt not in ("table", "jsonl", "json"):
        fail(f"unknown --format {fmt!r} (table, jsonl or json)")
    if lang not in ("en", "zh"):
        fail(f"unknown --lang {lang!r} (en or zh)")
    inventory = inventory or []
    if not inventory and not remote:
        fail("give inventory files or --remote TARGETS")
    for p in inventory:
        if not p.exists():
            fail(f"{p}: no such file or folder")
    results, errors = audit_files(inventory) if inventory else ([], [])
    remote_errors: list = []
    if remote:
        from .audit.remote import audit_remote

        if not user:
            fail("--remote needs --user (the password comes from SMBSENTRY_PASSWORD or a prompt)")
        from .app.scanprep import RequestError, password_for

        try:
            password = password_for(user, domain)
        except RequestError as exc:
            fail(str(exc))
        try:
            run = audit_remote(list(remote), user, password, domain, timeout, workers, start_remote_registry=start_remote_registry)
        except ValueError as exc:
            fail(str(exc))
        results = list(results) + list(run.results)
        remote_errors = list(run.errors)
    if merge is not None or merge_scan is not None:
        from .audit.errors import InventoryError
        from .resultfile import load_results, load_stored_scan

        try:
            hosts = (load_results([merge]) if merge is not None else []) + \
                (load_stored_scan(db, merge_scan) if merge_scan is not None else [])
        except InventoryError as exc:
            fail(f"cannot read the scan results: {exc}")
        hosts = [h for h in hosts if "address" in h and "verdicts" not in h]  # scan records (a report may hold others)
        merged = merge_results(hosts, results)
        text = "".join(_json.dumps(h, ensure_ascii=False) + "\n" for h in merged) if fmt != "json" else _json.dumps(merged, ensure_ascii=False, indent=2) + "\n"
    else:
        text = render_audit(results, fmt, lang=lang)
    _write_or_fail(text, output)
    if results and not no_store:
        from .store import StoreError

        store = _open_store(db)
        try:
            for r in results:
                store.add_audit(r.to_dict())
        except StoreError as exc:
            fail(f"audit written, but not recorded: {exc}", 1)
        finally:
            store.close()
    for e in remote_errors:  # per-host run-time problems: reported, the others go on
        err.print(f"smbsentry: {e}", markup=False, soft_wrap=True)
    if errors:
        for e in errors:
            err.print(f"smbsentry: {e}", markup=False, soft_wrap=True)
        raise typer.Exit(2)
    if remote_errors and not results:
        raise typer.Exit(1)


@app.command()
def collector() -> None:
    """Print the PowerShell collector: run it on a Windows host and feed its JSON to `smbsentry audit`.

    Example:  smbsentry collector > collect.ps1   then on the host:
    powershell -ExecutionPolicy Bypass -File collect.ps1 > %COMPUTERNAME%.json"""
    from .audit.collector import collector_script

    sys.stdout.write(collector_script())


@app.command(
    epilog=(
        "Examples:\n\n"
        "  smbsentry plan scan.json -o plan/\n\n"
        "  smbsentry plan --scan 12 -o plan/            (a stored scan; `report 12 --format json` output works too)\n\n"
        "  smbsentry plan merged.jsonl audit.jsonl -o plan-zh/ --lang zh"
    )
)
def plan(
    results: list[Path] = typer.Argument(None, help="Scan, audit, merged or report results (json or jsonl)."),
    scan_id: Optional[int] = typer.Option(None, "--scan", metavar="SCAN_ID", help="Plan a stored scan (smbsentry history lists them)."),
    out_dir: Path = typer.Option(..., "--output", "-o", help="Folder for plan.md, plan.json, bundle.csv and scripts/ (written whole or not at all)."),
    lang: str = typer.Option("en", "--lang", help="en | zh"),
    db: Optional[str] = typer.Option(None, "--db", help="Store URL: where --scan is read and the plan recorded."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the plan in the store."),
) -> None:
    """Plan the fix per host, in the order the vendors' response guides give: isolate the implanted,
    back up before anything that interrupts service, install the exact update with its prerequisites,
    or where no patch exists disable SMB1, block 139/445, isolate and upgrade; then harden, then settle
    what the scan could not decide. Starts with the ranked action list; writes apply and rollback scripts
    per host group and the offline patch bundle list. The Server service is stopped by a script only
    where the host's shares were listed and hold no data."""
    from .remediate.writer import main_plan, stored_plan

    if not results and scan_id is None:
        fail("give result files or --scan N")
    code = main_plan([str(r) for r in results or []], str(out_dir), lang, scan_id=scan_id, db=db)
    if code == 0 and not no_store:
        from .store import StoreError

        store = _open_store(db)
        try:
            store.add_plan(stored_plan(out_dir), scan_id=scan_id)  # with its scripts: the dashboard offers them
        except (StoreError, OSError, ValueError) as exc:
            fail(f"plan written, but not recorded: {exc}", code=1)
        finally:
            store.close()
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("smbsentry: interrupted", markup=False)
        sys.exit(130)
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        sys.exit(1)


if __name__ == "__main__":
    main()
