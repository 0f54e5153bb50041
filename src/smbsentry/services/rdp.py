"""RDP on 3389: X.224 Connection Request with RDP_NEG_REQ, and the answer.

Nothing is authenticated.  Windows XP / Server 2003 (RDP 5.x) answer the
Connection Confirm without an RDP_NEG_RSP (standard RDP security only);
Vista and later answer RDP_NEG_RSP with the protocol they selected, or
RDP_NEG_FAILURE (e.g. HYBRID_REQUIRED_BY_SERVER).

When the server selects HYBRID / HYBRID_EX (NLA), the probe goes on as nmap's
rdp-ntlm-info does: TLS on the same connection (any certificate), a CredSSP
TSRequest carrying an NTLMSSP NEGOTIATE, and the server's TSRequest with its
NTLM CHALLENGE, which names the host, its domain and OS build before any logon.
No AUTHENTICATE is ever sent: the probe hangs up after the CHALLENGE.  That
step is a bonus: its failure is a reason in "ntlm_error", the X.224 facts stay.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import warnings
from functools import lru_cache

from ..protocol import ntlm
from .credssp import MAX_TSREQUEST, complete, ts_request
from .credssp import parse as parse_ts_request
from .common import ServiceError, close, connect, read_until, send
from .mail import ntlm_facts

PROTOCOL_RDP, PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_RDSTLS, PROTOCOL_HYBRID_EX = 0, 1, 2, 4, 8
PROTOCOLS = {0: "RDP", 1: "SSL", 2: "HYBRID", 4: "RDSTLS", 8: "HYBRID_EX"}
FAILURES = {
    1: "SSL_REQUIRED_BY_SERVER",
    2: "SSL_NOT_ALLOWED_BY_SERVER",
    3: "SSL_CERT_NOT_ON_SERVER",
    4: "INCONSISTENT_FLAGS",
    5: "HYBRID_REQUIRED_BY_SERVER",
    6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}


def connection_request(protocols: int = PROTOCOL_SSL | PROTOCOL_HYBRID, cookie: str | None = None) -> bytes:
    """TPKT + X.224 CR (class 0) + optional cookie + RDP_NEG_REQ."""
    body = b""
    if cookie:
        body += f"Cookie: mstshash={cookie}\r\n".encode("ascii")
    body += struct.pack("<BBHI", 0x01, 0x00, 8, protocols)
    x224 = bytes([6 + len(body), 0xE0, 0, 0, 0x12, 0x34, 0x00]) + body
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def tpkt_complete(buf: bytes) -> bool:
    return len(buf) >= 4 and len(buf) >= struct.unpack(">H", buf[2:4])[0]


def parse_confirm(data: bytes) -> dict:
    """The facts of a TPKT/X.224 Connection Confirm; ServiceError when it is not one."""
    if len(data) < 11 or data[0] != 3:
        raise ServiceError("rdp: not a TPKT answer")
    length = struct.unpack(">H", data[2:4])[0]
    if length < 11 or length > len(data):
        raise ServiceError("rdp: bad TPKT length")
    li, code = data[4], data[5] & 0xF0
    if code != 0xD0:
        raise ServiceError(f"rdp: X.224 code 0x{data[5]:02x}, not a Connection Confirm")
    if li + 5 > length:
        raise ServiceError("rdp: X.224 length runs past the TPKT")
    out: dict = {"x224": "connection-confirm", "negotiation": None, "selected_protocol": None,
                 "failure": None, "nla_required": False, "nla_supported": False, "standard_rdp_security": False}
    var = data[11:5 + li]
    if len(var) >= 8 and var[0] in (0x02, 0x03):
        kind, flags, ln, value = struct.unpack("<BBHI", var[:8])
        if kind == 0x02:
            out["negotiation"] = "response"
            out["flags"] = flags
            out["selected_protocol"] = PROTOCOLS.get(value, f"0x{value:x}")
            out["nla_supported"] = value in (PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX)
            out["standard_rdp_security"] = value == PROTOCOL_RDP
        else:
            out["negotiation"] = "failure"
            out["failure"] = FAILURES.get(value, f"0x{value:x}")
            out["nla_required"] = value in (5, 6)
            out["nla_supported"] = out["nla_required"]
    elif not var:
        # RDP 5.x (XP / 2003) ignores the request: standard RDP security, no TLS, no NLA.
        out["negotiation"] = "none"
        out["selected_protocol"] = "RDP"
        out["standard_rdp_security"] = True
    else:
        raise ServiceError("rdp: unknown negotiation data")
    return out


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """Client TLS for NLA: no verification (RDP certificates are self-signed), and
    TLS 1.0 allowed, since Windows 7 / 2008 R2 speak nothing newer by default."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 is deprecated: old hosts still speak only it
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):  # an OpenSSL built without them: keep its defaults
        pass
    return ctx


class TlsFailed(ServiceError):
    """The TLS handshake failed: asyncio has closed the socket under the stream, whose
    wait_closed() would then never finish, so the probe does not wait for it."""


async def ntlm_over_credssp(reader, writer, timeout: float) -> tuple[dict, int]:
    """TLS, TSRequest(NEGOTIATE), the server's TSRequest -> (ntlm_facts, its CredSSP version)."""
    try:
        await asyncio.wait_for(writer.start_tls(tls_context(), ssl_handshake_timeout=timeout), timeout)
    except asyncio.TimeoutError:
        raise TlsFailed("tls: handshake timed out") from None
    except (ssl.SSLError, OSError, EOFError) as exc:
        raise TlsFailed(f"tls: handshake failed: {str(exc) or type(exc).__name__}") from None
    await send(writer, ts_request(ntlm.negotiate()), timeout)
    data = await read_until(reader, complete, timeout, cap=MAX_TSREQUEST)
    if not data:
        raise ServiceError("credssp: connection closed without a TSRequest")
    ts = parse_ts_request(data)
    if ts.token is None:
        code = f" (errorCode 0x{ts.error_code:08x})" if ts.error_code is not None else ""
        raise ServiceError(f"credssp: TSRequest without an NTLM token{code}")
    if ntlm.message_type(ts.token) != 2:
        raise ServiceError("credssp: the negoToken is not an NTLMSSP CHALLENGE")
    return ntlm_facts(ntlm.parse_challenge(ts.token)), ts.version


async def probe(address: str, port: int = 3389, timeout: float = 5.0, ntlm_info: bool = True) -> dict:
    """The Connection Confirm's facts, plus "ntlm" (or "ntlm_error") after a HYBRID choice.

    Reads at most 4 KiB + MAX_TSREQUEST (well under READ_CAP); each step has `timeout`."""
    reader, writer = await connect(address, port, timeout)
    tls_failed = False
    try:
        await send(writer, connection_request(), timeout)
        data = await read_until(reader, tpkt_complete, timeout, cap=4096)
        if not data:
            raise ServiceError("rdp: connection closed without an answer")
        result = parse_confirm(data)
        result["port"] = port
        if ntlm_info and result["selected_protocol"] in ("HYBRID", "HYBRID_EX"):
            try:
                result["ntlm"], result["credssp_version"] = await ntlm_over_credssp(reader, writer, timeout)
            except Exception as exc:  # noqa: BLE001 - the NTLM leg is a bonus; keep the X.224 facts
                tls_failed = isinstance(exc, TlsFailed)
                result["ntlm_error"] = (str(exc) or type(exc).__name__)[:200]
    finally:
        if tls_failed:
            writer.close()
        else:
            await close(writer)
    return result
