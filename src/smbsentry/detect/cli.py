"""``smbsentry detect``: the traffic detector's command (the CLI calls :func:`main_detect`).

Inputs are capture files (pcap, pcapng, either gzip-compressed; several in
one run) or one live interface (see :mod:`smbsentry.detect.live`: dumpcap or
tcpdump writes pcap to a pipe, read as a stream).  Events go to stdout or
``out`` as EVE-style JSON lines or a table as they are found; the summary
follows (a ``stats`` line, or tables), and for JSON lines a short human
summary goes to stderr unless ``quiet``.

Exit status (contract.md): 0 success (alerts or not); 1 a run-time failure
(the live capture could not start: privilege, interface; the output could
not be written: a full disk); 2 bad usage or bad input (an unreadable,
truncated or corrupt capture: the alerts of the packets before the damage
are still written, the other inputs still read); 3 with ``fail_on`` when an
alert is at or above that severity; 130 after Ctrl-C or SIGTERM while
reading files, with the summary of what was read written (a live capture
stops normally on Ctrl-C or SIGTERM: 0).  Errors are one line on stderr,
never a traceback.

``python -m smbsentry.detect`` runs the same function from its own argument
parser (for use before the main CLI is wired, and by the benchmark).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from . import _accel
from .capture import CaptureError, open_capture
from .engine import Config, Engine
from .live import LiveCapture, LiveCaptureError
from .output import FORMATS, JsonlWriter, TableWriter, summary_lines
from .signatures import FAIL_ON_LEVELS, SIGNATURES

__all__ = ["main", "main_detect"]


class _OutputFailed(Exception):
    """Writing the events failed (a full disk): not an input error, the run stops."""


class _Output:
    """The output stream; a failed write raises _OutputFailed, so that it is
    never taken for a read error of the capture being analysed."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self.name = name

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputFailed(f"cannot write {self.name}: {exc.strerror or exc}") from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputFailed(f"cannot write {self.name}: {exc.strerror or exc}") from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class _StartFailed(Exception):
    """The live capture could not start: nothing to summarise."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _err(stderr: TextIO, message: str) -> None:
    stderr.write(f"smbsentry: {' '.join(str(message).split())}\n")
    stderr.flush()


def _input_error(errors: list[str], stderr: TextIO, message: str) -> None:
    """An input that could not be read (whole or in part): said now, and listed in the summary."""
    errors.append(message)
    _err(stderr, message)


def main_detect(
    inputs: Sequence[str | os.PathLike[str]] = (),
    interface: str | None = None,
    bpf: str | None = None,
    fmt: str = "jsonl",
    out: str | os.PathLike[str] | None = None,
    scan_threshold: int = 20,
    scan_window: float = 10.0,
    *,
    flows: bool = True,
    quiet: bool = False,
    fail_on: str | None = None,
    duration: float | None = None,
    capture_tool: str | None = None,
    jobs: int = 1,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    store: bool = False,
    db: str | None = None,
) -> int:
    """Run the detector; return the exit status (see the module docstring).

    ``inputs``: capture files; or ``interface`` (with an optional ``bpf``
    capture filter and ``duration`` in seconds) for a live capture.
    ``fmt``: ``"jsonl"`` or ``"table"``; ``out``: a file (default stdout).
    ``scan_threshold`` distinct SMB destinations from one source within
    ``scan_window`` seconds raise smb-worm-scan.  ``flows``: emit one ``flow``
    event per SMB flow (JSON lines only).  ``fail_on``: critical, high,
    medium or low.  ``capture_tool``: force ``dumpcap`` or ``tcpdump``.
    ``jobs``: worker processes for capture files (see
    :mod:`smbsentry.detect.parallel`; 0: one per CPU); a live capture
    always uses one.
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    inputs = [os.fspath(p) for p in inputs or ()]
    problem = _usage_problem(inputs, interface, bpf, duration, fmt, fail_on, capture_tool, jobs)
    config = Config(scan_threshold=int(scan_threshold), scan_window=float(scan_window), flow_events=flows)
    if problem is None:
        try:
            config.validate()
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        _err(stderr, problem)
        return 2
    # -- output ------------------------------------------------------------
    try:
        raw: TextIO = open(out, "w", encoding="utf-8", newline="\n") if out is not None else stdout  # noqa: SIM115
    except OSError as exc:
        _err(stderr, f"cannot write {out}: {exc.strerror}")
        return 2
    stream: Any = _Output(raw, str(out) if out is not None else "standard output")
    try:
        return _run(inputs, interface, bpf, duration, capture_tool, jobs, fmt, config, stream, quiet, fail_on,
                    stdout, stderr, store, db)
    except _OutputFailed as exc:
        _err(stderr, str(exc))
        return 1
    finally:
        if raw is not stdout:
            with contextlib.suppress(OSError):
                raw.close()


def _usage_problem(inputs: list[str], interface: str | None, bpf: str | None, duration: float | None, fmt: str,
                   fail_on: str | None, capture_tool: str | None, jobs: int) -> str | None:
    """What is wrong with the command line (one line for the user), or None."""
    if inputs and interface:
        return "give capture files or --interface, not both"
    if not inputs and not interface:
        return "no input: give capture files (pcap, pcapng, .gz) or --interface IF"
    if bpf is not None and not interface:
        return "--bpf applies to a live capture (--interface) only"
    if duration is not None and not interface:
        return "--duration applies to a live capture (--interface) only"
    if duration is not None and not duration > 0:
        return f"bad --duration {duration!r} (seconds, > 0)"
    if fmt not in FORMATS:
        return f"unknown --format {fmt!r} (choose from {', '.join(FORMATS)})"
    if fail_on is not None and fail_on not in FAIL_ON_LEVELS:
        return f"unknown --fail-on {fail_on!r} (critical, high, medium or low)"
    if capture_tool is not None and capture_tool not in ("dumpcap", "tcpdump"):
        return f"unknown capture tool {capture_tool!r} (dumpcap or tcpdump)"
    if not isinstance(jobs, int) or not 0 <= jobs <= 256:
        return f"bad --jobs {jobs!r} (0..256; 0: one per CPU)"
    return None


def _run(inputs: list[str], interface: str | None, bpf: str | None, duration: float | None, capture_tool: str | None,
         jobs: int, fmt: str, config: Config, stream: Any, quiet: bool, fail_on: str | None,
         stdout: TextIO, stderr: TextIO, store: bool = False, db: str | None = None) -> int:
    """Read the inputs, write events and the summary; the exit status.  SIGTERM
    while reading files ends the run as Ctrl-C does: the summary of what was
    read is written (a service manager's stop must not leave an empty file)."""
    if fmt == "table":
        width = None if stream.isatty() else 200
        writer: Any = TableWriter(Console(file=stream, width=width, highlight=False))
    else:
        writer = JsonlWriter(stream)
    worst = [99]
    usage: list[dict[str, Any]] = []  # smb1-usage events, kept for the store (--store)
    span: list[Any] = [None, None]

    def sink(ev: dict[str, Any]) -> None:
        if ev["event_type"] == "alert":
            worst[0] = min(worst[0], ev["alert"]["severity"])
        elif store and ev["event_type"] == "smb1-usage":
            usage.append(ev)
        if store and isinstance(ev.get("timestamp"), str):
            ts = ev["timestamp"]
            span[0] = ts if span[0] is None or ts < span[0] else span[0]
            span[1] = ts if span[1] is None or ts > span[1] else span[1]
        writer.event(ev)

    engine = Engine(sink, config)
    errors: list[str] = []
    status = 0
    interrupted = False
    if jobs == 0:
        jobs = os.cpu_count() or 1
    if jobs > 1 and (interface or not hasattr(os, "fork")):
        jobs = 1
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt) if not interface and _main_thread() else None
    try:
        try:
            if interface:
                status = _live(engine, interface, bpf, duration, capture_tool, errors, stderr)
            elif jobs > 1:
                engine = _read_files_parallel(inputs, config, jobs, writer, fmt, sink, worst, errors, stream, stderr)
            else:
                for path in inputs:
                    _read_file(engine, path, errors, stderr)
        except KeyboardInterrupt:
            interrupted = True
        except _StartFailed as exc:
            return exc.status
        except _InternalError as exc:
            _err(stderr, f"internal error: {exc}")
            return 1
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            with contextlib.suppress(KeyboardInterrupt):
                stats = engine.finish()
        stats["errors"] = errors
        stats["detector"] = _accel.mode()
        if interrupted:
            stats["interrupted"] = True
        writer.summary(stats)
        stream.flush()
        if fmt == "jsonl" and not quiet:
            for line in summary_lines(stats):
                stderr.write(line + "\n")
            stderr.flush()
    except BrokenPipeError:
        # the reader of our output went away (e.g. `| head`): stop quietly
        with contextlib.suppress(Exception):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    if store and not _record_usage(db, inputs, usage, span, stderr, quiet):
        return 1
    if interrupted and not interface:
        return 130
    if status:
        return status
    if errors:
        return 2
    if fail_on is not None and worst[0] <= FAIL_ON_LEVELS[fail_on]:
        return 3
    return 0


def _record_usage(db: str | None, inputs: list[str], usage: list[dict[str, Any]], span: list[Any], stderr: TextIO,
                  quiet: bool = False) -> bool:
    """--store: the SMBv1 inventory into the store (detect/record.py); one line on failure."""
    from ..store import StoreError
    from .record import record

    try:
        sid = record(db, inputs, usage, (span[0], span[1]))
    except (StoreError, OSError) as exc:
        _err(stderr, f"the SMBv1 inventory was not recorded: {exc}")
        return False
    if not quiet:
        stderr.write(f"SMBv1 inventory: {len(usage)} client/server pair(s) recorded as run {sid}\n")
    return True


def _read_files_parallel(
    inputs: list[str],
    config: Config,
    jobs: int,
    writer: Any,
    fmt: str,
    sink: Any,
    worst: list[int],
    errors: list[str],
    stream: TextIO,
    stderr: TextIO,
) -> Engine:
    from .parallel import run_files

    def on_line(line: bytes) -> None:
        text = line.decode("utf-8")
        alert = '"event_type": "alert"' in text[:80]
        if fmt == "jsonl":
            if alert:
                worst[0] = min(worst[0], json.loads(text)["alert"]["severity"])
            writer.raw(text, alert)
        else:
            sink(json.loads(text))

    def on_error(message: str) -> None:
        _input_error(errors, stderr, message)

    stream.flush()  # nothing buffered may be written twice by a forked worker
    try:
        return run_files(inputs, config, jobs, on_line, on_error, sink)
    except RuntimeError as exc:
        raise _InternalError(str(exc)) from None


class _InternalError(Exception):
    pass


def _read_file(engine: Engine, path: str, errors: list[str], stderr: TextIO) -> None:
    label = path
    try:
        ctx = open_capture(path)
    except CaptureError as exc:
        _input_error(errors, stderr, f"{label}: {exc}")
        return
    except BrokenPipeError:
        raise
    except OSError as exc:
        _input_error(errors, stderr, f"cannot read {label}: {exc.strerror or exc}")
        return
    try:
        engine.run(ctx.reader, label)
    except BrokenPipeError:
        raise
    except CaptureError as exc:
        _input_error(errors, stderr, f"{label}: {exc} (frames before it were analysed)")
    except OSError as exc:
        _input_error(errors, stderr, f"{label}: read error: {exc.strerror or exc}")
    finally:
        ctx.close()
        engine.end_source()


def _live(
    engine: Engine,
    interface: str,
    bpf: str | None,
    duration: float | None,
    tool: str | None,
    errors: list[str],
    stderr: TextIO,
) -> int:
    try:
        cap = LiveCapture(interface, bpf, duration, tool)
    except LiveCaptureError as exc:
        _err(stderr, str(exc))
        raise _StartFailed(1) from None
    old_term = None
    if _main_thread():
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        try:
            reader = cap.start()
        except LiveCaptureError as exc:
            _err(stderr, str(exc))
            raise _StartFailed(2 if exc.kind == "filter" else 1) from None
        try:
            engine.run(reader, interface, key="in_iface")
        except CaptureError as exc:
            if not cap.stopped:  # a record cut by stopping the tool is expected
                _input_error(errors, stderr, f"capture on {interface}: {exc}")
        except KeyboardInterrupt:
            pass
        failure = cap.failure()
        if failure is not None:
            _err(stderr, str(failure))
            errors.append(str(failure))
            return 1
        return 0
    finally:
        cap.close()
        engine.end_source()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum: int, frame: object) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m smbsentry.detect``: the detector with its own argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m smbsentry.detect",
        description="Detect MS17-010 exploitation, DoublePulsar, SMBGhost, WannaCry and SMB worm "
        "scans in captures or live traffic; report SMBv1 use.",
    )
    p.add_argument("pcap", nargs="*", help="capture files: pcap, pcapng, optionally .gz")
    p.add_argument("-i", "--interface", help="capture live from this interface (needs root)")
    p.add_argument("--bpf", help="capture filter for --interface, e.g. 'tcp port 445 or udp port 53'")
    p.add_argument("-f", "--format", default="jsonl", choices=FORMATS)
    p.add_argument("-o", "--output", help="write events here instead of stdout")
    p.add_argument("--scan-threshold", type=int, default=20, help="distinct SMB destinations (default 20)")
    p.add_argument("--scan-window", type=float, default=10.0, help="... within this many seconds (default 10)")
    p.add_argument("--no-flows", action="store_true", help="no per-flow events")
    p.add_argument("--fail-on", choices=sorted(FAIL_ON_LEVELS), help="exit 3 on an alert this severe")
    p.add_argument("--duration", type=float, help="stop a live capture after this many seconds")
    p.add_argument("--capture-tool", choices=("dumpcap", "tcpdump"))
    p.add_argument("-j", "--jobs", type=int, default=1, help="worker processes for files (0: one per CPU)")
    p.add_argument("-q", "--quiet", action="store_true", help="no human summary on stderr")
    p.add_argument("--signatures", action="store_true", help="list the signatures and exit")
    args = p.parse_args(argv)
    if args.signatures:
        for s in SIGNATURES.values():
            print(f"{s.id:26} {s.severity}  {s.signature}")
        return 0
    return main_detect(
        [Path(x) for x in args.pcap],
        args.interface,
        args.bpf,
        args.format,
        args.output,
        args.scan_threshold,
        args.scan_window,
        flows=not args.no_flows,
        quiet=args.quiet,
        fail_on=args.fail_on,
        duration=args.duration,
        capture_tool=args.capture_tool,
        jobs=args.jobs,
    )


if __name__ == "__main__":
    sys.exit(main())
