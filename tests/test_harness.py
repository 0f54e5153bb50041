"""Tests proving the real-Samba / nmap harness works (tests/sambaserver.py, tests/nmaprunner.py)."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import time
from pathlib import Path

import nmaprunner
import pytest
import sambaserver
from sambaserver import PRESETS, SambaError, SambaServer

ALL_SMB2_DIALECTS = ["2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"]

PRESET_FIXTURES = {
    "smb1-guest": "samba_smb1_guest",
    "smb1-off": "samba_smb1_off",
    "signing-required": "samba_signing_required",
    "max-smb2_10": "samba_max_smb2_10",
}


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- pure unit tests


def test_every_preset_has_a_fixture_and_address() -> None:
    assert set(PRESET_FIXTURES) == set(PRESETS) == set(sambaserver.FIXTURE_HOSTS)
    addrs = [sambaserver.fixture_address(p, slot=0) for p in PRESETS]
    assert addrs == ["127.21.0.1", "127.21.0.2", "127.21.0.3", "127.21.0.4"]
    assert len({PRESETS[p]["netbios_name"] for p in PRESETS}) == len(PRESETS)
    assert all(len(PRESETS[p]["netbios_name"]) <= 15 for p in PRESETS)


def test_bench_addresses_are_loopback() -> None:
    addrs = sambaserver.bench_addresses(300)
    assert addrs[:3] == ["127.30.0.1", "127.30.0.2", "127.30.0.3"]
    assert len(set(addrs)) == 300
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in addrs)


@pytest.mark.parametrize("bad", ["10.0.0.1", "192.168.1.10", "::1", "127.0.0.1", "0.0.0.0"])
def test_refuses_non_private_loopback(bad: str) -> None:
    with pytest.raises(ValueError):
        SambaServer(bad)
    if bad != "127.0.0.1":
        with pytest.raises(ValueError):
            nmaprunner.run_nmap([bad])


def test_config_rendering_and_overrides() -> None:
    srv = SambaServer(["127.21.250.1", "127.21.250.2"], "signing-required",
                      options={"server signing": "auto", "smb encrypt": "required"},
                      shares={"extra": {"read only": "yes"}, "data": None})
    srv.root = Path("/tmp/sentry-smb-x")
    srv.share_paths = {"extra": Path("/tmp/sentry-smb-x/shares/extra")}
    text = srv.render_config()
    assert "interfaces = 127.21.250.1 127.21.250.2" in text
    assert "bind interfaces only = yes" in text
    assert "smb ports = 445 139" in text
    assert "server signing = auto" in text and "smb encrypt = required" in text
    assert "[extra]" in text and "[data]" not in text
    for key in ("state directory", "lock directory", "cache directory", "private dir",
                "pid directory", "ncalrpc dir", "log file"):
        assert re.search(rf"^\t{key} = /tmp/sentry-smb-x/", text, re.MULTILINE), key
    assert "load printers = no" in text and "printcap name = /dev/null" in text
    assert "disable spoolss = yes" in text


@pytest.mark.parametrize(("raw", "want"), [
    ("202", "2.0.2"), ("210", "2.1"), ("300", "3.0"), ("302", "3.0.2"), ("311", "3.1.1"),
    ("2.02", "2.0.2"), ("2.10", "2.1"), ("3.11", "3.1.1"), ("2:0:2", "2.0.2"), ("3:1:1", "3.1.1"),
    ("2.0.2", "2.0.2"), ("2.1", "2.1"), ("3.0", "3.0"),
    ("NT LM 0.12 (SMBv1) [dangerous, but default]", None), ("", None),
])
def test_normalise_dialect(raw: str, want: str | None) -> None:
    assert nmaprunner.normalise_dialect(raw) == want


# Trimmed real output of nmap 7.93 against the smb1-guest preset.
NMAP_XML_SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" version="7.93" xmloutputversion="1.05">
<host><status state="up" reason="user-set" reason_ttl="0"/>
<address addr="127.21.0.1" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="445"><state state="open" reason="syn-ack" reason_ttl="64"/>
<service name="microsoft-ds" product="Samba smbd" version="4.17.12-Debian" method="probed" conf="10"/></port></ports>
<hostscript><script id="smb-os-discovery" output="&#xa;  OS: Windows 6.1 (Samba 4.17.12-Debian)"><elem key="os">Windows 6.1</elem>
<elem key="lanmanager">Samba 4.17.12-Debian</elem>
<elem key="server">SENTRYSMB1\\x00</elem>
<elem key="date">2026-11-21T05:12:35+00:00</elem>
<elem key="fqdn">vm</elem>
<elem key="domain_dns"></elem>
<elem key="workgroup">TESTLAB\\x00</elem>
</script><script id="smb-security-mode" output="..."><elem key="account_used">guest</elem>
<elem key="authentication_level">user</elem>
<elem key="challenge_response">supported</elem>
<elem key="message_signing">disabled</elem>
</script><script id="smb-protocols" output="..."><table key="dialects">
<elem>NT LM 0.12 (SMBv1) [dangerous, but default]</elem>
<elem>202</elem><elem>210</elem><elem>300</elem><elem>302</elem><elem>311</elem>
</table></script><script id="smb2-security-mode" output="..."><table key="311">
<elem>Message signing enabled but not required</elem>
</table></script></hostscript></host></nmaprun>
"""


def test_parse_nmap_xml_sample() -> None:
    host = nmaprunner.parse_nmap_xml(NMAP_XML_SAMPLE)["127.21.0.1"]
    assert host["dialects"] == ALL_SMB2_DIALECTS
    assert host["smb1"] is True
    assert host["smb2_signing"] == "enabled"
    assert host["smb2_signing_dialect"] == "3.1.1"
    assert host["smb1_signing"] == "disabled"
    assert host["os_discovery"]["server"] == "SENTRYSMB1"
    assert host["os_discovery"]["workgroup"] == "TESTLAB"
    assert host["os_discovery"]["lanmanager"].startswith("Samba 4.")
    assert host["ports"][445]["state"] == "open"


def test_require_samba_fails_in_ci_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    import conftest

    monkeypatch.setattr(sambaserver, "missing_tools", lambda *a, **k: ["smbd"])
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        conftest.require_samba()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="smbd"):
        conftest.require_samba()
    monkeypatch.setattr(sambaserver, "missing_tools", lambda *a, **k: [])
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="root"):
        conftest.require_samba()


# ---------------------------------------------------------------- real Samba


@pytest.mark.samba
@pytest.mark.parametrize("preset", list(PRESET_FIXTURES))
def test_preset_starts_and_listens(preset: str, request: pytest.FixtureRequest, samba_version: str) -> None:
    srv: SambaServer = request.getfixturevalue(PRESET_FIXTURES[preset])
    assert srv.config == preset
    assert srv.is_running()
    assert srv.address == sambaserver.fixture_address(preset)
    assert srv.netbios_name == PRESETS[preset]["netbios_name"]
    assert srv.workgroup == "TESTLAB"
    assert srv.version == samba_version
    assert re.match(r"^\d+\.\d+\.\d+", samba_version)
    assert srv.address in sambaserver.lo_addresses()
    for port in (445, 139):
        assert _answers(srv.address, port), f"{preset}: nothing on {srv.address}:{port}"
    assert srv.root is not None and str(srv.conf_path).startswith(str(srv.root))


@pytest.mark.samba
def test_smb1_guest_lists_public_over_nt1(samba_smb1_guest: SambaServer) -> None:
    r = samba_smb1_guest.smbclient(protocol="NT1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\s*public\s+Disk", r.stdout, re.MULTILINE), r.stdout
    # ... and the guest share is writable anonymously
    r = samba_smb1_guest.smbclient("-c", "mkdir harness-probe", service="public", protocol="NT1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (samba_smb1_guest.share_paths["public"] / "harness-probe").is_dir()


@pytest.mark.samba
def test_port_139_answers_smb(samba_smb1_guest: SambaServer) -> None:
    r = samba_smb1_guest.smbclient("-p", "139", protocol="SMB3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "public" in r.stdout


@pytest.mark.samba
def test_smb1_off_speaks_smb3_not_nt1(samba_smb1_off: SambaServer) -> None:
    r = samba_smb1_off.smbclient(protocol="SMB3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\s*data\s+Disk", r.stdout, re.MULTILINE), r.stdout
    r = samba_smb1_off.smbclient(protocol="NT1")
    assert r.returncode != 0
    assert "protocol negotiation failed" in r.stdout + r.stderr


@pytest.mark.samba
def test_max_smb2_10_refuses_smb3_only_client(samba_max_smb2_10: SambaServer) -> None:
    r = samba_max_smb2_10.smbclient(protocol="SMB2")
    assert r.returncode == 0, r.stdout + r.stderr
    r = samba_max_smb2_10.smbclient("--option=client min protocol=SMB3", protocol="SMB3")
    assert r.returncode != 0
    assert "protocol negotiation failed" in r.stdout + r.stderr


@pytest.mark.samba
def test_effective_parameters(samba_smb1_guest: SambaServer, samba_signing_required: SambaServer) -> None:
    assert samba_smb1_guest.testparm("lanman auth") == "No"
    assert samba_smb1_guest.testparm("server min protocol") == "NT1"
    assert samba_smb1_guest.testparm("ntlm auth") == "ntlmv1-permitted"
    assert samba_signing_required.testparm("server signing") in ("required", "mandatory")


@pytest.mark.samba
@pytest.mark.parametrize("fixture", ["samba_signing_required", "samba_smb1_off"])
def test_add_user_and_authenticate(fixture: str, request: pytest.FixtureRequest) -> None:
    srv: SambaServer = request.getfixturevalue(fixture)
    srv.add_user(sambaserver.TEST_USER, sambaserver.TEST_PASSWORD)
    srv.add_user(sambaserver.TEST_USER, sambaserver.TEST_PASSWORD)  # idempotent
    r = srv.smbclient("-c", "ls", service="data", user="scanuser", protocol="SMB3")
    assert r.returncode == 0, r.stdout + r.stderr
    r = srv.smbclient("-c", "ls", service="data", user="scanuser", password="wrong", protocol="SMB3")
    assert r.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in r.stdout + r.stderr


@pytest.mark.samba
def test_many_addresses_on_one_smbd(samba_factory) -> None:
    addrs = sambaserver.scratch_addresses(64)
    t0 = time.monotonic()
    srv = samba_factory(addrs, "smb1-off")
    elapsed = time.monotonic() - t0
    assert elapsed < 20, f"64-address smbd took {elapsed:.1f}s to become ready"
    assert len(srv.samba_pids()) >= 1
    assert all(_answers(a, 445) for a in addrs)
    r = srv.smbclient(address=addrs[-1], protocol="SMB3")
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"64-address smbd ready in {srv.startup_seconds:.3f}s")


@pytest.mark.samba
def test_stop_leaves_nothing_behind(samba_factory) -> None:
    srv = samba_factory(config="smb1-guest", netbios_name="SENTRYTEARDOWN")
    r = srv.smbclient(protocol="SMB3")  # starts samba-dcerpcd + rpcd_* (daemonised)
    assert r.returncode == 0 and "public" in r.stdout, r.stdout + r.stderr
    pids = srv.samba_pids()
    assert len(pids) >= 3
    root = srv.root
    srv.stop()
    srv.stop()  # idempotent
    assert srv.samba_pids() == []
    assert all(not os.path.exists(f"/proc/{p}") or _is_zombie(p) for p in pids)
    assert srv.address not in sambaserver.lo_addresses()
    assert root is not None and not root.exists()
    assert not _answers(srv.address, 445)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.samba
def test_refuses_address_already_served(samba_smb1_off: SambaServer) -> None:
    # smbd uses SO_REUSEPORT: a second smbd would start and share the port.
    clash = SambaServer(samba_smb1_off.address, "smb1-off", wait_reaped=False)
    with pytest.raises(SambaError, match="already listening"):
        clash.start()
    assert clash.samba_pids() == []
    assert samba_smb1_off.address in sambaserver.lo_addresses()
    assert _answers(samba_smb1_off.address, 445)


@pytest.mark.samba
def test_start_failure_raises_with_log_tail(samba_factory) -> None:
    require = sambaserver.scratch_addresses(2)
    # smbd is told to serve an address that is not on lo -> PANIC, exits.
    with pytest.raises(SambaError) as info:
        samba_factory(require[0], "smb1-off", start_timeout=15,
                      options={"interfaces": require[1]})
    message = str(info.value)
    assert "exited" in message
    assert "No sockets available to bind to" in message  # the smbd log tail
    assert require[0] not in sambaserver.lo_addresses()


# ---------------------------------------------------------------- nmap


@pytest.mark.samba
@pytest.mark.nmap
def test_nmap_smb1_guest(samba_smb1_guest: SambaServer, require_nmap: str) -> None:
    host = nmaprunner.scan(samba_smb1_guest.address)
    assert host["state"] == "up" and host["ports"][445]["state"] == "open"
    assert host["smb1"] is True
    assert host["dialects"] == ALL_SMB2_DIALECTS
    assert host["smb2_signing"] == "enabled"
    assert host["smb1_signing"] == "disabled"
    assert host["smb1_security"]["account_used"] == "guest"
    osd = host["os_discovery"]
    assert osd["server"] == samba_smb1_guest.netbios_name
    assert osd["workgroup"] == samba_smb1_guest.workgroup
    assert osd["lanmanager"] == f"Samba {samba_smb1_guest.version}"


@pytest.mark.samba
@pytest.mark.nmap
def test_nmap_smb1_off(samba_smb1_off: SambaServer, require_nmap: str) -> None:
    host = nmaprunner.scan(samba_smb1_off.address)
    assert host["smb1"] is False
    assert host["dialects"] == ALL_SMB2_DIALECTS
    assert host["smb2_signing"] == "enabled"
    assert host["os_discovery"] == {}  # smb-os-discovery needs SMB1


@pytest.mark.samba
@pytest.mark.nmap
def test_nmap_signing_required(samba_signing_required: SambaServer, require_nmap: str) -> None:
    host = nmaprunner.scan(samba_signing_required.address, scripts=["smb2-security-mode", "smb-protocols"])
    assert host["smb2_signing"] == "required"
    assert host["smb1"] is False
    assert "3.1.1" in host["dialects"]


@pytest.mark.samba
@pytest.mark.nmap
def test_nmap_max_smb2_10(samba_max_smb2_10: SambaServer, require_nmap: str) -> None:
    host = nmaprunner.scan(samba_max_smb2_10.address)
    assert host["dialects"] == ["2.0.2", "2.1"]
    assert not any(d.startswith("3") for d in host["dialects"])
    assert host["smb1"] is False
    assert host["smb2_signing_dialect"] == "2.1"


@pytest.mark.samba
@pytest.mark.nmap
def test_nmap_many_hosts_one_run(samba_smb1_guest: SambaServer, samba_smb1_off: SambaServer,
                                 samba_signing_required: SambaServer, samba_max_smb2_10: SambaServer,
                                 require_nmap: str) -> None:
    servers = [samba_smb1_guest, samba_smb1_off, samba_signing_required, samba_max_smb2_10]
    hosts = nmaprunner.run_nmap([s.address for s in servers], ports=[139, 445], scripts=["smb-protocols"])
    assert [hosts[s.address]["smb1"] for s in servers] == [True, False, False, False]
    assert all(hosts[s.address]["ports"][139]["state"] == "open" for s in servers)
