"""Entry point the top-level CLI wires as `smbsentry rules FILE... [--format] [-o] [--ports] [--wide-threshold]`.

Kept here (not in smbsentry/cli.py) so the command owns its own logic;
findings are not errors (exit 0).  A file that cannot be read is named on a
line of its own on stderr and the run exits 2, but the other files' findings
are still written (and recorded); an output that cannot be written (a full
disk) is one line and exit 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .detect import read
from .errors import RulesError
from .evaluate import DEFAULT_WIDE_THRESHOLD, evaluate, parse_targets, relevance
from .output import render


def expand(paths: list[str]) -> list[str]:
    """Files as given; a directory contributes its regular files in name order."""
    out: list[str] = []
    for p in paths:
        pp = Path(p)
        if pp.is_dir():
            out += [str(f) for f in sorted(pp.iterdir()) if f.is_file() and not f.name.startswith(".")]
        else:
            out.append(p)
    return out


def scan_files(paths: list[str], ports_spec: str | None = None, wide_threshold: int = DEFAULT_WIDE_THRESHOLD):
    """All exposures of all files; raises RulesError on the first unreadable one."""
    targets = parse_targets(ports_spec)
    keep = relevance(targets, wide_threshold)
    found = []
    for p in expand(paths):
        for c in read(p, keep=keep):
            found += evaluate(c, targets, wide_threshold)
    return found


def main_rules(paths: list[str], fmt: str, out, ports_spec: str | None, wide_threshold: int,
               db: str | None = None, store: bool = False) -> int:
    """Run `smbsentry rules`; `out` is a path, '-'/None for stdout, or a writable text stream.

    store=True also records the run as a scan of kind "rules" (record.py) in the
    store at `db` (default SMBSENTRY_DB or the user data dir)."""
    if fmt not in ("table", "jsonl", "json"):
        print(f"smbsentry rules: unknown format {fmt!r} (use table, jsonl or json)", file=sys.stderr)
        return 2
    if not paths:
        print("smbsentry rules: no files given", file=sys.stderr)
        return 2
    if not 0 <= wide_threshold <= 32:
        print(f"smbsentry rules: --wide-threshold must be 0..32, got {wide_threshold}", file=sys.stderr)
        return 2
    from .record import evaluate_files

    errors: list[RulesError] = []
    try:
        results = evaluate_files(paths, ports_spec, wide_threshold, errors=errors)
    except (RulesError, ValueError) as exc:  # ValueError: --ports
        print(f"smbsentry rules: {exc}", file=sys.stderr)
        return 2
    text = render([e for _, found in results for e in found], fmt)
    if out is not None and out != "-" and hasattr(out, "write"):
        out.write(text)
    else:
        from ..textio import write_text

        problem = write_text(text, None if out in (None, "-") else out)
        if problem is not None:
            print(f"smbsentry rules: {problem}", file=sys.stderr)
            return 1
    for exc in errors:  # every bad file on a line of its own
        print(f"smbsentry rules: {exc}", file=sys.stderr)
    if store and results:
        from ..store import Store, StoreError
        from .record import record

        try:
            with Store.open(db) as st:
                sid = record(st, paths, results, ports_spec, wide_threshold)
        except StoreError as exc:
            print(f"smbsentry rules: {exc}", file=sys.stderr)
            return 1
        print(f"smbsentry rules: recorded as scan {sid} (smbsentry report {sid})", file=sys.stderr)
    return 2 if errors else 0
