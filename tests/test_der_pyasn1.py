"""Our DER (services/der.py) against an independent implementation: pyasn1 with impacket's ASN.1 specs.

services/der.py stays our own on the scan path: pyasn1 handles these messages
10-30x slower (bench/libraries; docs/architecture.md, "Libraries, and what stays
our own").  So pyasn1 serves here, as h11's tests use the stdlib: every message
the scanner and the lab build is read back by pyasn1 under the published
structure, and messages pyasn1 builds are read by our parsers.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pyasn1")
pytest.importorskip("impacket")

from impacket.krb5.asn1 import AS_REQ, KRB_ERROR, seq_set_iter  # noqa: E402
from impacket.ldap.ldapasn1 import LDAPMessage  # noqa: E402
from pyasn1.codec.der import decoder, encoder  # noqa: E402
from pyasn1.type import namedtype, tag, univ  # noqa: E402

from smbsentry.services import credssp, kerberos, ldap  # noqa: E402


def _explicit(n: int, t):
    return t.subtype(explicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, n))


class _NegoItem(univ.Sequence):
    componentType = namedtype.NamedTypes(namedtype.NamedType("negoToken", _explicit(0, univ.OctetString())))


class _NegoData(univ.SequenceOf):
    componentType = _NegoItem()


class _TSRequest(univ.Sequence):
    """[MS-CSSP] 2.2.1 TSRequest."""
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("version", _explicit(0, univ.Integer())),
        namedtype.OptionalNamedType("negoTokens", _explicit(1, _NegoData())),
        namedtype.OptionalNamedType("authInfo", _explicit(2, univ.OctetString())),
        namedtype.OptionalNamedType("pubKeyAuth", _explicit(3, univ.OctetString())),
        namedtype.OptionalNamedType("errorCode", _explicit(4, univ.Integer())))


def test_our_as_req_is_the_rfc4120_structure_and_canonical_der():
    data = kerberos.as_req("corp.example", "smbsentry-1234", nonce=123456)
    msg, rest = decoder.decode(data, asn1Spec=AS_REQ())
    assert rest == b"" and int(msg["pvno"]) == 5 and int(msg["msg-type"]) == 10
    body = msg["req-body"]
    assert str(body["realm"]) == "CORP.EXAMPLE" and int(body["nonce"]) == 123456
    assert [str(s) for s in body["cname"]["name-string"]] == ["smbsentry-1234"]
    assert [str(s) for s in body["sname"]["name-string"]] == ["krbtgt", "CORP.EXAMPLE"]
    assert [int(e) for e in body["etype"]] == list(kerberos.ETYPES)
    assert encoder.encode(msg) == data  # DER has one encoding: pyasn1 writes the same bytes back


@pytest.mark.parametrize("code, name", [(6, "KDC_ERR_C_PRINCIPAL_UNKNOWN"), (25, "KDC_ERR_PREAUTH_REQUIRED"), (68, "KDC_ERR_WRONG_REALM"),
                                        (1000, "error 1000")])
def test_a_krb_error_pyasn1_builds_is_read_by_our_parser(code, name):
    err = KRB_ERROR()
    err["pvno"], err["msg-type"], err["stime"], err["susec"], err["error-code"] = 5, 30, "20261207135000Z", 12345, code
    err["realm"] = "CORP.EXAMPLE"
    err["sname"]["name-type"] = 2
    seq_set_iter(err["sname"], "name-string", ("krbtgt", "CORP.EXAMPLE"))
    err["e-text"] = "no such principal"
    facts = kerberos.parse_reply(encoder.encode(err))
    assert facts == {"message": "KRB-ERROR", "error_code": code, "krb_error": name, "realm": "CORP.EXAMPLE",
                     "server_time": "20261207135000Z", "sname": "krbtgt/CORP.EXAMPLE", "e_text": "no such principal"}


def test_tsrequest_both_ways():
    token = bytes(range(256)) * 2
    msg, rest = decoder.decode(credssp.ts_request(token, version=6), asn1Spec=_TSRequest())
    assert rest == b"" and int(msg["version"]) == 6 and bytes(msg["negoTokens"][0]["negoToken"]) == token
    theirs = _TSRequest()
    theirs["version"] = 5
    theirs["errorCode"] = -1073741715  # 0xC000006D, signed as the wire carries it
    parsed = credssp.parse(encoder.encode(theirs))
    assert (parsed.version, parsed.token, parsed.error_code) == (5, None, 0xC000006D)


def test_ldap_messages_our_scanner_and_lab_build_are_rfc4511():
    req, rest = decoder.decode(ldap.rootdse_request(7), asn1Spec=LDAPMessage())
    assert rest == b"" and int(req["messageID"]) == 7
    search = req["protocolOp"]["searchRequest"]
    assert str(search["baseObject"]) == "" and [str(a) for a in search["attributes"]] == list(ldap.ATTRIBUTES)
    entry, _ = decoder.decode(ldap.search_entry(7, {"dnsHostName": ["dc1.corp.example"], "supportedLDAPVersion": ["2", "3"]}),
                              asn1Spec=LDAPMessage())
    attrs = {str(a["type"]): [str(v) for v in a["vals"]] for a in entry["protocolOp"]["searchResEntry"]["attributes"]}
    assert attrs == {"dnsHostName": ["dc1.corp.example"], "supportedLDAPVersion": ["2", "3"]}
    done, _ = decoder.decode(ldap.search_done(7, 0), asn1Spec=LDAPMessage())
    assert int(done["protocolOp"]["searchResDone"]["resultCode"]) == 0
