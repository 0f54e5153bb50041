"""The fingerprint against real Samba servers, cross-checked with nmap.

Each preset fixture runs Debian's smbd on its own loopback address.  We
assert what the configuration implies (SMBv1 on/off per port, dialects,
signing, identity with SMBv1 off) and that our dialects, signing and
identity agree with nmap's smb-protocols, smb2-security-mode,
smb-security-mode and smb-os-discovery wherever nmap reports them.
"""

from __future__ import annotations

import asyncio

import pytest

import nmaprunner
from smbsentry.protocol import status
from smbsentry.scan.connection import Connection
from smbsentry.checks.registry import select
from smbsentry.scan.fingerprint import RateLimiter, ScanOptions, scan_host
from smbsentry.scan.session import Credentials, Smb1Client, Smb2Client

pytestmark = pytest.mark.samba

ALL = ["2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"]


def fingerprint(address: str, **kw):
    return asyncio.run(scan_host(address, ScanOptions(timeout=5, **kw), RateLimiter(None)))


def test_smb1_guest_server(samba_smb1_guest, samba_version):
    r = fingerprint(samba_smb1_guest.address)
    assert r.ports == {"445": "open", "139": "open"}
    assert r.errors == []
    assert r.smb1.enabled is True
    assert r.smb1.ports == {"445": True, "139": True}
    assert r.smb1.native_lm == f"Samba {samba_version}"
    assert r.smb1.primary_domain == samba_smb1_guest.workgroup
    assert r.smb2.dialects == ALL
    assert r.smb2.signing == "enabled"
    ident = r.identity
    assert ident.netbios_name == samba_smb1_guest.netbios_name
    assert ident.implementation == "samba"
    assert ident.samba_version == samba_version
    assert ident.os_version == "6.1.0"  # what Samba puts in the NTLM Version
    assert ident.null_session is True
    assert ident.guest_session is None  # not tried: no check asked for it
    # economy: 3 connections on 445 and one on 139
    assert r.connections == 4
    with_guest = fingerprint(samba_smb1_guest.address, checks=tuple(select("smb-guest-access")))
    assert with_guest.identity.guest_session is True  # map to guest = Bad User
    assert with_guest.connections == 4  # the guest logon reuses the SMB1 session


def test_identity_comes_through_with_smb1_off(samba_smb1_off):
    r = fingerprint(samba_smb1_off.address)
    assert r.smb1.enabled is False
    assert r.smb1.ports == {"445": False, "139": False}
    assert r.smb1.native_os is None
    assert r.identity.netbios_name == samba_smb1_off.netbios_name
    assert r.identity.source == "smb2-ntlm"
    assert r.identity.implementation == "samba"
    assert r.identity.samba_version is None  # not visible without SMB1: never guessed
    with_guest = fingerprint(samba_smb1_off.address, checks=tuple(select("smb-guest-access")))
    assert with_guest.identity.guest_session is False  # map to guest = Never
    assert r.smb2.dialects == ALL
    assert r.smb2.boot_time is None  # Samba never reports its start time


def test_signing_required_is_read_from_the_negotiate(samba_signing_required):
    r = fingerprint(samba_signing_required.address)
    assert r.smb2.signing == "required"


def test_max_protocol_smb2_10(samba_max_smb2_10):
    r = fingerprint(samba_max_smb2_10.address)
    assert r.smb2.dialects == ["2.0.2", "2.1"]
    assert r.smb2.compression == [] and r.smb2.encryption == []


@pytest.mark.parametrize("preset", ["samba_smb1_guest", "samba_smb1_off", "samba_max_smb2_10"])
def test_exact_dialects_agree_with_range(preset, request):
    server = request.getfixturevalue(preset)
    ranged = fingerprint(server.address)
    exact = fingerprint(server.address, dialect_method="exact")
    assert exact.smb2.dialects == ranged.smb2.dialects
    assert exact.smb2.dialects_confirmed == exact.smb2.dialects
    assert exact.smb2.dialects_method == "exact"


@pytest.mark.nmap
@pytest.mark.parametrize(
    "preset", ["samba_smb1_guest", "samba_smb1_off", "samba_signing_required", "samba_max_smb2_10"]
)
def test_agrees_with_nmap(preset, request, require_nmap):
    server = request.getfixturevalue(preset)
    ours = fingerprint(server.address)
    theirs = nmaprunner.scan(
        server.address,
        scripts="smb-protocols,smb2-security-mode,smb-security-mode,smb-os-discovery",
    )
    assert theirs["dialects"], theirs["raw_scripts"]
    assert ours.smb2.dialects == theirs["dialects"]
    assert ours.smb1.enabled == bool(theirs["smb1"])
    assert ours.smb2.signing == theirs["smb2_signing"]
    disc = theirs["os_discovery"]
    if ours.smb1.enabled:
        # smb-os-discovery is SMB1-only: where it ran, the strings must match
        assert disc, theirs["raw_scripts"]
        assert disc.get("lanmanager") == ours.smb1.native_lm
        assert disc.get("server") == ours.identity.netbios_name
        assert disc.get("workgroup") == ours.smb1.primary_domain
        smb1_mode = theirs["smb1_signing"]
        if smb1_mode:
            assert smb1_mode.split()[0] == ours.smb1.signing
    else:
        assert not disc.get("server")


def _client_logon(address: str, proto: str, creds: Credentials):
    async def run():
        conn = await Connection.open(address, 445, 5.0)
        try:
            client = Smb1Client(conn, 5.0) if proto == "smb1" else Smb2Client(conn, 5.0)
            resp, why = await client.negotiate()
            assert resp is not None, why
            return await client.logon("credentials", creds)
        finally:
            conn.close()

    return asyncio.run(run())


@pytest.mark.parametrize("proto", ["smb1", "smb2"])
def test_ntlmv2_logon_with_credentials(samba_smb1_guest, proto):
    import sambaserver

    samba_smb1_guest.add_user(sambaserver.TEST_USER, sambaserver.TEST_PASSWORD)
    good = _client_logon(samba_smb1_guest.address, proto, Credentials(sambaserver.TEST_USER, sambaserver.TEST_PASSWORD))
    assert good.status == status.SUCCESS
    assert not good.guest
    bad = _client_logon(samba_smb1_guest.address, proto, Credentials(sambaserver.TEST_USER, "wrong-password"))
    # a wrong password for an existing user is refused, not mapped to guest
    assert bad.status == status.LOGON_FAILURE


def test_port_139_needs_the_session_request_and_gets_smb1(samba_smb1_guest):
    r = fingerprint(samba_smb1_guest.address, ports=(139,))
    assert r.ports == {"139": "open"}
    assert r.smb1.enabled is True
    assert r.identity.netbios_name == samba_smb1_guest.netbios_name
    assert r.smb2.dialects == ALL  # SMB2 over NetBIOS session service works too
