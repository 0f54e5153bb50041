"""The store and the scan output under real faults (issue 17, item 2).

PostgreSQL is a cluster of this module's own (tests/pgcluster.py), stopped
and started by the tests; full disks are small tmpfs mounts filled with a
file (tests/faultkit.py); scans run as subprocesses against the in-process
lab and are killed for real.  What must hold: a finished host is never
dropped from the buffer before it is committed, a failure is one line and
exit 1 with the scan recorded "interrupted" (or shown so once its process is
gone), and `--resume` completes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from faultkit import NET, Tmpfs
from pgcluster import PgCluster
from smbsentry.lab.background import BackgroundLab
from smbsentry.store import Store, StoreError

CLI = [sys.executable, "-m", "smbsentry.cli"]
PORT = 44518
LAB = f"{NET}.5.1-{NET}.5.40"
HOSTS = 40
_names = iter(range(10**6))


def host(addr: str) -> dict:
    return {"address": addr, "ports": {"445": "open"}, "smb1": None, "smb2": {"dialects": ["3.1.1"], "signing": "enabled"},
            "identity": {"netbios_name": "X"}, "findings": [], "errors": [], "duration_ms": 1}


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()
    cluster.remove()


@pytest.fixture(scope="module")
def lab():
    with BackgroundLab(LAB, ports=[PORT], mix="win10-22h2,win7-sp1-unpatched", bind_mode="per-address") as running:
        yield running


def cli(*args, env=None, timeout=300):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def slow_scan(db: str, *extra: str, env=None) -> subprocess.Popen:
    """A scan of the lab paced to take several seconds, hosts finishing steadily."""
    return subprocess.Popen([*CLI, "scan", LAB, "--ports", str(PORT), "--db", db, "--concurrency", "2", "--rate", "12",
                             "--checks", "none", "-q", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def history(db: str) -> list[dict]:
    p = cli("history", "--db", db, "-f", "json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def stored_hosts(url: str) -> int:
    eng = create_engine(url.replace("postgresql://", "postgresql+psycopg://") if url.startswith("postgresql://")
                        else f"sqlite:///{url}")
    try:
        with eng.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM hosts")).scalar_one()
    except Exception:  # noqa: BLE001 - not there yet, or the server is down
        return -1
    finally:
        eng.dispose()


def wait_for(cond, timeout=60.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def resume_completes(db: str, scan_id: int) -> None:
    r = cli("scan", "--resume", str(scan_id), "--db", db, "-q", "-f", "jsonl", "-o", os.devnull)
    assert r.returncode == 0, r.stderr
    [scan] = history(db)
    assert scan["status"] == "finished" and scan["hosts"] == HOSTS


def one_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "INSERT" not in stderr and "SELECT" not in stderr, stderr
    return lines[0]


# ---------------------------------------------------------------- schema creation races
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_many_processes_create_a_new_store_at_once(backend, tmp_path, request):
    if backend == "sqlite":
        url = str(tmp_path / "new.db")
    else:
        url = request.getfixturevalue("pg").create(f"race{next(_names)}")
    code = f"from smbsentry.store import Store\nStore.open({url!r}).close()\n"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(8)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    s = Store.open(url)
    sid = s.begin_scan(["x"], {})
    s.add_host(sid, host("10.0.0.1"))
    s.finish_scan(sid)
    assert s.scan(sid)["hosts"] == 1
    s.close()


# ---------------------------------------------------------------- PostgreSQL going away
def test_a_batch_waits_out_a_postgresql_restart(pg):
    """Hosts queued while the server is down are written once it is back:
    nothing leaves the buffer before it is committed."""
    s = Store.open(pg.create(f"restart{next(_names)}"), retry_window=60)
    sid = s.begin_scan(["x"], {})
    s.add_hosts(sid, [host(f"10.1.0.{i}") for i in range(1, 11)])
    s.flush()
    pg.stop()
    restart = threading.Timer(2.0, pg.start)
    try:
        s.add_hosts(sid, [host(f"10.1.1.{i}") for i in range(1, 93)])  # the 92 hosts of a pending batch
        restart.start()
        s.flush()  # waits the outage out (here, or in the store's own thread)
    finally:
        restart.join()
    assert s.pending == 0
    s.finish_scan(sid)
    assert s.scan(sid)["hosts"] == 102 and s.scan(sid)["status"] == "finished"
    s.close()


def test_a_database_gone_for_longer_than_the_window_is_one_line_and_keeps_the_batch(pg):
    s = Store.open(pg.create(f"gone{next(_names)}"), retry_window=1.5)
    sid = s.begin_scan(["x"], {})
    pg.stop()
    try:
        s.add_hosts(sid, [host(f"10.2.0.{i}") for i in range(1, 21)])
        with pytest.raises(StoreError) as ei:
            s.flush()
        msg = str(ei.value)
        assert msg.startswith("the store stopped accepting writes: ") and "\n" not in msg and "INSERT" not in msg
        assert s.pending == 20  # still there: nothing was committed, nothing dropped
        with pytest.raises(StoreError):
            s.add_host(sid, host("10.2.1.1"))  # the scan is told to stop
    finally:
        pg.start()
    s.close()


def test_scan_rides_out_a_short_postgresql_outage(pg, lab):
    url = pg.create(f"short{next(_names)}")
    proc = slow_scan(url)
    try:
        assert wait_for(lambda: stored_hosts(url) >= 3), "the scan stored nothing"
        pg.stop()
        time.sleep(3)
        pg.start()
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    [scan] = history(url)
    assert scan["status"] == "finished" and scan["hosts"] == HOSTS


def test_scan_stops_cleanly_when_postgresql_stays_away_and_resume_completes_it(pg, lab):
    url = pg.create(f"long{next(_names)}")
    proc = slow_scan(url, env={"SMBSENTRY_DB_RETRY": "2"})
    try:
        assert wait_for(lambda: stored_hosts(url) >= 3), "the scan stored nothing"
        pg.stop()
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        pg.start()
    assert proc.returncode == 1, err
    line = one_line(err)
    assert line.startswith("smbsentry: the store stopped accepting writes: ") and "(resume: smbsentry scan --resume" in line
    [scan] = history(url)
    assert scan["status"] == "interrupted"  # its process is gone: shown (and recorded) so
    assert 0 < scan["hosts"] < HOSTS
    resume_completes(url, scan["id"])


# ---------------------------------------------------------------- full disks
def test_output_on_a_full_disk_stops_with_one_line_and_resume_completes(tmp_path, lab):
    db = str(tmp_path / "store.db")
    with Tmpfs("256k") as disk:
        disk.fill(leave=12 * 1024)
        out = disk.path / "hosts.jsonl"
        p = cli("scan", LAB, "--ports", str(PORT), "--db", db, "--checks", "default", "-q", "-f", "jsonl", "-o", str(out),
                "--concurrency", "4")
        written = out.read_text().count("\n") if out.exists() else 0
    assert p.returncode == 1, p.stderr
    line = one_line(p.stderr)
    assert f"cannot write {out}: No space left on device; stopped after" in line
    [scan] = history(db)
    assert scan["status"] == "interrupted" and scan["hosts"] >= written
    assert f"{scan['hosts']} host(s) recorded in scan {scan['id']} (resume: smbsentry scan --resume {scan['id']})" in line
    resume_completes(db, scan["id"])


def test_sqlite_store_on_a_full_disk_stops_with_one_line_and_resume_completes(tmp_path, lab):
    with Tmpfs("2m") as disk:
        db = str(disk.path / "store.db")
        Store.open(db).close()  # the schema fits; then the disk fills
        filler = disk.fill(leave=80 * 1024)  # room for the -shm and -wal files, not for the hosts
        p = cli("scan", LAB, "--ports", str(PORT), "--db", db, "--checks", "default", "-q", "-f", "jsonl",
                "-o", str(tmp_path / "hosts.jsonl"), "--concurrency", "4")
        assert p.returncode == 1, p.stderr
        line = one_line(p.stderr)
        assert "database or disk is full" in line and "--resume" in line
        filler.unlink()
        [scan] = history(db)
        assert scan["status"] == "interrupted"
        resume_completes(db, scan["id"])


# ---------------------------------------------------------------- killed scans, double resumes
def test_killed_scan_reads_interrupted_and_only_one_resume_may_run(tmp_path, lab):
    db = str(tmp_path / "store.db")
    first = slow_scan(db)
    assert wait_for(lambda: stored_hosts(db) >= 2), "the scan stored nothing"
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    [scan] = history(db)
    assert scan["status"] == "interrupted"  # was "running" for ever
    sid = str(scan["id"])
    resumed = subprocess.Popen([*CLI, "scan", "--resume", sid, "--db", db, "-q", "-f", "jsonl", "-o", os.devnull,
                                "--concurrency", "2", "--rate", "12"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert wait_for(lambda: history(db)[0]["status"] == "running", 30)
        second = cli("scan", "--resume", sid, "--db", db, "-q")
        assert second.returncode == 2
        assert one_line(second.stderr) == (f"smbsentry: scan {sid} is still running (process {resumed.pid} on "
                                           f"{os.uname().nodename}): wait for it to end, or stop it first")
        _, err = resumed.communicate(timeout=240)
    finally:
        if resumed.poll() is None:
            resumed.kill()
    assert resumed.returncode == 0, err
    [scan] = history(db)
    assert scan["status"] == "finished" and scan["hosts"] == HOSTS
