"""`run(ScanRequest)`: one scan, from the request to its exit status, for every front end.

The command line (`smbsentry scan`), `respond` and the dashboard's scans
(web/jobs.py, in a worker process of its own: `worker_main`) all call this: prepare the
request (scanprep.py: checked, the store opened, the scan begun or resumed),
then run it (scan/runner.py: progress, signals, output, the store, --fail-on,
the summary).  Everything is said on the `err` console given; the exit status
follows contract.md (0, 1 a write failed or hosts were lost, 2 bad input,
3 --fail-on, 130 interrupted).

Scans through remote engines (`scan --engines`) go through engines/cli.py,
which builds its options with the same scanprep functions.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from .scanprep import RequestError, ScanRequest, prepare, request_from_json

EXIT_BAD_INPUT = 2


def say(err: Console, message: str) -> None:
    """One line on the error console, the way every smbsentry command says it."""
    err.print(f"smbsentry: {message}", markup=False, highlight=False, soft_wrap=True)


def run(req: ScanRequest, err: Console, on_start: Callable[[int | None], None] | None = None,
        on_end: Callable[[bool], None] | None = None) -> int:
    """Run the scan a request asks for; `on_start(scan_id)` is called once it is begun in the store, `on_end(finished)`
    once it ended: whether every target was tried and every result kept (a status of 1 or 2 with finished True:
    only host names that did not resolve are missing, and the run said which)."""
    from ..scan.runner import run_local_scan

    try:
        local = prepare(req)
    except RequestError as exc:
        say(err, str(exc))
        return EXIT_BAD_INPUT
    if on_start is not None:
        on_start(local.scan_id)
    code = run_local_scan(local, err)
    if on_end is not None:
        on_end(local.finished)
    return code


MAX_REQUEST = 64 * 1024  # bytes of JSON a worker reads: a dashboard request is a few hundred


def worker_main() -> None:  # pragma: no cover - runs in the dashboard's scan process; tests/test_web.py drives it
    """A scan in a process of its own (the dashboard's, web/jobs.py): the request as one JSON object on stdin;
    says on stdout {"scan": id} once the scan is in the store, then {"end": exit status}; stderr is what the
    scan said (the job page shows its last line).  Started with `python -c` (never a fork of the threaded
    server, never a re-import of the server's main module) in a session of its own; the server stops it
    with SIGTERM, which the scan takes as an interrupt (finished hosts kept)."""
    import json
    import sys

    err = Console(stderr=True, highlight=False)

    def tell(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        req = request_from_json(sys.stdin.read(MAX_REQUEST + 1))
    except RequestError as exc:
        say(err, str(exc))
        tell({"end": EXIT_BAD_INPUT})
        return
    tell({"end": run(req, err, on_start=lambda scan_id: tell({"scan": scan_id}))})
