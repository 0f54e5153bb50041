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

log = logging.getLogger("smbsentry.engines")


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


def main_distributed_scan(targets: Sequence[str], queue: str | None = None, route_file: str | None = None,
                          broker: str | None = None, db: str | None = None, shard_size: int = 256, *,
                          key_file: str | None = None, targets_file: Sequence[str] = (), exclude: Sequence[str] = (),
                          ports: str | Sequence[int] = "445,139", checks: str = "default", timeout: float = 5.0,
                          dialects: str = "range", rate: float = 0, user: str | None = None, domain: str = "",
                          window: int = 64, stall_timeout: float = 120.0, scan_timeout: float | None = None,
                          ssl_options: dict | str | None = None, quiet: bool = False, output: str | None = None,
                          no_store: bool = False) -> int:
    """Scan through engines: shard targets, route each shard to its queue, write results to the store as they come.

    Returns 0 when every shard finished, 1 when the scan is incomplete, 2 on bad input or configuration."""
    from ..checks.registry import select
    from ..scan.host import split_ports
    from ..scan.targets import TargetError, TargetSet
    from . import signing
    from .app import make_app
    from .central import DistributedScan
    from .routes import RouteError, Router, load_routes

    try:
        key = signing.load_key(key_file)
        router = Router(load_routes(route_file) if route_file else {}, default=queue)
        port_list = _ports(ports)
        smb_ports, service_ports = split_ports(tuple(port_list), tuple(select(checks)))
        # nmap/masscan hosts count when one of the TCP ports probed is open (as in `smbsentry scan`)
        target_set = TargetSet(targets or [], files=targets_file, excludes=exclude,
                               ports=set(smb_ports) | (service_ports - {137}))
    except (signing.SignatureError, RouteError, TargetError, ValueError) as exc:
        _err(str(exc.detail if isinstance(exc, signing.SignatureError) else exc))
        return 2
    if not targets and not targets_file:
        _err("no targets")
        return 2
    if dialects not in ("range", "exact"):
        _err(f"unknown --dialects {dialects!r}")
        return 2
    options = {"ports": port_list, "timeout": timeout, "checks": checks, "dialects": dialects, "rate": rate or 0}
    if user:
        password = os.environ.get("SMBSENTRY_PASSWORD")
        if password is None:
            _err("--user needs SMBSENTRY_PASSWORD")
            return 2
        options.update(user=user, domain=domain, password=password)
    store = None
    scan_id = 0
    if not no_store:
        from ..store import Store, StoreError

        try:
            store = Store.open(db)
            scan_id = store.begin_scan(list(targets or []) + [str(f) for f in targets_file], {
                "targets": list(targets or []), "targets_files": [str(f) for f in targets_file], "exclude": list(exclude),
                "ports": ",".join(map(str, port_list)), "checks": checks, "timeout": timeout, "dialects": dialects,
                "user": user, "domain": domain, "engines": {"queue": queue, "routes": router.routes, "shard_size": shard_size}})
        except StoreError as exc:
            _err(str(exc))
            return 2
    # "-" is standard output, as in the rest of the CLI.
    out = sys.stdout if output == "-" else (open(output, "w", encoding="utf-8") if output else None)

    def on_host(host: dict) -> None:
        if out is not None:
            out.write(json.dumps(host, sort_keys=True) + "\n")
            out.flush()

    app = make_app(broker, ssl_options)
    scan = DistributedScan(app, key, router, options, store=store, scan_id=scan_id, shard_size=shard_size,
                           window=window, stall_timeout=stall_timeout, timeout=scan_timeout, on_host=on_host)
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(_sig, _frame) -> None:
        scan.stop()

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        previous = None
    try:
        summary = scan.run(target_set)
    except Exception as exc:  # noqa: BLE001 - broker unreachable
        _err(f"distributed scan failed: {exc}")
        if store is not None:
            store.finish_scan(scan_id, "interrupted")
            store.close()
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if out is not None and out is not sys.stdout:
            out.close()
    if store is not None:
        store.finish_scan(scan_id, "finished" if summary.complete else "interrupted")
        store.close()
    if not quiet:
        d = summary.to_dict()
        print(f"scan {scan_id}: {summary.targets} targets in {summary.shards} shards ({summary.shards_done} done, "
              f"{summary.shards_failed} failed, {summary.resent} re-sent), {summary.with_smb} with SMB, "
              + (f"{summary.services_only} with other services only, " if summary.services_only else "")
              + f"{summary.elapsed:.1f}s ({summary.hosts_per_second:.0f} hosts/s)", file=sys.stderr)
        if summary.refused:
            print(f"refused: {d['refused']}", file=sys.stderr)
        if summary.unrouted:
            print(f"{len(summary.unrouted)} targets no route covers (first: {summary.unrouted[0]})", file=sys.stderr)
        if summary.unresolved:
            print(f"{len(summary.unresolved)} host names not resolved", file=sys.stderr)
    return 0 if summary.complete else 1
