"""NTLMSSP messages (MS-NLMP): NEGOTIATE out, CHALLENGE in, AUTHENTICATE out.

The CHALLENGE is where a server tells an anonymous client who it is: NetBIOS
and DNS names, domain, forest, a timestamp and the OS version with its build.
This works whether or not SMBv1 is enabled, which is why the scanner's
identity comes from here first.  AUTHENTICATE supports the anonymous and
guest logons the checks need and NTLMv2 with the user's credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field
from functools import lru_cache

from .crypto import md4, rc4
from .errors import ProtocolError
from .fields import Layout, take

SIGNATURE = b"NTLMSSP\x00"

NEGOTIATE_UNICODE = 0x00000001
NEGOTIATE_OEM = 0x00000002
REQUEST_TARGET = 0x00000004
NEGOTIATE_SIGN = 0x00000010
NEGOTIATE_SEAL = 0x00000020
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ANONYMOUS = 0x00000800
NEGOTIATE_ALWAYS_SIGN = 0x00008000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_TARGET_INFO = 0x00800000
NEGOTIATE_VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_KEY_EXCH = 0x40000000
NEGOTIATE_56 = 0x80000000

CLIENT_FLAGS = (
    NEGOTIATE_UNICODE
    | NEGOTIATE_OEM
    | REQUEST_TARGET
    | NEGOTIATE_SIGN
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_VERSION
    | NEGOTIATE_128
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_56
)

# AV pair ids (MS-NLMP 2.2.2.1)
AV_EOL = 0
AV_NB_COMPUTER = 1
AV_NB_DOMAIN = 2
AV_DNS_COMPUTER = 3
AV_DNS_DOMAIN = 4
AV_DNS_TREE = 5
AV_FLAGS = 6
AV_TIMESTAMP = 7
AV_SINGLE_HOST = 8
AV_TARGET_NAME = 9
AV_CHANNEL_BINDINGS = 10

MAX_TARGET_INFO = 4096
MAX_AV_PAIRS = 64
MAX_NAME = 512


class Fields(Layout):
    """A (length, max length, offset) triple pointing into the payload."""

    _fields_ = [("length", "H", 0), ("max_length", "H", 0), ("offset", "I", 0)]


class Version(Layout):
    _fields_ = [
        ("major", "B", 6),
        ("minor", "B", 1),
        ("build", "H", 7601),
        ("reserved", "3s", b"\x00\x00\x00"),
        ("revision", "B", 15),
    ]


#: The payload fields of an AUTHENTICATE, in their order on the wire.
AUTH_FIELDS = ("lm", "nt", "domain", "user", "workstation", "session_key")


class AuthenticateHeader(Layout):
    """AUTHENTICATE (type 3) up to NegotiateFlags: six (length, max length,
    offset) triples.  Version and MIC follow when the client sends them, so a
    parser reads only this much (older clients put the payload right after)."""

    _fields_ = [("signature", "8s", SIGNATURE), ("message_type", "I", 3)] + [
        (f"{name}_{part}", fmt, 0) for name in AUTH_FIELDS for part, fmt in (("len", "H"), ("max", "H"), ("offset", "I"))
    ] + [("flags", "I", 0)]


#: What we send after the header: Version, and a MIC of zeros (none computed).
AUTH_PAYLOAD_OFFSET = AuthenticateHeader.size + Version.size + 16


class ChallengeHeader(Layout):
    _fields_ = [
        ("signature", "8s", SIGNATURE),
        ("message_type", "I", 2),
        ("target_name_len", "H", 0),
        ("target_name_max", "H", 0),
        ("target_name_offset", "I", 0),
        ("flags", "I", 0),
        ("server_challenge", "8s", b"\x00" * 8),
        ("reserved", "8s", b"\x00" * 8),
        ("target_info_len", "H", 0),
        ("target_info_max", "H", 0),
        ("target_info_offset", "I", 0),
    ]


@dataclass(slots=True)
class Challenge:
    """A parsed CHALLENGE message."""

    flags: int
    server_challenge: bytes
    target_name: str | None
    target_info_raw: bytes
    av_pairs: dict[int, bytes] = field(default_factory=dict)
    version: Version | None = None
    raw: bytes = b""

    def av_text(self, av_id: int) -> str | None:
        value = self.av_pairs.get(av_id)
        if value is None:
            return None
        return value.decode("utf-16-le", "replace")

    @property
    def timestamp(self) -> int | None:
        """The server's clock as a FILETIME, when it sent one."""
        value = self.av_pairs.get(AV_TIMESTAMP)
        if value is None or len(value) != 8:
            return None
        return struct.unpack("<Q", value)[0]


def negotiate(flags: int = CLIENT_FLAGS) -> bytes:
    """An NTLMSSP NEGOTIATE with no domain or workstation supplied."""
    empty = Fields().pack()
    return SIGNATURE + struct.pack("<II", 1, flags) + empty + empty + Version().pack()


def parse_av_pairs(data: bytes) -> dict[int, bytes]:
    pairs: dict[int, bytes] = {}
    off = 0
    for _ in range(MAX_AV_PAIRS):
        if off + 4 > len(data):
            raise ProtocolError("ntlm: AV pair list ends without MsvAvEOL")
        av_id, av_len = struct.unpack_from("<HH", data, off)
        off += 4
        if av_id == AV_EOL:
            return pairs
        pairs[av_id] = take(data, off, av_len, "ntlm: AV pair value", cap=MAX_NAME)
        off += av_len
    raise ProtocolError(f"ntlm: more than {MAX_AV_PAIRS} AV pairs")


def parse_challenge(data: bytes) -> Challenge:
    """Parse a CHALLENGE; every offset and length is checked against the buffer."""
    hdr = ChallengeHeader.unpack_from(data)
    if hdr.signature != SIGNATURE:
        raise ProtocolError("ntlm: bad signature")
    if hdr.message_type != 2:
        raise ProtocolError(f"ntlm: expected CHALLENGE (2), got type {hdr.message_type}")
    target_name = None
    if hdr.target_name_len:
        raw_name = take(data, hdr.target_name_offset, hdr.target_name_len, "ntlm: TargetName", cap=MAX_NAME)
        enc = "utf-16-le" if hdr.flags & NEGOTIATE_UNICODE else "latin-1"
        target_name = raw_name.decode(enc, "replace")
    info = b""
    pairs: dict[int, bytes] = {}
    if hdr.target_info_len:
        info = take(data, hdr.target_info_offset, hdr.target_info_len, "ntlm: TargetInfo", cap=MAX_TARGET_INFO)
        pairs = parse_av_pairs(info)
    version = None
    # The Version field sits right after the fixed header when the flag says
    # so; a payload that starts before byte 56 means there is no room for it.
    payload_start = min(
        [o for o, n in ((hdr.target_name_offset, hdr.target_name_len), (hdr.target_info_offset, hdr.target_info_len)) if n]
        or [len(data)]
    )
    if hdr.flags & NEGOTIATE_VERSION and payload_start >= ChallengeHeader.size + Version.size:
        version = Version.unpack_from(data, ChallengeHeader.size)
    return Challenge(hdr.flags, hdr.server_challenge, target_name, info, pairs, version, bytes(data))


@lru_cache(maxsize=16)
def nt_hash(password: str) -> bytes:
    # Cached: the guest probe hashes the same empty password for every host.
    return md4(password.encode("utf-16-le"))


def ntowfv2(password: str, user: str, domain: str) -> bytes:
    return hmac.new(nt_hash(password), (user.upper() + domain).encode("utf-16-le"), hashlib.md5).digest()


@dataclass(frozen=True, slots=True)
class AuthResult:
    message: bytes
    session_key: bytes  # the exported session key (signing key for SMB1/SMB2.x)


def authenticate(
    challenge: Challenge,
    user: str = "",
    password: str = "",
    domain: str = "",
    workstation: str = "",
    anonymous: bool = False,
    client_challenge: bytes | None = None,
    timestamp: int | None = None,
    exported_key: bytes | None = None,
    key_exchange: bool = True,
) -> AuthResult:
    """Build an AUTHENTICATE answering `challenge`.

    anonymous=True builds the null-session logon (empty user, empty NT
    response, one zero LM byte).  Otherwise an NTLMv2 response is computed;
    an empty password with an unknown user is how a guest logon is asked for.
    """
    flags = challenge.flags & CLIENT_FLAGS | NEGOTIATE_UNICODE
    if not key_exchange:
        flags &= ~NEGOTIATE_KEY_EXCH
    if anonymous:
        flags |= NEGOTIATE_ANONYMOUS
        flags &= ~NEGOTIATE_KEY_EXCH
        lm, nt, session_key, enc_key = b"\x00", b"", b"\x00" * 16, b""
        user = domain = ""
    else:
        key = ntowfv2(password, user, domain)
        cc = client_challenge if client_challenge is not None else os.urandom(8)
        ts = timestamp if timestamp is not None else (challenge.timestamp or _filetime_now())
        temp = b"\x01\x01" + b"\x00" * 6 + struct.pack("<Q", ts) + cc + b"\x00" * 4 + challenge.target_info_raw + b"\x00" * 4
        proof = hmac.new(key, challenge.server_challenge + temp, hashlib.md5).digest()
        nt = proof + temp
        if challenge.timestamp is not None:
            lm = b"\x00" * 24
        else:
            lm = hmac.new(key, challenge.server_challenge + cc, hashlib.md5).digest() + cc
        base_key = hmac.new(key, proof, hashlib.md5).digest()
        if flags & NEGOTIATE_KEY_EXCH:
            session_key = exported_key if exported_key is not None else os.urandom(16)
            enc_key = rc4(base_key, session_key)
        else:
            session_key, enc_key = base_key, b""
    payload = dict(zip(AUTH_FIELDS, (lm, nt, domain.encode("utf-16-le"), user.encode("utf-16-le"),
                                     workstation.encode("utf-16-le"), enc_key)))
    triples: dict[str, int] = {}
    offset = AUTH_PAYLOAD_OFFSET
    for name, item in payload.items():
        triples[f"{name}_len"] = triples[f"{name}_max"] = len(item)
        triples[f"{name}_offset"] = offset
        offset += len(item)
    msg = AuthenticateHeader.build(flags=flags, **triples) + Version().pack() + b"\x00" * 16 + b"".join(payload.values())
    return AuthResult(msg, session_key)


def _filetime_now() -> int:
    import time

    return int(time.time() * 10_000_000) + 116444736000000000


# -- server side (the lab) ---------------------------------------------------
# The lab answers NEGOTIATE with a CHALLENGE and reads the client's
# AUTHENTICATE to tell an anonymous logon from a guest or user one.  Keeping
# these beside the client code means both directions share one layout.


def challenge(
    server_challenge: bytes,
    flags: int,
    target_name: str,
    av_pairs: list[tuple[int, bytes]],
    version: Version | None = None,
) -> bytes:
    """Build a CHALLENGE (type 2).  `av_pairs` keeps the caller's order
    (Windows sends 2, 1, 4, 3, [5], 7); MsvAvEOL is appended here."""
    if len(server_challenge) != 8:
        raise ProtocolError("ntlm: the server challenge is 8 bytes")
    name = target_name.encode("utf-16-le")
    info = b"".join(struct.pack("<HH", av_id, len(value)) + value for av_id, value in av_pairs)
    info += struct.pack("<HH", AV_EOL, 0)
    if version is not None:
        flags |= NEGOTIATE_VERSION
    ver = version.pack() if version is not None else b""
    name_offset = ChallengeHeader.size + len(ver)
    info_offset = name_offset + len(name)
    hdr = ChallengeHeader(
        target_name_len=len(name),
        target_name_max=len(name),
        target_name_offset=name_offset,
        flags=flags | (NEGOTIATE_TARGET_INFO if info else 0),
        server_challenge=server_challenge,
        target_info_len=len(info),
        target_info_max=len(info),
        target_info_offset=info_offset,
    )
    return hdr.pack() + ver + name + info


@dataclass(frozen=True, slots=True)
class Authenticate:
    """The parts of a client's AUTHENTICATE (type 3) that a server decides on."""

    flags: int
    lm_response: bytes
    nt_response: bytes
    domain: str
    user: str
    workstation: str

    @property
    def anonymous(self) -> bool:
        """MS-NLMP 3.2.5.1.2: empty user and NT response, LM empty or one zero byte."""
        return not self.user and not self.nt_response and self.lm_response in (b"", b"\x00")


def parse_authenticate(data: bytes) -> Authenticate:
    """Parse an AUTHENTICATE; every field is bounds-checked against `data`."""
    if len(data) < AuthenticateHeader.size or data[:8] != SIGNATURE:
        raise ProtocolError("ntlm: not an NTLMSSP message")
    hdr = AuthenticateHeader.unpack_from(data)
    if hdr.message_type != 3:
        raise ProtocolError(f"ntlm: expected AUTHENTICATE (3), got type {hdr.message_type}")
    values = [take(data, getattr(hdr, f"{name}_offset"), getattr(hdr, f"{name}_len"), "ntlm: AUTHENTICATE field",
                   cap=MAX_TARGET_INFO) for name in AUTH_FIELDS[:5]]
    flags = hdr.flags
    enc = "utf-16-le" if flags & NEGOTIATE_UNICODE else "latin-1"
    lm, nt, domain, user, workstation = values
    return Authenticate(
        flags,
        lm,
        nt,
        domain.decode(enc, "replace")[:MAX_NAME],
        user.decode(enc, "replace")[:MAX_NAME],
        workstation.decode(enc, "replace")[:MAX_NAME],
    )


def message_type(data: bytes) -> int | None:
    """1, 2 or 3 for an NTLMSSP message, None for anything else."""
    if len(data) < 12 or data[:8] != SIGNATURE:
        return None
    return struct.unpack_from("<I", data, 8)[0]
