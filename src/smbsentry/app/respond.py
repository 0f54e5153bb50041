"""`smbsentry respond`: from a range to an ordered to-do list, in one command.

What a responder runs first in an outbreak. One run:

1. scans the targets with the default checks (or those asked), recorded in
   the store like any scan (so `scan --resume N` and `plan --scan N` work on
   it later);
2. audits the inventories given (`--inventories`) and merges them into the
   scan results by the one join rule (audit/join.py);
3. plans the fix (remediate/planner.py), with the SMB1 use that `detect
   --store` recorded;
4. writes, into DIR, all at once (a temporary folder beside DIR takes its
   place at the end: an interrupted or refused run leaves no half-written
   folder): scan.jsonl (the host results as the scan wrote them), hosts.csv,
   report.html and report-zh.html, report.json (the `report N --format json`
   shape: hosts, counts, the ranked action list), audit.jsonl (with
   inventories) and plan/ (plan.md, plan.json, bundle.csv, scripts/);
5. prints the ranked action list (the first --top rows) and where the files are.

Exit status: 0 when everything was scanned and written; the scan's own status
when it did not finish (1 a write failed or hosts were lost to local errors,
2 bad input, 130 interrupted) with nothing written in DIR; 2 when no host
answered (nothing to plan), an inventory could not be read or a target's host
name does not exist, 1 when the resolver failed for one (the rest is still
written in each case); 1 when DIR cannot be written.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..textio import replace_folder
from .ahead import PlanAhead
from .follow import ScanFollower
from .forks import Deferred, side
from .scanprep import RequestError, ScanRequest, check_kb
from .scans import run as run_scan

REPORT_LANGS = ("en", "zh")


@dataclass
class RespondRequest:
    scan: ScanRequest
    out_dir: Path
    lang: str = "en"
    inventories: list[Path] = field(default_factory=list)
    top: int = 20


class _Refused(Exception):
    """The run stops here: `status` is the exit status, `message` the one line said (None: already said)."""

    def __init__(self, status: int, message: str | None = None):
        super().__init__(message)
        self.status, self.message = status, message


def _say(err: Console, message: str) -> None:
    err.print(f"smbsentry: {message}", markup=False, highlight=False, soft_wrap=True)


WRITTEN = frozenset({"report.html", "report-zh.html", "report.json", "hosts.csv", "scan.jsonl", "audit.jsonl", "plan"})
REPORT_HEAD = b'{"format": "smbsentry-report"'


def _ours(out: Path) -> bool:
    """Whether a folder holds what an earlier `respond` wrote and nothing else: the only folder it replaces."""
    names = {p.name for p in out.iterdir()}
    if not names:
        return True
    if not names <= WRITTEN or not (out / "report.json").is_file():
        return False
    with open(out / "report.json", "rb") as fh:
        return fh.read(len(REPORT_HEAD)) == REPORT_HEAD


def _check_out_dir(out: Path) -> None:
    if not out.resolve().name or out.resolve() == Path.cwd().resolve():
        raise _Refused(2, f"{out} is the current folder (or the root): give a folder for respond to write, "
                          "e.g. -o response/")
    if out.exists() and (not out.is_dir() or not _ours(out)):
        raise _Refused(2, f"{out} exists and is not a folder `respond` wrote (it holds other files): give a new or "
                          "empty folder")


def _check_inventories(req: "RespondRequest") -> None:
    """Before the scan, not after it: a mistyped path costs one line, not a whole scan."""
    for p in req.inventories:
        if not p.exists():
            raise _Refused(2, f"{p}: no such file or folder (nothing scanned)")


def _scan(req: RespondRequest, tmp: Path, err: Console) -> tuple[int | None, int]:
    """The scan, its host records in tmp/scan.jsonl: its id in the store (None without a store), and the status
    respond ends with when it writes all the same (host names that did not resolve: 1 or 2, said on err)."""
    req.scan.output, req.scan.fmt = tmp / "scan.jsonl", "jsonl"
    started: list[int | None] = []
    ended: list[bool] = []
    code = run_scan(req.scan, err, on_start=started.append, on_end=ended.append)  # says on err how it ended
    if not started:
        raise _Refused(code)  # refused before it began (bad input, the store), said on err
    scan_id = started[0]
    if code in (1, 2) and ended and ended[0]:
        return scan_id, code  # every other target was scanned: the files are written, the status stays
    if code not in (0, 3):
        later = f" (recorded as scan {scan_id}: `smbsentry scan --resume {scan_id}`, then `smbsentry respond`"
        raise _Refused(code, "the scan did not finish: nothing written in "
                             f"{req.out_dir}" + (later + " again or `smbsentry plan --scan N`)" if scan_id else ""))
    return scan_id, 0


def _records(req: RespondRequest, follower: ScanFollower) -> list[dict]:
    records = follower.finish()
    if not records:
        raise _Refused(2, "no host answered on SMB or another asked service in the targets: nothing to plan "
                          f"(nothing written in {req.out_dir})")
    return records


def _audit(req: RespondRequest, hosts: list[dict], err: Console) -> tuple[list[dict], list[dict], int]:
    """(merged host records, audit records, inventory errors said)."""
    if not req.inventories:
        return hosts, [], 0
    from ..audit.api import audit_files
    from ..audit.merge import merge_results

    for p in req.inventories:
        if not p.exists():
            raise _Refused(2, f"{p}: no such file or folder")
    results, errors = audit_files(req.inventories)
    for e in errors:
        _say(err, str(e))
    merged = merge_results(hosts, results)
    return merged, [r.to_dict() for r in results], len(errors)


def _report_name(lang: str) -> str:
    """English is report.html whatever --lang is, so links to it do not depend on the run."""
    return "report.html" if lang == "en" else f"report-{lang}.html"


def _report_html(tmp: Path, merged: list[dict], lang: str, plan, scan_row: dict | None, pieces: dict | None) -> None:
    from ..report.html import render

    (tmp / _report_name(lang)).write_text(render(merged, lang=lang, scan=scan_row, plan=plan, pieces=pieces),
                                          encoding="utf-8")


def _start_side_job(req: RespondRequest, tmp: Path, merged: list[dict], views: list, scan_row: dict | None,
                    ahead: PlanAhead):
    """The other language's plan and report, made by a child process on the second core while this one plans
    and writes the rest."""
    from ..remediate.planner import plan as make_plan
    from ..report import html, view  # noqa: F401 - imported once, before the fork: both processes use them

    html.warm()
    other = [lang for lang in REPORT_LANGS if lang != req.lang]

    def job() -> None:
        for lang in other:
            page_plan = make_plan([], lang, views=views, ready=ahead.ready(lang), scripts=False)  # no page shows scripts
            _report_html(tmp, merged, lang, page_plan, scan_row, ahead.pieces(lang))

    return side(job, "the " + "/".join(other) + " report")


def _write(req: RespondRequest, tmp: Path, merged: list[dict], audits: list[dict], p, scan_row: dict | None,
           follower: ScanFollower | None = None, pieces: dict | None = None) -> None:
    """Every file in the language asked: the HTML report here; the plan folder, hosts.csv and report.json by a
    second child (the three processes end about together). `follower`: the scan's records' CSV rows and JSON
    texts, made while the scan ran, when `merged` is those records; `pieces`: the records' parts of the page
    (app/ahead.py)."""
    from ..remediate.writer import write_plan
    from ..report.convert import hosts_csv

    def job() -> None:
        write_plan(p, tmp / "plan")
        lines = follower.csv_lines if follower is not None else None
        (tmp / "hosts.csv").write_text(hosts_csv(merged, lines), encoding="utf-8")
        _report_json(tmp, merged, p, scan_row, follower)
        if audits:
            (tmp / "audit.jsonl").write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in audits),
                                             encoding="utf-8")

    wait_plan = side(job, "the plan")
    try:
        _report_html(tmp, merged, req.lang, p, scan_row, pieces)
    except BaseException:
        wait_plan(kill=True)
        raise
    wait_plan()


def _report_json(tmp: Path, merged: list[dict], p, scan_row: dict | None, follower: ScanFollower | None) -> None:
    """report.json, the shape of `report N --format json`: the hosts' texts are the follower's when it has them."""
    from ..report import view

    # "hosts" last, as json.dumps of the whole would write it
    head = json.dumps(view.report_json_head(scan_row, merged, p), ensure_ascii=False)[:-1]
    hosts = follower.json_texts if follower is not None else [json.dumps(h, ensure_ascii=False) for h in merged]
    (tmp / "report.json").write_text(head + ', "hosts": [' + ", ".join(hosts) + "]}\n", encoding="utf-8")


def _record(req: RespondRequest, scan_id: int | None, audits: list[dict], the_plan, err: Console) -> None:
    if scan_id is None:
        return
    from ..store import Store, StoreError

    try:
        store = Store.open(req.scan.db)
        try:
            for a in audits:
                store.add_audit(a, scan_id)
            store.add_plan(the_plan.to_dict(), scan_id)
        finally:
            store.close()
    except StoreError as exc:
        _say(err, f"written, but the audits and the plan were not recorded in the store: {exc}")


def print_actions(plan, lang: str, top: int, console: Console) -> None:
    """The first `top` rows of the ranked list, for the terminal (remote strings are printed as text, never markup)."""
    from .. import i18n
    from ..remediate import texts

    rows = plan.actions
    table = Table(title=texts.t("h-actions", lang), show_lines=False)
    for col in ("#", texts.t("col-rank", lang), texts.t("col-host", lang), texts.t("col-why", lang), texts.t("col-next", lang)):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(rows[:top], 1):
        who = " ".join(x for x in (r.host, r.address) if x) or r.key
        # the first piece of evidence (report.html and plan.md have all of it), or the whole of one sentence
        # that has "; " inside it (the implant's answer)
        whole = r.category == "isolate-now"
        why = _why(r.why if whole else r.why.split("; ")[0], lang)
        table.add_row(str(i), texts.t(f"rank-{r.category}", lang), who, why if len(why) <= 110 else why[:109] + "\u2026", r.step)
    console.print(table)
    if len(rows) > top:
        console.print(texts.t("actions-more", lang, n=len(rows) - top), markup=False, highlight=False)


_PIECE = re.compile(r"^([a-z0-9-]+) (vulnerable|likely|missing|unknown|not_vulnerable|patched): (.*)$", re.S)


def _why(piece: str, lang: str) -> str:
    """One piece of a row's evidence ("ms17-010 vulnerable: PeekNamedPipe ...") in the language asked."""
    if lang == "en":
        return piece
    from .. import i18n

    m = _PIECE.match(piece)
    if m is None:
        return i18n.sentence(piece, lang)
    return f"{m.group(1)} {i18n.label('status', m.group(2), lang)}: {i18n.sentence(m.group(3), lang)}"


def respond(req: RespondRequest, out: Console, err: Console) -> int:
    """Run the whole job; the exit status (module docstring)."""
    try:
        return _respond(req, out, err)
    finally:
        gc.unfreeze()  # the caller's objects are the collector's again (a test suite, the web)


def _missing_parents(folder: Path) -> list[Path]:
    """The folders mkdir(parents=True) would make for `folder`, outermost first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out[::-1]


def _unmake(made: list[Path]) -> None:
    """Remove the folders this run made when nothing was written in them (innermost first; a folder something
    else put a file in since stays)."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            return


def _respond(req: RespondRequest, out: Console, err: Console) -> int:
    target = req.out_dir
    made: list[Path] = []
    try:
        _check_out_dir(target)
        _check_inventories(req)
        check_kb()
        made = _missing_parents(target.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except _Refused as exc:
        _say(err, exc.message)
        return exc.status
    except RequestError as exc:
        _say(err, str(exc))
        return 2
    except OSError as exc:
        _unmake(made)
        _say(err, f"cannot write {target}: {exc.strerror or exc}")
        return 1
    try:
        return _scan_and_write(req, tmp, made, out, err)
    finally:
        if not target.exists():  # refused, failed or stopped with nothing written: no folders left behind either
            _unmake(made)


def _scan_and_write(req: RespondRequest, tmp: Path, made: list[Path], out: Console, err: Console) -> int:
    target = req.out_dir
    # what follows the scan runs in a process forked now, which loads the planner, the report templates and
    # the translations while the scan runs (the scan leaves a core partly idle), so none of that waits after it
    follower = ScanFollower(tmp / "scan.jsonl")
    # the language asked first: its plan and report are on the critical path after the scan
    langs = (req.lang, *(lang for lang in REPORT_LANGS if lang != req.lang))
    ahead = PlanAhead(follower, langs, enabled=not req.inventories)

    def orphaned() -> None:  # the parent was killed during the scan: nothing is written, nothing stays
        shutil.rmtree(tmp, ignore_errors=True)
        _unmake(made)

    def warm() -> None:
        _warm()
        if req.scan.store and ahead.enabled:
            from ..resultfile import smb1_usage_records

            ahead.usage = smb1_usage_records(req.scan.db)  # read again after the scan: that reading decides

    later = Deferred.start(warm, lambda message: _finish(req, tmp, ahead, *_ended(message), out, err), idle=ahead.idle,
                           orphaned=orphaned)
    try:
        scan_id, scan_status = _scan(req, tmp, err)
    except _Refused as exc:
        later.cancel()
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.message:
            _say(err, exc.message)
        return exc.status
    except BaseException:
        later.cancel()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    status = later.go(f"{'-' if scan_id is None else scan_id} {scan_status}")
    if status >= 0:
        if status != 0:
            shutil.rmtree(tmp, ignore_errors=True)  # a child that failed before it could clean up after itself
        return status
    # the child was killed (-status is the signal) before it could say how far it got
    interrupted = -status in (signal.SIGINT, signal.SIGTERM)
    if not tmp.exists() and target.is_dir() and _ours(target) and (target / "report.json").is_file():
        _say(err, f"stopped (signal {-status}) after {target} was written: the files are complete; the ranked "
                  "list was not printed and the plan may not be recorded in the store")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        _say(err, f"writing {target} stopped (signal {-status}): nothing written there")
    return 130 if interrupted else 1


def _warm() -> None:
    """Import and load, before the scan ends, what the plans and reports need."""
    from .. import i18n
    from ..kb.store import kb
    from ..remediate import planner, writer  # noqa: F401
    from ..report import convert, html, view  # noqa: F401
    from ..resultfile import smb1_usage_records  # noqa: F401

    kb()
    html.warm()
    i18n.translator()


def _ended(message: str) -> tuple[int | None, int]:
    """The writer's message from the parent: "SCAN_ID STATUS" ("-" without a store) -> (scan id, status)."""
    scan_id, status = message.split()
    return (None if scan_id == "-" else int(scan_id)), int(status)


def _finish(req: RespondRequest, tmp: Path, ahead: PlanAhead, scan_id: int | None, scan_status: int, out: Console,
            err: Console) -> int:
    """Everything after the scan: its records in tmp/scan.jsonl (read, and each host planned, by `ahead` while
    the scan wrote them) are audited, planned and written, and tmp takes the place of the folder asked."""
    from ..remediate.hosts import collect_hosts
    from ..remediate.planner import plan
    from ..resultfile import smb1_usage_records

    target = req.out_dir
    try:
        follower = ahead.follower
        records = _records(req, follower)
        merged, audits, bad_inventories = _audit(req, records, err)
        usage = smb1_usage_records(req.scan.db) if req.scan.store else []
        # the plan in the language asked; the other language's is made with its report, in a child process
        inputs = merged + audits + usage
        # what the scan left and the records stay until the end: the collector need not walk them again and
        # again while the plans and reports are made (about a tenth of that work), nor touch them in the children
        gc.freeze()
        views = collect_hosts(inputs)  # once, for both languages' plans
        scan_row = _scan_row(req, scan_id)
        wait = _start_side_job(req, tmp, merged, views, scan_row, ahead)
        try:
            the_plan = plan([], req.lang, views=views, ready=ahead.ready(req.lang))
            _write(req, tmp, merged, audits, the_plan, scan_row, follower if merged is records else None,
                   ahead.pieces(req.lang))
        except BaseException:
            wait(kill=True)
            raise
        wait()
        replace_folder(tmp, target)
    except _Refused as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.message:
            _say(err, exc.message)
        return exc.status
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _say(err, f"cannot write {target}: {exc.strerror or exc} (nothing written there)")
        return 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _record(req, scan_id, audits, the_plan, err)
        if not out.is_terminal:  # a file or a pipe: rows are not folded to 80 columns
            out = Console(file=out.file, width=200, highlight=False)
        print_actions(the_plan, req.lang, req.top, out)
    except KeyboardInterrupt:
        _say(err, f"interrupted after {target} was written: the files are complete; the ranked list was not printed")
        return 130
    except BrokenPipeError:  # `| head`: the files are written, the rest of the list has nowhere to go
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the exit does not flush into the closed pipe
        _say(err, f"standard output closed: the ranked list was cut short ({target} is written)")
        return 1
    files = ", ".join(n for n in ("report.html", "report-zh.html", "report.json", "hosts.csv", "scan.jsonl",
                                  "audit.jsonl" if audits else "", "plan/plan.md") if n)
    err.print(f"written to {target}: {files}", markup=False, highlight=False, soft_wrap=True)
    return 2 if bad_inventories else scan_status


def _scan_row(req: RespondRequest, scan_id: int | None) -> dict | None:
    """The store's row of this scan (for the reports' header and charts), when there is a store."""
    if scan_id is None:
        return None
    from ..store import Store, StoreError

    try:
        store = Store.open(req.scan.db)
        try:
            return store.scan(scan_id)
        finally:
            store.close()
    except StoreError:
        return None
