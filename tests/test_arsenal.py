"""The Shadow Brokers arsenal view: the HTML report section (both languages, escaped, capped host lists)
and the dashboard page /arsenal and /api/scans/{id}/arsenal behind the login."""

from __future__ import annotations

import re

import pytest

from smbsentry.model import Finding, HostResult, Identity
from smbsentry.report.arsenal import HOST_CAP, table
from smbsentry.report.html import render

EVIL = "<script>alert(1)</script>"


def host(addr: str, version: str, os_name: str, findings, name: str = "H"):
    r = HostResult(addr, ports={"445": "open"})
    r.identity = Identity(netbios_name=name, os_version=version, os_name=os_name, implementation="windows")
    r.findings = findings
    return r


def results():
    return [
        host("10.9.0.7", "6.1.7601", "Windows 7 Professional 7601 Service Pack 1",
             [Finding("ms17-010", "vulnerable", "critical", "MS17-010", port=445)], name=EVIL),
        host("10.9.0.5", "5.1.2600", "Windows XP", [Finding("eclipsedwing", "likely", "critical", "MS08-067")]),
        host("10.9.0.8", "10.0.19045", "Windows 10", [Finding("ms17-010", "not_vulnerable", "critical", "MS17-010")]),
    ]


def row(html: str, tool: str) -> str:
    m = re.search(rf'<tr id="tool-{tool}">(.*?)</tr>', html, re.S)
    assert m, tool
    return m.group(1)


def count(html: str, tool: str) -> int:
    m = re.search(r'<td class="count[^"]*">(?:<span[^>]*>)?(\d+)', row(html, tool))
    assert m, row(html, tool)
    return int(m.group(1))


def test_table_rows_and_cap():
    rows = table(results())
    assert len(rows) == 18
    by = {r["tool"]: r for r in rows}
    for t in ("eternalblue", "eternalromance", "eternalchampion"):
        assert by[t]["count"] == 1 and by[t]["shown"] == ["10.9.0.7"], t
    assert by["eternalsynergy"]["count"] == 0  # Windows 8 / 2012 only
    assert by["eclipsedwing"]["hosts"] == ["10.9.0.5"]
    many = [host(f"10.8.{i // 250}.{i % 250 + 1}", "6.1.7601", "Windows 7", [Finding("ms17-010", "vulnerable", "critical", "x")])
            for i in range(HOST_CAP + 5)]
    eb = table(many)[0]
    assert eb["count"] == HOST_CAP + 5 and len(eb["shown"]) == HOST_CAP and eb["more"] == 5


def test_report_section_counts():
    html = render(results())
    assert 'id="arsenal"' in html and "Shadow Brokers arsenal" in html
    assert len(re.findall(r'<tr id="tool-', html)) == 18
    for t in ("eternalblue", "eternalromance", "eternalchampion"):
        assert count(html, t) == 1 and "10.9.0.7" in row(html, t), t
    for t in ("eternalsynergy", "doublepulsar", "esteemaudit"):
        assert count(html, t) == 0, t
    assert count(html, "eclipsedwing") == 1 and "10.9.0.5" in row(html, "eclipsedwing")
    assert "KB958644" in row(html, "eclipsedwing") and "KB4013389" in row(html, "eternalblue")
    assert "10.9.0.8" not in row(html, "eternalchampion")
    assert EVIL not in html


def test_report_cap_plus_n():
    many = [host(f"10.8.0.{i + 1}", "6.1.7601", "Windows 7", [Finding("ms17-010", "vulnerable", "critical", "x")])
            for i in range(HOST_CAP + 3)]
    r = row(render(many), "eternalblue")
    assert "+3" in r and f"10.8.0.{HOST_CAP}" in r and f"10.8.0.{HOST_CAP + 1}" not in r


def test_report_chinese_labels():
    html = render(results(), lang="zh")
    assert "影子经纪人武器库" in html and "受影响主机" in html
    assert "永恒之蓝" in row(html, "eternalblue") and "日食之翼" in row(html, "eclipsedwing")
    assert "Shadow Brokers arsenal" not in html


def test_report_from_store_has_section(tmp_path):
    from smbsentry.report.scans import render_report
    from smbsentry.store import Store

    with Store.open(str(tmp_path / "s.db")) as store:
        sid = store.begin_scan(["10.9.0.0/24"])
        for r in results():
            store.add_host(sid, r)
        store.flush()
        store.finish_scan(sid)
        html = render_report(store, sid, "html", lang="zh")
    assert count(html, "eternalblue") == 1 and "永恒浪漫" in html


# ------------------------------------------------------------------ dashboard

fastapi = pytest.importorskip("fastapi")
from test_web import login, make_client, setup_admin  # noqa: E402


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from smbsentry.store import Store

    db = tmp_path_factory.mktemp("arsenal") / "store.db"
    with Store.open(str(db)) as store:
        sid = store.begin_scan(["10.9.0.0/24"])
        for r in results():
            store.add_host(sid, r)
        store.flush()
        store.finish_scan(sid)
    c = make_client(db)
    setup_admin(c)
    return {"db": db, "scan": sid, "client": c}


def test_web_requires_login(web):
    anon = make_client(web["db"])
    r = anon.get(f"/arsenal?scan={web['scan']}")
    assert r.status_code == 302 and r.headers["location"].startswith("/login")
    r = anon.get(f"/api/scans/{web['scan']}/arsenal")
    assert r.status_code == 401


def test_web_page_and_api(web):
    c = web["client"]
    assert login(c).status_code == 303
    r = c.get(f"/arsenal?scan={web['scan']}")
    assert r.status_code == 200
    assert 'id="nav-arsenal"' in r.text and len(re.findall(r'<tr id="tool-', r.text)) == 18
    assert count(r.text, "eternalblue") == 1 and count(r.text, "eclipsedwing") == 1 and count(r.text, "eternalsynergy") == 0
    assert "10.9.0.5" in row(r.text, "eclipsedwing") and EVIL not in r.text
    zh = c.get(f"/arsenal?scan={web['scan']}&lang=zh")
    assert zh.status_code == 200 and "影子经纪人武器库" in zh.text and "永恒之蓝" in row(zh.text, "eternalblue")
    assert c.get("/arsenal").status_code == 200  # the latest scan
    assert c.get(f"/arsenal?scan={web['scan']}&lang=xx").status_code == 400
    assert c.get("/arsenal?scan=999").status_code == 404
    api = c.get(f"/api/scans/{web['scan']}/arsenal")
    assert api.status_code == 200
    tools = {t["tool"]: t for t in api.json()["tools"]}
    assert len(tools) == 18 and tools["eternalchampion"]["hosts"] == ["10.9.0.7"] and tools["eclipsedwing"]["count"] == 1
    assert tools["eternalblue"]["name_zh"] == "永恒之蓝"
    assert c.get("/api/scans/999/arsenal").status_code == 404


def test_arsenal_hosts_once_in_address_order():
    from smbsentry.report.arsenal import arsenal

    def h(addr, *findings):
        return {"address": addr, "identity": {"os_version": "5.1.2600"},
                "findings": [{"id": f, "status": "likely"} for f in findings]}

    rows = {r["tool"]: r for r in arsenal([h("127.0.0.10", "eclipsedwing"), h("127.0.0.9", "eclipsedwing", "eclipsedwing"),
                                           h("127.0.0.100", "eclipsedwing")])}
    assert rows["eclipsedwing"]["hosts"] == ["127.0.0.9", "127.0.0.10", "127.0.0.100"]
    assert rows["eclipsedwing"]["count"] == 3
