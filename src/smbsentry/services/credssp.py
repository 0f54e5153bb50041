"""CredSSP (MS-CSSP) TSRequest: the DER envelope NLA carries its NTLM messages in.

Only what an anonymous look at a server's NTLM CHALLENGE needs: build a
TSRequest holding one negoToken, and read one back (its version, the token, or
the errorCode a server sends instead).  The RDP probe uses it as the client and
the service lab as the server, so both directions share one layout:

    TSRequest ::= SEQUENCE { version [0] INTEGER, negoTokens [1] NegoData OPTIONAL,
                             authInfo [2] ..., pubKeyAuth [3] ..., errorCode [4] INTEGER OPTIONAL, ... }
    NegoData  ::= SEQUENCE OF SEQUENCE { negoToken [0] OCTET STRING }
"""

from __future__ import annotations

from dataclasses import dataclass

from .der import ctx, decode, integer, octets, seq, sequence_complete
from .common import ServiceError

VERSION = 6  # what current Windows clients send; servers answer with their own
MAX_TSREQUEST = 16 * 1024  # a CHALLENGE TSRequest is a few hundred bytes


def ts_request(token: bytes, version: int = VERSION) -> bytes:
    """A TSRequest carrying `token` as its only negoToken."""
    return seq(ctx(0, integer(version)), ctx(1, seq(seq(ctx(0, octets(token))))))


complete = sequence_complete  # rdp.py reads TSRequests with it


@dataclass(frozen=True, slots=True)
class TSRequest:
    version: int
    token: bytes | None  # the first negoToken
    error_code: int | None  # an NTSTATUS, unsigned


def parse(data: bytes) -> TSRequest:
    """The version, first negoToken and errorCode of a TSRequest; ServiceError when it is not one."""
    if len(data) > MAX_TSREQUEST:
        raise ServiceError(f"credssp: TSRequest longer than {MAX_TSREQUEST} bytes")
    root = decode(data)
    if root.tag != 0x30 or root.children is None:
        raise ServiceError(f"credssp: not a TSRequest (tag 0x{root.tag:02x})")
    v = root.child(0)
    if v is None:
        raise ServiceError("credssp: TSRequest without a version")
    token = None
    nego = root.child(1)
    if nego is not None:
        first = (nego.children or [None])[0] if nego.tag == 0x30 else None
        tok = first.child(0) if first is not None and first.tag == 0x30 else None
        if tok is None or tok.tag != 0x04:
            raise ServiceError("credssp: malformed negoTokens")
        token = tok.value
    err = root.child(4)
    code = err.as_int() & 0xFFFFFFFF if err is not None else None
    return TSRequest(v.as_int(), token, code)
