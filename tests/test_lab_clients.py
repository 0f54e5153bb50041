"""impacket and pysmb against the lab: two independent SMB clients as peers.

The project's own client (test_lab.py) and nmap (test_lab_nmap.py) are not
the only clients the emulated hosts must satisfy.  impacket (the library of
NetExec and smbmap) and pysmb talk to every profile that answers over SMB1
and SMB2: negotiate, the logon, NetShareEnum through \\PIPE\\srvsvc (the
DCE/RPC bind and call over WRITE_ANDX/READ_ANDX on SMB1, IOCTL or WRITE/READ
on SMB2), and what each profile refuses and with which status.  The
expectation always comes from the profile, never from a copy of its answer.

pysmb sends an NTLMv2 response even for an empty user name, so the lab (like
MS-NLMP 3.2.5.1.2) sorts its "anonymous" logon as a named one: pysmb reaches
only the profiles that map unknown users to Guest.  impacket sends a true
null session.

The lab binds 127.52.0.x:44552 per address, away from the other lab tests.
"""

from __future__ import annotations

import pytest

from smbsentry.lab import profiles
from smbsentry.lab.background import BackgroundLab
from smbsentry.lab.pipes import share_type
from smbsentry.protocol import status

impacket_smb = pytest.importorskip("impacket.smb")
impacket_conn = pytest.importorskip("impacket.smbconnection")
smb_structs = pytest.importorskip("smb.smb_structs", reason="pysmb is a test dependency (pip install -e '.[test]')")
from impacket.dcerpc.v5 import rpcrt, srvs, transport  # noqa: E402
from smb.SMBConnection import SMBConnection  # noqa: E402

PORT = 44552
TIMEOUT = 3
NAMES = [n for n in profiles.ordered_names() if profiles.get(n).behaviour == "normal"]
DIALECTS = {"smb1": impacket_smb.SMB_DIALECT, "smb2": None}


def _speaks(p: profiles.Profile, proto: str) -> bool:
    return bool(p.smb1 and p.smb1.on(445)) if proto == "smb1" else p.smb2 is not None


def _cases(kind: str) -> list:
    """(profile, proto) pairs where the profile accepts a logon of `kind`."""
    return [pytest.param(n, proto, id=f"{n}-{proto}") for n in NAMES for proto in ("smb1", "smb2")
            if _speaks(profiles.get(n), proto) and profiles.get(n).access.allows(kind, proto)]


def _listing_allowed(p: profiles.Profile, kind: str) -> bool:
    access = p.access
    return access.may_open_pipe(kind, "srvsvc") and (
        access.share_listing == "anonymous" or (access.share_listing == "guest" and kind == "guest"))


@pytest.fixture(scope="module")
def lab():
    try:
        running = BackgroundLab(f"127.52.0.1-127.52.0.{len(NAMES)}", ports=[PORT], mix=",".join(NAMES),
                                bind_mode="per-address").start()
    except OSError as exc:
        pytest.skip(f"cannot bind the lab on 127.52.0.x:{PORT}: {exc}")
    yield running
    running.stop()


def address_of(lab, name: str) -> str:
    return lab.range.address(NAMES.index(name))


def _impacket(lab, name: str, proto: str):
    address = address_of(lab, name)
    return impacket_conn.SMBConnection(address, address, sess_port=PORT, preferredDialect=DIALECTS[proto],
                                       timeout=TIMEOUT)


# -- impacket ------------------------------------------------------------------------


@pytest.mark.parametrize("name, proto", _cases("anonymous"))
def test_impacket_anonymous_share_listing(lab, name, proto):
    p = profiles.get(name)
    conn = _impacket(lab, name, proto)
    try:
        assert (conn.getDialect() == impacket_smb.SMB_DIALECT) is (proto == "smb1")
        conn.login("", "")
        assert conn.isGuestSession() == 0
        if not _listing_allowed(p, "anonymous"):
            # RestrictNullSessAccess: the create of \srvsvc fails, as NetExec shows it
            with pytest.raises(impacket_conn.SessionError) as info:
                conn.listShares()
            assert info.value.getErrorCode() == status.ACCESS_DENIED
            return
        listed = [(s["shi1_netname"][:-1], s["shi1_type"], s["shi1_remark"][:-1]) for s in conn.listShares()]
    finally:
        conn.close()
    assert listed == [(s.name, share_type(s), s.remark) for s in p.shares]


@pytest.mark.parametrize("name, proto", _cases("anonymous") + _cases("guest"))
def test_impacket_srvsvc_bind_call_and_fault(lab, name, proto):
    """The DCE/RPC layer by hand: bind SRVSVC, NetrShareEnum level 0,
    NetrShareGetInfo (level 1 answered, level 2 refused as to a
    non-administrator, an unknown name), and an operation the emulated server
    does not implement (a fault, not a hang)."""
    p = profiles.get(name)
    kind = "anonymous" if p.access.allows("anonymous", proto) else "guest"
    conn = _impacket(lab, name, proto)
    try:
        conn.login("" if kind == "anonymous" else "Guest", "")
        rpc = transport.SMBTransport(conn.getRemoteHost(), filename=r"\srvsvc", smb_connection=conn)
        dce = rpc.get_dce_rpc()
        if not p.access.may_open_pipe(kind, "srvsvc"):
            with pytest.raises(impacket_conn.SessionError):
                dce.connect()
            return
        dce.connect()
        dce.bind(srvs.MSRPC_UUID_SRVS)
        if _listing_allowed(p, kind):
            reply = srvs.hNetrShareEnum(dce, 0)
            names = [e["shi0_netname"][:-1] for e in reply["InfoStruct"]["ShareInfo"]["Level0"]["Buffer"]]
            assert names == [s.name for s in p.shares]
            last = p.shares[-1]
            info = srvs.hNetrShareGetInfo(dce, last.name.lower() + "\x00", 1)["InfoStruct"]["ShareInfo1"]
            assert (info["shi1_netname"][:-1], info["shi1_type"], info["shi1_remark"][:-1]) == (
                last.name, share_type(last), last.remark)
            with pytest.raises(rpcrt.DCERPCException) as admin_only:  # level 2 carries the path: administrators only
                srvs.hNetrShareGetInfo(dce, last.name + "\x00", 2)
            assert admin_only.value.get_error_code() == 5
            with pytest.raises(rpcrt.DCERPCException) as missing:
                srvs.hNetrShareGetInfo(dce, "NOSUCHSHARE\x00", 1)
            assert missing.value.get_error_code() == 2310  # NERR_NetNameNotFound
        else:
            with pytest.raises(srvs.DCERPCSessionError) as info:
                srvs.hNetrShareEnum(dce, 1)
            assert info.value.get_error_code() == 5  # ERROR_ACCESS_DENIED
        with pytest.raises(rpcrt.DCERPCException) as fault:
            srvs.hNetrServerGetInfo(dce, 101)
        assert "nca_s_op_rng_error" in str(fault.value)
        dce.disconnect()
    finally:
        conn.close()


@pytest.mark.parametrize("name, proto", [pytest.param(n, proto, id=f"{n}-{proto}") for n in NAMES
                                         for proto in ("smb1", "smb2")
                                         if _speaks(profiles.get(n), proto) and profiles.get(n).ntlm
                                         and not profiles.get(n).access.allows("guest", proto)])
def test_impacket_refused_named_logons(lab, name, proto):
    """Guest disabled: Windows answers a logon as Guest with
    STATUS_ACCOUNT_DISABLED, any other unknown user with STATUS_LOGON_FAILURE."""
    p = profiles.get(name)
    for user, want in (("Guest", p.access.guest_refused("Guest")), ("nosuchuser", p.access.guest_refused("x"))):
        conn = _impacket(lab, name, proto)
        try:
            with pytest.raises(impacket_conn.SessionError) as info:
                conn.login(user, "")
            assert info.value.getErrorCode() == want, f"{user}: {status.describe(info.value.getErrorCode())}"
        finally:
            conn.close()
    if p.kind == "windows":
        assert p.access.guest_refused("Guest") == status.ACCOUNT_DISABLED


# -- pysmb -----------------------------------------------------------------------------


def _pysmb(lab, name: str, proto: str, monkeypatch) -> tuple[SMBConnection, bool]:
    monkeypatch.setattr(smb_structs, "SUPPORT_SMB2", proto == "smb2")
    conn = SMBConnection("", "", "PYSMBCLIENT", "SERVER", is_direct_tcp=True)
    return conn, conn.connect(address_of(lab, name), PORT, timeout=TIMEOUT)


@pytest.mark.parametrize("name, proto", [pytest.param(n, proto, id=f"{n}-{proto}") for n in NAMES
                                         for proto in ("smb1", "smb2") if _speaks(profiles.get(n), proto)])
def test_pysmb_negotiate_logon_and_share_listing(lab, name, proto, monkeypatch):
    p = profiles.get(name)
    conn, ok = _pysmb(lab, name, proto, monkeypatch)
    try:
        # pysmb offers SMB2 only when enabled; an SMB1-only host keeps it on SMB1
        assert conn.is_using_smb2 is (proto == "smb2")
        assert ok is p.access.allows("guest", proto)
        if not ok:
            return
        shares = conn.listShares(timeout=TIMEOUT)
    finally:
        conn.close()
    assert [(s.name, s.type, s.comments) for s in shares] == [
        (s.name, share_type(s) & 0xFFFF, s.remark) for s in p.shares]


@pytest.mark.samba
def test_samba_417_profile_refuses_named_logons_like_the_real_smbd(lab, samba_smb1_off, samba_version, monkeypatch):
    """Samba has no Guest account unless mapped: Guest and unknown users both
    get LOGON_FAILURE, and pysmb's empty-user logon (an NTLMv2 response, not a
    null session) is refused, by the real smbd and by the profile alike."""
    if not samba_version.startswith("4.17"):
        pytest.skip(f"the profile was recorded from Samba 4.17, this machine has {samba_version}")

    def outcomes(address: str, port: int) -> list:
        seen = []
        for user in ("Guest", "nosuchuser"):
            conn = impacket_conn.SMBConnection(address, address, sess_port=port, timeout=TIMEOUT)
            try:
                conn.login(user, "")
                seen.append((user, 0))
            except impacket_conn.SessionError as exc:
                seen.append((user, exc.getErrorCode()))
            finally:
                conn.close()
        monkeypatch.setattr(smb_structs, "SUPPORT_SMB2", True)
        py = SMBConnection("", "", "PYSMBCLIENT", "SERVER", is_direct_tcp=True)
        try:
            seen.append(("pysmb", py.connect(address, port, timeout=TIMEOUT)))
        finally:
            py.close()
        return seen

    real = outcomes(samba_smb1_off.address, 445)
    assert real == outcomes(address_of(lab, "samba-4.17"), PORT)
    assert real[0] == ("Guest", status.LOGON_FAILURE)
