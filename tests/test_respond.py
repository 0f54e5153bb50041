"""`smbsentry respond`: scan, audit, plan and reports in one run, against the lab and a real Samba.

Through the real CLI in subprocesses, with a real SQLite store per test; the
lab serves the `make demo` profiles on one port of 127.80.0.1-19.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultkit import Tmpfs
from smbsentry.store import Store

CLI = [sys.executable, "-m", "smbsentry.cli"]
RANGE, FIRST, PORT = "127.80.0.1-19", "127.80.0.1", "44490"
INVENTORIES = Path(__file__).resolve().parent / "data" / "inventories"


def run(*args, timeout=300):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    manifest = tmp_path_factory.mktemp("respond-lab") / "manifest.json"
    proc = subprocess.Popen([sys.executable, "-m", "smbsentry.lab", RANGE, "--port", PORT, "--manifest", str(manifest)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not manifest.exists() or not _listening(FIRST, int(PORT)):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("the lab did not start")
        time.sleep(0.1)
    try:
        yield {address: e["profile"] for address, e in json.loads(manifest.read_text()).items()}
    finally:
        proc.terminate()
        proc.wait(10)


def _listening(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def respond(out: Path, db: Path, *extra):
    return run("respond", RANGE, "--ports", PORT, "--timeout", "2", "-o", out, "--db", db, "-q", *extra)


def test_respond_on_the_lab_writes_everything_and_prints_the_ranked_list(lab, tmp_path):
    out, db = tmp_path / "response", tmp_path / "store.db"
    r = respond(out, db)
    assert r.returncode == 0, r.stderr
    for name in ("report.html", "report-zh.html", "report.json", "hosts.csv", "scan.jsonl", "plan/plan.md", "plan/plan.json",
                 "plan/bundle.csv"):
        assert (out / name).is_file(), name
    assert not (out / "audit.jsonl").exists()
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert (report["format"], report["version"]) == ("smbsentry-report", 1)
    assert report["counts"]["smb"] == 19 and len(report["hosts"]) == 19
    first = report["actions"][0]
    assert first["category"] == "isolate-now" and lab[first["address"]] == "win7-doublepulsar"
    # the ranked list on stdout opens with the implanted host
    lines = [ln for ln in r.stdout.splitlines() if "│" in ln and ln.split("│")[1].strip() == "1"]
    assert lines and first["address"] in lines[0] and "isolate-now" in lines[0]
    assert len(list(csv.reader((out / "hosts.csv").read_text("utf-8").splitlines()))) == 20
    # hosts.csv and report.json's hosts were made while the scan wrote them: the same as from the finished file
    scanned = [json.loads(line) for line in (out / "scan.jsonl").read_text("utf-8").splitlines()]
    assert report["hosts"] == scanned
    text = (out / "report.json").read_text("utf-8")
    assert text == json.dumps(json.loads(text), ensure_ascii=False) + "\n"
    from smbsentry.report.convert import hosts_csv
    assert (out / "hosts.csv").read_bytes().decode("utf-8") == hosts_csv(scanned)
    assert "立即隔离" in (out / "report-zh.html").read_text("utf-8")
    # recorded like a scan, with its plan
    store = Store.open(str(db))
    try:
        (scan,) = store.scans()
        assert scan["status"] == "finished" and scan["hosts"] == 19
        assert len(store.plans()) == 1
    finally:
        store.close()
    # `plan --scan N` of the recorded scan gives the same ranked list
    again = run("plan", "--scan", scan["id"], "--db", db, "-o", tmp_path / "plan2", "--no-store")
    assert again.returncode == 0, again.stderr
    plan2 = json.loads((tmp_path / "plan2" / "plan.json").read_text("utf-8"))
    assert [(a["address"], a["step"]) for a in plan2["actions"]] == [(a["address"], a["step"]) for a in report["actions"]]


def test_respond_in_chinese_with_inventories(lab, tmp_path):
    out, db = tmp_path / "response-zh", tmp_path / "store.db"
    r = respond(out, db, "--lang", "zh", "--inventories", INVENTORIES / "systeminfo-win7-zh-gbk.txt",
                "--inventories", INVENTORIES / "systeminfo-xp-sp3-cp437.txt", "--top", "5")
    assert r.returncode == 0, r.stderr
    assert "优先处置清单" in r.stdout and "立即隔离" in r.stdout
    audits = [json.loads(x) for x in (out / "audit.jsonl").read_text("utf-8").splitlines()]
    assert len(audits) == 2 and all(a["verdicts"] for a in audits)
    plan = json.loads((out / "plan" / "plan.json").read_text("utf-8"))
    assert plan["lang"] == "zh"
    store = Store.open(str(db))
    try:
        assert len(store.audits()) == 2
    finally:
        store.close()


def test_a_bad_inventory_is_named_and_the_rest_still_written(lab, tmp_path):
    out = tmp_path / "response"
    r = respond(out, tmp_path / "store.db", "--inventories", INVENTORIES / "broken.json",
                "--inventories", INVENTORIES / "systeminfo-win7-zh-gbk.txt")
    assert r.returncode == 2 and "broken.json" in r.stderr and "Traceback" not in r.stderr
    assert (out / "plan" / "plan.json").is_file() and (out / "audit.jsonl").is_file()


def test_respond_replaces_its_own_folder_and_refuses_another(lab, tmp_path):
    out, db = tmp_path / "response", tmp_path / "store.db"
    assert respond(out, db).returncode == 0
    (out / "audit.jsonl").write_text("{}\n")  # what an earlier run with --inventories left
    assert respond(out, db).returncode == 0
    assert not (out / "audit.jsonl").exists()  # replaced whole: no stale file of an earlier run stays
    (out / "notes.txt").write_text("mine")  # a file respond never writes: the folder is no longer only ours
    r = respond(out, db)
    assert r.returncode == 2 and "not a folder `respond` wrote" in r.stderr
    assert (out / "notes.txt").read_text() == "mine"
    other = tmp_path / "documents"
    other.mkdir()
    (other / "keep.txt").write_text("keep")
    r = respond(other, db)
    assert r.returncode == 2 and "not a folder `respond` wrote" in r.stderr
    assert (other / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("args,needle", [
    ((), "no targets"),
    (("127.80.0.1-",), "127.80.0.1-"),
    (("127.80.9.1-3",), "no host answered"),
])
def test_nothing_to_plan_or_bad_targets_is_one_line_exit_2_and_nothing_written(tmp_path, args, needle):
    out = tmp_path / "new" / "deeper" / "response"  # folders respond makes for it: gone again when nothing is written
    r = run("respond", *args, "--ports", "44491", "--timeout", "0.5", "-o", out, "--db", tmp_path / "s.db", "-q")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_full_disk_leaves_nothing_half_written(lab, tmp_path):
    with Tmpfs("96k") as small:
        r = respond(small.path / "response", tmp_path / "store.db")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and ("cannot write" in r.stderr or "No space" in r.stderr)
        assert list(small.path.iterdir()) == []


def test_respond_against_a_real_samba(samba_smb1_guest, tmp_path):
    out = tmp_path / "response"
    r = run("respond", samba_smb1_guest.address, "-o", out, "--no-store", "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text("utf-8"))
    (host,) = report["hosts"]
    assert host["identity"]["implementation"] == "samba"
    assert {"smbv1-enabled", "smb-guest-access"} <= {a_f for a in report["actions"] for a_f in a["findings"]}
    plan = json.loads((out / "plan" / "plan.json").read_text("utf-8"))
    assert "samba-smb1" in [s["id"] for s in plan["hosts"][0]["steps"]]


def test_a_folder_that_merely_holds_a_report_json_is_never_replaced(tmp_path):
    """Only a folder respond wrote (its files, report.json of its format) is replaced: a project folder that
    happens to hold a report.json keeps every file."""
    mine = tmp_path / "project"
    (mine / "src").mkdir(parents=True)
    (mine / "report.json").write_text('{"mine": true}')
    (mine / "thesis.tex").write_text("precious")
    theirs = tmp_path / "looks-like-ours"
    theirs.mkdir()
    (theirs / "report.json").write_text('{"format": "smbsentry-report"}')
    (theirs / "notes.txt").write_text("keep")
    for out in (mine, theirs):
        r = run("respond", "127.80.9.1", "--ports", "44491", "-o", out, "--no-store", "-q")
        assert r.returncode == 2 and "not a folder `respond` wrote" in r.stderr, (r.stdout, r.stderr)
    assert (mine / "thesis.tex").read_text() == "precious" and (mine / "src").is_dir()
    assert (theirs / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("case", ["missing-inventory", "current-folder", "broken-kb"])
def test_refusals_come_before_the_scan(tmp_path, case):
    """What can be checked before the scan is: a mistyped inventory path, `-o .`, a damaged user catalog: one
    line, exit 2, no scan recorded, nothing left behind."""
    env = dict(os.environ)
    args = ["respond", "127.80.9.1-3", "--ports", "44491", "--timeout", "0.5", "--db", tmp_path / "s.db", "-q"]
    cwd = None
    if case == "missing-inventory":
        args += ["-o", tmp_path / "response", "--inventories", tmp_path / "nope.txt"]
        needle = "nope.txt: no such file or folder (nothing scanned)"
    elif case == "current-folder":
        cwd = tmp_path / "here"
        cwd.mkdir()
        args += ["-o", "."]
        needle = "is the current folder"
    else:
        (tmp_path / "kb").mkdir()
        (tmp_path / "kb" / "catalog.json").write_text("garbage")
        env["SMBSENTRY_KB_DIR"] = str(tmp_path / "kb")
        args += ["-o", tmp_path / "response"]
        needle = "the knowledge base cannot be read"
    r = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    assert r.returncode == 2 and needle in r.stderr, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists() or not Store.open(str(tmp_path / "s.db")).scans()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_target_name_that_does_not_resolve_is_said_and_the_rest_written(lab, tmp_path):
    """respond scans the other targets, writes everything, names the host name that did not resolve and exits 2
    (or 1 when the resolver itself failed, as in a network namespace without DNS): never 0."""
    out = tmp_path / "resp"
    r = run("respond", "gone.invalid", RANGE, "--ports", PORT, "--timeout", "2", "-o", out, "--no-store", "-q",
            "--top", "0")
    assert r.returncode in (1, 2), r.stderr
    assert "did not resolve" in r.stderr and "gone.invalid" in r.stderr and "Traceback" not in r.stderr
    assert (out / "report.json").is_file() and (out / "plan" / "plan.md").is_file()


def test_a_parent_killed_during_the_scan_leaves_no_temporary_folder(lab, tmp_path):
    """SIGKILL gives respond no chance to clean up; its writer child, which then reads the end of its pipe, removes
    the temporary folder and the folders made for -o (nothing was written)."""
    import signal
    import time

    out = tmp_path / "made" / "response"
    proc = subprocess.Popen([*CLI, "respond", RANGE, "--ports", PORT, "--timeout", "2", "--rate", "20", "-o", str(out),
                             "--no-store", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "made").glob(".response.*.tmp/scan.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read()  # still scanning (20 connects a second: about a second)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 20
    while (tmp_path / "made").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (tmp_path / "made").exists(), list((tmp_path / "made").rglob("*"))
