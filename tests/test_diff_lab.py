"""`smbsentry diff` on real stored scans of the lab: like with like.

Scans of the same addresses with different check sets, different targets, and
a lab whose machines changed between two scans (an unpatched Windows 7 replaced
by its patched twin, a Windows 10 by a Server 2019, SMBv1 turned off).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from smbsentry.lab.background import BackgroundLab

CLI = [sys.executable, "-m", "smbsentry.cli"]
PORT = 44587
RANGE = "127.86.1.1-4"
BEFORE = "win7-sp1-unpatched=1,win10-22h2=1,winxp-sp3=1,samba-4.17=1"
AFTER = "win7-sp1-patched=1,win2019=1,winxp-sp3=1,samba-4.17=1"


def run(*args, db):
    return subprocess.run([*CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=180)


def scan(db, targets, checks):
    p = run("scan", targets, "--ports", str(PORT), "--checks", checks, "--format", "jsonl", "-q", "--timeout", "2", db=db)
    assert p.returncode == 0, p.stderr
    return [json.loads(x) for x in p.stdout.splitlines()]


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Scans 1 (default checks), 2 (ms17-010 only), 3 (fewer targets) of one lab, 4 after the machines changed."""
    db = tmp_path_factory.mktemp("diff") / "d.db"
    with BackgroundLab(RANGE, ports=[PORT], mix=BEFORE, bind_mode="per-address"):
        first = scan(db, RANGE, "default")
        scan(db, RANGE, "ms17-010")
        scan(db, "127.86.1.1-2", "default")
    with BackgroundLab(RANGE, ports=[PORT], mix=AFTER, bind_mode="per-address"):
        scan(db, RANGE, "default")
    return db, first


def diff(db, old, new, *extra):
    p = run("diff", str(old), str(new), *extra, db=db)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_checks_not_run_are_not_checked_never_fixed(scans):
    db, first = scans
    d = json.loads(diff(db, 1, 2, "--format", "json"))
    assert [w["code"] for w in d["warnings"]] == ["checks"]
    assert d["fixed_findings"] == []  # nothing was fixed between the two scans: only fewer checks ran
    bad = {(h["address"], f["id"], f["port"]) for h in first for f in h["findings"]
           if f["status"] in ("vulnerable", "likely") and f["id"] != "ms17-010"}
    got = {(i["address"], i["id"], i["port"]) for i in d["not_checked_findings"]}
    assert got == bad and bad
    assert {i["why"] for i in d["not_checked_findings"]} == {"check-not-run"}
    text = diff(db, 1, 2)
    assert "warning: the scans ran different checks (default / ms17-010)" in text
    assert "not checked in the newer scan" in text and "check not run" in text and "fixed findings" not in text


def test_other_targets_are_not_gone_hosts(scans):
    db, _ = scans
    d = json.loads(diff(db, 1, 3, "--format", "json"))
    assert d["warnings"][0] == {"code": "targets", "old": RANGE, "new": "127.86.1.1-2"}
    assert d["gone_hosts"] == [] and d["not_scanned_hosts"] == ["127.86.1.3", "127.86.1.4"]
    zh = diff(db, 1, 3, "--lang", "zh")
    assert "警告：两次扫描的目标不同" in zh and "不在较新扫描目标内的主机 (2): 127.86.1.3 127.86.1.4" in zh


def test_identity_changes_and_real_fixes(scans):
    db, _ = scans
    d = json.loads(diff(db, 1, 4, "--format", "json"))
    assert d["warnings"] == []  # same targets, same checks, same ports
    changes = {(c["address"], c["field"]): (c["before"], c["after"]) for c in d["identity_changes"]}
    assert changes[("127.86.1.2", "os")][1].startswith("Windows 10 1809 / Server 2019")
    assert ("127.86.1.2", "name") in changes
    assert changes.get(("127.86.1.1", "smb1")) is None  # the patched twin still speaks SMB1
    assert not any(a.startswith("127.86.1.3") or a.startswith("127.86.1.4") for a, _ in changes)  # unchanged machines
    fixed = {(i["address"], i["id"]) for i in d["fixed_findings"]}
    assert ("127.86.1.1", "ms17-010") in fixed  # the patched twin answers STATUS_INVALID_HANDLE: a real fix
    text = diff(db, 1, 4)
    assert "identity changes" in text and "127.86.1.2" in text
    zh = diff(db, 1, 4, "--lang", "zh")
    assert "主机标识变化" in zh and "已修复的发现" in zh and "存在漏洞" in zh


def test_bad_lang_exits_2(scans):
    db, _ = scans
    p = run("diff", "1", "2", "--lang", "fr", db=db)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "fr" in p.stderr
