"""Named pipes, DCE/RPC and SRVSVC share listing: both sides of every message.

* unit: client builder -> server parser and server builder -> client parser
  round trips; hand-checked DCE/RPC and NDR bytes; real Windows bytes from
  the capture corpus (skipped when ../shared/corpus is absent);
* fuzz (hypothesis): every parser on random and mutated bytes raises
  ProtocolError or nothing;
* driver: scan/shares.py against an in-process server built from the
  server-side builders (fragmented replies, STATUS_BUFFER_OVERFLOW, split
  SMB1 transactions, refusals, hostile replies);
* samba: the same driver against real smbd, compared with smbclient -L.
"""

from __future__ import annotations

import asyncio
import re
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smbsentry.protocol import dcerpc, netbios, smb1, smb1_find, smb1_pipe, smb1_trans, smb1_tree, smb2, smb2_pipe, srvsvc, status
from smbsentry.protocol.errors import ProtocolError
from smbsentry.scan import shares
from smbsentry.scan.connection import Connection, ScanError
from smbsentry.scan.session import Smb1Client, Smb2Client

TIMEOUT = 5.0
FAKE_ADDRESS = "127.24.0.1"

SHARES = [
    ("ADMIN$", srvsvc.STYPE_DISKTREE | srvsvc.STYPE_SPECIAL, "Remote Admin"),
    ("C$", srvsvc.STYPE_DISKTREE | srvsvc.STYPE_SPECIAL, "Default share"),
    ("IPC$", srvsvc.STYPE_IPC | srvsvc.STYPE_SPECIAL, "Remote IPC"),
    ("public", srvsvc.STYPE_DISKTREE, "guest share"),
    ("Drucker", srvsvc.STYPE_PRINTQ, "Büro – 2. Stock"),
]


def run(coro):
    return asyncio.run(coro)


# =============================================================================
# DCE/RPC
# =============================================================================

# BIND to SRVSVC 3.0 with NDR 2.0, call 1, 4280-byte fragments: the bytes
# every Windows client and impacket send (checked field by field against
# C706 12.6.4.3 and MS-RPCE 2.2.2.1).
BIND_SRVSVC = bytes.fromhex(
    "05 00 0b 03 10000000 4800 0000 01000000"  # v5.0 BIND, first|last, LE, len 72, call 1
    "b810 b810 00000000"  # max xmit/recv 4280, assoc group 0
    "01 00 0000"  # one context
    "0000 01 00"  # context 0, one transfer syntax
    "c84f324b7016d30112785a47bf6ee188 0300 0000"  # SRVSVC 3.0
    "045d888aeb1cc9119fe808002b104860 02000000"  # NDR 2.0
)


def test_bind_bytes_are_the_well_known_ones():
    assert dcerpc.bind(1, srvsvc.SRVSVC_SYNTAX) == BIND_SRVSVC


def test_bind_round_trip():
    b = dcerpc.parse_bind(dcerpc.bind(7, srvsvc.SRVSVC_SYNTAX, context_id=3, max_xmit_frag=5840))
    assert b.call_id == 7 and b.max_xmit_frag == 5840 and not b.alter
    assert len(b.contexts) == 1
    ctx = b.contexts[0]
    assert ctx.context_id == 3
    assert ctx.abstract_syntax == srvsvc.SRVSVC_SYNTAX
    assert ctx.transfer_syntaxes == [dcerpc.NDR_SYNTAX]


def test_bind_ack_round_trip_and_alignment():
    for sec in ("", "\\PIPE\\srvsvc", "\\pipe\\lsass", "x"):
        raw = dcerpc.bind_ack(1, secondary_address=sec, assoc_group_id=0x1234)
        ack = dcerpc.parse_bind_ack(raw)
        assert ack.accepted and ack.describe() == "accepted"
        assert ack.secondary_address == sec and ack.assoc_group_id == 0x1234
        assert ack.results[0].transfer_syntax == dcerpc.NDR_SYNTAX
        assert len(raw) % 4 == 0


def test_bind_rejections_are_described():
    rejected = dcerpc.parse_bind_ack(dcerpc.bind_ack(
        1, [(dcerpc.PROVIDER_REJECTION, dcerpc.REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED, (uuid.UUID(int=0), 0, 0))]))
    assert not rejected.accepted
    assert rejected.describe() == "provider rejection: abstract syntax not supported"
    nak = dcerpc.parse_bind_ack(dcerpc.bind_nak(1, 4))
    assert not nak.accepted and nak.nak_reason == 4
    assert nak.describe() == "BIND_NAK (protocol version not supported)"


def test_request_round_trip_single_and_fragmented():
    stub = bytes(range(256)) * 40
    req = dcerpc.parse_request(dcerpc.request(5, 15, stub, context_id=1))
    assert (req.call_id, req.context_id, req.opnum, req.stub) == (5, 1, 15, stub)
    frags = dcerpc.request_fragments(5, 15, stub, max_frag=1000)
    assert len(frags) > 10 and all(len(f) <= 1000 for f in frags)
    req = dcerpc.parse_request(b"".join(frags))
    assert req.stub == stub and req.opnum == 15


def test_response_reassembly_across_fragments_and_pieces():
    stub = bytes(range(256)) * 50
    frags = dcerpc.response_fragments(9, stub, max_frag=512)
    assert len(frags) > 20
    assert frags[0][3] & dcerpc.PFC_FIRST_FRAG and not frags[0][3] & dcerpc.PFC_LAST_FRAG
    assert frags[-1][3] & dcerpc.PFC_LAST_FRAG
    assert dcerpc.parse_response(b"".join(frags)).stub == stub
    # the same bytes fed in odd-sized pieces, as pipe reads deliver them
    r = dcerpc.Reassembler(dcerpc.RESPONSE, call_id=9)
    data = b"".join(frags)
    for i in range(0, len(data), 333):
        done = r.feed(data[i : i + 333])
        assert done == (i + 333 >= len(data))
    assert r.result.stub == stub and r.result.fragments == len(frags)


def test_fault_is_a_response_result():
    resp = dcerpc.parse_response(dcerpc.fault(4, dcerpc.NCA_S_OP_RNG_ERROR))
    assert resp.fault == dcerpc.NCA_S_OP_RNG_ERROR and not resp.ok
    assert dcerpc.parse_fault(dcerpc.fault(4, 5)) == 5
    assert dcerpc.describe_fault(5) == "0x00000005 (access denied)"


@pytest.mark.parametrize(
    "data, message",
    [
        (dcerpc.response_fragments(1, b"x" * 100, max_frag=64)[1], "PFC_FIRST_FRAG"),
        (dcerpc.response(1, b"abc") + dcerpc.response(1, b"def"), "after the response"),
        (dcerpc.response_fragments(1, b"x" * 100, max_frag=64)[0], "before its last fragment"),
        (dcerpc.response(2, b"abc"), "call 2 inside call 1"),
        (dcerpc.bind_ack(1), "expected RESPONSE"),
        (b"\x05\x00\x02\x03\x00\x00\x00\x00" + b"\x20\x00\x00\x00" + b"\x01\x00\x00\x00" + b"\x00" * 16, "big-endian"),
        (b"\x04\x00\x02\x03\x10\x00\x00\x00\x20\x00\x00\x00\x01\x00\x00\x00" + b"\x00" * 16, "version"),
        (b"\x05\x00\x02\x03\x10\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00", "shorter than the header"),
    ],
)
def test_response_parser_refuses(data, message):
    with pytest.raises(ProtocolError, match=message):
        dcerpc.parse_response(data, call_id=1)


def test_reassembly_cap():
    frags = dcerpc.response_fragments(1, b"x" * 5000, max_frag=1024)
    with pytest.raises(ProtocolError, match="cap"):
        dcerpc.parse_response(b"".join(frags), max_stub=4096)


def test_auth_trailer_is_stripped():
    body = dcerpc.ResponseFixed(alloc_hint=4).pack() + b"STUB" + b"\x00" * 8 + b"AUTH"
    hdr = dcerpc.CommonHeader(ptype=dcerpc.RESPONSE, frag_length=16 + len(body), auth_length=4, call_id=1)
    assert dcerpc.parse_response(hdr.pack() + body).stub == b"STUB"


# =============================================================================
# SRVSVC NetrShareEnum, NDR
# =============================================================================

# NetrShareEnum request for server "\\A", level 1, hand-encoded (MS-SRVS
# 3.1.4.8, NDR 2.0; referent ids 0x00020000 + 4n as Windows numbers them).
REQUEST_STUB = bytes.fromhex(
    "00000200"  # ServerName: unique pointer
    "04000000 00000000 04000000"  # conformant varying string: max 4, offset 0, actual 4
    "5c005c00 41000000"  # "\\A\0"
    "01000000 01000000"  # InfoStruct.Level 1, union discriminant 1
    "04000200"  # -> SHARE_INFO_1_CONTAINER
    "00000000 00000000"  # EntriesRead 0, Buffer NULL
    "ffffffff"  # PreferedMaximumLength
    "08000200 00000000"  # ResumeHandle -> 0
)

# The response with one share, IPC$ (STYPE_IPC | STYPE_SPECIAL) "IPC".
RESPONSE_STUB = bytes.fromhex(
    "01000000 01000000"  # level 1, union discriminant 1
    "00000200"  # -> container
    "01000000"  # EntriesRead 1
    "04000200"  # -> array
    "01000000"  # conformance: 1 element
    "08000200 03000080 0c000200"  # shi1_netname ->, shi1_type, shi1_remark ->
    "05000000 00000000 05000000 49005000 43002400 0000 0000"  # "IPC$\0" + 2 pad
    "04000000 00000000 04000000 49005000 43000000"  # "IPC\0"
    "01000000"  # TotalEntries
    "10000200 00000000"  # ResumeHandle -> 0
    "00000000"  # WERROR_OK
)


def test_request_stub_hand_checked():
    assert srvsvc.share_enum_request("A") == REQUEST_STUB
    assert srvsvc.share_enum_request("\\\\A") == REQUEST_STUB
    req = srvsvc.parse_share_enum_request(REQUEST_STUB)
    assert req == srvsvc.ShareEnumRequest("\\\\A", 1, 0, 0xFFFFFFFF, 0)


def test_response_stub_hand_checked():
    assert srvsvc.share_enum_response([("IPC$", 0x80000003, "IPC")]) == RESPONSE_STUB
    resp = srvsvc.parse_share_enum_response(RESPONSE_STUB)
    assert resp.ok and resp.total_entries == 1 and resp.resume_handle == 0
    (share,) = resp.shares
    assert share == srvsvc.Share("IPC$", 0x80000003, "IPC")
    assert share.kind == "ipc" and share.special


def test_share_enum_round_trip():
    resp = srvsvc.parse_share_enum_response(srvsvc.share_enum_response(SHARES, total_entries=9, resume_handle=3))
    assert [(s.name, s.type, s.remark) for s in resp.shares] == SHARES
    assert resp.total_entries == 9 and resp.resume_handle == 3
    assert [s.kind for s in resp.shares] == ["disk", "disk", "ipc", "disk", "printq"]
    empty = srvsvc.parse_share_enum_response(srvsvc.share_enum_response([]))
    assert empty.ok and empty.shares == []
    level0 = srvsvc.parse_share_enum_response(srvsvc.share_enum_response(SHARES, level=0))
    assert [s.name for s in level0.shares] == [s[0] for s in SHARES] and level0.level == 0
    assert srvsvc.parse_share_enum_request(srvsvc.share_enum_request(None, resume_handle=None)) == \
        srvsvc.ShareEnumRequest(None, 1, 0, 0xFFFFFFFF, None)


def test_share_get_info_request_and_responses():
    req = srvsvc.parse_share_get_info_request(GET_INFO_STUB)
    assert (req.server_name, req.net_name, req.level) == (None, "C$", 1)
    answer = srvsvc.share_get_info_response(srvsvc.Share("C$", srvsvc.STYPE_SPECIAL, "Default share"), 1)
    assert answer.endswith(struct.pack("<I", srvsvc.WERR_OK)) and "Default share".encode("utf-16-le") in answer
    refused = srvsvc.share_get_info_response(None, 2, srvsvc.WERR_ACCESS_DENIED)
    assert refused == struct.pack("<III", 2, 0, srvsvc.WERR_ACCESS_DENIED)


def test_share_enum_error_response():
    raw = srvsvc.share_enum_response(werror=srvsvc.WERR_ACCESS_DENIED)
    assert raw[-4:] == b"\x05\x00\x00\x00"
    resp = srvsvc.parse_share_enum_response(raw)
    assert resp.werror == 5 and not resp.ok and resp.shares == []
    assert srvsvc.describe_werror(5) == "5 (ACCESS_DENIED)"
    # whatever precedes a refusal, the last four bytes are the answer
    assert srvsvc.parse_share_enum_response(b"\xde\xad" * 7 + b"\x7c\x00\x00\x00").werror == 124


@pytest.mark.parametrize(
    "stub, message",
    [
        (RESPONSE_STUB.replace(bytes.fromhex("01000000 04000200 01000000"),
                               bytes.fromhex("01000000 04000200 02000000")), "array of 2"),
        (RESPONSE_STUB[:-12] + RESPONSE_STUB[-4:], "run past|unexpected"),
        (bytes.fromhex("02000000 02000000") + RESPONSE_STUB[8:], "level 2"),
        (RESPONSE_STUB.replace(bytes.fromhex("05000000 00000000 05000000"),
                               bytes.fromhex("05000000 00000000 ffff0000")), "cap"),
        (RESPONSE_STUB.replace(bytes.fromhex("05000000 00000000 05000000"),
                               bytes.fromhex("05000000 03000000 05000000")), "exceeds max count"),
        (RESPONSE_STUB[:12] + struct.pack("<I", srvsvc.MAX_SHARES + 1) + RESPONSE_STUB[16:], "exceeds the cap"),
        (b"\x00\x00", "no return code"),
    ],
)
def test_share_enum_response_refuses(stub, message):
    with pytest.raises(ProtocolError, match=message):
        srvsvc.parse_share_enum_response(stub)


def test_share_cap_on_both_sides():
    with pytest.raises(ProtocolError):
        srvsvc.share_enum_response([("s", 0, "")] * (srvsvc.MAX_SHARES + 1))
    many = bytes.fromhex("01000000 01000000 00000200") + struct.pack("<II", srvsvc.MAX_SHARES + 1, 0x20004)
    with pytest.raises(ProtocolError, match="cap"):
        srvsvc.parse_share_enum_response(many + b"\x00" * 64 + b"\x00\x00\x00\x00")


# =============================================================================
# SMB1 pipe messages
# =============================================================================


def _smb1_req_header(msg: bytes) -> smb1.Header:
    return smb1_pipe.parse_request_header(msg)


def test_smb1_tree_connect_both_sides():
    req_raw = smb1_tree.tree_connect_request("\\\\127.0.0.1\\IPC$", mid=3, uid=100)
    req = smb1_tree.parse_tree_connect_request(req_raw)
    assert req.path == "\\\\127.0.0.1\\IPC$" and req.flags & smb1_tree.TREE_CONNECT_EXTENDED_RESPONSE
    assert req.service == "?????"
    ext = smb1_tree.parse_tree_connect_response(
        smb1_tree.tree_connect_response(req.header, tid=9, service="IPC", maximal_access=0x1FF,
                                        guest_maximal_access=0x1FF))
    assert (ext.status, ext.tid, ext.service, ext.maximal_access, ext.guest_maximal_access) == \
        (0, 9, "IPC", 0x1FF, 0x1FF)
    old = smb1_tree.parse_tree_connect_response(
        smb1_tree.tree_connect_response(req.header, tid=9, service="A:", native_fs="NTFS"))
    assert old.maximal_access is None and old.service == "A:" and old.native_fs == "NTFS"
    denied = smb1_tree.parse_tree_connect_response(
        smb1_tree.tree_connect_response(req.header, 0, status=status.ACCESS_DENIED))
    assert denied.status == status.ACCESS_DENIED and denied.maximal_access is None
    # the existing smb1 parser reads the same reply
    assert smb1_tree.parse_tree_connect_response(smb1_tree.tree_connect_response(req.header, 9)).tid == 9


def test_smb1_nt_create_both_sides():
    raw = smb1_pipe.nt_create_request("\\srvsvc", mid=4, uid=100, tid=9)
    req = smb1_pipe.parse_nt_create_request(raw)
    assert req.name == "\\srvsvc" and req.disposition == smb1_pipe.FILE_OPEN
    assert req.desired_access == smb1_pipe.PIPE_ACCESS and req.header.tid == 9
    ascii_req = smb1_pipe.parse_nt_create_request(
        smb1_pipe.nt_create_request("\\srvsvc", 4, 100, 9, flags2=smb1.DEFAULT_FLAGS2 & ~smb1.FLAGS2_UNICODE))
    assert ascii_req.name == "\\srvsvc"
    reply = smb1_pipe.parse_nt_create_response(smb1_pipe.nt_create_response(req.header, fid=0x4000))
    assert reply.status == 0 and reply.fid == 0x4000
    assert reply.resource_type == smb1_pipe.FILE_TYPE_MESSAGE_MODE_PIPE
    hdr = smb1.Header.unpack_from(smb1_pipe.nt_create_response(req.header, fid=1))
    assert (hdr.mid, hdr.uid, hdr.tid) == (4, 100, 9) and hdr.flags & smb1.FLAGS_REPLY
    missing = smb1_pipe.parse_nt_create_response(smb1_pipe.nt_create_response(req.header, 0, status=0xC0000034))
    assert missing.status == 0xC0000034 and missing.fid is None


def test_smb1_transact_nmpipe_both_sides():
    pdu = dcerpc.bind(1, srvsvc.SRVSVC_SYNTAX)
    req = smb1_trans.parse_transaction_request(smb1_pipe.transact_nmpipe_request(0x4000, pdu, 5, 100, 9))
    assert req.subcommand == smb1_pipe.TRANS_TRANSACT_NMPIPE and req.fid == 0x4000
    assert req.name == "\\PIPE\\" and req.data == pdu and req.max_data == 4280
    ack = dcerpc.bind_ack(1)
    part = smb1_trans.parse_transaction_response_part(smb1_trans.transaction_response(req.header, ack))
    assert part.status == 0 and part.data == ack and part.total_data == len(ack)
    # the MS17-010 parser reads our replies too
    assert smb1.parse_transaction_response(smb1_trans.transaction_response(req.header, ack)).data == ack
    over = smb1_trans.parse_transaction_response_part(
        smb1_trans.transaction_response(req.header, ack[:10], status=smb1_pipe.STATUS_BUFFER_OVERFLOW))
    assert over.status == smb1_pipe.STATUS_BUFFER_OVERFLOW and over.data == ack[:10]
    second = smb1_trans.parse_transaction_response_part(
        smb1_trans.transaction_response(req.header, ack[10:], total_data=len(ack), data_displacement=10))
    assert second.data_displacement == 10 and second.total_data == len(ack)
    err = smb1_trans.parse_transaction_response_part(
        smb1_trans.transaction_response(req.header, status=status.INVALID_HANDLE))
    assert err.status == status.INVALID_HANDLE and err.data == b""
    with pytest.raises(ProtocolError, match="outside"):
        smb1_trans.parse_transaction_response_part(
            smb1_trans.transaction_response(req.header, ack, total_data=4))


def test_smb1_peek_nmpipe_probe_parses_server_side():
    """The MS17-010 probe from smb1.py, as the lab will read it."""
    probe = smb1.transaction_request(smb1.TRANSACTION, 7, 100, 9, setup=(0x23, 0))
    req = smb1_trans.parse_transaction_request(probe)
    assert req.subcommand == smb1_pipe.TRANS_PEEK_NMPIPE and req.fid == 0 and req.name == "\\PIPE\\"
    assert req.max_params == 0xFFFF and req.max_data == 0xFFFF


def test_smb1_read_close_disconnect_both_sides():
    rreq = smb1_pipe.parse_read_andx_request(smb1_pipe.read_andx_request(0x4000, 6, 100, 9, max_count=1024))
    assert (rreq.fid, rreq.max_count, rreq.offset) == (0x4000, 1024, 0)
    rresp = smb1_pipe.parse_read_andx_response(smb1_pipe.read_andx_response(rreq.header, b"abcdef"))
    assert rresp.status == 0 and rresp.data == b"abcdef"
    more = smb1_pipe.parse_read_andx_response(
        smb1_pipe.read_andx_response(rreq.header, b"abc", status=smb1_pipe.STATUS_BUFFER_OVERFLOW))
    assert more.status == smb1_pipe.STATUS_BUFFER_OVERFLOW and more.data == b"abc"
    creq = smb1_pipe.parse_close_request(smb1_pipe.close_request(0x4000, 7, 100, 9))
    assert creq.fid == 0x4000
    assert smb1_pipe.parse_close_response(smb1_pipe.close_response(creq.header)).status == 0
    dreq = _smb1_req_header(smb1_pipe.tree_disconnect_request(8, 100, 9))
    assert dreq.command == smb1_pipe.TREE_DISCONNECT and dreq.tid == 9
    resp = smb1_pipe.parse_tree_disconnect_response(smb1_pipe.tree_disconnect_response(dreq))
    assert resp.status == 0 and resp.header.mid == 8
    with pytest.raises(ProtocolError, match="expected"):
        smb1_pipe.parse_close_response(smb1_pipe.tree_disconnect_response(dreq))


def test_smb1_write_andx_both_sides():
    """WRITE_ANDX (WordCount 14) as impacket and nmap's msrpc.lua write a PDU
    into a pipe: the data on an even offset, the count in the reply."""
    pdu = dcerpc.bind(1, srvsvc.SRVSVC_SYNTAX)
    wreq = smb1_pipe.parse_write_andx_request(smb1_pipe.write_andx_request(0x4000, pdu, 6, 100, 9))
    assert (wreq.fid, wreq.data, wreq.write_mode) == (0x4000, pdu, smb1_pipe.WRITE_MODE_MESSAGE_START)
    wresp = smb1_pipe.parse_write_andx_response(smb1_pipe.write_andx_response(wreq.header, len(pdu)))
    assert (wresp.status, wresp.count) == (0, len(pdu))
    denied = smb1_pipe.parse_write_andx_response(smb1_pipe.write_andx_response(wreq.header, 0, status.INVALID_HANDLE))
    assert (denied.status, denied.count) == (status.INVALID_HANDLE, 0)
    with pytest.raises(ProtocolError):
        smb1_pipe.parse_write_andx_request(smb1_pipe.write_andx_request(1, pdu, 6, 100, 9)[:40])


# =============================================================================
# SMB2 pipe messages
# =============================================================================


def test_smb2_tree_connect_both_sides():
    req = smb2_pipe.parse_tree_connect_request(smb2_pipe.tree_connect_request("\\\\127.0.0.1\\IPC$", 5, 0x77))
    assert req.path == "\\\\127.0.0.1\\IPC$" and req.share == "IPC$"
    assert (req.header.message_id, req.header.session_id, req.header.credit_charge) == (5, 0x77, 1)
    resp = smb2_pipe.parse_tree_connect_response(
        smb2_pipe.tree_connect_response(req.header, tree_id=3, share_type=smb2_pipe.SHARE_TYPE_DISK,
                                        maximal_access=0x1F01FF))
    assert (resp.status, resp.tree_id, resp.share_type_name, resp.maximal_access) == (0, 3, "disk", 0x1F01FF)
    assert resp.header.message_id == 5 and resp.header.flags & smb2.FLAG_RESPONSE
    denied = smb2_pipe.parse_tree_connect_response(
        smb2_pipe.tree_connect_response(req.header, 0, status=status.BAD_NETWORK_NAME))
    assert denied.status == status.BAD_NETWORK_NAME and denied.maximal_access is None


def test_smb2_create_ioctl_read_write_close_both_sides():
    fid = bytes(range(16))
    c = smb2_pipe.parse_create_request(smb2_pipe.create_request("srvsvc", 6, 0x77, 3))
    assert c.name == "srvsvc" and c.header.tree_id == 3 and c.desired_access == smb2_pipe.PIPE_ACCESS
    cr = smb2_pipe.parse_create_response(smb2_pipe.create_response(c.header, fid))
    assert cr.status == 0 and cr.file_id == fid
    missing = smb2_pipe.parse_create_response(smb2_pipe.create_response(c.header, fid, status=0xC0000034))
    assert missing.status == 0xC0000034 and missing.file_id is None

    pdu = dcerpc.bind(1, srvsvc.SRVSVC_SYNTAX)
    i = smb2_pipe.parse_ioctl_request(smb2_pipe.ioctl_request(fid, pdu, 7, 0x77, 3, max_output=1024))
    assert (i.ctl_code, i.file_id, i.input, i.max_output, i.flags) == \
        (smb2_pipe.FSCTL_PIPE_TRANSCEIVE, fid, pdu, 1024, smb2_pipe.IOCTL_IS_FSCTL)
    ir = smb2_pipe.parse_ioctl_response(smb2_pipe.ioctl_response(i.header, fid, b"reply"))
    assert ir.status == 0 and ir.output == b"reply" and not ir.more
    over = smb2_pipe.parse_ioctl_response(
        smb2_pipe.ioctl_response(i.header, fid, b"rep", status=smb2_pipe.STATUS_BUFFER_OVERFLOW))
    assert over.more and over.output == b"rep"
    bad = smb2_pipe.parse_ioctl_response(smb2_pipe.ioctl_response(i.header, fid, b"", status=status.NOT_SUPPORTED))
    assert bad.status == status.NOT_SUPPORTED and bad.output == b""

    w = smb2_pipe.parse_write_request(smb2_pipe.write_request(fid, pdu, 8, 0x77, 3))
    assert w.data == pdu and w.file_id == fid
    assert smb2_pipe.parse_write_response(smb2_pipe.write_response(w.header, len(pdu))).count == len(pdu)
    r = smb2_pipe.parse_read_request(smb2_pipe.read_request(fid, 4280, 9, 0x77, 3))
    assert (r.file_id, r.length) == (fid, 4280)
    rr = smb2_pipe.parse_read_response(smb2_pipe.read_response(r.header, b"data", remaining=5))
    assert rr.data == b"data" and rr.remaining == 5 and not rr.more

    cl = smb2_pipe.parse_close_request(smb2_pipe.close_request(fid, 10, 0x77, 3))
    assert cl.file_id == fid
    assert smb2_pipe.parse_close_response(smb2_pipe.close_response(cl.header)).status == 0
    td = smb2_pipe.parse_tree_disconnect_request(smb2_pipe.tree_disconnect_request(11, 0x77, 3))
    assert td.tree_id == 3
    assert smb2_pipe.parse_tree_disconnect_response(smb2_pipe.tree_disconnect_response(td)).status == 0


def test_smb2_interim_and_mismatches():
    req = smb2_pipe.parse_request_header(smb2_pipe.ioctl_request(b"\x00" * 16, b"x", 7, 1, 1))
    assert smb2_pipe.is_interim(smb2_pipe.interim_response(req))
    assert not smb2_pipe.is_interim(smb2_pipe.error_response(req, status.ACCESS_DENIED))
    with pytest.raises(ProtocolError, match="expected a CREATE response"):
        smb2_pipe.parse_create_response(smb2_pipe.ioctl_response(req, b"\x00" * 16, b""))
    with pytest.raises(ProtocolError, match="request was expected"):
        smb2_pipe.parse_ioctl_request(smb2_pipe.ioctl_response(req, b"\x00" * 16, b""))
    # a success status with an ERROR body is malformed
    bad = smb2_pipe.reply_header(req) + smb2_pipe.ErrorResponseFixed().pack() + b"\x00"
    with pytest.raises(ProtocolError, match="structure size"):
        smb2_pipe.parse_ioctl_response(bad)


# =============================================================================
# Real Windows bytes (capture corpus)
# =============================================================================


def _corpus():
    corpus = pytest.importorskip("corpus")
    return corpus


def test_windows10_srvsvc_exchange_from_corpus():
    """Windows 10 1511 listing shares of another Windows 10 over SMB2 WRITE/READ
    (arkime-smb-on-windows10.pcap, frames 101-118)."""
    corpus = _corpus()
    msgs = {m.frame: m.data for m in corpus.smb_messages("arkime-smb-on-windows10.pcap")}
    tc = smb2_pipe.parse_tree_connect_response(msgs[102])
    assert tc.share_type == smb2_pipe.SHARE_TYPE_PIPE and tc.maximal_access == 0x011F01FF
    assert smb2_pipe.parse_create_request(msgs[105]).name == "srvsvc"
    assert smb2_pipe.parse_create_response(msgs[106]).status == 0
    bind = dcerpc.parse_bind(smb2_pipe.parse_write_request(msgs[109]).data)
    assert [c.abstract_syntax for c in bind.contexts] == [srvsvc.SRVSVC_SYNTAX] * 3
    assert bind.contexts[0].transfer_syntaxes == [dcerpc.NDR_SYNTAX]
    ack = dcerpc.parse_bind_ack(smb2_pipe.parse_read_response(msgs[112]).data)
    assert ack.secondary_address == "\\PIPE\\srvsvc"
    # Windows declines NDR 2.0 when NDR64 is also offered, accepts NDR64 and
    # acknowledges bind-time feature negotiation
    assert [r.result for r in ack.results] == [dcerpc.PROVIDER_REJECTION, dcerpc.ACCEPTANCE, dcerpc.NEGOTIATE_ACK]
    req = dcerpc.parse_request(smb2_pipe.parse_write_request(msgs[113]).data)
    assert req.opnum == srvsvc.OPNUM_NETR_SHARE_ENUM and req.context_id == 1
    resp = dcerpc.parse_response(smb2_pipe.parse_read_response(msgs[116]).data, call_id=req.call_id)
    assert resp.ok and len(resp.stub) > 300
    # ... so its stubs are NDR64, which our NDR 2.0 decoder refuses cleanly
    with pytest.raises(ProtocolError):
        srvsvc.parse_share_enum_response(resp.stub)
    with pytest.raises(ProtocolError):
        srvsvc.parse_share_enum_request(req.stub)
    assert smb2_pipe.parse_close_response(msgs[118]).status == 0


def test_windows_2008r2_smb1_pipe_open_from_corpus():
    """EternalRomance's lsarpc open on Windows Server 2008 R2: extended tree
    connect, NT_CREATE_ANDX (WordCount 42), TransactNmPipe BIND / BIND_ACK."""
    corpus = _corpus()
    msgs = {m.frame: m.data for m in corpus.smb_messages("eternalromance-success-2008r2.pcap")}
    tc = smb1_tree.parse_tree_connect_response(msgs[15])
    assert tc.service == "IPC" and tc.maximal_access == 0x1FFFFF and tc.guest_maximal_access == 0x1FFFFF
    assert smb1_tree.parse_tree_connect_request(msgs[14]).path.endswith("\\IPC$")
    create = smb1_pipe.parse_nt_create_request(msgs[16])
    assert create.name == "lsarpc" and create.share_access == 3
    opened = smb1_pipe.parse_nt_create_response(msgs[17])
    assert opened.fid == 0x4000 and opened.resource_type == smb1_pipe.FILE_TYPE_MESSAGE_MODE_PIPE
    t = smb1_trans.parse_transaction_request(msgs[18])
    assert t.subcommand == smb1_pipe.TRANS_TRANSACT_NMPIPE and t.fid == 0x4000
    assert dcerpc.parse_bind(t.data).contexts[0].transfer_syntaxes == [dcerpc.NDR_SYNTAX]
    ack = dcerpc.parse_bind_ack(smb1_trans.parse_transaction_response_part(msgs[19]).data)
    assert ack.accepted and ack.secondary_address == "\\pipe\\lsass"


def test_windows7_tree_connect_without_extended_response_from_corpus():
    corpus = _corpus()
    msgs = {m.frame: m.data for m in corpus.smb_messages("wannacry.pcap")}
    tc = smb1_tree.parse_tree_connect_response(msgs[205])
    assert tc.status == 0 and tc.service == "IPC" and tc.maximal_access is None


# =============================================================================
# Fuzz: only ProtocolError may escape a parser
# =============================================================================

_FID = bytes(range(16))
_S1 = smb1_pipe.parse_request_header(smb1_tree.tree_connect_request("\\\\h\\IPC$", 1, 2))
_S2 = smb2_pipe.parse_request_header(smb2_pipe.tree_connect_request("\\\\h\\IPC$", 1, 2))


def _reassemble(data: bytes) -> None:
    r = dcerpc.Reassembler()
    for i in range(0, len(data), 37):
        r.feed(data[i : i + 37])


# NetrShareGetInfo(ServerName NULL, NetName "C$", Level 1), laid out as impacket sends it
GET_INFO_STUB = struct.pack("<IIII", 0, 3, 0, 3) + "C$\x00".encode("utf-16-le") + b"\x00\x00" + struct.pack("<I", 1)
def transaction_request_name(msg: bytes) -> object:
    """The request parser and the pipe name it reads when asked."""
    return smb1_trans.parse_transaction_request(msg).name


def find_first2_unicode(params: bytes) -> object:
    return smb1_find.parse_find_first2(params, smb1.FLAGS2_UNICODE)


def find_next2_unicode(params: bytes) -> object:
    return smb1_find.parse_find_next2(params, smb1.FLAGS2_UNICODE)


def find_first2_oem(params: bytes) -> object:
    return smb1_find.parse_find_first2(params, 0)


PARSERS = [
    (dcerpc.parse_pdu, BIND_SRVSVC),
    (dcerpc.pdu_length, BIND_SRVSVC),
    (dcerpc.parse_bind, BIND_SRVSVC),
    (dcerpc.parse_bind_ack, dcerpc.bind_ack(1)),
    (dcerpc.parse_bind_ack, dcerpc.bind_nak(1)),
    (dcerpc.parse_request, dcerpc.request(2, 15, REQUEST_STUB)),
    (dcerpc.parse_response, dcerpc.response(2, RESPONSE_STUB, max_frag=64)),
    (dcerpc.parse_fault, dcerpc.fault(2, 5)),
    (_reassemble, dcerpc.response(2, RESPONSE_STUB, max_frag=48)),
    (srvsvc.parse_share_enum_request, REQUEST_STUB),
    (srvsvc.parse_share_enum_response, srvsvc.share_enum_response(SHARES)),
    (srvsvc.parse_share_get_info_request, GET_INFO_STUB),
    (smb1_pipe.parse_request_header, smb1_pipe.close_request(1, 2, 3, 4)),
    (smb1_tree.parse_tree_connect_request, smb1_tree.tree_connect_request("\\\\h\\IPC$", 1, 2)),
    (smb1_tree.parse_tree_connect_response, smb1_tree.tree_connect_response(_S1, 1, native_fs="NTFS",
                                                                            maximal_access=0x1FF)),
    (smb1_pipe.parse_nt_create_request, smb1_pipe.nt_create_request("\\srvsvc", 1, 2, 3)),
    (smb1_pipe.parse_nt_create_response, smb1_pipe.nt_create_response(_S1, 0x4000)),
    (smb1_trans.parse_transaction_request, smb1_pipe.transact_nmpipe_request(1, BIND_SRVSVC, 1, 2, 3)),
    (transaction_request_name, smb1_pipe.transact_nmpipe_request(1, BIND_SRVSVC, 1, 2, 3)),
    (transaction_request_name, smb1.transaction_request(smb1.TRANSACTION, 1, 2, 3, (0x23, 0), flags2=smb1.DEFAULT_FLAGS2)),
    (find_first2_unicode, smb1_find.find_first2_request_params("\\share\\*")),
    (find_first2_oem, smb1_find.find_first2_request_params("\\share\\*")),
    (find_next2_unicode, smb1_find.FindNext2Params.build(sid=1, count=5, level=0x104) + "a".encode("utf-16-le")),
    (smb1_find.parse_find_first2_response_params, smb1_find.find_first2_response_params(1, 2, True, 40)),
    (smb1_find.last_entry_offset, smb1_find.NextEntryOffset.build(next=8) + bytes(12)),
    (smb1_trans.parse_transaction_response_part, smb1_trans.transaction_response(_S1, BIND_SRVSVC, b"pp", (1,))),
    (smb1_pipe.parse_read_andx_request, smb1_pipe.read_andx_request(1, 2, 3, 4)),
    (smb1_pipe.parse_read_andx_response, smb1_pipe.read_andx_response(_S1, b"abcdef")),
    (smb1_pipe.parse_write_andx_request, smb1_pipe.write_andx_request(1, BIND_SRVSVC, 2, 3, 4)),
    (smb1_pipe.parse_write_andx_response, smb1_pipe.write_andx_response(_S1, 72)),
    (smb1_pipe.parse_close_request, smb1_pipe.close_request(1, 2, 3, 4)),
    (smb1_pipe.parse_close_response, smb1_pipe.close_response(_S1)),
    (smb1_pipe.parse_tree_disconnect_response, smb1_pipe.tree_disconnect_response(_S1)),
    (smb2_pipe.parse_request_header, smb2_pipe.close_request(_FID, 1, 2, 3)),
    (smb2_pipe.is_interim, smb2_pipe.interim_response(_S2)),
    (smb2_pipe.parse_tree_connect_request, smb2_pipe.tree_connect_request("\\\\h\\IPC$", 1, 2)),
    (smb2_pipe.parse_tree_connect_response, smb2_pipe.tree_connect_response(_S2, 5)),
    (smb2_pipe.parse_tree_disconnect_request, smb2_pipe.tree_disconnect_request(1, 2, 3)),
    (smb2_pipe.parse_tree_disconnect_response, smb2_pipe.tree_disconnect_response(_S2)),
    (smb2_pipe.parse_create_request, smb2_pipe.create_request("srvsvc", 1, 2, 3)),
    (smb2_pipe.parse_create_response, smb2_pipe.create_response(_S2, _FID)),
    (smb2_pipe.parse_ioctl_request, smb2_pipe.ioctl_request(_FID, BIND_SRVSVC, 1, 2, 3)),
    (smb2_pipe.parse_ioctl_response, smb2_pipe.ioctl_response(_S2, _FID, b"xyz")),
    (smb2_pipe.parse_write_request, smb2_pipe.write_request(_FID, b"abc", 1, 2, 3)),
    (smb2_pipe.parse_write_response, smb2_pipe.write_response(_S2, 3)),
    (smb2_pipe.parse_read_request, smb2_pipe.read_request(_FID, 100, 1, 2, 3)),
    (smb2_pipe.parse_read_response, smb2_pipe.read_response(_S2, b"abc")),
    (smb2_pipe.parse_close_request, smb2_pipe.close_request(_FID, 1, 2, 3)),
    (smb2_pipe.parse_close_response, smb2_pipe.close_response(_S2)),
]
PARSER_IDS = [f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}" for fn, _ in PARSERS]


def _only_protocol_error(fn, data: bytes) -> None:
    try:
        fn(data)
    except ProtocolError:
        pass


def test_every_sample_parses():
    for fn, sample in PARSERS:
        fn(sample)


@pytest.mark.parametrize("fn, sample", PARSERS, ids=PARSER_IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(fn, sample, data):
    _only_protocol_error(fn, data)
    # random bytes behind a valid header reach deeper
    _only_protocol_error(fn, sample[:64] + data)


@st.composite
def _mutations(draw, sample: bytes) -> bytes:
    buf = bytearray(sample)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "word"]))
        if not buf:
            break
        pos = draw(st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            buf[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:  # a length-looking field set to an extreme
            value = draw(st.sampled_from([0, 1, 0x7FFF, 0xFFFF, 0xFFFFFFFF]))
            buf[pos : pos + 4] = struct.pack("<I", value)
    return bytes(buf)


@pytest.mark.parametrize("fn, sample", PARSERS, ids=PARSER_IDS)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_samples(fn, sample, data):
    _only_protocol_error(fn, data.draw(_mutations(sample)))


@settings(max_examples=100, deadline=None)
@given(
    shares_=st.lists(
        st.tuples(st.text(max_size=40), st.integers(0, 0xFFFFFFFF), st.text(max_size=80)), max_size=30),
    frag=st.integers(64, 1000),
)
def test_share_listing_survives_any_fragmentation(shares_, frag):
    stub = srvsvc.share_enum_response(shares_)
    resp = dcerpc.parse_response(dcerpc.response(3, stub, max_frag=frag), call_id=3)
    got = srvsvc.parse_share_enum_response(resp.stub)
    assert [(s.name, s.type, s.remark) for s in got.shares] == [
        (n.split("\x00", 1)[0], t, r.split("\x00", 1)[0]) for n, t, r in shares_]


# =============================================================================
# The driver against an in-process server built from the server-side builders
# =============================================================================


class FakeServer:
    """A named-pipe server speaking SMB1 or SMB2 (no negotiate/logon: the
    driver is handed a session), answering SRVSVC from our own builders."""

    def __init__(self, **kw) -> None:
        self.shares = kw.pop("shares", SHARES)
        self.werror = kw.pop("werror", 0)
        self.fault = kw.pop("fault", None)
        self.bind_result = kw.pop("bind_result", None)  # None accept, "nak", or (result, reason)
        self.tree_status = kw.pop("tree_status", 0)
        self.open_status = kw.pop("open_status", 0)
        self.rpc_frag = kw.pop("rpc_frag", 4280)
        self.trans_split = kw.pop("trans_split", None)  # SMB1: data bytes per transaction reply message
        self.ioctl_status = kw.pop("ioctl_status", 0)
        self.interim = kw.pop("interim", False)
        self.access = kw.pop("access", {"IPC$": 0x1F01A9, "public": 0x1F01FF, "readonly": 0x1200A9})
        self.extended = kw.pop("extended", True)
        self.hostile = kw.pop("hostile", None)  # callable(msg) -> reply bytes or None
        self.mutate = kw.pop("mutate", None)  # callable(reply) -> reply, applied to every reply
        assert not kw, kw
        self.pending: list[bytes] = []
        self.seen: list[int] = []
        self.server = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, FAKE_ADDRESS, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    # -- pipe ---------------------------------------------------------------
    def rpc(self, pdu: bytes) -> list[bytes]:
        ptype = pdu[2]
        if ptype == dcerpc.BIND:
            bind = dcerpc.parse_bind(pdu)
            if self.bind_result == "nak":
                return [dcerpc.bind_nak(bind.call_id, 4)]
            if self.bind_result is not None:
                result, reason = self.bind_result
                return [dcerpc.bind_ack(bind.call_id, [(result, reason, (uuid.UUID(int=0), 0, 0))])]
            assert bind.contexts[0].abstract_syntax == srvsvc.SRVSVC_SYNTAX
            return [dcerpc.bind_ack(bind.call_id, max_xmit_frag=self.rpc_frag, max_recv_frag=self.rpc_frag)]
        req = dcerpc.parse_request(pdu)
        if self.fault is not None:
            return [dcerpc.fault(req.call_id, self.fault)]
        enum = srvsvc.parse_share_enum_request(req.stub)
        assert enum.level == 1 and enum.prefered_maximum_length == 0xFFFFFFFF
        stub = srvsvc.share_enum_response([] if self.werror else self.shares, werror=self.werror)
        return dcerpc.response_fragments(req.call_id, stub, max_frag=self.rpc_frag)

    def read(self, n: int) -> tuple[int, bytes]:
        if not self.pending:
            return 0, b""
        head = self.pending[0]
        if len(head) > n:
            self.pending[0] = head[n:]
            return smb2_pipe.STATUS_BUFFER_OVERFLOW, head[:n]
        self.pending.pop(0)
        return 0, head

    # -- SMB ----------------------------------------------------------------
    async def _handle(self, reader, writer):
        try:
            while True:
                head = await reader.readexactly(4)
                msg = await reader.readexactly(int.from_bytes(head[1:], "big"))
                replies = self.hostile(msg) if self.hostile else None
                if replies is None:
                    replies = self.smb1(msg) if msg[:4] == smb1.MAGIC else self.smb2(msg)
                for r in replies:
                    writer.write(netbios.frame(self.mutate(r) if self.mutate else r))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def smb1(self, msg: bytes) -> list[bytes]:
        hdr = smb1_pipe.parse_request_header(msg)
        self.seen.append(hdr.command)
        if hdr.command == smb1.TREE_CONNECT_ANDX:
            req = smb1_tree.parse_tree_connect_request(msg)
            share = req.path.rsplit("\\", 1)[-1]
            if self.tree_status or share not in self.access:
                return [smb1_tree.tree_connect_response(hdr, 0, status=self.tree_status or status.BAD_NETWORK_NAME)]
            return [smb1_tree.tree_connect_response(
                hdr, 7, "IPC" if share == "IPC$" else "A:",
                maximal_access=self.access[share] if self.extended else None)]
        if hdr.command == smb1_pipe.NT_CREATE_ANDX:
            req = smb1_pipe.parse_nt_create_request(msg)
            assert req.name == "\\srvsvc"
            return [smb1_pipe.nt_create_response(hdr, 0x4000, status=self.open_status)]
        if hdr.command == smb1.TRANSACTION:
            req = smb1_trans.parse_transaction_request(msg)
            assert req.subcommand == smb1_pipe.TRANS_TRANSACT_NMPIPE and req.fid == 0x4000
            self.pending = self.rpc(req.data)
            code, data = self.read(req.max_data)
            if not self.trans_split:
                return [smb1_trans.transaction_response(hdr, data, status=code)]
            k = self.trans_split
            return [smb1_trans.transaction_response(hdr, data[i : i + k], status=code, total_data=len(data),
                                                   data_displacement=i) for i in range(0, len(data), k)]
        if hdr.command == smb1_pipe.READ_ANDX:
            req = smb1_pipe.parse_read_andx_request(msg)
            code, data = self.read(req.max_count)
            return [smb1_pipe.read_andx_response(hdr, data, status=code)]
        if hdr.command == smb1_pipe.CLOSE:
            assert smb1_pipe.parse_close_request(msg).fid == 0x4000
            return [smb1_pipe.close_response(hdr)]
        if hdr.command == smb1_pipe.TREE_DISCONNECT:
            return [smb1_pipe.tree_disconnect_response(hdr)]
        return [smb1_pipe.error_response(hdr, status.NOT_IMPLEMENTED)]

    def smb2(self, msg: bytes) -> list[bytes]:
        hdr = smb2_pipe.parse_request_header(msg)
        self.seen.append(hdr.command)
        fid = b"\x11" * 16
        if hdr.command == smb2_pipe.TREE_CONNECT:
            req = smb2_pipe.parse_tree_connect_request(msg)
            if self.tree_status or req.share not in self.access:
                return [smb2_pipe.tree_connect_response(hdr, 0, status=self.tree_status or status.BAD_NETWORK_NAME)]
            kind = smb2_pipe.SHARE_TYPE_PIPE if req.share == "IPC$" else smb2_pipe.SHARE_TYPE_DISK
            return [smb2_pipe.tree_connect_response(hdr, 5, kind, self.access[req.share])]
        assert hdr.tree_id == 5 and hdr.session_id == 0x77 and hdr.credit_charge == 1
        if hdr.command == smb2_pipe.CREATE:
            assert smb2_pipe.parse_create_request(msg).name == "srvsvc"
            return [smb2_pipe.create_response(hdr, fid, status=self.open_status)]
        if hdr.command == smb2_pipe.IOCTL:
            req = smb2_pipe.parse_ioctl_request(msg)
            assert req.file_id == fid and req.ctl_code == smb2_pipe.FSCTL_PIPE_TRANSCEIVE
            if self.ioctl_status:
                return [smb2_pipe.error_response(hdr, self.ioctl_status)]
            self.pending = self.rpc(req.input)
            code, data = self.read(req.max_output)
            out = [smb2_pipe.interim_response(hdr)] if self.interim else []
            return out + [smb2_pipe.ioctl_response(hdr, fid, data, status=code)]
        if hdr.command == smb2_pipe.WRITE:
            req = smb2_pipe.parse_write_request(msg)
            self.pending = self.rpc(req.data)
            return [smb2_pipe.write_response(hdr, len(req.data))]
        if hdr.command == smb2_pipe.READ:
            req = smb2_pipe.parse_read_request(msg)
            code, data = self.read(req.length)
            return [smb2_pipe.read_response(hdr, data, status=code)]
        if hdr.command == smb2_pipe.CLOSE:
            return [smb2_pipe.close_response(hdr)]
        if hdr.command == smb2_pipe.TREE_DISCONNECT:
            return [smb2_pipe.tree_disconnect_response(hdr)]
        return [smb2_pipe.error_response(hdr, status.NOT_SUPPORTED)]


async def _fake_list(version: int, server: FakeServer, probe: tuple[str, ...] = (), timeout: float = 2.0):
    async with server:
        conn = await Connection.open(FAKE_ADDRESS, server.port, timeout)
        try:
            if version == 1:
                client1 = Smb1Client(conn, timeout)
                listing = await shares.list_shares_smb1(client1, 100, FAKE_ADDRESS)
                access = [await shares.probe_share_access_smb1(client1, 100, FAKE_ADDRESS, s) for s in probe]
            else:
                client2 = Smb2Client(conn, timeout)
                listing = await shares.list_shares_smb2(client2, 0x77, FAKE_ADDRESS)
                access = [await shares.probe_share_access_smb2(client2, 0x77, FAKE_ADDRESS, s) for s in probe]
            return listing, access
        finally:
            conn.close()


def _names(listing: shares.ShareListing) -> list[tuple[str, int, str]]:
    assert listing.ok, listing.reason
    return [(s.name, s.type, s.remark) for s in listing.shares]


@pytest.mark.parametrize("version", [1, 2])
def test_driver_lists_shares(version):
    server = FakeServer()
    listing, _ = run(_fake_list(version, server))
    assert _names(listing) == SHARES and listing.total_entries == len(SHARES)
    assert listing.protocol == f"smb{version}" and listing.cleanup_error is None
    if version == 1:
        assert server.seen == [0x75, 0xA2, 0x25, 0x25, 0x04, 0x71]
    else:
        assert server.seen == [3, 5, 11, 11, 6, 4]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("read_size", [100, 4280])
def test_driver_reassembles_fragments_and_overflowing_reads(version, read_size, monkeypatch):
    many = [(f"share{i:03d}", 0, "r" * 60) for i in range(200)]
    monkeypatch.setattr(shares, "PIPE_READ_SIZE", read_size)
    server = FakeServer(shares=many, rpc_frag=1024)
    listing, _ = run(_fake_list(version, server))
    assert _names(listing) == many
    reads = server.seen.count(0x2E if version == 1 else smb2_pipe.READ)
    assert reads > (20 if read_size == 100 else 5)


def test_driver_joins_split_smb1_transaction_replies():
    server = FakeServer(trans_split=50)
    listing, _ = run(_fake_list(1, server))
    assert _names(listing) == SHARES


def test_driver_falls_back_to_write_and_read_without_transceive():
    server = FakeServer(ioctl_status=status.NOT_SUPPORTED)
    listing, _ = run(_fake_list(2, server))
    assert _names(listing) == SHARES
    assert smb2_pipe.WRITE in server.seen and smb2_pipe.READ in server.seen


def test_driver_skips_interim_responses():
    listing, _ = run(_fake_list(2, FakeServer(interim=True)))
    assert _names(listing) == SHARES


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "kw, step, reason",
    [
        ({"tree_status": status.ACCESS_DENIED}, "tree connect IPC$",
         "tree connect IPC$: 0xC0000022 (STATUS_ACCESS_DENIED)"),
        ({"open_status": 0xC0000034}, "open \\srvsvc", "open \\srvsvc: 0xC0000034"),
        ({"bind_result": "nak"}, "bind", "bind: BIND_NAK (protocol version not supported)"),
        ({"bind_result": (2, 1)}, "bind", "bind: provider rejection: abstract syntax not supported"),
        ({"fault": dcerpc.NCA_S_OP_RNG_ERROR}, "NetrShareEnum",
         "NetrShareEnum: DCE/RPC fault 0x1C010002 (nca_s_op_rng_error (unknown operation))"),
        ({"werror": 5}, "NetrShareEnum", "NetrShareEnum: WERROR 5 (ACCESS_DENIED)"),
    ],
)
def test_driver_refusals_are_results(version, kw, step, reason):
    server = FakeServer(**kw)
    listing, _ = run(_fake_list(version, server))
    assert not listing.ok and listing.shares is None
    assert listing.step == step and listing.reason == reason
    if "werror" in kw:
        assert listing.werror == 5
    if "tree_status" not in kw:  # whatever was opened is closed again
        assert server.seen[-1] in (smb1_pipe.TREE_DISCONNECT, smb2_pipe.TREE_DISCONNECT)


@pytest.mark.parametrize("version", [1, 2])
def test_share_access_probe(version):
    server = FakeServer()
    _, access = run(_fake_list(version, server, ("public", "readonly", "IPC$", "missing")))
    public, readonly, ipc, missing = access
    assert public.reachable and public.writable and public.maximal_access == 0x1F01FF
    assert readonly.reachable and readonly.writable is False
    assert ipc.reachable and ipc.share_type == ("IPC" if version == 1 else "pipe")
    assert not missing.reachable and missing.writable is None
    assert missing.reason == "tree connect missing: 0xC00000CC (STATUS_BAD_NETWORK_NAME)"
    # a probe is a tree connect and a tree disconnect, nothing else
    assert set(server.seen[-8:]) == ({0x75, 0x71} if version == 1 else {3, 4})


def test_share_access_probe_without_extended_response():
    _, (public,) = run(_fake_list(1, FakeServer(extended=False), ("public",)))
    assert public.reachable and public.maximal_access is None and public.writable is None
    assert "not reported" in public.reason


def test_is_writable():
    assert shares.is_writable(0x2) and shares.is_writable(0x4)
    assert shares.is_writable(0x40000000) and shares.is_writable(0x10000000)
    assert shares.is_writable(0x1200A9) is False and shares.is_writable(None) is None


def _garbage_for(command):
    def hostile(msg):
        if msg[:4] == smb1.MAGIC and msg[4] == command or msg[:4] == smb2.MAGIC and msg[12] == command:
            return [msg[:4] + b"\x00" * 10]
        return None
    return hostile


def _wrong_id(msg):
    if msg[:4] == smb1.MAGIC and msg[4] == smb1.TRANSACTION:
        hdr = smb1_pipe.parse_request_header(msg)
        return [smb1_trans.transaction_response(hdr.replace(mid=hdr.mid + 5), b"")]
    if msg[:4] == smb2.MAGIC and msg[12] == smb2_pipe.IOCTL:
        hdr = smb2_pipe.parse_request_header(msg)
        return [smb2_pipe.ioctl_response(hdr.replace(message_id=hdr.message_id + 5), b"\x11" * 16, b"")]
    return None


def _bad_pdu(msg):
    if msg[:4] == smb1.MAGIC and msg[4] == smb1.TRANSACTION:
        return [smb1_trans.transaction_response(smb1_pipe.parse_request_header(msg), b"\x05\x00\x0c\x03" + b"\xff" * 40)]
    if msg[:4] == smb2.MAGIC and msg[12] == smb2_pipe.IOCTL:
        return [smb2_pipe.ioctl_response(smb2_pipe.parse_request_header(msg), b"\x11" * 16,
                                         b"\x05\x00\x0c\x03" + b"\xff" * 40)]
    return None


def _hang_up(msg):
    if msg[:4] == smb1.MAGIC and msg[4] == smb1.TRANSACTION or msg[:4] == smb2.MAGIC and msg[12] == 11:
        raise ConnectionResetError
    return None


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "hostile, kind, detail",
    [
        (_garbage_for(0xA2), "protocol-error", ""),
        (_garbage_for(smb2_pipe.CREATE), "protocol-error", ""),
        (_wrong_id, "protocol-error", "expected"),
        (_bad_pdu, "protocol-error", "bind"),
        (_hang_up, "connection-", ""),
    ],
    ids=["garbage-create-smb1", "garbage-create-smb2", "wrong-id", "bad-pdu", "hang-up"],
)
def test_driver_raises_only_scan_error(version, hostile, kind, detail):
    try:
        listing, _ = run(_fake_list(version, FakeServer(hostile=hostile)))
    except ScanError as exc:
        assert exc.kind.startswith(kind) and detail in str(exc)
    else:  # garbage aimed at the other protocol's command: untouched
        assert listing.ok


# =============================================================================
# Real Samba
# =============================================================================

_SMBCLIENT_LINE = re.compile(r"^\t(\S+)\s+(Disk|IPC|Printer)\s*(.*?)\s*$")
_TYPES = {"Disk": "disk", "IPC": "ipc", "Printer": "printq"}


def _smbclient_shares(server, protocol: str | None = None, user: str | None = None) -> list[tuple[str, str, str]]:
    proc = server.smbclient(protocol=protocol, user=user)
    found = []
    for line in proc.stdout.splitlines():
        m = _SMBCLIENT_LINE.match(line)
        if m:
            found.append((m.group(1), _TYPES[m.group(2)], m.group(3)))
    assert found, f"smbclient -L listed nothing:\n{proc.stdout}\n{proc.stderr}"
    return sorted(found)


def _ours(listing: shares.ShareListing) -> list[tuple[str, str, str]]:
    assert listing.ok, listing.reason
    return sorted((s.name, s.kind, s.remark) for s in listing.shares)


async def _session(address: str, version: int, kind: str, dialects: tuple[int, ...] = smb2.ALL_DIALECTS):
    conn = await Connection.open(address, 445, TIMEOUT)
    if version == 1:
        client = Smb1Client(conn, TIMEOUT)
        resp, why = await client.negotiate()
    else:
        client = Smb2Client(conn, TIMEOUT)
        resp, why = await client.negotiate(dialects)
    if resp is None:
        conn.close()
        pytest.fail(f"negotiate refused: {why}")
    logon = await client.logon(kind)
    if not logon.ok:
        conn.close()
        pytest.fail(f"{kind} logon refused: {status.describe(logon.status)}")
    return conn, client, logon


async def _samba_list(address: str, version: int, kind: str, probe: tuple[str, ...] = (),
                      dialects: tuple[int, ...] = smb2.ALL_DIALECTS):
    conn, client, logon = await _session(address, version, kind, dialects)
    try:
        if version == 1:
            listing = await shares.list_shares_smb1(client, logon.uid, address)
            access = {s: await shares.probe_share_access_smb1(client, logon.uid, address, s) for s in probe}
        else:
            listing = await shares.list_shares_smb2(client, logon.uid, address)
            access = {s: await shares.probe_share_access_smb2(client, logon.uid, address, s) for s in probe}
        # the session is still usable afterwards: a second listing agrees
        again = await (shares.list_shares_smb1 if version == 1 else shares.list_shares_smb2)(
            client, logon.uid, address)
        assert _ours(again) == _ours(listing) if listing.ok else again.reason == listing.reason
        return listing, access
    finally:
        conn.close()


@pytest.mark.samba
@pytest.mark.parametrize("kind", ["anonymous", "guest"])
def test_samba_smb1_listing_matches_smbclient(samba_smb1_guest, kind):
    listing, _ = run(_samba_list(samba_smb1_guest.address, 1, kind))
    assert listing.cleanup_error is None
    assert _ours(listing) == _smbclient_shares(samba_smb1_guest, protocol="NT1")
    assert {"public", "IPC$"} <= {s.name for s in listing.shares}
    ipc = next(s for s in listing.shares if s.name == "IPC$")
    assert ipc.kind == "ipc" and ipc.special


@pytest.mark.samba
@pytest.mark.parametrize("kind", ["anonymous", "guest"])
def test_samba_smb2_listing_matches_smbclient(samba_smb1_guest, kind):
    listing, _ = run(_samba_list(samba_smb1_guest.address, 2, kind))
    assert _ours(listing) == _smbclient_shares(samba_smb1_guest)
    assert ("public", "disk", "guest share") in _ours(listing)


@pytest.mark.samba
@pytest.mark.parametrize("version", [1, 2])
def test_samba_guest_share_access(samba_smb1_guest, version):
    _, access = run(_samba_list(samba_smb1_guest.address, version, "guest", ("public", "IPC$", "nosuchshare")))
    assert access["public"].reachable and access["public"].writable is True
    assert access["public"].maximal_access & smb2_pipe.FILE_WRITE_DATA
    assert access["IPC$"].reachable
    assert access["IPC$"].share_type == ("IPC" if version == 1 else "pipe")
    assert access["nosuchshare"].status == status.BAD_NETWORK_NAME
    assert access["nosuchshare"].writable is None


@pytest.mark.samba
def test_samba_smb1_off_lists_over_smb2(samba_smb1_off):
    listing, access = run(_samba_list(samba_smb1_off.address, 2, "anonymous", ("data", "IPC$")))
    assert _ours(listing) == _smbclient_shares(samba_smb1_off)
    assert "data" in {s.name for s in listing.shares}
    assert access["IPC$"].reachable
    # 'data' is for users only: an anonymous session may not write there
    assert not access["data"].writable


@pytest.mark.samba
@pytest.mark.parametrize("dialect", [0x0202, 0x0210])
def test_samba_smb2_0_and_2_1(samba_max_smb2_10, dialect):
    listing, access = run(_samba_list(samba_max_smb2_10.address, 2, "anonymous", ("IPC$",), (dialect,)))
    assert _ours(listing) == _smbclient_shares(samba_max_smb2_10)
    assert access["IPC$"].reachable and access["IPC$"].share_type == "pipe"


@pytest.mark.samba
def test_samba_signing_required_anonymous_is_unsigned_and_works(samba_signing_required):
    listing, access = run(_samba_list(samba_signing_required.address, 2, "anonymous", ("data",)))
    assert _ours(listing) == _smbclient_shares(samba_signing_required)
    assert access["data"].status == status.ACCESS_DENIED and access["data"].writable is None


@pytest.mark.samba
@pytest.mark.parametrize("version", [1, 2])
def test_samba_many_shares_need_several_fragments_and_reads(samba_factory, version, monkeypatch):
    server = samba_factory(config="smb1-guest", shares={
        f"share{i:03d}": {"comment": f"{i} " + "c" * 100, "guest ok": "yes", "read only": "yes"} for i in range(120)})
    reads = 0
    pipe_cls = shares._Smb1Pipe if version == 1 else shares._Smb2Pipe
    original = pipe_cls.read

    async def counting_read(self, step):
        nonlocal reads
        reads += 1
        return await original(self, step)

    monkeypatch.setattr(pipe_cls, "read", counting_read)
    monkeypatch.setattr(shares, "PIPE_READ_SIZE", 1000)  # force STATUS_BUFFER_OVERFLOW
    listing, access = run(_samba_list(server.address, version, "guest", ("share007",)))
    assert len(listing.shares) == 122
    assert _ours(listing) == _smbclient_shares(server, protocol="NT1" if version == 1 else None)
    assert reads > 10
    assert access["share007"].reachable and access["share007"].writable is False


@pytest.mark.samba
@pytest.mark.parametrize("version", [1, 2])
def test_samba_restrict_anonymous_refusals(samba_factory, version):
    one = samba_factory(config="smb1-guest", options={"restrict anonymous": "1"})
    listing, _ = run(_samba_list(one.address, version, "anonymous"))
    assert listing.step == "NetrShareEnum" and listing.werror == 5
    assert listing.reason == "NetrShareEnum: WERROR 5 (ACCESS_DENIED)"
    two = samba_factory(config="smb1-guest", options={"restrict anonymous": "2"})
    listing, _ = run(_samba_list(two.address, version, "anonymous"))
    assert listing.step == "tree connect IPC$" and listing.status == status.ACCESS_DENIED


@pytest.mark.parametrize("version", [1, 2])
def test_driver_survives_mutated_replies(version):
    """Every reply of the fake server damaged at random (seeded): a listing
    either completes or raises ScanError; nothing else escapes."""
    import random

    rnd = random.Random(version)
    outcomes = {"ok": 0, "refused": 0, "scan-error": 0}

    def mutate(reply: bytes) -> bytes:
        buf = bytearray(reply)
        if rnd.random() < 0.95:
            return reply
        for _ in range(rnd.randint(1, 4)):
            pos = rnd.randrange(len(buf))
            choice = rnd.randrange(3)
            if choice == 0:
                buf[pos] ^= 1 << rnd.randrange(8)
            elif choice == 1:
                buf[pos:pos + 2] = struct.pack("<H", rnd.choice([0, 1, 0xFF, 0xFFFF]))
            else:
                del buf[max(pos, 4):]
        return bytes(buf)

    for _ in range(60):
        server = FakeServer(mutate=mutate, rpc_frag=256, shares=SHARES * 4)
        try:
            listing, _ = run(_fake_list(version, server, ("public",), timeout=0.3))
        except ScanError:
            outcomes["scan-error"] += 1
        else:
            outcomes["ok" if listing.ok else "refused"] += 1
    assert outcomes["scan-error"] and outcomes["ok"], outcomes
