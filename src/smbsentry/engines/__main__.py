"""python -m smbsentry.engines engine|engines|scan|keygen (the same as the smbsentry subcommands)."""

from __future__ import annotations

import argparse
import sys

from ..protocol.transport import SMB_PORTS_TEXT
from .cli import main_distributed_scan, main_engine, main_engines_list


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m smbsentry.engines")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("engine", help="run a scan engine (a Celery worker) for one queue")
    e.add_argument("--queue", required=True)
    e.add_argument("--concurrency", type=int, default=256)
    e.add_argument("--broker")
    e.add_argument("--db")
    e.add_argument("--allow", action="append", default=[])
    e.add_argument("--key-file")
    e.add_argument("--name")
    e.add_argument("--max-age", type=float)
    e.add_argument("--visibility-timeout", type=float)
    e.add_argument("--loglevel", default="INFO")
    ls = sub.add_parser("engines", help="list live engines")
    ls.add_argument("--broker")
    ls.add_argument("--json", action="store_true")
    s = sub.add_parser("scan", help="scan through engines")
    s.add_argument("targets", nargs="*")
    s.add_argument("--queue")
    s.add_argument("--route")
    s.add_argument("--broker")
    s.add_argument("--db")
    s.add_argument("--shard-size", type=int, default=256)
    s.add_argument("--key-file")
    s.add_argument("--ports", default=SMB_PORTS_TEXT)
    s.add_argument("--checks", default="default")
    s.add_argument("--timeout", type=float, default=5.0)
    s.add_argument("--rate", type=float, default=0)
    s.add_argument("--exclude", action="append", default=[])
    s.add_argument("--discovery", default="none", choices=("none", "auto", "syn", "connect"))
    s.add_argument("--retries", type=int, default=0)
    s.add_argument("--stall-timeout", type=float, default=120.0)
    s.add_argument("--broker-wait", type=float, default=60.0)
    s.add_argument("--engine-wait", type=float, default=5.0)
    s.add_argument("--resume", type=int)
    s.add_argument("--output", "-o")
    s.add_argument("--quiet", "-q", action="store_true")
    k = sub.add_parser("keygen", help="write a new shared key file")
    k.add_argument("path")
    a = p.parse_args(argv)
    if a.cmd == "engine":
        return main_engine(a.queue, a.concurrency, a.broker, a.db, a.allow, a.key_file, name=a.name,
                           max_age=a.max_age, loglevel=a.loglevel, visibility_timeout=a.visibility_timeout)
    if a.cmd == "engines":
        return main_engines_list(a.broker, as_json=a.json)
    if a.cmd == "keygen":
        from .signing import generate_key

        generate_key(a.path)
        return 0
    return main_distributed_scan(a.targets, a.queue, a.route, a.broker, a.db, a.shard_size, key_file=a.key_file,
                                 ports=a.ports, checks=a.checks, timeout=a.timeout, rate=a.rate, exclude=a.exclude,
                                 stall_timeout=a.stall_timeout, output=a.output, quiet=a.quiet,
                                 broker_wait=a.broker_wait, engine_wait=a.engine_wait, resume=a.resume,
                                 discovery=a.discovery, retries=a.retries)


if __name__ == "__main__":
    sys.exit(main())
