"""The server half of the SPNEGO/NTLMSSP logon, shared by SMB1 and SMB2.

An emulated host never verifies a password: it has no accounts.  What it
decides is which *kind* of logon the client attempted, the way Windows sorts
them: an AUTHENTICATE with an empty user and NT response is anonymous
(MS-NLMP 3.2.5.1.2), anything else would need a real account and so ends
as a guest logon when the profile maps unknown users to Guest, or as the
profile's refusal status otherwise: STATUS_ACCOUNT_DISABLED for the user
Guest where the Guest account exists but is disabled (Windows' default),
STATUS_LOGON_FAILURE for any other name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..protocol import ntlm, spnego, status
from ..protocol.errors import ProtocolError
from .profile_model import Profile


def negotiate_blob(profile: Profile) -> bytes:
    """The NegTokenInit2 the host puts in its negotiate reply."""
    return spnego.neg_token_init2(profile.spnego_mechs, profile.spnego_hint)


def challenge_message(profile: Profile, server_challenge: bytes, now: int) -> bytes:
    """The profile's NTLM CHALLENGE: names, version, timestamp (Vista and later)."""
    cfg = profile.ntlm
    assert cfg is not None
    pairs = list(cfg.av_pairs)
    if cfg.timestamp:
        pairs.append((ntlm.AV_TIMESTAMP, now.to_bytes(8, "little")))
    major, minor, build = cfg.version
    version = ntlm.Version(major=major, minor=minor, build=build)
    return ntlm.challenge(server_challenge, cfg.flags, cfg.target_name, pairs, version)


@dataclass(frozen=True, slots=True)
class Step:
    """One leg's result: the status to send, the security blob (None: send
    none) and, on the final leg, the kind of logon that was decided."""

    status: int
    blob: bytes | None
    kind: str | None = None  # anonymous | guest, set on SUCCESS

    @property
    def guest(self) -> bool:
        return self.kind == "guest"


class Exchange:
    """One NTLMSSP exchange (NEGOTIATE -> CHALLENGE, AUTHENTICATE -> verdict)."""

    __slots__ = ("profile", "proto", "spnego", "challenged")

    def __init__(self, profile: Profile, proto: str) -> None:
        self.profile = profile
        self.proto = proto  # "smb1" | "smb2": access rules may differ
        self.spnego = True
        self.challenged = False

    def step(self, blob: bytes, now: int) -> Step:
        if self.profile.ntlm is None:
            # A server without NTLMSSP (Samba 3.x share level) never offered
            # extended security; like Samba's reply_sesssetup_and_X ("Rejecting
            # attempt at SPNEGO session setup when it was not negotiated") it
            # answers LOGON_FAILURE, and clients such as nmap try the next logon.
            return Step(status.LOGON_FAILURE, None)
        try:
            token, wrapped = _ntlm_token(blob)
        except ProtocolError:
            return Step(status.INVALID_PARAMETER, None)
        self.spnego = wrapped
        kind = ntlm.message_type(token) if token else None
        if kind == 1:
            self.challenged = True
            message = challenge_message(self.profile, os.urandom(8), now)
            if wrapped:
                message = spnego.neg_token_targ(spnego.ACCEPT_INCOMPLETE, spnego.OID_NTLMSSP, message)
            return Step(status.MORE_PROCESSING_REQUIRED, message)
        if kind == 3:
            try:
                auth = ntlm.parse_authenticate(token)
            except ProtocolError:
                return Step(status.INVALID_PARAMETER, None)
            return self._decide("anonymous" if auth.anonymous else "guest", auth.user)
        return Step(status.INVALID_PARAMETER, None)

    def _decide(self, kind: str, user: str) -> Step:
        access = self.profile.access
        if not access.allows(kind, self.proto):
            refusal = access.anonymous_refusal if kind == "anonymous" else access.guest_refused(user)
            return Step(refusal, None)
        done = spnego.neg_token_targ(spnego.ACCEPT_COMPLETED) if self.spnego else b""
        return Step(status.SUCCESS, done, kind)


def basic_logon(profile: Profile, anonymous: bool, account: str = "") -> Step:
    """The non-extended SMB1 logon (account and passwords in the clear
    fields): a null session, or a named account that can only become Guest."""
    kind = "anonymous" if anonymous else "guest"
    access = profile.access
    if not access.allows(kind, "smb1"):
        return Step(access.anonymous_refusal if anonymous else access.guest_refused(account), None)
    return Step(status.SUCCESS, None, kind)


def _ntlm_token(blob: bytes) -> tuple[bytes | None, bool]:
    """(NTLMSSP message or None, whether it came wrapped in SPNEGO)."""
    if blob.startswith(ntlm.SIGNATURE):
        return blob, False
    token = spnego.parse(blob)
    return token.mech_token, True
