"""`detect --store` keeps who still speaks SMB1 to whom; the plan uses it before turning SMB1 off.

The shipped EternalChampion trace has one SMB1 dialogue (203.0.113.10 ->
203.0.113.20); the rest of the test is the real CLI against a real store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from smbsentry.store import Store

CLI = [sys.executable, "-m", "smbsentry.cli"]
TRACES = Path(__file__).resolve().parent / "data" / "traces"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_remediate import finding, scan  # noqa: E402


def run(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_detect_records_the_smb1_inventory_and_the_plan_names_the_clients(tmp_path):
    db = str(tmp_path / "store.db")
    r = run("detect", TRACES / "eternalchampion-pattern.pcap", "--store", "--db", db, "-o", tmp_path / "alerts.jsonl")
    assert r.returncode == 0, r.stderr
    assert "SMBv1 inventory: 1 client/server pair(s) recorded" in r.stderr
    store = Store.open(db)
    (run_row,) = store.scans()
    assert run_row["options"]["kind"] == "smb1-usage"
    (server,) = store.hosts(run_row["id"], limit=None)
    assert server["address"] == "203.0.113.20"
    assert server["smb1_usage"]["clients"][0]["client"] == "203.0.113.10"
    assert server["smb1_usage"]["captures"] == ["eternalchampion-pattern.pcap"]
    # a scan of that server and of another SMB1 host that nobody was seen using
    sid = store.begin_scan(["203.0.113.0/24"], {"checks": "default"})
    for addr, name in (("203.0.113.20", "FILESRV"), ("203.0.113.21", "QUIET")):
        store.add_host(sid, scan(addr, name, "Windows 7 SP1 / Server 2008 R2 SP1", ["Windows 7 SP1", "Windows Server 2008 R2 SP1"],
                                 [finding("smbv1-enabled", "vulnerable")], build=7601))
    store.finish_scan(sid)
    store.close()
    out = tmp_path / "plan"
    r = run("plan", "--scan", sid, "--db", db, "-o", out, "--no-store")
    assert r.returncode == 0, r.stderr
    plan = json.loads((out / "plan.json").read_text("utf-8"))
    hosts = {h["address"]: h for h in plan["hosts"]}
    assert len(hosts) == 2  # the traffic record joins its host; it is not a host of its own
    steps = [s["id"] for s in hosts["203.0.113.20"]["steps"]]
    assert steps.index("upgrade-smb1-clients") < steps.index("disable-smb1-registry")
    clients = next(s for s in hosts["203.0.113.20"]["steps"] if s["id"] == "upgrade-smb1-clients")
    assert "203.0.113.10" in clients["text"]
    assert "upgrade-smb1-clients" not in [s["id"] for s in hosts["203.0.113.21"]["steps"]]
    assert any("No SMB1 use of this host was seen" in n and "eternalchampion-pattern.pcap" in n
               for n in hosts["203.0.113.21"]["notes"])


def test_store_failure_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "not-a-dir" / "x.db"
    (tmp_path / "not-a-dir").write_text("a file where a folder should be")
    r = run("detect", TRACES / "eternalchampion-pattern.pcap", "--db", str(bad), "-o", tmp_path / "a.jsonl", "-q")
    assert r.returncode == 1 and "not recorded" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "a.jsonl").stat().st_size > 0  # the alerts were still written
