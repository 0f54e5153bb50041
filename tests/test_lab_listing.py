"""Directory listings of the lab's disk shares, by independent clients.

A profile's reachable disk share lists `.`, `..` and its fixed `entries`
(lab/files.py): impacket's and pysmb's listPath (SMB2 QUERY_DIRECTORY with
FileFullDirectoryInformation and FileIdBothDirectoryInformation; SMB1
TRANS2 FIND_FIRST2 with SMB_FIND_FILE_BOTH_DIRECTORY_INFO) and smbclient's
`ls` read them; the expectation comes from the profile.  The share is
read-only: creating a file is refused, and so is a write.

The lab binds 127.53.0.x:44553 per address, away from the other lab tests.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from smbsentry.lab import profiles
from smbsentry.lab.background import BackgroundLab
from smbsentry.lab.files import FIXED_TIME

impacket_smb = pytest.importorskip("impacket.smb")
impacket_conn = pytest.importorskip("impacket.smbconnection")
smb_structs = pytest.importorskip("smb.smb_structs", reason="pysmb is a test dependency (pip install -e '.[test]')")
from smb.SMBConnection import SMBConnection  # noqa: E402

PORT = 44553
TIMEOUT = 3
NAMES = [n for n in profiles.ordered_names() if profiles.get(n).behaviour == "normal"
         and any(s.entries for s in profiles.get(n).shares)]
DIALECTS = {"smb1": impacket_smb.SMB_DIALECT, "smb2": None}


def _speaks(p: profiles.Profile, proto: str) -> bool:
    return bool(p.smb1 and p.smb1.on(445)) if proto == "smb1" else p.smb2 is not None


def _kind(p: profiles.Profile, proto: str, share) -> str | None:
    """The logon impacket makes that reaches the share: anonymous, else guest."""
    for kind in ("anonymous", "guest"):
        if p.access.allows(kind, proto) and share.reachable(kind):
            return kind
    return None


def _cases(procs=("smb1", "smb2")) -> list:
    out = []
    for n in NAMES:
        p = profiles.get(n)
        for share in p.shares:
            for proto in procs:
                if share.entries and _speaks(p, proto) and _kind(p, proto, share):
                    out.append(pytest.param(n, share.name, proto, id=f"{n}-{share.name}-{proto}"))
    return out


def expected(share) -> dict[str, tuple[bool, int]]:
    out = {".": (True, 0), "..": (True, 0)}
    out.update({name: (is_dir, size) for name, is_dir, size in share.entries})
    return out


@pytest.fixture(scope="module")
def lab():
    if not NAMES:
        pytest.skip("no profile lists entries")
    try:
        running = BackgroundLab(f"127.53.0.1-127.53.0.{len(NAMES)}", ports=[PORT], mix=",".join(NAMES),
                                bind_mode="per-address").start()
    except OSError as exc:
        pytest.skip(f"cannot bind the lab on 127.53.0.x:{PORT}: {exc}")
    yield running
    running.stop()


def address_of(lab, name: str) -> str:
    return lab.range.address(NAMES.index(name))


def _impacket(lab, name: str, proto: str, kind: str):
    address = address_of(lab, name)
    conn = impacket_conn.SMBConnection(address, address, sess_port=PORT, preferredDialect=DIALECTS[proto],
                                       timeout=TIMEOUT)
    conn.login("" if kind == "anonymous" else "Guest", "")
    return conn


@pytest.mark.parametrize("name, share_name, proto", _cases())
def test_impacket_lists_the_share(lab, name, share_name, proto):
    p = profiles.get(name)
    share = p.share(share_name)
    conn = _impacket(lab, name, proto, _kind(p, proto, share))
    try:
        listed = {f.get_longname(): (bool(f.is_directory()), f.get_filesize()) for f in conn.listPath(share_name, "*")}
        one = conn.listPath(share_name, share.entries[-1][0])  # a name as the pattern: that entry alone
        with pytest.raises(impacket_conn.SessionError):
            conn.listPath(share_name, "no-such-file*")
    finally:
        conn.close()
    assert listed == expected(share)
    assert [f.get_longname() for f in one] == [share.entries[-1][0]]


@pytest.mark.parametrize("name, share_name, proto", _cases())
def test_pysmb_lists_the_share(lab, name, share_name, proto, monkeypatch):
    p = profiles.get(name)
    share = p.share(share_name)
    monkeypatch.setattr(smb_structs, "SUPPORT_SMB2", proto == "smb2")
    conn = SMBConnection("", "", "PYSMBCLIENT", "SERVER", is_direct_tcp=True)
    if not conn.connect(address_of(lab, name), PORT, timeout=TIMEOUT):
        pytest.skip("pysmb's logon is not accepted by this profile")  # pysmb sends NTLMv2 even for ""
    try:
        assert conn.is_using_smb2 is (proto == "smb2")
        files = conn.listPath(share_name, "/", timeout=TIMEOUT)
    finally:
        conn.close()
    assert {f.filename: (f.isDirectory, f.file_size) for f in files} == expected(share)
    assert {f.last_write_time for f in files} == {(FIXED_TIME - 116444736000000000) / 10_000_000}


@pytest.mark.parametrize("name, share_name, proto", _cases())
def test_smbclient_ls(lab, name, share_name, proto, tmp_path):
    smbclient = shutil.which("smbclient")
    if not smbclient:
        pytest.skip("needs smbclient")
    p = profiles.get(name)
    share = p.share(share_name)
    address = address_of(lab, name)
    proto_args = ["-m", "NT1", "--option=client min protocol=NT1"] if proto == "smb1" else ["-m", "SMB3"]
    auth = ["-N"] if _kind(p, proto, share) == "anonymous" else ["-U", "Guest%"]
    run = subprocess.run([smbclient, f"//{address}/{share_name}", "-p", str(PORT), *auth, *proto_args,
                          "-c", "ls", "--option=client ipc signing=auto", "--option=client signing=auto"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    for entry, (is_dir, size) in expected(share).items():
        line = next((ln for ln in lines if ln.strip().startswith(entry + " ") and ln.strip()[len(entry):].lstrip()
                     .startswith(("D", "A", "N", "R"))), None)
        assert line is not None, (entry, run.stdout)
        assert (" D " in line) is is_dir and line.split()[-6] == str(size), line
    assert "blocks of size 4096" in run.stdout  # the volume's size answered too


@pytest.mark.parametrize("name, share_name, proto", _cases(("smb2",)))
def test_the_share_is_read_only(lab, name, share_name, proto):
    p = profiles.get(name)
    share = p.share(share_name)
    conn = _impacket(lab, name, proto, _kind(p, proto, share))
    try:
        tid = conn.connectTree(share_name)
        with pytest.raises(impacket_conn.SessionError):
            conn.createFile(tid, "new.txt")
        with pytest.raises(impacket_conn.SessionError):
            conn.deleteFile(share_name, share.entries[-1][0])
    finally:
        conn.close()


# -- the layouts and the profile schema, without a peer ------------------------------------


def test_every_directory_class_round_trips_and_hostile_listings_are_errors():
    from smbsentry.protocol import smb2_dir
    from smbsentry.protocol.errors import ProtocolError

    entries = [smb2_dir.Entry("a.txt", 0x20, 5, FIXED_TIME, 7), smb2_dir.Entry("Dir", 0x10, 0, FIXED_TIME, 8)]
    for info_class in smb2_dir.DIRECTORY_CLASSES:
        data, n = smb2_dir.pack_entries(entries, info_class, 4096)
        back = smb2_dir.parse_entries(data, info_class)
        assert n == 2 and [e.name for e in back] == ["a.txt", "Dir"]
        if info_class != smb2_dir.FILE_NAMES_INFORMATION:
            assert [(e.size, e.is_dir) for e in back] == [(5, False), (0, True)]
    one, n = smb2_dir.pack_entries(entries, smb2_dir.FILE_BOTH_DIRECTORY_INFORMATION, 120)  # room for one only
    assert n == 1 and len(one) < 120
    with pytest.raises(ProtocolError):
        smb2_dir.parse_entries(one[:50], smb2_dir.FILE_BOTH_DIRECTORY_INFORMATION)  # truncated
    loop = bytearray(one + b"\x00" * (-len(one) % 8))
    loop[0:4] = len(loop).to_bytes(4, "little")  # each entry says another follows: a listing without end
    with pytest.raises(ProtocolError, match="more than 64"):
        smb2_dir.parse_entries(bytes(loop) * 100, smb2_dir.FILE_BOTH_DIRECTORY_INFORMATION, limit=64)


@pytest.mark.parametrize("entries", [
    [{"name": "a\\b"}], [{"name": ".."}], [{"name": "x", "dir": True, "size": 3}], [{"name": "x"}, {"name": "X"}],
    [{"name": "x", "colour": "red"}], [{"name": f"f{i}"} for i in range(33)],
])
def test_the_schema_refuses_bad_entries(entries):
    from smbsentry.lab import schema
    from smbsentry.lab.profile_model import ProfileError

    with pytest.raises(ProfileError):
        schema._entries(entries, "test.shares.entries")
