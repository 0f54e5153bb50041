"""The emulated lab, driven by the project's own client code.

Every profile is served from one in-process lab (per-address sockets on
127.50.0.x:44555, far from the test Samba servers on 127.21.x) and scanned
with `scan_host`: what the scanner learns must be what the profile says,
and the profile's values must be the ones in the capture frames it cites.
The sans-I/O host is also fed junk to show it never raises.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import struct
import uuid
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smbsentry.lab import profiles
from smbsentry.lab.background import BackgroundLab
from smbsentry.lab.host import HostConnection
from smbsentry.lab.mix import LabConfigError, parse_mix, parse_ports, parse_range
from smbsentry.lab.server import Lab, write_manifest
from smbsentry.protocol import netbios, ntlm, smb1, smb1_tree, smb2, spnego, status
from smbsentry.scan.connection import Connection, ScanError
from smbsentry.scan.fingerprint import RateLimiter, ScanOptions, scan_host
from smbsentry.scan.session import Smb1Client, Smb2Client

PORT = 44555
PORT_139 = 44139
TIMEOUT = 1.0

ALL = profiles.ordered_names()
RANGE = f"127.50.0.1-127.50.0.{len(ALL)}"
NORMAL = [n for n in ALL if profiles.get(n).behaviour == "normal"]
SMB1_SESSION = [n for n in NORMAL if profiles.get(n).smb1 and profiles.get(n).smb1.on(445)
                and (profiles.get(n).access.allows("anonymous", "smb1") or profiles.get(n).access.allows("guest", "smb1"))]


@pytest.fixture(scope="module")
def lab():
    """Every profile once, in DEFAULT_ORDER, on 44555 (role 445) and 44139 (role 139)."""
    mix = ",".join(f"{n}=1" for n in ALL)
    try:
        # SMB over QUIC on the real UDP 443 where it can be bound (root, a namespace of our own)
        running = BackgroundLab(RANGE, ports=[PORT, f"{PORT_139}=139"], mix=mix, bind_mode="per-address", quic=443).start()
    except OSError as exc:
        pytest.skip(f"cannot bind the lab on 127.50.0.x: {exc}")
    yield running
    running.stop()


def address_of(lab, name: str) -> str:
    for i in range(len(lab.range)):
        if lab.lab.mix.name_at(i) == name:
            return lab.range.address(i)
    raise KeyError(name)


def run(coro):
    return asyncio.run(coro)


def scan(address: str, **kw):
    return run(scan_host(address, ScanOptions(ports=(PORT,), timeout=TIMEOUT, **kw), RateLimiter(None)))


# -- profiles: data that cites its sources --------------------------------------------


def test_every_profile_loads_names_its_sources_and_expectations():
    assert len(ALL) >= 17
    for name in ALL:
        p = profiles.get(name)
        assert p.sources, name
        assert p.expected.get("ms17-010"), f"{name}: every profile says what MS17-010 must be"
        if p.behaviour == "normal":
            assert len(p.netbios_name) <= 15
            assert {"ms17-010", "doublepulsar", "smb-signing-not-required", "smb-null-session",
                    "smb-guest-access"} <= set(p.expected), name
            roles = {int(k.split(":")[1]) for k in p.expected if k.startswith("smbv1-enabled:")}
            assert roles == {445, 139}, name
        if p.kind == "windows":
            assert {"ms08-067", "ms09-050", "ms10-061"} <= set(p.expected), name
            assert "eol-os" in p.expected_findings(), name
        if p.kind == "samba":
            assert "cve-2017-7494" in p.expected and p.samba_version


def test_profile_files_are_strict():
    base = json.loads((resources.files("smbsentry.lab") / "profiles" / "samba-4.17.json").read_text())
    for broken in ({**base, "typo": 1}, {**base, "expected": {"ms17-010": "maybe"}},
                   {**base, "expected": {"smbv1-enabled": "vulnerable"}}, {**base, "ms17_010": "sometimes"}):
        with pytest.raises(profiles.ProfileError):
            profiles.parse_profile(broken)


def test_doublepulsar_key_formula_and_architecture():
    sig = profiles.get("win7-doublepulsar").doublepulsar
    assert sig == bytes.fromhex("794b5da400000000")
    assert profiles.doublepulsar_key(sig) == 0x31F1CB56
    # eternalblue-success-unpatched-win7.pcap frame 566 carries another implant's bytes
    assert profiles.doublepulsar_key(bytes.fromhex("07b7ada5")) == 0x4CECC3AB


def test_eol_expectation_follows_the_scan_date():
    import datetime as dt

    p = profiles.get("win2022-signing-required")
    assert p.expected_findings(today=dt.date(2026, 1, 1))["eol-os"] == "not_vulnerable"
    assert p.expected_findings(today=dt.date(2032, 1, 1))["eol-os"] == "vulnerable"
    assert "eol-os" not in profiles.get("samba-4.17").expected_findings()
    ports = profiles.get("win7-sp1-unpatched").expected_findings({44555: 445, 44139: 139})
    assert ports["smbv1-enabled:44555"] == ports["smbv1-enabled:44139"] == "vulnerable"
    assert "smbv1-enabled:445" not in ports


# -- profile values against the capture frames they cite ------------------------------


def _reply(capture: str, frame: int) -> bytes:
    corpus = pytest.importorskip("corpus")
    for m in corpus.smb_messages(capture, "server"):
        if m.frame == frame:
            return m.data
    raise AssertionError(f"{capture} has no server message at frame {frame}")


def _smb1_negotiate_matches(name: str, capture: str, frame: int) -> None:
    words = smb1.NegotiateWordsNT.unpack_from(smb1.parse_message(_reply(capture, frame)).words)
    cfg = profiles.get(name).smb1
    assert (words.security_mode, words.max_mpx, words.max_buffer, words.timezone) == (
        cfg.security_mode, cfg.max_mpx, cfg.max_buffer, cfg.timezone)
    ext = smb1.CAP_EXTENDED_SECURITY
    assert words.capabilities & ~ext == cfg.capabilities & ~ext


@pytest.mark.parametrize("name, capture, negotiate, setup", [
    ("win7-sp1-unpatched", "wannacry.pcap", 201, 203),
    ("win7-doublepulsar", "doublepulsar-backdoor-connect-win7.pcap", 81, 83),
    ("win7-sp1-patched", "eternalblue-success-unpatched-win7.pcap", 7, 9),
    ("win2008r2-locked", "eternalromance-success-2008r2.pcap", 11, 13),
    ("win2012r2-unpatched", "wannacry.pcap", 209, 211),
    ("samba-3.6.3", "arkime-smbclient-samba363.pcap", 6, 9),
])
def test_smb1_values_come_from_the_cited_frames(name, capture, negotiate, setup):
    _smb1_negotiate_matches(name, capture, negotiate)
    ss = smb1.parse_session_setup_response(_reply(capture, setup))
    cfg = profiles.get(name).smb1
    assert (ss.native_os, ss.native_lm, ss.primary_domain) == (cfg.native_os, cfg.native_lm, cfg.primary_domain)


@pytest.mark.parametrize("name, capture, frame", [
    ("win10-1909-compression", "claroty-win10-negotiate-compression.pcap", 2),
    ("win2019", "zeek-smbghost-scan-ws2019.pcap", 5),
    ("win7-sp1-patched", "claroty-win7-negotiate-smb21.pcap", 2),
])
def test_smb2_values_come_from_the_cited_frames(name, capture, frame):
    n = smb2.parse_negotiate_response(_reply(capture, frame))
    cfg = profiles.get(name).smb2
    assert n.dialect == cfg.max_dialect
    assert n.security_mode == cfg.security_mode
    assert n.capabilities == cfg.capabilities[n.dialect]
    assert n.max_read == cfg.max_size
    assert bool(n.start_time) == cfg.start_time
    if name == "win2019":
        # The capture offers LZNT1, which no 17763 build does: its server was a
        # 1903/1909 build (the profile's "compression" source), so the profile
        # keeps every other value and leaves compression out.
        assert n.contexts.compression and not cfg.compression and "1903" in profiles.get(name).sources["compression"]
    else:
        assert set(n.contexts.compression) <= set(cfg.compression)
    if name != "win7-sp1-patched":  # that capture is another Windows 7 host
        assert n.server_guid == cfg.server_guid


def test_ms17_010_and_implant_answers_come_from_the_cited_frames():
    peek = smb1.parse_message(_reply("wannacry.pcap", 207))
    assert peek.status == profiles.get("win7-sp1-unpatched").ms17_010_status == status.INSUFF_SERVER_RESOURCES
    implant = smb1.Header.unpack_from(_reply("doublepulsar-backdoor-connect-win7.pcap", 87))
    assert implant.mid == 65 + 16 and implant.status == status.NOT_IMPLEMENTED
    assert implant.signature == profiles.get("win7-doublepulsar").doublepulsar


# -- range, mix, ports, manifest -----------------------------------------------------------


def test_range_mix_and_ports_parsing():
    assert len(parse_range("127.50.0.0/24")) == 254
    assert str(parse_range("127.50.0.1-40")) == "127.50.0.1-127.50.0.40"
    for bad in ("10.0.0.1", "126.255.255.255-127.0.0.5", "127.0.0.9-3", "0.0.0.0/0"):
        with pytest.raises(LabConfigError):
            parse_range(bad)
    mix = parse_mix("win7-sp1-unpatched=2,win2019=3")
    assert [mix.name_at(i) for i in range(6)] == ["win7-sp1-unpatched"] * 2 + ["win2019"] * 3 + ["win7-sp1-unpatched"]
    assert parse_mix("samba-4.17").name_at(12345) == "samba-4.17"
    assert [parse_mix(None).name_at(i) for i in range(17)] == ALL[:17]
    with pytest.raises(LabConfigError):
        parse_mix("no-such-host=3")
    assert parse_ports(["445,139", "44139=139", 44555]) == {445: 445, 139: 139, 44139: 139, 44555: 445}


def test_manifest_of_a_huge_range_is_streamed_and_arithmetic(tmp_path):
    rng = parse_range("127.60.0.0/16")
    mix = parse_mix("win7-sp1-unpatched=1,win2019=2,silent=1")
    path = tmp_path / "manifest.json"
    write_manifest(path, rng, mix, {445: 445})
    data = json.loads(path.read_text())
    assert len(data) == 65534
    assert data["127.60.0.1"]["profile"] == "win7-sp1-unpatched"
    assert data["127.60.0.3"]["profile"] == "win2019"
    assert data["127.60.255.254"]["profile"] == mix.name_at(65533)
    assert data["127.60.0.4"]["expected"]["ms17-010"] == "unknown"
    assert data["127.60.0.1"]["expected"]["smbv1-enabled:445"] == "vulnerable"


# -- the scanner against every profile ------------------------------------------------------


@pytest.mark.parametrize("name", NORMAL)
def test_fingerprint_matches_the_profile(lab, name):
    p = profiles.get(name)
    r = scan(address_of(lab, name))
    assert r.ports == {str(PORT): "open"}
    smb1_on = bool(p.smb1 and p.smb1.on(445))
    assert r.smb1 is not None and r.smb1.enabled is smb1_on
    if smb1_on:
        assert (r.smb1.native_os, r.smb1.native_lm) == (p.smb1.native_os, p.smb1.native_lm)
        mode = p.smb1.security_mode
        assert r.smb1.signing == ("required" if mode & 8 else "enabled" if mode & 4 else "disabled")
    if p.smb2 is None:
        assert not (r.smb2 and r.smb2.dialects)
    else:
        want = [d for code, d in smb2.DIALECTS.items() if p.smb2.min_dialect <= code <= p.smb2.max_dialect]
        assert r.smb2.dialects == want
        assert r.smb2.signing == ("required" if p.smb2.security_mode & 2 else "enabled")
        if p.smb2.max_dialect == 0x0311:
            names = {v: k for k, v in profiles.COMPRESSION_CODES.items()}
            assert r.smb2.compression == [names[c] for c in p.smb2.compression]
            assert r.smb2.encryption[:1] == [smb2.CIPHERS[c] for c in p.smb2.ciphers if c in (2, 1, 4, 3)][:1]
    if p.ntlm is None:  # no NTLMSSP (Samba 3.x share level): only the negotiate's domain
        assert r.identity.os_version is None and r.smb1.primary_domain == p.smb1.primary_domain
    else:
        major, minor, build = p.ntlm.version
        assert r.identity.os_version == f"{major}.{minor}.{build}"
        nb = dict(p.ntlm.av_pairs)[ntlm.AV_NB_COMPUTER].decode("utf-16-le")
        assert r.identity.netbios_name == nb
    proto = "smb1" if smb1_on else "smb2"
    assert r.identity.null_session is p.access.allows("anonymous", proto)
    # The guest logon is only tried when a check needs it: untried is null.
    assert r.identity.guest_session is None
    from smbsentry.checks.registry import select

    with_guest = scan(address_of(lab, name), checks=tuple(select("smb-guest-access")))
    assert with_guest.identity.guest_session is p.access.allows("guest", proto)
    if p.kind == "samba":
        assert r.identity.samba_version.startswith(p.samba_version)
    assert not r.errors, r.errors


def test_exact_dialect_probing_sees_only_the_profile_range(lab):
    r = scan(address_of(lab, "win2012r2-unpatched"), dialect_method="exact")
    assert r.smb2.dialects == ["2.0.2", "2.1", "3.0", "3.0.2"]


def test_scanner_findings_match_the_manifest(lab, tmp_path):
    """The end-to-end contract: what a correct scanner reports for each host."""
    registry = pytest.importorskip("smbsentry.checks.registry")
    from smbsentry.scan.host import split_ports

    checks = tuple(registry.select("all"))
    ports = {PORT: 445}
    _, service = split_ports((PORT,), checks)  # as the CLI asks: the service probes, SMB over QUIC's among them

    async def all_hosts():
        return await asyncio.gather(*(
            scan_host(a, ScanOptions(ports=(PORT,), timeout=TIMEOUT, checks=checks, service_ports=service), RateLimiter(None))
            for a in lab.range))

    for r in run(all_hosts()):
        p = lab.lab.profile_at(lab.range.index(int(ipaddress.IPv4Address(r.address))))
        got = {(f"{f.id}:{f.port}" if f.id == "smbv1-enabled" else f.id): f.status for f in r.findings}
        want = p.expected_findings(ports, quic=bool(lab.lab.quic and lab.lab.quic.bound))
        wrong = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
        assert not wrong, f"{p.name}: expected vs scanner {wrong}"


# -- MS17-010 and DoublePulsar over the SMB1 session clients -----------------------------------


async def _smb1_ipc(address: str, port: int = PORT):
    conn = await Connection.open(address, port, TIMEOUT)
    client = Smb1Client(conn, TIMEOUT)
    resp, why = await client.negotiate()
    assert resp is not None, why
    logon = await client.logon("anonymous")
    if not logon.ok:
        logon = await client.logon("guest")
    if not logon.ok:
        return conn, client, logon, None
    tree = await client.tree_connect(f"\\\\{address}\\IPC$", logon.uid)
    return conn, client, logon, tree


@pytest.mark.parametrize("name", SMB1_SESSION)
def test_ms17_010_peek_named_pipe_answer(lab, name):
    p = profiles.get(name)

    async def probe():
        conn, client, logon, tree = await _smb1_ipc(address_of(lab, name))
        try:
            assert tree.status == 0
            req = smb1.transaction_request(smb1.TRANSACTION, client.next_mid(), logon.uid, tree.tid, (0x23, 0))
            return await client.transaction(req)
        finally:
            conn.close()

    assert run(probe()).status == p.ms17_010_status


def test_locked_host_refuses_both_logons_so_ms17_010_cannot_be_tested(lab):
    async def probe():
        conn, client, logon, tree = await _smb1_ipc(address_of(lab, "win2008r2-locked"))
        conn.close()
        return logon, tree

    logon, tree = run(probe())
    # the last try is the logon as Guest: a disabled account, as Windows says it
    assert logon.status == status.ACCOUNT_DISABLED and tree is None


@pytest.mark.parametrize("name", ["win7-doublepulsar", "win7-sp1-unpatched", "samba-4.17"])
def test_doublepulsar_ping(lab, name):
    p = profiles.get(name)

    async def ping():
        conn, client, logon, tree = await _smb1_ipc(address_of(lab, name))
        try:
            req = smb1.transaction_request(smb1.TRANSACTION2, 65, logon.uid, tree.tid, (0x000E,),
                                           params=b"\x00" * 12, timeout=0x00A4D9A6)
            return await client.transaction(req)
        finally:
            conn.close()

    reply = run(ping())
    if p.doublepulsar is None:
        assert reply.mid == 65 and reply.status == p.trans2_status
        return
    assert reply.mid == 81 and reply.status == status.NOT_IMPLEMENTED
    sig = reply.header.signature
    assert profiles.doublepulsar_key(sig) == 0x31F1CB56
    assert sig[4:8] == b"\x00" * 4  # x86


# -- special behaviours -----------------------------------------------------------------------


def test_silent_host_times_out(lab):
    r = scan(address_of(lab, "silent"))
    assert r.ports[str(PORT)] == "open" and r.smb1 is None and r.smb2 is None
    assert any("io-timeout" in e for e in r.errors)


def test_garbage_host_gives_protocol_errors(lab):
    r = scan(address_of(lab, "garbage"))
    assert r.smb1 is None and any("protocol-error" in e for e in r.errors)


def test_reset_after_negotiate(lab):
    r = scan(address_of(lab, "reset-after-negotiate"))
    assert r.smb1.enabled and r.smb2.dialects == ["2.0.2", "2.1"]
    assert r.identity.netbios_name is None
    assert any("connection-reset" in e for e in r.errors)


def test_smb1_disabled_resets_and_multi_protocol_gets_02ff(lab):
    address = address_of(lab, "win10-22h2")

    async def go():
        conn = await Connection.open(address, PORT, TIMEOUT)
        try:
            with pytest.raises(ScanError) as info:
                await conn.request(smb1.negotiate_request(mid=1), TIMEOUT)
            assert info.value.kind == "connection-reset"
        finally:
            conn.close()
        conn = await Connection.open(address, PORT, TIMEOUT)
        try:
            raw = await conn.request(smb1.negotiate_request((smb1.NT_LM_012, "SMB 2.002", "SMB 2.???")), TIMEOUT)
            assert smb2.parse_negotiate_response(raw).dialect == smb2.WILDCARD_DIALECT
            again, _ = await Smb2Client(conn, TIMEOUT).negotiate()
            assert again.dialect == 0x0311
        finally:
            conn.close()

    run(go())


def test_port_139_needs_the_session_request(lab):
    win7 = address_of(lab, "win7-sp1-patched")

    async def go():
        conn = await Connection.open(win7, PORT_139, TIMEOUT, called_name="*SMBSERVER")
        resp, _ = await Smb1Client(conn, TIMEOUT).negotiate()
        conn.close()
        assert resp is not None
        with pytest.raises(ScanError) as info:
            await Connection.open(win7, PORT_139, TIMEOUT, called_name="SOMEONE-ELSE")
        assert "called name not present" in str(info.value)
        samba = await Connection.open(address_of(lab, "samba-4.17"), PORT_139, TIMEOUT, called_name="ANYNAME")
        samba.close()
        bare = await Connection.open(win7, PORT_139, TIMEOUT)  # SMB without a session request: dropped
        with pytest.raises(ScanError):
            await bare.request(smb1.negotiate_request(mid=1), TIMEOUT)
        bare.close()

    run(go())


def test_share_listing_over_srvsvc(lab):
    shares = pytest.importorskip("smbsentry.scan.shares")
    address = address_of(lab, "samba-4.5-sambacry")

    async def go():
        conn = await Connection.open(address, PORT, TIMEOUT)
        client = Smb2Client(conn, TIMEOUT)
        await client.negotiate()
        logon = await client.logon("guest")
        listing = await shares.list_shares_smb2(client, logon.uid, address)
        access = await shares.probe_share_access_smb2(client, logon.uid, address, "public")
        conn.close()
        return listing, access

    listing, access = run(go())
    assert [s.name for s in listing.shares] == ["IPC$", "public", "homes"]
    assert access.writable


def test_device_mode_serves_the_range_and_drops_other_loopback_addresses():
    port = 44561
    try:
        running = BackgroundLab("127.50.9.1-2", ports=[port], mix="win7-sp1-patched", bind_mode="device").start()
    except OSError as exc:
        pytest.skip(f"device binding unavailable here: {exc}")
    try:
        assert running.lab.modes == {port: "device"}
        r = scan_host("127.50.9.2", ScanOptions(ports=(port,), timeout=TIMEOUT), RateLimiter(None))
        assert run(r).identity.netbios_name == "WIN7-PATCHED"
        with socket.create_connection(("127.50.9.3", port), timeout=TIMEOUT) as s:
            s.settimeout(TIMEOUT)
            try:
                s.sendall(netbios.frame(smb1.negotiate_request(mid=1)))
                assert s.recv(64) == b""  # accepted by the kernel, dropped by the lab
            except ConnectionResetError:
                pass
    finally:
        running.stop()


def test_lab_refuses_non_loopback_ranges():
    with pytest.raises(LabConfigError):
        Lab("192.168.1.0/24", ports=[PORT])


# -- the sans-I/O host never raises ----------------------------------------------------------------


def _valid_messages() -> list[bytes]:
    blob = spnego.neg_token_init(ntlm.negotiate())
    return [
        smb1.negotiate_request(("NT LM 0.12", "SMB 2.002", "SMB 2.???"), mid=1),
        smb1.negotiate_request(mid=1),
        smb1.session_setup_request(blob, mid=2),
        smb1.session_setup_basic_request(mid=3),
        smb1_tree.tree_connect_request("\\\\x\\IPC$", mid=4, uid=2048),
        smb1.transaction_request(smb1.TRANSACTION, 5, 2048, 2048, (0x23, 0)),
        smb2.negotiate_request(),
        smb2.session_setup_request(blob, 1),
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(ALL),
    role=st.sampled_from([445, 139]),
    chunks=st.lists(st.one_of(
        st.binary(max_size=300),
        st.sampled_from(_valid_messages()).map(netbios.frame),
        st.tuples(st.sampled_from(_valid_messages()), st.integers(0, 400), st.integers(0, 255)).map(
            lambda t: netbios.frame(t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1:])),
    ), max_size=6),
)
def test_host_survives_any_input(name, role, chunks):
    host = HostConnection(profiles.get(name), role)
    for chunk in chunks:
        action = host.feed(chunk)
        assert isinstance(action.send, bytes) and action.end in (None, "close", "reset")
        netbios.FrameReader().feed(action.send)  # whatever we send is well framed
        if action.end:
            break


def test_server_guid_is_personal_per_address():
    p = profiles.get("win2019")
    a = HostConnection(p, 445, address=int(ipaddress.IPv4Address("127.50.0.10")))
    b = HostConnection(p, 445, address=int(ipaddress.IPv4Address("127.50.0.11")))
    ga, gb = a.server_guid(p.smb2.server_guid), b.server_guid(p.smb2.server_guid)
    assert ga != gb and ga[:12] == gb[:12] == p.smb2.server_guid[:12]
    assert struct.unpack(">I", ga[12:])[0] ^ struct.unpack(">I", gb[12:])[0] == 10 ^ 11
    assert uuid.UUID(bytes_le=ga) != uuid.UUID(bytes_le=gb)


# -- binding modes, huge ranges, the command ------------------------------------------------


def test_auto_mode_falls_back_to_one_socket_per_address(caplog):
    port = 44562
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.50.10.9", port))  # like a test smbd holding one address of the port
    blocker.listen()
    try:
        with caplog.at_level("WARNING", logger="smbsentry.lab"):
            running = BackgroundLab("127.50.10.1-4", ports=[port], mix="samba-4.17", bind_mode="auto").start()
        try:
            assert running.lab.modes == {port: "per-address"}
            assert "binding each of the 4 addresses" in caplog.text
            r = run(scan_host("127.50.10.4", ScanOptions(ports=(port,), timeout=TIMEOUT), RateLimiter(None)))
            assert r.identity.samba_version
        finally:
            running.stop()
    finally:
        blocker.close()


def test_a_huge_range_costs_nothing_per_address():
    """65,534 hosts behind one socket: the profile of any address is arithmetic."""
    port = 44564
    try:
        running = BackgroundLab("127.61.0.0/16", ports=[port], mix="win10-22h2=3,win7-sp1-unpatched=1",
                                bind_mode="device").start()
    except OSError as exc:
        pytest.skip(f"device binding unavailable here: {exc}")
    try:
        async def names():
            out = {}
            for address in ("127.61.0.1", "127.61.0.4", "127.61.200.100", "127.61.255.254"):
                r = await scan_host(address, ScanOptions(ports=(port,), timeout=TIMEOUT), RateLimiter(None))
                out[address] = r.identity.netbios_name
            return out

        got = run(names())
        for address, name in got.items():
            index = running.range.index(int(ipaddress.IPv4Address(address)))
            want = running.lab.profile_at(index)
            assert name == dict(want.ntlm.av_pairs)[ntlm.AV_NB_COMPUTER].decode("utf-16-le"), address
        assert got["127.61.0.4"] == "DFIR-WIN7-X64"
    finally:
        running.stop()


def test_module_entry_serves_writes_the_manifest_and_stops_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    manifest = tmp_path / "lab.json"
    port = 44565
    proc = subprocess.Popen(
        [sys.executable, "-m", "smbsentry.lab", "127.50.12.1-3", "--port", str(port), "--mix", "win2019",
         "--manifest", str(manifest), "--bind-mode", "per-address"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not manifest.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert manifest.exists(), proc.stderr.read() if proc.poll() is not None else "no manifest"
        data = json.loads(manifest.read_text())
        assert set(data) == {"127.50.12.1", "127.50.12.2", "127.50.12.3"}
        assert data["127.50.12.2"]["expected"][f"smbv1-enabled:{port}"] == "not_vulnerable"
        r = run(scan_host("127.50.12.3", ScanOptions(ports=(port,), timeout=TIMEOUT), RateLimiter(None)))
        assert r.identity.os_build == 17763
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(OSError):
        socket.create_connection(("127.50.12.3", port), timeout=TIMEOUT).close()


def test_module_entry_refuses_a_non_loopback_range():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "smbsentry.lab", "10.1.2.0/24", "--port", "44566"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "loopback" in proc.stderr


def _feed(host: HostConnection, msg: bytes) -> tuple[bytes | None, str | None]:
    action = host.feed(netbios.frame(msg))
    frames = netbios.FrameReader().feed(action.send)
    return (frames[0][1] if frames else None), action.end


def test_vista_era_host_settles_on_2_0_2_from_an_smb1_negotiate():
    host = HostConnection(profiles.get("win2008-sp2"), 445)
    reply, _ = _feed(host, smb1.negotiate_request((smb1.NT_LM_012, "SMB 2.002", "SMB 2.???")))
    assert smb2.parse_negotiate_response(reply).dialect == 0x0202  # no "2.???" before Windows 7


def test_smb2_compound_requests_get_chained_responses():
    host = HostConnection(profiles.get("samba-4.17"), 445)
    _feed(host, smb2.negotiate_request())
    first = smb2.header(smb2.ECHO, 1) + struct.pack("<HH", 4, 0)
    first = first[:20] + struct.pack("<I", len(first)) + first[24:]
    reply, end = _feed(host, first + smb2.header(smb2.ECHO, 2) + struct.pack("<HH", 4, 0))
    head = smb2.parse_header(reply)
    assert end is None and head.message_id == 1 and head.next_command % 8 == 0
    assert smb2.parse_header(reply[head.next_command:]).message_id == 2


def test_smb2_to_an_smb1_only_host_is_reset():
    reply, end = _feed(HostConnection(profiles.get("winxp-sp3"), 445), smb2.negotiate_request())
    assert reply is None and end == "reset"


@pytest.mark.samba
def test_samba_profile_answers_like_the_local_smbd(lab, samba_smb1_guest, samba_version):
    """The samba-4.17 profile against the real Samba 4.17 it was recorded from:
    every fact that does not depend on the smb.conf (names, guest mapping)."""
    if not samba_version.startswith("4.17"):
        pytest.skip(f"the profile was recorded from Samba 4.17, this machine has {samba_version}")
    real = run(scan_host(samba_smb1_guest.address, ScanOptions(ports=(445,), timeout=5.0), RateLimiter(None)))
    fake = scan(address_of(lab, "samba-4.17"))
    for facts in (lambda r: (r.smb1.enabled, r.smb1.signing, r.smb1.native_os, r.smb1.native_lm,
                             r.smb1.extended_security, r.smb1.capabilities),
                  lambda r: (r.smb2.dialects, r.smb2.signing, r.smb2.capabilities, r.smb2.compression,
                             r.smb2.encryption, r.smb2.signing_algorithms, r.smb2.security_mechanisms,
                             r.smb2.max_read, r.smb2.boot_time),
                  lambda r: (r.identity.os_version, r.identity.implementation, r.identity.samba_version,
                             r.identity.null_session)):
        assert facts(fake) == facts(real)


def test_ntlmssp_blob_to_a_server_without_ntlmssp_is_refused_not_a_crash():
    """Found by test_host_survives_any_input in CI: Samba 3.6.3 (share level,
    no extended security) given an NTLMSSP session setup anyway."""
    from smbsentry.lab import auth

    step = auth.Exchange(profiles.get("samba-3.6.3"), "smb1").step(b"NTLMSSP\x00\x01\x00\x00\x00" + b"\x00" * 28, 0)
    assert step.status == 0xC000006D and step.blob is None  # LOGON_FAILURE, as Samba 3.6 answers


def test_samba_363_replies_without_the_extended_security_flag():
    """arkime-smbclient-samba363.pcap: smbclient asks with flags2 0xc801
    (extended security), Samba 3.6.3 without SPNEGO answers 0xc003 in the
    negotiate (frame 6) and the session setup (frame 9)."""
    host = HostConnection(profiles.get("samba-3.6.3"), 445)
    request = smb1.negotiate_request((smb1.NT_LM_012,))
    assert smb1.Header.unpack_from(request).flags2 & smb1.FLAGS2_EXTENDED_SECURITY
    reply, _ = _feed(host, request)
    flags2 = smb1.Header.unpack_from(reply).flags2
    assert not flags2 & smb1.FLAGS2_EXTENDED_SECURITY and flags2 & smb1.FLAGS2_UNICODE
    try:
        captured = _reply("arkime-smbclient-samba363.pcap", 6)
    except pytest.skip.Exception:
        return  # the corpus is absent: the flags above are checked all the same
    assert smb1.Header.unpack_from(captured).flags2 == flags2
    # Samba 4.17 negotiates SPNEGO and keeps the bit
    reply, _ = _feed(HostConnection(profiles.get("samba-4.17"), 445), request)
    assert smb1.Header.unpack_from(reply).flags2 & smb1.FLAGS2_EXTENDED_SECURITY


@pytest.mark.parametrize("name", ["win7-sp1-unpatched", "win2012r2-unpatched", "winxp-sp3"])
def test_null_session_pipes_decide_the_anonymous_share_listing(lab, name):
    """Windows since Vista refuses a null session's open of \\PIPE\\srvsvc
    (RestrictNullSessAccess, empty NullSessionPipes): the scanner says the
    listing failed and why; XP still lists."""
    shares = pytest.importorskip("smbsentry.scan.shares")
    address = address_of(lab, name)

    async def go():
        conn, client, logon, tree = await _smb1_ipc(address)
        try:
            return await shares.list_shares_smb1(client, logon.uid, address, tree.tid)
        finally:
            conn.close()

    listing = run(go())
    p = profiles.get(name)
    if p.access.may_open_pipe("anonymous", "srvsvc"):
        assert [s.name for s in listing.shares] == [s.name for s in p.shares]
    else:
        assert listing.shares is None and "ACCESS_DENIED" in listing.reason


def test_name_service_answers_node_status_and_its_own_name():
    """lab/nbns.py: NBSTAT with the profile's names, a name query for its own
    name with its address, nothing for other names or from a silent host;
    Samba's nmblookup (a real client) reads the same where installed."""
    import shutil
    import subprocess

    from smbsentry.lab import nbns
    from smbsentry.services.nbns import parse_status

    def query(name: str, qtype: int, suffix: int = 0x20) -> bytes:
        raw = name.upper().ljust(15).encode() + bytes([suffix])
        encoded = bytes(b for c in raw for b in (0x41 + (c >> 4), 0x41 + (c & 0xF)))
        return struct.pack(">HHHHHH", 7, 0x0110, 1, 0, 0, 0) + b"\x20" + encoded + b"\x00" + struct.pack(">HH", qtype, 1)

    win7 = profiles.get("win7-sp1-unpatched")
    status_reply = nbns.answer(win7, "127.50.0.3", query("*", nbns.NBSTAT, 0))
    facts = parse_status(status_reply, 7)
    assert "DFIR-WIN7-X64" in str(facts) and "TESTDOMAIN" in str(facts)
    positive = nbns.answer(win7, "127.50.0.3", query("dfir-win7-x64", nbns.NB, 0))
    assert positive[-4:] == bytes([127, 50, 0, 3]) and positive[2] & 0x80
    assert nbns.answer(win7, "127.50.0.3", query("OTHERHOST", nbns.NB, 0)) is None
    assert nbns.answer(profiles.get("silent"), "127.50.0.3", query("*", nbns.NBSTAT, 0)) is None
    assert nbns.answer(win7, "127.50.0.3", b"\x00" * 20) is None
    tool = shutil.which("nmblookup")
    if tool is None:
        return
    try:
        running = BackgroundLab("127.50.14.1-2", ports=[44145], mix="win7-sp1-unpatched,samba-4.17",
                                bind_mode="per-address", nbns=True).start()
    except OSError as exc:
        pytest.skip(f"cannot bind 127.50.14.x: {exc}")
    try:
        if running.lab.nbns_unbound:
            pytest.skip(f"UDP 137 not available: {running.lab.nbns_unbound[0]}")
        out = subprocess.run([tool, "-A", "127.50.14.2"], capture_output=True, text=True, timeout=30).stdout
        byname = subprocess.run([tool, "-B", "127.50.14.1", "DFIR-WIN7-X64"], capture_output=True, text=True,
                                timeout=30).stdout
    finally:
        running.stop()
    samba = profiles.get("samba-4.17")
    assert f"{samba.netbios_name} " in out and "<20>" in out and "<GROUP>" in out, out
    assert "127.50.14.1 DFIR-WIN7-X64<00>" in byname, byname


def test_smb1_pipe_write_then_read_including_a_raw_mode_message_start(lab):
    """DCE/RPC over SMB1 the way impacket and nmap do it: WRITE_ANDX the
    PDU, READ_ANDX the reply.  A PDU larger than MaxBufferSize goes out in
    raw mode (WriteMode 0x000C) behind a two-byte length the pipe must drop."""
    from smbsentry.protocol import dcerpc, smb1_pipe, srvsvc

    address = address_of(lab, "samba-4.5-sambacry")

    async def go(raw: bool):
        conn, client, logon, tree = await _smb1_ipc(address)
        try:
            opened = smb1_pipe.parse_nt_create_response(await conn.request(
                smb1_pipe.nt_create_request("\\srvsvc", client.next_mid(), logon.uid, tree.tid), TIMEOUT))
            pdu = dcerpc.bind(1, srvsvc.SRVSVC_SYNTAX)
            mode, data = smb1_pipe.WRITE_MODE_MESSAGE_START, pdu
            if raw:
                mode, data = 0x000C, struct.pack("<H", len(pdu)) + pdu
            written = smb1_pipe.parse_write_andx_response(await conn.request(smb1_pipe.write_andx_request(
                opened.fid, data, client.next_mid(), logon.uid, tree.tid, write_mode=mode), TIMEOUT))
            read = smb1_pipe.parse_read_andx_response(await conn.request(smb1_pipe.read_andx_request(
                opened.fid, client.next_mid(), logon.uid, tree.tid), TIMEOUT))
            return written, read
        finally:
            conn.close()

    for raw in (False, True):
        written, read = run(go(raw))
        assert written.status == 0 and written.count > 0
        assert read.status == 0 and dcerpc.parse_pdu(read.data)[0].ptype == dcerpc.BIND_ACK
