"""RDP on 3389: X.224 Connection Request with RDP_NEG_REQ, and the answer.

Nothing is authenticated.  Windows XP / Server 2003 (RDP 5.x) answer the
Connection Confirm without an RDP_NEG_RSP (standard RDP security only);
Vista and later answer RDP_NEG_RSP with the protocol they selected, or
RDP_NEG_FAILURE (e.g. HYBRID_REQUIRED_BY_SERVER).
"""

from __future__ import annotations

import struct

from .common import ServiceError, close, connect, read_until, send

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


async def probe(address: str, port: int = 3389, timeout: float = 5.0) -> dict:
    reader, writer = await connect(address, port, timeout)
    try:
        await send(writer, connection_request(), timeout)
        data = await read_until(reader, tpkt_complete, timeout, cap=4096)
    finally:
        await close(writer)
    if not data:
        raise ServiceError("rdp: connection closed without an answer")
    result = parse_confirm(data)
    result["port"] = port
    return result
