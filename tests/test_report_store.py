"""history / diff / report / OCSF from the store (SQLite)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from smbsentry.report.scans import export_ocsf, render_diff, render_history, render_report
from smbsentry.store import Store

EVIL = "<script>alert(1)</script>"


def finding(fid, status, severity="critical", cves=("CVE-2017-0144",)):
    return {"id": fid, "status": status, "severity": severity, "title": fid, "cves": list(cves), "references": [],
            "evidence": f"answered 0xC0000205 {EVIL}", "reason": None, "inferred": False, "port": 445}


def host(addr, name, os_name, findings):
    return {"address": addr, "hostname": None, "ports": {"445": "open"},
            "smb1": {"enabled": True, "signing": "disabled", "native_os": os_name},
            "smb2": {"dialects": ["2.0.2", "2.1"], "signing": "enabled"},
            "identity": {"netbios_name": name, "os_name": os_name, "dns_name": None},
            "findings": findings, "errors": [], "duration_ms": 5}


@pytest.fixture
def store(tmp_path):
    s = Store.open(str(tmp_path / "r.db"))
    a = s.begin_scan(["10.0.0.0/24"], {})
    s.add_host(a, host("10.0.0.5", "OLD", "Windows 7 Professional 7601 Service Pack 1", [finding("ms17-010", "vulnerable")]))
    s.finish_scan(a)
    b = s.begin_scan(["10.0.0.0/24"], {})
    s.add_host(b, host("10.0.0.5", EVIL, f"Windows 7 Professional 7601 Service Pack 1", [
        finding("ms17-010", "vulnerable"), finding("smbv1-enabled", "vulnerable", "high", ()),
        finding("smb-signing-not-required", "vulnerable", "medium", ())]))
    s.add_host(b, host("10.0.0.6", "FS2", f"Windows 10 1903 {EVIL}", [finding("cve-2020-0796", "likely", cves=("CVE-2020-0796",))]))
    s.finish_scan(b)
    yield s
    s.close()


def test_history_table_and_json(store):
    table = render_history(store, "table")
    assert "ID" in table.splitlines()[0] and "finished" in table and "10.0.0.0/24" in table
    rows = json.loads(render_history(store, "json"))
    assert [r["id"] for r in rows] == [2, 1] and rows[0]["hosts"] == 2


def test_diff_render(store):
    d = store.diff(1, 2)
    text = render_diff(d, "table")
    assert "new hosts (1): 10.0.0.6" in text and "cve-2020-0796" in text
    assert json.loads(render_diff(d, "json"))["new_hosts"] == ["10.0.0.6"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_html_report(store, lang):
    html = render_report(store, 2, "html", lang)
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for marker in ("http://", "https://", "<script", "<link", "src="):
        assert marker not in html, marker
    assert html.count("<svg") >= 4  # severity, OS, SMBv1 share, unsigned share, trend
    assert "<polyline" in html  # two scans of the same targets: a trend line
    assert 'id="f-ms17-010"' in html and "KB4012212" in html  # fix text from the KB for Windows 7 SP1
    assert "KB4551762" in html or "cve-2020-0796" in html
    if lang == "zh":
        assert "修复方法" in html and "永恒之蓝" in html
    else:
        assert "How to fix" in html


def test_csv_and_json_exports(store):
    rows = list(csv.reader(io.StringIO(render_report(store, 2, "csv"))))
    assert rows[0][0] == "address" and [r[0] for r in rows[1:]] == ["10.0.0.5", "10.0.0.6"]
    data = json.loads(render_report(store, 2, "json"))
    assert data["scan"]["id"] == 2 and len(data["hosts"]) == 2


def test_ocsf(store):
    events = export_ocsf(store, 2)
    assert len(events) == 4
    ms17 = next(e for e in events if e["finding_info"]["types"] == ["ms17-010"])
    assert ms17["class_uid"] == 2002 and ms17["category_uid"] == 2 and ms17["activity_id"] == 1 and ms17["type_uid"] == 200201
    assert ms17["severity_id"] == 5 and ms17["vulnerabilities"][0]["cve"]["uid"] == "CVE-2017-0144"
    assert ms17["resources"][0]["ip"] == "10.0.0.5" and ms17["metadata"] == {"product": {"name": "smbsentry", "vendor_name": "smbsentry"}, "version": "1.1.0"}
    assert {"uid", "title", "desc"} <= set(ms17["finding_info"]) and isinstance(ms17["time"], int)
    signing = next(e for e in events if e["finding_info"]["types"] == ["smb-signing-not-required"])
    assert signing["severity_id"] == 3 and "cve" not in signing["vulnerabilities"][0]
    assert json.loads(render_report(store, 2, "ocsf")) == events


def test_bad_format(store):
    with pytest.raises(ValueError):
        render_report(store, 2, "pdf")
