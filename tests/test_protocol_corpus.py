"""The protocol parsers against REAL server replies from the capture corpus.

Every value asserted here was read from the capture itself (tshark -V and the
raw bytes), not from the MANIFEST alone; where the two disagree the capture
wins and the test says so.  Captures are read in place through tests/corpus.py
and every test skips when the corpus is absent.
"""

from __future__ import annotations

import struct

import pytest
from corpus import SMB1, SMB2, client_requests, server_replies, smb_messages

from smbsentry.protocol import ProtocolError, filetime, ntlm, smb1, smb1_tree, smb2, spnego, status

NTLMSSP = spnego.OID_NTLMSSP
NEGOEX = spnego.OID_NEGOEX

ALL_CAPTURES = [
    "arkime-smb-on-windows10.pcap",
    "arkime-smbclient-samba363.pcap",
    "claroty-smb311-legit-compressed-data.pcap",
    "claroty-smbghost-dos.pcapng",
    "claroty-win10-negotiate-compression.pcap",
    "claroty-win7-negotiate-smb21.pcap",
    "doublepulsar-backdoor-connect-win7.pcap",
    "eternalblue-success-unpatched-win7.pcap",
    "eternalromance-success-2008r2.pcap",
    "wannacry.pcap",
    "zeek-cifs-negotiate-lanman.pcap",
    "zeek-smb1-transaction-request.pcap",
    "zeek-smb1-transaction2-request.pcap",
    "zeek-smb2-compound.pcap",
    "zeek-smb3-negotiate-context.pcap",
    "zeek-smb3-ws2016.pcap",
    "zeek-smb311.pcap",
    "zeek-smbghost-scan-ws2019.pcap",
]

SMB1_PARSERS = {
    smb1.NEGOTIATE: smb1.parse_negotiate_response,
    smb1.SESSION_SETUP_ANDX: smb1.parse_session_setup_response,
    smb1.TREE_CONNECT_ANDX: smb1_tree.parse_tree_connect_response,
    smb1.TRANSACTION: smb1.parse_transaction_response,
    smb1.TRANSACTION2: smb1.parse_transaction_response,
}


def only(msgs):
    assert len(msgs) == 1, [m.frame for m in msgs]
    return msgs[0]


def by_frame(msgs, frame):
    return only([m for m in msgs if m.frame == frame])


def negotiate2(name, frame=None):
    replies = server_replies(name, SMB2, smb2.NEGOTIATE)
    m = only(replies) if frame is None else by_frame(replies, frame)
    return m, smb2.parse_negotiate_response(m.data)


def challenge_from(blob: bytes) -> tuple[spnego.Token, ntlm.Challenge]:
    token = spnego.parse(blob)
    assert token.mech_token is not None
    return token, ntlm.parse_challenge(token.mech_token)


def smb2_challenges(name):
    out = []
    for m in server_replies(name, SMB2, smb2.SESSION_SETUP):
        r = smb2.parse_session_setup_response(m.data)
        if r.status == status.MORE_PROCESSING_REQUIRED:
            out.append((m, r, *challenge_from(r.security_blob)))
    return out


def version(ch: ntlm.Challenge) -> tuple[int, int, int, int]:
    assert ch.version is not None
    return ch.version.major, ch.version.minor, ch.version.build, ch.version.revision


def av_names(ch: ntlm.Challenge) -> dict[int, str]:
    return {k: ch.av_text(k) for k in ch.av_pairs if k in (1, 2, 3, 4, 5)}


# ---------------------------------------------------------------------------
# every reply of every capture parses (no ProtocolError on real traffic)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_every_real_reply_parses(name):
    parsed = 0
    for m in smb_messages(name, "server"):
        d = m.data
        if d.startswith(SMB1):
            msg = smb1.parse_message(d)
            parser = SMB1_PARSERS.get(msg.header.command)
            if parser:
                parser(d)
                parsed += 1
        elif d.startswith(SMB2):
            hdr = smb2.parse_header(d)
            if hdr.command == smb2.NEGOTIATE:
                r = smb2.parse_negotiate_response(d)
                if r.security_blob:
                    spnego.parse(r.security_blob)
                parsed += 1
            elif hdr.command == smb2.SESSION_SETUP:
                r = smb2.parse_session_setup_response(d)
                if r.security_blob:
                    token = spnego.parse(r.security_blob)
                    if r.status == status.MORE_PROCESSING_REQUIRED:
                        ntlm.parse_challenge(token.mech_token)
                parsed += 1
        else:
            # transform (0xFD) and compression (0xFC) headers are not SMB2 messages
            assert d[:4] in (smb2.TRANSFORM_MAGIC, smb2.COMPRESSION_MAGIC)
            with pytest.raises(ProtocolError):
                smb2.parse_header(d)
    if name not in (
        "zeek-smb2-compound.pcap",
        "claroty-smb311-legit-compressed-data.pcap",
    ):
        assert parsed > 0


# ---------------------------------------------------------------------------
# SMB2 NEGOTIATE
# ---------------------------------------------------------------------------


def test_claroty_win10_negotiate_311_with_lznt1():
    m, r = negotiate2("claroty-win10-negotiate-compression.pcap")
    assert m.frame == 2 and m.src == "43.206.49.143" and m.sport == 445
    assert r.status == 0
    assert r.dialect == 0x0311 and r.dialect_name == "3.1.1"
    assert r.security_mode == smb2.SIGNING_ENABLED  # signing not required
    assert r.capabilities == 0x2F
    assert r.capability_names == [
        "dfs",
        "leasing",
        "large_mtu",
        "multi_channel",
        "directory_leasing",
    ]
    assert r.server_guid.hex() == "39fb70732dac7746bbe3b0853c815664"
    assert (r.max_transact, r.max_read, r.max_write) == (8388608, 8388608, 8388608)
    assert filetime.to_iso(r.system_time) == "2020-03-11T13:08:02Z"
    assert r.start_time == 0
    c = r.contexts
    assert c.types == [smb2.CTX_PREAUTH, smb2.CTX_COMPRESSION]
    assert c.preauth_hashes == [smb2.HASH_SHA512]
    assert c.compression == [1]  # LZNT1 only
    assert smb2.COMPRESSION[c.compression[0]] == "LZNT1"
    assert c.compression_flags == 0
    assert c.ciphers == [] and c.signing == []
    token = spnego.parse(r.security_blob)
    assert len(r.security_blob) == 320
    assert token.mechs == [NEGOEX, NTLMSSP]


def test_claroty_win7_negotiate_21_without_contexts():
    m, r = negotiate2("claroty-win7-negotiate-smb21.pcap")
    assert m.frame == 2 and m.src == "43.206.47.186"
    assert r.dialect == 0x0210 and r.dialect_name == "2.1"
    assert r.security_mode == 1
    assert r.capabilities == 0x07
    assert (r.max_transact, r.max_read, r.max_write) == (1048576, 1048576, 1048576)
    assert (
        filetime.to_iso(r.start_time) == "2020-02-26T16:11:58Z"
    )  # Windows 7 reports its boot time
    # The NegotiateContextOffset slot holds junk (0x616c0001) in a 2.1 reply:
    # it must not be followed.
    assert struct.unpack_from("<I", m.data, 64 + 60)[0] == 0x616C0001
    assert r.contexts.types == [] and r.contexts.compression == []
    assert spnego.parse(r.security_blob).mechs == [NEGOEX, NTLMSSP]


def test_smbghost_scan_ws2019_negotiate_311_with_lznt1():
    m, r = negotiate2("zeek-smbghost-scan-ws2019.pcap")
    assert m.frame == 5 and m.src == "10.0.0.133"
    assert r.dialect == 0x0311
    assert r.security_mode == 1
    assert r.capabilities == 0x2F
    assert r.server_guid.hex() == "7cce6d370bb2d441b86cf7d2a894dae2"
    assert r.contexts.types == [1, 3]
    assert r.contexts.preauth_hashes == [1]
    assert r.contexts.compression == [1]
    assert filetime.to_iso(r.system_time) == "2020-03-11T15:19:18Z"


def test_smbghost_scan_request_offers_8_dialects_and_lznt1():
    m = only(client_requests("zeek-smbghost-scan-ws2019.pcap", SMB2, smb2.NEGOTIATE))
    fixed = smb2.NegotiateRequestFixed.unpack_from(m.data, smb2.Header.size)
    assert fixed.dialect_count == 8
    ctx = smb2.parse_contexts(m.data, fixed.context_offset, fixed.context_count)
    assert smb2.CTX_COMPRESSION in ctx.types
    assert ctx.compression[0] == 1


def test_smb3_negotiate_context_smb1_negotiate_answered_with_wildcard():
    name = "zeek-smb3-negotiate-context.pcap"
    msgs = smb_messages(name)
    assert [(m.frame, m.is_server_reply, m.data[:4]) for m in msgs] == [
        (8, False, SMB1),
        (10, True, SMB2),
        (12, False, SMB2),
        (13, True, SMB2),
    ]
    # frame 8: the SMB1 multi-protocol negotiate, offering SMB 2.002 and 2.???
    req = smb1.parse_message(msgs[0].data)
    assert req.header.command == smb1.NEGOTIATE
    dialects = [d.decode() for d in req.data.split(b"\x00") if d]
    assert [d.lstrip("\x02") for d in dialects][-2:] == ["SMB 2.002", "SMB 2.???"]
    # frame 10: answered in SMB2 with the wildcard dialect
    _, wild = negotiate2(name, 10)
    assert wild.dialect == smb2.WILDCARD_DIALECT == 0x02FF
    assert wild.dialect_name is None
    assert wild.contexts.types == []
    assert wild.server_guid == b"newstorage" + bytes(6)
    # frame 13: the SMB2 negotiate gets 3.1.1 with two contexts
    _, r = negotiate2(name, 13)
    assert r.dialect == 0x0311
    assert r.security_mode == 1
    assert r.capabilities == 0x05
    assert r.contexts.types == [smb2.CTX_PREAUTH, smb2.CTX_ENCRYPTION]
    assert r.contexts.preauth_hashes == [1]
    assert r.contexts.ciphers == [1]  # AES-128-CCM
    assert smb2.CIPHERS[r.contexts.ciphers[0]] == "AES-128-CCM"
    assert r.contexts.compression == []
    token = spnego.parse(r.security_blob)
    assert token.mechs == [NTLMSSP]
    assert token.hint_name == "not_defined_in_RFC4178@please_ignore"


def test_ws2016_negotiate_30_signing_required():
    m, r = negotiate2("zeek-smb3-ws2016.pcap")
    assert m.frame == 2
    assert r.dialect == 0x0300
    assert r.security_mode == smb2.SIGNING_ENABLED | smb2.SIGNING_REQUIRED
    assert r.capabilities == 0x47
    assert "encryption" in r.capability_names
    token = spnego.parse(r.security_blob)
    assert token.mechs == [
        NEGOEX,
        spnego.OID_MS_KRB5,
        spnego.OID_KRB5,
        "1.2.840.113554.1.2.2.3",
        NTLMSSP,
    ]
    assert token.hint_name == "not_defined_in_RFC4178@please_ignore"


def test_smb311_negotiate_with_preauth_and_ccm():
    _, r = negotiate2("zeek-smb311.pcap")
    assert r.dialect == 0x0311
    assert r.security_mode == 3
    assert r.capabilities == 0x27
    assert r.contexts.types == [1, 2]
    assert r.contexts.ciphers == [1]
    assert r.contexts.preauth_hashes == [1]


def test_arkime_windows10_negotiates():
    name = "arkime-smb-on-windows10.pcap"
    seen = [
        (m.frame, m.src, smb2.parse_negotiate_response(m.data))
        for m in server_replies(name, SMB2, smb2.NEGOTIATE)
    ]
    # the Windows 8.1 server (192.168.199.1): wildcard, then 3.0.2
    win81 = [(f, r.dialect) for f, src, r in seen if src == "192.168.199.1"]
    assert win81 == [(6, 0x02FF), (8, 0x0302)]
    # the Windows 10 1511 server: wildcard answers to SMB1 negotiates, 3.1.1 with AES-128-GCM
    win10 = [r for _, src, r in seen if src == "192.168.199.133"]
    assert [r.dialect for r in win10] == [
        0x02FF,
        0x0311,
        0x0311,
        0x0311,
        0x0311,
        0x02FF,
        0x0311,
        0x02FF,
        0x0311,
    ]
    for r in win10:
        if r.dialect == 0x0311:
            assert r.contexts.types == [1, 2]
            assert r.contexts.ciphers == [2]
            assert r.contexts.compression == []  # 1511 predates compression


def test_smbghost_dos_target_is_a_1903_with_compression():
    _, r = negotiate2("claroty-smbghost-dos.pcapng")
    assert r.dialect == 0x0311
    assert r.contexts.types == [1, 2, 3]
    assert r.contexts.ciphers == [2]
    assert r.contexts.compression == [1]
    ((_, _, _, ch),) = smb2_challenges("claroty-smbghost-dos.pcapng")
    assert version(ch) == (10, 0, 18362, 15)  # the affected build
    assert ch.target_name == "DESKTOP-MPE7KHF"


def test_smbghost_dos_compression_transform_offsets():
    reqs = client_requests("claroty-smbghost-dos.pcapng", smb2.COMPRESSION_MAGIC)
    assert reqs
    for m in reqs:
        h = smb2.CompressionTransformHeader.unpack_from(m.data)
        assert h.offset == 0xFFFFFFFF
    legit = server_replies(
        "claroty-smb311-legit-compressed-data.pcap", smb2.COMPRESSION_MAGIC
    )
    assert len(legit) == 3
    for m in legit:
        h = smb2.CompressionTransformHeader.unpack_from(m.data)
        assert h.offset < len(m.data)


# ---------------------------------------------------------------------------
# NTLM CHALLENGE in SMB2 SESSION_SETUP (status 0xC0000016)
# ---------------------------------------------------------------------------


def test_ws2016_challenge():
    ((m, r, token, ch),) = smb2_challenges("zeek-smb3-ws2016.pcap")
    assert m.frame == 4
    assert r.status == 0xC0000016
    assert r.session_id != 0
    # Windows Server 2016 answered with a raw NTLMSSP token, no SPNEGO wrapper
    assert r.security_blob.startswith(b"NTLMSSP\x00")
    assert token.neg_state is None
    assert version(ch) == (10, 0, 14393, 15)
    assert ch.target_name == "SUSE"
    assert ch.flags == 0xE2890235
    assert av_names(ch) == {
        1: "WS2016",
        2: "SUSE",
        3: "WS2016.suse.de",
        4: "suse.de",
        5: "suse.de",
    }
    assert ch.timestamp is not None and filetime.to_iso(ch.timestamp).startswith(
        "2017-05-17"
    )
    assert ch.server_challenge.hex() == "01151813d2898ccd"


def test_smb311_challenge():
    ((_m, r, _token, ch),) = smb2_challenges("zeek-smb311.pcap")
    assert r.security_blob.startswith(b"NTLMSSP\x00")
    # MANIFEST: a 10.0.14393 host (the brief's 10.0.10586 is the arkime Windows 10)
    assert version(ch) == (10, 0, 14393, 15)
    assert ch.target_name == "FOO"
    assert av_names(ch) == {
        1: "AD",
        2: "FOO",
        3: "AD.foo.test",
        4: "foo.test",
        5: "foo.test",
    }


def test_arkime_windows10_smb2_challenges():
    found = smb2_challenges("arkime-smb-on-windows10.pcap")
    assert [m.frame for m, *_ in found] == [44, 54, 64, 74, 86, 98]
    for m, r, token, ch in found:
        assert m.src == "192.168.199.133"
        assert token.neg_state == 1  # accept-incomplete
        assert token.supported_mech == NTLMSSP
        assert version(ch) == (10, 0, 10586, 15)
        assert ch.target_name == "DESKTOP-V1FA0UQ"
        # a workgroup host: its computer name in every name pair
        assert av_names(ch) == {
            1: "DESKTOP-V1FA0UQ",
            2: "DESKTOP-V1FA0UQ",
            3: "DESKTOP-V1FA0UQ",
            4: "DESKTOP-V1FA0UQ",
        }
        assert ch.timestamp is not None
        assert ch.flags == 0xE28A8215


def test_arkime_windows81_challenge_is_in_smb1_session_setup():
    # The 6.3.9600 host is only reached over SMB1: its CHALLENGE rides in an
    # SMB1 SESSION_SETUP_ANDX reply (frame 19), not in SMB2.
    replies = server_replies(
        "arkime-smb-on-windows10.pcap", SMB1, smb1.SESSION_SETUP_ANDX
    )
    r = smb1.parse_session_setup_response(by_frame(replies, 19).data)
    assert r.status == 0xC0000016
    assert r.native_os == "Windows 8.1 9600"
    assert r.native_lm == "Windows 8.1 6.3"
    assert r.uid == 2048
    token, ch = challenge_from(r.security_blob)
    assert token.neg_state == 1 and token.supported_mech == NTLMSSP
    assert version(ch) == (6, 3, 9600, 15)
    assert ch.target_name == "SCV"
    assert av_names(ch) == {1: "SCV", 2: "SCV", 3: "SCV", 4: "SCV"}
    assert ch.server_challenge.hex() == "88bc9b5834be370d"
    final = smb1.parse_session_setup_response(by_frame(replies, 21).data)
    assert final.status == 0
    assert spnego.parse(final.security_blob).neg_state == 0  # accept-completed


def test_doublepulsar_trace_windows10_challenge():
    found = smb2_challenges("doublepulsar-backdoor-connect-win7.pcap")
    assert [m.frame for m, *_ in found] == [28, 61]
    for _, _, _, ch in found:
        assert version(ch) == (10, 0, 10586, 15)
        assert ch.target_name == "DESKTOP-AFPVEQ2"


def test_smb2_session_setup_failures_keep_status():
    replies = server_replies("arkime-smb-on-windows10.pcap", SMB2, smb2.SESSION_SETUP)
    results = [smb2.parse_session_setup_response(m.data) for m in replies]
    statuses = sorted(hex(r.status) for r in results)
    assert statuses.count("0xc000006d") == 5  # STATUS_LOGON_FAILURE
    for r in results:
        if r.status == status.LOGON_FAILURE:
            assert r.security_blob == b"" and r.session_flags == 0
    ok = [r for r in results if r.status == 0]
    assert len(ok) == 1 and spnego.parse(ok[0].security_blob).neg_state == 0


# ---------------------------------------------------------------------------
# SMB1 NEGOTIATE / SESSION_SETUP / TREE_CONNECT
# ---------------------------------------------------------------------------


def test_samba363_smb1_session():
    name = "arkime-smbclient-samba363.pcap"
    neg = smb1.parse_negotiate_response(
        only(server_replies(name, SMB1, smb1.NEGOTIATE)).data
    )
    assert neg.dialect_index == 8  # "NT LANMAN 1.0" in smbclient's list
    assert neg.security_mode == 0x02  # share-level, encrypted passwords
    assert not neg.extended_security
    assert neg.challenge.hex() == "e0370c34b7663b6d"
    assert neg.domain == "WORKGROUP"  # no alignment pad before the Unicode name
    assert neg.server_name is None
    ss = smb1.parse_session_setup_response(
        only(server_replies(name, SMB1, smb1.SESSION_SETUP_ANDX)).data
    )
    assert ss.status == 0
    assert ss.native_os == "Unix"
    assert ss.native_lm == "Samba 3.6.3"
    assert ss.primary_domain == "WORKGROUP"
    assert ss.guest
    tc = smb1_tree.parse_tree_connect_response(
        only(server_replies(name, SMB1, smb1.TREE_CONNECT_ANDX)).data
    )
    assert tc.status == 0 and tc.service == "A:"
    trans2 = [
        smb1.parse_transaction_response(m.data)
        for m in server_replies(name, SMB1, smb1.TRANSACTION2)
    ]
    assert [(t.status, t.mid) for t in trans2] == [(0, 5), (0, 7)]


def test_samba474_smb1_negotiate_unicode_names_without_flags2_unicode():
    # Samba 4.7.4 replies with FLAGS2_UNICODE clear but CAP_UNICODE set, and
    # its DomainName/ServerName are UTF-16 anyway (Wireshark: "TEST", "JESSIE").
    captures = {
        "zeek-smb1-transaction-request.pcap": ("436d271584aa1a25", 11132),
        "zeek-smb1-transaction2-request.pcap": ("16760232e0c819ad", 2017),
    }
    for name, (challenge, uid) in captures.items():
        m = only(server_replies(name, SMB1, smb1.NEGOTIATE))
        neg = smb1.parse_negotiate_response(m.data)
        assert not smb1.parse_message(m.data).unicode
        assert neg.capabilities & smb1.CAP_UNICODE
        assert neg.dialect_index == 0
        assert neg.challenge.hex() == challenge
        assert (neg.domain, neg.server_name) == ("TEST", "JESSIE")
        ss = smb1.parse_session_setup_response(
            only(server_replies(name, SMB1, smb1.SESSION_SETUP_ANDX)).data
        )
        assert (ss.native_os, ss.native_lm, ss.primary_domain) == (
            "Windows 6.1",
            "Samba 4.7.4",
            "TEST",
        )
        assert ss.guest and ss.uid == uid
        tc = smb1_tree.parse_tree_connect_response(
            only(server_replies(name, SMB1, smb1.TREE_CONNECT_ANDX)).data
        )
        assert tc.service == "IPC"


def test_lanman_negotiate_wordcount_13():
    neg = smb1.parse_negotiate_response(
        only(
            server_replies("zeek-cifs-negotiate-lanman.pcap", SMB1, smb1.NEGOTIATE)
        ).data
    )
    assert neg.dialect_index == 3
    assert neg.security_mode is None and neg.capabilities is None


def test_windows7_smb1_negotiate_non_extended_names():
    replies = server_replies(
        "doublepulsar-backdoor-connect-win7.pcap", SMB1, smb1.NEGOTIATE
    )
    neg = smb1.parse_negotiate_response(by_frame(replies, 81).data)
    assert neg.dialect_index == 5
    assert neg.security_mode == 0x03
    assert neg.capabilities == 0x0001E3FC
    assert neg.challenge.hex() == "7b86e03c834c4ec0"
    assert (neg.domain, neg.server_name) == ("WORKGROUP", "IE11WIN7")
    ext = smb1.parse_negotiate_response(by_frame(replies, 42).data)
    assert ext.extended_security
    assert ext.server_guid.hex() == "d5d23060934dc8448488b0a3623b0892"
    assert spnego.parse(ext.security_blob).mechs == [NEGOEX, NTLMSSP]


def test_eternalromance_2008r2_smb1():
    name = "eternalromance-success-2008r2.pcap"
    neg = smb1.parse_negotiate_response(
        only(server_replies(name, SMB1, smb1.NEGOTIATE)).data
    )
    assert neg.security_mode == 0x0F  # signing enabled and required (a DC)
    assert (neg.domain, neg.server_name) == ("NIGHTFORT", "MORMONT")
    ss = smb1.parse_session_setup_response(
        only(server_replies(name, SMB1, smb1.SESSION_SETUP_ANDX)).data
    )
    assert ss.native_os == "Windows Server 2008 R2 Datacenter 7601 Service Pack 1"
    assert ss.native_lm == "Windows Server 2008 R2 Datacenter 6.1"
    assert ss.primary_domain == "NIGHTFORT"


def test_eternalblue_session_setup_native_os():
    replies = server_replies(
        "eternalblue-success-unpatched-win7.pcap", SMB1, smb1.SESSION_SETUP_ANDX
    )
    assert [m.frame for m in replies] == [9, 55, 114, 267, 313, 392]
    for m in replies:
        ss = smb1.parse_session_setup_response(m.data)
        assert ss.status == 0
        assert ss.native_os == "Windows 7 Enterprise 7601 Service Pack 1"
        assert ss.native_lm == "Windows 7 Enterprise 6.1"
        assert ss.primary_domain == "WORKGROUP"
        assert ss.uid == 2048
    negs = server_replies(
        "eternalblue-success-unpatched-win7.pcap", SMB1, smb1.NEGOTIATE
    )
    names = {
        (r.domain, r.server_name)
        for r in map(smb1.parse_negotiate_response, (m.data for m in negs))
        if r.domain
    }
    assert names == {("WORKGROUP", "IE11WIN7")}


# ---------------------------------------------------------------------------
# TRANSACTION / TRANSACTION2: MS17-010 and DoublePulsar evidence
# ---------------------------------------------------------------------------


def test_doublepulsar_ping_answer_mid_81():
    name = "doublepulsar-backdoor-connect-win7.pcap"
    req = only(client_requests(name, SMB1, smb1.TRANSACTION2))
    assert req.frame == 86
    reqmsg = smb1.parse_message(req.data)
    assert reqmsg.header.mid == 65
    setup = struct.unpack_from("<H", reqmsg.words, 28)[0]
    timeout = struct.unpack_from("<I", reqmsg.words, 12)[0]
    assert setup == 0x000E  # TRANS2 SESSION_SETUP
    rep = only(server_replies(name, SMB1, smb1.TRANSACTION2))
    assert rep.frame == 87
    assert (rep.src, rep.sport) == ("192.168.198.203", 445)
    r = smb1.parse_transaction_response(rep.data)
    assert r.status == status.NOT_IMPLEMENTED == 0xC0000002
    assert r.mid == 81 == reqmsg.header.mid + 16
    assert r.setup == () and r.params == b"" and r.data == b""
    sig = r.header.signature
    assert sig[:4].hex() == "794b5da4"  # the implant's key material
    assert sig[4:8] == bytes(4)  # architecture: x86
    assert timeout != 0


def test_eternalblue_trans2_mid_change_after_exploit():
    name = "eternalblue-success-unpatched-win7.pcap"
    reqs = {
        m.frame: smb1.parse_message(m.data).header.mid
        for m in client_requests(name, SMB1, smb1.TRANSACTION2)
    }
    assert reqs == {12: 65, 257: 66, 270: 65, 565: 66}
    reps = [
        (m.frame, smb1.parse_transaction_response(m.data))
        for m in server_replies(name, SMB1, smb1.TRANSACTION2)
    ]
    assert [(f, r.status, r.mid) for f, r in reps] == [
        (13, 0xC0000002, 65),
        (165, 0xC000000D, 65),  # the exploit's malformed Trans2
        (258, 0xC0000002, 66),
        (271, 0xC0000002, 65),
        (448, 0xC000000D, 65),
        (566, 0xC0000002, 82),  # implant present: request MID 66 + 16
    ]
    # The MANIFEST speaks of "one MID 81 reply": the capture really holds
    # MID 82, the answer to the second knock (MID 66).  Only the change of
    # MID (+16) is the implant sign.
    implanted = dict(reps)[566]
    assert implanted.mid - reqs[565] == 16
    assert implanted.header.signature[:4] != bytes(4)
    for f, r in reps:
        if f != 566:
            assert r.header.signature == bytes(8)


def test_wannacry_peeknamedpipe_vulnerable_replies():
    name = "wannacry.pcap"
    reqs = client_requests(name, SMB1, smb1.TRANSACTION)
    assert len(reqs) == 6
    for m in reqs:
        msg = smb1.parse_message(m.data)
        # The worm's MS17-010 probe is byte-for-byte what our builder sends.
        ours = smb1.parse_message(
            smb1.transaction_request(
                smb1.TRANSACTION,
                mid=msg.header.mid,
                uid=msg.header.uid,
                tid=msg.header.tid,
                setup=(0x23, 0),
            )
        )
        assert msg.words == ours.words
        assert msg.data == ours.data == b"\\PIPE\\\x00"
    reps = server_replies(name, SMB1, smb1.TRANSACTION)
    got = [
        (m.frame, m.src, m.dst, smb1.parse_transaction_response(m.data).status)
        for m in reps
    ]
    assert got == [
        (207, "192.168.116.138", "192.168.116.149", 0xC0000205),
        (215, "192.168.116.143", "192.168.116.149", 0xC0000205),
        (249, "192.168.116.172", "192.168.116.149", 0xC0000205),
        (2124, "192.168.116.143", "192.168.116.138", status.SMB_BAD_UID),
        (2132, "192.168.116.149", "192.168.116.138", 0xC0000205),
        (2182, "192.168.116.172", "192.168.116.138", 0xC0000205),
    ]
    assert status.describe(got[0][3]) == "0xC0000205 (STATUS_INSUFF_SERVER_RESOURCES)"
    for m in reps:
        assert smb1.parse_transaction_response(m.data).mid == 24261


def test_wannacry_doublepulsar_trans2_replies():
    reps = [
        smb1.parse_transaction_response(m.data)
        for m in server_replies("wannacry.pcap", SMB1, smb1.TRANSACTION2)
    ]
    assert len(reps) > 3800  # MANIFEST: about 3,880 DoublePulsar upload replies
    assert {r.status for r in reps} == {0xC0000002, 0xC000000D, 0x00010002}
    mids = {}
    for r in reps:
        mids[r.mid] = mids.get(r.mid, 0) + 1
    assert set(mids) == {64, 65, 66, 81, 82}
    assert mids[81] == 9  # ping answers
    assert mids[82] > 3800  # upload answers (request MID 66 + 16)


def test_eternalromance_transactions_parse():
    reps = [
        smb1.parse_transaction_response(m.data)
        for m in server_replies(
            "eternalromance-success-2008r2.pcap", SMB1, smb1.TRANSACTION
        )
    ]
    assert len(reps) == 75
    assert {r.status for r in reps} == {
        0,
        0x80000005,
    }  # STATUS_BUFFER_OVERFLOW on the named-pipe reads
    t2 = only(
        server_replies("eternalromance-success-2008r2.pcap", SMB1, smb1.TRANSACTION2)
    )
    r = smb1.parse_transaction_response(t2.data)
    assert r.status == 0 and r.mid == 129 and r.setup == (66, 0)
