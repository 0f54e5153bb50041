"""The dashboard against an unauthenticated attacker (issue 17): `smbsentry serve` as a real process on
127.0.0.1, spoken to over raw sockets and httpx from several loopback source addresses; its memory is read
from /proc.  Huge bodies, a foreign Host header (DNS rebinding), the setup token, login throttling and its
log, scrypt off the event loop, hashed session ids, the store's file mode, out-of-range integers, a broken
store's 500 page, HEAD, and `smbsentry users passwd`."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import webui as wb

httpx = pytest.importorskip("httpx")

PASSWORD = wb.PASSWORD
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Serve:
    """`smbsentry serve` in a subprocess; its stderr collected line by line."""

    def __init__(self, db: Path, *args: str) -> None:
        self.port = wb.free_port()
        self.db = db
        self.proc = subprocess.Popen([sys.executable, "-m", "smbsentry.cli", "serve", "--port", str(self.port),
                                      "--db", str(db), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, self.stderr
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"smbsentry serve did not start: {self.stderr}")

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, seconds: float = 10) -> re.Match:
        deadline = time.time() + seconds
        while time.time() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in: {self.stderr}")

    def peak_rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def client(self, source: str = "127.0.0.1", host: str | None = None) -> "httpx.Client":
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=f"http://{host or '127.0.0.1'}:{self.port}", transport=transport, timeout=30,
                            follow_redirects=False)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(tmp_path):
    s = Serve(tmp_path / "store.db")
    yield s
    s.stop()


def _token(resp) -> str:
    m = CSRF.search(resp.text)
    assert m, resp.text[:300]
    return m.group(1)


def _setup(s: Serve, c) -> None:
    token = s.wait_for_line(r"one-time setup token: (\S+)").group(1)
    r = c.post("/setup", data={"csrf": _token(c.get("/setup")), "token": token, "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 303, r.text


def _login(c, password: str = PASSWORD, user: str = "admin"):
    r = c.get("/login")
    if r.status_code != 200:
        return r
    return c.post("/login", data={"csrf": _token(r), "username": user, "password": password, "next": "/"})


def _raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(request)
        out = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and len(out) > 20 and _complete(out):
                    break
        except (ConnectionResetError, socket.timeout):
            pass
    return out


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _has_security_headers(head: str) -> bool:
    head = head.lower()
    return all(h in head for h in ("content-security-policy:", "x-content-type-options: nosniff",
                                   "x-frame-options: deny", "referrer-policy: no-referrer"))


# ---------------------------------------------------------------- body caps
@pytest.mark.parametrize("path,length", [("/login", 200 * 1024 * 1024), ("/setup", 5000), ("/scans/start", 65 * 1024 + 1)])
def test_a_body_over_the_cap_is_refused_before_it_is_read(server, path, length):
    """Only the headers are sent: the 413 arrives without the server waiting for (or keeping) a byte of the body."""
    req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
           f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n").encode()
    resp = _raw(server.port, req)
    assert _status(resp) == 413, resp[:300]
    head = resp.split(b"\r\n\r\n")[0].decode().lower()
    assert "connection: close" in head and _has_security_headers(head)


def test_a_200_mb_form_does_not_grow_the_server(server):
    """The issue's attack, with the body really sent: 3 x 200 MB to /login, and a chunked body without a length.
    The server's peak RSS (VmHWM) stays within a few MB."""
    with server.client() as c:
        assert c.get("/setup").status_code == 200     # warm: templates, the store, the form parser
    before = server.peak_rss_kb()
    # 5 fields of 200 KiB per MiB: 1,000 fields in 200 MiB, inside the form parser's own limits (1,000 fields of
    # 1 MiB each), so only a cap before the body is read keeps it out
    block = b"".join(b"f=" + b"x" * (200 * 1024 - 3) + b"&" for _ in range(5))
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), 10) as sock:
            sock.sendall(f"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         f"Content-Length: {200 * 1024 * 1024}\r\n\r\n".encode())
            sent = 0
            try:
                while sent < 200 * 1024 * 1024:
                    sock.sendall(block)
                    sent += len(block)
            except (BrokenPipeError, ConnectionResetError):
                pass   # the server hung up on it
    grown = server.peak_rss_kb() - before
    assert grown < 20 * 1024, f"peak RSS grew by {grown} kB"
    with socket.create_connection(("127.0.0.1", server.port), 10) as sock:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        got = b""
        try:
            for _ in range(150):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in got:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    grown = server.peak_rss_kb() - before
    assert grown < 20 * 1024, f"peak RSS grew by {grown} kB"
    with server.client() as c:   # and it still answers
        assert c.get("/setup").status_code == 200


# ---------------------------------------------------------------- Host allow-list, setup token
def test_foreign_host_names_are_refused(server):
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io", ""):
        resp = _raw(server.port, f"GET /setup HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert _status(resp) == 400, (host, resp[:200])
        assert b"does not answer to the host" in resp and _has_security_headers(resp.split(b"\r\n\r\n")[0].decode())
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "127.9.9.9", f"[::1]:{server.port}"):
        assert _status(_raw(server.port, f"GET /setup HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())) == 200, host


def test_allowed_host_and_public_url_add_names(tmp_path):
    s = Serve(tmp_path / "s.db", "--allowed-host", "scanner.corp.example", "--public-url", "https://dash.corp.example:8443")
    try:
        for host, want in (("scanner.corp.example", 200), ("dash.corp.example", 200), ("other.corp.example", 400)):
            assert _status(_raw(s.port, f"GET /setup HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())) == want, host
        assert "open https://dash.corp.example:8443/setup and give this one-time setup token" in s.stderr
    finally:
        s.stop()


def test_a_rebinding_dns_name_gets_nothing_in_chromium(server, tmp_path):
    """Headless Chromium resolves rebind.test to 127.0.0.1 (as a rebinding DNS server would, once the attacker's
    page has loaded): the dashboard answers that origin 400, to a page load and to the page's own fetch()."""
    wb.chromium_paths()
    d = wb.chrome(tmp_path / "profile", tmp_path / "downloads", extra_args=("--host-resolver-rules=MAP rebind.test 127.0.0.1",))
    try:
        d.get(f"http://rebind.test:{server.port}/setup")
        assert "does not answer to the host 'rebind.test" in d.page_source
        status = d.execute_script(
            "return fetch('/setup', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},"
            " body: 'password=pwned-by-rebinding&password2=pwned-by-rebinding'}).then(r => r.status)")
        assert status == 400
        d.get(f"http://127.0.0.1:{server.port}/setup")     # the same browser, by the loopback name
        assert d.find_element("id", "token") and "First run" in d.title
        wb.shot(d, "11-setup-token")
    finally:
        d.quit()
    from smbsentry.store import Store
    from smbsentry.web.auth import Auth

    with Store.open(str(server.db)) as store:
        assert not Auth(store.engine).has_admin()


def test_setup_needs_the_token_printed_on_the_console(server):
    line = server.wait_for_line(r"no admin yet: open (\S+) and give this one-time setup token: (\S+)")
    assert line.group(1) == f"http://127.0.0.1:{server.port}/setup"
    with server.client() as c:
        form = c.get("/setup")
        assert 'name="token"' in form.text and line.group(2) not in form.text   # asked for, never shown
        r = c.post("/setup", data={"csrf": _token(form), "password": PASSWORD, "password2": PASSWORD, "token": "guess"})
        assert r.status_code == 403 and "Wrong setup token" in r.text
        assert c.get("/setup").status_code == 200   # still no admin
        _setup(server, c)
        assert c.get("/setup").status_code == 302
    server.wait_for_line(r"setup refused from 127\.0\.0\.1: wrong setup token \(1 failures\)")
    server.wait_for_line(r"admin password set from 127\.0\.0\.1")


# ---------------------------------------------------------------- login throttling and logging
def test_failed_logins_are_throttled_per_address_and_per_user_and_logged(server):
    with server.client() as c:
        _setup(server, c)
    a, b, d = (server.client(f"127.0.0.{i}") for i in (2, 3, 4))
    try:
        for _ in range(4):                          # 3 free failures, the 4th imposes a 1 s delay
            assert _login(a, "wrong password 1").status_code == 401
        r = _login(a, "wrong password 2")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "Too many failed attempts" in r.text
        r = _login(a, PASSWORD)                      # the right password is not even checked now
        assert r.status_code == 429 and "smbsentry_session" not in r.headers.get("set-cookie", "")
        r = _login(b, PASSWORD)                      # another address, same user: throttled per user too
        assert r.status_code == 429
        r = _login(a, "whatever", user="someone")   # same address, another user: throttled per address
        assert r.status_code == 429
        r = _login(d, "x" * 12, user="nobody")      # neither: heard (and wrong)
        assert r.status_code == 401
        time.sleep(float(r.headers.get("retry-after", 0)) + 1.2)
        r = _login(b, PASSWORD)
        assert r.status_code == 303                 # a success clears the counts
        assert _login(b, PASSWORD).status_code == 303
    finally:
        for x in (a, b, d):
            x.close()
    server.wait_for_line(r"login failed for user 'admin' from 127\.0\.0\.2 \(4 failures; next attempt heard in 1s\)")
    server.wait_for_line(r"login refused for user 'admin' from 127\.0\.0\.3: too many failures")
    server.wait_for_line(r"login failed for user 'nobody' from 127\.0\.0\.4 \(1 failures\)")
    server.wait_for_line(r"login of user 'admin' from 127\.0\.0\.3")


def test_lockout_after_repeated_failures(tmp_path):
    """Short delays here (the defaults are 1 s growing to 60 s, lockout after 10 for 15 minutes): the lockout holds
    for its window even for the right password, then lifts."""
    from fastapi.testclient import TestClient

    from smbsentry.web import create_app
    from smbsentry.web.login import Throttle

    app = create_app(str(tmp_path / "l.db"), [], throttle=Throttle(free=1, base=0.01, max_delay=0.02,
                                                                    lockout_after=4, lockout=1.5))
    c = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
    app.state.auth.create_admin(PASSWORD)
    codes = []
    for _ in range(4):
        time.sleep(0.05)
        codes.append(_login(c, "wrong password!").status_code)
    assert codes == [401, 401, 401, 401]
    time.sleep(0.1)
    r = _login(c, PASSWORD)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 2
    time.sleep(1.6)
    assert _login(c, PASSWORD).status_code == 303


def test_throttle_delays_grow_and_reset():
    from smbsentry.web.login import Throttle

    now = [1000.0]
    t = Throttle(clock=lambda: now[0])
    delays = [t.failed("10.0.0.1", "admin")[1] for _ in range(9)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 32]
    assert t.failed("10.0.0.1", "admin") == (10, 900)          # locked out
    assert t.wait("10.0.0.9", "ADMIN") == 900                   # the user, from anywhere (names fold case)
    assert t.wait("10.0.0.1", "other") == 900                   # the address, for any user
    assert t.wait("10.0.0.9", "other") == 0
    now[0] += 901
    assert t.wait("10.0.0.1", "admin") == 0
    t.failed("10.0.0.1", "admin")
    now[0] += 901 + 900                                         # failures older than the window are forgotten
    assert t.failed("10.0.0.1", "admin") == (1, 0)
    small = Throttle(limit=3, clock=lambda: now[0])
    for i in range(10):
        small.failed(f"10.1.0.{i}", f"u{i}")
    assert len(small._records["address"]) == 3 and len(small._records["user"]) == 3   # memory bounded


def test_password_checks_do_not_stall_other_requests(server):
    """A login whose scrypt takes ~1.5 s (the stored hash asks for p=32): a page requested while it runs is
    answered before the login is.  With scrypt on the event loop the page waits for the login."""
    with server.client() as c:
        _setup(server, c)
    salt = os.urandom(16)
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=32, dklen=32)
    b64 = lambda x: base64.urlsafe_b64encode(x).decode().rstrip("=")  # noqa: E731
    with sqlite3.connect(server.db) as conn:
        conn.execute("update web_users set password=? where name='admin'", (f"scrypt$16384$8$32${b64(salt)}${b64(digest)}",))
    done: dict[str, float] = {}
    with server.client() as c, server.client() as other:
        form = c.get("/login")

        def slow_login() -> None:
            r = c.post("/login", data={"csrf": _token(form), "username": "admin", "password": "not it", "next": "/"})
            assert r.status_code == 401
            done["login"] = time.monotonic()

        t = threading.Thread(target=slow_login)
        t.start()
        time.sleep(0.3)
        assert other.get("/static/style.css").status_code == 200
        done["page"] = time.monotonic()
        t.join(30)
    assert done["page"] < done["login"], "the page waited for the password check"


# ---------------------------------------------------------------- what the store gives away
def test_session_ids_are_stored_hashed_and_the_store_is_0600(server):
    with server.client() as c:
        _setup(server, c)
        assert _login(c).status_code == 303
        cookie = c.cookies["smbsentry_session"]
        assert c.get("/api/scans").status_code == 200
        sid = cookie.rpartition(".")[0]
        with sqlite3.connect(server.db) as conn:
            stored = [row[0] for row in conn.execute("select id from web_sessions")]
            key = bytes.fromhex(conn.execute("select value from web_secrets where name='cookie'").fetchone()[0])
        assert sid not in stored and hashlib.sha256(sid.encode()).hexdigest() in stored
        # someone who can read the store signs a stored id with the store's own cookie key: no session
        import hmac

        for forged_sid in stored:
            sig = base64.urlsafe_b64encode(hmac.new(key, forged_sid.encode(), hashlib.sha256).digest()).decode().rstrip("=")
            with server.client() as thief:
                thief.cookies.set("smbsentry_session", f"{forged_sid}.{sig}")
                assert thief.get("/api/scans").status_code == 401
    mode = server.db.stat().st_mode & 0o777
    assert mode == 0o600, oct(mode)
    wal = Path(str(server.db) + "-wal")
    assert not wal.exists() or wal.stat().st_mode & 0o077 == 0


def test_a_store_readable_by_others_is_reported(tmp_path):
    from smbsentry.store import Store

    Store.open(str(tmp_path / "open.db")).close()
    os.chmod(tmp_path / "open.db", 0o644)
    s = Serve(tmp_path / "open.db")
    try:
        s.wait_for_line(r"the store .*open\.db is readable by others \(mode 644\): chmod 600 ")
    finally:
        s.stop()


# ---------------------------------------------------------------- parameters, errors, HEAD
def test_out_of_range_integers_are_400_or_404_with_headers(server):
    with server.client() as c:
        _setup(server, c)
        assert _login(c).status_code == 303
        big = "9" * 30
        cases = {f"/hosts?scan={big}": 400, f"/?scan={2**31}": 400, f"/hosts?page={big}": 400,
                 f"/api/scans/{big}": 404, f"/hosts/{2**40}/127.0.0.1": 404, f"/diff?old=1&new={big}": 400,
                 f"/api/scans/1/hosts?offset={2**33}": 400, f"/jobs/{big}": 404, f"/plans/{big}/download": 404,
                 f"/api/diff?old={big}&new=1": 400, "/hosts?scan=" + "9" * 5000: 400, f"/relay?scan={big}": 400,
                 f"/relay?page={big}": 400, f"/scans/{big}/relay-list.txt": 404}
        for path, want in cases.items():
            r = c.get(path)
            assert r.status_code == want, (path, r.status_code, r.text[:200])
            assert r.headers["x-frame-options"] == "DENY" and "content-security-policy" in r.headers


def test_a_broken_store_gives_an_error_page_with_the_security_headers(server):
    """A store whose hosts table is gone (a damaged file): 500, as a page or JSON, with the security headers."""
    from smbsentry.store import Store

    with server.client() as c:
        _setup(server, c)
        assert _login(c).status_code == 303
        with Store.open(str(server.db)) as store:
            sid = store.begin_scan(["127.0.0.1"])
        with sqlite3.connect(server.db) as conn:
            conn.execute("drop table hosts")
        close = {"Connection": "close"}   # uvicorn drops the connection after an application error
        r = c.get(f"/api/scans/{sid}/hosts", headers=close)
        assert r.status_code == 500 and r.json() == {"detail": "internal error"}
        assert r.headers["x-frame-options"] == "DENY" and "content-security-policy" in r.headers
        r = c.get(f"/hosts?scan={sid}", headers=close)
        assert r.status_code == 500 and "Error 500" in r.text and "Traceback" not in r.text
        for h in ("x-frame-options", "content-security-policy", "x-content-type-options", "referrer-policy"):
            assert h in r.headers
        assert r.headers["cache-control"] == "no-store"


def test_head_works(server):
    with server.client() as c:
        for path in ("/setup", "/static/style.css", "/"):
            get, head = c.get(path), c.head(path)
            assert head.status_code == get.status_code, path
            assert head.content == b""
            if get.status_code == 200:
                assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
            assert "content-security-policy" in head.headers


# ---------------------------------------------------------------- smbsentry users passwd
def _passwd(db: Path, *args: str, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "smbsentry.cli", "users", "passwd", "--db", str(db), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_users_passwd_changes_the_admin_password_and_ends_its_sessions(server):
    with server.client() as c:
        _setup(server, c)
        assert _login(c).status_code == 303
        assert c.get("/api/scans").status_code == 200
        new = "a brand new passphrase"
        r = _passwd(server.db, "--password-stdin", stdin=new + "\n")
        assert r.returncode == 0 and r.stderr.strip() == "password of admin changed; its sessions ended", r.stderr
        assert c.get("/api/scans").status_code == 401          # logged out
    with server.client("127.0.0.5") as c:
        assert _login(c, PASSWORD).status_code == 401
    with server.client("127.0.0.6") as c:
        assert _login(c, new).status_code == 303


def test_users_passwd_bad_input(tmp_path):
    db = tmp_path / "p.db"
    r = _passwd(db, "--password-stdin", stdin="short\n")
    assert r.returncode == 2 and r.stderr.strip() == "smbsentry: the password needs at least 10 characters"
    r = _passwd(db, stdin="")
    assert r.returncode == 2 and "--password-stdin" in r.stderr
    r = _passwd(db, "--user", "bob", "--password-stdin", stdin="long enough password\n")
    assert r.returncode == 2 and "no dashboard user 'bob'" in r.stderr
    r = _passwd(db, "--password-stdin", stdin="long enough password\n")   # a first admin, without the dashboard
    assert r.returncode == 0 and "set (user created)" in r.stderr
    assert db.stat().st_mode & 0o777 == 0o600
