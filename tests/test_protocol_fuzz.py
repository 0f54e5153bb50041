"""Property tests for the sans-I/O protocol layer.

1. Robustness: every parser, fed random bytes or REAL corpus replies that
   were bit-flipped, truncated at every length, had bytes inserted/deleted or
   had any 1/2/4-byte window overwritten with huge values, raises nothing but
   ProtocolError.  Any other exception (IndexError, struct.error,
   UnicodeDecodeError, OverflowError, MemoryError...) is a failure.
2. FrameReader never holds more than max_frame + 4 bytes of a frame it has
   accepted, and refuses an oversized announcement as soon as the 4-byte
   header is in.
3. Round trips: what the builders produce reads back (with struct, or with
   the project's own parsers) as what was asked for.

Corpus-seeded tests skip when the corpus is absent; the others always run.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Callable
from functools import lru_cache

import pytest
from corpus import SMB1, SMB2, client_requests, corpus_dir, server_replies, smb_messages
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smbsentry.protocol import (
    ProtocolError,
    fields,
    nbns,
    netbios,
    ntlm,
    smb1,
    smb1_trans,
    smb1_tree,
    smb2,
    smb2_pipe,
    spnego,
)

# SMBSENTRY_FUZZ_EXAMPLES=20000 for a deeper (slower) run; the default keeps
# the whole file well under a minute.
FUZZ_EXAMPLES = int(os.environ.get("SMBSENTRY_FUZZ_EXAMPLES", "500"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROUND_TRIP = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

needs_corpus = pytest.mark.skipif(
    corpus_dir() is None,
    reason="capture corpus not found (../shared/corpus beside the repository, or SMBSENTRY_CORPUS)",
)


def only_protocol_error(fn: Callable[[bytes], object], data: bytes) -> None:
    """Run fn(data); a ProtocolError is an accepted answer, anything else propagates."""
    try:
        fn(data)
    except ProtocolError:
        pass


# ---------------------------------------------------------------------------
# parsers under test, each as bytes -> anything
# ---------------------------------------------------------------------------


def _smb1_session_setup_chain(b: bytes) -> None:
    r = smb1.parse_session_setup_response(b)
    if r.security_blob:
        t = spnego.parse(r.security_blob)
        if t.mech_token:
            ntlm.parse_challenge(t.mech_token)


def _smb1_negotiate_chain(b: bytes) -> None:
    r = smb1.parse_negotiate_response(b)
    if r.security_blob:
        spnego.parse(r.security_blob)


def _smb2_negotiate_chain(b: bytes) -> None:
    r = smb2.parse_negotiate_response(b)
    if r.security_blob:
        spnego.parse(r.security_blob)


def _smb2_session_setup_chain(b: bytes) -> None:
    r = smb2.parse_session_setup_response(b)
    if r.security_blob:
        t = spnego.parse(r.security_blob)
        if t.mech_token:
            c = ntlm.parse_challenge(t.mech_token)
            c.timestamp  # noqa: B018 - the property reads the AV pair
            for k in c.av_pairs:
                c.av_text(k)


def _contexts(b: bytes) -> None:
    """First 2 bytes: the context count; the rest: the context list at offset 0."""
    if len(b) < 2:
        return
    smb2.parse_contexts(b[2:], 0, int.from_bytes(b[:2], "little"))


def _challenge(b: bytes) -> None:
    c = ntlm.parse_challenge(b)
    c.timestamp  # noqa: B018
    for k in c.av_pairs:
        c.av_text(k)


def _session_response(b: bytes) -> None:
    if b:
        netbios.parse_session_response(b[0], b[1:])


def _decode_name(b: bytes) -> None:
    netbios.decode_name(b, 0)


def _nbns_query(b: bytes) -> None:
    nbns.parse_query(b).name()


def _nbns_status(b: bytes) -> None:
    nbns.parse_status(b, None)


def _frame_reader(b: bytes) -> None:
    """Feed in two pieces to a reader with a small cap; check the buffer bound."""
    reader = netbios.FrameReader(max_frame=256)
    half = len(b) // 2
    for part in (b[:half], b[half:]):
        for msg_type, payload in reader.feed(part):
            assert len(payload) <= 256
            assert msg_type != netbios.KEEPALIVE
        assert reader.pending < 256 + 4


def _utf16z(b: bytes) -> None:
    _text, end = fields.utf16z(b, 0, 64, "fuzz")
    assert 0 <= end <= len(b)


def _asciiz(b: bytes) -> None:
    _text, end = fields.asciiz(b, 0, 64, "fuzz")
    assert 0 <= end <= len(b)


# Server-side (lab) parsers of client requests, being added to smb1/smb2/ntlm
# by the lab work: fuzzed when present, by command.
SMB1_REQUEST_PARSERS = {
    cmd: getattr(smb1, name)
    for cmd, name in (
        (smb1.NEGOTIATE, "parse_negotiate_request"),
        (smb1.SESSION_SETUP_ANDX, "parse_session_setup_request"),
        (smb1.TREE_CONNECT_ANDX, "parse_tree_connect_request"),
        (smb1.TRANSACTION, "parse_transaction_request"),
        (smb1.TRANSACTION2, "parse_transaction_request"),
    )
    if hasattr(smb1, name)
}
SMB2_REQUEST_PARSERS = {
    cmd: getattr(smb2, name)
    for cmd, name in (
        (smb2.NEGOTIATE, "parse_negotiate_request"),
        (smb2.SESSION_SETUP, "parse_session_setup_request"),
    )
    if hasattr(smb2, name)
}
# TREE_CONNECT is declared once, with the tree and pipe messages (smb2_pipe)
SMB2_REQUEST_PARSERS[smb2.TREE_CONNECT] = smb2_pipe.parse_tree_connect_request
# SMB1's TREE_CONNECT_ANDX is declared once, both sides, in smb1_tree
SMB1_REQUEST_PARSERS[smb1.TREE_CONNECT_ANDX] = smb1_tree.parse_tree_connect_request
# and TRANSACTION / TRANSACTION2 in smb1_trans (the name is read when asked: ask)
SMB1_REQUEST_PARSERS[smb1.TRANSACTION] = lambda b: smb1_trans.parse_transaction_request(b).name
SMB1_REQUEST_PARSERS[smb1.TRANSACTION2] = smb1_trans.parse_transaction_request


def _smb1_request(b: bytes) -> None:
    m = smb1.parse_message(b)
    parser = SMB1_REQUEST_PARSERS.get(m.header.command)
    if parser:
        parser(b)


def _smb2_request(b: bytes) -> None:
    hdr = smb2.parse_header(b)
    parser = SMB2_REQUEST_PARSERS.get(hdr.command)
    if parser:
        parser(b)


PARSERS: dict[str, Callable[[bytes], object]] = {
    "netbios.FrameReader": _frame_reader,
    "netbios.decode_name": _decode_name,
    "netbios.parse_session_response": _session_response,
    "nbns.parse_query": _nbns_query,
    "nbns.parse_status": _nbns_status,
    "smb1.parse_message": smb1.parse_message,
    "smb1.parse_negotiate_response": _smb1_negotiate_chain,
    "smb1.parse_session_setup_response": _smb1_session_setup_chain,
    "smb1_tree.parse_tree_connect_response": smb1_tree.parse_tree_connect_response,
    "smb1.parse_transaction_response": smb1.parse_transaction_response,
    "smb1_trans.parse_transaction_response_part": smb1_trans.parse_transaction_response_part,
    "smb2.parse_header": smb2.parse_header,
    "smb2.parse_negotiate_response": _smb2_negotiate_chain,
    "smb2.parse_contexts": _contexts,
    "smb2.parse_session_setup_response": _smb2_session_setup_chain,
    "ntlm.parse_challenge": _challenge,
    "ntlm.parse_av_pairs": ntlm.parse_av_pairs,
    "spnego.parse": spnego.parse,
    "fields.utf16z": _utf16z,
    "fields.asciiz": _asciiz,
}
if SMB1_REQUEST_PARSERS:
    PARSERS["smb1.parse_*_request"] = _smb1_request
if SMB2_REQUEST_PARSERS:
    PARSERS["smb2.parse_*_request"] = _smb2_request
if hasattr(ntlm, "parse_authenticate"):
    PARSERS["ntlm.parse_authenticate"] = ntlm.parse_authenticate

# Which seed families each parser is fed (see _seeds()).
SEED_KINDS: dict[str, tuple[str, ...]] = {
    "netbios.FrameReader": ("netbios_stream",),
    "netbios.decode_name": ("netbios_name",),
    "netbios.parse_session_response": ("netbios_session_response",),
    "nbns.parse_query": ("nbns_query",),
    "nbns.parse_status": ("nbns_status",),
    "smb1.parse_message": (
        "smb1_negotiate",
        "smb1_session_setup",
        "smb1_tree_connect",
        "smb1_transaction",
        "smb1_other",
    ),
    "smb1.parse_negotiate_response": ("smb1_negotiate",),
    "smb1.parse_session_setup_response": ("smb1_session_setup",),
    "smb1_tree.parse_tree_connect_response": ("smb1_tree_connect",),
    "smb1.parse_transaction_response": ("smb1_transaction",),
    "smb1_trans.parse_transaction_response_part": ("smb1_transaction",),
    "smb2.parse_header": ("smb2_negotiate", "smb2_session_setup"),
    "smb2.parse_negotiate_response": ("smb2_negotiate",),
    "smb2.parse_contexts": ("smb2_contexts",),
    "smb2.parse_session_setup_response": ("smb2_session_setup",),
    "ntlm.parse_challenge": ("ntlm_challenge",),
    "ntlm.parse_av_pairs": ("av_pairs",),
    "spnego.parse": ("spnego",),
    "fields.utf16z": ("strings",),
    "fields.asciiz": ("strings",),
    "smb1.parse_*_request": ("smb1_request",),
    "smb2.parse_*_request": ("smb2_request",),
    "ntlm.parse_authenticate": ("ntlm_authenticate",),
}

# A plausible start for random tails, so random bytes reach past the magic checks.
PREFIXES: dict[str, list[bytes]] = {
    "netbios.FrameReader": [b"\x00\x00\x00", b"\x82\x00\x00\x00", b"\x85\x00\x00\x00"],
    "netbios.decode_name": [b"\x20", b"\x20" + b"A" * 32],
    "netbios.parse_session_response": [b"\x82", b"\x83", b"\x84"],
    "nbns.parse_query": [nbns.Header.build(qdcount=1) + b"\x20"],
    "nbns.parse_status": [
        nbns.Header.build(flags=0x8400, ancount=1) + b"\x20",
        nbns.Header.build(flags=0x8400, ancount=1) + b"\xc0\x0c",
    ],
    "smb1.parse_message": [smb1.Header(flags=0x98).pack()],
    "smb1.parse_negotiate_response": [
        smb1.Header(command=smb1.NEGOTIATE, flags=0x98).pack() + b"\x11",
        smb1.Header(command=smb1.NEGOTIATE, flags=0x98, flags2=0x4001).pack() + b"\x11",
    ],
    "smb1.parse_session_setup_response": [
        smb1.Header(
            command=smb1.SESSION_SETUP_ANDX, flags=0x98, status=0xC0000016
        ).pack()
        + b"\x04",
        smb1.Header(command=smb1.SESSION_SETUP_ANDX, flags=0x98).pack() + b"\x03",
    ],
    "smb1_tree.parse_tree_connect_response": [
        smb1.Header(command=smb1.TREE_CONNECT_ANDX, flags=0x98).pack()
    ],
    "smb1.parse_transaction_response": [
        smb1.Header(command=smb1.TRANSACTION, flags=0x98).pack() + b"\x0a",
        smb1.Header(command=smb1.TRANSACTION2, flags=0x98).pack() + b"\x0a",
    ],
    "smb1_trans.parse_transaction_response_part": [
        smb1.Header(command=smb1.TRANSACTION, flags=0x98).pack() + b"\x0a",
    ],
    "smb2.parse_header": [smb2.MAGIC],
    "smb2.parse_negotiate_response": [
        smb2.Header(command=smb2.NEGOTIATE, flags=1).pack() + b"\x41\x00"
    ],
    "smb2.parse_contexts": [b"\x02\x00", b"\x20\x00"],
    "smb2.parse_session_setup_response": [
        smb2.Header(command=smb2.SESSION_SETUP, flags=1, status=0xC0000016).pack()
        + b"\x09\x00",
    ],
    "ntlm.parse_challenge": [ntlm.SIGNATURE + b"\x02\x00\x00\x00"],
    "ntlm.parse_av_pairs": [b"\x01\x00", b"\x07\x00\x08\x00"],
    "spnego.parse": [
        b"\x60",
        b"\xa1",
        b"\x60\x82",
        spnego.neg_token_init(b"")[:12],
        b"\xa1\x81",
    ],
    "fields.utf16z": [b"A\x00"],
    "fields.asciiz": [b"A"],
    "smb1.parse_*_request": [
        smb1.Header(command=c).pack() for c in SMB1_REQUEST_PARSERS
    ],
    "smb2.parse_*_request": [
        smb2.Header(command=c).pack() for c in SMB2_REQUEST_PARSERS
    ],
    "ntlm.parse_authenticate": [ntlm.SIGNATURE + b"\x03\x00\x00\x00"],
}

MAX_SEED = 1200  # bytes: keeps the exhaustive passes fast
SEEDS_PER_KIND = 14


def _dedupe(msgs: list[bytes], limit: int = SEEDS_PER_KIND) -> list[bytes]:
    out: list[bytes] = []
    shapes: set[tuple] = set()
    for d in msgs:
        if len(d) > MAX_SEED:
            continue
        # one seed per (first 16 bytes shape, length): variety, not volume
        shape = (d[:5], len(d))
        if shape in shapes:
            continue
        shapes.add(shape)
        out.append(bytes(d))
        if len(out) >= limit:
            break
    return out


SMB1_CAPTURES = (
    "arkime-smbclient-samba363.pcap",
    "arkime-smb-on-windows10.pcap",
    "doublepulsar-backdoor-connect-win7.pcap",
    "eternalblue-success-unpatched-win7.pcap",
    "eternalromance-success-2008r2.pcap",
    "zeek-cifs-negotiate-lanman.pcap",
    "zeek-smb1-transaction-request.pcap",
    "zeek-smb1-transaction2-request.pcap",
    "wannacry.pcap",
)
SMB2_CAPTURES = (
    "claroty-win10-negotiate-compression.pcap",
    "claroty-win7-negotiate-smb21.pcap",
    "claroty-smbghost-dos.pcapng",
    "zeek-smbghost-scan-ws2019.pcap",
    "zeek-smb3-negotiate-context.pcap",
    "zeek-smb3-ws2016.pcap",
    "zeek-smb311.pcap",
    "arkime-smb-on-windows10.pcap",
    "doublepulsar-backdoor-connect-win7.pcap",
)


@lru_cache(maxsize=1)
def _seeds() -> dict[str, list[bytes]]:
    """Real messages from the corpus, grouped by the parser family they feed."""
    kinds: dict[str, list[bytes]] = {}

    def smb1_replies(command: int) -> list[bytes]:
        return [
            m.data
            for name in SMB1_CAPTURES
            for m in server_replies(name, SMB1, command)
        ]

    kinds["smb1_negotiate"] = _dedupe(smb1_replies(smb1.NEGOTIATE))
    kinds["smb1_session_setup"] = _dedupe(smb1_replies(smb1.SESSION_SETUP_ANDX))
    kinds["smb1_tree_connect"] = _dedupe(smb1_replies(smb1.TREE_CONNECT_ANDX))
    kinds["smb1_transaction"] = _dedupe(
        smb1_replies(smb1.TRANSACTION) + smb1_replies(smb1.TRANSACTION2), 20
    )
    kinds["smb1_other"] = _dedupe(
        [
            m.data
            for name in SMB1_CAPTURES[:5]
            for m in server_replies(name, SMB1)
            if m.data[4]
            in (smb1.ECHO, smb1.NT_TRANSACT, smb1.LOGOFF_ANDX, 0x71, smb1.WRITE_ANDX)
        ]
    )

    neg2 = [
        m.data
        for name in SMB2_CAPTURES
        for m in server_replies(name, SMB2, smb2.NEGOTIATE)
    ]
    ss2 = [
        m.data
        for name in SMB2_CAPTURES
        for m in server_replies(name, SMB2, smb2.SESSION_SETUP)
    ]
    kinds["smb2_negotiate"] = _dedupe(neg2)
    kinds["smb2_session_setup"] = _dedupe(ss2)

    contexts = []
    for d in neg2 + [
        m.data
        for name in SMB2_CAPTURES
        for m in client_requests(name, SMB2, smb2.NEGOTIATE)
    ]:
        if struct.unpack_from("<H", d, 64 + 4)[0] == 0x0311 or d[64:66] == b"\x24\x00":
            if d[64:66] == b"\x41\x00":  # response
                count, offset = (
                    struct.unpack_from("<H", d, 70)[0],
                    struct.unpack_from("<I", d, 124)[0],
                )
            else:  # request
                offset, count = struct.unpack_from("<IH", d, 64 + 28)
            if count and offset < len(d):
                contexts.append(struct.pack("<H", count) + d[offset:])
    kinds["smb2_contexts"] = _dedupe(contexts)

    blobs: list[bytes] = []
    for d in kinds["smb2_negotiate"]:
        blobs.append(smb2.parse_negotiate_response(d).security_blob)
    for d in ss2:
        blobs.append(smb2.parse_session_setup_response(d).security_blob)
    for d in smb1_replies(smb1.SESSION_SETUP_ANDX) + smb1_replies(smb1.NEGOTIATE):
        if d[4] == smb1.SESSION_SETUP_ANDX:
            blobs.append(smb1.parse_session_setup_response(d).security_blob)
        else:
            blobs.append(smb1.parse_negotiate_response(d).security_blob)
    for name in (
        SMB2_CAPTURES
    ):  # the client side: NegTokenInit(NEGOTIATE), NegTokenResp(AUTHENTICATE)
        for m in client_requests(name, SMB2, smb2.SESSION_SETUP):
            off, length = struct.unpack_from("<HH", m.data, 64 + 12)
            blobs.append(m.data[off : off + length])
    blobs = [b for b in blobs if b]
    kinds["spnego"] = _dedupe(
        [b for b in blobs if not b.startswith(ntlm.SIGNATURE)], 20
    )
    challenges = []
    for b in blobs:
        token = spnego.parse(b)
        if token.mech_token and token.mech_token[8:12] == b"\x02\x00\x00\x00":
            challenges.append(token.mech_token)
    kinds["ntlm_challenge"] = _dedupe(challenges)
    kinds["av_pairs"] = _dedupe(
        [ntlm.parse_challenge(c).target_info_raw for c in kinds["ntlm_challenge"]]
    )

    names = []
    for d in kinds["smb1_session_setup"] + kinds["smb1_negotiate"]:
        names.append(d[32:])
    kinds["strings"] = _dedupe(
        names + [ntlm.parse_challenge(c).raw[56:] for c in kinds["ntlm_challenge"]]
    )

    # client requests for the request parsers; a request the parser rejects
    # as it stands (zeek-smb1-transaction-request frame 14 is a crafted
    # Transaction with WordCount 14 but SetupCount 2) is no clean seed
    def clean(fn, msgs):
        out = []
        for d in msgs:
            try:
                fn(d)
            except ProtocolError:
                continue
            out.append(d)
        return out

    req1 = [
        m.data
        for name in SMB1_CAPTURES
        for m in client_requests(name, SMB1)
        if m.data[4] in SMB1_REQUEST_PARSERS
    ]
    req2 = [
        m.data
        for name in SMB2_CAPTURES
        for m in client_requests(name, SMB2)
        if struct.unpack_from("<H", m.data, 12)[0] in SMB2_REQUEST_PARSERS
    ]
    kinds["smb1_request"] = _dedupe(clean(_smb1_request, req1), 20)
    kinds["smb2_request"] = _dedupe(clean(_smb2_request, req2), 20)
    auths = []
    for b in blobs:
        token = spnego.parse(b)
        if token.mech_token and token.mech_token[8:12] == b"\x03\x00\x00\x00":
            auths.append(token.mech_token)
    kinds["ntlm_authenticate"] = _dedupe(
        clean(getattr(ntlm, "parse_authenticate", lambda b: None), auths)
    )

    kinds["netbios_name"] = [
        netbios.encode_name("*SMBSERVER"),
        netbios.encode_name("IE11WIN7", 0x20),
        netbios.encode_name("WORKGROUP", 0x1D) + netbios.encode_name("SMBSENTRY"),
        netbios.session_request()[4:],
    ]
    # the name service, as the lab's replies and the scanner's query are built
    status_q = nbns.parse_query(nbns.status_query(7))
    name_q = nbns.parse_query(nbns.Header.build(txid=9, flags=0x0110, qdcount=1) + netbios.encode_name("IE11WIN7", 0)
                              + nbns.Question.build())
    kinds["nbns_query"] = [nbns.status_query(7), nbns.status_query(0xFFFF), name_q.header.pack() + name_q.qname
                           + nbns.Question.build()]
    kinds["nbns_status"] = [
        nbns.status_reply(status_q, [["IE11WIN7", 0, False], ["IE11WIN7", 0x20, False], ["WORKGROUP", 0, True]],
                          bytes(6)),
        nbns.status_reply(status_q, [["DC1", 0x1C, True]], b"\x02\x00\x7f\x00\x00\x01"),
        nbns.status_reply(status_q, [], b""),
    ]
    kinds["netbios_session_response"] = [
        b"\x82",
        b"\x83\x80",
        b"\x83\x8f",
        b"\x84\xc0\xa8\x01\x01\x00\x8b",
    ]
    streams = []
    for name in (
        "arkime-smbclient-samba363.pcap",
        "zeek-smb311.pcap",
        "claroty-win10-negotiate-compression.pcap",
    ):
        msgs = smb_messages(name, "server")[:4]
        streams.append(
            b"".join(netbios.frame(m.data) for m in msgs if len(m.data) <= 200)[
                :MAX_SEED
            ]
        )
    streams.append(
        netbios.frame(b"\x82", netbios.POSITIVE_RESPONSE)
        + b"\x85\x00\x00\x00"
        + netbios.frame(b"x" * 40)
    )
    kinds["netbios_stream"] = [s for s in streams if s]
    return kinds


@pytest.fixture(scope="module")
def seeds() -> dict[str, list[bytes]]:
    if corpus_dir() is None:
        pytest.skip("capture corpus not found")
    return _seeds()


def seeds_for(seeds: dict[str, list[bytes]], parser: str) -> list[bytes]:
    out = [s for kind in SEED_KINDS[parser] for s in seeds[kind]]
    assert out, f"no corpus seeds for {parser}"
    return out


HUGE = [
    b"\xff",
    b"\x80",
    b"\x00",
    b"\xff\xff",
    b"\x00\x80",
    b"\xff\x7f",
    b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\xfe\xff\xff\xff",
]


def mutate(data: st.DataObject, seed: bytes) -> bytes:
    """Apply 1-6 random edits: bit flips, insertions, deletions, huge-value
    overwrites (length fields), truncation, duplication of a slice."""
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        op = data.draw(
            st.sampled_from(
                ["flip", "insert", "delete", "huge", "truncate", "dup", "byte"]
            ),
            label="op",
        )
        n = len(buf)
        pos = data.draw(st.integers(0, max(0, n)), label="pos")
        if op == "flip" and n:
            pos = min(pos, n - 1)
            buf[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif op == "byte" and n:
            buf[min(pos, n - 1)] = data.draw(st.integers(0, 255), label="value")
        elif op == "insert":
            buf[pos:pos] = data.draw(
                st.binary(min_size=1, max_size=16), label="inserted"
            )
        elif op == "delete" and n:
            k = data.draw(st.integers(1, 16), label="deleted")
            del buf[pos : pos + k]
        elif op == "huge":
            value = data.draw(st.sampled_from(HUGE), label="huge")
            buf[pos : pos + len(value)] = value
        elif op == "truncate":
            del buf[pos:]
        elif op == "dup" and n:
            k = data.draw(st.integers(1, 32), label="dup")
            buf[pos:pos] = buf[pos : pos + k]
    return bytes(buf)


# ---------------------------------------------------------------------------
# (a) random bytes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("parser", list(PARSERS))
@FUZZ
@given(data=st.data())
def test_random_bytes_raise_only_protocol_error(parser, data):
    fn = PARSERS[parser]
    prefix = data.draw(st.sampled_from([b""] + PREFIXES[parser]), label="prefix")
    tail = data.draw(st.binary(max_size=600), label="tail")
    only_protocol_error(fn, prefix + tail)


# ---------------------------------------------------------------------------
# (b) mutated real replies
# ---------------------------------------------------------------------------


@needs_corpus
@pytest.mark.parametrize("parser", list(PARSERS))
@FUZZ
@given(data=st.data())
def test_mutated_corpus_replies_raise_only_protocol_error(seeds, parser, data):
    seed = data.draw(st.sampled_from(seeds_for(seeds, parser)), label="seed")
    only_protocol_error(PARSERS[parser], mutate(data, seed))


@needs_corpus
@pytest.mark.parametrize("parser", list(PARSERS))
def test_corpus_seeds_truncated_at_every_length(seeds, parser):
    fn = PARSERS[parser]
    for seed in seeds_for(seeds, parser):
        for n in range(len(seed) + 1):
            only_protocol_error(fn, seed[:n])


@needs_corpus
@pytest.mark.parametrize("parser", list(PARSERS))
def test_corpus_seeds_with_every_window_overwritten_by_huge_values(seeds, parser):
    """Every 1/2/4-byte window of every seed set to 0xFF.., 0x80.., 0x7F.. in
    turn: whichever field is a length, offset or count gets a hostile value."""
    fn = PARSERS[parser]
    values = [
        b"\xff",
        b"\xff\xff",
        b"\x00\x80",
        b"\xff\xff\xff\xff",
        b"\xff\xff\xff\x7f",
    ]
    for seed in seeds_for(seeds, parser):
        for pos in range(len(seed)):
            for value in values:
                if pos + len(value) > len(seed):
                    continue
                only_protocol_error(fn, seed[:pos] + value + seed[pos + len(value) :])


@needs_corpus
def test_real_seeds_parse_cleanly(seeds):
    """The unmutated seeds are real replies: no parser may reject them."""
    for parser, fn in PARSERS.items():
        if parser in ("fields.utf16z", "fields.asciiz"):
            continue
        for seed in seeds_for(seeds, parser):
            fn(seed)


# ---------------------------------------------------------------------------
# fields helpers with arbitrary offsets, lengths and caps
# ---------------------------------------------------------------------------

INTS = st.one_of(
    st.integers(-5, 70),
    st.sampled_from([0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 40, -(1 << 31)]),
)


@FUZZ
@given(
    buf=st.binary(max_size=64), offset=INTS, length=INTS, cap=st.one_of(st.none(), INTS)
)
def test_take(buf, offset, length, cap):
    try:
        out = fields.take(buf, offset, length, "fuzz", cap=cap)
    except ProtocolError:
        return
    assert out == buf[offset : offset + length] and len(out) == length
    assert 0 <= offset and offset + length <= len(buf)
    assert cap is None or length <= cap


@FUZZ
@given(buf=st.binary(max_size=64), offset=INTS, cap=st.integers(0, 80))
def test_utf16z(buf, offset, cap):
    try:
        text, end = fields.utf16z(buf, offset, cap, "fuzz")
    except ProtocolError:
        return
    assert 0 <= offset <= end <= len(buf)
    assert len(text.encode("utf-16-le", "surrogatepass")) <= cap + 2


@FUZZ
@given(buf=st.binary(max_size=64), offset=INTS, cap=st.integers(0, 80))
def test_asciiz(buf, offset, cap):
    try:
        text, end = fields.asciiz(buf, offset, cap, "fuzz")
    except ProtocolError:
        return
    assert 0 <= offset <= end <= len(buf)
    assert len(text) <= cap
    assert text.encode("latin-1") == buf[offset : offset + len(text)]


@FUZZ
@given(data=st.binary(max_size=80), offset=st.integers(0, 90))
def test_decode_name_any_offset(data, offset):
    try:
        name, suffix, end = netbios.decode_name(data, offset)
    except ProtocolError:
        return
    assert end == offset + 34 <= len(data)
    assert 0 <= suffix <= 255 and len(name) <= 15


@FUZZ
@given(
    data=st.binary(max_size=400), offset=st.integers(0, 420), count=st.integers(0, 40)
)
def test_parse_contexts_any_offset_and_count(data, offset, count):
    only_protocol_error(lambda b: smb2.parse_contexts(b, offset, count), data)


@FUZZ
@given(msg_type=st.integers(0, 255), body=st.binary(max_size=8))
def test_parse_session_response_any_type(msg_type, body):
    try:
        r = netbios.parse_session_response(msg_type, body)
    except ProtocolError:
        assert msg_type not in (0x82, 0x83, 0x84)
        return
    assert r.positive == (msg_type == 0x82)


# ---------------------------------------------------------------------------
# FrameReader: the buffer bound
# ---------------------------------------------------------------------------

FRAME_TYPES = (
    netbios.SESSION_MESSAGE,
    netbios.POSITIVE_RESPONSE,
    netbios.NEGATIVE_RESPONSE,
    netbios.RETARGET_RESPONSE,
    netbios.KEEPALIVE,
)


def chunked(data: st.DataObject, stream: bytes) -> list[bytes]:
    cuts = sorted(
        data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")
    )
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


NB_HEADERS = st.builds(
    lambda t, n: bytes([t]) + n.to_bytes(3, "big"),
    st.sampled_from(FRAME_TYPES + (netbios.SESSION_REQUEST, 0x42)),
    st.one_of(st.integers(0, 400), st.integers(0, 0xFFFFFF)),
)


@FUZZ
@given(data=st.data(), max_frame=st.integers(0, 300))
def test_frame_reader_random_stream_is_bounded(data, max_frame):
    """Random bytes mixed with random (mostly well-typed) session headers."""
    parts = data.draw(
        st.lists(st.one_of(NB_HEADERS, st.binary(max_size=120)), max_size=12),
        label="parts",
    )
    stream = b"".join(parts)
    reader = netbios.FrameReader(max_frame=max_frame)
    for piece in chunked(data, stream):
        try:
            out = reader.feed(piece)
        except ProtocolError:
            return
        for _, payload in out:
            assert len(payload) <= max_frame
        assert reader.pending < max_frame + 4


@needs_corpus
@FUZZ
@given(data=st.data(), max_frame=st.integers(16, 400))
def test_frame_reader_mutated_real_stream_is_bounded(seeds, data, max_frame):
    stream = mutate(
        data, data.draw(st.sampled_from(seeds["netbios_stream"]), label="stream")
    )
    reader = netbios.FrameReader(max_frame=max_frame)
    for piece in chunked(data, stream):
        try:
            reader.feed(piece)
        except ProtocolError:
            return
        assert reader.pending < max_frame + 4


@FUZZ
@given(
    max_frame=st.integers(0, 1 << 20),
    excess=st.integers(1, 1 << 20),
    msg_type=st.sampled_from(FRAME_TYPES),
    before=st.lists(st.binary(max_size=20), max_size=3),
)
def test_frame_reader_refuses_oversized_header_at_once(
    max_frame, excess, msg_type, before
):
    length = min(max_frame + excess, 0xFFFFFF)
    assume(length > max_frame)
    reader = netbios.FrameReader(max_frame=max_frame)
    good = b"".join(netbios.frame(b) for b in before if len(b) <= max_frame)
    reader.feed(good)
    header = bytes([msg_type]) + length.to_bytes(3, "big")
    for i in range(3):  # the first 3 header bytes: nothing to judge yet
        assert reader.feed(header[i : i + 1]) == []
        assert reader.pending == i + 1
    with pytest.raises(ProtocolError):
        reader.feed(
            header[3:4]
        )  # the 4th byte completes the header: refused, no payload needed


@FUZZ
@given(
    msg_type=st.integers(0, 255).filter(lambda t: t not in FRAME_TYPES),
    length=st.integers(0, 16),
)
def test_frame_reader_refuses_unknown_type(msg_type, length):
    with pytest.raises(ProtocolError):
        netbios.FrameReader().feed(
            bytes([msg_type]) + length.to_bytes(3, "big") + bytes(length)
        )


def test_frame_reader_max_frame_boundary():
    reader = netbios.FrameReader(max_frame=100)
    assert reader.feed(netbios.frame(bytes(100))) == [(0, bytes(100))]
    with pytest.raises(ProtocolError):
        netbios.FrameReader(max_frame=100).feed(b"\x00\x00\x00\x65")
    with pytest.raises(ProtocolError):
        netbios.FrameReader().feed(
            b"\x00\xff\xff\xff"
        )  # 16 MiB announced: over the 1 MiB default


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------


@ROUND_TRIP
@given(
    data=st.data(),
    frames=st.lists(
        st.tuples(st.sampled_from(FRAME_TYPES), st.binary(max_size=300)),
        max_size=8,
    ),
    max_frame=st.integers(300, 1 << 20),
)
def test_netbios_frame_reader_round_trip(data, frames, max_frame):
    stream = b"".join(netbios.frame(payload, t) for t, payload in frames)
    reader = netbios.FrameReader(max_frame=max_frame)
    got = []
    for piece in chunked(data, stream):
        got += reader.feed(piece)
        assert reader.pending < max_frame + 4
    assert got == [(t, p) for t, p in frames if t != netbios.KEEPALIVE]
    assert reader.pending == 0


def test_netbios_frame_refuses_over_24_bits():
    with pytest.raises(ProtocolError):
        netbios.frame(bytes(0x1000000))
    assert netbios.frame(b"abc")[:4] == b"\x00\x00\x00\x03"


NB_NAMES = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20
)


@ROUND_TRIP
@given(
    name=NB_NAMES,
    suffix=st.integers(0, 255),
    lead=st.binary(max_size=10),
    trail=st.binary(max_size=10),
)
def test_netbios_name_round_trip(name, suffix, lead, trail):
    enc = netbios.encode_name(name, suffix)
    assert len(enc) == 34 and enc[0] == 32 and enc[-1] == 0
    assert all(0x41 <= b <= 0x50 for b in enc[1:33])
    got = netbios.decode_name(lead + enc + trail, len(lead))
    assert got == (name.upper()[:15].rstrip(" "), suffix, len(lead) + 34)


@ROUND_TRIP
@given(called=NB_NAMES, calling=NB_NAMES)
def test_session_request_round_trip(called, calling):
    # (FrameReader is the client's receive side: it rightly refuses a 0x81 REQUEST)
    msg = netbios.session_request(called, calling)
    hdr = netbios.SessionHeader.unpack_from(msg)
    body = msg[4:]
    assert hdr.type == netbios.SESSION_REQUEST and hdr.length == len(body) == 68
    first, _, end = netbios.decode_name(body)
    second, _, end2 = netbios.decode_name(body, end)
    assert (first, second, end2) == (
        called.upper()[:15].rstrip(" "),
        calling.upper()[:15].rstrip(" "),
        68,
    )


NBNS_NAMES = st.lists(
    st.tuples(
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=15),
        st.integers(0, 255),
        st.booleans(),
    ),
    max_size=12,
)


@ROUND_TRIP
@given(txid=st.integers(0, 0xFFFF), names=NBNS_NAMES, mac=st.binary(min_size=6, max_size=6))
def test_nbns_status_round_trip(txid, names, mac):
    """The lab's node status reply to the scanner's query reads back, in the
    scanner's parser, as the names, flags and MAC it was built from."""
    query = nbns.parse_query(nbns.status_query(txid))
    assert (query.header.txid, query.qtype, query.name()[1]) == (txid, nbns.NBSTAT, 0)
    facts = nbns.parse_status(nbns.status_reply(query, names, mac), txid)
    assert [(n["name"], n["suffix"], n["group"]) for n in facts["names"]] == names
    assert all(n["flags"] & nbns.ACTIVE for n in facts["names"])
    assert facts["mac"] == ":".join(f"{b:02x}" for b in mac)
    assert facts["domain_controller"] == any(s == 0x1C and g for _, s, g in names)
    with pytest.raises(ProtocolError):
        nbns.parse_status(nbns.status_reply(query, names, mac), txid ^ 1)


@ROUND_TRIP
@given(txid=st.integers(0, 0xFFFF), name=NB_NAMES, suffix=st.integers(0, 255), rd=st.booleans(),
       address=st.binary(min_size=4, max_size=4))
def test_nbns_name_reply_round_trip(txid, name, suffix, rd, address):
    request = (nbns.Header.build(txid=txid, flags=0x0110 if rd else 0x0010, qdcount=1)
               + netbios.encode_name(name, suffix) + nbns.Question.build())
    query = nbns.parse_query(request)
    assert query.name() == (name.upper()[:15].rstrip(" "), suffix)
    reply = nbns.name_reply(query, address, 300000)
    hdr = nbns.Header.unpack_from(reply)
    assert (hdr.txid, hdr.ancount, bool(hdr.flags & nbns.RECURSION_DESIRED)) == (txid, 1, rd)
    assert hdr.flags & nbns.RESPONSE and reply[12:46] == request[12:46]
    rr = nbns.RecordHeader.unpack_from(reply, 46)
    assert (rr.rtype, rr.ttl, rr.rdlength, reply[-4:]) == (nbns.NB, 300000, 6, address)
    with pytest.raises(ProtocolError):
        nbns.parse_query(reply)  # a reply is no query


@ROUND_TRIP
@given(
    dialects=st.lists(
        st.sampled_from(smb2.ALL_DIALECTS + (0x02FF,)), min_size=1, max_size=8
    ),
    contexts=st.one_of(
        st.none(),
        st.lists(st.tuples(st.integers(1, 0xFFFF), st.binary(max_size=64)), max_size=6),
    ),
    guid=st.binary(min_size=16, max_size=16),
    security_mode=st.integers(0, 3),
    capabilities=st.integers(0, 0xFFFFFFFF),
    message_id=st.integers(0, 0xFFFFFFFFFFFFFFFF),
)
def test_smb2_negotiate_request_reads_back(
    dialects, contexts, guid, security_mode, capabilities, message_id
):
    msg = smb2.negotiate_request(
        tuple(dialects), contexts, guid, security_mode, capabilities, message_id
    )
    (magic, hsize, _charge, status, command, _credits, flags, nxt, mid) = (
        struct.unpack_from("<4sHHIHHIIQ", msg)
    )
    assert (magic, hsize, status, command, flags, nxt, mid) == (
        b"\xfeSMB",
        64,
        0,
        0,
        0,
        0,
        message_id,
    )
    size, count, smode, _res, caps = struct.unpack_from("<HHHHI", msg, 64)
    assert (size, count, smode, caps) == (
        36,
        len(dialects),
        security_mode,
        capabilities,
    )
    assert msg[76:92] == guid
    ctx_offset, ctx_count = struct.unpack_from("<IH", msg, 92)
    assert list(struct.unpack_from(f"<{count}H", msg, 100)) == dialects
    expected = [] if 0x0311 not in dialects else contexts
    if expected is None:  # defaults: preauth, encryption, compression, signing
        defaults = smb2.parse_contexts(msg, ctx_offset, ctx_count)
        assert defaults.types == [1, 2, 3, 8]
        assert defaults.preauth_hashes == [1] and defaults.compression[0] == 1
        assert defaults.ciphers == [2, 1, 4, 3] and defaults.signing == [2, 1, 0]
        return
    assert ctx_count == len(expected)
    if not expected:
        assert ctx_offset == 0 and len(msg) == 100 + 2 * count
        return
    assert ctx_offset % 8 == 0 and 100 + 2 * count <= ctx_offset < 100 + 2 * count + 8
    off = ctx_offset
    for i, (ctype, cdata) in enumerate(expected):
        t, n, reserved = struct.unpack_from("<HHI", msg, off)
        assert (t, n, reserved) == (ctype, len(cdata), 0)
        assert msg[off + 8 : off + 8 + n] == cdata
        off += 8 + n
        if i < len(expected) - 1:
            off += -off % 8
    assert off == len(msg)


@ROUND_TRIP
@given(
    compression=st.lists(st.integers(0, 5), min_size=1, max_size=5),
    ciphers=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    signing=st.lists(st.integers(0, 2), min_size=1, max_size=3),
    netname=st.one_of(
        st.none(),
        st.text(
            alphabet="abcdefghijklmnopqrstuvwxyz.-0123456789", min_size=1, max_size=40
        ),
    ),
    salt=st.binary(min_size=32, max_size=32),
)
def test_smb2_negotiate_contexts_parse_back(
    compression, ciphers, signing, netname, salt
):
    ctx = smb2.default_contexts(
        tuple(compression), tuple(ciphers), tuple(signing), netname, salt
    )
    msg = smb2.negotiate_request(contexts=ctx)
    ctx_offset, ctx_count = struct.unpack_from("<IH", msg, 92)
    got = smb2.parse_contexts(msg, ctx_offset, ctx_count)
    assert got.preauth_hashes == [smb2.HASH_SHA512]
    assert (
        got.ciphers == ciphers
        and got.compression == compression
        and got.signing == signing
    )
    assert got.netname == netname
    assert msg[ctx_offset + 8 + 6 : ctx_offset + 8 + 6 + 32] == salt


@ROUND_TRIP
@given(
    dialects=st.lists(
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ .0123456789?", min_size=1, max_size=20
        ),
        min_size=1,
        max_size=12,
    ),
    mid=st.integers(0, 0xFFFF),
)
def test_smb1_negotiate_request_reads_back(dialects, mid):
    msg = smb1.negotiate_request(tuple(dialects), mid=mid)
    m = smb1.parse_message(msg)
    assert m.header.command == smb1.NEGOTIATE and m.header.mid == mid and m.words == b""
    assert struct.unpack_from("<H", msg, 33)[0] == len(m.data) == len(msg) - 35
    assert m.data.split(b"\x00")[:-1] == [b"\x02" + d.encode() for d in dialects]


@ROUND_TRIP
@given(
    blob=st.binary(max_size=2000),
    mid=st.integers(0, 0xFFFF),
    uid=st.integers(0, 0xFFFF),
    unicode=st.booleans(),
)
def test_smb1_session_setup_request_reads_back(blob, mid, uid, unicode):
    flags2 = (
        smb1.DEFAULT_FLAGS2 if unicode else smb1.DEFAULT_FLAGS2 & ~smb1.FLAGS2_UNICODE
    )
    msg = smb1.session_setup_request(
        blob, mid, uid=uid, flags2=flags2, native_os="OS", native_lm="LM"
    )
    m = smb1.parse_message(msg)
    assert (m.header.command, m.header.mid, m.header.uid) == (
        smb1.SESSION_SETUP_ANDX,
        mid,
        uid,
    )
    assert len(m.words) == 24
    blob_len = struct.unpack_from("<H", m.words, 14)[0]
    assert blob_len == len(blob) and m.data[:blob_len] == blob
    tail = m.data[blob_len:]
    if unicode:
        pad = (m.data_offset + blob_len) % 2
        assert tail == b"\x00" * pad + "OS\x00LM\x00".encode("utf-16-le")
    else:
        assert tail == b"OS\x00LM\x00"


@ROUND_TRIP
@given(
    command=st.sampled_from([smb1.TRANSACTION, smb1.TRANSACTION2]),
    setup=st.lists(st.integers(0, 0xFFFF), max_size=4),
    params=st.binary(max_size=64),
    payload=st.binary(max_size=200),
)
def test_smb1_transaction_request_offsets(command, setup, params, payload):
    msg = smb1.transaction_request(
        command, 65, 2048, 1, tuple(setup), params=params, data=payload
    )
    m = smb1.parse_message(msg)
    w = struct.unpack_from("<HHHHBBHIHHHHHBB", m.words)
    tp, td, pc, po, dc, do, sc = w[0], w[1], w[9], w[10], w[11], w[12], w[13]
    assert (tp, td, pc, dc, sc) == (
        len(params),
        len(payload),
        len(params),
        len(payload),
        len(setup),
    )
    assert msg[po : po + pc] == params and msg[do : do + dc] == payload
    assert list(struct.unpack_from(f"<{sc}H", m.words, 28)) == setup
    if command == smb1.TRANSACTION2:
        assert po % 4 == 0 and do % 4 == 0


@ROUND_TRIP
@given(
    blob=st.binary(max_size=4000),
    message_id=st.integers(0, 1 << 63),
    session_id=st.integers(0, 1 << 63),
)
def test_smb2_session_setup_request_reads_back(blob, message_id, session_id):
    msg = smb2.session_setup_request(blob, message_id, session_id)
    hdr = smb2.parse_header(msg)
    assert (hdr.command, hdr.message_id, hdr.session_id) == (
        smb2.SESSION_SETUP,
        message_id,
        session_id,
    )
    fixed = smb2.SessionSetupRequestFixed.unpack_from(msg, 64)
    assert fixed.structure_size == 25
    assert (
        msg[fixed.security_offset : fixed.security_offset + fixed.security_length]
        == blob
    )
    assert fixed.security_offset + fixed.security_length == len(msg)


MECHS = st.lists(
    st.sampled_from(
        list(spnego.MECH_NAMES) + ["1.2.840.113554.1.2.2.3", "1.3.6.1.4.1.311.2.2.30"]
    ),
    min_size=1,
    max_size=5,
)


@ROUND_TRIP
@given(token=st.binary(max_size=6000), mechs=MECHS)
def test_spnego_neg_token_init_round_trip(token, mechs):
    tok = spnego.parse(spnego.neg_token_init(token, tuple(mechs)))
    assert tok.mech_token == token
    assert tok.mechs == mechs
    assert tok.neg_state is None


@ROUND_TRIP
@given(token=st.binary(max_size=6000))
def test_spnego_neg_token_resp_round_trip(token):
    tok = spnego.parse(spnego.neg_token_resp(token))
    assert tok.mech_token == token
    assert tok.mechs == []


@ROUND_TRIP
@given(
    arcs=st.lists(st.integers(0, 1 << 32), min_size=1, max_size=8),
    first=st.integers(0, 2),
    second=st.integers(0, 39),
)
def test_oid_round_trip(arcs, first, second):
    oid = ".".join(map(str, [first, second, *arcs]))
    encoded = spnego.encode_oid(oid)
    assert encoded[0] == 0x06 and encoded[1] == len(encoded) - 2
    assert spnego.decode_oid(encoded[2:]) == oid


def _av(av_id: int, value: bytes) -> bytes:
    return struct.pack("<HH", av_id, len(value)) + value


AV_PAIRS = st.lists(
    st.tuples(st.integers(1, 10), st.binary(max_size=40)),
    max_size=6,
    unique_by=lambda p: p[0],
)


def _challenge_bytes(
    flags: int,
    server_challenge: bytes,
    target_name: bytes,
    pairs,
    timestamp: int | None,
) -> bytes:
    if timestamp is not None:
        pairs = [p for p in pairs if p[0] != ntlm.AV_TIMESTAMP] + [
            (ntlm.AV_TIMESTAMP, struct.pack("<Q", timestamp))
        ]
    info = b"".join(_av(i, v) for i, v in pairs) + _av(0, b"")
    name_off = 56
    info_off = name_off + len(target_name)
    return (
        ntlm.SIGNATURE
        + struct.pack("<IHHI", 2, len(target_name), len(target_name), name_off)
        + struct.pack("<I", flags)
        + server_challenge
        + bytes(8)
        + struct.pack("<HHI", len(info), len(info), info_off)
        + bytes([10, 0])
        + struct.pack("<H", 19041)
        + b"\x00\x00\x00\x0f"
        + target_name
        + info
    )


@ROUND_TRIP
@given(
    flags=st.integers(0, 0xFFFFFFFF),
    server_challenge=st.binary(min_size=8, max_size=8),
    name=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", max_size=15),
    pairs=AV_PAIRS,
    timestamp=st.one_of(st.none(), st.integers(0, (1 << 64) - 1)),
)
def test_ntlm_challenge_round_trip(flags, server_challenge, name, pairs, timestamp):
    flags |= ntlm.NEGOTIATE_UNICODE | ntlm.NEGOTIATE_VERSION
    raw = _challenge_bytes(
        flags, server_challenge, name.encode("utf-16-le"), pairs, timestamp
    )
    c = ntlm.parse_challenge(raw)
    assert c.flags == flags and c.server_challenge == server_challenge
    assert c.target_name == (name or None)
    want = dict(pairs)
    if timestamp is not None:
        want[ntlm.AV_TIMESTAMP] = struct.pack("<Q", timestamp)
    assert c.av_pairs == want
    ts = want.get(ntlm.AV_TIMESTAMP)
    assert c.timestamp == (
        struct.unpack("<Q", ts)[0] if ts is not None and len(ts) == 8 else None
    )
    assert (c.version.major, c.version.minor, c.version.build, c.version.revision) == (
        10,
        0,
        19041,
        15,
    )


@ROUND_TRIP
@given(
    flags=st.integers(0, 0xFFFFFFFF),
    server_challenge=st.binary(min_size=8, max_size=8),
    pairs=AV_PAIRS,
    timestamp=st.one_of(st.none(), st.integers(0, (1 << 64) - 1)),
    user=st.text(max_size=20),
    password=st.text(max_size=20),
    domain=st.text(max_size=20),
    workstation=st.text(max_size=15),
    anonymous=st.booleans(),
    client_challenge=st.binary(min_size=8, max_size=8),
    exported=st.binary(min_size=16, max_size=16),
)
def test_ntlm_authenticate_fields_are_consistent(
    flags,
    server_challenge,
    pairs,
    timestamp,
    user,
    password,
    domain,
    workstation,
    anonymous,
    client_challenge,
    exported,
):
    # surrogates cannot be encoded to UTF-16: not a user name anyone types
    for s in (user, password, domain, workstation):
        assume(all(not 0xD800 <= ord(ch) <= 0xDFFF for ch in s))
    challenge = ntlm.parse_challenge(
        _challenge_bytes(flags, server_challenge, b"", pairs, timestamp)
    )
    res = ntlm.authenticate(
        challenge,
        user,
        password,
        domain,
        workstation,
        anonymous,
        client_challenge=client_challenge,
        timestamp=123456789,
        exported_key=exported,
    )
    msg = res.message
    assert msg[:8] == ntlm.SIGNATURE and struct.unpack_from("<I", msg, 8)[0] == 3
    triples = [struct.unpack_from("<HHI", msg, 12 + 8 * i) for i in range(6)]
    out_flags = struct.unpack_from("<I", msg, 60)[0]
    assert msg[72:88] == bytes(16)  # MIC slot
    # payload fields: length == max length, packed back to back after the 88-byte header, up to the end
    pos = 88
    for length, max_length, offset in triples:
        assert length == max_length
        assert offset == pos
        pos += length
    assert pos == len(msg)
    lm, nt, dom, usr, ws, key = (msg[o : o + n] for n, _, o in triples)
    assert ws == workstation.encode("utf-16-le")
    assert out_flags & ntlm.NEGOTIATE_UNICODE
    assert out_flags & ~(flags | ntlm.NEGOTIATE_UNICODE | ntlm.NEGOTIATE_ANONYMOUS) == 0
    if anonymous:
        assert (lm, nt, dom, usr, key) == (b"\x00", b"", b"", b"", b"")
        assert (
            out_flags & ntlm.NEGOTIATE_ANONYMOUS
            and not out_flags & ntlm.NEGOTIATE_KEY_EXCH
        )
        assert res.session_key == bytes(16)
        return
    assert dom == domain.encode("utf-16-le") and usr == user.encode("utf-16-le")
    # NTLMv2 response: NTProofStr (16) + blob(0x0101, reserved, time, client challenge, 0, target info, 0)
    assert nt[16:18] == b"\x01\x01" and nt[18:24] == bytes(6)
    assert struct.unpack_from("<Q", nt, 24)[0] == 123456789
    assert nt[32:40] == client_challenge and nt[40:44] == bytes(4)
    assert nt[44:-4] == challenge.target_info_raw and nt[-4:] == bytes(4)
    assert len(lm) == 24
    if challenge.timestamp is not None:
        assert lm == bytes(24)  # MS-NLMP: no LMv2 when the server sends a timestamp
    else:
        assert lm[16:] == client_challenge
    if out_flags & ntlm.NEGOTIATE_KEY_EXCH:
        assert len(key) == 16 and res.session_key == exported
    else:
        assert key == b"" and len(res.session_key) == 16


def test_ntlm_negotiate_layout():
    msg = ntlm.negotiate()
    assert msg[:8] == ntlm.SIGNATURE and len(msg) == 40
    msg_type, flags = struct.unpack_from("<II", msg, 8)
    assert (msg_type, flags) == (1, ntlm.CLIENT_FLAGS)
    assert struct.unpack_from("<HHIHHI", msg, 16) == (0, 0, 0, 0, 0, 0)
    tok = spnego.parse(spnego.neg_token_init(msg))
    assert tok.mech_token == msg and tok.mechs == [spnego.OID_NTLMSSP]
