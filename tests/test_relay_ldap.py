"""LDAP signing and LDAPS channel binding from the opt-in failed binds
(services/ldap_bind.py), against a real OpenLDAP (Debian's slapd) started on
loopback with a temporary config: one that requires integrity for simple binds
(`security simple_bind=64`: a cleartext bind is refused with
confidentialityRequired before its credentials are judged) and one that does
not.  slapd's rootDSE is given a domainControllerFunctionality value (the
`rootDSE` directive), so the scan takes it for a domain controller and runs
the binds only where the flag allows them.  Active Directory's own answers
(strongerAuthRequired, SEC_E_BAD_BINDINGS in the diagnostic, the Sicily NTLM
exchange) are checked on built replies and a small TLS peer: no AD here.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_checks_unit import FakeHost, one, windows

from smbsentry.protocol import ntlm
from smbsentry.services import ServiceError, ldap, ldap_bind, probe_services

SLAPD = shutil.which("slapd") or ("/usr/sbin/slapd" if os.path.exists("/usr/sbin/slapd") else None)
OPENSSL = shutil.which("openssl")
needs_slapd = pytest.mark.skipif(not SLAPD or not OPENSSL, reason="needs Debian's slapd and openssl "
                                 "(scripts/install-system-deps installs them)")

CONF = """include /etc/ldap/schema/core.schema
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'domainControllerFunctionality' EQUALITY integerMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.2 NAME 'defaultNamingContext' EQUALITY distinguishedNameMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 SINGLE-VALUE )
pidfile {d}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
rootDSE {d}/dse.ldif
{security}
database mdb
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw secret
directory {d}/db
"""


@dataclass
class Slapd:
    address: str
    ldap_port: int
    ldaps_port: int
    proc: subprocess.Popen
    port_map: dict = field(default_factory=dict)


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _wait(address: str, port: int, proc: subprocess.Popen, log: Path) -> None:
    end = time.monotonic() + 15
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"slapd exited: {log.read_text(errors='replace')[-800:]}")
        try:
            socket.create_connection((address, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail("slapd did not listen")


def start_slapd(tmp: Path, integrity: bool, address: str = "127.0.0.1", ports: tuple[int, int] | None = None) -> Slapd:
    (tmp / "db").mkdir(parents=True)
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp / "key.pem"),
                    "-out", str(tmp / "cert.pem"), "-days", "2", "-subj", "/CN=dc1.example.org"],
                   check=True, capture_output=True, timeout=60)
    (tmp / "dse.ldif").write_text("dn:\ndomainControllerFunctionality: 7\ndefaultNamingContext: dc=example,dc=org\n")
    (tmp / "slapd.conf").write_text(CONF.format(d=tmp, security="security simple_bind=64" if integrity else ""))
    lp, sp = ports or (_free_port(address), _free_port(address))
    log = tmp / "slapd.log"
    proc = subprocess.Popen([SLAPD, "-f", str(tmp / "slapd.conf"), "-h", f"ldap://{address}:{lp}/ ldaps://{address}:{sp}/",
                             "-d", "0"], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _wait(address, lp, proc, log)
    _wait(address, sp, proc, log)
    return Slapd(address, lp, sp, proc, {389: lp, 636: sp})


def stop(server: Slapd) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)


@pytest.fixture(scope="module", params=[True, False], ids=["integrity-required", "integrity-not-required"])
def slapd(request, tmp_path_factory):
    if not SLAPD or not OPENSSL:
        pytest.skip("needs Debian's slapd and openssl (scripts/install-system-deps installs them)")
    server = start_slapd(tmp_path_factory.mktemp("slapd"), request.param)
    server.integrity = request.param
    yield server
    stop(server)


def facts_of(server: Slapd, bind_probes: bool) -> dict:
    out = asyncio.run(probe_services(server.address, {389}, 5.0, port_map=server.port_map, bind_probes=bind_probes))
    return out["ldap"]


def test_the_rootdse_names_no_policy_and_no_bind_is_sent_without_the_flag(slapd):
    facts = facts_of(slapd, bind_probes=False)
    assert facts["domain_controller"] and facts["attributes"]["namingContexts"] == ["dc=example,dc=org"]
    assert "binds" not in facts  # the anonymous read alone; the binds need --allow-failed-logon


def test_the_cleartext_bind_shows_whether_integrity_is_required(slapd):
    binds = facts_of(slapd, bind_probes=True)["binds"]
    sign = binds["signing"]
    assert sign["opt_in"] == ldap_bind.OPT_IN and "--allow-failed-logon" in sign["opt_in"]
    if slapd.integrity:
        assert (sign["result_code"], sign["required"]) == (13, True) and sign["result"] == "confidentialityRequired"
    else:
        assert (sign["result_code"], sign["required"]) == (49, False)
    # not Active Directory: LDAPS takes a simple bind, which carries no channel binding token
    cb = binds["channel_binding"]
    assert cb["port"] == 636 and cb["result_code"] == 49 and cb["enforced"] is None and "over TLS" in cb["method"]


def test_the_relay_check_reads_the_binds(slapd):
    facts = facts_of(slapd, bind_probes=True)
    r = windows(20348)
    r.smb2.signing = "required"
    f = one("ntlm-relay", ServicesHost(r, services={"ldap": facts}))
    if slapd.integrity:
        assert f.status == "unknown" and "opt-in binds" in f.reason
        assert ("LDAP 389: a simple bind with bogus credentials was refused with confidentialityRequired (13): "
                "signing required (opt-in probe)") in f.evidence
    else:
        assert f.status == "vulnerable" and f.port == 389
        assert "signing not required (opt-in probe)" in f.evidence
    assert "LDAPS 636: a bind with bogus credentials answered invalidCredentials (49)" in f.evidence


@dataclass
class ServicesHost(FakeHost):
    services: dict = field(default_factory=dict)


CLI = [sys.executable, "-m", "smbsentry.cli"]


@needs_slapd
@pytest.mark.skipif(os.geteuid() != 0, reason="slapd on the well-known ports 389/636 needs root")
def test_scan_with_and_without_the_flag(tmp_path):
    """The scan itself: without --allow-failed-logon the DC's LDAP stays unknown and no bind reaches slapd;
    with it the refusal decides, and the report lists the path in both languages."""
    address = "127.23.89.1"  # an address of its own: the scan asks the well-known ports
    server = start_slapd(tmp_path / "s", integrity=False, address=address, ports=(389, 636))
    try:
        rows = {}
        for flag in ((), ("--allow-failed-logon",)):
            out = tmp_path / f"scan{len(flag)}.json"
            p = subprocess.run([*CLI, "scan", address, "--ports", "445", "--checks", "ntlm-relay", "--timeout", "2",
                                "-q", "--format", "json", "-o", str(out), "--db", str(tmp_path / "s.db"), *flag],
                               capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, p.stderr
            rows[bool(flag)] = json.loads(out.read_text("utf-8"))[0]
        off = next(f for f in rows[False]["findings"] if f["id"] == "ntlm-relay")
        assert off["status"] == "unknown" and "--allow-failed-logon" in off["reason"]
        assert "binds" not in rows[False]["services"]["ldap"]
        on = next(f for f in rows[True]["findings"] if f["id"] == "ntlm-relay")
        assert on["status"] == "vulnerable" and "signing not required (opt-in probe)" in on["evidence"]
        zh = subprocess.run([*CLI, "report", "--lang", "zh", "--db", str(tmp_path / "s.db")],
                            capture_output=True, text=True, timeout=180)
        assert zh.returncode == 0, zh.stderr
        assert "未要求签名（经许可的探测）" in zh.stdout and "signing not required" not in zh.stdout
        lst = tmp_path / "relay.txt"
        p = subprocess.run([*CLI, "report", "--format", "json", "-o", str(tmp_path / "r.json"), "--relay-list", str(lst),
                            "--db", str(tmp_path / "s.db")], capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stderr
        assert lst.read_text("utf-8") == f"ldap://{address}:389\n"
    finally:
        stop(server)


# -- Active Directory's answers, built -------------------------------------------------

AD_INTEGRITY = ("00002028: LdapErr: DSID-0C090259, comment: The server requires binds to turn on integrity "
                "checking if SSL\\TLS are not already active on the connection, data 0, v4563")
AD_BAD_BINDINGS = "80090346: LdapErr: DSID-0C09070D, comment: AcceptSecurityContext error, data 80090346, v4563"
AD_BAD_USER = "8009030C: LdapErr: DSID-0C090569, comment: AcceptSecurityContext error, data 52e, v4563"


def test_ad_refusals_are_read():
    reply = ldap_bind.parse_bind_response(ldap_bind.bind_response(1, 8, AD_INTEGRITY))
    assert reply["result"] == "strongerAuthRequired" and ldap_bind.signing_reading(reply) is True
    reply = ldap_bind.parse_bind_response(ldap_bind.bind_response(2, 49, AD_BAD_BINDINGS))
    assert ldap_bind.binding_reading(reply, ntlm_bind=True) is True
    reply = ldap_bind.parse_bind_response(ldap_bind.bind_response(2, 49, AD_BAD_USER))
    assert ldap_bind.binding_reading(reply, ntlm_bind=True) is False
    assert ldap_bind.binding_reading(reply, ntlm_bind=False) is None  # a simple bind carries no token
    reply = ldap_bind.parse_bind_response(ldap_bind.bind_response(1, 53, "unwilling"))
    assert ldap_bind.signing_reading(reply) is None


def test_hostile_bind_replies_are_errors():
    for bad in (b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", b"HTTP/1.1 400 Bad Request\r\n\r\n",
                ldap.search_done(1, 0), b"\x30\x03\x02\x01\x01"):
        with pytest.raises(ServiceError):
            ldap_bind.parse_bind_response(bad)
    long = ldap_bind.parse_bind_response(ldap_bind.bind_response(1, 49, "x\x00" * 5000))
    assert len(long["diagnostic"]) <= ldap_bind.MAX_DIAGNOSTIC and "\x00" not in long["diagnostic"]


def _tls_server_context(tmp: Path) -> ssl.SSLContext:
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp / "k.pem"),
                    "-out", str(tmp / "c.pem"), "-days", "2", "-subj", "/CN=dc1"], check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    return ctx


@pytest.mark.skipif(not OPENSSL, reason="needs openssl for the peer's certificate")
@pytest.mark.parametrize("diagnostic, enforced", [(AD_BAD_BINDINGS, True), (AD_BAD_USER, False)])
def test_the_ldaps_ntlm_bind_sends_no_channel_binding_token(tmp_path, diagnostic, enforced):
    """A TLS peer answering as a DC does: a CHALLENGE in the Sicily negotiate's matchedDN, then the refusal."""
    seen = []

    async def peer(reader, writer):
        first = await reader.read(4096)
        seen.append(first)
        chal = ntlm.challenge(os.urandom(8), ntlm.CLIENT_FLAGS, "EXAMPLE",
                              [(2, "EXAMPLE".encode("utf-16-le")), (1, "DC1".encode("utf-16-le"))])
        writer.write(ldap_bind.bind_response(1, 0, "", chal))
        await writer.drain()
        second = await reader.read(4096)
        seen.append(second)
        writer.write(ldap_bind.bind_response(2, 49, diagnostic))
        await writer.drain()
        writer.close()

    async def main():
        srv = await asyncio.start_server(peer, "127.0.0.1", 0, ssl=_tls_server_context(tmp_path))
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            return await ldap_bind.binding_probe("127.0.0.1", 636, 5.0, True, "dc=example,dc=org", real_port=port)

    fact = asyncio.run(main())
    assert fact["enforced"] is enforced and fact["port"] == 636 and fact["opt_in"] == ldap_bind.OPT_IN
    assert ntlm.SIGNATURE + b"\x01\x00\x00\x00" in seen[0] and b"\x8a" in seen[0]  # Sicily negotiate
    auth = ntlm.parse_authenticate(seen[1][seen[1].index(ntlm.SIGNATURE):])
    assert auth.user.startswith("smbsentry-probe-")
    ids = _av_ids(auth)
    assert ids[:2] == [2, 1] and ids[-1] == 0 and 10 not in ids  # MsvAvChannelBindings (10) absent: no token


def _av_ids(auth) -> list[int]:
    """The AV pair ids in the NTLMv2 response (after NTProofStr (16) and the fixed blob header (28))."""
    info = auth.nt_response[44:]
    ids, off = [], 0
    while off + 4 <= len(info):
        av_id, ln = int.from_bytes(info[off:off + 2], "little"), int.from_bytes(info[off + 2:off + 4], "little")
        ids.append(av_id)
        if av_id == 0:
            break
        off += 4 + ln
    return ids
