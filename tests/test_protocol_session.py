"""The sans-I/O client sessions (protocol/smb1_session.py, smb2_session.py), fed with bytes.

No sockets: a session's Steps go to the lab's own sans-I/O server
(HostConnection.feed), framed and unframed as on the wire, and the replies
come back to `session.feed`.  Then hostile replies (truncated, the wrong
message id, over the size cap, unsolicited, random bytes): each is one
ProtocolError and nothing else.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smbsentry.lab import profiles
from smbsentry.lab.host import HostConnection
from smbsentry.protocol import netbios, smb1, smb1_replies, smb2, smb2_pipe, status
from smbsentry.protocol.errors import ProtocolError
from smbsentry.protocol.session import READ_MORE, Challenge, Logon, Negotiated, Step
from smbsentry.protocol.smb1_session import Smb1Session
from smbsentry.protocol.smb2_session import MAX_SKIPPED, Smb2Session

ADDRESS = "127.0.0.1"


class Wire:
    """A session and a lab host joined without I/O: frames each Step's bytes,
    feeds them to HostConnection, unframes the replies into session.feed."""

    def __init__(self, session, profile: str) -> None:
        self.session = session
        self.host = HostConnection(profiles.get(profile), 445)
        self.frames = netbios.FrameReader()
        self.queued: list[bytes] = []
        self.sent: list[bytes] = []

    def run(self, step: Step):
        while not step.done:
            if step.send:
                self.sent.append(step.send)
                action = self.host.feed(netbios.frame(step.send))
                assert action.end is None, action
                self.queued += [body for _, body in self.frames.feed(action.send)]
            step = self.session.feed(self.queued.pop(0))
        return step.event


def smb1_on_ipc(profile: str = "win7-sp1-unpatched"):
    wire = Wire(Smb1Session(), profile)
    negotiated = wire.run(wire.session.negotiate())
    assert isinstance(negotiated, Negotiated) and negotiated.response is not None, negotiated
    logon = wire.run(wire.session.logon("anonymous"))
    assert isinstance(logon, Logon) and logon.ok, logon
    tree = wire.run(wire.session.tree_connect(f"\\\\{ADDRESS}\\IPC$", logon.uid))
    assert tree.status == status.SUCCESS
    return wire, logon.uid, tree.tid


# -- whole dialogues against the lab --------------------------------------------------


def test_smb1_dialogue_numbers_mids_and_keeps_the_state():
    wire, uid, tid = smb1_on_ipc()
    s = wire.session
    # negotiate, the logon's two legs, the tree connect: MIDs 1..4, each reply checked
    assert [smb1.Header.unpack_from(m).mid for m in wire.sent] == [1, 2, 3, 4]
    assert s.first_setup is not None and s.challenge is not None and s.challenge.av_pairs
    assert s.trees == {(uid, f"\\\\{ADDRESS}\\IPC$"): tid}
    reply = wire.run(s.transaction(smb1.TRANSACTION, uid, tid, (0x0023, 0x0000), name="\\PIPE\\"))
    assert reply.mid == 5 and reply.status == status.INSUFF_SERVER_RESOURCES
    wire.run(s.tree_disconnect(uid, tid))
    assert s.trees == {}


def test_smb1_first_leg_is_reused_by_the_next_logon():
    wire = Wire(Smb1Session(), "win7-sp1-unpatched")
    wire.run(wire.session.negotiate())
    first = wire.run(wire.session.ntlm_challenge())
    assert isinstance(first, Challenge) and first.challenge is not None
    sent = len(wire.sent)
    logon = wire.run(wire.session.logon("anonymous"))
    assert logon.ok and len(wire.sent) == sent + 1  # the AUTHENTICATE only


def test_doublepulsar_ping_takes_the_implants_mid():
    wire, uid, tid = smb1_on_ipc("win7-doublepulsar")
    reply = wire.run(wire.session.transaction(smb1.TRANSACTION2, uid, tid, (0x000E,), mid=65,
                                              params=b"\x00" * 12, max_param=1, max_data=0, timeout=0x00A4D9A6))
    assert reply.mid == 81 and reply.status == status.NOT_IMPLEMENTED


def test_smb1_refused_where_smb1_is_off():
    wire = Wire(Smb1Session(), "win10-22h2")
    host = wire.host
    action = host.feed(netbios.frame(wire.session.negotiate().send))
    assert action.end == "reset"  # as Windows with SMBv1 off; the driver reports the reset


def test_smb2_dialogue_message_ids_credits_and_logon():
    wire = Wire(Smb2Session(), "win10-22h2")
    s = wire.session
    negotiated = wire.run(s.negotiate())
    assert negotiated.response is not None and negotiated.response.dialect == 0x0311
    first = wire.run(s.ntlm_challenge())
    assert first.challenge is not None
    logon = wire.run(s.logon("anonymous"))
    assert isinstance(logon, Logon)
    assert [smb2.Header.unpack_from(m).message_id for m in wire.sent] == [0, 1, 2]
    assert s.credits >= 1  # the lab grants what is asked for


def test_smb2_trees_on_a_guest_session():
    wire = Wire(Smb2Session(), "samba-4.5-sambacry")
    s = wire.session
    wire.run(s.negotiate())
    logon = wire.run(s.logon("guest"))
    assert logon.ok, logon
    tree = wire.run(s.tree_connect(f"\\\\{ADDRESS}\\IPC$", logon.uid))
    assert tree.status == status.SUCCESS and tree.share_type_name == "pipe"
    assert s.trees == {(logon.uid, f"\\\\{ADDRESS}\\IPC$"): tree.tree_id}
    wire.run(s.tree_disconnect(logon.uid, tree.tree_id))
    assert s.trees == {}


def test_negotiate_answered_in_the_other_dialect_is_a_refusal_not_an_error():
    s1 = Smb1Session()
    s1.negotiate()
    got = s1.feed(smb2.Header(flags=smb2.FLAG_RESPONSE).pack() + b"\x00" * 8)
    assert got.event == Negotiated(None, "answered the SMB1 negotiate with SMB2")
    s2 = Smb2Session()
    s2.negotiate()
    got = s2.feed(smb1.Header(flags=0x80).pack() + b"\x00\x00\x00")
    assert got.event == Negotiated(None, "answered the SMB2 negotiate with SMB1")


# -- hostile replies: one ProtocolError each --------------------------------------------


def _smb2_tree_session():
    s = Smb2Session()
    s.negotiated = object()  # past the negotiate: replies must be SMB2
    step = s.tree_connect("\\\\h\\IPC$", 7)
    req = smb2_pipe.parse_request_header(step.send)
    return s, req


def test_wrong_message_id_is_a_protocol_error():
    s, req = _smb2_tree_session()
    req.message_id += 1
    with pytest.raises(ProtocolError, match="MessageId"):
        s.feed(smb2_pipe.tree_connect_response(req, 5))
    s1 = Smb1Session()
    step = s1.negotiate()
    hdr = smb1.Header.unpack_from(step.send)
    hdr.mid += 1
    with pytest.raises(ProtocolError, match="MID"):
        s1.feed(smb1_replies.negotiate_response(hdr, 0, security_mode=3, max_mpx=50, max_vcs=1, max_buffer=4356,
                                        max_raw=65536, session_key=0, capabilities=0, system_time=0, timezone=0,
                                        challenge=b"\x00" * 8))


def test_truncated_reply_is_a_protocol_error():
    s, req = _smb2_tree_session()
    reply = smb2_pipe.tree_connect_response(req, 5)
    with pytest.raises(ProtocolError):
        s.feed(reply[:70])
    s, req = _smb2_tree_session()
    with pytest.raises(ProtocolError):
        s.feed(reply[:20])


def test_oversize_reply_is_a_protocol_error():
    s = Smb2Session(max_message=1000)
    s.negotiated = object()
    step = s.tree_connect("\\\\h\\IPC$", 7)
    reply = smb2_pipe.tree_connect_response(smb2_pipe.parse_request_header(step.send), 5)
    with pytest.raises(ProtocolError, match="cap"):
        s.feed(reply + b"\x00" * 1000)


def test_unsolicited_reply_and_a_second_request_are_protocol_errors():
    s = Smb2Session()
    with pytest.raises(ProtocolError, match="nobody asked"):
        s.feed(smb2.Header(flags=smb2.FLAG_RESPONSE).pack())
    s.negotiate()
    with pytest.raises(ProtocolError, match="outstanding"):
        s.ntlm_challenge()


def test_interim_replies_are_skipped_but_bounded():
    s, req = _smb2_tree_session()
    interim = smb2_pipe.interim_response(req)
    assert s.feed(interim) is READ_MORE
    tree = s.feed(smb2_pipe.tree_connect_response(req, 5)).event
    assert tree.status == 0 and tree.tree_id == 5
    s, req = _smb2_tree_session()
    for _ in range(MAX_SKIPPED):
        assert s.feed(interim) is READ_MORE
    with pytest.raises(ProtocolError, match="interim"):
        s.feed(interim)


def test_smb1_reply_that_is_not_smb1_is_a_protocol_error():
    wire, uid, tid = smb1_on_ipc()
    wire.session.transaction(smb1.TRANSACTION, uid, tid, (0x23, 0))
    with pytest.raises(ProtocolError, match="not SMB1"):
        wire.session.feed(b"\xfeSMB" + b"\x00" * 60)


def test_pipe_transaction_in_parts_is_joined_by_displacement():
    s = Smb1Session()
    s.negotiated = object()
    step = s.pipe_transact(0x4000, b"pdu", 1, 2, 4280)
    req = smb1_pipe_header(step.send)
    first = _part(req, b"abcd", total=8, displacement=0)
    second = _part(req, b"efgh", total=8, displacement=4)
    assert s.feed(first) is READ_MORE
    assert s.feed(second).event == (0, b"abcdefgh")
    step = s.pipe_transact(0x4000, b"pdu", 1, 2, 4280)
    req = smb1_pipe_header(step.send)
    s.feed(_part(req, b"abcd", total=8, displacement=0))
    with pytest.raises(ProtocolError, match="part at 2, expected 4"):
        s.feed(_part(req, b"ef", total=8, displacement=2))


def smb1_pipe_header(msg: bytes) -> smb1.Header:
    return smb1.Header.unpack_from(msg)


def _part(req: smb1.Header, data: bytes, total: int, displacement: int) -> bytes:
    from smbsentry.protocol import smb1_trans

    return smb1_trans.transaction_response(req, data=data, total_data=total, data_displacement=displacement)


def _fresh(which: str):
    """A session waiting for a reply, and a header that passes its id checks."""
    if which == "smb1":
        s = Smb1Session()
        hdr = smb1.Header.unpack_from(s.negotiate().send)
        return s, smb1.Header(command=hdr.command, mid=hdr.mid, flags=0x98).pack()
    if which == "smb2":
        s = Smb2Session()
        s.negotiate()
        return s, smb2.Header(flags=smb2.FLAG_RESPONSE).pack()
    if which == "smb2-tree":
        s, req = _smb2_tree_session()
        return s, smb2.Header(command=req.command, message_id=req.message_id, flags=smb2.FLAG_RESPONSE).pack()
    s = Smb1Session()
    s.negotiated = object()
    hdr = smb1.Header.unpack_from(s.pipe_transact(1, b"x", 1, 2, 100).send)
    return s, smb1.Header(command=hdr.command, mid=hdr.mid, flags=0x98).pack()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["smb1", "smb2", "smb2-tree", "smb1-ipc"]), st.booleans(), st.binary(max_size=300))
def test_any_bytes_give_an_event_or_one_protocol_error(which, with_header, tail):
    s, header = _fresh(which)
    try:
        got = s.feed((header if with_header else b"") + tail)
    except ProtocolError:
        assert not s.waiting  # nothing is left outstanding after an error
        return
    assert isinstance(got, Step)


def test_mid_wraps_at_16_bits():
    s = Smb1Session()
    s.mid = 0xFFFF
    assert s.next_mid() == 0
    assert struct.unpack_from("<H", s.negotiate().send, 30)[0] == 1
