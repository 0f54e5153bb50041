"""Tests for smbsentry.detect.capture / smbsentry.detect.packet and the corpus helper.

Corpus captures are read in place (see tests/corpus.py); facts about them are
checked with struct, independently of the project's protocol parsers.
"""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from corpus import (
    SMB1,
    SMB2,
    client_requests,
    corpus_dir,
    corpus_files,
    corpus_path,
    server_replies,
    smb_messages,
)

from smbsentry.detect.capture import (
    MAX_CAPLEN,
    CaptureError,
    CaptureParser,
    CaptureReader,
    open_capture,
    read_capture,
)
from smbsentry.detect.packet import ACK, PSH, SKIP, SYN, TCP, UDP, Packet, decode

CORPUS_FILES = corpus_files()
needs_corpus = pytest.mark.skipif(
    corpus_dir() is None,
    reason="capture corpus not found (../shared/corpus beside the repository, or SMBSENTRY_CORPUS)",
)
TSHARK = shutil.which("tshark")

PCAP_SAMPLE = "doublepulsar-backdoor-connect-win7.pcap"
PCAPNG_SAMPLE = "claroty-smbghost-dos.pcapng"


# --------------------------------------------------------------------------
# synthetic capture builders
# --------------------------------------------------------------------------
def pcap_bytes(records, bo="<", nano=False, linktype=1, snaplen=65535):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(bo + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, *rest in records:
        wirelen = rest[0] if rest else len(data)
        out.append(struct.pack(bo + "IIII", sec, frac, len(data), wirelen) + data)
    return b"".join(out)


def _pad(b):
    return b + b"\0" * (-len(b) % 4)


def ng_block(btype, body, bo="<"):
    body = _pad(body)
    blen = len(body) + 12
    return struct.pack(bo + "II", btype, blen) + body + struct.pack(bo + "I", blen)


def ng_shb(bo="<"):
    return ng_block(0x0A0D0D0A, struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1), bo)


def ng_option(code, value, bo="<"):
    return struct.pack(bo + "HH", code, len(value)) + _pad(value)


def ng_idb(linktype=1, snaplen=0, tsresol=None, tsoffset=None, bo="<"):
    opts = b""
    if tsresol is not None:
        opts += ng_option(9, bytes([tsresol]), bo)
    if tsoffset is not None:
        opts += ng_option(14, struct.pack(bo + "q", tsoffset), bo)
    if opts:
        opts += struct.pack(bo + "HH", 0, 0)
    return ng_block(1, struct.pack(bo + "HHI", linktype, 0, snaplen) + opts, bo)


def ng_epb(iface, ticks, data, wirelen=None, bo="<"):
    wirelen = len(data) if wirelen is None else wirelen
    hdr = struct.pack(
        bo + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wirelen
    )
    return ng_block(6, hdr + data, bo)


def ng_spb(data, wirelen=None, bo="<"):
    return ng_block(
        3, struct.pack(bo + "I", len(data) if wirelen is None else wirelen) + data, bo
    )


def ng_opb(iface, ticks, data, bo="<"):
    hdr = struct.pack(
        bo + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return ng_block(2, hdr + data, bo)


def read_all(data: bytes, chunk_size=1 << 20):
    return list(CaptureReader(io.BytesIO(data), chunk_size))


def read_until_error(source, chunk_size=1 << 20):
    """(records yielded, the CaptureError raised or None)."""
    got: list = []
    try:
        got.extend(read_capture(source, chunk_size))
    except CaptureError as exc:
        return got, exc
    return got, None


class NonSeekable(io.RawIOBase):
    def __init__(self, data):
        self._b = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        chunk = self._b.read(min(len(b), 1000))
        b[: len(chunk)] = chunk
        return len(chunk)


# --------------------------------------------------------------------------
# corpus: every file reads completely, frame count matches tshark
# --------------------------------------------------------------------------
def _tshark_count(path: Path) -> int:
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(path), "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return len(out.splitlines())


@needs_corpus
@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_corpus_file_reads_completely(path):
    records = list(read_capture(path))
    assert records, f"{path.name}: no records"
    assert [r[0] for r in records] == list(range(1, len(records) + 1))
    for frame, ts, linktype, data, wirelen in records:
        assert linktype == 1
        assert ts > 1e9
        assert 0 < len(data) <= wirelen
    if TSHARK:
        assert len(records) == _tshark_count(path)
    # every corpus frame is a well-formed Ethernet/IP frame
    for frame, _ts, linktype, data, _wl in records:
        assert decode(linktype, data) is not None, (
            f"{path.name} frame {frame} decoded as malformed"
        )


@needs_corpus
@pytest.mark.parametrize("name", [PCAP_SAMPLE, PCAPNG_SAMPLE])
@pytest.mark.parametrize("chunk_size", [1, 3, 17, 4096])
def test_chunk_size_does_not_change_records(name, chunk_size):
    path = corpus_path(name)
    assert list(read_capture(path, chunk_size=chunk_size)) == list(read_capture(path))


@needs_corpus
def test_pcapng_timestamps_and_lengths_match_tshark():
    path = corpus_path(PCAPNG_SAMPLE)
    records = list(read_capture(path))
    assert len(records) == 21
    assert records[0][1] == pytest.approx(1584262072.327319, abs=1e-6)
    assert len(records[0][3]) == 78
    if TSHARK:
        out = subprocess.run(
            [
                TSHARK,
                "-n",
                "-r",
                str(path),
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
                "-e",
                "frame.len",
                "-e",
                "frame.cap_len",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.splitlines()
        for rec, line in zip(records, out, strict=True):
            t, wirelen, caplen = line.split("\t")
            assert rec[1] == pytest.approx(float(t), abs=1e-6)
            assert (rec[4], len(rec[3])) == (int(wirelen), int(caplen))


# --------------------------------------------------------------------------
# damage: truncation, corruption, absurd lengths, non-captures
# --------------------------------------------------------------------------
@needs_corpus
@pytest.mark.parametrize("name", [PCAP_SAMPLE, PCAPNG_SAMPLE])
def test_truncated_copy_yields_complete_records_then_error(name, tmp_path):
    path = corpus_path(name)
    full = list(read_capture(path))
    data = path.read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[:-10])
    got, err = read_until_error(cut)
    assert err is not None, "truncation not detected"
    if name.endswith(".pcapng"):
        # the last block of this file is an Interface Statistics Block: all packets survive
        assert got == full
    else:
        assert got == full[:-1]
    assert "truncated" in str(err) and "byte offset" in str(err)
    assert "\n" not in str(err)
    assert 0 < err.offset < len(data)
    # streaming in tiny chunks gives the same result
    got_small, err_small = read_until_error(cut, chunk_size=7)
    assert got_small == got and str(err_small) == str(err)


@needs_corpus
def test_truncated_pcap_error_names_record_offset(tmp_path):
    path = corpus_path(PCAP_SAMPLE)
    data = path.read_bytes()
    full = list(read_capture(path))
    last_offset = len(data) - 16 - len(full[-1][3])
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])
    _, err = read_until_error(cut)
    assert err.offset == last_offset
    assert f"byte offset {last_offset}" in str(err)
    # cut inside the record header
    cut.write_bytes(data[: last_offset + 5])
    got, err = read_until_error(cut)
    assert got == full[:-1] and err.offset == last_offset


def test_truncated_pcap_file_header():
    with pytest.raises(CaptureError, match="truncated pcap file header"):
        read_all(pcap_bytes([])[:20])


@needs_corpus
def test_corrupt_pcapng_block_midway_raises_after_good_records(tmp_path):
    path = corpus_path(PCAPNG_SAMPLE)
    data = bytearray(path.read_bytes())
    full = list(read_capture(path))
    # walk to the 7th packet block and corrupt its trailing length
    pos, packets = 0, 0
    while True:
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype == 6:
            packets += 1
            if packets == 7:
                break
        pos += blen
    struct.pack_into("<I", data, pos + blen - 4, blen + 4)
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(bytes(data))
    got, err = read_until_error(bad)
    assert got == full[:6]
    assert err is not None and err.offset == pos and f"byte offset {pos}" in str(err)
    assert "corrupt" in str(err)


def test_pcap_absurd_caplen_raises_without_allocating():
    good = (1, 0, b"\x00" * 60)
    header = pcap_bytes([good, good])
    bogus = struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 0xFFFFFFF0) + b"\x00" * 64
    tracemalloc.start()
    try:
        got, err = read_until_error(io.BytesIO(header + bogus))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got) == 2
    assert err is not None and "absurd captured length" in str(err)
    assert err.offset == len(header)
    assert peak < 4 * 1024 * 1024


def test_pcap_caplen_just_over_limit_raises_even_with_data_present():
    data = pcap_bytes([(1, 0, b"\x00" * (MAX_CAPLEN + 1))])
    with pytest.raises(CaptureError, match="absurd captured length"):
        read_all(data)
    # exactly the limit is accepted (corpus files use snaplen 262144)
    assert len(read_all(pcap_bytes([(1, 0, b"\x00" * MAX_CAPLEN)]))[0][3]) == MAX_CAPLEN


def test_pcapng_absurd_block_length_raises_without_allocating():
    head = ng_shb() + ng_idb() + ng_epb(0, 5, b"\x00" * 60)
    bogus = struct.pack("<II", 6, 0x7FFFFFF0) + b"\x00" * 64
    tracemalloc.start()
    try:
        got, err = read_until_error(io.BytesIO(head + bogus))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got) == 1
    assert (
        err is not None
        and "corrupt pcapng block" in str(err)
        and err.offset == len(head)
    )
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize(
    "body",
    [
        # captured length larger than the block
        struct.pack("<IIIII", 0, 0, 0, 5000, 5000) + b"\x00" * 64,
        # captured length absurd
        struct.pack("<IIIII", 0, 0, 0, 0xFFFFFF00, 0xFFFFFF00) + b"\x00" * 64,
        # packet for an interface that was never described
        struct.pack("<IIIII", 3, 0, 0, 4, 4) + b"\x00" * 4,
    ],
    ids=["caplen-exceeds-block", "caplen-absurd", "undefined-interface"],
)
def test_pcapng_bad_packet_blocks(body):
    data = ng_shb() + ng_idb() + ng_epb(0, 1, b"ok") + ng_block(6, body)
    got, err = read_until_error(io.BytesIO(data))
    assert (
        len(got) == 1
        and err is not None
        and err.offset == len(data) - len(ng_block(6, body))
    )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xd4\xc3",
        b"hello, this is not a capture file at all\n",
        b"<html>" + b"x" * 5000,
        gzip.compress(b"plain text, compressed"),
    ],
    ids=["empty", "two-bytes", "text", "html", "gzip-text"],
)
def test_not_a_capture_raises_at_once(content, tmp_path):
    path = tmp_path / "not-a-capture"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        read_capture(path)  # raises at call time, before any iteration
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        CaptureReader(io.BytesIO(content))
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        open_capture(path)


def test_parser_rejects_on_first_feed():
    parser = CaptureParser()
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        parser.feed(b"GET / HTTP/1.1\r\n")
    parser = CaptureParser()
    parser.feed(b"\x0a\x0d")  # undecided yet
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        parser.close()


def test_errors_are_sticky():
    data = pcap_bytes([(1, 0, b"\x01" * 20)])[:-3]
    parser = CaptureParser()
    parser.feed(data)
    assert len(list(parser.records())) == 0
    with pytest.raises(CaptureError):
        parser.close()
    with pytest.raises(CaptureError):
        list(parser.records())


# --------------------------------------------------------------------------
# gzip
# --------------------------------------------------------------------------
@needs_corpus
@pytest.mark.parametrize("name", [PCAP_SAMPLE, PCAPNG_SAMPLE])
def test_gzip_copy_reads_identically(name, tmp_path):
    path = corpus_path(name)
    gz = tmp_path / (name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert list(read_capture(gz)) == list(read_capture(path))
    with open_capture(gz) as reader:
        assert reader.compressed and reader.format == (
            "pcapng" if name.endswith("ng") else "pcap"
        )
        assert sum(1 for _ in reader) == len(list(read_capture(path)))
    # a non-seekable stream (a pipe) works too
    stream = io.BufferedReader(NonSeekable(gz.read_bytes()))
    assert list(read_capture(stream, chunk_size=333)) == list(read_capture(path))


@needs_corpus
def test_truncated_gzip_yields_good_records_then_error(tmp_path):
    path = corpus_path("eternalblue-success-unpatched-win7.pcap")
    full = list(read_capture(path))
    blob = gzip.compress(path.read_bytes())
    gz = tmp_path / "cut.pcap.gz"
    gz.write_bytes(blob[: len(blob) // 2])
    got, err = read_until_error(gz, chunk_size=4096)
    assert err is not None and "byte offset" in str(err)
    assert 0 < len(got) < len(full)
    assert got == full[: len(got)]


# --------------------------------------------------------------------------
# format variants (synthetic)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("bo", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(bo, nano):
    frac = 500_000_000 if nano else 500_000
    data = pcap_bytes(
        [(100, frac, b"abc", 1500), (101, 0, b"")], bo=bo, nano=nano, linktype=113
    )
    reader = CaptureReader(io.BytesIO(data))
    assert reader.format == "pcap" and reader.linktype == 113
    assert list(reader) == [(1, 100.5, 113, b"abc", 1500), (2, 101.0, 113, b"", 0)]


def test_pcap_linktype_fcs_bits_masked():
    data = pcap_bytes([(1, 0, b"x")], linktype=1 | (1 << 26) | (4 << 28))
    assert read_all(data)[0][2] == 1


@pytest.mark.parametrize("bo", ["<", ">"])
def test_pcapng_blocks_and_options(bo):
    data = b"".join(
        [
            ng_shb(bo),
            ng_idb(1, bo=bo),  # default microseconds
            ng_idb(113, tsresol=9, bo=bo),  # nanoseconds
            ng_idb(101, tsresol=0x80 | 10, tsoffset=1000, bo=bo),  # 2^-10 s, +1000 s
            ng_block(0x0BAD, b"unknown block body", bo),
            ng_block(4, b"\x00" * 4, bo),  # name resolution block: skipped
            ng_epb(0, 1_500_000, b"first", bo=bo),
            ng_epb(1, 2_250_000_000, b"second", 9000, bo=bo),
            ng_epb(2, 3 * 1024 + 512, b"third", bo=bo),
            ng_opb(0, 4_000_000, b"obsolete", bo=bo),
            ng_spb(b"simple", bo=bo),
            ng_block(5, b"\x00" * 20, bo),  # interface statistics: skipped
        ]
    )
    for chunk_size in (1, 5, 1 << 20):
        assert read_all(data, chunk_size) == [
            (1, 1.5, 1, b"first", 5),
            (2, 2.25, 113, b"second", 9000),
            (3, 1003.5, 101, b"third", 5),
            (4, 4.0, 1, b"obsolete", 8),
            (5, 0.0, 1, b"simple", 6),
        ]


def test_pcapng_spb_respects_snaplen():
    data = ng_shb() + ng_idb(1, snaplen=4) + ng_spb(b"abcdefgh", wirelen=100)
    assert read_all(data) == [(1, 0.0, 1, b"abcd", 100)]


def test_pcapng_sections_switch_byte_order_and_reset_interfaces():
    data = (
        ng_shb("<")
        + ng_idb(1, bo="<")
        + ng_epb(0, 1_000_000, b"le", bo="<")
        + ng_shb(">")
        + ng_idb(228, bo=">")
        + ng_epb(0, 2_000_000, b"be", bo=">")
    )
    assert read_all(data) == [(1, 1.0, 1, b"le", 2), (2, 2.0, 228, b"be", 2)]
    # an interface from the first section is not valid in the second
    data = ng_shb("<") + ng_idb(1) + ng_shb(">") + ng_epb(0, 1, b"x", bo=">")
    with pytest.raises(CaptureError, match="undefined interface"):
        read_all(data)


def test_pcapng_bad_byte_order_magic():
    shb = bytearray(ng_shb())
    shb[8:12] = b"\x01\x02\x03\x04"
    with pytest.raises(CaptureError, match="byte-order magic"):
        read_all(bytes(shb))


class _Generated(io.RawIOBase):
    """A long pcap produced on the fly (never held in memory as a whole)."""

    def __init__(self, count, size):
        self._pending = pcap_bytes([])
        self._rec = struct.pack("<IIII", 7, 0, size, size) + b"\xab" * size
        self._left = count

    def readable(self):
        return True

    def readinto(self, b):
        if not self._pending and self._left:
            n = max(1, min(self._left, len(b) // len(self._rec)))
            self._left -= n
            self._pending = self._rec * n
        data, self._pending = self._pending[: len(b)], self._pending[len(b) :]
        b[: len(data)] = data
        return len(data)


def test_memory_does_not_grow_with_capture_length():
    count, size = 60_000, 300  # ~19 MB of capture
    tracemalloc.start()
    try:
        stream = io.BufferedReader(_Generated(count, size), buffer_size=1 << 16)
        n = sum(1 for _ in CaptureReader(stream, chunk_size=1 << 16))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == count
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"


# --------------------------------------------------------------------------
# packet decoding
# --------------------------------------------------------------------------
SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([192, 168, 1, 2])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("fe800000000000000000000000000002")


def tcp_seg(
    sport=50000,
    dport=445,
    seq=1000,
    ack=2000,
    flags=PSH | ACK,
    payload=b"",
    options=b"",
):
    doff = (20 + len(options)) // 4
    return (
        struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 8192, 0, 0)
        + options
        + payload
    )


def udp_dgram(sport=137, dport=137, payload=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(l4, proto=6, src=SRC4, dst=DST4, frag=0, ihl=5, total=None):
    opts = b"\x01" * ((ihl - 5) * 4)
    total = 20 + len(opts) + len(l4) if total is None else total
    return (
        struct.pack(
            "!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, proto, 0, src, dst
        )
        + opts
        + l4
    )


def ipv6(l4, nxt=6, ext=b"", src=SRC6, dst=DST6):
    return (
        struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(l4), nxt, 64, src, dst)
        + ext
        + l4
    )


def eth(l3, ethertype=0x0800, vlans=()):
    """Ethernet II frame; vlans = [(tpid, tci), ...] outermost first."""
    tags = b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in vlans)
    return b"\x02" * 6 + b"\x04" * 6 + tags + struct.pack("!H", ethertype) + l3


def test_decode_ethernet_ipv4_tcp_strips_padding():
    frame = (
        eth(ipv4(tcp_seg(payload=b"\x00\x00\x00\x05hello"))) + b"\x00" * 6
    )  # Ethernet padding
    pkt = decode(1, frame)
    assert isinstance(pkt, Packet)
    assert (pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.proto) == (
        "10.0.0.1",
        "192.168.1.2",
        50000,
        445,
        TCP,
    )
    assert (pkt.seq, pkt.ack, pkt.flags) == (1000, 2000, PSH | ACK)
    assert pkt.payload == b"\x00\x00\x00\x05hello"
    assert pkt.src_addr == SRC4 and pkt.ip_version == 4


def test_decode_vlan_tags_and_tcp_options():
    frame = eth(
        ipv4(tcp_seg(flags=SYN, options=b"\x02\x04\x05\xb4", payload=b"x")),
        vlans=[(0x88A8, 7), (0x8100, 9)],
    )
    pkt = decode(1, frame)
    assert pkt and pkt.flags == SYN and pkt.payload == b"x"


def test_decode_ipv4_options_and_udp():
    pkt = decode(1, eth(ipv4(udp_dgram(payload=b"nbns"), proto=17, ihl=6)))
    assert pkt and (pkt.proto, pkt.sport, pkt.payload, pkt.flags, pkt.seq) == (
        UDP,
        137,
        b"nbns",
        0,
        0,
    )


def test_decode_linux_cooked_v1_and_v2():
    l3 = ipv4(tcp_seg(payload=b"sll"))
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x00" * 8, 0x0800) + l3
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x00" * 8) + l3
    assert decode(113, sll).payload == b"sll"
    assert decode(276, sll2).payload == b"sll"


def test_decode_raw_ip_linktypes():
    v4, v6 = ipv4(tcp_seg(payload=b"4")), ipv6(tcp_seg(payload=b"6"))
    assert decode(101, v4).payload == b"4" and decode(101, v6).payload == b"6"
    assert decode(228, v4).payload == b"4" and decode(229, v6).payload == b"6"
    assert decode(228, v6) is None and decode(229, v4) is None


def test_decode_bsd_null_loopback():
    v4, v6 = ipv4(tcp_seg(payload=b"lo")), ipv6(tcp_seg(payload=b"lo6"))
    assert decode(0, struct.pack("<I", 2) + v4).payload == b"lo"
    assert decode(0, struct.pack(">I", 2) + v4).payload == b"lo"
    for fam in (24, 28, 30):
        assert decode(0, struct.pack("<I", fam) + v6).payload == b"lo6"
    assert decode(108, struct.pack(">I", 2) + v4).payload == b"lo"
    assert decode(0, struct.pack("<I", 7) + v4) is SKIP


def test_decode_ipv6_extension_headers():
    seg = tcp_seg(dport=139, payload=b"v6")
    hop = bytes([43, 0]) + b"\x01\x04\x00\x00\x00\x00"  # hop-by-hop -> routing
    routing = bytes([60, 0]) + b"\x00" * 6  # routing -> destination options
    dest = bytes([44, 0]) + b"\x01\x04\x00\x00\x00\x00"  # dest opts -> fragment
    frag_first = bytes([6, 0]) + struct.pack("!HI", 0x0001, 42)  # offset 0, M=1
    pkt = decode(
        1, eth(ipv6(seg, nxt=0, ext=hop + routing + dest + frag_first), 0x86DD)
    )
    assert pkt and pkt.payload == b"v6" and pkt.dport == 139
    assert pkt.src == "2001:db8::1" and pkt.dst == "fe80::2" and pkt.ip_version == 6
    frag_later = bytes([6, 0]) + struct.pack("!HI", 185 << 3, 42)
    assert decode(1, eth(ipv6(seg, nxt=44, ext=frag_later), 0x86DD)) is SKIP
    esp = decode(1, eth(ipv6(b"\x00" * 40, nxt=50), 0x86DD))
    assert esp is SKIP


def test_decode_fragments_and_other_protocols():
    seg = tcp_seg(payload=b"frag")
    first = decode(1, eth(ipv4(seg, frag=0x2000)))  # MF set, offset 0: decoded
    assert first and first.payload == b"frag"
    assert decode(1, eth(ipv4(seg, frag=0x0010))) is SKIP  # non-first fragment
    assert decode(1, eth(ipv4(b"\x08\x00" + b"\x00" * 30, proto=1))) is SKIP  # ICMP
    assert decode(1, eth(b"\x00" * 28, ethertype=0x0806)) is SKIP  # ARP
    assert decode(147, b"\x00" * 60) is SKIP  # unsupported link type


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00" * 13,
        eth(b"\x45\x00"),  # truncated IPv4 header
        eth(ipv4(tcp_seg(), ihl=5)[:19]),
        eth(b"\x65" + ipv4(tcp_seg())[1:]),  # version 6 in an IPv4 ethertype
        eth(b"\x44" + ipv4(tcp_seg())[1:]),  # IHL 4
        eth(b"\x4f" + ipv4(tcp_seg())[1:]),  # IHL 15 beyond the data
        eth(ipv4(tcp_seg(), total=10)),  # total length below header length
        eth(ipv4(tcp_seg()[:19])),  # truncated TCP header
        eth(ipv4(tcp_seg()[:12] + b"\x40" + tcp_seg()[13:])),  # data offset 4
        eth(
            ipv4(tcp_seg()[:12] + b"\xf0" + tcp_seg()[13:])
        ),  # data offset beyond segment
        eth(ipv4(struct.pack("!HHHH", 1, 2, 4, 0), proto=17)),  # UDP length < 8
        eth(ipv4(b"\x00" * 7, proto=17)),
        eth(ipv6(tcp_seg())[:39], 0x86DD),
        eth(
            ipv6(tcp_seg(), nxt=0, ext=b"\x06\x05"), 0x86DD
        ),  # extension header longer than packet
        eth(b"", vlans=[(0x8100, 1)])[:15],
    ],
)
def test_decode_malformed_returns_none(frame):
    assert decode(1, frame) is None


def test_decode_never_raises_on_random_bytes():
    import random

    rng = random.Random(1234)
    base = eth(ipv4(tcp_seg(payload=b"payload" * 10)))
    for _ in range(20_000):
        frame = bytearray(base[: rng.randrange(len(base) + 1)])
        for _ in range(rng.randrange(4)):
            if frame:
                frame[rng.randrange(len(frame))] = rng.randrange(256)
        for linktype in (0, 1, 101, 113, 228, 229, 276):
            result = decode(linktype, bytes(frame))
            assert result is None or result is SKIP or isinstance(result, Packet)


def test_decode_accepts_memoryview_and_bytearray():
    frame = eth(ipv4(tcp_seg(payload=b"mv")))
    assert decode(1, bytearray(frame)).payload == b"mv"
    assert bytes(decode(1, memoryview(frame)).payload) == b"mv"


# --------------------------------------------------------------------------
# corpus extraction facts (checked with struct, not the project's parsers)
# --------------------------------------------------------------------------
def smb1_status(data):
    return struct.unpack_from("<I", data, 5)[0]


def smb1_mid(data):
    return struct.unpack_from("<H", data, 30)[0]


@needs_corpus
def test_doublepulsar_ping_reply_changes_mid():
    name = "doublepulsar-backdoor-connect-win7.pcap"
    requests = client_requests(name, SMB1, 0x32)
    replies = server_replies(name, SMB1, 0x32)
    assert [(m.frame, smb1_mid(m.data)) for m in requests] == [(86, 65)]
    assert [(m.frame, smb1_mid(m.data), smb1_status(m.data)) for m in replies] == [
        (87, 81, 0xC0000002)
    ]
    req, rep = requests[0], replies[0]
    assert not req.is_server_reply and rep.is_server_reply
    assert (req.src, req.dst, req.dport) == ("192.168.198.204", "192.168.198.203", 445)
    assert (rep.src, rep.sport, rep.dport) == ("192.168.198.203", 445, req.sport)
    assert rep.data[9] & 0x80 and not req.data[9] & 0x80  # SMB1 Flags: reply bit


@needs_corpus
def test_eternalblue_trans2_knocks():
    name = "eternalblue-success-unpatched-win7.pcap"
    pairs = [(m.frame, smb1_mid(m.data)) for m in client_requests(name, SMB1, 0x32)]
    assert pairs == [(12, 65), (257, 66), (270, 65), (565, 66)]
    replies = [
        (m.frame, smb1_mid(m.data), smb1_status(m.data))
        for m in server_replies(name, SMB1, 0x32)
    ]
    # after the exploit the implant answers request MID 66 with MID 66 + 16
    assert (566, 82, 0xC0000002) in replies
    assert [r for r in replies if r[1] in (81, 82)] == [(566, 82, 0xC0000002)]


@needs_corpus
@pytest.mark.parametrize(
    "name, dialects",
    [
        ("claroty-win10-negotiate-compression.pcap", [0x0311]),
        ("claroty-win7-negotiate-smb21.pcap", [0x0210]),
        ("zeek-smbghost-scan-ws2019.pcap", [0x0311]),
        ("zeek-smb3-negotiate-context.pcap", [0x02FF, 0x0311]),
    ],
)
def test_smb2_negotiate_reply_dialect(name, dialects):
    replies = server_replies(name, SMB2, command=0)
    assert [struct.unpack_from("<H", m.data, 68)[0] for m in replies] == dialects
    for m in replies:
        assert struct.unpack_from("<H", m.data, 4)[0] == 64  # SMB2 header StructureSize
        assert struct.unpack_from("<I", m.data, 16)[0] & 1  # SMB2_FLAGS_SERVER_TO_REDIR


def _negotiate_contexts(data):
    count = struct.unpack_from("<H", data, 64 + 6)[0]
    offset = struct.unpack_from("<I", data, 64 + 60)[0]
    out = {}
    for _ in range(count):
        ctype, dlen = struct.unpack_from("<HH", data, offset)
        out[ctype] = data[offset + 8 : offset + 8 + dlen]
        offset = (offset + 8 + dlen + 7) & ~7
    return out


@needs_corpus
@pytest.mark.parametrize(
    "name",
    ["claroty-win10-negotiate-compression.pcap", "zeek-smbghost-scan-ws2019.pcap"],
)
def test_smb311_reply_has_lznt1_compression_context(name):
    (reply,) = server_replies(name, SMB2, command=0)
    contexts = _negotiate_contexts(reply.data)
    compression = contexts[3]  # SMB2_COMPRESSION_CAPABILITIES
    count = struct.unpack_from("<H", compression, 0)[0]
    assert count == 1 and struct.unpack_from("<H", compression, 8)[0] == 0x0001  # LZNT1


@needs_corpus
def test_claroty_win7_reply_has_no_contexts():
    (reply,) = server_replies("claroty-win7-negotiate-smb21.pcap", SMB2, command=0)
    assert struct.unpack_from("<H", reply.data, 64 + 6)[0] == 0


@needs_corpus
def test_smbghost_dos_transform_offset():
    msgs = [
        m for m in smb_messages(PCAPNG_SAMPLE, "client") if m.data[:4] == b"\xfcSMB"
    ]
    assert msgs, "no compression transform header in the SMBGhost PoC"
    # COMPRESSION_TRANSFORM_HEADER: Offset (uint32 at 12) is 0xFFFFFFFF
    assert struct.unpack_from("<I", msgs[0].data, 12)[0] == 0xFFFFFFFF
    assert msgs[0].dport == 445


@needs_corpus
def test_legit_compressed_reads_are_sane():
    msgs = smb_messages("claroty-smb311-legit-compressed-data.pcap", "server")
    assert len(msgs) == 3 and all(m.data[:4] == b"\xfcSMB" for m in msgs)
    for m in msgs:
        original_size, _alg, _flags, offset = struct.unpack_from("<IHHI", m.data, 4)
        assert offset < original_size < 16 * 1024 * 1024


@needs_corpus
def test_wannacry_peeknamedpipe_probes_answered_insuff_server_resources():
    replies = server_replies("wannacry.pcap", SMB1, 0x25)  # SMB_COM_TRANSACTION
    hosts = {m.src for m in replies if smb1_status(m.data) == 0xC0000205}
    assert hosts >= {"192.168.116.138", "192.168.116.143", "192.168.116.172"}


@needs_corpus
def test_wannacry_reassembly_survives_lost_segments():
    msgs = smb_messages("wannacry.pcap")
    assert all(m.data[:4] == SMB1 for m in msgs)
    assert len(msgs) > 4400
    # every message's NetBIOS length matched a whole SMB1 message: the header is 32 bytes + WCT
    assert all(len(m.data) >= 33 for m in msgs)
    if TSHARK:
        out = subprocess.run(
            [
                TSHARK,
                "-n",
                "-r",
                str(corpus_path("wannacry.pcap")),
                "-Y",
                "tcp && smb",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.split()
        # tshark shows an SMB message in the frame that completes it; we find all of those
        assert {int(f) for f in out} <= {m.last_frame for m in msgs}


@needs_corpus
def test_messages_are_in_frame_order_and_direction_filters():
    name = "arkime-smb-on-windows10.pcap"
    both = smb_messages(name)
    assert [m.frame for m in both] == sorted(m.frame for m in both)
    server, client = smb_messages(name, "server"), smb_messages(name, "client")
    assert len(server) + len(client) == len(both)
    assert all(m.is_server_reply and m.sport in (445, 139) for m in server)
    assert all(not m.is_server_reply and m.dport in (445, 139) for m in client)
    with pytest.raises(ValueError):
        smb_messages(name, "sideways")


def test_corpus_path_skips_when_absent(monkeypatch, tmp_path):
    monkeypatch.setenv("SMBSENTRY_CORPUS", str(tmp_path / "nowhere"))
    assert corpus_dir() is None
    with pytest.raises(pytest.skip.Exception, match="corpus not found"):
        corpus_path("wannacry.pcap")


@pytest.mark.parametrize("how", ["batches", "records"])
def test_a_large_block_is_read_whole_not_copied_chunk_by_chunk(how):
    """A block far larger than the read size is read in one go once its length is known.

    Reading it 64 KiB at a time would copy the growing buffer with every chunk
    (quadratic in the block's size: an 8 MiB block would be copied ~128 times).
    """
    big = ng_block(0x00000BAD, b"\x00" * (8 << 20))  # a block type the reader skips
    data = ng_shb() + ng_idb() + big + ng_epb(0, 1_000_000, b"\x11" * 60)
    reads: list[int] = []

    class Counting(io.BytesIO):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    reader = CaptureReader(Counting(data), chunk_size=64 * 1024)
    if how == "batches":
        records = [r for batch in reader.batches() for r in batch]
    else:
        records = list(reader)
    assert [len(r[3]) for r in records] == [60]
    assert len(reads) <= 6, reads
    assert max(reads) > 4 << 20  # the rest of the block, asked for at once
