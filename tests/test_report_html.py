"""The HTML report: self-contained, both languages, remote strings as text."""

from __future__ import annotations

from smbsentry.model import Finding, HostResult, Identity, Smb1Info, Smb2Info
from smbsentry.report.html import render

EVIL = "<script>alert(1)</script>"


def host(addr: str, name: str, findings):
    r = HostResult(addr, ports={"445": "open"})
    r.identity = Identity(netbios_name=name, os_name="Windows 7 SP1 / Server 2008 R2 SP1")
    r.smb1 = Smb1Info(enabled=True, ports={"445": True}, native_os=f"Windows 7 {EVIL}")
    r.smb2 = Smb2Info(dialects=["2.0.2", "2.1"], signing="enabled")
    r.findings = findings
    return r


def results():
    ms17 = Finding("ms17-010", "vulnerable", "critical", "MS17-010", evidence=f"answered 0xC0000205 {EVIL}", port=445)
    return [
        host("127.0.0.5", EVIL, [ms17]),
        host("127.0.0.6", "FS2", [Finding("ms17-010", "unknown", "critical", "MS17-010", reason="SMBv1 is disabled")]),
    ]


def test_remote_strings_are_escaped():
    html = render(results())
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_self_contained_no_network():
    html = render(results())
    for marker in ("http://", "https://", "<script", "<link", "src="):
        assert marker not in html, marker


def test_sections_and_counts():
    html = render(results())
    assert 'id="f-ms17-010"' in html
    assert "vulnerable 1" in html and "unknown 1" in html
    assert "SMBv1 is disabled" in html


def test_chinese_labels_and_titles():
    html = render(results(), lang="zh")
    assert "扫描报告" in html and "永恒之蓝" in html


def test_results_that_cannot_be_planned_say_so():
    """No action list is never shown as "nothing to do"."""
    bad = {"address": "", "findings": [{"id": "ms17-010", "status": "vulnerable", "severity": "critical", "title": "x"}]}
    for lang, word in (("en", "No action list"), ("zh", "无法生成处置清单")):
        html = render([bad], lang=lang)
        assert word in html and "Nothing to do" not in html and "无需处置" not in html


def test_counts_state_their_denominators():
    smb = host("127.0.0.7", "FS3", [])
    other = HostResult("127.0.0.8", ports={"445": "closed"}, services={"rdp": {"selected_protocol": "RDP"}})
    html = render([smb, other] + results())
    assert "of 4 hosts that answered" in html and "100.0% of 3 hosts with SMB" in html
    assert '<div class="card" id="card-other"><b>1</b>' in html and '<div class="card" id="card-smb"><b>3</b>' in html


def test_the_long_tables_escape_every_value_as_the_template_does():
    """report/rows.py writes the long tables without the template: each value must come out as autoescaping
    writes it (any text, attacker's included), and Markup (already escaped sentences) unchanged."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from markupsafe import Markup, escape

    from smbsentry.report import rows

    @settings(max_examples=300, deadline=None)
    @given(st.text())
    def same(text):
        assert rows.cell(text) == str(escape(text))

    same()
    assert rows.cell(Markup("<b>x</b>")) == "<b>x</b>" and rows.cell(None) == "" and rows.cell(7) == "7"
    hostile = '<script>alert("x")</script>\'&'
    html = str(rows.host_rows([(hostile, hostile, hostile, "", "", "", "", [(hostile, "vulnerable")], Markup(""), hostile)]))
    assert "<script>" not in html and html.count("&lt;script&gt;") == 5
