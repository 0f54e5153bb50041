"""Kerberos on 88/tcp: an AS-REQ without pre-authentication for a random principal.

A KDC answers a KRB-ERROR (KDC_ERR_C_PRINCIPAL_UNKNOWN, KDC_ERR_PREAUTH_REQUIRED,
KDC_ERR_WRONG_REALM, ...): a KDC on a Windows host means a domain controller.
No password, no pre-authentication data, nothing that logs in.
"""

from __future__ import annotations

import secrets
import struct

from .der import app, bit_string, ctx, decode, general_string, generalized_time, integer, seq
from .common import ServiceError, close, connect, read_until, send

ERRORS = {
    6: "KDC_ERR_C_PRINCIPAL_UNKNOWN", 7: "KDC_ERR_S_PRINCIPAL_UNKNOWN", 14: "KDC_ERR_ETYPE_NOSUPP",
    18: "KDC_ERR_CLIENT_REVOKED", 24: "KDC_ERR_PREAUTH_FAILED", 25: "KDC_ERR_PREAUTH_REQUIRED",
    37: "KRB_AP_ERR_SKEW", 68: "KDC_ERR_WRONG_REALM",
}
ETYPES = (18, 17, 23)  # aes256, aes128, rc4-hmac


def principal(name_type: int, *parts: str) -> bytes:
    return seq(ctx(0, integer(name_type)), ctx(1, seq(*(general_string(p) for p in parts))))


def as_req(realm: str, user: str, nonce: int | None = None) -> bytes:
    """AS-REQ (no padata), without the TCP length prefix."""
    realm = realm.upper()
    body = seq(
        ctx(0, bit_string(b"\x50\x80\x00\x00")),  # forwardable, proxiable, renewable
        ctx(1, principal(1, user)),
        ctx(2, general_string(realm)),
        ctx(3, principal(2, "krbtgt", realm)),
        ctx(5, generalized_time("20370913024805Z")),
        ctx(7, integer(nonce if nonce is not None else secrets.randbits(31))),
        ctx(8, seq(*(integer(e) for e in ETYPES))),
    )
    return app(10, seq(ctx(1, integer(5)), ctx(2, integer(10)), ctx(4, body)))


def frame(msg: bytes) -> bytes:
    return struct.pack(">I", len(msg)) + msg


def _frame_complete(buf: bytes) -> bool:
    return len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]


def parse_reply(data: bytes) -> dict:
    """Facts of a KDC reply to our AS-REQ (the message without the length prefix)."""
    node = decode(data)
    if node.tag == 0x6B:  # AS-REP: the principal exists and needs no pre-authentication
        return {"message": "AS-REP", "error_code": None, "krb_error": None, "realm": None}
    if node.tag != 0x7E or not node.children:
        raise ServiceError(f"kerberos: not a KRB-ERROR (tag 0x{node.tag:02x})")
    s = node.children[0]
    if s.tag != 0x30:
        raise ServiceError("kerberos: KRB-ERROR without a SEQUENCE")
    pvno, mtype, code = s.child(0), s.child(1), s.child(6)
    if pvno is None or pvno.as_int() != 5 or mtype is None or mtype.as_int() != 30 or code is None:
        raise ServiceError("kerberos: malformed KRB-ERROR")
    realm = s.child(9)
    stime = s.child(4)
    sname = s.child(10)
    names = []
    if sname is not None and sname.children:
        ns = sname.child(1)
        names = [c.as_str() for c in (ns.children or [])] if ns is not None else []
    etext = s.child(11)
    c = code.as_int()
    return {"message": "KRB-ERROR", "error_code": c, "krb_error": ERRORS.get(c, f"error {c}"),
            "realm": realm.as_str()[:256] if realm is not None else None,
            "server_time": stime.as_str()[:32] if stime is not None else None,
            "sname": "/".join(names)[:256] or None, "e_text": etext.as_str()[:256] if etext is not None else None}


async def probe(address: str, port: int = 88, timeout: float = 5.0, realm: str | None = None) -> dict:
    realm = realm or "SMBSENTRY.INVALID"
    user = "smbsentry-" + secrets.token_hex(4)
    reader, writer = await connect(address, port, timeout)
    try:
        await send(writer, frame(as_req(realm, user)), timeout)
        data = await read_until(reader, _frame_complete, timeout)
    finally:
        await close(writer)
    if len(data) < 4:
        raise ServiceError("kerberos: connection closed without an answer")
    n = struct.unpack(">I", data[:4])[0]
    if n > len(data) - 4:
        raise ServiceError("kerberos: truncated reply")
    out = parse_reply(data[4:4 + n])
    out.update(port=port, kdc=True, requested_realm=realm.upper())
    return out
