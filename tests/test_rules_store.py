"""Issue 8: `smbsentry rules` findings go into the store and the reports like scan findings."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smbsentry.cli import app as cli_app
from smbsentry.kb.findings import meta
from smbsentry.report.scans import export_ocsf, render_report
from smbsentry.rules import main_rules, scan_files
from smbsentry.rules.record import FINDING_ID, address_of, evaluate_files, host_records
from smbsentry.store import Store

DATA = Path(__file__).parent / "data" / "rules"
AWS = "sg-0123456789abcdef0"
AWS_FIX = "aws ec2 revoke-security-group-ingress --group-id sg-0123456789abcdef0 --protocol all --cidr 0.0.0.0/0"


def _record(db: Path, *files: Path, extra: tuple = ()) -> int:
    r = CliRunner().invoke(cli_app, ["rules", *map(str, files), "--db", str(db), "--format", "jsonl", *extra])
    assert r.exit_code == 0, r.output
    with Store.open(str(db)) as st:
        return st.latest_scan()


def test_kb_knows_the_finding():
    m = meta(FINDING_ID)
    assert m["severity"] == "high" and m["title"] and m["title_zh"] and m["kind"] == "configuration"
    assert set(m["source"]) >= {"seed-004", "seed-001"}


def test_records_are_contract_hosts():
    results = evaluate_files([str(DATA / "aws-sg.json"), str(DATA / "iptables-save.txt"), str(DATA / "aws-clean.json")])
    assert [e for _, ex in results for e in ex] == scan_files([str(DATA / "aws-sg.json"), str(DATA / "iptables-save.txt"),
                                                                 str(DATA / "aws-clean.json")])
    hosts = {h["address"]: h for h in host_records(results)}
    assert {AWS, "sg-0a1b2c3d4e5f60718", "sg-0fedcba9876543210", "iptables:iptables-save.txt:filter:INPUT",
            "iptables:iptables-save.txt:filter:FORWARD"} == set(hosts)
    assert all("/" not in a for a in hosts)  # one URL path segment on the dashboard
    assert hosts["sg-0fedcba9876543210"]["findings"] == []  # a clean group is recorded clean
    h = hosts[AWS]
    assert h["kind"] == "rules" and h["rules"]["platform"] == "aws" and h["identity"]["os_name"] is None and h["ports"] == {}
    f = next(f for f in h["findings"] if f["port"] == 445)
    assert f["id"] == FINDING_ID and f["status"] == "vulnerable" and f["severity"] == "critical"
    assert f["evidence"] == "all traffic from 0.0.0.0/0 allows tcp/445 from 0.0.0.0/0 (aws-sg.json)"
    assert f["details"]["fix"] == AWS_FIX and f["details"]["exposed_to"] == "0.0.0.0/0" and f["details"]["platform"] == "aws"


def test_same_address_merges():
    results = evaluate_files([str(DATA / "netsh-en.txt"), str(DATA / "netsh-en.txt")])
    assert len({address_of(c) for c, _ in results}) == 1
    (h,) = host_records(results)
    assert len(h["findings"]) == 2 and h["rules"]["sources"] == [str(DATA / "netsh-en.txt")]


def test_cli_records_a_rules_scan(tmp_path):
    db = tmp_path / "s.db"
    sid = _record(db, DATA)
    with Store.open(str(db)) as st:
        scan = st.scan(sid)
        assert scan["status"] == "finished" and scan["options"]["kind"] == "rules" and scan["options"]["ports"] == "default"
        n = len(scan_files([str(DATA)]))
        assert scan["findings"] == n and len(st.findings(sid)) == n
        assert scan["hosts"] == len({address_of(c) for c, _ in evaluate_files([str(DATA)])})
        assert st.stats(sid)["by_severity"][0][1] > 0  # critical ones
        (h,) = st.hosts(sid, search=AWS)
        assert h["identity"]["netbios_name"] and len(st.hosts(sid, finding=FINDING_ID, limit=None)) == scan["exposed"]
    # --no-store: nothing more recorded; main_rules called directly does not store by default
    _record(db, DATA / "aws-sg.json", extra=("--no-store",))
    assert main_rules([str(DATA / "aws-sg.json")], "jsonl", io.StringIO(), None, 8) == 0
    with Store.open(str(db)) as st:
        assert [s["id"] for s in st.scans()] == [sid]


def test_store_error_exits_1(tmp_path, capsys):
    assert main_rules([str(DATA / "aws-sg.json")], "jsonl", io.StringIO(), None, 8, db="mysql+nope://x", store=True) == 1
    assert "smbsentry rules:" in capsys.readouterr().err


def test_reports_render_rule_findings(tmp_path):
    db = tmp_path / "s.db"
    sid = _record(db, DATA / "aws-sg.json", DATA / "nft-ruleset.txt")
    with Store.open(str(db)) as st:
        page = render_report(st, sid, "html")
        assert meta(FINDING_ID)["title"] in page and html.escape(AWS_FIX, quote=False) in page and AWS in page
        assert meta(FINDING_ID)["title_zh"] in render_report(st, sid, "html", lang="zh")
        csv = render_report(st, sid, "csv")
        assert any(line.startswith(AWS + ",") and f"{FINDING_ID}:vulnerable" in line for line in csv.splitlines())
        doc = json.loads(render_report(st, sid, "json"))
        assert doc["scan"]["options"]["kind"] == "rules"
        assert any(f.get("details", {}).get("fix") == AWS_FIX for h in doc["hosts"] for f in h["findings"])
        ocsf = export_ocsf(st, sid)
        assert len(ocsf) == st.scan(sid)["findings"]
        mine = [o for o in ocsf if o["resources"][0]["uid"] == AWS and o["unmapped"]["port"] == 445]
        assert mine and mine[0]["resources"][0]["type"] == "firewall (aws)" and "ip" not in mine[0]["resources"][0]
        assert AWS_FIX in mine[0]["vulnerabilities"][0]["remediation"]["desc"]
        assert json.loads(render_report(st, sid, "ocsf")) == ocsf


def test_dashboard_shows_rules_scan(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from smbsentry.web import create_app

    token = re.compile(r'name="csrf" value="([^"]+)"')
    password = "correct horse battery"
    db = tmp_path / "s.db"
    sid = _record(db, DATA / "aws-sg.json", DATA / "iptables-save.txt")
    c = TestClient(create_app(str(db), ["127.0.0.0/8"]), follow_redirects=False, base_url="http://127.0.0.1")
    r = c.get("/setup")
    r = c.post("/setup", data={"csrf": token.search(r.text).group(1), "token": c.app.state.setup_token.value,
                               "password": password, "password2": password})
    assert r.status_code == 303, r.text
    r = c.get("/login")
    r = c.post("/login", data={"csrf": token.search(r.text).group(1), "username": "admin", "password": password, "next": "/"})
    assert r.status_code == 303
    assert c.get("/").status_code == 200
    r = c.get("/hosts", params={"scan": sid, "finding": FINDING_ID})
    assert r.status_code == 200 and AWS in r.text and "iptables:iptables-save.txt:filter:INPUT" in r.text
    for address in (AWS, "iptables:iptables-save.txt:filter:INPUT"):
        r = c.get(f"/hosts/{sid}/{address}")
        assert r.status_code == 200 and FINDING_ID in r.text, address
    r = c.get(f"/hosts/{sid}/{AWS}")
    assert html.escape(AWS_FIX, quote=False) in r.text and "Rule fixes:" in r.text
    assert c.get(f"/api/hosts/{sid}/{AWS}").json()["kind"] == "rules"
    assert c.get(f"/scans/{sid}/report.json").json()["scan"]["options"]["kind"] == "rules"


def test_audit_does_not_judge_firewall_exposure():
    from smbsentry.audit.evaluate import evaluate
    from smbsentry.audit.facts import HostFacts

    assert FINDING_ID not in [v.id for v in evaluate(HostFacts())]
    (v,) = evaluate(HostFacts(), ids=[FINDING_ID])
    assert v.status == "unknown" and "smbsentry rules" in v.evidence
