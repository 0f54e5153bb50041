"""LDAP signing and LDAPS channel binding, from binds the server refuses (opt-in).

Neither setting is in the rootDSE (services/ldap.py reads supportedCapabilities,
supportedControl is not a policy: a DC lists the same controls whether it
requires signing or not), so the only remote evidence is how a bind is
refused.  These probes send credentials that cannot be valid (a random user
that does not exist: no account is locked out, nothing is logged on) and read
the refusal; they run only when the user asked for them (`scan
--allow-failed-logon`), and every fact they leave says so (`opt_in`), because
a failed logon is visible to the defenders (Windows event 4625) and an audit
has to be told it came from us.

* 389, signing: a simple bind with those credentials on the cleartext
  connection.  A server that requires integrity refuses it before judging
  the credentials: Active Directory with LDAPServerIntegrity=2 answers
  strongerAuthRequired (8, "00002028 ... requires binds to turn on integrity
  checking"), OpenLDAP with a `security` floor confidentialityRequired (13).
  invalidCredentials (49) means the credentials were judged on an
  unprotected connection: signing is not required, and NTLM relayed to LDAP
  is accepted.  Anything else is not read as either.
* 636, channel binding (Active Directory only: a host whose rootDSE lists
  the AD capability): an NTLM bind (Sicily, the exchange impacket and ldap3
  use against DCs) over TLS with an AUTHENTICATE that carries no channel
  binding token.  With LdapEnforceChannelBinding=2 the refusal names
  SEC_E_BAD_BINDINGS (data 80090346); a refusal naming the credentials
  (data 52e, or 49 without 80090346) means the token was not asked for.
  Other servers get a simple bind over TLS, which shows that LDAPS answers
  but not channel binding (only NTLM and Kerberos binds carry a token).

Sans-I/O: the request builders and `parse_bind_response` are pure; `probe`
does the two exchanges, each with its timeout and a read cap.
"""

from __future__ import annotations

import os

from ..protocol import ntlm
from ..protocol.errors import ProtocolError
from .common import ServiceError, close, connect, read_until, send, text
from .der import decode, integer, octets, seq, sequence_complete, tlv

BIND_REQUEST, BIND_RESPONSE, EXTENDED_RESPONSE = 0x60, 0x61, 0x78
SIMPLE, SICILY_NEGOTIATE, SICILY_RESPONSE = 0x80, 0x8A, 0x8B  # AuthenticationChoice tags ([0], [10], [11])
SUCCESS, STRONGER_AUTH_REQUIRED, CONFIDENTIALITY_REQUIRED, INVALID_CREDENTIALS = 0, 8, 13, 49
SEC_E_BAD_BINDINGS = "80090346"
RESULT_NAMES = {0: "success", 1: "operationsError", 2: "protocolError", 7: "authMethodNotSupported",
                8: "strongerAuthRequired", 13: "confidentialityRequired", 14: "saslBindInProgress",
                34: "invalidDNSyntax", 48: "inappropriateAuthentication", 49: "invalidCredentials",
                50: "insufficientAccessRights", 52: "unavailable", 53: "unwillingToPerform", 80: "other"}
MAX_REPLY = 16 * 1024  # a bind response is a few hundred bytes; a CHALLENGE under 1 KiB
MAX_DIAGNOSTIC = 200
OPT_IN = "sent only because --allow-failed-logon was given"


def bogus_name() -> str:
    """A user that does not exist, recognisable in the server's logs."""
    return f"smbsentry-probe-{os.urandom(4).hex()}"


def bogus_dn(base: str | None) -> str:
    """A DN under the server's naming context: a server applies its bind rules
    to names it holds (OpenLDAP answers a name outside every database with
    invalidCredentials whatever its `security` floor)."""
    return f"cn={bogus_name()},{base}" if base else f"cn={bogus_name()}"


def simple_bind_request(message_id: int, dn: str, password: str) -> bytes:
    """BindRequest, LDAPv3, simple authentication."""
    body = integer(3) + octets(dn.encode()) + tlv(SIMPLE, password.encode())
    return seq(integer(message_id), tlv(BIND_REQUEST, body))


def sicily_request(message_id: int, tag: int, token: bytes) -> bytes:
    """BindRequest carrying an NTLMSSP message in Active Directory's Sicily choice
    (negotiate: name "NTLM"; response: empty name)."""
    name = b"NTLM" if tag == SICILY_NEGOTIATE else b""
    return seq(integer(message_id), tlv(BIND_REQUEST, integer(3) + octets(name) + tlv(tag, token)))


def bind_response(message_id: int, code: int, message: str = "", matched: bytes = b"") -> bytes:
    """BindResponse (tests build the servers' answers with it)."""
    return seq(integer(message_id),
               tlv(BIND_RESPONSE, tlv(0x0A, bytes([code])) + octets(matched) + octets(message.encode())))


def parse_bind_response(data: bytes) -> dict:
    """{"result_code", "result", "diagnostic", "matched"} of the first LDAPMessage.

    A notice of disconnection (an ExtendedResponse) is read the same way: AD
    sends one instead of a BindResponse to some refused binds."""
    try:
        msg = decode(data[:MAX_REPLY])
    except ServiceError as exc:
        raise ServiceError(f"ldap bind: {exc}") from None
    kids = msg.children or []
    if msg.tag != 0x30 or len(kids) < 2 or kids[0].tag != 0x02:
        raise ServiceError("ldap bind: not an LDAP message")
    op = kids[1]
    parts = op.children or []
    if op.tag not in (BIND_RESPONSE, EXTENDED_RESPONSE) or len(parts) < 3:
        raise ServiceError(f"ldap bind: unexpected answer (tag 0x{op.tag:02x})")
    code_node, matched, diag = parts[0], parts[1], parts[2]
    if code_node.tag != 0x0A or not code_node.value or len(code_node.value) > 4:
        raise ServiceError("ldap bind: malformed result code")
    code = int.from_bytes(code_node.value, "big")
    return {"result_code": code, "result": RESULT_NAMES.get(code, f"code {code}"),
            "diagnostic": text(diag.value, MAX_DIAGNOSTIC), "matched": matched.value}


async def _exchange(reader, writer, request: bytes, timeout: float) -> dict:
    await send(writer, request, timeout)
    data = await read_until(reader, sequence_complete, timeout, MAX_REPLY)
    if not data:
        raise ServiceError("ldap bind: the connection closed without an answer")
    return parse_bind_response(data)


def signing_reading(reply: dict) -> bool | None:
    """Whether the cleartext simple bind's refusal says integrity is required (None: it does not say)."""
    code = reply["result_code"]
    if code in (STRONGER_AUTH_REQUIRED, CONFIDENTIALITY_REQUIRED):
        return True
    if code == INVALID_CREDENTIALS:
        return False
    return None


def binding_reading(reply: dict, ntlm_bind: bool) -> bool | None:
    """Whether the LDAPS bind's refusal says a channel binding token is required (None: it does not say)."""
    if not ntlm_bind:
        return None
    if SEC_E_BAD_BINDINGS in reply["diagnostic"].lower():
        return True
    if reply["result_code"] == INVALID_CREDENTIALS:
        return False
    return None


def _fact(port: int, method: str, reply: dict, key: str, value: bool | None) -> dict:
    return {"port": port, "method": method, "result_code": reply["result_code"], "result": reply["result"],
            "diagnostic": reply["diagnostic"], key: value, "opt_in": OPT_IN}


async def signing_probe(address: str, port: int, timeout: float, base: str | None = None,
                        real_port: int | None = None) -> dict:
    """The cleartext simple bind with bogus credentials on 389 (base: the naming context for the DN)."""
    reader, writer = await connect(address, real_port or port, timeout)
    try:
        reply = await _exchange(reader, writer, simple_bind_request(1, bogus_dn(base), os.urandom(12).hex()), timeout)
    finally:
        await close(writer)
    return _fact(port, "simple bind with bogus credentials, cleartext", reply, "required", signing_reading(reply))


async def _ntlm_bind(reader, writer, timeout: float) -> dict:
    """Sicily negotiate, then an AUTHENTICATE for a user that does not exist, without a channel binding token."""
    first = await _exchange(reader, writer, sicily_request(1, SICILY_NEGOTIATE, ntlm.negotiate()), timeout)
    if first["result_code"] != SUCCESS or not first["matched"]:
        return first  # no CHALLENGE: the refusal itself is the answer
    try:
        challenge = ntlm.parse_challenge(first["matched"])
    except ProtocolError as exc:
        raise ServiceError(f"ldap bind: bad NTLM challenge: {exc}") from None
    auth = ntlm.authenticate(challenge, user=bogus_name(), password=os.urandom(12).hex())
    return await _exchange(reader, writer, sicily_request(2, SICILY_RESPONSE, auth.message), timeout)


async def binding_probe(address: str, port: int, timeout: float, active_directory: bool, base: str | None = None,
                        real_port: int | None = None) -> dict:
    """The LDAPS bind with bogus credentials: NTLM without a token on AD, a simple bind elsewhere."""
    reader, writer = await connect(address, real_port or port, timeout, tls=True)
    try:
        if active_directory:
            reply = await _ntlm_bind(reader, writer, timeout)
            method = "NTLM bind with bogus credentials and no channel binding token, over TLS"
        else:
            reply = await _exchange(reader, writer, simple_bind_request(1, bogus_dn(base), os.urandom(12).hex()), timeout)
            method = "simple bind with bogus credentials, over TLS"
    finally:
        await close(writer)
    return _fact(port, method, reply, "enforced", binding_reading(reply, active_directory))


def naming_context(attributes: dict[str, list[str]]) -> str | None:
    """The DN the bogus name goes under: AD's defaultNamingContext, else the first namingContexts value."""
    for key in ("defaultNamingContext", "namingContexts"):
        values = [v for v in attributes.get(key) or () if v]
        if values:
            return values[0]
    return None


async def probe(address: str, timeout: float, rootdse: dict[str, list[str]],
                port_map: dict[int, int] | None = None) -> dict:
    """{"signing": {...} | {"error"}, "channel_binding": {...} | {"error"}}: each probe fails on its own.

    rootdse: the attributes of the anonymous read (services.ldap), which say
    whether the server is Active Directory and under which DN to bind."""
    from .ldap import AD_DS

    pm = port_map or {}
    ad = AD_DS in (rootdse.get("supportedCapabilities") or ())
    base = naming_context(rootdse)
    out: dict = {}
    for key, port, run in (("signing", 389, lambda p: signing_probe(address, 389, timeout, base, p)),
                           ("channel_binding", 636, lambda p: binding_probe(address, 636, timeout, ad, base, p))):
        try:
            out[key] = await run(pm.get(port, port))
        except ServiceError as exc:
            out[key] = {"port": port, "error": str(exc)[:200], "opt_in": OPT_IN}
    return out
