"""Entry points the main CLI wires: `smbsentry engine`, `smbsentry engines`, `smbsentry scan --engines`.

Each returns a process exit status: 0 fine, 1 incomplete (a shard failed or
was refused, targets unrouted), 2 bad usage or configuration.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..protocol.transport import SMB_PORTS_TEXT

log = logging.getLogger("smbsentry.engines")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # both stop a distributed scan the way Ctrl-C stops a local one


def _err(text: str) -> None:
    print(f"smbsentry: {text}", file=sys.stderr)


def _ports(text: str | Sequence[int]) -> list[int]:
    if not isinstance(text, str):
        return [int(p) for p in text]
    ports = [int(p) for p in text.split(",") if p.strip()]
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise ValueError(f"bad --ports {text!r}")
    return ports


def main_engine(queue: str, concurrency: int = 256, broker: str | None = None, db: str | None = None,
                allowed_ranges: Iterable[str] = (), key_file: str | None = None, *, name: str | None = None,
                max_age: float | None = None, ssl_options: dict | str | None = None, loglevel: str = "INFO",
                visibility_timeout: float | None = None) -> int:
    """Run a scan engine: a Celery worker consuming `queue`, one shard at a time, `concurrency` hosts in flight.

    It only connects out (to the broker).  It runs jobs signed with the key in `key_file` and only for
    addresses inside `allowed_ranges` (required).  `db`, when given, is a store the engine also writes
    its results to (the central side writes them in any case)."""
    from . import signing

    allowed = [a for a in allowed_ranges if a]
    if not allowed:
        _err("engine: give at least one --allow CIDR (the ranges this engine may scan)")
        return 2
    try:
        nets = [str(ipaddress.ip_network(a, strict=False)) for a in allowed]
    except ValueError as exc:
        _err(f"engine: bad --allow: {exc}")
        return 2
    try:
        signing.load_key(key_file)
    except signing.SignatureError as exc:
        _err(f"engine: {exc.detail}")
        return 2
    os.environ["SMBSENTRY_ENGINE_QUEUE"] = queue
    os.environ["SMBSENTRY_ENGINE_ALLOW"] = ",".join(nets)
    os.environ["SMBSENTRY_ENGINE_CONCURRENCY"] = str(concurrency)
    if key_file:
        os.environ["SMBSENTRY_ENGINE_KEY_FILE"] = str(key_file)
    if db:
        os.environ["SMBSENTRY_ENGINE_DB"] = db
    if max_age is not None:
        os.environ["SMBSENTRY_ENGINE_MAX_AGE"] = str(max_age)
    if visibility_timeout is not None:
        os.environ["SMBSENTRY_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
    from .app import app, configure, install_engine, reset_engine_config

    configure(app, broker, ssl_options)
    reset_engine_config()
    install_engine()
    node = name or f"{queue}-{os.getpid()}@{socket.gethostname()}"
    logging.basicConfig(level=getattr(logging, loglevel.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("engine %s: queue %s, allowed %s, broker %s", node, queue, ", ".join(nets), _safe_url(app.conf.broker_url))
    argv = ["worker", "-Q", queue, "-n", node, "-P", "threads", "-c", "1", "--prefetch-multiplier", "1",
            "--without-gossip", "--without-mingle", "-l", loglevel]
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


def _safe_url(url: str) -> str:
    """The broker URL without its password, for logs."""
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url)


def engines_info(broker: str | None = None, timeout: float = 2.0, ssl_options: dict | str | None = None) -> list[dict]:
    """Live engines: name, queues, load (active shards), processed counts, allowed ranges."""
    from .app import make_app

    app = make_app(broker, ssl_options)
    insp = app.control.inspect(timeout=timeout)
    ping = insp.ping() or {}
    if not ping:
        return []
    queues = insp.active_queues() or {}
    active = insp.active() or {}
    stats = insp.stats() or {}
    try:
        info = insp._request("smbsentry_info") or {}
    except Exception:  # noqa: BLE001
        info = {}
    out = []
    for name in sorted(ping):
        st = stats.get(name) or {}
        si = info.get(name) or {}
        out.append({
            "name": name,
            "queues": sorted(q.get("name") for q in queues.get(name, []) if q.get("name")),
            "active": len(active.get(name) or []),
            "processed": sum((st.get("total") or {}).values()),
            "pid": st.get("pid"),
            "allowed": si.get("allowed", []),
            "shards_done": si.get("shards_done"),
            "hosts_scanned": si.get("hosts_scanned"),
            "refused": si.get("refused"),
            "current": si.get("current"),
        })
    return out


def main_engines_list(broker: str | None = None, *, as_json: bool = False, timeout: float = 2.0) -> int:
    try:
        rows = engines_info(broker, timeout)
    except Exception as exc:  # noqa: BLE001 - broker down, bad URL
        _err(f"engines: cannot reach the broker: {exc}")
        return 2
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no live engines")
        return 0
    print(f"{'ENGINE':40} {'QUEUES':14} {'ACTIVE':>6} {'SHARDS':>7} {'HOSTS':>8} {'REFUSED':>7}  ALLOWED")
    for r in rows:
        print(f"{r['name']:40} {','.join(r['queues']):14} {r['active']:>6} {r['shards_done'] or 0:>7} "
              f"{r['hosts_scanned'] or 0:>8} {r['refused'] or 0:>7}  {','.join(r['allowed'])}")
    return 0


def _summary_lines(scan_id: int, summary, resumed: int, quiet: bool = False) -> list[str]:
    """The summary on stderr; with --quiet only the shards that failed (an error is never silent)."""
    failed = [f"failed: {line}" for line in summary.errors[:10]]
    if len(summary.errors) > 10:
        failed.append(f"... and {len(summary.errors) - 10} more failed shards")
    if summary.not_covered:   # said with --quiet too: addresses nobody looked at are never silent
        failed.append(f"not covered: {summary.not_covered} addresses of the swept ranges no engine may scan "
                      f"(first: {', '.join(summary.not_covered_ranges)})")
    if quiet:
        return failed
    d = summary.to_dict()
    lines = [f"scan {scan_id}: {summary.targets} targets in {summary.shards} shards ({summary.shards_done} done, "
             f"{summary.shards_failed} failed, {summary.resent} re-sent), {summary.with_smb} with SMB, "
             + (f"{summary.services_only} with other services only, " if summary.services_only else "")
             + f"{summary.elapsed:.1f}s ({summary.hosts_per_second:.0f} hosts/s)"
             + (f"; {resumed} hosts were already done" if resumed else "")]
    if summary.refused:
        lines.append(f"refused: {d['refused']}")
    lines += failed
    for engine, line in sorted(summary.discovery.items()):
        lines.append(f"engine {engine}: {line}")
    if summary.discovery:
        lines.append(f"discovery: {summary.swept} addresses swept by {len(summary.discovery)} engines, "
                     f"{summary.confirmed} SMB confirmed")
    if summary.unrouted:
        lines.append(f"{len(summary.unrouted)} targets no route covers (first: {summary.unrouted[0]})")
    if summary.unresolved:
        lines.append(f"{len(summary.unresolved)} host names not resolved")
    return lines


class _Usage(Exception):
    """Bad input or configuration: one line, exit status 2."""


@dataclass
class ScanSpec:
    """What a scan through engines scans and how: given on the command line, or saved with a scan to resume."""

    targets: list = field(default_factory=list)
    targets_file: list = field(default_factory=list)
    exclude: list = field(default_factory=list)
    ports: str | Sequence[int] = SMB_PORTS_TEXT
    checks: str = "default"
    timeout: float = 5.0
    dialects: str = "range"
    rate: float = 0
    user: str | None = None
    domain: str = ""
    queue: str | None = None
    routes: dict = field(default_factory=dict)
    shard_size: int = 256
    discovery: str = "none"   # auto | syn | connect: the engines sweep the IPv4 ranges (engines/sweep.py)
    retries: int = 0

    def saved(self, routes: dict, port_list: list[int]) -> dict:
        return {"targets": list(self.targets), "targets_files": [str(f) for f in self.targets_file],
                "exclude": list(self.exclude), "ports": ",".join(map(str, port_list)), "checks": self.checks,
                "timeout": self.timeout, "dialects": self.dialects, "user": self.user, "domain": self.domain,
                "engines": {"queue": self.queue, "routes": routes, "shard_size": self.shard_size, "rate": self.rate or 0,
                            "discovery": self.discovery, "retries": self.retries}}

    def resume_from(self, saved: dict) -> None:
        eng = saved["engines"]
        self.targets, self.targets_file = saved.get("targets") or [], saved.get("targets_files") or []
        self.exclude, self.ports = saved.get("exclude") or [], saved.get("ports", self.ports)
        self.checks, self.timeout = saved.get("checks", self.checks), saved.get("timeout", self.timeout)
        self.dialects, self.user, self.domain = saved.get("dialects", self.dialects), saved.get("user"), saved.get("domain") or ""
        self.rate, self.queue = eng.get("rate", self.rate), self.queue or eng.get("queue")
        self.routes, self.shard_size = eng.get("routes") or {}, int(eng.get("shard_size") or self.shard_size)
        # a scan recorded before the engines swept fingerprinted every address
        self.discovery, self.retries = eng.get("discovery") or "none", int(eng.get("retries") or 0)


def _open_resume(db: str | None, scan_id: int, spec: ScanSpec):
    """The store, and the addresses the scan already has; `spec` takes the scan's saved settings."""
    from ..store import Store, StoreError

    if spec.targets or spec.targets_file:
        raise _Usage("--resume takes its targets from the stored scan: give no targets")
    store = None
    try:
        store = Store.open(db)
        meta = store.scan(scan_id)
        saved = meta.get("options") or {}
        if not isinstance(saved.get("engines"), dict):
            raise StoreError(f"scan {scan_id} was not run through engines: resume it without --engines")
        if meta.get("status") == "finished":
            raise StoreError(f"scan {scan_id} is already finished")
        spec.resume_from(saved)
        return store, store.resume_scan(scan_id)
    except StoreError as exc:
        if store is not None:
            store.close()
        raise _Usage(str(exc)) from None


def _prepare(spec: ScanSpec, key_file: str | None, route_file: str | None):
    """(key, router, target set, job options, port list) of a scan, or _Usage."""
    from ..app.scanprep import select_checks, split, target_set as targets_of
    from . import signing
    from .routes import RouteError, Router, load_routes

    try:
        key = signing.load_key(key_file)
        router = Router(load_routes(route_file) if route_file else spec.routes, default=spec.queue)
        port_list = _ports(spec.ports)
        # the ports and targets as a local scan reads them (app/scanprep.py)
        target_set = targets_of(spec.targets, spec.targets_file, spec.exclude,
                                *split(tuple(port_list), select_checks(spec.checks)))
    except (signing.SignatureError, RouteError, ValueError) as exc:
        raise _Usage(str(exc.detail if isinstance(exc, signing.SignatureError) else exc)) from None
    if not spec.targets and not spec.targets_file:
        raise _Usage("no targets")
    if spec.dialects not in ("range", "exact"):
        raise _Usage(f"unknown --dialects {spec.dialects!r}")
    if spec.discovery not in ("none", "auto", "syn", "connect"):
        raise _Usage(f"unknown --discovery {spec.discovery!r} (choose from auto, syn, connect, none)")
    options = {"ports": port_list, "timeout": spec.timeout, "checks": spec.checks, "dialects": spec.dialects,
               "rate": spec.rate or 0}
    if spec.user:
        password = os.environ.get("SMBSENTRY_PASSWORD")
        if password is None:
            raise _Usage("--user needs SMBSENTRY_PASSWORD")
        options.update(user=spec.user, domain=spec.domain, password=password)
    return key, router, target_set, options, port_list


def main_distributed_scan(targets: Sequence[str], queue: str | None = None, route_file: str | None = None,
                          broker: str | None = None, db: str | None = None, shard_size: int = 256, *,
                          key_file: str | None = None, targets_file: Sequence[str] = (), exclude: Sequence[str] = (),
                          ports: str | Sequence[int] = SMB_PORTS_TEXT, checks: str = "default", timeout: float = 5.0,
                          dialects: str = "range", rate: float = 0, user: str | None = None, domain: str = "",
                          window: int = 64, stall_timeout: float = 120.0, scan_timeout: float | None = None,
                          ssl_options: dict | str | None = None, quiet: bool = False, output: str | None = None,
                          no_store: bool = False, resume: int | None = None, broker_wait: float = 60.0,
                          engine_wait: float = 5.0, discovery: str = "none", retries: int = 0) -> int:
    """Scan through engines: shard targets, route each shard to its queue, write results to the store as they come.

    `resume` finishes an earlier scan through engines (its targets, options and routes; the hosts it has are
    skipped).  `discovery` auto | syn | connect has the engines sweep the IPv4 ranges (shard i of n of one
    permutation per queue, inside each engine's --allow: engines/sweep.py); none sends every address.  Returns 0 when every shard finished, 1 when the scan is incomplete or could not go on (no live
    engine, broker away longer than `broker_wait`), 2 on bad input or configuration."""
    from ..store import Store, StoreError
    from .app import make_app
    from .central import DistributedScan

    spec = ScanSpec(list(targets or []), [str(f) for f in targets_file], list(exclude), ports, checks, timeout, dialects,
                    rate, user, domain, queue, {}, shard_size, discovery, retries)
    store, scan_id, done = None, 0, set()
    try:
        if resume is not None:
            if no_store:
                raise _Usage("--resume needs the store")
            store, done = _open_resume(db, resume, spec)
            scan_id = resume
        key, router, target_set, options, port_list = _prepare(spec, key_file, route_file)
        if store is None and not no_store:
            try:
                store = Store.open(db)
                scan_id = store.begin_scan(spec.targets + spec.targets_file, spec.saved(router.routes, port_list))
            except StoreError as exc:
                raise _Usage(str(exc)) from None
        # "-" is standard output, as in the rest of the CLI.
        try:
            out = sys.stdout if output == "-" else (open(output, "w", encoding="utf-8") if output else None)
        except OSError as exc:
            raise _Usage(f"cannot write {output}: {exc.strerror}") from None
    except _Usage as exc:
        _err(str(exc))
        if store is not None:
            if scan_id:
                _end_scan(store, scan_id, "interrupted")
            else:
                store.close()
        return 2

    def on_host(host: dict) -> None:
        if out is not None:
            out.write(json.dumps(host, sort_keys=True) + "\n")
            out.flush()

    scan = DistributedScan(make_app(broker, ssl_options), key, router, options, store=store, scan_id=scan_id,
                           shard_size=spec.shard_size, window=window, stall_timeout=stall_timeout, timeout=scan_timeout,
                           on_host=on_host, broker_wait=broker_wait, engine_wait=engine_wait, skip=done,
                           on_notice=None if quiet else (lambda text: _err(text)),
                           sweep=None if spec.discovery == "none" else {"mode": spec.discovery, "retries": spec.retries})
    try:
        return _run(scan, target_set, store, scan_id, len(done), quiet)
    finally:
        if out is not None and out is not sys.stdout:
            out.close()


def _run(scan, target_set, store, scan_id: int, resumed: int, quiet: bool) -> int:
    """Run the scan (Ctrl-C stops it cleanly), record how it ended, say so on stderr; the exit status."""
    from ..scan.runner import EXIT_INTERRUPTED
    from .central import ScanAborted

    stopped: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_stop(sig, _frame) -> None:  # Ctrl-C or SIGTERM: stop sending, keep what came back, say so
        stopped.append(sig)
        scan.stop()

    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, on_stop)
    except ValueError:  # not the main thread
        previous = {}
    try:
        summary = scan.run(target_set)
    except Exception as exc:  # noqa: BLE001 - no live engine, broker gone for too long, refused credentials
        message = str(exc) if isinstance(exc, ScanAborted) else f"distributed scan failed: {exc}"
        if store is not None:
            stored = _stored_count(store, scan_id)
            problem = _end_scan(store, scan_id, "interrupted")
            if problem:
                message += f"; {problem}"
            else:
                message += (f"; scan {scan_id} interrupted with {stored} hosts stored "
                            f"(finish it with: smbsentry scan --resume {scan_id} --engines)")
        _err(message)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    problem = None
    stored = _stored_count(store, scan_id) if stopped and store is not None else None
    if store is not None:
        problem = _end_scan(store, scan_id, "finished" if summary.complete and not stopped else "interrupted")
    for line in _summary_lines(scan_id, summary, resumed, quiet):
        print(line, file=sys.stderr)
    if problem:
        _err(problem)
        return 1
    if stopped:
        kept = (f"scan {scan_id} interrupted with {stored} hosts stored (finish it with: "
                f"smbsentry scan --resume {scan_id} --engines)" if store is not None else "interrupted")
        _err(f"{kept}; jobs already sent may still run on the engines: what they return now is not read "
             "(a resume sends those targets again)")
        return EXIT_INTERRUPTED
    return 0 if summary.complete else 1


def _stored_count(store, scan_id: int) -> str:
    """How many hosts the store holds for the scan, or "an unknown number of" where it cannot say."""
    from ..store import StoreError

    try:
        return str(len(store.done_addresses(scan_id)))
    except StoreError:
        return "an unknown number of"


def _end_scan(store, scan_id: int, status: str) -> str | None:
    """Record how the scan ended and close the store; a store that went away is one line, not a traceback
    (and never exit 0: the hosts it did not keep are lost to the store)."""
    from ..store import StoreError

    try:
        try:
            store.finish_scan(scan_id, status)
        finally:
            store.close()
    except StoreError as exc:
        return f"the store could not record scan {scan_id}: {exc} (resume it with: smbsentry scan --resume {scan_id} --engines)"
    return None
