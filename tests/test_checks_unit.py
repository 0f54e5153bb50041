"""Check semantics on constructed host facts, and the transaction checks fed
with the real server replies of the corpus (WannaCry's vulnerable answer,
the DoublePulsar implant's MID 81)."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from datetime import date

import pytest

from corpus import server_replies
from smbsentry.checks.base import Access, IpcSession
from smbsentry.protocol.smb1_session import Smb1Session
from smbsentry.checks.doublepulsar import xor_key
from smbsentry.checks.registry import all_ids, select
from smbsentry.model import HostResult, Identity, Smb1Info, Smb2Info
from smbsentry.protocol import smb1


@dataclass
class FakeHost:
    result: HostResult
    credentials: object | None = None
    scan_date: date = date(2026, 11, 21)
    facts: dict = field(default_factory=dict)
    ipc: IpcSession | None = None
    ipc_reason: str = "SMBv1 is disabled"
    accesses: dict = field(default_factory=dict)

    async def smb1_ipc(self):
        return (self.ipc, "" if self.ipc else self.ipc_reason)

    async def access(self, kind, list_shares=False):
        return self.accesses.get(kind, Access(kind, None, "not tested"))


def windows(build: int, version: str = "10.0", dialects=("2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"), compression=("LZNT1",), names=()):
    from smbsentry.kb.builds import lookup

    major, minor = (int(x) for x in version.split("."))
    g = lookup(major, minor, build)
    r = HostResult("127.0.0.9", ports={"445": "open"})
    r.identity = Identity(os_version=f"{version}.{build}", os_build=build, os_name=g.name, os_candidates=list(g.candidates), implementation="windows")
    r.smb2 = Smb2Info(dialects=list(dialects), signing="enabled", compression=list(compression))
    r.smb1 = Smb1Info(enabled=False, ports={"445": False})
    return r


def run_check(check_id: str, host) -> list:
    (check,) = select(check_id)
    return asyncio.run(check.run(host))


def one(check_id, host):
    out = run_check(check_id, host)
    assert len(out) == 1, out
    return out[0]


def test_registry_lists_every_contract_id():
    assert set(all_ids()) >= {
        "ms17-010", "doublepulsar", "cve-2020-0796", "smbv1-enabled", "smb-signing-not-required",
        "smb-null-session", "smb-guest-access", "ms08-067", "ms09-050", "ms10-061", "cve-2017-7494", "eol-os",
    }
    with pytest.raises(ValueError, match="unknown check 'nope'"):
        select("ms17-010,nope")


@pytest.mark.parametrize("build", [18362, 18363])
def test_smbghost_likely_only_for_1903_1909_with_lznt1(build):
    f = one("cve-2020-0796", FakeHost(windows(build)))
    assert f.status == "likely" and f.inferred
    assert str(build) in f.evidence and "720" in f.reason


def test_smbghost_server_2019_with_compression_is_not_affected():
    f = one("cve-2020-0796", FakeHost(windows(17763)))
    assert f.status == "not_vulnerable" and "17763" in f.evidence


def test_smbghost_without_compression_context_is_not_vulnerable():
    f = one("cve-2020-0796", FakeHost(windows(18363, compression=())))
    assert f.status == "not_vulnerable" and "compression" in f.evidence


@pytest.mark.parametrize("ubr,expected", [(719, "vulnerable"), (720, "not_vulnerable"), (1016, "not_vulnerable")])
def test_smbghost_settled_by_the_update_revision(ubr, expected):
    f = one("cve-2020-0796", FakeHost(windows(18363), facts={"ubr": ubr}))
    assert f.status == expected and f"18363.{ubr}" in f.evidence


def test_smbghost_silent_for_samba():
    r = windows(18363)
    r.identity.implementation = "samba"
    assert run_check("cve-2020-0796", FakeHost(r)) == []


@pytest.mark.parametrize(
    "version,build,ms08,ms09,ms10",
    [
        ("5.1", 2600, "likely", "not_vulnerable", "likely"),
        ("5.2", 3790, "likely", "not_vulnerable", "likely"),
        ("6.0", 6001, "likely", "likely", "likely"),
        ("6.0", 6002, "not_vulnerable", "likely", "likely"),  # SP2 shipped after MS08-067
        ("6.1", 7600, "not_vulnerable", "not_vulnerable", "likely"),
        ("6.1", 7601, "not_vulnerable", "not_vulnerable", "not_vulnerable"),  # SP1 includes MS10-061
        ("6.3", 9600, "not_vulnerable", "not_vulnerable", "not_vulnerable"),
        ("10.0", 17763, "not_vulnerable", "not_vulnerable", "not_vulnerable"),
    ],
)
def test_inferred_from_build(version, build, ms08, ms09, ms10):
    host = FakeHost(windows(build, version, dialects=("2.0.2",), compression=()))
    for cid, want in (("ms08-067", ms08), ("ms09-050", ms09), ("ms10-061", ms10)):
        f = one(cid, host)
        assert f.status == want, (cid, f)
        assert f.inferred is True


@pytest.mark.parametrize(
    "version,build,status",
    [("5.1", 2600, "vulnerable"), ("6.1", 7601, "vulnerable"), ("10.0", 18363, "vulnerable"),
     ("10.0", 20348, "not_vulnerable"), ("10.0", 17763, "not_vulnerable"), ("10.0", 14393, "unknown")],
)
def test_eol_os(version, build, status):
    f = one("eol-os", FakeHost(windows(build, version)))
    assert f.status == status, f
    if status == "unknown":  # 1607 LTSB ended, Server 2016 has not
        assert "Server 2016" in f.reason and "1607" in f.reason


def test_signing_reads_both_protocols():
    r = windows(20348)
    r.smb2.signing = "required"
    assert one("smb-signing-not-required", FakeHost(r)).status == "not_vulnerable"
    r.smb1 = Smb1Info(enabled=True, ports={"445": True}, signing="enabled")
    f = one("smb-signing-not-required", FakeHost(r))
    assert f.status == "vulnerable" and "SMB1 negotiate: signing enabled" in f.evidence


def test_smbv1_per_port():
    r = windows(7601, "6.1")
    r.smb1 = Smb1Info(enabled=True, ports={"445": True, "139": False})
    out = {f.port: f.status for f in run_check("smbv1-enabled", FakeHost(r))}
    assert out == {445: "vulnerable", 139: "not_vulnerable"}


def samba(version: str | None):
    r = HostResult("127.0.0.9", ports={"445": "open"})
    r.identity = Identity(implementation="samba", samba_version=version, os_version="6.1.0", os_build=0)
    return r


@pytest.mark.parametrize(
    "version,writable,status",
    [("4.5.9", True, "likely"), ("4.5.9", False, "unknown"), ("4.5.10", True, "not_vulnerable"),
     ("4.6.3-Ubuntu", True, "likely"), ("3.4.17", True, "not_vulnerable"), ("4.17.12-Debian", True, "not_vulnerable"),
     (None, True, "unknown")],
)
def test_sambacry(version, writable, status):
    acc = Access("guest", True, "SMB1 guest logon reached IPC$", "SMB1", shares=[("public", 0, "")],
                 share_access={"public": "writable" if writable else "read"})
    f = one("cve-2017-7494", FakeHost(samba(version), accesses={"guest": acc}))
    assert f.status == status, f


# -- transaction checks against the corpus's real replies --------------------


def ipc_replying(reply: bytes, log: list) -> IpcSession:
    """IPC$ whose transactions go through a real Smb1Session (numbered so that
    the captured reply's MID is the one expected) and get `reply`."""
    session = Smb1Session()
    if len(reply) >= smb1.Header.size:
        session.mid = (smb1.Header.unpack_from(reply).mid - 1) & 0xFFFF

    async def transaction(command, setup, **fields):
        step = session.transaction(command, 2048, 2048, setup, **fields)
        log.append(step.send)
        return session.feed(reply).event

    return IpcSession("anonymous", 445, uid=2048, tid=2048, transaction=transaction)


def test_ms17_010_vulnerable_reply_from_wannacry():
    replies = [m for m in server_replies("wannacry.pcap", first_bytes=b"\xffSMB", command=0x25)
               if struct.unpack_from("<I", m.data, 5)[0] == 0xC0000205]
    assert replies
    log: list = []
    f = one("ms17-010", FakeHost(windows(7601, "6.1"), ipc=ipc_replying(replies[0].data, log)))
    assert f.status == "vulnerable" and "0xC0000205" in f.evidence
    # the probe we sent: TRANSACTION, PeekNamedPipe on FID 0, params/data at 0x4A
    sent = smb1.parse_message(log[0])
    assert sent.header.command == smb1.TRANSACTION
    assert struct.unpack_from("<HH", sent.words, 28) == (0x0023, 0x0000)
    assert struct.unpack_from("<H", sent.words, 20)[0] == 0x4A


def smb1_on_no_session(build: int, version: str) -> HostResult:
    r = windows(build, version)
    r.smb1 = Smb1Info(enabled=True, ports={"445": True})
    return r


@pytest.mark.parametrize("check_id", ["ms17-010", "doublepulsar"])
def test_unknown_when_smb1_is_on_and_no_session_on_an_affected_build(check_id):
    """The locked-down 2008 R2 case: the probe cannot run and nothing else decides."""
    reason = "anonymous logon refused with 0xC0000022 (STATUS_ACCESS_DENIED)"
    f = one(check_id, FakeHost(smb1_on_no_session(7601, "6.1"), ipc=None, ipc_reason=reason))
    assert f.status == "unknown" and reason in f.reason
    assert "to settle it" in f.reason and "--user" in f.reason


@pytest.mark.parametrize("check_id", ["ms17-010", "doublepulsar"])
@pytest.mark.parametrize("build,version", [(7601, "6.1"), (19041, "10.0"), (17763, "10.0")])
def test_smb1_proven_off_decides_not_vulnerable_on_any_build(check_id, build, version):
    r = windows(build, version)
    r.ports = {"445": "open", "139": "open"}
    r.smb1 = Smb1Info(enabled=False, ports={"445": False, "139": False})
    f = one(check_id, FakeHost(r, ipc=None, ipc_reason="SMBv1 is disabled"))
    assert f.status == "not_vulnerable" and not f.inferred
    assert "445 and 139" in f.evidence and "SMBv1 server" in f.reason


@pytest.mark.parametrize("check_id", ["ms17-010", "doublepulsar"])
def test_smb1_not_proven_off_when_an_open_port_gave_no_answer(check_id):
    """139 open but its negotiate never completed: SMBv1 is not proven off there."""
    r = windows(7601, "6.1")
    r.ports = {"445": "open", "139": "open"}
    r.smb1 = Smb1Info(enabled=False, ports={"445": False})
    f = one(check_id, FakeHost(r, ipc=None, ipc_reason="no SMB1 session"))
    assert f.status == "unknown"


@pytest.mark.parametrize("check_id", ["ms17-010", "doublepulsar"])
@pytest.mark.parametrize("build", [15063, 17763, 19041, 20348, 26100])
def test_a_build_no_affected_release_shares_decides_not_vulnerable_inferred(check_id, build):
    r = smb1_on_no_session(build, "10.0")
    f = one(check_id, FakeHost(r, ipc=None, ipc_reason="anonymous logon refused"))
    assert f.status == "not_vulnerable" and f.inferred
    assert str(build) in f.evidence and "MS17-010" in f.evidence


@pytest.mark.parametrize("check_id", ["ms17-010", "doublepulsar"])
@pytest.mark.parametrize("build,version", [(14393, "10.0"), (9200, "6.2"), (2600, "5.1")])
def test_a_build_some_affected_release_shares_does_not_decide(check_id, build, version):
    """1607/2016, 8/2012 and XP are MS17-010 releases (and so possible implant hosts)."""
    f = one(check_id, FakeHost(smb1_on_no_session(build, version), ipc=None, ipc_reason="anonymous logon refused"))
    assert f.status == "unknown"


def test_samba_with_smb1_on_and_no_session_is_not_an_ms17_010_release():
    r = smb1_on_no_session(7601, "6.1")
    r.identity = Identity(os_version="6.1.0", os_build=0, os_name="Samba 4.17.12", os_candidates=[],
                          implementation="samba", samba_version="4.17.12")
    f = one("ms17-010", FakeHost(r, ipc=None, ipc_reason="anonymous logon refused"))
    assert f.status == "not_vulnerable" and f.inferred and "Samba" in f.evidence


def test_unknown_build_does_not_decide():
    r = smb1_on_no_session(7601, "6.1")
    r.identity = Identity(os_version="10.0.30000", os_build=30000, os_name=None, os_candidates=[], implementation="windows")
    f = one("ms17-010", FakeHost(r, ipc=None, ipc_reason="anonymous logon refused"))
    assert f.status == "unknown"


def test_doublepulsar_implant_reply_from_the_corpus():
    (reply,) = [m for m in server_replies("doublepulsar-backdoor-connect-win7.pcap", first_bytes=b"\xffSMB", command=0x32)
                if struct.unpack_from("<H", m.data, 30)[0] == 81]
    log: list = []
    f = one("doublepulsar", FakeHost(windows(7601, "6.1"), ipc=ipc_replying(reply.data, log)))
    assert f.status == "vulnerable"
    sig = reply.data[14:22]
    assert f.details["xor_key"] == f"0x{xor_key(sig):08X}"
    assert f.details["architecture"] == ("x86" if sig[4:8] == b"\0\0\0\0" else "x64")
    sent = smb1.parse_message(log[0])
    assert sent.header.command == smb1.TRANSACTION2 and sent.header.mid == 65
    assert struct.unpack_from("<I", sent.words, 12)[0] == 0x00A4D9A6  # Timeout: the ping command


def test_doublepulsar_clean_host_keeps_the_mid():
    # a clean reply: same shape, MID unchanged
    (reply,) = [m for m in server_replies("doublepulsar-backdoor-connect-win7.pcap", first_bytes=b"\xffSMB", command=0x32)
                if struct.unpack_from("<H", m.data, 30)[0] == 81]
    clean = bytearray(reply.data)
    struct.pack_into("<H", clean, 30, 65)
    f = one("doublepulsar", FakeHost(windows(7601, "6.1"), ipc=ipc_replying(bytes(clean), [])))
    assert f.status == "not_vulnerable"


def test_a_malformed_reply_is_unknown_not_a_crash():
    from smbsentry.scan.fingerprint import run_checks

    class Ctx(FakeHost):
        pass

    host = Ctx(windows(7601, "6.1"), ipc=ipc_replying(b"\xffSMB\x25garbage", []))
    asyncio.run(run_checks(host, select("ms17-010,doublepulsar,eol-os")))
    by_id = {f.id: f for f in host.result.findings}
    assert by_id["ms17-010"].status == "unknown" and "malformed" in by_id["ms17-010"].reason
    assert by_id["doublepulsar"].status == "unknown"
    assert by_id["eol-os"].status == "vulnerable"  # the other checks still ran


def test_a_buggy_check_is_isolated():
    """A check that raises something unexpected yields unknown, the rest run."""
    from smbsentry.checks.base import Check
    from smbsentry.scan.fingerprint import run_checks

    class Buggy(Check):
        id = "ms17-010"

        async def run(self, host):
            raise RuntimeError("boom")

    host = FakeHost(windows(7601, "6.1"))
    asyncio.run(run_checks(host, [Buggy(), *select("eol-os")]))
    by_id = {f.id: f for f in host.result.findings}
    assert by_id["ms17-010"].status == "unknown" and "RuntimeError: boom" in by_id["ms17-010"].reason
    assert by_id["eol-os"].status == "vulnerable"


def test_an_unexpected_error_in_one_host_stays_with_that_host(monkeypatch):
    """scan_host never raises: the failure becomes an errors entry."""
    from smbsentry.scan import fingerprint
    from smbsentry.scan.fingerprint import RateLimiter, ScanOptions, scan_host

    async def broken(ctx):
        raise RuntimeError("internal bug")

    monkeypatch.setattr(fingerprint, "fingerprint", broken)
    r = asyncio.run(scan_host("127.0.0.9", ScanOptions(ports=(44999,), timeout=0.2), RateLimiter(None)))
    assert any("internal-error: RuntimeError: internal bug" in e for e in r.errors)


@pytest.mark.parametrize("build,when,status,needle", [
    (19041, date(2026, 12, 7), "vulnerable", "the date of its latest release Windows 10 22H2"),
    (19041, date(2023, 1, 1), "unknown", "Windows Server 2004 to Windows Server 20H2 (ended 2022-08-09"),
    (26100, date(2026, 12, 7), "not_vulnerable", "Windows 11 24H2 to Windows 11 25H2 (supported until 2028-10-10"),
    (20348, date(2026, 12, 7), "not_vulnerable", "Windows Server 2022 (supported until 2031-10-14)"),
])
def test_end_of_support_of_a_build_shared_through_enablement_packages(build, when, status, needle):
    """A line's end of support is its latest release's (the build may be that release), and the text says so."""
    f = one("eol-os", FakeHost(windows(build), scan_date=when))
    assert f.status == status
    assert needle in (f.evidence or f.reason)
