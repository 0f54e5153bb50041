"""Commands whose output cannot be written, and `detect` stopped by SIGTERM
(issue 17, item 2): a full disk is one line and exit 1, never a traceback;
SIGTERM writes the detector's summary as Ctrl-C does.

Full disks are small tmpfs mounts filled with a file (tests/faultkit.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from faultkit import Tmpfs
from smbsentry.store import Store

CLI = [sys.executable, "-m", "smbsentry.cli"]
DATA = Path(__file__).parent / "data"
TRACE = DATA / "traces" / "smb-sweep-445.pcap"


def cli(*args, timeout=120, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def one_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_detect_on_sigterm_writes_its_summary_like_sigint(tmp_path):
    """The capture comes through a FIFO that stays open, so the detector is
    still reading when SIGTERM arrives (a service manager stopping it)."""
    fifo = tmp_path / "capture.pcap"
    os.mkfifo(fifo)
    out = tmp_path / "events.jsonl"
    data = TRACE.read_bytes()
    release = threading.Event()

    def feed():
        with open(fifo, "wb") as f:
            f.write(data)  # the whole trace, then the pipe stays open
            f.flush()
            release.wait(60)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    proc = subprocess.Popen([*CLI, "detect", str(fifo), "-o", str(out), "-q"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _reading(proc.pid, fifo):
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = json.loads(out.read_text().splitlines()[-1])
    assert last["event_type"] == "stats" and last["stats"]["interrupted"] is True


def _reading(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_detect_report_audit_rules_on_a_full_disk_say_one_line_and_exit_1(tmp_path):
    db = str(tmp_path / "store.db")
    s = Store.open(db)
    sid = s.begin_scan(["10.0.0.0/24"], {})
    for i in range(1, 30):
        s.add_host(sid, {"address": f"10.0.0.{i}", "ports": {"445": "open"}, "smb1": {"enabled": True},
                         "identity": {"netbios_name": f"WS{i}"}, "findings": [], "errors": []})
    s.finish_scan(sid)
    s.close()
    with Tmpfs("64k") as disk:
        disk.fill(leave=0)
        full = disk.path
        runs = {
            "detect": cli("detect", str(TRACE), "-o", str(full / "events.jsonl")),
            "report": cli("report", str(sid), "--db", db, "-o", str(full / "report.html")),
            "audit": cli("audit", str(DATA / "inventories"), "--no-store", "-f", "jsonl", "-o", str(full / "audit.jsonl")),
            "rules": cli("rules", str(DATA / "rules" / "aws-sg.json"), "--no-store", "-o", str(full / "rules.txt")),
        }
        # and standard output redirected to the full disk
        with open(full / "stdout.txt", "w") as f:
            runs["report>"] = subprocess.run([*CLI, "report", str(sid), "--db", db, "-f", "csv"], stdout=f,
                                             stderr=subprocess.PIPE, text=True, timeout=120)
    for name, p in runs.items():
        assert p.returncode == 1, (name, p.stderr)
        assert "No space left on device" in one_line(p.stderr), name
