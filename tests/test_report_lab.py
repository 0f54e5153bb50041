"""The report on the `make demo` lab, stored and rendered as a user would: `smbsentry lab`,
`smbsentry scan --checks all`, `smbsentry report` in English and Chinese.

As root the lab serves its 19 SMB hosts on 445/139 and the 9 service hosts of
the Shadow Brokers checks on their real ports (as scripts/demo.py does);
without root, the SMB hosts on one high port only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import pytest

from smbsentry import i18n

from pagetext import english_found, english_words, visible  # tests/pagetext.py

CLI = [sys.executable, "-m", "smbsentry.cli"]
SMB = "127.86.0.1-19"
SERVICES = "127.86.5.1-9"
ROOT = os.geteuid() == 0
PORTS = "445,139" if ROOT else "44586"


def _wait(address: str, port: int, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the lab exited: {proc.stderr.read()[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((address, port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"the lab did not come up on {address}:{port}")


@pytest.fixture(scope="module")
def lab():
    args = [*CLI, "lab", SMB, *sum((["--port", p] for p in PORTS.split(",")), []), "--bind-mode", "per-address"]
    if ROOT:
        args += ["--services", SERVICES]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait("127.86.0.19", int(PORTS.split(",")[0]), proc)
        if ROOT:
            _wait("127.86.5.6", 3000, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def run(*args, db, timeout=180):
    p = subprocess.run([*CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=timeout)
    return p


@pytest.fixture(scope="module")
def stored(lab, tmp_path_factory):
    """The demo scan recorded in a fresh store: (db, hosts as scanned)."""
    tmp = tmp_path_factory.mktemp("report-lab")
    db = tmp / "lab.db"
    targets = [SMB, SERVICES] if ROOT else [SMB]
    p = run("scan", *targets, "--ports", PORTS, "--checks", "all", "--timeout", "2", "--format", "json",
            "-o", str(tmp / "scan.json"), "-q", db=db)
    assert p.returncode == 0, p.stderr
    return db, json.loads((tmp / "scan.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def reports(stored):
    db, _ = stored
    out = {}
    for lang in ("en", "zh"):
        p = run("report", "--format", "html", "--lang", lang, db=db)
        assert p.returncode == 0, p.stderr
        out[lang] = p.stdout
    p = run("report", "--format", "json", db=db)
    assert p.returncode == 0, p.stderr
    out["json"] = json.loads(p.stdout)
    return out


def sentences_of(hosts: list[dict]) -> list[str]:
    out = []
    for h in hosts:
        for f in h["findings"]:
            out += [x for x in (f.get("evidence"), f.get("reason")) if x]
        out += h.get("errors") or []
        out += (h.get("role") or {}).get("evidence") or []
    return out


def test_every_sentence_of_the_lab_has_a_chinese_rendering(stored):
    _, hosts = stored
    texts = sentences_of(hosts)
    checks = {f["id"] for h in hosts for f in h["findings"]}
    assert len(texts) > 300 and len(checks) >= (25 if ROOT else 12)
    missing = sorted({t for t in texts if not i18n.translated(t, "zh")})
    assert not missing, "\n".join(missing)


def test_chinese_report_has_no_english_status_or_label_words(reports):
    text = visible(reports["zh"])
    assert "优先处置清单" in text and "修复方法" in text and "证据" in text
    found = english_found(text, english_words())
    assert not found, found
    assert "存在漏洞" in text and "疑似存在漏洞" in text and "严重" in text


def test_english_report_keeps_the_checks_words(stored, reports):
    _, hosts = stored
    html = reports["en"]
    for w in ("What to do first", "Evidence", "How to fix", "Hosts with SMB", "vulnerable"):
        assert w in html
    for f in (f for h in hosts for f in h["findings"] if f["status"] in ("vulnerable", "likely", "unknown")):
        for text in (f.get("evidence"), f.get("reason")):
            if text:
                esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")
                assert esc in html, text


def test_counts_state_their_denominators(stored, reports):
    _, hosts = stored
    c = reports["json"]["counts"]
    smb = 19
    assert c["smb"] == smb and c["total"] == len(hosts) and c["other"] == len(hosts) - smb
    if ROOT:
        assert c["other"] == 7 and c["total"] == 26
    assert c["smb1"] == 12  # 12 of the 19 SMB hosts answer NT LM 0.12 (63.2%), never 12 of 26 (46%)
    assert c["unsigned"] <= smb
    en = visible(reports["en"])
    assert "63.2% of 19 hosts with SMB" in en and f"of {c['total']} hosts that answered" in en
    assert f"{c['smb1']} of 19 hosts with SMB (63.2%)" in reports["en"]
    zh = visible(reports["zh"])
    assert "占开放 SMB 主机（19 台）的 63.2%" in zh


def test_ranked_actions_open_the_report(stored, reports):
    actions = reports["json"]["actions"]
    assert actions[0]["category"] == "isolate-now" and actions[0]["address"] == "127.86.0.5"  # the DoublePulsar host
    assert [a["rank"] for a in actions] == sorted(a["rank"] for a in actions)
    assert {a["category"] for a in actions} >= {"isolate-now", "vulnerable", "likely", "hardening", "verify"}
    untested = {a["address"] for a in actions if a["step"] == "verify" and not a["findings"]}
    assert {"127.86.0.15", "127.86.0.16"} <= untested  # the silent and the garbage host: verify, never clean
    for lang, badge in (("en", "ISOLATE"), ("zh", "隔离")):
        html = reports[lang]
        assert html.index('id="actions"') < html.index("<h2>", html.index('id="actions"') + 20) < html.index('id="f-')
        first = re.search(r'<tr class="rank-1">(.*?)</tr>', html, re.S).group(1)
        assert f'<span class="badge">{badge}</span>' in first and "127.86.0.5" in first
    assert "MID 为 <span class=\"v\">65</span> 的 Trans2 SESSION_SETUP" in reports["zh"]  # its evidence, in Chinese


def test_untested_hosts_are_marked_in_the_host_table(reports):
    for lang, mark in (("en", "not tested"), ("zh", "未能检测")):
        row = re.search(r'<td class="a">127\.86\.0\.15 <span class="mark">(.*?)</span>', reports[lang])
        assert row and row.group(1) == mark


def test_fixes_follow_the_observed_service_pack(stored, reports):
    _, hosts = stored
    w2k3 = next(h for h in hosts if h["address"] == "127.86.0.2")
    assert "Service Pack 2" in w2k3["smb1"]["native_os"]
    for lang in ("en", "zh"):
        section = reports[lang].split('id="f-ms17-010"')[1].split("</section>")[0]
        assert "KB4012598" in section  # the update for Server 2003 SP2 / XP SP3
        assert "KB914961" not in section and "KB936929" not in section  # never "install SP2" (or XP SP3) again
        assert "install-service-pack" not in reports[lang]


def test_fixes_ask_for_the_service_pack_a_host_lacks(stored):
    """The same Server 2003 host reporting Service Pack 1: its plan installs SP2 first."""
    from smbsentry.report.html import render

    _, hosts = stored
    w2k3 = json.loads(json.dumps(next(h for h in hosts if h["address"] == "127.86.0.2")))
    w2k3["smb1"]["native_os"] = "Windows Server 2003 3790 Service Pack 1"
    for lang in ("en", "zh"):
        section = render([w2k3], lang).split('id="f-ms17-010"')[1].split("</section>")[0]
        assert "KB914961" in section and "KB4012598" in section


def test_report_json_actions_follow_lang(stored):
    db, _ = stored
    p = run("report", "--format", "json", "--lang", "zh", db=db)
    data = json.loads(p.stdout)
    assert data["actions"][0]["next"].startswith("立即隔离")
    assert {"scan", "hosts", "counts", "actions"} <= set(data)
