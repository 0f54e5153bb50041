"""Known-answer tests: MS-NLMP section 4.2.4 (NTLMv2), MD4 (RFC 1320), RC4.

MS-NLMP 4.2.1 common values: User "User", UserDom "Domain", Password
"Password", ServerName "Server", Workstation "COMPUTER", RandomSessionKey
0x55 * 16, Time 0, ClientChallenge 0xaa * 8, ServerChallenge
0123456789abcdef.  The CHALLENGE_MESSAGE and the expected values below are the
ones printed in 4.2.4.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbsentry.protocol import ntlm
from smbsentry.protocol.crypto import md4, rc4

H = bytes.fromhex

SERVER_CHALLENGE = H("0123456789abcdef")
CLIENT_CHALLENGE = b"\xaa" * 8
RANDOM_SESSION_KEY = b"\x55" * 16

# 4.2.4 AV pairs: MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server", MsvAvEOL
TARGET_INFO = (
    H("02000c00")
    + "Domain".encode("utf-16-le")
    + H("01000c00")
    + "Server".encode("utf-16-le")
    + H("00000000")
)

# 4.2.4.3 CHALLENGE_MESSAGE (104 bytes): flags 0xe28a8233, TargetName "Server",
# Version 6.0.6000 revision 15.
CHALLENGE_MESSAGE = (
    b"NTLMSSP\x00"
    + H("02000000")
    + H("0c000c00")
    + H("38000000")  # TargetName: 12 bytes at 0x38
    + H("33828ae2")  # NegotiateFlags
    + SERVER_CHALLENGE
    + bytes(8)
    + H("24002400")
    + H("44000000")  # TargetInfo: 36 bytes at 0x44
    + H("060070170000000f")  # Version
    + "Server".encode("utf-16-le")
    + TARGET_INFO
)

RESPONSE_KEY_NT = H("0c868a403bfd7a93a3001ef22ef02e3f")  # 4.2.4.1.1 NTOWFv2
SESSION_BASE_KEY = H("8de40ccadbc14a82f15cb0ad0de95ca3")  # 4.2.4.1.2
LMV2_RESPONSE = H("86c35097ac9cec102554764a57cccc19") + CLIENT_CHALLENGE  # 4.2.4.2.1
NT_PROOF_STR = H("68cd0ab851e51c96aabc927bebef6a1c")  # 4.2.4.2.2
TEMP = (
    H("0101000000000000")
    + bytes(8)
    + CLIENT_CHALLENGE
    + bytes(4)
    + TARGET_INFO
    + bytes(4)
)
NTLMV2_RESPONSE = NT_PROOF_STR + TEMP  # 84 bytes
ENCRYPTED_SESSION_KEY = H("c5dad2544fc9799094ce1ce90bc9d03e")  # 4.2.4.2.3
NT_HASH_PASSWORD = H(
    "a4f49c406510bdcab6824ee7c30fd852"
)  # 4.2.2.1.2 NTOWFv1("Password")


def _fields(msg: bytes) -> dict[str, bytes]:
    names = ("lm", "nt", "domain", "user", "workstation", "key")
    out = {}
    for i, name in enumerate(names):
        length, max_length, offset = struct.unpack_from("<HHI", msg, 12 + 8 * i)
        assert length == max_length and offset + length <= len(msg)
        out[name] = msg[offset : offset + length]
    return out


def test_challenge_message_parses():
    assert len(CHALLENGE_MESSAGE) == 104
    ch = ntlm.parse_challenge(CHALLENGE_MESSAGE)
    assert ch.flags == 0xE28A8233
    assert ch.server_challenge == SERVER_CHALLENGE
    assert ch.target_name == "Server"
    assert (
        ch.version.major,
        ch.version.minor,
        ch.version.build,
        ch.version.revision,
    ) == (6, 0, 6000, 15)
    assert ch.target_info_raw == TARGET_INFO
    assert ch.av_pairs == {
        2: "Domain".encode("utf-16-le"),
        1: "Server".encode("utf-16-le"),
    }
    assert (
        ch.av_text(ntlm.AV_NB_DOMAIN) == "Domain"
        and ch.av_text(ntlm.AV_NB_COMPUTER) == "Server"
    )
    assert ch.timestamp is None


def test_nt_hash_and_ntowfv2():
    assert ntlm.nt_hash("Password") == NT_HASH_PASSWORD
    assert ntlm.ntowfv2("Password", "User", "Domain") == RESPONSE_KEY_NT
    # the user name is upper-cased, the domain is not
    assert ntlm.ntowfv2("Password", "user", "Domain") == RESPONSE_KEY_NT
    assert ntlm.ntowfv2("Password", "User", "DOMAIN") != RESPONSE_KEY_NT


def test_ntproofstr_and_session_base_key_from_first_principles():
    proof = hmac.new(RESPONSE_KEY_NT, SERVER_CHALLENGE + TEMP, hashlib.md5).digest()
    assert proof == NT_PROOF_STR
    assert hmac.new(RESPONSE_KEY_NT, proof, hashlib.md5).digest() == SESSION_BASE_KEY
    assert rc4(SESSION_BASE_KEY, RANDOM_SESSION_KEY) == ENCRYPTED_SESSION_KEY


def test_authenticate_matches_spec_with_key_exchange():
    ch = ntlm.parse_challenge(CHALLENGE_MESSAGE)
    assert ch.flags & ntlm.NEGOTIATE_KEY_EXCH
    res = ntlm.authenticate(
        ch,
        user="User",
        password="Password",
        domain="Domain",
        workstation="COMPUTER",
        client_challenge=CLIENT_CHALLENGE,
        timestamp=0,
        exported_key=RANDOM_SESSION_KEY,
    )
    f = _fields(res.message)
    assert f["nt"][:16] == NT_PROOF_STR
    assert f["nt"] == NTLMV2_RESPONSE and len(f["nt"]) == 84
    assert f["lm"] == LMV2_RESPONSE  # no MsvAvTimestamp in the challenge: LMv2 is sent
    assert f["domain"] == "Domain".encode("utf-16-le")
    assert f["user"] == "User".encode("utf-16-le")
    assert f["workstation"] == "COMPUTER".encode("utf-16-le")
    assert f["key"] == ENCRYPTED_SESSION_KEY
    assert res.session_key == RANDOM_SESSION_KEY  # the exported key
    flags = struct.unpack_from("<I", res.message, 60)[0]
    assert flags & ntlm.NEGOTIATE_KEY_EXCH and flags & ntlm.NEGOTIATE_UNICODE


def test_authenticate_session_base_key_without_key_exchange():
    flags = 0xE28A8233 & ~ntlm.NEGOTIATE_KEY_EXCH
    msg = CHALLENGE_MESSAGE[:20] + struct.pack("<I", flags) + CHALLENGE_MESSAGE[24:]
    ch = ntlm.parse_challenge(msg)
    res = ntlm.authenticate(
        ch,
        "User",
        "Password",
        "Domain",
        "COMPUTER",
        client_challenge=CLIENT_CHALLENGE,
        timestamp=0,
    )
    f = _fields(res.message)
    assert f["nt"][:16] == NT_PROOF_STR
    assert f["key"] == b""
    assert res.session_key == SESSION_BASE_KEY


def test_authenticate_with_server_timestamp_sends_zero_lm():
    # MS-NLMP 3.1.5.1.2: with MsvAvTimestamp in the CHALLENGE the client sends
    # Z(24) as LmChallengeResponse and uses the server's time in the blob.
    info = (
        TARGET_INFO[:-4]
        + H("07000800")
        + struct.pack("<Q", 0x01D2_0000_0000_0000)
        + H("00000000")
    )
    msg = (
        CHALLENGE_MESSAGE[:40]
        + struct.pack("<HHI", len(info), len(info), 0x44)
        + CHALLENGE_MESSAGE[48:68]
        + info
    )
    ch = ntlm.parse_challenge(msg)
    assert ch.timestamp == 0x01D2_0000_0000_0000
    res = ntlm.authenticate(
        ch, "User", "Password", "Domain", client_challenge=CLIENT_CHALLENGE
    )
    f = _fields(res.message)
    assert f["lm"] == bytes(24)
    assert struct.unpack_from("<Q", f["nt"], 24)[0] == 0x01D2_0000_0000_0000
    temp = f["nt"][16:]
    assert (
        f["nt"][:16]
        == hmac.new(RESPONSE_KEY_NT, SERVER_CHALLENGE + temp, hashlib.md5).digest()
    )


def test_anonymous_authenticate():
    ch = ntlm.parse_challenge(CHALLENGE_MESSAGE)
    res = ntlm.authenticate(ch, user="ignored", password="ignored", anonymous=True)
    f = _fields(res.message)
    assert (
        f["lm"] == b"\x00"
        and f["nt"] == b""
        and f["user"] == b""
        and f["domain"] == b""
    )
    assert res.session_key == bytes(16)
    flags = struct.unpack_from("<I", res.message, 60)[0]
    assert flags & ntlm.NEGOTIATE_ANONYMOUS and not flags & ntlm.NEGOTIATE_KEY_EXCH


# ---------------------------------------------------------------------------
# MD4 (RFC 1320 appendix A.5) and NT hashes
# ---------------------------------------------------------------------------

RFC1320 = [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "043f8582f241db351ce627e153e7f0e4",
    ),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
]


@pytest.mark.parametrize("data,digest", RFC1320)
def test_md4_rfc1320(data, digest):
    assert md4(data).hex() == digest


@pytest.mark.parametrize(
    "password,digest",
    [
        ("", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        ("password", "8846f7eaee8fb117ad06bdd830b7586c"),
        ("Password", "a4f49c406510bdcab6824ee7c30fd852"),
    ],
)
def test_nt_hash_known(password, digest):
    assert ntlm.nt_hash(password).hex() == digest


def _hashlib_md4():
    try:
        return hashlib.new("md4")
    except ValueError:
        return None


@pytest.mark.skipif(
    _hashlib_md4() is None, reason="this OpenSSL has no MD4 to compare against"
)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_md4_matches_openssl(data):
    assert md4(data) == hashlib.new("md4", data).digest()


@pytest.mark.parametrize("n", [55, 56, 57, 63, 64, 65, 119, 120, 128])
def test_md4_block_boundaries_differ(n):
    # padding edge cases around the 56/64-byte boundary: distinct, 16 bytes, stable
    a, b = md4(b"x" * n), md4(b"x" * (n + 1))
    assert len(a) == 16 and a != b and md4(b"x" * n) == a


# ---------------------------------------------------------------------------
# RC4
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,plain,cipher",
    [
        (b"Key", b"Plaintext", "bbf316e8d940af0ad3"),
        (b"Wiki", b"pedia", "1021bf0420"),
        (b"Secret", b"Attack at dawn", "45a01f645fc35b383552544b9bf5"),
        (
            H("0102030405"),
            bytes(16),
            "b2396305f03dc027ccc3524a0a1118a8",
        ),  # RFC 6229, offset 0
    ],
)
def test_rc4_vectors(key, plain, cipher):
    assert rc4(key, plain).hex() == cipher
    assert rc4(key, bytes.fromhex(cipher)) == plain
