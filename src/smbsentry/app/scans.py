"""`run(ScanRequest)`: one scan, from the request to its exit status, for every front end.

The command line (`smbsentry scan`), `respond` and the dashboard's scans
(web/jobs.py, in a worker process of its own) all call this: prepare the
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

from .scanprep import RequestError, ScanRequest, prepare

EXIT_BAD_INPUT = 2


def say(err: Console, message: str) -> None:
    """One line on the error console, the way every smbsentry command says it."""
    err.print(f"smbsentry: {message}", markup=False, highlight=False, soft_wrap=True)


def run(req: ScanRequest, err: Console, on_start: Callable[[int | None], None] | None = None) -> int:
    """Run the scan a request asks for; `on_start(scan_id)` is called once it is begun in the store."""
    from ..scan.runner import run_local_scan

    try:
        local = prepare(req)
    except RequestError as exc:
        say(err, str(exc))
        return EXIT_BAD_INPUT
    if on_start is not None:
        on_start(local.scan_id)
    return run_local_scan(local, err)


def worker(req: ScanRequest, conn) -> None:  # pragma: no cover - runs in a child process; web tests check what it sends
    """A scan in a process of its own (the dashboard's): sends ("scan", id) once the scan is in the store, then
    ("end", exit status, the last lines said on stderr).  A session of its own, so a Ctrl-C meant for the server
    does not reach it; the server ends it with SIGTERM, which the scan takes as an interrupt (finished hosts kept)."""
    import io
    import os

    if hasattr(os, "setsid"):
        try:
            os.setsid()
        except OSError:
            pass
    text = io.StringIO()
    err = Console(file=text, width=200, highlight=False, soft_wrap=True)
    code = 1
    try:
        code = run(req, err, on_start=lambda scan_id: conn.send(("scan", scan_id)))
    except Exception as exc:  # noqa: BLE001 - the page says why, never a traceback
        say(err, f"the scan failed: {type(exc).__name__}: {exc}")
    finally:
        try:
            conn.send(("end", code, text.getvalue()[-2000:]))
        finally:
            conn.close()
