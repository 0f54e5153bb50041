"""LDAP on 389/tcp: one anonymous read of the rootDSE, nothing more.

Every LDAP server answers a base-scope search of the empty DN without a bind
(RFC 4512 section 5.1); Active Directory's answer names its role: a domain
controller publishes `domainControllerFunctionality`, its naming contexts and
`dnsHostName`, and lists the Active Directory capability OID.  That is what
the planner needs to know before it touches the Server service of a host
(stopping it on a domain controller takes SYSVOL and NETLOGON, so the whole
domain's logons, with it).  No bind is sent, nothing is written.

What the rootDSE does not say: whether the server requires LDAP signing or
LDAPS channel binding.  supportedCapabilities, supportedControl and
supportedSASLMechanisms are the same on a DC that enforces both and on one
that enforces neither (the settings are registry values, LDAPServerIntegrity
and LdapEnforceChannelBinding); only a bind's refusal shows them, which
services/ldap_bind.py sends when the user opts in.  `namingContexts` is read
so that bind can name a DN the server holds.

Sans-I/O: `rootdse_request` builds the request, `parse_messages` reads the
replies (every length checked, DER nesting capped, values capped); `probe`
is the asyncio exchange.
"""

from __future__ import annotations

from ..kb.store import kb
from .der import Node, decode, integer, octets, seq, tlv
from .common import READ_CAP, ServiceError, close, connect, read_until, send

# The attributes a domain controller's rootDSE answers (MS-ADTS 3.1.1.3.2).
ATTRIBUTES = ("defaultNamingContext", "namingContexts", "dnsHostName", "ldapServiceName", "domainControllerFunctionality",
              "domainFunctionality", "forestFunctionality", "supportedCapabilities", "isGlobalCatalogReady",
              "serverName", "vendorName", "vendorVersion")
# supportedCapabilities OIDs (MS-ADTS 3.1.1.3.4.3)
AD_DS = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID: an AD domain controller
AD_LDS = "1.2.840.113556.1.4.1851"  # LDAP_CAP_ACTIVE_DIRECTORY_ADAM_OID: AD LDS, not a DC
# the names of the domainControllerFunctionality values (MS-ADTS 6.1.4.2) are knowledge: kb/data/services.json
MAX_VALUES = 32  # values kept per attribute
MAX_VALUE = 256  # characters kept per value

SEARCH_REQUEST, SEARCH_ENTRY, SEARCH_DONE = 0x63, 0x64, 0x65


def rootdse_request(message_id: int = 1) -> bytes:
    """SearchRequest: base "", scope base, never deref, no limits, (objectClass=*), ATTRIBUTES."""
    body = b"".join((
        octets(b""),
        tlv(0x0A, b"\x00"),  # scope: baseObject
        tlv(0x0A, b"\x00"),  # derefAliases: never
        integer(0),  # sizeLimit
        integer(10),  # timeLimit (seconds, the server's side)
        tlv(0x01, b"\x00"),  # typesOnly FALSE
        tlv(0x87, b"objectClass"),  # filter: present
        seq(*(octets(a.encode()) for a in ATTRIBUTES)),
    ))
    return seq(integer(message_id), tlv(SEARCH_REQUEST, body))


def search_entry(message_id: int, attributes: dict[str, list[str]], dn: str = "") -> bytes:
    """SearchResultEntry (the lab answers with it; tests build replies with it)."""
    attrs = seq(*(seq(octets(k.encode()), tlv(0x31, b"".join(octets(v.encode()) for v in vals)))
                      for k, vals in attributes.items()))
    return seq(integer(message_id), tlv(SEARCH_ENTRY, octets(dn.encode()) + attrs))


def search_done(message_id: int, code: int = 0, message: str = "") -> bytes:
    """SearchResultDone: resultCode, matchedDN "", diagnosticMessage."""
    return seq(integer(message_id),
                   tlv(SEARCH_DONE, tlv(0x0A, bytes([code])) + octets(b"") + octets(message.encode())))


def parse_request(data: bytes) -> tuple[int, str, list[str]]:
    """(message id, base DN, attributes) of a SearchRequest; ServiceError otherwise (the lab's side)."""
    msg = decode(data)
    kids = msg.children or []
    if len(kids) < 2 or kids[0].tag != 0x02 or kids[1].tag != SEARCH_REQUEST or not kids[1].children:
        raise ServiceError("ldap: not a search request")
    body = kids[1].children
    attrs = [_text(a.value) for a in (body[-1].children or [])] if body[-1].tag == 0x30 else []
    return kids[0].as_int(), _text(body[0].value), attrs


def _message_end(buf: bytes, pos: int) -> int | None:
    """End offset of the LDAPMessage starting at pos, or None while it is incomplete."""
    if pos + 2 > len(buf):
        return None
    if buf[pos] != 0x30:
        raise ServiceError(f"ldap: not an LDAP message (tag 0x{buf[pos]:02x})")
    ln, p = buf[pos + 1], pos + 2
    if ln & 0x80:
        k = ln & 0x7F
        if k == 0 or k > 4:
            raise ServiceError("ldap: bad length")
        if p + k > len(buf):
            return None
        ln, p = int.from_bytes(buf[p:p + k], "big"), p + k
    return p + ln if p + ln <= len(buf) else None


def complete(buf: bytes) -> bool:
    """True once the buffer holds a SearchResultDone (or is not LDAP at all)."""
    pos = 0
    try:
        while (end := _message_end(buf, pos)) is not None:
            node = decode(buf[pos:end])
            if node.children and len(node.children) >= 2 and node.children[1].tag == SEARCH_DONE:
                return True
            pos = end
    except ServiceError:
        return True  # let parse_messages say what is wrong
    return False


def _text(value: bytes) -> str:
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in value[:MAX_VALUE * 4].decode("utf-8", "replace"))[:MAX_VALUE]


def _entry_attributes(entry: Node) -> dict[str, list[str]]:
    kids = entry.children or []
    if len(kids) < 2 or kids[1].tag != 0x30:
        raise ServiceError("ldap: malformed search entry")
    out: dict[str, list[str]] = {}
    for attr in (kids[1].children or [])[:len(ATTRIBUTES) * 2]:
        parts = attr.children or []
        if attr.tag != 0x30 or len(parts) < 2 or parts[0].tag != 0x04 or parts[1].tag != 0x31:
            raise ServiceError("ldap: malformed attribute")
        name = _text(parts[0].value)[:64]
        out[name] = [_text(v.value) for v in (parts[1].children or [])[:MAX_VALUES]]
    return out


def parse_messages(buf: bytes) -> dict:
    """The rootDSE attributes and the search's result code from the server's replies."""
    pos, attrs, result = 0, {}, None
    while pos < len(buf):
        end = _message_end(buf, pos)
        if end is None:
            raise ServiceError("ldap: truncated reply")
        msg = decode(buf[pos:end])
        pos = end
        kids = msg.children or []
        if len(kids) < 2 or kids[0].tag != 0x02:
            raise ServiceError("ldap: malformed message")
        op = kids[1]
        if op.tag == SEARCH_ENTRY:
            attrs.update(_entry_attributes(op))
        elif op.tag == SEARCH_DONE:
            code = (op.children or [None])[0]
            if code is None or code.tag != 0x0A or not code.value:
                raise ServiceError("ldap: malformed search result")
            result = int.from_bytes(code.value[:4], "big")
            break
        elif op.tag == 0x78:  # ExtendedResponse: a notice of disconnection, typically
            raise ServiceError("ldap: the server ended the session")
    if result is None:
        raise ServiceError("ldap: no search result")
    return {"result_code": result, "attributes": attrs}


def role_facts(attrs: dict[str, list[str]]) -> dict:
    """What the rootDSE says about the host's role."""
    caps = set(attrs.get("supportedCapabilities", []))
    level = attrs.get("domainControllerFunctionality", [None])[0]
    dc = AD_DS in caps or (level is not None and AD_LDS not in caps)
    out = {"domain_controller": dc, "ad_lds": AD_LDS in caps}
    if level is not None and level.isdigit():
        out["dc_functionality"] = kb().dc_levels.get(int(level), f"level {level}")
    for key, name in (("defaultNamingContext", "naming_context"), ("dnsHostName", "dns_host_name"),
                      ("ldapServiceName", "ldap_service_name"), ("vendorName", "vendor")):
        if attrs.get(key):
            out[name] = attrs[key][0]
    if attrs.get("isGlobalCatalogReady"):
        out["global_catalog"] = attrs["isGlobalCatalogReady"][0].upper() == "TRUE"
    return out


async def probe(address: str, port: int = 389, timeout: float = 5.0) -> dict:
    """{"port": 389, "result_code": 0, "attributes": {...}, **role_facts}; ServiceError when it fails."""
    reader, writer = await connect(address, port, timeout)
    try:
        await send(writer, rootdse_request(), timeout)
        data = await read_until(reader, complete, timeout, READ_CAP)
    finally:
        await close(writer)
    if not data:
        raise ServiceError(f"{port}: the connection closed without an answer")
    parsed = parse_messages(data)
    if parsed["result_code"] != 0 and not parsed["attributes"]:
        raise ServiceError(f"{port}: the rootDSE read was refused (result code {parsed['result_code']})")
    return {"port": port, **parsed, **role_facts(parsed["attributes"])}
