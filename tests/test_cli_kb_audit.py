"""`smbsentry kb` and `smbsentry audit` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "inventories"
CLI = [sys.executable, "-m", "smbsentry.cli"]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


def test_which_kb_names_the_kbs_and_files():
    p = run("kb", "which-kb", "--os", "Windows 7 SP1 x64", "ms17-010")
    assert p.returncode == 0, p.stderr
    assert "KB4012212" in p.stdout and "KB4012215" in p.stdout
    assert "windows6.1-kb4012212-x64" in p.stdout


def test_which_kb_2008r2_without_sp1_needs_sp1_first():
    p = run("kb", "which-kb", "--os", "Windows Server 2008 R2 x64", "ms17-010")
    assert p.returncode == 0, p.stderr
    assert "SP1" in p.stdout and "KB976932" in p.stdout


def test_kb_show_and_unknown_id():
    p = run("kb", "show", "ms17-010")
    assert p.returncode == 0 and "CVE-2017-0144" in p.stdout and "永恒之蓝" in p.stdout
    p = run("kb", "show", "no-such-thing")
    assert p.returncode == 2 and "no-such-thing" in p.stderr and "Traceback" not in p.stderr


def test_audit_jsonl_contract_shape():
    p = run("audit", str(DATA / "systeminfo-win7-en-cp437.txt"), "--format", "jsonl")
    assert p.returncode == 0, p.stderr
    host = json.loads(p.stdout.splitlines()[0])
    assert {"host", "address", "source", "facts", "verdicts"} <= host.keys()
    ms17 = next(v for v in host["verdicts"] if v["id"] == "ms17-010")
    assert ms17["status"] == "patched" and "KB4012212" in ms17["evidence"]


def test_broken_inventory_exits_2_naming_file_and_line_and_keeps_the_others():
    p = run("audit", str(DATA / "broken.json"), str(DATA / "systeminfo-win7-en-cp437.txt"), "--format", "jsonl")
    assert p.returncode == 2
    assert "broken.json:4" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stdout.splitlines()) == 1  # the good host is still written


def test_merge_settles_a_remote_unknown(tmp_path):
    audit = json.loads(run("audit", str(DATA / "systeminfo-win7-en-cp437.txt"), "--format", "jsonl").stdout.splitlines()[0])
    scan = {
        "address": "127.0.0.9", "ports": {"445": "open"}, "errors": [],
        "identity": {"netbios_name": audit["host"]},
        "findings": [{"id": "ms17-010", "status": "unknown", "severity": "critical", "title": "MS17-010",
                      "cves": [], "references": [], "evidence": None, "reason": "SMBv1 is disabled",
                      "inferred": False, "port": 445}],
    }
    f = tmp_path / "scan.json"
    f.write_text(json.dumps([scan]))
    p = run("audit", str(DATA / "systeminfo-win7-en-cp437.txt"), "--merge", str(f), "--format", "jsonl")
    assert p.returncode == 0, p.stderr
    merged = json.loads(p.stdout.splitlines()[0])
    ms17 = merged["findings"][0]
    assert ms17["status"] == "not_vulnerable"
    assert "KB4012212" in ms17["evidence"]


RULES = Path(__file__).parent / "data" / "rules"


def test_rules_command_reports_exposures_with_fixes():
    files = sorted(str(p) for p in RULES.iterdir() if p.is_file() and "clean" not in p.name and "broken" not in p.name)
    p = run("rules", *files, "--format", "jsonl")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    assert {"source", "platform", "container", "rule", "protocol", "port", "exposed_to", "severity", "fix"} <= rows[0].keys()
    assert any(r["port"] == 445 and r["exposed_to"] in ("0.0.0.0/0", "::/0", "any", "Any", "*", "Internet") for r in rows)


def test_rules_clean_config_and_bad_file():
    clean = sorted(str(p) for p in RULES.iterdir() if "clean" in p.name)
    assert clean
    p = run("rules", *clean, "--format", "jsonl")
    assert p.returncode == 0 and p.stdout.strip() == ""
    bad = RULES.parent / "inventories" / "broken.json"
    p = run("rules", str(bad))
    assert p.returncode == 2 and "broken.json" in p.stderr and "Traceback" not in p.stderr


def test_collector_prints_the_powershell_script():
    p = run("collector")
    assert p.returncode == 0
    assert "smbsentry-collector" in p.stdout and "Get-HotFix" in p.stdout and "SMBDeviceEnabled" in p.stdout


def test_plan_from_scan_results(tmp_path):
    host = {
        "address": "127.0.0.9", "ports": {"445": "open"}, "errors": [],
        "smb1": {"enabled": True, "ports": {"445": True}, "native_os": "Windows 7 Professional 7601 Service Pack 1"},
        "identity": {"netbios_name": 'EVIL"; del c:\\ & "', "os_version": "6.1.7601", "os_build": 7601,
                     "os_name": "Windows 7 SP1 / Server 2008 R2 SP1", "implementation": "windows"},
        "findings": [{"id": "ms17-010", "status": "vulnerable", "severity": "critical", "title": "MS17-010", "cves": [],
                      "references": [], "evidence": "PeekNamedPipe on FID 0 answered 0xC0000205", "reason": None,
                      "inferred": False, "port": 445}],
    }
    results = tmp_path / "scan.json"
    results.write_text(json.dumps([host]))
    out = tmp_path / "plan"
    p = run("plan", str(results), "-o", str(out), "--lang", "zh")
    assert p.returncode == 0, p.stderr
    text = (out / "plan.md").read_text(encoding="utf-8")
    assert "KB4012212" in text or "KB4012215" in text
    scripts = list((out / "scripts").iterdir())
    assert scripts
    for script in scripts:
        body = script.read_text(encoding="utf-8", errors="replace")
        assert "del c:" not in body  # a hostile host name never reaches a command
    p = run("plan", str(tmp_path / "missing.json"), "-o", str(out))
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_detect_command_on_a_corpus_capture_and_on_garbage(tmp_path):
    from corpus import corpus_path

    pcap = corpus_path("doublepulsar-backdoor-connect-win7.pcap")
    p = run("detect", str(pcap), "--no-flows", "-q")
    assert p.returncode == 0, p.stderr
    alerts = [json.loads(x) for x in p.stdout.splitlines() if '"event_type": "alert"' in x]
    assert {(a["alert"]["signature_id"], a["frame"]) for a in alerts} == {("doublepulsar-ping", 86), ("doublepulsar-reply", 87)}
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture\n" * 10)
    p = run("detect", str(junk), "-q")
    assert p.returncode == 2 and "junk.pcap" in p.stderr and "Traceback" not in p.stderr



def test_audit_and_plan_are_recorded_in_the_store(tmp_path):
    from smbsentry.store import Store

    db = tmp_path / "ap.db"
    p = run("audit", str(DATA / "systeminfo-win7-en-cp437.txt"), "--format", "jsonl", "--db", str(db))
    assert p.returncode == 0, p.stderr
    results = tmp_path / "audit.jsonl"
    results.write_text(p.stdout)
    p = run("plan", str(results), "-o", str(tmp_path / "plan"), "--db", str(db))
    assert p.returncode == 0, p.stderr
    with Store.open(str(db)) as store:
        audits, plans = store.audits(), store.plans()
    assert len(audits) == 1 and len(plans) == 1
