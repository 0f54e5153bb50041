"""The dashboard over plain HTTP (fastapi's TestClient): login, CSRF, sessions, errors, API,
scan start limits, escaping.  The store holds real scans of a BackgroundLab on loopback."""

from __future__ import annotations

import html
import re
import sys
import time

import pytest


import webui as wb  # tests/webui.py: the dashboard's test fixtures
LAB_ALLOW, PASSWORD, XSS, XSS_ADDRESS = wb.LAB_ALLOW, wb.PASSWORD, wb.XSS, wb.XSS_ADDRESS
free_port, seed, start_lab = wb.free_port, wb.seed, wb.start_lab

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from smbsentry.web import create_app  # noqa: E402
from smbsentry.web.auth import hash_password, verify_password  # noqa: E402
from smbsentry.web.jobs import TargetRefused, check_targets, parse_allowed  # noqa: E402

TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def lab():
    port = free_port()
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
    for path in ("/", "/hosts", f"/hosts/{seeded['second']}/{seeded['win7']}", "/scans", "/plans/1/download", "/diff?old=1&new=2"):
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
    assert [s["id"] for s in scans][:2] == [seeded["second"], seeded["first"]]
    one = client.get(f"/api/scans/{seeded['second']}").json()
    assert one["hosts"] == 20 and one["stats"]["hosts"] == 20
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
    assert d["new_hosts"] == [XSS_ADDRESS]
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
    assert "KB4012212" in r.text and "systeminfo.txt" in r.text and "fix-ms17-010.ps1" in r.text
    r = client.get(f"/hosts/{seeded['second']}/127.54.0.10")
    assert "No plan for this host" in r.text and "/plans/1/download" in r.text
    plan = client.get("/plans/1/download")
    assert plan.json()["title"] == "Patch MS17-010" and "attachment" in plan.headers["content-disposition"]
    script = client.get("/plans/1/scripts/1")
    assert "wusa.exe" in script.text and 'filename="fix-ms17-010.ps1"' in script.headers["content-disposition"]
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
    local = client.get(f"/hosts/{seeded['second']}/{seeded['win7']}")
    assert "this machine (local scan)" in local.text
