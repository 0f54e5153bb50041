"""Discovery's sans-I/O parts: the permutation, the SYN cookie, the probe packets.

Hypothesis checks the properties the scan relies on: every address of a
range (excludes cut out) is visited exactly once, the shards of a walk are
disjoint and together the whole range, and the cookie of a probe validates
its SYN-ACK and nothing else.  The C sender (when compiled) must build the
same bytes as the Python one.
"""

from __future__ import annotations

import array
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbsentry.discover import cookie, sender
from smbsentry.discover.permute import AddressBits, AddressSpace, Permutation, is_prime, next_prime, prime_factors
from smbsentry.discover.rtt import RttEstimator
from smbsentry.protocol import tcpip
from smbsentry.protocol.errors import ProtocolError

blocks = st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 300)).map(lambda t: (t[0], t[0] + t[1])),
                  min_size=1, max_size=4)


def _walk(space: AddressSpace, perm: Permutation, index: int = 0, shards: int = 1) -> list[int]:
    return [space.address(i) for i in perm.shard(index, shards)]


def test_primes():
    small = [n for n in range(2, 200) if all(n % d for d in range(2, n))]
    assert [n for n in range(200) if is_prime(n)] == small
    assert next_prime(2**32) == 4294967311
    assert is_prime(2**61 - 1) and not is_prime(2**61 + 1)
    assert prime_factors(2 * 2 * 3 * 97) == [2, 3, 97]


@settings(max_examples=150, deadline=None)
@given(blocks, st.lists(st.tuples(st.integers(0, 5500), st.integers(0, 400)).map(lambda t: (t[0], t[0] + t[1])), max_size=3),
       st.integers(0, 2**32))
def test_every_address_once_and_excludes_honoured(targets, excludes, seed):
    space = AddressSpace(targets, excludes)
    wanted = {a for lo, hi in targets for a in range(lo, hi + 1)} - {a for lo, hi in excludes for a in range(lo, hi + 1)}
    assert space.count == len(wanted)
    if not wanted:
        with pytest.raises(ValueError):
            Permutation.random(space.count, random.Random(seed))
        return
    walk = _walk(space, Permutation.random(space.count, random.Random(seed)))
    assert len(walk) == len(wanted)
    assert set(walk) == wanted


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 9), st.integers(0, 2**32))
def test_shards_disjoint_and_complete(count, shards, seed):
    space = AddressSpace([(1000, 1000 + count - 1)])
    perm = Permutation.random(count, random.Random(seed))
    parts = [_walk(space, perm, i, shards) for i in range(shards)]
    together = [a for part in parts for a in part]
    assert len(together) == count == len(set(together))
    assert set(together) == set(range(1000, 1000 + count))
    with pytest.raises(ValueError):
        list(perm.shard(shards, shards))


@settings(max_examples=100, deadline=None)
@given(blocks, st.data())
def test_address_bits_hold_exactly_what_was_added(targets, data):
    space = AddressSpace(targets)
    everything = [space.address(i) for i in range(space.count)]
    chosen = set(data.draw(st.lists(st.sampled_from(everything), max_size=50)))
    bits = AddressBits(space)
    for a in chosen:
        bits.add(a)
    assert {a for a in everything if a in bits} == chosen
    assert all(space.index(space.address(i)) == i for i in range(space.count))
    assert len(bits.bits) == (space.count + 7) // 8  # bounded by the range, not by what answers


def test_the_order_is_not_the_address_order():
    """A walk spreads a /16 over its subnets: the first 256 probes hit many /24s, not one."""
    space = AddressSpace([(0x0A000000, 0x0A00FFFF)])
    first = _walk(space, Permutation.random(space.count))[:256]
    assert len({a >> 8 for a in first}) > 100


def test_siphash_reference_vectors():
    key = bytes(range(16))
    # The SipHash paper's test vectors (messages 00, 00 01, ..., of lengths 0, 8 and 15).
    assert cookie.siphash24(key, b"").to_bytes(8, "little").hex() == "310e0edd47db6f72"
    assert cookie.siphash24(key, bytes(range(8))).to_bytes(8, "little").hex() == "6224939a79f5f593"
    assert cookie.siphash24(key, bytes(range(15))).to_bytes(8, "little").hex() == "e545be4961ca29a1"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.integers(0, 2**32 - 1), st.integers(1, 65535), st.integers(1, 65535))
def test_cookie_validates_its_syn_ack_only(key, dst, dport, sport):
    seq = cookie.cookie(key, dst, dport, sport)
    assert cookie.valid_ack(key, dst, dport, sport, (seq + 1) & 0xFFFFFFFF)
    assert not cookie.valid_ack(key, dst, dport, sport, seq)  # an ack of seq, not seq+1
    assert not cookie.valid_ack(key, dst ^ 1, dport, sport, (seq + 1) & 0xFFFFFFFF)
    other = bytes([key[0] ^ 0xFF]) + key[1:]
    assert not cookie.valid_ack(other, dst, dport, sport, (seq + 1) & 0xFFFFFFFF)
    fast = sender.fast_module()
    if fast is not None:
        assert fast.cookie(key, dst, dport, sport) == seq
        assert fast.source_port(dst, dport, 7, 61000, 16) == sender.source_port(dst, dport, 7, 61000, 16)


def test_syn_packet_and_its_checksums():
    packet = tcpip.syn(0x0A000001, 0x0A000002, 61000, 445, 0xDEADBEEF)
    assert len(packet) == 40
    assert tcpip.checksum(packet[:20]) == 0  # a correct header sums to zero
    pseudo = struct.pack(">IIBBH", 0x0A000001, 0x0A000002, 0, 6, 20)
    assert tcpip.checksum(pseudo + packet[20:]) == 0
    seg = tcpip.parse_segment(packet)
    assert (seg.src, seg.dst, seg.sport, seg.dport, seg.seq, seg.flags) == (0x0A000001, 0x0A000002, 61000, 445, 0xDEADBEEF, tcpip.SYN)
    assert not seg.syn_ack and not seg.reset


def test_parse_syn_ack_and_rst():
    synack = bytearray(tcpip.syn(0x0A000002, 0x0A000001, 445, 61000, 7))
    synack[33] = tcpip.SYN | tcpip.ACK
    struct.pack_into(">I", synack, 28, 0xDEADBEF0)
    seg = tcpip.parse_segment(bytes(synack))
    assert seg.syn_ack and seg.ack == 0xDEADBEF0
    rst = tcpip.parse_segment(tcpip.rst(1, 2, 3, 4, 5))
    assert rst.reset and not rst.syn_ack
    for bad in (b"", b"\x45" + b"\x00" * 10, b"\x60" + b"\x00" * 39, bytes(tcpip.syn(1, 2, 3, 4, 5))[:30]):
        with pytest.raises(ProtocolError):
            tcpip.parse_segment(bad)


@pytest.mark.skipif(sender.fast_module() is None, reason="the C sender is not compiled here (plain-Python install)")
@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20),
       st.lists(st.integers(1, 65535), min_size=1, max_size=3, unique=True), st.integers(0, 5))
def test_c_and_python_probes_are_the_same_bytes(key, dsts, ports, salt):
    fast = sender.fast_module()
    got = fast.probes(key, 0xC0A80001, array.array("I", dsts), tuple(ports), 61000, 16, salt)
    want = b""
    for dst in dsts:
        for port in ports:
            sport = sender.source_port(dst, port, salt, 61000, 16)
            want += tcpip.syn(0xC0A80001, dst, sport, port, cookie.cookie(key, dst, port, sport))
    assert got == want


def test_rtt_follows_the_samples():
    rtt = RttEstimator()
    assert rtt.timeout == 1.0  # nmap's initial timeout, before any answer
    for _ in range(20):
        rtt.sample(0.002)
    assert rtt.timeout == 0.1  # a LAN settles on the floor
    for _ in range(40):
        rtt.sample(0.8)
    assert 0.8 <= rtt.timeout <= 10.0  # a slow link keeps a long one


@settings(max_examples=60, deadline=None)
@given(blocks, blocks, st.integers(1, 5), st.integers(0, 2**62))
def test_seeded_shards_inside_cover_are_disjoint_and_complete(targets, cover_blocks, shards, seed):
    """What engines rely on (engines/sweep.py): the same seed gives every engine the same walk, so shard
    i of n inside `cover` are disjoint and together exactly the range's addresses inside `cover`."""
    from smbsentry.discover.stage import Request

    space, cover = AddressSpace(targets), AddressSpace(cover_blocks)
    runs = []
    for i in range(shards):
        req = Request(space, (445,), shard=(i, shards), seed=seed, cover=cover)
        runs.append(list(req.addresses(req.permutation())))
    flat = [a for run in runs for a in run]
    assert len(flat) == len(set(flat))
    assert set(flat) == {space.address(i) for i in range(space.count)} & {a for lo, hi in cover_blocks for a in range(lo, hi + 1)}
    again = Request(space, (445,), shard=(0, shards), seed=seed, cover=cover)
    assert list(again.addresses(again.permutation())) == runs[0]  # the same walk on every engine


def test_engine_sweep_plan_reports_what_is_outside_allow():
    """Two engines of a queue, each with half the queue's share in its --allow: every routed address
    is probed by one shard or reported not covered by one shard, never both, never neither."""
    import ipaddress

    from smbsentry.engines.routes import Router
    from smbsentry.engines.sweep import SweepError, plan

    def ip(text: str) -> int:
        return int(ipaddress.ip_address(text))

    router = Router({"a": ["10.0.0.0/24"], "b": ["10.0.0.128/26"]})  # b: a pocket of a's range
    space = AddressSpace([(ip("10.0.0.0"), ip("10.0.1.255"))], [(ip("10.0.0.7"), ip("10.0.0.7"))])
    pieces = router.split(zip(space.starts, space.ends))
    for queue, share in pieces.items():
        for lo, hi in share:
            assert {router.queue_for(str(ipaddress.ip_address(a))) for a in range(lo, hi + 1)} == {queue}
    assert sum(hi - lo + 1 for share in pieces.values() for lo, hi in share) == space.count
    assert pieces[None] == [(ip("10.0.1.0"), ip("10.0.1.255"))]
    sweep = {"blocks": [list(b) for b in zip(space.starts, space.ends)], "excludes": [], "seed": 1234,
             "count": 2, "only": [list(p) for p in pieces["a"]], "mode": "connect", "retries": 0}
    allows = ([ipaddress.ip_network("10.0.0.0/25")], [ipaddress.ip_network("10.0.0.0/26")])
    probed, missed = [], 0
    for index, allow in enumerate(allows):
        p = plan({**sweep, "index": index}, allow)
        req = p.request(smb_ports=(445,))
        probed += list(req.addresses(req.permutation()))
        count, ranges = p.not_covered()
        missed += count
        assert ranges == (["10.0.0.192-10.0.0.255"] if index == 0 else ["10.0.0.64-10.0.0.127", "10.0.0.192-10.0.0.255"])
    share = {a for lo, hi in pieces["a"] for a in range(lo, hi + 1)}
    assert len(probed) == len(set(probed)) and set(probed) <= share and ip("10.0.0.7") not in probed
    assert len(probed) + missed == len(share) == 256 - 64 - 1  # .0-.255 but b's /26 and the excluded .7
    with pytest.raises(SweepError):
        plan({**sweep, "index": 2}, allows[0])
    with pytest.raises(SweepError):
        plan({**sweep, "index": 0, "only": [[5, 4]]}, allows[0])
