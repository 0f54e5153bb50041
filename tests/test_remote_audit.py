"""Credentialed remote audit (audit/remote.py).

Recorded registry answers (tests/data/remote/registry-*.json, captured shapes
of a Windows 7 SP1 x64 host with KB4012212 and a Windows 10 1909 host at
18363.720) drive the fact reader and the verdicts; the thread pool, timeouts
and error isolation run with recorded and failing sessions; real Samba proves
the impacket path: right credentials reach winreg (Samba's small registry has
no ProductName, so the facts are partial and the verdicts unknown with a
reason), a wrong password is one host's LOGON_FAILURE.  Every address is on
loopback.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from smbsentry.audit import remote
from smbsentry.audit.evaluate import evaluate
from smbsentry.audit.remote import (CBS_PACKAGES, CURRENT_VERSION, RecordedRegistry, RecordedSession, RemoteAuditError, audit_remote,
                                    facts_from_registry, load_recording)

DATA = Path(__file__).parent / "data" / "remote"
WIN7 = DATA / "registry-win7-sp1-x64-kb4012212.json"
W1909 = DATA / "registry-win10-1909-18363-720.json"


def verdicts(facts):
    return {v.id: v for v in evaluate(facts)}


def recording(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --- recorded answers -> facts -> verdicts ------------------------------------------------

def test_windows7_sp1_x64_with_kb4012212():
    reg, meta = load_recording(WIN7)
    facts, notes = facts_from_registry(reg, address=meta["address"])
    assert (facts.host, facts.address) == ("WS-FIN-12", "10.20.4.61")
    assert (facts.os_name, facts.os_version, facts.service_pack, facts.build, facts.ubr, facts.architecture, facts.edition) == (
        "Windows 7 Professional", "6.1.7601", 1, 7601, None, "x64", "Professional")
    assert "KB4012212" in facts.installed_kbs
    assert "KB4019264" not in facts.installed_kbs  # staged, waiting for a restart (0x60)
    assert "KB4012215" not in facts.installed_kbs  # removed again (0x00)
    assert notes == ["installed but waiting for a restart (not counted): KB4019264"]
    assert facts.smb1_server is True  # no SMB1 value on Windows 7: on by default
    assert (facts.smb_device_enabled, facts.disable_compression, facts.smb_signing_required, facts.restrict_null_sessions) == (True, False, False, True)
    assert (facts.server_service, facts.domain_controller, facts.rdp_enabled, facts.wannacry_indicators) == ("running", False, False, [])
    v = verdicts(facts)
    assert v["ms17-010"].status == "patched"
    assert v["ms17-010"].evidence.startswith("KB4012212 (2017-03 security-only update) is installed and fixes MS17-010")
    assert v["cve-2020-0796"].status == "not_applicable"
    assert v["smbv1-enabled"].status == "missing"


def test_windows10_1909_at_720_patched_by_build_revision():
    reg, meta = load_recording(W1909)
    facts, notes = facts_from_registry(reg, address=meta["address"])
    assert notes == []
    assert (facts.host, facts.os_name, facts.os_version, facts.build, facts.ubr, facts.service_pack, facts.architecture) == (
        "ENG-LT-0412", "Windows 10 Pro", "10.0.18363", 18363, 720, 0, "x64")
    # the cumulative update is "Package_for_RollupFix": only SSUs and the enablement package carry KB names
    assert facts.installed_kbs == ["KB4517245", "KB4537759", "KB4541338", "KB4552152"]
    assert facts.smb1_server is False  # Windows 10 without the srv (SMB 1.0 server) driver service
    assert facts.disable_compression is False
    v = verdicts(facts)
    assert v["cve-2020-0796"].status == "patched"
    assert v["cve-2020-0796"].evidence == "OS build 18363.720 is at or above 18363.720 (KB4551762)"
    assert v["ms17-010"].status == "not_applicable"


def test_windows10_1909_before_the_fix_with_the_workaround():
    data = recording(W1909)
    data["keys"][CURRENT_VERSION]["UBR"] = 657
    data["keys"][r"SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters"]["DisableCompression"] = 1
    facts, _ = facts_from_registry(RecordedRegistry(data["keys"], data["denied"]))
    assert (facts.ubr, facts.disable_compression) == (657, True)
    v = verdicts(facts)["cve-2020-0796"]
    assert v.status == "missing" and "18363.657 is below 18363.720" in v.evidence
    assert v.fix[0]["kb"] == "KB4551762"


def test_windows11_keeps_the_windows10_product_name():
    data = recording(W1909)
    data["keys"][CURRENT_VERSION].update(CurrentBuild="22631", CurrentBuildNumber="22631", UBR=3296, DisplayVersion="23H2")
    facts, _ = facts_from_registry(RecordedRegistry(data["keys"]))
    assert facts.os_name == "Windows 11 Pro"
    assert verdicts(facts)["cve-2020-0796"].status == "not_applicable"
    assert facts.product == "windows-11-23h2"


def test_windows_xp_updates_key_and_smbdevice():
    keys = {
        CURRENT_VERSION: {"ProductName": "Microsoft Windows XP", "CurrentVersion": "5.1", "CurrentBuildNumber": "2600",
                          "CurrentBuild": "1.511.1 () (Obsolete data - do not use)", "CSDVersion": "Service Pack 3"},
        r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment": {"PROCESSOR_ARCHITECTURE": "x86"},
        r"SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters": {"restrictnullsessaccess": 1},
        r"SYSTEM\CurrentControlSet\Services\LanmanServer": {"Start": 2},
        r"SYSTEM\CurrentControlSet\Services\NetBT\Parameters": {"SMBDeviceEnabled": 0},
        r"SYSTEM\CurrentControlSet\Services\mssecsvc2.0": {"Start": 2, "ImagePath": "C:\\WINDOWS\\mssecsvc.exe -m security"},
        r"SOFTWARE\Microsoft\Updates\Windows XP\SP4\KB4012598": {"Description": "Security Update for Windows XP (KB4012598)"},
        r"SOFTWARE\Microsoft\Updates\Windows XP\SP4\KB958644": {"Description": "Security Update for Windows XP (KB958644)"},
    }
    facts, notes = facts_from_registry(RecordedRegistry(keys))
    assert facts.installed_kbs == ["KB958644", "KB4012598"]
    assert (facts.service_pack, facts.build, facts.architecture, facts.smb_device_enabled, facts.smb1_server) == (3, 2600, "x86", False, True)
    assert facts.wannacry_indicators == ["service mssecsvc2.0"]
    assert notes == []  # no CBS on XP: the Updates key is the list
    v = verdicts(facts)
    assert v["ms17-010"].status == "patched" and "WannaCry indicators present: service mssecsvc2.0" in v["ms17-010"].evidence
    assert v["erraticgopher"].status == "patched"  # no update exists; SMBDeviceEnabled=0 is the workaround


def test_partial_registries():
    facts, notes = facts_from_registry(RecordedRegistry({CURRENT_VERSION: {"CurrentVersion": "6.1", "SystemRoot": "c:\\Windows"},
                                                         r"SYSTEM\CurrentControlSet\Control\ProductOptions": {"ProductType": "ServerNT"}}))
    assert facts.os_name is None and facts.installed_kbs is None and facts.wannacry_indicators is None
    assert notes and notes[0].startswith("partial: the registry has no ProductName") and "CurrentVersion=6.1" in notes[0]
    assert verdicts(facts)["ms17-010"].status == "unknown"
    data = recording(WIN7)
    facts, notes = facts_from_registry(RecordedRegistry(data["keys"], denied=[CBS_PACKAGES]))
    assert facts.installed_kbs is None
    assert any("access denied to HKLM\\" + CBS_PACKAGES in n for n in notes)
    assert verdicts(facts)["ms17-010"].status == "unknown"


# --- the pool: per-host errors and deadlines ----------------------------------------------

class _Failing:
    def __init__(self, exc):
        self.exc, self.notes, self.server_name, self.port = exc, [], None, 445

    def open(self):
        raise self.exc

    def close(self):
        pass


class _Hanging(_Failing):
    def __init__(self):
        super().__init__(None)
        self.released = threading.Event()

    def open(self):
        self.released.wait(10)
        raise OSError("aborted")

    def abort(self):
        self.released.set()


def test_pool_isolates_failures_and_timeouts():
    from impacket.smbconnection import SessionError

    win7 = load_recording(WIN7)[0]
    w1909 = load_recording(W1909)[0]
    hang = _Hanging()
    sessions = {
        "127.40.0.1": lambda: RecordedSession(win7, "WS-FIN-12"),
        "127.40.0.2": lambda: _Failing(SessionError(0xC000006D)),
        "127.40.0.3": lambda: hang,
        "127.40.0.4": lambda: RecordedSession(w1909, "ENG-LT-0412", files=["tasksche.exe"]),
        "127.40.0.5": lambda: _Failing(ConnectionRefusedError(111, "Connection refused")),
        "127.40.0.6": lambda: _Failing(remote._Failed("remote-registry-not-running", remote.NOT_RUNNING)),
    }
    t0 = time.monotonic()
    run = audit_remote(list(sessions), "admin", "x", timeout=1.0, workers=4, session_factory=lambda t: sessions[t]())
    assert time.monotonic() - t0 < 5
    assert hang.released.is_set()  # the watchdog aborted the hung session
    assert [r.address for r in run.results] == ["127.40.0.1", "127.40.0.4"]
    assert run.results[0].verdict("ms17-010").status == "patched"
    assert run.results[0].source == "winreg:127.40.0.1"
    assert run.results[0].facts.listening == {"445": True}
    assert run.results[1].facts.wannacry_indicators == ["file C:\\Windows\\tasksche.exe"]
    by = {e.target: e for e in run.errors}
    assert all(isinstance(e, RemoteAuditError) for e in run.errors)
    assert by["127.40.0.2"].kind == "logon-failure" and "STATUS_LOGON_FAILURE" in str(by["127.40.0.2"])
    assert by["127.40.0.3"].kind == "timeout"
    assert by["127.40.0.5"].kind == "connection-refused"
    assert by["127.40.0.6"].kind == "remote-registry-not-running"
    assert str(by["127.40.0.6"]).startswith("127.40.0.6: remote-registry-not-running: RemoteRegistry not running")
    assert {e.kind for e in run.errors} <= set(remote.ERROR_KINDS)


def test_targets_expand_like_scan():
    # the scanner's rules: a CIDR without its network and broadcast address, duplicates once
    assert remote.expand_targets(["127.40.1.0/30", "127.40.2.1-2", "127.40.1.1"]) == ["127.40.1.1", "127.40.1.2", "127.40.2.1", "127.40.2.2"]
    with pytest.raises(ValueError):
        remote.expand_targets(["127.40.1.0/33"])


def test_winreg_pipe_errors_map_to_kinds(monkeypatch):
    from impacket.smbconnection import SessionError

    s = remote.ImpacketSession("127.40.0.9", "u", "p")
    monkeypatch.setattr(s, "_bind_winreg", lambda: (_ for _ in ()).throw(SessionError(remote.STATUS_OBJECT_NAME_NOT_FOUND)))
    with pytest.raises(remote._Failed) as got:
        s.registry(time.monotonic() + 5)
    assert got.value.kind == "remote-registry-not-running" and "RemoteRegistry not running" in got.value.detail
    monkeypatch.setattr(s, "_bind_winreg", lambda: (_ for _ in ()).throw(SessionError(remote.STATUS_ACCESS_DENIED)))
    with pytest.raises(remote._Failed) as got:
        s.registry(time.monotonic() + 5)
    assert got.value.kind == "access-denied"


def test_silent_host_times_out_on_loopback():
    """A listener that accepts and never answers: the host fails alone, within its timeout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    try:
        t0 = time.monotonic()
        run = audit_remote(["127.0.0.1"], "u", "p", timeout=1.5, workers=2, port=port)
        assert time.monotonic() - t0 < 6
        assert run.results == []
        assert [e.kind for e in run.errors] in (["timeout"], ["connection-timeout"])
    finally:
        stop.set()
        th.join(2)
        for c in held:
            c.close()
        srv.close()


# --- real Samba -------------------------------------------------------------------------------

@pytest.mark.samba
def test_samba_right_and_wrong_credentials(samba_factory):
    good = samba_factory(config="smb1-off")
    bad = samba_factory(config="smb1-guest")
    good.add_user("scanuser", "Sc4n-pass!")
    bad.add_user("scanuser", "another-Pass1")
    refused = good.address.rsplit(".", 1)[0] + ".250"  # nothing listens there
    run = audit_remote([good.address, bad.address, refused], "scanuser", "Sc4n-pass!", timeout=15, workers=3)
    assert [r.address for r in run.results] == [good.address]
    r = run.results[0]
    assert r.host == good.netbios_name and r.source == f"winreg:{good.address}"
    assert r.facts.os_name is None and r.facts.listening == {"445": True}
    v = r.verdict("ms17-010")
    assert v.status == "unknown" and "no OS name" in v.evidence
    by = {e.target: e for e in run.errors}
    assert by[good.address].kind == "partial" and "no ProductName" in str(by[good.address])
    assert by[bad.address].kind == "logon-failure" and "STATUS_LOGON_FAILURE" in str(by[bad.address])
    assert by[refused].kind == "connection-refused"


@pytest.mark.samba
def test_samba_guest_mapping_and_missing_pipe(samba_factory, monkeypatch):
    srv = samba_factory(config="smb1-guest")  # map to guest = Bad User
    run = audit_remote([srv.address], "nosuchuser", "whatever", timeout=15)
    assert run.results == [] and [e.kind for e in run.errors] == ["guest-session"]
    srv.add_user("scanuser", "Sc4n-pass!")

    def no_winreg(self):  # a pipe the server does not have: the answer a stopped RemoteRegistry gives
        from impacket.dcerpc.v5 import rrp, transport

        dce = transport.SMBTransport(self.target, filename=r"\nosuchpipe", smb_connection=self.conn).get_dce_rpc()
        dce.connect()
        dce.bind(rrp.MSRPC_UUID_RRP)
        return dce

    monkeypatch.setattr(remote.ImpacketSession, "_bind_winreg", no_winreg)
    run = audit_remote([srv.address], "scanuser", "Sc4n-pass!", timeout=15)
    assert run.results == []
    (err,) = run.errors
    assert err.kind == "remote-registry-not-running" and "--start-remote-registry" in str(err)
