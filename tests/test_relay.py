"""NTLM relay paths: SMB per dialect from real Samba's negotiate (`server
signing` mandatory or not), HTTP endpoints that offer NTLM from a real HTTP
server on loopback, the relay target list (`report --relay-list`) and the
report's "relay paths" section in both languages."""

from __future__ import annotations

import asyncio
import http.server
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import pytest
from test_checks_unit import FakeHost, one, windows

from smbsentry.services import http as http_probe

CLI = [sys.executable, "-m", "smbsentry.cli"]


@dataclass
class ServicesHost(FakeHost):
    services: dict = field(default_factory=dict)


def run(*args, db):
    return subprocess.run([*CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def stored(samba_smb1_guest, samba_signing_required, tmp_path_factory):
    db = tmp_path_factory.mktemp("relay") / "relay.db"
    p = run("scan", samba_smb1_guest.address, samba_signing_required.address, "--ports", "445", "--checks", "default,ntlm-relay",
            "--timeout", "2", "-q", "--format", "json", "-o", str(db.parent / "scan.json"), db=db)
    assert p.returncode == 0, p.stderr
    return db


def test_relay_list_names_the_host_without_required_signing(stored, samba_smb1_guest, samba_signing_required, tmp_path):
    out = tmp_path / "relay.txt"
    p = run("report", "--format", "json", "--relay-list", str(out), "-o", str(tmp_path / "r.json"), db=stored)
    assert p.returncode == 0, p.stderr
    assert out.read_text("utf-8") == f"{samba_smb1_guest.address}\n"


def test_the_finding_names_each_dialect(stored, samba_smb1_guest, samba_signing_required):
    import json

    hosts = {h["address"]: h for h in json.loads((stored.parent / "scan.json").read_text("utf-8"))}
    relay = {a: next(f for f in h["findings"] if f["id"] == "ntlm-relay") for a, h in hosts.items()}
    open_ = relay[samba_smb1_guest.address]
    assert open_["status"] == "vulnerable" and "SMB2 negotiate: signing enabled" in open_["evidence"]
    assert "SMB1 negotiate: signing" in open_["evidence"]  # this preset speaks SMB1 too: its own path
    closed = relay[samba_signing_required.address]
    # a real standalone Samba names itself as its NTLM domain (Samba's target name off a domain): a workgroup
    # host, so HTTP, HTTPS and LDAP were not probed, and signing required alone does not make it "safe"
    # (a domain member requiring signing, probed, is not_vulnerable: test_relay_gate's lab WS2022-SIGN)
    ident = hosts[samba_signing_required.address]["identity"]
    assert ident["source"] == "smb2-ntlm" and ident["netbios_domain"] == ident["netbios_name"] == samba_signing_required.netbios_name
    assert ident["netbios_domain"] != samba_signing_required.workgroup  # the smb.conf workgroup is not what NTLM says
    assert not any(hosts[samba_signing_required.address]["services"].get(k) for k in ("http", "https", "ldap"))
    assert closed["status"] == "unknown" and closed["evidence"].startswith("SMB2 negotiate: signing required; HTTP 80: not probed (")
    assert closed["reason"].startswith("HTTP, HTTPS, LDAP: not probed (workgroup host: ")


def test_report_has_a_relay_section_in_both_languages(stored, samba_smb1_guest):
    en = run("report", "--lang", "en", db=stored)
    zh = run("report", "--lang", "zh", db=stored)
    assert en.returncode == 0 and zh.returncode == 0, (en.stderr, zh.stderr)
    assert '<section id="relay">' in en.stdout and "Relay paths" in en.stdout and "relay accepted" in en.stdout
    assert "中继路径" in zh.stdout and "可被中继" in zh.stdout and "拒绝中继" in zh.stdout
    assert "relay accepted" not in zh.stdout and "SMB2 协商：签名" in zh.stdout


def test_relay_list_to_an_unwritable_place_is_one_line(stored, tmp_path):
    p = run("report", "--format", "json", "--relay-list", str(tmp_path / "missing" / "relay.txt"), db=stored)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr


class _Ntlm(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(401)
        self.send_header("WWW-Authenticate", "Negotiate")
        self.send_header("WWW-Authenticate", "NTLM")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_OPTIONS = do_PROPFIND = do_GET

    def log_message(self, *a):
        pass


@pytest.fixture()
def ntlm_http():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ntlm)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address
    srv.shutdown()


def test_http_offering_ntlm_is_a_relay_path(ntlm_http):
    address, port = ntlm_http
    facts = asyncio.run(http_probe.probe(address, port, 3.0))
    assert facts["status"] == 401 and facts["auth"] == ["Negotiate", "NTLM"]
    r = windows(20348)
    r.smb2.signing = "required"
    f = one("ntlm-relay", ServicesHost(r, services={"http": facts, "ldap": {"port": 389, "domain_controller": True}}))
    assert f.status == "vulnerable" and f.port == port
    assert f"HTTP {port}: WWW-Authenticate offers Negotiate, NTLM" in f.evidence
    assert "LDAP 389: a domain controller; LDAP signing and LDAPS channel binding are not visible without a bind" in f.evidence
    # without the HTTP path, the domain controller's LDAP keeps the answer open: never "safe"
    f = one("ntlm-relay", ServicesHost(r, services={"ldap": {"port": 389, "domain_controller": True}}))
    assert f.status == "unknown" and "bind" in f.reason


def test_hostile_www_authenticate_values_add_no_scheme():
    assert http_probe.auth_schemes('Digest realm="x, NTLM y", Basic realm="a"') == ["Digest", "Basic"]
    assert http_probe.auth_schemes("NTLMX, ntlm") == ["NTLM"]
    assert http_probe.auth_schemes("A" * 100000 + ", NTLM") == []  # bounded: only the first 2 KiB are read


class _Enrollment(http.server.BaseHTTPRequestHandler):
    """IIS with AD CS web enrollment as an anonymous GET sees it: / open, /certsrv/ asking for NTLM."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.startswith("/certsrv"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Negotiate")
            self.send_header("WWW-Authenticate", "NTLM")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<html><title>IIS Windows Server</title></html>"
        self.send_response(200)
        self.send_header("Server", "Microsoft-IIS/10.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture()
def enrollment_https(tmp_path):
    import shutil
    import ssl

    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("needs openssl for the server's certificate")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(tmp_path / "c.pem"), "-days", "2", "-subj", "/CN=ca1.example.org"],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Enrollment)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address
    srv.shutdown()


def test_https_certificate_enrollment_is_an_esc8_path(enrollment_https):
    from smbsentry.checks.relay import relay_urls
    from smbsentry.services import probe_services

    address, port = enrollment_https
    services = asyncio.run(probe_services(address, {443}, 3.0, port_map={443: port}))
    https = services["https"]
    assert https["tls"] and https["status"] == 200 and "auth" not in https  # / is open: no NTLM there
    assert https["certsrv"] == {"path": "/certsrv/", "status": 401, "auth": ["Negotiate", "NTLM"]}
    r = windows(20348)
    r.smb2.signing = "required"
    f = one("ntlm-relay", ServicesHost(r, services={"https": https}))
    # over TLS, Extended Protection may bind NTLM to the channel: likely, never "vulnerable" on sight
    assert f.status == "likely" and f.port == 443
    assert ("HTTPS 443 /certsrv/: AD CS web enrollment offers Negotiate, NTLM (ESC8: a relayed logon can enroll "
            "a certificate); Extended Protection (channel binding) is not visible without a logon") in f.evidence
    assert relay_urls({"address": address, "services": {"https": https}}) == [f"https://{address}:443/certsrv/"]


def test_plain_http_enrollment_is_open_and_listed(ntlm_http):
    from smbsentry.report.relay import relay_list, relay_section

    address, port = ntlm_http
    facts = asyncio.run(http_probe.probe(address, port, 3.0))
    assert facts["certsrv"]["auth"] == ["Negotiate", "NTLM"]  # this server asks NTLM everywhere
    rec = {"address": address, "ports": {"445": "open"}, "smb2": {"signing": "required"}, "services": {"http": facts}}
    assert relay_list([rec]) == f"http://{address}:{port}/\nhttp://{address}:{port}/certsrv/\n"
    zh = relay_section([rec], "zh")
    details = " ".join(str(r[6]) for r in zh["rows"])
    assert "AD CS Web 注册页面提供" in details and "web enrollment" not in details
    assert [r[5] for r in zh["rows"]] == ["拒绝中继", "可被中继", "可被中继"]


def test_a_tls_failure_is_one_line(ntlm_http):
    from smbsentry.services import ServiceError

    address, port = ntlm_http  # plain HTTP: the TLS handshake fails
    with pytest.raises(ServiceError) as exc:
        asyncio.run(http_probe.probe_https(address, port, 2.0))
    assert str(exc.value).startswith(f"{port}: ") and "\n" not in str(exc.value)
