"""SMB over QUIC discovery against real QUIC peers (aioquic): a server offering
ALPN smb, one offering only h3, a silent UDP port, hostile datagrams and a
flood; the lab's Server 2025 peer end to end; the check's verdicts and their
Chinese rendering; the check stays out of the default scan."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import time
from dataclasses import dataclass, field

import pytest

pytest.importorskip("aioquic")

from smbsentry import i18n  # noqa: E402
from smbsentry.checks.registry import select  # noqa: E402
from smbsentry.lab.profile_model import QuicConfig  # noqa: E402
from smbsentry.lab.quic import configuration  # noqa: E402
from smbsentry.model import HostResult  # noqa: E402
from smbsentry.scan.fingerprint import _unwanted_services  # noqa: E402
from smbsentry.scan.host import split_ports  # noqa: E402
from smbsentry.services import QUIC_PORTS, ServiceError, probe_services, quic  # noqa: E402

HOST = "127.0.0.1"
NAMES = ("fs1.example.test", "files.example.test")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Responder(asyncio.DatagramProtocol):
    """A hostile UDP peer: answers each datagram with `reply(data)` (a list of datagrams)."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.seen = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data, addr) -> None:
        self.seen += 1
        for d in self.reply(data):
            self.transport.sendto(d, addr)


async def with_server(kind: str, body, port: int | None = None):
    """Run `body(port)` with a peer of `kind` on a loopback UDP port."""
    from aioquic.asyncio import serve

    port = port or free_udp_port()
    loop = asyncio.get_running_loop()
    if kind in ("smb", "h3", "no-alpn"):
        alpn = () if kind == "no-alpn" else (kind,)
        server = await serve(HOST, port, configuration=configuration(QuicConfig(alpn, NAMES)))
        close = server.close
    else:
        replies = {"silent": lambda d: [],
                   "garbage": lambda d: [bytes([0x40]) + os.urandom(60)],  # a short header: no QUIC key opens it
                   "flood": lambda d: [os.urandom(1200) for _ in range(100)]}[kind]
        transport, _ = await loop.create_datagram_endpoint(lambda: Responder(replies), local_addr=(HOST, port))
        close = transport.close
    try:
        return await body(port)
    finally:
        close()


def probe(kind: str, timeout: float = 1.5):
    return asyncio.run(with_server(kind, lambda port: quic.probe(HOST, port, timeout)))


# -- the probe against real and hostile peers ----------------------------------------------------


def test_alpn_smb_offered_and_the_certificate_is_read():
    out = probe("smb")
    assert out["offered"] is True and out["alpn"] == "smb" and out["tls"] == "TLS 1.3"
    cert = out["certificate"]
    assert cert["common_name"] == NAMES[0] and cert["subject"] == f"CN={NAMES[0]}"
    assert cert["names"] == list(NAMES) and cert["issuer"] == cert["subject"] and cert["self_signed"] is True
    before = dt.datetime.fromisoformat(cert["not_before"].replace("Z", "+00:00"))
    after = dt.datetime.fromisoformat(cert["not_after"].replace("Z", "+00:00"))
    assert (after - before).days == 365 and before < dt.datetime.now(dt.timezone.utc) < after
    assert len(cert["sha256"]) == 64 and cert["chain_length"] == 1


def test_a_quic_server_without_alpn_smb_is_not_offered():
    out = probe("h3")
    assert out["offered"] is False and out["close"]["error_code"] == quic.NO_APPLICATION_PROTOCOL
    assert "error" not in out  # a QUIC service answered: not "could not see"


def test_a_server_that_selects_no_alpn_is_not_offered():
    out = probe("no-alpn")  # aioquic's client ends such a handshake itself (no_application_protocol)
    assert out["offered"] is False and out["close"]["error_code"] == quic.NO_APPLICATION_PROTOCOL


def test_a_closed_port_is_not_offered_with_the_icmp_answer():
    out = asyncio.run(quic.probe(HOST, free_udp_port(), 1.5))
    assert out["offered"] is False and out["unreachable"] is True and "ICMP port unreachable" in out["error"]


@pytest.mark.parametrize("kind, words", [("silent", "no answer in 1s (a filtered or silent UDP port)"),
                                         ("garbage", "none of them a QUIC handshake"),
                                         ("flood", "datagrams or 256 KiB without a completed handshake")])
def test_silence_and_hostile_datagrams_are_could_not_see(kind, words):
    start = time.monotonic()
    with pytest.raises(ServiceError) as err:
        probe(kind, timeout=1.0)
    assert words in str(err.value)
    assert time.monotonic() - start < 3.0  # bounded by the timeout, however much the peer sends
    assert i18n.translated(str(err.value), "zh"), str(err.value)


def test_probe_services_records_the_error_and_the_port():
    async def body(port):
        return await probe_services(HOST, {443}, 1.0, port_map={443: port})

    facts = asyncio.run(with_server("garbage", body))
    assert "none of them a QUIC handshake" in facts["quic"]["error"] and facts["rdp"] is None
    offered = asyncio.run(with_server("smb", body))["quic"]
    assert offered["offered"] and offered["port"] == 443  # the well-known port, whatever was bound in the test


# -- the check's verdicts ---------------------------------------------------------------------------


@dataclass
class FakeHost:
    services: dict
    result: HostResult = field(default_factory=lambda: HostResult("127.0.0.9"))
    credentials: object | None = None
    scan_date: dt.date = dt.date(2026, 12, 7)
    facts: dict = field(default_factory=dict)


def verdicts(facts, scan_date=dt.date(2026, 12, 7)):
    (check,) = select("smb-over-quic")
    return {f.id: f for f in asyncio.run(check.run(FakeHost({"quic": facts}, scan_date=scan_date)))}


def cert(**kw):
    base = {"subject": "CN=fs1.example.test", "common_name": "fs1.example.test", "names": list(NAMES),
            "issuer": "CN=Corp Issuing CA 1, DC=corp, DC=example, DC=test", "not_before": "2026-01-01T00:00:00Z",
            "not_after": "2027-01-01T00:00:00Z", "self_signed": False, "sha256": "00" * 32, "chain_length": 2}
    return {**base, **kw}


def test_offered_is_a_low_finding_with_the_certificate_as_evidence():
    got = verdicts({"port": 443, "offered": True, "alpn": "smb", "tls": "TLS 1.3", "certificate": cert()})
    main, c = got["smb-over-quic"], got["smb-over-quic-cert"]
    assert (main.status, main.severity, main.port) == ("vulnerable", "low", 443)
    assert "ALPN smb" in main.evidence and "certificate names fs1.example.test, files.example.test" in main.evidence
    assert "issuer CN=Corp Issuing CA 1" in main.evidence and "valid from 2026-01-01T00:00:00Z to 2027-01-01T00:00:00Z" in main.evidence
    assert c.status == "not_vulnerable" and c.details["certificate"]["chain_length"] == 2
    expired = verdicts({"port": 443, "offered": True, "certificate": cert()}, dt.date(2027, 3, 1))["smb-over-quic-cert"]
    assert expired.status == "vulnerable" and expired.evidence.startswith("certificate expired on 2027-01-01")
    early = verdicts({"port": 443, "offered": True, "certificate": cert(self_signed=True)}, dt.date(2025, 6, 1))
    assert early["smb-over-quic-cert"].evidence.startswith("certificate not valid before 2026-01-01; certificate self-signed")


def test_not_offered_and_could_not_see_are_different_answers():
    refused = verdicts({"port": 443, "offered": False, "close": {"error_code": 0x178, "reason": "No common ALPN protocols"}})
    assert refused["smb-over-quic"].status == "not_vulnerable" and "no_application_protocol" in refused["smb-over-quic"].evidence
    closed = verdicts({"port": 443, "offered": False, "unreachable": True, "error": "..."})
    assert closed["smb-over-quic"].status == "not_vulnerable" and "nothing listens" in closed["smb-over-quic"].evidence
    silent = verdicts({"error": "quic 443/udp: no answer in 5s (a filtered or silent UDP port)"})
    assert silent["smb-over-quic"].status == "unknown" and "silent UDP port" in silent["smb-over-quic"].reason
    assert set(silent) == set(refused) == set(closed) == {"smb-over-quic"}  # no certificate verdict without SMB over QUIC


def test_a_peer_cannot_split_the_evidence_into_sentences_of_its_own():
    got = verdicts({"port": 443, "offered": True, "certificate": cert(subject="CN=x; certificate self-signed")})
    assert "CN=x;certificate self-signed" in got["smb-over-quic"].evidence


def test_every_sentence_has_a_chinese_rendering():
    texts = set()
    for facts, day in (({"port": 443, "offered": True, "certificate": cert()}, dt.date(2026, 12, 7)),
                       ({"port": 443, "offered": True, "certificate": cert(self_signed=True)}, dt.date(2028, 1, 1)),
                       ({"port": 443, "offered": True, "certificate": cert()}, dt.date(2025, 1, 1)),
                       ({"port": 443, "offered": True, "certificate": None}, dt.date(2026, 12, 7)),
                       ({"port": 443, "offered": False, "close": {"error_code": 0x178}}, dt.date(2026, 12, 7)),
                       ({"port": 443, "offered": False, "close": {"error_code": 0x0A}}, dt.date(2026, 12, 7)),
                       ({"port": 443, "offered": False, "alpn": None, "close": None}, dt.date(2026, 12, 7)),
                       ({"port": 443, "offered": False, "unreachable": True}, dt.date(2026, 12, 7))):
        texts |= {t for f in verdicts(facts, day).values() for t in (f.evidence, f.reason) if t}
    (check,) = select("smb-over-quic")
    texts |= {f.reason for f in asyncio.run(check.run(FakeHost({})))}
    assert len(texts) >= 9
    missing = [t for t in texts if not i18n.translated(t, "zh")]
    assert not missing, missing
    zh = i18n.sentence("UDP 443: QUIC handshake completed with ALPN smb (TLS 1.3); certificate subject CN=a; issuer CN=a; "
                       "valid from 2026-01-01T00:00:00Z to 2027-01-01T00:00:00Z; self-signed", "zh")
    assert "自签名" in zh and "颁发者 CN=a" in zh and "handshake" not in zh


# -- not in the default scan --------------------------------------------------------------------


def test_opt_in_only_the_default_scan_sends_no_datagram():
    assert "smb-over-quic" not in [c.id for c in select("default")]
    assert "smb-over-quic" in [c.id for c in select("all")]
    assert QUIC_PORTS == (443,)  # the knowledge base's port
    assert split_ports((445, 139), select("default")) == ((445, 139), frozenset())
    assert split_ports((445, 139), select("smb-over-quic"))[1] == frozenset({443})
    # 443 is also HTTPS (TCP): the relay check asks for it, but the QUIC probe is not sent for it
    assert 443 in split_ports((445,), select("ntlm-relay"))[1]
    assert _unwanted_services(select("ntlm-relay")) == {"quic"}
    assert _unwanted_services(select("smb-over-quic")) == {"https"}  # the QUIC check alone opens no TCP 443
    assert _unwanted_services(select("all")) == frozenset()
    assert split_ports((445, 443), select("default")) == ((445,), frozenset({443}))  # asked by number: not SMB
    assert _unwanted_services(select("default")) == frozenset()  # ... both HTTPS and QUIC probed


# -- the lab's Server 2025 peer, end to end (UDP 443 needs root: run in a network namespace) -------------


LAB = ("win2025-smb-quic", "win2019")
LAB_RANGE = "127.61.0.1-127.61.0.2"
LAB_PORT = 44561


@pytest.fixture(scope="module")
def lab_scan(tmp_path_factory):
    from smbsentry.lab.background import BackgroundLab
    from smbsentry.scan.fingerprint import RateLimiter, ScanOptions, scan_host

    manifest = tmp_path_factory.mktemp("quic") / "manifest.json"
    try:
        lab = BackgroundLab(LAB_RANGE, ports=[LAB_PORT], mix=",".join(f"{n}=1" for n in LAB), bind_mode="per-address",
                            manifest_path=manifest, quic=443).start()
    except OSError as exc:
        pytest.skip(f"cannot bind the lab: {exc}")
    try:
        if not lab.lab.quic or not lab.lab.quic.bound:
            pytest.skip(f"cannot bind UDP 443 here (root in a namespace of one's own): {lab.lab.quic and lab.lab.quic.unbound}")
        checks = tuple(select("default,smb-over-quic"))
        _, service = split_ports((LAB_PORT,), checks)

        async def go():
            return await asyncio.gather(*(scan_host(a, ScanOptions(ports=(LAB_PORT,), timeout=2.0, checks=checks,
                                                                   service_ports=service), RateLimiter(None))
                                          for a in lab.range))

        results = asyncio.run(go())
        import json

        return {r.address: r for r in results}, json.loads(manifest.read_text())
    finally:
        lab.stop()


def test_the_lab_peer_is_reported_as_the_manifest_says(lab_scan):
    from smbsentry.lab.verify import score

    results, manifest = lab_scan
    right, total, wrong = score([r.to_dict() for r in results.values()], manifest)
    assert (right, total) == (2, 2), wrong
    w25 = results["127.61.0.1"]
    assert manifest["127.61.0.1"]["expected"]["smb-over-quic"] == "vulnerable"
    found = {f.id: f for f in w25.findings}
    assert found["smb-over-quic"].status == "vulnerable" and found["smb-over-quic-cert"].status == "vulnerable"
    facts = w25.services["quic"]
    assert facts["certificate"]["names"] == ["fs2025-quic.corp.example.test", "files.example.test"]
    assert facts["certificate"]["self_signed"] and "certificate self-signed" in found["smb-over-quic-cert"].evidence
    other = {f.id: f for f in results["127.61.0.2"].findings}
    assert other["smb-over-quic"].status == "not_vulnerable" and "smb-over-quic-cert" not in other


def test_the_zh_report_shows_the_facts_without_english_status_words(lab_scan):
    from pagetext import english_found, english_words, visible
    from smbsentry.report.html import render

    results, _ = lab_scan
    html = render(list(results.values()), lang="zh")
    assert "fs2025-quic.corp.example.test" in html and "证书为自签名" in html and "颁发者" in html
    assert "提供 SMB over QUIC" in html  # the finding's Chinese title
    words = english_words()
    assert english_found(visible(html), words) == []
    en = render(list(results.values()), lang="en")
    assert "QUIC handshake completed with ALPN smb" in en and "certificate self-signed" in en


def test_the_plan_turns_it_off_or_restricts_it_with_a_rollback(lab_scan):
    from smbsentry.kb.store import kb
    from smbsentry.remediate.planner import plan

    results, _ = lab_scan
    for lang, words in (("en", "Set-SmbServerConfiguration -EnableSMBQUIC $false"), ("zh", "客户端证书")):
        p = plan([results["127.61.0.1"].to_dict()], lang)
        steps = {s.id: s for hp in p.hosts for s in hp.steps}
        assert "smb-quic-restrict" in steps and "smb-quic-certificate" in steps, sorted(steps)
        assert words in steps["smb-quic-restrict"].text
    a = kb().actions["smb-quic-restrict"]
    assert a.commands and set(a.rollback) == set(a.commands)
    clean = plan([results["127.61.0.2"].to_dict()], "en")
    assert not any(s.id.startswith("smb-quic") for hp in clean.hosts for s in hp.steps)
