"""The minimal SPNEGO (RFC 4178) that wraps NTLMSSP in SMB session setups.

We build NegTokenInit (offering NTLMSSP only) and NegTokenResp, and read the
server's tokens: the NegTokenInit2 in the SMB2 negotiate reply (its mechanism
list says whether Kerberos is offered) and the NegTokenResp that carries the
NTLM CHALLENGE.  DER lengths are checked against the buffer and a cap; the
decoder walks only the handful of tags SPNEGO uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ProtocolError

OID_SPNEGO = "1.3.6.1.5.5.2"
OID_NTLMSSP = "1.3.6.1.4.1.311.2.2.10"
OID_KRB5 = "1.2.840.113554.1.2.2"
OID_MS_KRB5 = "1.2.840.48018.1.2.2"
OID_NEGOEX = "1.3.6.1.4.1.311.2.2.30"

MECH_NAMES = {OID_NTLMSSP: "NTLMSSP", OID_KRB5: "Kerberos", OID_MS_KRB5: "MS-Kerberos", OID_NEGOEX: "NEGOEX"}

MAX_TOKEN = 16384
MAX_DEPTH = 8


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _len(len(value)) + value


def encode_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def decode_oid(value: bytes) -> str:
    if not value:
        raise ProtocolError("spnego: empty OID")
    parts = [value[0] // 40, value[0] % 40]
    acc = 0
    for b in value[1:]:
        acc = (acc << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(acc)
            acc = 0
        elif acc > 1 << 32:
            raise ProtocolError("spnego: OID arc too large")
    return ".".join(map(str, parts))


def neg_token_init(mech_token: bytes, mechs: tuple[str, ...] = (OID_NTLMSSP,)) -> bytes:
    """GSS-API InitialContextToken carrying NegTokenInit with `mech_token`."""
    mech_list = _tlv(0x30, b"".join(encode_oid(m) for m in mechs))
    body = _tlv(0xA0, mech_list) + _tlv(0xA2, _tlv(0x04, mech_token))
    return _tlv(0x60, encode_oid(OID_SPNEGO) + _tlv(0xA0, _tlv(0x30, body)))


def neg_token_resp(response_token: bytes) -> bytes:
    """NegTokenResp carrying `response_token` (our AUTHENTICATE)."""
    return _tlv(0xA1, _tlv(0x30, _tlv(0xA2, _tlv(0x04, response_token))))


def _read_tlv(buf: bytes, off: int) -> tuple[int, bytes, int]:
    """Return (tag, value, next offset), bounds-checked."""
    if off + 2 > len(buf):
        raise ProtocolError("spnego: truncated tag")
    tag = buf[off]
    first = buf[off + 1]
    off += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or off + count > len(buf):
            raise ProtocolError("spnego: bad length encoding")
        length = int.from_bytes(buf[off : off + count], "big")
        off += count
    if length > MAX_TOKEN or off + length > len(buf):
        raise ProtocolError(f"spnego: element of {length} bytes runs past the buffer")
    return tag, buf[off : off + length], off + length


def _children(value: bytes) -> list[tuple[int, bytes]]:
    out = []
    off = 0
    while off < len(value):
        tag, val, off = _read_tlv(value, off)
        out.append((tag, val))
        if len(out) > 64:
            raise ProtocolError("spnego: too many elements")
    return out


@dataclass(slots=True)
class Token:
    """What we need from any SPNEGO token a server sends."""

    mechs: list[str] = field(default_factory=list)
    neg_state: int | None = None
    supported_mech: str | None = None
    mech_token: bytes | None = None
    hint_name: str | None = None


def parse(buf: bytes) -> Token:
    """Parse NegTokenInit / NegTokenInit2 (tag 0x60) or NegTokenResp (0xA1).

    A raw NTLMSSP message (some servers skip SPNEGO) comes back as the
    mech_token of an otherwise empty Token.
    """
    buf = bytes(buf)
    if buf.startswith(b"NTLMSSP\x00"):
        return Token(mech_token=buf)
    tag, value, _ = _read_tlv(buf, 0)
    token = Token()
    if tag == 0x60:
        items = _children(value)
        if not items or items[0][0] != 0x06 or decode_oid(items[0][1]) != OID_SPNEGO:
            raise ProtocolError("spnego: not an SPNEGO token")
        if len(items) < 2 or items[1][0] != 0xA0:
            raise ProtocolError("spnego: missing NegTokenInit")
        inner = _children(items[1][1])
        if not inner or inner[0][0] != 0x30:
            raise ProtocolError("spnego: NegTokenInit is not a sequence")
        for ctag, cval in _children(inner[0][1]):
            if ctag == 0xA0:
                seq = _children(cval)
                if seq and seq[0][0] == 0x30:
                    token.mechs = [decode_oid(v) for t, v in _children(seq[0][1]) if t == 0x06]
            elif ctag == 0xA2:
                t, v, _ = _read_tlv(cval, 0)
                token.mech_token = v
            elif ctag == 0xA3:  # negHints (NegTokenInit2)
                seq = _children(cval)
                if seq and seq[0][0] == 0x30:
                    for htag, hval in _children(seq[0][1]):
                        if htag == 0xA0:
                            t, v, _ = _read_tlv(hval, 0)
                            token.hint_name = v.decode("utf-8", "replace")[:256]
        return token
    if tag == 0xA1:
        inner = _children(value)
        if not inner or inner[0][0] != 0x30:
            raise ProtocolError("spnego: NegTokenResp is not a sequence")
        for ctag, cval in _children(inner[0][1]):
            if ctag == 0xA0:
                t, v, _ = _read_tlv(cval, 0)
                token.neg_state = v[0] if v else None
            elif ctag == 0xA1:
                t, v, _ = _read_tlv(cval, 0)
                token.supported_mech = decode_oid(v)
            elif ctag == 0xA2:
                t, v, _ = _read_tlv(cval, 0)
                token.mech_token = v
        return token
    raise ProtocolError(f"spnego: unexpected token tag 0x{tag:02x}")


# -- server side (the lab) ---------------------------------------------------


def neg_token_init2(mechs: tuple[str, ...], hint: str | None = None, mech_token: bytes | None = None) -> bytes:
    """The NegTokenInit2 a server puts in its negotiate reply: the mechanism
    list, optionally a mechToken (Windows sends NEGOEX data) and the negHints
    principal ("not_defined_in_RFC4178@please_ignore" on Samba and domain
    members)."""
    body = _tlv(0xA0, _tlv(0x30, b"".join(encode_oid(m) for m in mechs)))
    if mech_token is not None:
        body += _tlv(0xA2, _tlv(0x04, mech_token))
    if hint is not None:
        body += _tlv(0xA3, _tlv(0x30, _tlv(0xA0, _tlv(0x1B, hint.encode("utf-8")))))
    return _tlv(0x60, encode_oid(OID_SPNEGO) + _tlv(0xA0, _tlv(0x30, body)))


ACCEPT_COMPLETED = 0
ACCEPT_INCOMPLETE = 1
REJECT = 2


def neg_token_targ(
    neg_state: int | None = None,
    supported_mech: str | None = None,
    response_token: bytes | None = None,
    mic: bytes | None = None,
) -> bytes:
    """A server's NegTokenResp: negState, supportedMech, responseToken
    (the NTLM CHALLENGE) and mechListMIC, each only when given."""
    body = b""
    if neg_state is not None:
        body += _tlv(0xA0, _tlv(0x0A, bytes([neg_state])))
    if supported_mech is not None:
        body += _tlv(0xA1, encode_oid(supported_mech))
    if response_token is not None:
        body += _tlv(0xA2, _tlv(0x04, response_token))
    if mic is not None:
        body += _tlv(0xA3, _tlv(0x04, mic))
    return _tlv(0xA1, _tlv(0x30, body))
