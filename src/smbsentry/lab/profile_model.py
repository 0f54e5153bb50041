"""What an emulated-host profile is: the constants and dataclasses of lab/profiles/*.json.

Split from the loader (profiles.py) so that the strict parser (schema.py) and
the loader both depend on these declarations and not on each other: the
arrows are profiles -> schema -> profile_model, with no cycle.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from ..checks.registry import CHECKS
from ..model import STATUSES  # noqa: F401 - the statuses a profile may expect, read by schema.py
from ..protocol import smb2, spnego, status
from ..protocol.doublepulsar import xor_key
from ..protocol.transport import SMB_PORTS

# The findings a profile may expect: the default checks' ids (checks/registry.py CHECKS), not a copy, and the
# SMB over QUIC findings of a profile whose QUIC peer the lab serves (QUIC_FINDINGS: reported with that check on).
QUIC_FINDINGS = ("smb-over-quic", "smb-over-quic-cert")
FINDING_IDS = tuple(c.id for c in CHECKS if c.default) + QUIC_FINDINGS
BEHAVIOURS = ("normal", "silent", "garbage", "reset-after-negotiate")
KINDS = ("windows", "samba", "special")
ROLES = SMB_PORTS  # a served port's role: direct TCP or the NetBIOS session service

#: The built-in mix visits profiles in this order, so that any range of 17
#: addresses holds each profile the lab issue lists; extras follow.
DEFAULT_ORDER = (
    "winxp-sp3",
    "win2003-sp2",
    "win7-sp1-unpatched",
    "win7-sp1-patched",
    "win7-doublepulsar",
    "win2008r2-locked",
    "win2012r2-unpatched",
    "win10-1909-compression",
    "win10-1909-nocompression",
    "win2019",
    "win10-22h2",
    "win2022-signing-required",
    "samba-4.17",
    "samba-4.5-sambacry",
    "silent",
    "garbage",
    "reset-after-negotiate",
    "win2008-sp2",
    "samba-3.6.3",
    "win2025-smb-quic",
)

MECH_OIDS = {
    "NEGOEX": spnego.OID_NEGOEX,
    "MS-KRB5": spnego.OID_MS_KRB5,
    "KRB5": spnego.OID_KRB5,
    "KRB5-U2U": "1.2.840.113554.1.2.2.3",
    "NTLMSSP": spnego.OID_NTLMSSP,
}
CIPHER_CODES = {v: k for k, v in smb2.CIPHERS.items()}
COMPRESSION_CODES = {v: k for k, v in smb2.COMPRESSION.items()}
SIGNING_CODES = {v: k for k, v in smb2.SIGNING_ALGORITHMS.items()}
MS17_010_STATUS = {
    "vulnerable": status.INSUFF_SERVER_RESOURCES,
    "patched": status.INVALID_HANDLE,
    "denied": status.ACCESS_DENIED,
}


class ProfileError(ValueError):
    """A profile file that does not follow the schema."""


def doublepulsar_key(signature: bytes) -> int:
    """The implant's XOR key from signature bytes 0-3 (checks.md formula; one definition, in the protocol layer)."""
    return xor_key(signature)


@dataclass(frozen=True, slots=True)
class Smb1Config:
    enabled: dict[int, bool]
    security_mode: int = 3
    max_mpx: int = 50
    max_vcs: int = 1
    max_buffer: int = 16644
    max_raw: int = 65536
    capabilities: int = 0x8001E3FC
    timezone: int = 0
    native_os: str = ""
    native_lm: str = ""
    primary_domain: str = ""
    primary_domain_in_extended_reply: bool = False
    reply_flags: int = 0x98
    samba_flags2: bool = False  # Samba sets its own flags2; Windows echoes the request's
    server_name_in_negotiate: bool = True  # Samba 3.x leaves it out of the non-extended reply
    first_uid: int = 2048
    first_tid: int = 2048
    server_guid: bytes | None = None

    def on(self, role: int) -> bool:
        return self.enabled.get(role, False)


@dataclass(frozen=True, slots=True)
class Smb2Config:
    min_dialect: int
    max_dialect: int
    security_mode: int
    capabilities: dict[int, int]
    max_size: int
    server_guid: bytes
    start_time: bool
    ciphers: tuple[int, ...] = ()
    compression: tuple[int, ...] = ()
    compression_chained: bool = False
    signing_algorithms: tuple[int, ...] = ()
    null_session_flag: bool = True

    def supports(self, dialect: int) -> bool:
        return dialect in smb2.DIALECTS and self.min_dialect <= dialect <= self.max_dialect


@dataclass(frozen=True, slots=True)
class NtlmConfig:
    flags: int
    target_name: str
    av_pairs: tuple[tuple[int, bytes], ...]
    timestamp: bool
    version: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Share:
    name: str
    type: str  # ipc | disk | print
    remark: str = ""
    writable: bool = False
    anonymous: bool = False
    guest: bool = False
    special: bool = False
    maximal_access: int | None = None
    # What a directory listing of the share's root shows besides . and ..:
    # (name, is directory, size in bytes); fixed per profile, never written to.
    entries: tuple[tuple[str, bool, int], ...] = ()

    def reachable(self, kind: str) -> bool:
        return self.anonymous if kind == "anonymous" else self.guest if kind == "guest" else False


@dataclass(frozen=True, slots=True)
class Access:
    anonymous: dict[str, bool]
    guest: dict[str, bool]
    anonymous_refusal: int = status.ACCESS_DENIED
    guest_refusal: int = status.LOGON_FAILURE
    share_listing: str = "denied"  # anonymous | guest | denied
    # The built-in Guest account: "disabled" (Windows' default: a logon as
    # Guest answers STATUS_ACCOUNT_DISABLED, any other unknown user
    # LOGON_FAILURE), "enabled" (guest logons map to it) or "absent" (Samba).
    guest_account: str = "absent"
    # The pipes a null session may open (NullSessionPipes, with
    # RestrictNullSessAccess on); None: every pipe (Windows XP/2003, Samba).
    null_session_pipes: tuple[str, ...] | None = None

    def guest_refused(self, user: str) -> int:
        """The status a refused non-anonymous logon as `user` gets."""
        if self.guest_account == "disabled" and user.lower() == "guest":
            return status.ACCOUNT_DISABLED
        return self.guest_refusal

    def may_open_pipe(self, kind: str, name: str) -> bool:
        """Whether a session of `kind` may open pipe `name` (lower case, no \\PIPE\\)."""
        return kind != "anonymous" or self.null_session_pipes is None or name in self.null_session_pipes

    def allows(self, kind: str, proto: str) -> bool:
        table = self.anonymous if kind == "anonymous" else self.guest
        return table.get(proto, False)


@dataclass(frozen=True, slots=True)
class QuicConfig:
    """The SMB over QUIC peer of a profile (lab/quic.py): the ALPN it offers, its certificate's names."""

    alpn: tuple[str, ...]
    names: tuple[str, ...]
    valid_days: int = 365


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    support_end: _dt.date


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    kind: str
    behaviour: str
    sources: dict[str, str]
    expected: dict[str, str]
    netbios_name: str = ""
    netbios_domain: str = ""
    accept_any_called_name: bool = False
    smb1: Smb1Config | None = None
    smb2: Smb2Config | None = None
    spnego_mechs: tuple[str, ...] = (spnego.OID_NTLMSSP,)
    spnego_hint: str | None = None
    ntlm: NtlmConfig | None = None
    access: Access = field(default_factory=lambda: Access({}, {}))
    shares: tuple[Share, ...] = ()
    ms17_010: str = "patched"
    trans2_status: int = status.NOT_IMPLEMENTED
    doublepulsar: bytes | None = None  # the 8 signature bytes of an implanted host
    samba_version: str | None = None
    os_candidates: tuple[Candidate, ...] = ()
    quic: QuicConfig | None = None

    @property
    def ms17_010_status(self) -> int:
        return MS17_010_STATUS[self.ms17_010]

    def share(self, name: str) -> Share | None:
        wanted = name.upper()
        return next((s for s in self.shares if s.name.upper() == wanted), None)

    def expected_findings(self, ports: dict[int, int] | None = None, today: _dt.date | None = None,
                          quic: bool = False) -> dict[str, str]:
        """The findings a correct scanner reports for this host.

        `ports` maps each served port to its role (445 or 139): the file's
        "smbv1-enabled:445" / ":139" become one key per served port (absent
        for a role not served).  eol-os (Windows only) is derived for `today`:
        vulnerable when every OS candidate is past its end of support,
        not_vulnerable when none is, left out when they disagree (Windows 10
        1809 vs Server 2019 share build 17763).  The SMB over QUIC findings
        are there only when the lab serves the profile's QUIC peer (`quic`).
        """
        ports = {role: role for role in ROLES} if ports is None else ports
        out = {k: v for k, v in self.expected.items()
               if not k.startswith("smbv1-enabled:") and (quic or k not in QUIC_FINDINGS)}
        for port, role in sorted(ports.items()):
            value = self.expected.get(f"smbv1-enabled:{role}")
            if value is not None:
                out[f"smbv1-enabled:{port}"] = value
        if self.kind == "windows" and self.os_candidates:
            today = today or _dt.date.today()
            past = [c.support_end < today for c in self.os_candidates]
            if all(past):
                out["eol-os"] = "vulnerable"
            elif not any(past):
                out["eol-os"] = "not_vulnerable"
        return out
