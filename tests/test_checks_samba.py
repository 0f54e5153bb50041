"""Every check against the real Samba configurations of the core issue.

Samba is not affected by MS17-010 (it answers PeekNamedPipe on FID 0 with
INVALID_HANDLE, like a patched Windows), carries no implant, and with SMBv1
off the MS17-010 probe cannot run, which must read `unknown`, never safe.
"""

from __future__ import annotations

import asyncio

import pytest

from smbsentry.checks.registry import select
from smbsentry.scan.fingerprint import RateLimiter, ScanOptions, scan_host

pytestmark = pytest.mark.samba


def scan(address: str, checks: str = "all"):
    r = asyncio.run(scan_host(address, ScanOptions(timeout=5, checks=tuple(select(checks))), RateLimiter(None)))
    by_id: dict[str, list] = {}
    for f in r.findings:
        by_id.setdefault(f.id, []).append(f)
    return r, by_id


def test_smb1_guest_server(samba_smb1_guest):
    r, f = scan(samba_smb1_guest.address)
    assert r.errors == []
    (ms17,) = f["ms17-010"]
    assert ms17.status == "not_vulnerable" and "0xC0000008" in ms17.evidence
    assert "anonymous IPC$" in ms17.evidence
    (dp,) = f["doublepulsar"]
    assert dp.status == "not_vulnerable" and "same MID" in dp.evidence
    assert {x.port: x.status for x in f["smbv1-enabled"]} == {445: "vulnerable", 139: "vulnerable"}
    assert f["smb-signing-not-required"][0].status == "vulnerable"
    (null,) = f["smb-null-session"]
    assert null.status == "vulnerable" and "IPC$" in null.evidence
    (guest,) = f["smb-guest-access"]
    assert guest.status == "vulnerable"
    assert "public" in guest.details.get("shares", [])
    assert guest.details["share_access"]["public"] == "writable"
    (cry,) = f["cve-2017-7494"]
    assert cry.status == "not_vulnerable" and cry.inferred  # 4.17 is outside the affected ranges
    # Windows-only findings are not emitted for Samba
    for wid in ("ms08-067", "ms09-050", "ms10-061", "eol-os", "cve-2020-0796"):
        assert wid not in f


def test_smb1_proven_off_decides_ms17_010_with_its_reason(samba_smb1_off):
    r, f = scan(samba_smb1_off.address)
    (ms17,) = f["ms17-010"]
    assert ms17.status == "not_vulnerable" and not ms17.inferred
    assert "refused on 445 and 139" in ms17.evidence and "SMBv1 server" in ms17.reason
    assert "audit" in ms17.reason  # the patch state is not visible remotely: says how to know
    (dp,) = f["doublepulsar"]
    assert dp.status == "not_vulnerable" and "SMBv1 server" in dp.reason
    assert {x.port: x.status for x in f["smbv1-enabled"]} == {445: "not_vulnerable", 139: "not_vulnerable"}
    (cry,) = f["cve-2017-7494"]
    assert cry.status == "unknown" and "not visible" in cry.reason
    # guest is refused (map to guest = Never); anonymous reaches IPC$ over SMB2
    assert f["smb-guest-access"][0].status == "not_vulnerable"
    assert f["smb-null-session"][0].status == "vulnerable"
    assert "SMB2" in f["smb-null-session"][0].evidence


def test_signing_required_server(samba_signing_required):
    _, f = scan(samba_signing_required.address, "smb-signing-not-required")
    (sig,) = f["smb-signing-not-required"]
    assert sig.status == "not_vulnerable" and "required" in sig.evidence


def test_credentials_reach_ipc_when_anonymous_and_guest_cannot(samba_factory):
    import sambaserver

    server = samba_factory(config="smb1-guest", options={"restrict anonymous": "2", "map to guest": "Never"})
    server.add_user(sambaserver.TEST_USER, sambaserver.TEST_PASSWORD)
    from smbsentry.scan.session import Credentials

    creds = Credentials(sambaserver.TEST_USER, sambaserver.TEST_PASSWORD)
    without, _ = scan(server.address, "ms17-010")
    # no session: the probe cannot run, but Samba is not an MS17-010 release
    assert without.findings[0].status == "not_vulnerable" and without.findings[0].inferred
    r = asyncio.run(
        scan_host(server.address, ScanOptions(timeout=5, credentials=creds, checks=tuple(select("ms17-010"))), RateLimiter(None))
    )
    (ms17,) = r.findings
    assert ms17.status == "not_vulnerable" and not ms17.inferred  # decided by the probe this time
    assert "credentials IPC$" in ms17.evidence
