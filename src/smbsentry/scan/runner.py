"""A local `smbsentry scan` from parsed arguments to its exit status.

The command line (cli.py) parses and checks the arguments and opens the
store; this module runs the engine and owns what can go wrong while it
runs, so that every way of ending says one line and keeps what was done:

* the output file (-o) or the store stops taking writes (a full disk, a
  database gone for longer than its retry window): the scan stops taking
  targets, the hosts in flight are cancelled, everything already finished
  stays in the store (or the file), the scan is recorded "interrupted", one
  line says what failed and how to resume; exit 1;
* hosts lost to local resource errors (engine.py): the count, the first
  addresses and the cause on one line; the scan is recorded "interrupted"
  so `--resume` tries them again; exit 1;
* Ctrl-C or SIGTERM: finished hosts written, recorded "interrupted", 130;
* a bad target met while expanding: named, exit 2;
* `--fail-on`: exit 3 when a host has a finding at or above the severity.

With discovery (`--discovery`, smbsentry.discover), the address ranges are
first swept for SMB hosts; each confirmed host goes to the engine through
a Feed at once, so fingerprinting runs while the sweep goes on.  Single
addresses, host names, IPv6 and targets files go to the engine directly.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .fingerprint import ScanOptions
from ..discover.targets import TargetError, TargetSet

EXIT_FAILED = 1  # a write failed, or hosts were lost to local resource errors
EXIT_BAD_INPUT = 2
EXIT_FINDINGS = 3
EXIT_INTERRUPTED = 130


@dataclass
class LocalScan:
    """Everything the scan command decided before the first packet."""

    options: ScanOptions
    targets: TargetSet
    fmt: str = "table"
    lang: str = "en"
    output: Path | None = None
    quiet: bool = False
    concurrency: int = 256
    rate: float = 0
    store: Any = None  # smbsentry.store.Store, opened, the scan begun or resumed
    scan_id: int | None = None
    done: set[str] = field(default_factory=set)  # addresses already in the store (--resume)
    fail_on: str | None = None  # a severity of model.SEVERITIES
    discovery: str = "none"  # none | auto | syn | connect (smbsentry.discover.stage.MODES)
    retries: int = 0  # discovery: probes sent again to addresses that did not answer
    # (fmt, stream, console, lang) -> a writer with add(result, data) and finish(): report.output.Writer,
    # chosen by the caller (app.scanprep) so that scan/ does not import report/
    writer: Any = None
    # set when the run ends: every target was tried and every result kept (unresolved host names aside, which
    # the exit status reports): what respond needs to know to write its files
    finished: bool = False


class _Run:
    """The mutable state of one run, shared by the engine's callbacks."""

    def __init__(self, plan: LocalScan, err: Console, writer) -> None:
        self.plan = plan
        self.err = err
        self.writer = writer
        self.found = 0
        self.failing = 0
        self.failure: str | None = None  # why the scan was stopped (a write failed)
        self.bad_input: list[str] = []
        self.engine = None
        self.main = None
        self.discovery = None  # discover.stage.Stats, when discovery ran

    def stop(self, why: str) -> None:
        if self.failure is None:
            self.failure = why
        self.engine.stop()
        if self.main is not None:
            self.main.cancel()

    def on_result(self, result) -> None:
        if self.failure is not None:
            return  # stopping: nothing more is written
        plan = self.plan
        self.found += 1
        if plan.fail_on is not None and _fails(result, plan.fail_on):
            self.failing += 1
        data = result.to_dict()  # once, for the store and the writer
        if plan.store is not None:
            from ..store import StoreError

            try:
                plan.store.add_host(plan.scan_id, data)
            except StoreError as exc:
                return self.stop(str(exc))
        try:
            self.writer.add(result, data)
        except OSError as exc:
            self.stop(f"cannot write {_name(plan.output)}: {exc.strerror or exc}")

    def guarded(self, it):
        done, excluded = self.plan.done, self.plan.targets.is_excluded
        try:
            for t in it:
                if t.address is not None and (t.address in done or excluded(t.address)):
                    continue
                yield t
        except TargetError as exc:
            self.bad_input.append(str(exc))


def _fails(result, fail_on: str) -> bool:
    from ..model import SEVERITIES

    threshold = SEVERITIES.index(fail_on)
    return any(f.status in ("vulnerable", "likely") and SEVERITIES.index(f.severity) <= threshold for f in result.findings)


def _name(output: Path | None) -> str:
    return str(output) if output else "standard output"


def run_local_scan(plan: LocalScan, err: Console) -> int:
    """Run the scan; say how it ended on `err`; return the exit status."""
    if plan.writer is None:
        raise ValueError("LocalScan.writer is not set (the caller passes report.output.Writer)")
    from .engine import Engine, install_uvloop

    try:
        stream = open(plan.output, "w", encoding="utf-8", newline="") if plan.output else sys.stdout  # noqa: SIM115
    except OSError as exc:
        _say(err, f"cannot write {plan.output}: {exc.strerror}")
        _finish_store(plan, "interrupted")
        return EXIT_BAD_INPUT
    # A table for a pipe or a file is not folded to 80 columns.
    table_console = Console(file=stream, width=None if stream.isatty() else 200, highlight=False)
    run = _Run(plan, err, plan.writer(plan.fmt, stream, table_console if plan.fmt == "table" else None, lang=plan.lang))
    progress = Progress(TextColumn("[bold]scanning"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[found]} reported"), TimeElapsedColumn(),
                        console=err, disable=plan.quiet or not err.is_terminal, transient=True)
    task = progress.add_task("scan", total=plan.targets.estimated_count, found=0)

    def on_result(result) -> None:
        run.on_result(result)
        progress.update(task, found=run.found)

    engine = run.engine = Engine(plan.options, concurrency=plan.concurrency, rate=plan.rate or None,
                                 on_result=on_result, on_progress=lambda n: progress.advance(task, n),
                                 on_lost=lambda result: None)
    if engine.fit.lowered:
        _say(err, engine.fit.message())
    install_uvloop()
    import asyncio  # here, not at the top: `smbsentry detect` and the others start faster without it

    async def main():
        loop = asyncio.get_running_loop()
        run.main = asyncio.current_task()

        def on_signal() -> None:
            engine.stop()
            if run.main is not None:
                run.main.cancel()

        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                handled.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            if plan.discovery != "none" and plan.targets.ipv4_ranges()[0]:
                return await _pipelined(run, engine)
            return await engine.run(run.guarded(iter(plan.targets)))
        finally:
            # uvloop leaves a closed loop's do-nothing handler installed: whatever runs after the scan (respond's
            # writing) must stop on Ctrl-C and SIGTERM again
            for sig in handled:
                loop.remove_signal_handler(sig)

    if plan.discovery != "none":
        progress.update(task, total=None)  # the hosts to assess are not known before discovery finds them
    with progress:
        try:
            summary = asyncio.run(main())
        except KeyboardInterrupt:
            summary = engine.summary
            summary.interrupted = True
    _close_output(run, stream)
    incomplete = summary.interrupted or run.bad_input or summary.lost or run.failure is not None
    plan.finished = not incomplete
    _finish_store(plan, "interrupted" if incomplete else "finished", run)
    return _report(run, summary, err)


async def _pipelined(run: _Run, engine):
    """Discovery feeding the engine: every confirmed host is assessed while the sweep goes on."""
    import asyncio

    import socket

    from ..discover import stage
    from ..services import UDP_PORTS
    from ..discover.run import run as discover
    from ..discover.permute import AddressSpace
    from ..model import LOCAL_ERRNOS
    from .engine import Feed
    from ..discover.targets import Target

    plan, options = run.plan, run.plan.options
    feed = Feed(high_water=max(64, plan.concurrency * 2))
    blocks, excludes = plan.targets.ipv4_ranges()
    space = AddressSpace(blocks, excludes)
    done = plan.done
    request = stage.Request(space, smb_ports=tuple(options.ports),
                            service_ports=tuple(sorted(p for p in options.service_ports if p not in UDP_PORTS)),  # TCP sweep only
                            rate=plan.rate or stage.DEFAULT_RATE, retries=plan.retries, timeout=options.timeout,
                            concurrency=engine.concurrency, backlog=feed.backlog)
    handed: set[str] = set()  # the hosts found, so that a fallback does not scan them twice

    def on_host(address: str) -> None:
        handed.add(address)
        if address not in done:
            feed.put(Target(address))

    def on_stats(stats) -> None:
        run.discovery = stats
        if not plan.quiet:
            run.err.print(stats.mode_line(), markup=False, highlight=False, soft_wrap=True)

    async def others() -> None:
        for target in run.guarded(plan.targets.without_ipv4_ranges()):
            await feed.wait_room()
            feed.put(target)

    async def sweep() -> None:
        try:
            await discover(request, plan.discovery, on_host, on_stats)
        except OSError as exc:
            if exc.errno not in LOCAL_ERRNOS:
                run.failure = f"discovery failed: {exc.strerror or exc}"
                engine.stop()
                return
            # Out of descriptors or ports: the engine's own retries of local errors
            # (and its count of hosts lost) take every address not found yet.
            if not plan.quiet:
                run.err.print(f"smbsentry: discovery stopped: this machine ran out of resources ({exc.strerror or exc}); "
                              "the rest of the ranges is fingerprinted address by address", markup=False, highlight=False,
                              soft_wrap=True)
            for index in range(space.count):
                address = socket.inet_ntoa(space.address(index).to_bytes(4, "big"))
                if address not in handed and address not in done:
                    await feed.wait_room()
                    feed.put(Target(address))

    async def feed_all() -> None:
        jobs = [asyncio.ensure_future(others())]
        if space.count:
            jobs.append(asyncio.ensure_future(sweep()))
        try:
            await asyncio.gather(*jobs)
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            feed.close()

    engine_task = asyncio.ensure_future(engine.run(feed))
    feeding = asyncio.ensure_future(feed_all())
    try:
        await feeding
        return await engine_task
    except asyncio.CancelledError:
        feeding.cancel()
        engine_task.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        try:
            summary = await engine_task
        except asyncio.CancelledError:  # cancelled before it started
            summary = engine.summary
        summary.interrupted = True
        return summary


def _close_output(run: _Run, stream) -> None:
    """Write what json/table/html keep until the end; a failure here is the run's failure too."""
    try:
        run.writer.finish()
        if run.plan.output:
            stream.close()
    except OSError as exc:
        if run.failure is None:
            run.failure = f"cannot write {_name(run.plan.output)}: {exc.strerror or exc}"
        if run.plan.output:
            try:
                stream.close()
            except OSError:
                pass


def _finish_store(plan: LocalScan, status: str, run: _Run | None = None) -> None:
    """Record the end of the scan.  When the store cannot be written any more,
    the row stays "running" and readers show it "interrupted" once this
    process is gone (store/liveness.py); `--resume` completes it."""
    if plan.store is None:
        return
    from ..store import StoreError

    try:
        plan.store.finish_scan(plan.scan_id, status)
    except StoreError as exc:
        if run is not None and run.failure is None:
            run.failure = str(exc)
    try:
        plan.store.close()
    except StoreError:
        pass


def _report(run: _Run, summary, err: Console) -> int:
    plan = run.plan
    resume = f"smbsentry scan --resume {plan.scan_id}" if plan.store is not None else None
    if run.failure is not None:
        kept = (f"{plan.store.committed} host(s) recorded in scan {plan.scan_id}" if plan.store is not None
                else f"{run.found} host(s) written")
        _say(err, f"{run.failure}; stopped after {summary.targets} targets, {kept}"
                  + (f" (resume: {resume})" if resume else ""))
        return EXIT_FAILED
    if not plan.quiet and run.discovery is not None:
        err.print(run.discovery.summary_line(), markup=False, highlight=False, soft_wrap=True)
    if not plan.quiet:
        err.print(
            f"{summary.targets} targets, {summary.with_smb} with SMB open, "
            + (f"{summary.services_only} with other services only, " if summary.services_only else "")
            + f"{summary.elapsed:.1f}s ({summary.hosts_per_second:.0f} hosts/s)"
            + (f", {summary.unresolved} unresolved" if summary.unresolved else "")
            + (" - interrupted, finished hosts written" if summary.interrupted else "")
            + (f"; recorded as scan {plan.scan_id}" + (f" (resume: {resume})" if summary.interrupted else "")
               if plan.store is not None else ""),
            markup=False,
        )
    if summary.lost:
        first = ", ".join(summary.lost_sample) + (", ..." if summary.lost > len(summary.lost_sample) else "")
        _say(err, f"{summary.lost} host(s) not scanned: this machine ran out of resources "
                  f"({_cause(summary.lost_reason)}) on every try ({first}); they are not in the results"
                  + (f"; resume: {resume}" if resume else "; raise ulimit -n or lower --concurrency"))
    if summary.unresolved:  # said even with -q: those targets are not in the results
        names = ", ".join(summary.unresolved_sample) + (", ..." if summary.unresolved > len(summary.unresolved_sample) else "")
        why = ("no such name" if not summary.unresolved_for_now else "the resolver failed or timed out"
               if summary.unresolved_for_now == summary.unresolved else "no such name, or the resolver failed")
        _say(err, f"{summary.unresolved} host name(s) did not resolve ({why}: {names}): not scanned, not in the results")
    if run.bad_input:
        _say(err, run.bad_input[0])
        return EXIT_BAD_INPUT
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.lost or summary.unresolved_for_now:
        return EXIT_FAILED
    if summary.unresolved:
        return EXIT_BAD_INPUT
    if run.failing:
        if not plan.quiet:
            err.print(f"{run.failing} host(s) with findings at or above {plan.fail_on}", markup=False)
        return EXIT_FINDINGS
    return 0


def _cause(error: str | None) -> str:
    """'445 smb1-negotiate: local-error: cannot open a socket: Too many open files' -> the part after local-error."""
    if not error:
        return "local error"
    return error.split("local-error:", 1)[-1].strip() or error


def _say(err: Console, message: str) -> None:
    err.print(f"smbsentry: {message}", markup=False, highlight=False, soft_wrap=True)
