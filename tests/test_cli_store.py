"""Scans recorded while they run: history, report, diff, and --resume after a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from faultkit import stored_hosts
from smbsentry.lab.background import BackgroundLab
from smbsentry.store import Store

CLI = [sys.executable, "-m", "smbsentry.cli"]
PORT = 44577
RANGE = "127.53.0.1-40"
MIX = "win7-sp1-unpatched=1,win10-22h2=1,win2019=1,samba-4.17=1"


@pytest.fixture(scope="module")
def lab():
    with BackgroundLab(RANGE, ports=[PORT], mix=MIX, bind_mode="per-address") as running:
        yield running


def run(*args, db, **kw):
    return subprocess.run([*CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=120, **kw)


def test_scan_is_recorded_and_reported(lab, tmp_path):
    db = tmp_path / "s.db"
    p = run("scan", "127.53.0.1-8", "--ports", str(PORT), "--checks", "default", "--format", "jsonl", "-q", db=db)
    assert p.returncode == 0, p.stderr
    with Store.open(str(db)) as store:
        (scan,) = store.scans()
        assert scan["status"] == "finished"
        assert store.done_addresses(scan["id"]) == {f"127.53.0.{i}" for i in range(1, 9)}
    h = run("history", db=db)
    assert h.returncode == 0 and "finished" in h.stdout
    html = run("report", "--format", "html", db=db)
    assert html.returncode == 0 and "ms17-010" in html.stdout and "127.53.0.1" in html.stdout
    ocsf = run("report", "--format", "ocsf", db=db)
    assert ocsf.returncode == 0
    findings = json.loads(ocsf.stdout)
    assert any(f["class_uid"] == 2002 for f in findings)


def test_killed_scan_keeps_its_hosts_and_resume_completes_it(lab, tmp_path):
    db = tmp_path / "r.db"
    proc = subprocess.Popen(
        [*CLI, "scan", RANGE, "--ports", str(PORT), "--rate", "8", "--concurrency", "2", "--checks", "ms17-010",
         "--format", "jsonl", "-q", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # interrupted once the store holds a host (not after a fixed time: a loaded machine starts slower)
    deadline = time.monotonic() + 60
    while stored_hosts(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    with Store.open(str(db)) as store:
        (scan,) = store.scans()
        first = store.done_addresses(scan["id"])
        assert scan["status"] == "interrupted"
    assert 0 < len(first) < 40
    assert len(out.splitlines()) == len(first)  # what was written is what was recorded
    p = run("scan", "--resume", str(scan["id"]), "--format", "jsonl", "-q", db=db)
    assert p.returncode == 0, p.stderr
    resumed = {json.loads(x)["address"] for x in p.stdout.splitlines()}
    assert resumed.isdisjoint(first)  # finished hosts are not scanned again
    with Store.open(str(db)) as store:
        assert store.scan(scan["id"])["status"] == "finished"
        assert store.done_addresses(scan["id"]) == {f"127.53.0.{i}" for i in range(1, 41)}
        assert store.count_hosts(scan["id"]) == 40  # no duplicates


def test_diff_between_two_scans(lab, tmp_path):
    db = tmp_path / "d.db"
    assert run("scan", "127.53.0.1-4", "--ports", str(PORT), "-q", "--format", "jsonl", db=db).returncode == 0
    assert run("scan", "127.53.0.1-8", "--ports", str(PORT), "-q", "--format", "jsonl", db=db).returncode == 0
    d = run("diff", "--format", "json", db=db)
    assert d.returncode == 0, d.stderr
    data = json.loads(d.stdout)
    assert len(data["new_hosts"]) == 4


def test_unknown_scan_and_bad_db_exit_2(tmp_path):
    p = run("report", "999", db=tmp_path / "e.db")
    assert p.returncode == 2 and "999" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([*CLI, "history", "--db", "postgresql://nobody@127.0.0.1:1/x"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
