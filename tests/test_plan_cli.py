"""`smbsentry plan` inputs and outputs: stored scans, report JSON, bad input, all-or-nothing writes.

Through the real CLI in a subprocess, against a real SQLite store; the full
disk is a real tmpfs the test mounts (root), removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smbsentry.store import Store

CLI = [sys.executable, "-m", "smbsentry.cli"]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_remediate import DP, WIN7_FS, XP  # noqa: E402  (constructed scan records)
from faultkit import Tmpfs  # noqa: E402


def run(*args, env=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def store(tmp_path):
    url = str(tmp_path / "store.db")
    s = Store.open(url)
    full = s.begin_scan(["127.50.0.0/24"], {"checks": "default"})
    for h in (WIN7_FS, XP, DP):
        s.add_host(full, h)
    s.finish_scan(full)
    empty = s.begin_scan(["127.50.1.0/24"], {"checks": "default"})
    s.finish_scan(empty)
    s.close()
    return {"url": url, "full": full, "empty": empty}


def test_plan_of_a_stored_scan(store, tmp_path):
    out = tmp_path / "plan"
    r = run("plan", "--scan", store["full"], "--db", store["url"], "-o", out, "--no-store")
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "plan.json").read_text("utf-8"))
    assert data["actions"][0]["category"] == "isolate-now"
    assert {h["address"] for h in data["hosts"]} == {WIN7_FS["address"], XP["address"], DP["address"]}
    assert (out / "plan.md").read_text("utf-8").startswith("# smbsentry remediation plan")


def test_plan_of_report_json(store, tmp_path):
    rep = run("report", store["full"], "--format", "json", "--db", store["url"])
    assert rep.returncode == 0, rep.stderr
    src = tmp_path / "report.json"
    src.write_text(rep.stdout, encoding="utf-8")
    r = run("plan", src, "-o", tmp_path / "plan", "--no-store")
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "plan" / "plan.json").read_text("utf-8"))["hosts"]) == 3


@pytest.mark.parametrize("content,needle", [
    ('[{"address": "127.50.0.1", "ports": {"445": "op', "truncated JSON"),
    ('{"format": "smbsentry-report", "version": 7, "hosts": []}', "version 7"),
    ('{"format": "smbsentry-plan", "version": 1, "hosts": []}', "this is a plan"),
    ("[" * 200000, "nested too deeply"),
    ('[{"address": "127.50.0.9", "ports": {"445": "closed", "139": "closed"}, "findings": []}]', "nothing to plan"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, content, needle):
    src = tmp_path / "in.json"
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "plan"
    r = run("plan", src, "-o", out, "--no-store")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".plan")]


def test_empty_stored_scan_and_missing_scan(store, tmp_path):
    r = run("plan", "--scan", store["empty"], "--db", store["url"], "-o", tmp_path / "p", "--no-store")
    assert r.returncode == 2 and "recorded no hosts" in r.stderr and r.stderr.count("\n") == 1
    r = run("plan", "--scan", 999, "--db", store["url"], "-o", tmp_path / "p", "--no-store")
    assert r.returncode == 2 and "no scan 999" in r.stderr


def test_existing_folder_that_is_not_a_plan_is_refused(tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps([WIN7_FS]), encoding="utf-8")
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    r = run("plan", src, "-o", precious, "--no-store")
    assert r.returncode == 2 and "not a plan folder" in r.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
    # a folder holding an earlier plan is replaced whole
    out = tmp_path / "plan"
    assert run("plan", src, "-o", out, "--no-store").returncode == 0
    (out / "stale.txt").write_text("from before")
    assert run("plan", src, "-o", out, "--no-store").returncode == 0
    assert not (out / "stale.txt").exists() and (out / "plan.json").is_file()


@pytest.fixture
def full_disk():
    with Tmpfs("64k") as small:
        yield small.path


def test_full_disk_leaves_nothing_half_written(full_disk, tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps([WIN7_FS, XP, DP] * 40), encoding="utf-8")
    out = full_disk / "plan"
    r = run("plan", src, "-o", out, "--no-store")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and "cannot write the plan" in r.stderr
    assert list(full_disk.iterdir()) == []  # neither the plan nor its temporary folder


def test_large_plan_streams_valid_json_from_utf16_jsonl(tmp_path):
    """600 hosts (past the indented-JSON threshold), read as UTF-16 JSON Lines the way PowerShell redirects them."""
    import codecs
    import ipaddress

    lines = []
    for i in range(600):
        rec = json.loads(json.dumps([WIN7_FS, XP, DP][i % 3]))
        rec["address"] = str(ipaddress.ip_address(int(ipaddress.ip_address("127.52.0.1")) + i))
        lines.append(json.dumps(rec))
    src = tmp_path / "hosts.jsonl"
    src.write_bytes(codecs.BOM_UTF16_LE + ("\n".join(lines) + "\n").encode("utf-16-le"))
    out = tmp_path / "plan"
    r = run("plan", src, "-o", out, "--no-store")
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "plan.json").read_text("utf-8"))
    assert len(data["hosts"]) == 600 and data["format"] == "smbsentry-plan" and data["actions"][0]["category"] == "isolate-now"
    md = (out / "plan.md").read_text("utf-8")
    assert len(data["actions"]) > 1000 and "plan.json `actions` has the whole list" in md  # plan.md shows the first 1,000
