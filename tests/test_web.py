"""The dashboard over plain HTTP (fastapi's TestClient): login, CSRF, sessions, errors, API,
scan start limits, escaping.  The store holds real scans of a BackgroundLab on loopback."""

from __future__ import annotations

import html
import os
import re
import sys
import time

import pytest


import webui as wb  # tests/webui.py: the dashboard's test fixtures
from pagetext import english_found, english_words, visible  # tests/pagetext.py
LAB_ALLOW, PASSWORD, XSS, XSS_ADDRESS = wb.LAB_ALLOW, wb.PASSWORD, wb.XSS, wb.XSS_ADDRESS
free_port, seed, start_lab = wb.free_port, wb.seed, wb.start_lab
NEW_HOSTS = sorted([XSS_ADDRESS, wb.LONG_ADDRESS, wb.TWIN_SALES, wb.TWIN_LABS], key=lambda a: int(a.rsplit(".", 1)[1]))

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from smbsentry.web import create_app  # noqa: E402
from smbsentry.web.auth import hash_password, verify_password  # noqa: E402
from smbsentry.web.jobs import TargetRefused, check_targets, parse_allowed  # noqa: E402

TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def lab():
    port = wb.lab_port()
    running = start_lab(port)
    running.port = port
    yield running
    running.stop()


@pytest.fixture(scope="module")
def seeded(lab, tmp_path_factory):
    db = tmp_path_factory.mktemp("web") / "store.db"
    facts = seed(db, lab.port)
    facts["db"] = db
    return facts


def make_client(db, **kw) -> TestClient:
    app = create_app(str(db), [LAB_ALLOW], **kw)
    # the dashboard answers to loopback Host names only (TestClient's default is "testserver")
    return TestClient(app, base_url="http://127.0.0.1:8080", follow_redirects=False)


def token(resp) -> str:
    m = TOKEN.search(resp.text)
    assert m, resp.text[:500]
    return m.group(1)


def setup_admin(c: TestClient) -> None:
    r = c.get("/setup")
    if r.status_code == 302:
        return
    r = c.post("/setup", data={"csrf": token(r), "token": c.app.state.setup_token.value, "password": PASSWORD,
                               "password2": PASSWORD})
    assert r.status_code == 303, r.text


def login(c: TestClient, password: str = PASSWORD):
    r = c.get("/login")
    return c.post("/login", data={"csrf": token(r), "username": "admin", "password": password, "next": "/"})


@pytest.fixture(scope="module")
def client(seeded):
    c = make_client(seeded["db"])
    setup_admin(c)
    assert login(c).status_code == 303
    return c


def page_token(c: TestClient) -> str:
    return token(c.get("/scans"))


# ---------------------------------------------------------------- first run, login
def test_first_run_asks_for_admin_password(tmp_path):
    c = make_client(tmp_path / "fresh.db")
    r = c.get("/")
    assert r.status_code == 302 and r.headers["location"] == "/setup"
    assert c.get("/login").headers["location"] == "/setup"
    r = c.get("/api/scans")
    assert r.status_code == 401 and r.json()["detail"].startswith("login required")
    form = c.get("/setup")
    assert form.status_code == 200 and "set the admin password" in form.text
    setup = c.app.state.setup_token.value
    assert c.post("/setup", data={"password": PASSWORD, "password2": PASSWORD, "token": setup}).status_code == 403  # no CSRF
    r = c.post("/setup", data={"csrf": token(form), "password": PASSWORD, "password2": PASSWORD})  # no setup token
    assert r.status_code == 403 and "Wrong setup token" in r.text
    r = c.post("/setup", data={"csrf": token(form), "password": PASSWORD, "password2": PASSWORD, "token": setup + "x"})
    assert r.status_code == 403 and not c.app.state.auth.has_admin()
    ok = {"csrf": token(form), "token": setup}
    assert c.post("/setup", data={**ok, "password": "short", "password2": "short"}).status_code == 400
    assert c.post("/setup", data={**ok, "password": PASSWORD, "password2": PASSWORD + "x"}).status_code == 400
    r = c.post("/setup", data={**ok, "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert c.app.state.setup_token.value is None   # spent
    # Once set, nobody can set it again.
    assert c.get("/setup").status_code == 302
    assert c.post("/setup", data={"csrf": token(form), "password": "x" * 20, "password2": "x" * 20}).status_code == 403
    assert c.get("/").headers["location"].startswith("/login?next=")


def test_wrong_password_is_401(seeded):
    c = make_client(seeded["db"])
    setup_admin(c)
    r = login(c, "wrong password!")
    assert r.status_code == 401
    assert "Wrong user name or password" in r.text
    assert "smbsentry_session" not in r.headers.get("set-cookie", "")
    assert c.get("/api/scans").status_code == 401


def test_login_without_csrf_is_403(seeded):
    c = make_client(seeded["db"])
    setup_admin(c)
    c.get("/login")
    r = c.post("/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 403 and "CSRF" in r.text


def test_cookie_flags(seeded):
    c = make_client(seeded["db"])
    setup_admin(c)
    cookie = login(c).headers["set-cookie"]
    assert "smbsentry_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie
    # Secure when asked for, with an https --public-url (whose name is then answered), and whenever the
    # request came over https.
    c1 = TestClient(create_app(str(seeded["db"]), [LAB_ALLOW], secure_cookies=True), follow_redirects=False,
                    base_url="https://localhost")
    assert "Secure" in login(c1).headers["set-cookie"]
    c2 = TestClient(create_app(str(seeded["db"]), [LAB_ALLOW], public_url="https://scanner.example:8443/"),
                    follow_redirects=False, base_url="http://scanner.example")   # (the proxy speaks http to us)
    assert "Secure" in c2.get("/login").headers["set-cookie"]
    c3 = TestClient(create_app(str(seeded["db"]), [LAB_ALLOW], allowed_host=["testserver"]), follow_redirects=False,
                    base_url="https://testserver")
    assert "Secure" in login(c3).headers["set-cookie"]


def test_pages_and_api_need_login(seeded):
    c = make_client(seeded["db"])
    setup_admin(c)
    for path in ("/", "/hosts", f"/hosts/{seeded['second']}/{seeded['win7']}", "/scans", "/plans/1/download", "/diff?old=1&new=2",
                 "/relay", f"/scans/{seeded['second']}/relay-list.txt"):
        r = c.get(path)
        assert r.status_code == 302 and r.headers["location"].startswith("/login?next="), path
    for path in ("/api/scans", f"/api/scans/{seeded['second']}", f"/api/scans/{seeded['second']}/hosts",
                 f"/api/hosts/{seeded['second']}/{seeded['win7']}", "/api/diff?old=1&new=2", "/openapi.json"):
        r = c.get(path)
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/json"), path
    # A forged cookie is no session.
    c.cookies.set("smbsentry_session", "abc.def")
    assert c.get("/api/scans").status_code == 401


def test_expired_session_goes_back_to_login(seeded):
    c = make_client(seeded["db"], session_ttl=3600)
    setup_admin(c)
    login(c)
    assert c.get("/").status_code == 200
    c.app.state.auth.expire_all()
    r = c.get("/hosts")
    assert r.status_code == 302 and "expired=1" in r.headers["location"]
    assert "expired" in c.get(r.headers["location"]).text
    login(c)
    c.app.state.auth.expire_all()
    r = c.get("/api/scans")
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_logout_needs_csrf_and_ends_session(seeded):
    c = make_client(seeded["db"])
    setup_admin(c)
    login(c)
    assert c.post("/logout", data={}).status_code == 403
    assert c.post("/logout", data={"csrf": "nope"}).status_code == 403
    r = c.post("/logout", data={"csrf": page_token(c)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.get("/").status_code == 302


# ---------------------------------------------------------------- API
def test_api(client, seeded):
    scans = client.get("/api/scans").json()
    assert [s["id"] for s in scans if s["options"].get("kind") != "smb1-usage"][:2] == [seeded["second"], seeded["first"]]
    one = client.get(f"/api/scans/{seeded['second']}").json()
    assert one["hosts"] == 23 and one["stats"]["hosts"] == 23 and one["stats"]["smb_hosts"] == 23
    r = client.get(f"/api/scans/{seeded['second']}/hosts", params={"finding": "ms17-010", "limit": 3})
    body = r.json()
    assert body["total"] == seeded["ms17"] and len(body["hosts"]) == 3
    assert all(any(f["id"] == "ms17-010" and f["status"] == "vulnerable" for f in h["findings"]) for h in body["hosts"])
    page2 = client.get(f"/api/scans/{seeded['second']}/hosts", params={"finding": "ms17-010", "limit": 3, "offset": 3}).json()
    assert {h["address"] for h in page2["hosts"]}.isdisjoint(h["address"] for h in body["hosts"])
    sub = client.get(f"/api/scans/{seeded['second']}/hosts", params={"subnet": "127.54.0.0/29", "sort": "-address"}).json()
    assert [h["address"] for h in sub["hosts"]] == [f"127.54.0.{i}" for i in range(7, 0, -1)]
    host = client.get(f"/api/hosts/{seeded['second']}/{seeded['win7']}").json()
    assert host["identity"]["netbios_name"] == "DFIR-WIN7-X64"
    d = client.get("/api/diff", params={"old": seeded["first"], "new": seeded["second"]}).json()
    assert d["new_hosts"] == NEW_HOSTS
    spec = client.get("/openapi.json").json()
    for p in ("/api/scans", "/api/scans/{scan_id}", "/api/scans/{scan_id}/hosts", "/api/hosts/{scan_id}/{address}", "/api/diff"):
        assert p in spec["paths"]


def test_unknown_ids_are_404(client, seeded):
    for path in ("/api/scans/999", "/api/scans/999/hosts", f"/api/hosts/{seeded['second']}/10.9.9.9", "/api/diff?old=1&new=999",
                 "/api/jobs/999"):
        r = client.get(path)
        assert r.status_code == 404 and "detail" in r.json(), path
    for path in ("/?scan=999", "/hosts?scan=999", f"/hosts/{seeded['second']}/10.9.9.9", "/hosts/999/127.54.0.1",
                 "/plans/99/download", "/plans/1/scripts/9", "/jobs/999", "/nowhere"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html") and "Error 404" in r.text, path
    assert client.get("/api/scans/abc").status_code == 422
    assert client.get(f"/api/scans/{seeded['second']}/hosts", params={"subnet": "nonsense"}).status_code == 400
    assert client.get(f"/api/scans/{seeded['second']}/hosts", params={"sort": "evil"}).status_code == 400


# ---------------------------------------------------------------- pages
def test_pages_render(client, seeded):
    r = client.get("/")
    assert r.status_code == 200 and "<svg" in r.text and "ms17-010" in r.text
    r = client.get("/hosts", params={"scan": seeded["second"], "finding": "ms17-010"})
    assert r.status_code == 200 and f"{seeded['ms17']} hosts" in r.text
    r = client.get(f"/hosts/{seeded['second']}/{seeded['win7']}")
    api = client.get(f"/api/hosts/{seeded['second']}/{seeded['win7']}").json()
    evidence = next(f["evidence"] for f in api["findings"] if f["id"] == "ms17-010")
    assert "DFIR-WIN7-X64" in r.text and evidence and html.escape(evidence, quote=False) in r.text
    assert "KB4012212" in r.text and seeded["systeminfo"] in r.text and "win7-2008r2-any-apply.cmd" in r.text
    plan = client.get(f"/plans/{seeded['plan']}/download")
    assert plan.json()["format"] == "smbsentry-plan" and "attachment" in plan.headers["content-disposition"]
    host_json = client.get(f"/hosts/{seeded['second']}/{seeded['win7']}/download").json()
    assert host_json["address"] == seeded["win7"]
    r = client.get("/diff", params={"old": seeded["first"], "new": seeded["second"]})
    assert XSS_ADDRESS in r.text
    assert client.get(f"/scans/{seeded['second']}/report.json").json()["scan"]["id"] == seeded["second"]
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_remote_strings_are_escaped(client, seeded):
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for path in ("/", f"/hosts?scan={seeded['second']}", f"/hosts?scan={seeded['second']}&q=script",
                 f"/hosts/{seeded['second']}/{XSS_ADDRESS}", "/scans", f"/diff?old={seeded['first']}&new={seeded['second']}"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert XSS not in r.text and "<img src=x" not in r.text, path
    assert escaped in client.get(f"/hosts?scan={seeded['second']}&q=script").text
    assert escaped in client.get(f"/hosts/{seeded['second']}/{XSS_ADDRESS}").text
    # The API hands the raw string back as JSON data.
    assert client.get(f"/api/hosts/{seeded['second']}/{XSS_ADDRESS}").json()["identity"]["netbios_name"] == XSS


# ---------------------------------------------------------------- issue 15: what to do first, in English and Chinese
HOST_ROW = re.compile(r'<tr class="host-row state-([a-z-]+)( untested)?" data-state="[a-z-]+">\s*<td class="risk">(.*?)</td>\s*'
                      r'<td><a class="host-link a" href="[^"]+">([^<]+)</a>', re.S)


def host_rows(client, **params) -> list[tuple[str, str, bool, str]]:
    """(address, state, untested, risk cell) of every row of the hosts page (all pages)."""
    out, page = [], 1
    while True:
        r = client.get("/hosts", params={**params, "page": page})
        assert r.status_code == 200, r.text[:500]
        out += [(addr, state, bool(untested), cell) for state, untested, cell, addr in HOST_ROW.findall(r.text)]
        if 'id="next"' not in r.text:
            return out
        page += 1


def test_overview_opens_on_the_ranked_list(client, seeded):
    r = client.get("/", params={"scan": seeded["second"]})
    assert r.status_code == 200
    body = r.text
    # the ranked list comes first, its first row the implanted host with the isolate badge
    assert body.index('id="actions"') < body.index('class="tiles"') < body.index('class="charts"')
    first = re.search(r'<tr class="action rank-1" data-address="([^"]+)">(.*?)</tr>', body, re.S)
    assert first and first.group(1) == seeded["implant"] and '<span class="badge isolate">ISOLATE</span>' in first.group(2)
    ranks = [int(x) for x in re.findall(r'<tr class="action rank-(\d)"', body)]
    assert ranks == sorted(ranks) and len(ranks) == 15
    m = re.search(r'href="/actions\?scan=\d+" id="all-actions">All (\d+) rows', body)
    total = int(m.group(1))
    assert total > 15 and client.get("/actions", params={"scan": seeded["second"]}).text.count('<tr class="action rank-') == min(total, 50)
    # the counts and their denominators: 23 hosts answered, all with SMB open
    assert re.search(r'<b id="tile-hosts">23</b>Hosts with SMB<small>TCP 139 or 445 open, of 23 hosts that answered', body)
    assert "0</b>Hosts with other services only" in body
    assert re.search(r"SMBv1 on<small>[\d.]+% of 23 hosts with SMB", body)
    # charts lead to the hosts they count
    assert f'href="/hosts?scan={seeded["second"]}&amp;status=bad&amp;severity=critical"' in body
    assert f'href="/hosts?scan={seeded["second"]}&amp;finding=smbv1-enabled" class="chart-link"' in body


def test_hosts_sort_by_risk_and_mark_untested_hosts(client, seeded):
    rows = host_rows(client, scan=seeded["second"])
    assert len(rows) == 23
    addr, state, _, cell = rows[0]
    assert addr == seeded["implant"] and state == "isolate-now" and "ISOLATE" in cell
    assert sum("ISOLATE" in c for _, _, _, c in rows) == 1
    by = {a: (st, u) for a, st, u, _ in rows}
    # the silent and the garbage host: SMB open, nothing learned: untested, never shown like a clean host
    for a in (seeded["silent"], seeded["garbage"]):
        assert by[a][1] and "could not be tested" in next(c for x, _, _, c in rows if x == a)
    assert by[seeded["clean"]] == ("clean", False)
    assert "nothing to do" in next(c for x, _, _, c in rows if x == seeded["clean"])
    positions = {a: i for i, (a, *_rest) in enumerate(rows)}
    assert positions[seeded["silent"]] < positions[seeded["clean"]] and positions[seeded["garbage"]] < positions[seeded["clean"]]
    # isolate first, then each host's best rank; hosts without work after them, the untested first
    def key(state, untested, cell):
        m = re.search(r'class="rank r(\d)"', cell)
        return 1 if "ISOLATE" in cell else int(m.group(1)) if m else (6 if untested else 7)
    ranked = [key(st, u, c) for _, st, u, c in rows]
    assert ranked == sorted(ranked) and ranked[-1] == 7
    # sorting by address still works, and the risk filter picks the untested hosts
    by_addr = host_rows(client, scan=seeded["second"], sort="address")
    assert by_addr[0][0] == "127.54.0.1"
    untested = {a for a, *_ in host_rows(client, scan=seeded["second"], risk="untested")}
    assert {seeded["silent"], seeded["garbage"]} <= untested and seeded["clean"] not in untested


def test_status_filter_keeps_only_matching_hosts(client, seeded):
    sid = seeded["second"]
    api = client.get(f"/api/scans/{sid}/hosts", params={"limit": 1000}).json()["hosts"]

    def having(*statuses):
        return {h["address"] for h in api if any(f["status"] in statuses for f in h["findings"])}

    everyone = {a for a, *_ in host_rows(client, scan=sid)}
    assert len(everyone) == 23
    bad = {a for a, *_ in host_rows(client, scan=sid, status="bad")}
    assert bad == having("vulnerable", "likely") and bad < everyone
    assert seeded["clean"] not in bad and wb.TWIN_SALES not in bad and seeded["implant"] in bad
    for status in ("vulnerable", "likely", "unknown"):
        got = {a for a, *_ in host_rows(client, scan=sid, status=status)}
        assert got == having(status), status
    assert {a for a, *_ in host_rows(client, scan=sid, status="bad", severity="critical")} == \
        {h["address"] for h in api if any(f["status"] in ("vulnerable", "likely") and f["severity"] == "critical"
                                          for f in h["findings"])}
    crit = client.get(f"/api/scans/{sid}/hosts", params={"status": "bad", "severity": "critical", "limit": 1000}).json()
    assert crit["total"] < len(bad)
    assert client.get("/hosts", params={"scan": sid, "status": "evil"}).status_code == 400
    assert client.get("/hosts", params={"scan": sid, "risk": "evil"}).status_code == 400


def csv_rows(resp) -> list[list[str]]:
    import csv
    import io

    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    text = resp.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_csv_export_applies_the_filter_and_guards_formulas(client, seeded):
    from smbsentry.store import Store

    sid = seeded["second"]
    rows = csv_rows(client.get("/hosts.csv", params={"scan": sid, "status": "bad"}))
    assert rows[0][:3] == ["Address", "Name", "OS"]
    assert {r[0] for r in rows[1:]} == {a for a, *_ in host_rows(client, scan=sid, status="bad")}
    assert rows[1][0] == seeded["implant"] and rows[1][4] == "isolate now"  # the page's order: risk
    assert len(csv_rows(client.get("/hosts.csv", params={"scan": sid}))) == 24
    zh = csv_rows(client.get("/hosts.csv", params={"scan": sid, "risk": "untested", "lang": "zh"}))
    assert zh[0][0] == "地址" and {r[0] for r in zh[1:]} >= {seeded["silent"], seeded["garbage"]}
    client.get("/", params={"lang": "en"})
    actions = csv_rows(client.get("/actions.csv", params={"scan": sid}))
    assert actions[1][0] == "isolate now" and actions[1][2] == seeded["implant"] and actions[1][6] == "isolate-now"
    # cells a spreadsheet would run get a leading quote
    hostile = {"=cmd|' /C calc'!A0": "127.54.0.231", "+SUM(1,2)": "127.54.0.232", "-2+3": "127.54.0.233", "@SUM(1)": "127.54.0.234"}
    with Store.open(str(seeded["db"])) as store:
        csid = store.begin_scan(["127.54.0.230/28"], {"checks": "default"})
        for name, addr in hostile.items():
            store.add_host(csid, wb.named_host(addr, name, "=DOMAIN", os_name="@evil"))
        store.finish_scan(csid)
    got = csv_rows(client.get("/hosts.csv", params={"scan": csid}))
    names = {r[0]: r[1] for r in got[1:]}
    for name, addr in hostile.items():
        assert names[addr] == "'" + name
    assert all(r[2] == "'@evil" for r in got[1:])
    scans = csv_rows(client.get("/scans.csv"))
    assert scans[0][0] == "ID" and any(r[0] == str(csid) for r in scans[1:])
    diff = csv_rows(client.get("/diff.csv", params={"old": seeded["first"], "new": sid}))
    assert diff[0][0] == "Change"


def test_host_page_joins_inventories_by_the_one_rule(client, seeded):
    sid = seeded["second"]
    by_address = client.get(f"/hosts/{sid}/{seeded['w2k8']}").text  # keyed by address, its name unknown to the scan
    assert "cmdb-export.csv" in by_address and "KB4012598" in by_address
    sales, labs = client.get(f"/hosts/{sid}/{wb.TWIN_SALES}").text, client.get(f"/hosts/{sid}/{wb.TWIN_LABS}").text
    assert "twin-bare.csv" not in sales and "twin-bare.csv" not in labs  # a bare name two hosts share joins neither
    assert "twin-labs.csv" in labs and "twin-labs.csv" not in sales  # the name with its domain joins its host only
    assert 'id="no-audit"' in sales


def test_host_page_flags_the_scan_audit_conflict(client, seeded):
    body = client.get(f"/hosts/{seeded['second']}/{seeded['win7']}").text
    box = re.search(r'<div class="conflict" id="conflict">(.*?)</div>', body, re.S)
    assert box, "no conflict box"
    text = html.unescape(re.sub(r"<[^>]+>", "", box.group(1)))
    assert "The scan and the audit disagree on ms17-010" in text
    assert "not active until the host restarts" in text and "older than the scan" in text and "another host" in text
    assert "Settle it:" in text
    # both answers carry the comment: the finding row and the audit's verdict point at the conflict
    assert re.search(r'<tr class="finding st-vulnerable in-conflict">\s*<td><b><code>ms17-010</code>', body)
    assert re.search(r'<tr class="verdict in-conflict"><th><code>ms17-010</code></th><td><span class="s-patched">patched</span>', body)
    zh = visible(client.get(f"/hosts/{seeded['second']}/{seeded['win7']}", params={"lang": "zh"}).text)
    assert "扫描与审计对 ms17-010 的结论不一致" in zh and "可能原因" in zh and "判定方法" in zh
    client.get("/", params={"lang": "en"})


def test_host_page_shows_the_recorded_smb1_clients(client, seeded):
    if not seeded["usage"]:
        pytest.skip("recording SMB1 traffic needs root, port 445 and dumpcap (detect reads SMB on 445/139)")
    body = client.get(f"/hosts/{seeded['second']}/{seeded['xp']}").text
    table = re.search(r'<table class="wrap" id="smb1-clients">(.*?)</table>', body, re.S).group(1)
    assert '<td class="a">127.0.0.1</td><td class="v">NT LM 0.12</td>' in table
    other = client.get(f"/hosts/{seeded['second']}/{seeded['win7']}").text
    m = re.search(r'<p id="no-smb1-use">No SMB1 use of this host seen in the captures from (\S+ \S+) to (\S+ \S+) UTC '
                  r'\(<span class="r">smb1-traffic.pcap</span>\)</p>', other)
    assert m and m.group(1) <= m.group(2)


def test_plan_scripts_download_from_the_stored_plan(client, seeded):
    body = client.get(f"/hosts/{seeded['second']}/{seeded['win7']}").text
    links = re.findall(r'<a class="script-download" href="(/plans/\d+/scripts/([^"]+))">', body)
    assert [name for _, name in links] == ["win7-2008r2-any-apply.cmd", "win7-2008r2-any-rollback.cmd"]
    for href, name in links:
        r = client.get(href)
        assert r.status_code == 200 and f'filename="{name}"' in r.headers["content-disposition"]
        assert r.content == (seeded["plan_dir"] / "scripts" / name).read_bytes()  # byte for byte as `smbsentry plan` wrote it
    assert b"KB4012212" in client.get(links[0][0]).content
    assert client.get(f"/plans/{seeded['plan']}/scripts/..%2Fplan.json").status_code == 404


def test_language_switch_is_remembered(seeded):
    c = make_client(seeded["db"])
    setup_admin(c)
    login(c)
    sid = seeded["second"]
    r = c.get("/hosts", params={"lang": "zh", "scan": sid})
    assert '<html lang="zh-CN">' in r.text and "smbsentry_lang=zh" in r.headers["set-cookie"]
    assert "共 23 台主机" in c.get("/hosts", params={"scan": sid}).text  # no parameter: the cookie
    missing = re.sub(r"<[^>]+>", "", c.get("/hosts/1/10.9.9.9").text)
    assert "错误 404" in missing and "扫描 1 中没有主机 10.9.9.9" in missing
    r = c.get("/hosts", params={"lang": "en", "scan": sid})
    assert '<html lang="en">' in r.text and "23 hosts" in c.get("/hosts", params={"scan": sid}).text
    r = c.get("/hosts", params={"lang": "fr", "scan": sid})  # an unknown language: 400, said in the remembered one
    assert r.status_code == 400 and '<html lang="en">' in r.text and "bad lang (one of en, zh)" in r.text
    assert "smbsentry_lang" not in r.headers.get("set-cookie", "")
    c.get("/hosts", params={"lang": "zh", "scan": sid})
    r = c.get("/hosts", params={"lang": "fr", "scan": sid})
    assert r.status_code == 400 and "语言无效" in r.text
    assert "共 23 台主机" in c.get("/hosts", params={"scan": sid}).text  # still Chinese
    assert c.get("/api/scans").json()[0]["status"] in ("finished", "running")  # the API stays language-neutral


ZH_WORDS = english_words(("status", "severity", "role", "rank", "report", "chart", "arsenal", "diff", "web"), shortest=4)


def test_chinese_pages_have_no_english_status_or_label_words(seeded):
    from markupsafe import escape

    c = make_client(seeded["db"])
    setup_admin(c)
    sid = seeded["second"]
    login_page = c.get("/login", params={"lang": "zh"})
    pages = {"login": login_page.text}
    login(c)
    for name, path in (("overview", f"/?scan={sid}"), ("actions", f"/actions?scan={sid}"), ("hosts", f"/hosts?scan={sid}"),
                       ("untested", f"/hosts?scan={sid}&risk=untested"), ("win7", f"/hosts/{sid}/{seeded['win7']}"),
                       ("xp", f"/hosts/{sid}/{seeded['xp']}"), ("implant", f"/hosts/{sid}/{seeded['implant']}"),
                       ("silent", f"/hosts/{sid}/{seeded['silent']}"), ("w2k8", f"/hosts/{sid}/{seeded['w2k8']}"),
                       ("scans", "/scans"), ("diff", f"/diff?old={seeded['first']}&new={sid}"), ("arsenal", f"/arsenal?scan={sid}"),
                       ("relay", f"/relay?scan={sid}"), ("relay-unsigned", f"/relay?scan={sid}&state=vulnerable"),
                       ("404", "/hosts/1/10.9.9.9"), ("400", f"/hosts?scan={sid}&sort=evil"), ("422", "/hosts?scan=abc")):
        pages[name] = c.get(path, params={"lang": "zh"}).text
    # sentences the catalog has no Chinese pattern for are shown in English and marked so; only the
    # audit's own verdict sentences may be (their catalog is another change's)
    marked = re.compile(r'<span lang="en" class="untranslated">(.*?)</span>', re.S)
    audit_texts = {str(escape(v.get("evidence") or "")) for a in c.app.state.store.audits() for v in a.get("verdicts") or []}
    untranslated = {m for text in pages.values() for m in marked.findall(text)}
    assert untranslated <= audit_texts, untranslated - audit_texts
    bad = {name: english_found(visible(marked.sub(" ", text)), ZH_WORDS) for name, text in pages.items()}
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}
    assert "优先处置清单" in pages["overview"] and "隔离" in pages["overview"] and "开放 SMB 的主机" in pages["overview"]
    assert "无法完成检测" in pages["untested"] and "存在漏洞" in pages["win7"] and "修复方法" in pages["win7"]
    assert "错误 404" in pages["404"] and "登录" in pages["login"]
    assert "中继路径" in pages["relay"] and "可被中继" in pages["relay-unsigned"] and "中继路径" in pages["win7"]
    # the check can fail: the English pages are full of these words
    english = visible(c.get("/", params={"lang": "en", "scan": sid}).text)
    assert len(english_found(english, ZH_WORDS)) > 20


def test_diff_page_compares_like_with_like(client, seeded, lab):
    """A narrower scan with fewer checks: its warnings, the findings it did not check, an identity change."""
    from smbsentry.store import Store

    db = seeded["db"]
    wb.cli("scan", "127.54.0.1-3", "--ports", lab.port, "--checks", "default", "--db", db, "--format", "jsonl", "-o", os.devnull,
           "-q", "--timeout", "3")
    with Store.open(str(db)) as store:
        newer = max(s["id"] for s in store.scans() if s["targets"] == ["127.54.0.1-3"])
        renamed = wb.xss_host()
        renamed["identity"] = {**renamed["identity"], "netbios_name": "RENAMED"}
        store.add_host(newer, renamed)
        store.flush()
    r = client.get("/diff", params={"old": seeded["second"], "new": newer})
    body = r.text
    assert r.status_code == 200
    warnings = re.search(r'<ul id="diff-warnings">(.*?)</ul>', body, re.S).group(1)
    assert "targets differ" in warnings and "different checks" in warnings
    assert 'id="diff-not_checked"' in body and "check not run" in body
    ident = re.search(r'<table class="wrap" id="identity-changes">(.*?)</table>', body, re.S).group(1)
    assert XSS_ADDRESS in ident and "RENAMED" in ident and "&lt;script&gt;" in ident
    zh = visible(client.get("/diff", params={"old": seeded["second"], "new": newer, "lang": "zh"}).text)
    assert "警告" in zh and "较新扫描未检测" in zh and "主机标识变化" in zh
    client.get("/", params={"lang": "en"})
    rows = csv_rows(client.get("/diff.csv", params={"old": seeded["second"], "new": newer}))
    assert {"not_checked", "identity"} <= {r[0] for r in rows[1:]}


def test_a_scan_is_planned_once_not_per_request(client, seeded):
    """Pages of a big scan read the cached ranked list; a new inventory in the store makes a new one."""
    from smbsentry.store import Store

    digests = client.app.state.digests
    sid = seeded["second"]
    client.get("/", params={"scan": sid})
    first = digests.get(sid, "en")
    for path in ("/", "/hosts", "/actions", f"/hosts/{sid}/{seeded['win7']}"):
        client.get(path, params={"scan": sid} if "/hosts/" not in path else {})
    assert digests.get(sid, "en") is first
    with Store.open(str(seeded["db"])) as store:
        store.add_audit({"host": "NOBODY-HERE", "source": "extra.csv", "facts": {}, "verdicts": []})
    assert digests.get(sid, "en") is not first


# ---------------------------------------------------------------- scans from the web
@pytest.mark.parametrize("targets", ["10.0.0.1", "127.55.0.1", "127.54.0.0/23", "127.54.0.250-127.54.1.3", "example.com",
                                     "--help", "127.54.0.1 8.8.8.8", ""])
def test_scan_start_refused_outside_allowed(client, targets):
    before = len(client.app.state.jobs.all())
    r = client.post("/scans/start", data={"csrf": page_token(client), "targets": targets, "ports": "445", "checks": "default"})
    assert r.status_code == 403 and 'id="error"' in r.text
    assert len(client.app.state.jobs.all()) == before


def test_scan_start_needs_csrf(client):
    r = client.post("/scans/start", data={"targets": "127.54.0.1"})
    assert r.status_code == 403
    assert not client.app.state.jobs.all() or all(j.targets != ["127.54.0.1"] for j in client.app.state.jobs.all())


def test_scan_start_disabled_without_allow(seeded):
    c = TestClient(create_app(str(seeded["db"]), []), follow_redirects=False, base_url="http://127.0.0.1")
    setup_admin(c)
    login(c)
    r = c.get("/scans")
    assert "disabled" in r.text
    r = c.post("/scans/start", data={"csrf": token(r), "targets": "127.0.0.1"})
    assert r.status_code == 403


def test_scan_start_runs_and_reports_progress(client, lab):
    r = client.post("/scans/start", data={"csrf": page_token(client), "targets": "127.54.0.1-5", "ports": str(lab.port),
                                          "checks": "all"})
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert client.get(r.headers["location"]).status_code == 200
    deadline = time.monotonic() + 120
    while True:
        st = client.get(f"/api/jobs/{job_id}").json()
        if st["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert st["state"] == "finished", st
    assert st["hosts"] == 5 and st["scan_status"] == "finished"
    assert {h["address"] for h in st["recent"]} == {f"127.54.0.{i}" for i in range(1, 6)}
    scan = client.get(f"/api/scans/{st['scan_id']}").json()
    assert scan["targets"] == ["127.54.0.1-5"]


def test_scan_that_fails_says_why_on_its_page(client):
    """A scan refused by the application layer (here: no targets, which the form never sends) ends "failed",
    and its job page and /api/jobs say the one line the scan said, not a bare exit status."""
    job = client.app.state.jobs.start([], "445", "default", "admin")
    deadline = time.monotonic() + 60
    while job.state == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.state == "failed" and job.returncode == 2 and job.scan_id is None
    st = client.get(f"/api/jobs/{job.id}").json()
    assert st["state"] == "failed" and st["error"] == "smbsentry: no targets: give addresses, ranges or --targets-file"
    page = client.get(f"/jobs/{job.id}").text
    assert 'id="job-error">smbsentry: no targets: give addresses, ranges or --targets-file</p>' in page


def test_check_targets_unit():
    allowed = parse_allowed(["127.54.0.0/24", "10.1.0.1-10.1.0.9"])
    assert check_targets("127.54.0.1-19, 127.54.0.7 10.1.0.2-9", allowed) == ["127.54.0.1-19", "127.54.0.7", "10.1.0.2-9"]
    for bad in ("10.1.0.10", "10.1.0.0/28", "::1", "host.local", "127.54.0.9-3"):
        with pytest.raises(TargetRefused):
            check_targets(bad, allowed)
    with pytest.raises(TargetRefused):
        check_targets("127.0.0.1", [])


def test_password_hash():
    h = hash_password(PASSWORD)
    assert h.startswith("scrypt$") and PASSWORD not in h
    assert verify_password(PASSWORD, h) and not verify_password(PASSWORD + "!", h)
    assert hash_password(PASSWORD) != h  # random salt
    assert not verify_password(PASSWORD, "garbage")


def test_main_serve_bad_input(tmp_path, capsys):
    from smbsentry.web import main_serve

    assert main_serve("127.0.0.1", 0, str(tmp_path / "s.db"), ["not-a-range"]) == 2
    assert "not an IP address" in capsys.readouterr().err


def test_main_serve_serves_on_loopback(tmp_path):
    import subprocess

    import httpx

    port = free_port()
    code = (f"import sys; from smbsentry.web import main_serve; "
            f"sys.exit(main_serve('127.0.0.1', {port}, {str(tmp_path / 's.db')!r}, ['127.54.0.0/24']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=False, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
                time.sleep(0.2)
        assert r.status_code == 302 and r.headers["location"] == "/setup"
        assert httpx.get(f"http://127.0.0.1:{port}/api/scans", timeout=2).status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)


def test_host_page_says_which_engine_saw_the_host(client, seeded):
    """Issue 9: results from engines carry the engine's identity; the dashboard shows it."""
    from smbsentry.store import Store

    with Store.open(str(seeded["db"])) as store:
        sid = store.begin_scan(["127.54.9.1"])
        store.add_host(sid, {"address": "127.54.9.1", "ports": {"445": "open"}, "identity": {"netbios_name": "SEG-HOST"},
                             "findings": [], "errors": [],
                             "engine": {"name": "plant-a@eng1", "queue": "plant-floor", "hostname": "eng1"}})
        store.finish_scan(sid)
    r = client.get(f"/hosts/{sid}/127.54.9.1")
    assert r.status_code == 200
    assert "engine plant-a@eng1 (queue plant-floor, eng1)" in r.text
    assert 'id="no-plan">No plan for this host.' in r.text and f"/plans/{seeded['plan']}/download" in r.text
    local = client.get(f"/hosts/{seeded['second']}/{seeded['win7']}")
    assert "this machine (local scan)" in local.text


# ---------------------------------------------------------------- issue 20: relay paths
RELAY_DC, RELAY_XSS, RELAY_LONG, RELAY_SIGNED = wb.RELAY_DC, wb.RELAY_XSS, wb.RELAY_LONG, wb.RELAY_SIGNED
RELAY_WG = wb.RELAY_WORKGROUP


@pytest.fixture(scope="module")
def relay_store(tmp_path_factory):
    """A store of its own (the shared one's scan counts stay as other tests expect) holding one scan whose
    hosts have every kind of relay path (webui.add_relay_scan)."""
    from smbsentry.store import Store

    db = tmp_path_factory.mktemp("relay-web") / "store.db"
    with Store.open(str(db)) as store:
        sid = wb.add_relay_scan(store)
    c = make_client(db)
    setup_admin(c)
    assert login(c).status_code == 303
    return {"db": db, "scan": sid, "client": c}


def relay_table(body: str) -> list[tuple[str, str, str, str]]:
    """(address, endpoint, state, protocol and port) of every row of the relay table."""
    rows = re.findall(r'<tr class="relay-row st-([a-z_]+)" data-address="([^"]+)">(.*?)</tr>', body, re.S)
    out = []
    for state, address, cells in rows:
        endpoint = re.search(r'<td class="v relay-endpoint"><code>([^<]*)</code>', cells).group(1)
        proto = re.search(r'<td class="v">([^<]*)</td>', cells).group(1).strip()
        out.append((html.unescape(address), html.unescape(endpoint), state, proto))
    return out


def test_relay_page_lists_every_path_with_its_endpoint(relay_store):
    c, sid = relay_store["client"], relay_store["scan"]
    r = c.get("/relay", params={"scan": sid, "lang": "en"})
    assert r.status_code == 200
    rows = relay_table(r.text)
    assert rows == [
        (RELAY_DC, f"smb://{RELAY_DC}", "not_vulnerable", "SMB2 445"),
        (RELAY_DC, f"http://{RELAY_DC}:80/", "vulnerable", "HTTP 80"),
        (RELAY_DC, f"https://{RELAY_DC}:443/certsrv/", "likely", "HTTPS 443"),
        (RELAY_DC, f"ldap://{RELAY_DC}:389", "unknown", "LDAP 389"),
        (RELAY_XSS, f"smb://{RELAY_XSS}", "vulnerable", "SMB2 445"),
        (RELAY_XSS, f"smb://{RELAY_XSS}", "vulnerable", "SMB1 445"),
        (RELAY_LONG, f"smb://{RELAY_LONG}", "vulnerable", "SMB2 445"),
        (RELAY_SIGNED, f"smb://{RELAY_SIGNED}", "not_vulnerable", "SMB2 445"),
        # a workgroup host: HTTP, HTTPS and LDAP not probed (never absent, never "refused")
        (RELAY_WG, f"smb://{RELAY_WG}", "not_vulnerable", "SMB2 445"),
        (RELAY_WG, f"http://{RELAY_WG}:80", "not_probed", "HTTP 80"),
        (RELAY_WG, f"https://{RELAY_WG}:443", "not_probed", "HTTPS 443"),
        (RELAY_WG, f"ldap://{RELAY_WG}:389", "not_probed", "LDAP 389"),
    ]
    text = visible(r.text)
    assert "relay accepted" in text and "relay likely" in text and "not visible" in text and "relay refused" in text
    assert "not probed" in text and "HTTP 80: not probed (workgroup host: a relayed domain logon has no account" in text
    # the counts: hosts accepting NTLM relayed to SMB, hosts with any relay path
    assert "Hosts accepting NTLM relayed to SMB: 2; hosts with a relay path: 5." in html.unescape(r.text)
    assert "AD CS web enrollment offers Negotiate, NTLM" in r.text
    # the page reads the same rows the HTML report's section shows (one computation)
    from smbsentry.report.relay import relay_section
    from smbsentry.store import Store

    with Store.open(str(relay_store["db"])) as store:
        section = relay_section(store.hosts(sid, limit=None), "en")
    assert [(x.address, x.endpoint, x.state) for x in section["rows"]] == [(a, e, s) for a, e, s, _ in rows]
    # the nav leads here, and the overview links it
    assert 'href="/relay" id="nav-relay">Relay paths</a>' in r.text
    assert f'href="/relay?scan={sid}" id="overview-relay"' in c.get("/", params={"scan": sid}).text
    # filtered by state; a bad state is 400
    likely = relay_table(c.get("/relay", params={"scan": sid, "state": "likely"}).text)
    assert likely == [(RELAY_DC, f"https://{RELAY_DC}:443/certsrv/", "likely", "HTTPS 443")]
    skipped = relay_table(c.get("/relay", params={"scan": sid, "state": "not_probed"}).text)
    assert [(a, s, p) for a, _, s, p in skipped] == [(RELAY_WG, "not_probed", p) for p in ("HTTP 80", "HTTPS 443", "LDAP 389")]
    assert c.get("/relay", params={"scan": sid, "state": "not_probed"}).text.count('value="not_probed" selected') == 1
    assert RELAY_WG not in c.get(f"/scans/{sid}/relay-list.txt").text  # not probed is no relay target
    assert c.get("/relay", params={"scan": sid, "state": "evil"}).status_code == 400
    assert c.get("/relay", params={"scan": 999}).status_code == 404


def test_relay_page_in_chinese(relay_store):
    c, sid = relay_store["client"], relay_store["scan"]
    body = c.get("/relay", params={"scan": sid, "lang": "zh"}).text
    try:
        text = visible(body)
        assert "中继路径" in text and "可被中继" in text and "很可能可被中继" in text and "拒绝中继" in text and "无法看到" in text
        assert "下载中继目标列表" in text and "SMB 接受中继 NTLM 的主机：2 台；有中继路径的主机：5 台。" in text
        assert "未探测" in text and "：未探测（工作组主机：被中继的域登录在这里没有可登录的账户" in text
        assert "not probed" not in body and "workgroup host" not in body
        assert "AD CS Web 注册页面提供" in body and "SMB2 协商：签名" in body
        assert not english_found(text, ZH_WORDS), english_found(text, ZH_WORDS)
        assert "web enrollment" not in body and "relay accepted" not in body and "negotiate: signing" not in body
        # the same rows as in English, only the words differ
        assert [r[:3] for r in relay_table(body)] == [r[:3] for r in relay_table(c.get("/relay", params={"scan": sid, "lang": "en"}).text)]
        host = visible(c.get(f"/hosts/{sid}/{RELAY_DC}", params={"lang": "zh"}).text)
        assert "中继路径" in host and "本次扫描的全部中继路径" in host and not english_found(host, ZH_WORDS)
    finally:
        c.get("/", params={"lang": "en"})


def test_host_page_shows_its_relay_paths(relay_store):
    c, sid = relay_store["client"], relay_store["scan"]
    body = c.get(f"/hosts/{sid}/{RELAY_DC}").text
    assert body.index('id="findings"') < body.index('id="relay-heading"') < body.index(f'href="/relay?scan={sid}" id="relay-all"')
    rows = relay_table(body)
    assert [(e, s) for _, e, s, _ in rows] == [(f"smb://{RELAY_DC}", "not_vulnerable"), (f"http://{RELAY_DC}:80/", "vulnerable"),
                                              (f"https://{RELAY_DC}:443/certsrv/", "likely"), (f"ldap://{RELAY_DC}:389", "unknown")]
    assert {a for a, *_ in rows} == {RELAY_DC}  # its own paths only
    assert "LDAP signing and LDAPS channel binding are not visible without a bind" in body
    # one SMB host: only its SMB path; the host table's address and name columns are not repeated
    signed = c.get(f"/hosts/{sid}/{RELAY_SIGNED}").text
    assert relay_table(signed) == [(RELAY_SIGNED, f"smb://{RELAY_SIGNED}", "not_vulnerable", "SMB2 445")]
    assert "relay-name" not in signed
    with_paths = c.get(f"/hosts/{sid}/{RELAY_XSS}").text
    assert [s for *_, s, _ in relay_table(with_paths)] == ["vulnerable", "vulnerable"]


def test_host_page_without_relay_paths_says_so(client, seeded):
    body = client.get(f"/hosts/{seeded['second']}/{seeded['silent']}").text  # SMB open, nothing negotiated
    assert '<p id="relay-none">No relay path seen for this host' in body and not relay_table(body)


def test_relay_list_download_is_the_cli_relay_list(relay_store, tmp_path):
    c, sid, db = relay_store["client"], relay_store["scan"], relay_store["db"]
    r = c.get(f"/scans/{sid}/relay-list.txt")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="relay-targets-{sid}.txt"'
    out = tmp_path / "relay.txt"
    wb.cli("report", sid, "--format", "json", "-o", os.devnull, "--relay-list", out, "--db", db)
    assert r.content == out.read_bytes()  # byte for byte what `smbsentry report N --relay-list FILE` wrote
    assert r.content.decode() == (f"{RELAY_XSS}\n{RELAY_LONG}\nhttp://{RELAY_DC}:80/\nhttps://{RELAY_DC}:443/certsrv/\n")
    page = c.get("/relay", params={"scan": sid}).text
    assert f'href="/scans/{sid}/relay-list.txt" id="relay-download"' in page
    assert c.get("/scans/999/relay-list.txt").status_code == 404


def test_relay_list_download_of_the_lab_scan(client, seeded, tmp_path):
    """The lab's real scan: the download and the CLI's list agree, and it names the lab hosts without required signing."""
    sid = seeded["second"]
    out = tmp_path / "relay.txt"
    wb.cli("report", sid, "--format", "json", "-o", os.devnull, "--relay-list", out, "--db", seeded["db"])
    got = client.get(f"/scans/{sid}/relay-list.txt").content
    assert got == out.read_bytes() and XSS_ADDRESS.encode() + b"\n" in got  # SMB1 signing disabled


def test_relay_pages_escape_hostile_names(relay_store):
    c, sid = relay_store["client"], relay_store["scan"]
    for path in (f"/relay?scan={sid}", f"/hosts/{sid}/{RELAY_XSS}", f"/relay?scan={sid}&lang=zh"):
        body = c.get(path).text
        assert XSS not in body and "<b>WWW" not in body, path
    body = c.get("/relay", params={"scan": sid, "lang": "en"}).text
    assert '<td class="h relay-name">&lt;script&gt;alert(1)&lt;/script&gt;</td>' in body
    assert '<td class="h relay-name">&lt;b&gt;' + "W" * 190 + "&lt;/b&gt;</td>" in body
    assert '<table id="relay" class="wrap">' in body  # table-layout fixed, cells wrap (style.css)
