"""Service probes against the service lab (loopback only), garbage/silent hosts, and nmap agreement."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from smbsentry.lab.services import ServiceLab, load_profiles
from smbsentry.lab.services import server as lab_server
from smbsentry.protocol import ntlm
from smbsentry.services import DEFAULT_PORTS, ServiceError, credssp, der, http, kerberos, nbns, probe_services, rdp

RANGE = "127.77.1.1-9"
HOSTS = {"svc-winxp-rdp": "127.77.1.1", "svc-win2003-iis6": "127.77.1.2", "svc-win2008r2-dc": "127.77.1.3",
         "svc-exchange2007": "127.77.1.4", "svc-domino85": "127.77.1.5", "svc-mdaemon101": "127.77.1.6",
         "svc-win2019-modern": "127.77.1.7", "svc-garbage": "127.77.1.8", "svc-silent": "127.77.1.9"}
# high ports, so these tests do not need the real ones
PORT_MAP = {3389: 43389, 80: 40080, 443: 40443, 88: 40088, 25: 40025, 143: 40143, 1352: 41352, 3264: 43264, 3000: 43000,
            1000: 41000, 137: 40137}


def scan_all() -> dict:
    async def go():
        async with ServiceLab(RANGE, port_map=PORT_MAP) as lab:
            assert not lab.unbound, lab.unbound
            out = {}
            for addr, name in lab.hosts().items():
                out[name] = await probe_services(addr, set(DEFAULT_PORTS), 1.0, realm="corp.example.com", port_map=PORT_MAP)
            return out
    return asyncio.run(go())


@pytest.fixture(scope="module")
def facts() -> dict:
    return scan_all()


def test_rdp_xp_legacy(facts):
    r = facts["svc-winxp-rdp"]["rdp"]
    assert r["negotiation"] == "none" and r["standard_rdp_security"] and r["selected_protocol"] == "RDP"


def test_rdp_nla(facts):
    r = facts["svc-win2008r2-dc"]["rdp"]
    assert r["selected_protocol"] == "HYBRID" and r["nla_supported"]
    assert "ntlm_error" not in r and r["credssp_version"] == 3
    for name in ("svc-win2008r2-dc", "svc-win2019-modern"):
        win, n = load_profiles()["profiles"][name]["windows"], facts[name]["rdp"]["ntlm"]
        assert n["netbios_name"] == win["netbios_name"] and n["netbios_domain"] == win["netbios_domain"]
        assert n["dns_domain"] == win.get("dns_domain", win["netbios_domain"].lower())
        assert n["os_version"] == win["os_version"] and n["os_build"] == win["os_build"]
    assert "ntlm" not in facts["svc-winxp-rdp"]["rdp"] and "ntlm_error" not in facts["svc-winxp-rdp"]["rdp"]


HYBRID_CONFIRM = bytes.fromhex("030000130ed00000123400") + bytes.fromhex("02 1f 0800 02000000")


async def _broken_nla(mode: str, reader, writer) -> None:
    """An RDP server that confirms HYBRID and then breaks the NLA step in one of several ways."""
    try:
        await reader.read(1024)
        writer.write(HYBRID_CONFIRM)
        await writer.drain()
        if mode == "close":
            return
        if mode == "cleartext":  # answer the ClientHello with non-TLS bytes
            await reader.read(4096)
            writer.write(lab_server.GARBAGE)
        elif mode == "silent":  # read the ClientHello, never answer it
            while await reader.read(4096):
                pass
            return
        else:
            await writer.start_tls(lab_server.tls_server_context())
            await reader.read(4096)
            writer.write({"garbage": lab_server.GARBAGE, "error": der.seq(der.ctx(0, der.integer(6)), der.ctx(4, der.integer(0xC000006D))),
                          "not-ntlm": credssp.ts_request(b"\x60\x03\x02\x01\x00")}[mode])
        await writer.drain()
        await reader.read(1024)
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.mark.parametrize("mode, reason", [("close", "tls:"), ("cleartext", "tls:"), ("silent", "tls: handshake timed out"),
                                          ("garbage", "credssp:"), ("error", "errorCode 0xc000006d"), ("not-ntlm", "CHALLENGE")])
def test_rdp_nla_failure_keeps_x224_facts(mode, reason):
    async def go():
        srv = await asyncio.start_server(lambda r, w: _broken_nla(mode, r, w), "127.0.0.1", 0)
        async with srv:
            return await rdp.probe("127.0.0.1", srv.sockets[0].getsockname()[1], 0.5)
    r = asyncio.run(go())
    assert r["selected_protocol"] == "HYBRID" and r["nla_supported"] and "ntlm" not in r
    assert reason in r["ntlm_error"], r["ntlm_error"]


def test_credssp_ts_request_roundtrip():
    ts = credssp.parse(credssp.ts_request(ntlm.negotiate(), 2))
    assert ts.version == 2 and ntlm.message_type(ts.token) == 1 and ts.error_code is None
    # nmap's rdp-ntlm-info sends version 0x60 with a Windows 10 NEGOTIATE
    blob = bytes.fromhex("3037a003020160a130302e302ca02a0428") + ntlm.negotiate()
    assert credssp.complete(blob) and not credssp.complete(blob[:-1]) and credssp.parse(blob).version == 0x60
    for bad in (b"\x04\x00", b"\x30\x03\xa1\x01\x00", der.seq(der.ctx(0, der.integer(2)), der.ctx(1, der.seq(der.integer(1))))):
        with pytest.raises(ServiceError):
            credssp.parse(bad)


def test_http_iis6_webdav(facts):
    h = facts["svc-win2003-iis6"]["http"]
    assert h["product"] == "iis" and h["version"] == "6.0" and h["webdav"] and h["propfind_status"] == 207
    assert h["dav"] == "1, 2" and "DAV" in h["ms_author_via"]


def test_http_iis10_no_webdav(facts):
    h = facts["svc-win2019-modern"]["http"]
    assert h["version"] == "10.0" and not h["webdav"] and h["propfind_status"] == 405


def test_kerberos_kdc(facts):
    k = facts["svc-win2008r2-dc"]["kerberos"]
    assert k["kdc"] and k["krb_error"] == "KDC_ERR_C_PRINCIPAL_UNKNOWN" and k["realm"] == "CORP.EXAMPLE.COM"


def test_smtp_exchange_ntlm(facts):
    s = facts["svc-exchange2007"]["smtp"]
    assert s["exchange"] == "2007+" and "NTLM" in s["auth"]
    assert s["ntlm"]["os_version"] == "5.2" and s["ntlm"]["os_build"] == 3790 and s["ntlm"]["netbios_name"] == "EXCH07"


def test_imap_domino(facts):
    i = facts["svc-domino85"]["imap"]
    assert i["product"] == "domino" and i["version"] == "8.5.3"


def test_notes_and_worldclient(facts):
    assert facts["svc-domino85"]["notes"]["ports"]["1352"]["open"]
    assert facts["svc-winxp-rdp"]["notes"]["ports"]["3264"]["open"]
    w = facts["svc-mdaemon101"]["worldclient"]
    assert w["worldclient"] and w["version"] == "10.1.0" and w["port"] == 3000


def test_nbns(facts):
    n = facts["svc-win2008r2-dc"]["nbns"]
    assert n["computer_name"] == "DC01" and n["workgroup"] == "CORP" and n["domain_controller"] and n["mac"] == "00:15:5d:01:02:03"
    assert not facts["svc-winxp-rdp"]["nbns"]["domain_controller"]


@pytest.mark.parametrize("name", ["svc-garbage", "svc-silent"])
def test_bad_hosts_give_errors(facts, name):
    for key in ("rdp", "http", "kerberos", "smtp", "imap", "worldclient", "nbns"):
        assert set(facts[name][key]) == {"error"}, (name, key, facts[name][key])


def test_refused_is_an_error_entry(facts):
    assert "refused" in facts["svc-winxp-rdp"]["http"]["error"]


def test_every_connection_waits_for_the_rate_limiter():
    calls = []

    async def acquire():
        calls.append(1)

    async def go():
        async with ServiceLab(RANGE, port_map=PORT_MAP):
            # as the scanner asks for the Shadow Brokers services: 443 is HTTPS there, not QUIC
            return await probe_services("127.77.1.5", set(DEFAULT_PORTS), 1.0, port_map=PORT_MAP, rate=acquire,
                                        skip=frozenset({"quic"}))

    out = asyncio.run(go())
    assert out["imap"]["product"] == "domino"
    # rdp http https kerberos smtp imap notes(1352, 3264) nbns ldap, and worldclient tries 3000 then 1000
    # (no HTTP answers on this host, so neither asks /certsrv/)
    assert len(calls) == 12, len(calls)


def test_not_asked_is_none():
    out = asyncio.run(probe_services("127.77.1.250", {3389}, 0.5))
    assert out["http"] is None and "error" in out["rdp"]


def test_parsers_reject_garbage():
    for fn, data in ((rdp.parse_confirm, b"\x03\x00\x00\x05\x00"), (kerberos.parse_reply, b"\x30\x80"),
                     (nbns.parse_status, b"\x00" * 11), (http.parse_response, b"SSH-2.0-x\r\n\r\n"),
                     (der.decode, b"\x30\x84\xff\xff\xff\xff")):
        with pytest.raises(ServiceError):
            fn(data)


def test_kerberos_as_req_roundtrip():
    msg = kerberos.as_req("corp.example.com", "someone", 7)
    node = der.decode(msg)
    body = node.children[0].child(4)
    assert body.child(2).as_str() == "CORP.EXAMPLE.COM" and body.child(7).as_int() == 7


# -- nmap on the real ports ---------------------------------------------------------

NMAP_RANGE = "127.77.2.1-7"


def _nmap(args: list[str]) -> ET.Element:
    out = subprocess.run(["nmap", "-Pn", "-n", "-oX", "-", *args], capture_output=True, text=True, timeout=180, check=True)
    return ET.fromstring(out.stdout)


@pytest.fixture(scope="module")
def real_lab():
    if shutil.which("nmap") is None:
        pytest.skip("nmap not installed")
    loop = asyncio.new_event_loop()
    lab = ServiceLab(NMAP_RANGE)
    loop.run_until_complete(lab.start())
    if lab.unbound:
        loop.run_until_complete(lab.stop())
        loop.close()
        pytest.skip(f"cannot bind the real ports: {lab.unbound[:3]}")
    import threading

    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield lab
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)
    loop.run_until_complete(lab.stop())
    loop.close()


def _port(root, addr, port, proto="tcp"):
    for h in root.iter("host"):
        if any(a.get("addr") == addr for a in h.iter("address")):
            for p in h.iter("port"):
                if p.get("portid") == str(port) and p.get("protocol") == proto:
                    return p
    return None


def test_nmap_webdav_agrees(real_lab):
    root = _nmap(["-p80", "--script", "http-webdav-scan", "127.77.2.2", "127.77.2.7"])
    iis6 = _port(root, "127.77.2.2", 80)
    script = iis6.find("script[@id='http-webdav-scan']")
    assert script is not None and "WebDAV" in script.get("output", "") or "PROPFIND" in script.get("output", "")
    ours = asyncio.run(http.probe("127.77.2.2", 80, 2.0))
    assert ours["webdav"]
    iis10 = _port(root, "127.77.2.7", 80)
    assert iis10.find("script[@id='http-webdav-scan']") is None
    assert not asyncio.run(http.probe("127.77.2.7", 80, 2.0))["webdav"]


def test_nmap_version_agrees(real_lab):
    root = _nmap(["-sV", "--version-light", "-p25,88,143,3389", "127.77.2.1", "127.77.2.3", "127.77.2.4", "127.77.2.5"])
    svc = {}
    for addr, port in (("127.77.2.4", 25), ("127.77.2.5", 143), ("127.77.2.3", 88), ("127.77.2.1", 3389)):
        p = _port(root, addr, port)
        s = p.find("service") if p is not None else None
        svc[(addr, port)] = (s.get("name"), s.get("product"), s.get("version")) if s is not None else None
    print(svc)
    assert svc[("127.77.2.4", 25)][0] == "smtp"
    assert svc[("127.77.2.5", 143)][0] == "imap"
    assert svc[("127.77.2.3", 88)][0] == "kerberos-sec"
    assert svc[("127.77.2.1", 3389)][0] == "ms-wbt-server"
    prod = svc[("127.77.2.5", 143)]
    if prod[1] and "Domino" in prod[1] and prod[2]:
        assert prod[2].startswith("8.5.3")
    if svc[("127.77.2.4", 25)][1]:
        assert "Exchange" in svc[("127.77.2.4", 25)][1]


def test_nmap_smtp_ntlm_info_agrees(real_lab):
    root = _nmap(["-p25", "--script", "smtp-ntlm-info", "127.77.2.4"])
    script = _port(root, "127.77.2.4", 25).find("script[@id='smtp-ntlm-info']")
    assert script is not None
    elems = {e.get("key"): e.text for e in script.iter("elem")}
    ours = asyncio.run(probe_services("127.77.2.4", {25}, 2.0))["smtp"]["ntlm"]
    assert elems.get("NetBIOS_Computer_Name") == ours["netbios_name"]
    assert elems.get("Product_Version", "").startswith(f"{ours['os_version']}.{ours['os_build']}")


def test_nmap_nbstat_agrees(real_lab):
    # -sU needs raw sockets; nmap prints the MAC without separators ("00155d010203")
    root = _nmap(["-sU", "-p137", "--script", "nbstat", "127.77.2.3"])
    out = next((s.get("output", "") for s in root.iter("script") if s.get("id") == "nbstat"), "")
    ours = asyncio.run(probe_services("127.77.2.3", {137}, 2.0))["nbns"]
    assert f"NetBIOS name: {ours['computer_name']}," in out, out
    assert ours["mac"].replace(":", "") in out.lower(), out
    for n in ours["names"]:
        assert f"{n['name']}<{n['suffix']:02x}>" in out, (n, out)


def test_nmap_rdp_ntlm_info_agrees(real_lab):
    hosts = [a for a, name in real_lab.hosts().items() if name in ("svc-win2008r2-dc", "svc-win2019-modern")]
    assert hosts
    root = _nmap(["-p3389", "--script", "rdp-ntlm-info", *hosts])
    for addr in hosts:
        script = _port(root, addr, 3389).find("script[@id='rdp-ntlm-info']")
        assert script is not None, addr
        elems = {e.get("key"): e.text for e in script.iter("elem")}
        ours = asyncio.run(rdp.probe(addr, 3389, 2.0))["ntlm"]
        assert elems.get("NetBIOS_Computer_Name") == ours["netbios_name"], (addr, elems)
        assert elems.get("Product_Version") == f"{ours['os_version']}.{ours['os_build']}", (addr, elems)
        assert elems.get("DNS_Domain_Name") == ours["dns_domain"], (addr, elems)
        # NT 6.x sends its clock (MsvAvTimestamp): nmap prints it as System_Time
        assert ours["time"] and elems.get("System_Time", "")[:10] == ours["time"][:10], (addr, elems, ours["time"])
