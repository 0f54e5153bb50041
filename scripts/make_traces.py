#!/usr/bin/env python3
"""Generate the small synthetic captures the detector tests need and the corpus lacks.

Written with ``struct`` only (no capture tool, nothing sent on any network:
the packets exist only as bytes in the files).  Every address is a
documentation address (RFC 5737: 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24).  Checksums are correct, so Wireshark shows the files
cleanly.  Deterministic: the same bytes on every run.

    python scripts/make_traces.py [--out tests/data/traces] [--check]

Files (each well under 50 KB):

``smb-sweep-445.pcap``
    198.51.100.7 sends TCP SYNs to port 445 of 50 addresses (192.0.2.1-50)
    within 4.9 s; a handful answer SYN-ACK, the rest RST (a worm's sweep).
    Expect smb-worm-scan (20 distinct destinations in 10 s) at the SYN to the
    20th address, 192.0.2.20 (frame 40).
``wannacry-killswitch-dns.pcap``
    A DNS query for example.com (benign), then a query for
    www.iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com and its answer.
    Expect wannacry-killswitch-dns at the query (frame 3) only.
``eternalchampion-pattern.pcap``
    An SMB1 session (negotiate, session setup, tree connect to IPC$) then
    one segment holding an NT_TRANSACT with the unimplemented
    NT_TRANSACT_RENAME function carrying all its bytes, immediately followed
    by an NT_TRANSACT_SECONDARY of the same transaction: the race the
    EternalChampion exploit (CVE-2017-0146) depends on, reproduced from the
    published analyses.  No exploit payload; it reproduces the wire pattern
    only.  Expect eternalchampion at that segment.

The functions (``pcap``, ``Tcp``, ``udp_packet``, SMB1 builders) are also
imported by tests/test_detect.py to build further flows in memory.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "data" / "traces"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

SCANNER = "198.51.100.7"
SWEEP_NET = "192.0.2."
CLIENT = "203.0.113.10"
SERVER = "203.0.113.20"
RESOLVER = "198.51.100.53"
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")

KILLSWITCH = "www.iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com"


# --------------------------------------------------------------------------
# Packets
# --------------------------------------------------------------------------

def ip4(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


from smbsentry.protocol.tcpip import checksum as _checksum  # noqa: E402 - the Internet checksum, declared once


def ipv4_packet(src: str, dst: str, proto: int, payload: bytes, ident: int = 0) -> bytes:
    s, d = ip4(src), ip4(dst)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
    return hdr + payload


def ether(ip_packet: bytes, src_mac: bytes = MAC_A, dst_mac: bytes = MAC_B) -> bytes:
    frame = dst_mac + src_mac + b"\x08\x00" + ip_packet
    return frame + b"\0" * max(0, 60 - len(frame))  # Ethernet minimum frame (padding)


def tcp_packet(src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int,
               payload: bytes = b"", window: int = 64240) -> bytes:
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, window, 0, 0)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    csum = _checksum(pseudo + hdr + payload)
    hdr = hdr[:16] + struct.pack("!H", csum) + hdr[18:]
    return ether(ipv4_packet(src, dst, 6, hdr + payload, ident=seq))


def udp_packet(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, len(hdr) + len(payload))
    csum = _checksum(pseudo + hdr + payload) or 0xFFFF
    hdr = hdr[:6] + struct.pack("!H", csum)
    return ether(ipv4_packet(src, dst, 17, hdr + payload))


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def pcap(records: list[tuple[float, bytes]], snaplen: int = 65535) -> bytes:
    """A little-endian microsecond pcap (Ethernet) of (timestamp, frame) records."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)]
    for ts, frame in records:
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        cap = frame[:snaplen]
        out.append(struct.pack("<IIII", sec, usec, len(cap), len(frame)) + cap)
    return b"".join(out)


class Tcp:
    """One TCP connection's packets, with sequence numbers kept (client = side a)."""

    def __init__(self, client: str, cport: int, server: str, sport: int,
                 isn_c: int = 1000, isn_s: int = 5000) -> None:
        self.c, self.cp, self.s, self.sp = client, cport, server, sport
        self.seq = {0: isn_c, 1: isn_s}

    def _ends(self, d: int) -> tuple[str, int, str, int]:
        return (self.c, self.cp, self.s, self.sp) if d == 0 else (self.s, self.sp, self.c, self.cp)

    def handshake(self) -> list[bytes]:
        c, cp, s, sp = self.c, self.cp, self.s, self.sp
        out = [tcp_packet(c, cp, s, sp, self.seq[0], 0, SYN),
               tcp_packet(s, sp, c, cp, self.seq[1], self.seq[0] + 1, SYN | ACK),
               tcp_packet(c, cp, s, sp, self.seq[0] + 1, self.seq[1] + 1, ACK)]
        self.seq[0] += 1
        self.seq[1] += 1
        return out

    def segment(self, d: int, payload: bytes, seq: int | None = None, flags: int = PSH | ACK) -> bytes:
        """A segment from side ``d`` (0 client, 1 server); advances the sequence unless ``seq`` is given."""
        src, sp, dst, dp = self._ends(d)
        s = self.seq[d] if seq is None else seq
        pkt = tcp_packet(src, sp, dst, dp, s, self.seq[d ^ 1], flags, payload)
        if seq is None:
            self.seq[d] += len(payload)
        return pkt

    def send(self, d: int, payload: bytes, mss: int = 1460) -> list[bytes]:
        return [self.segment(d, payload[i:i + mss]) for i in range(0, len(payload), mss)] or [self.segment(d, b"")]

    def close(self) -> list[bytes]:
        c, cp, s, sp = self.c, self.cp, self.s, self.sp
        out = [tcp_packet(c, cp, s, sp, self.seq[0], self.seq[1], FIN | ACK),
               tcp_packet(s, sp, c, cp, self.seq[1], self.seq[0] + 1, FIN | ACK),
               tcp_packet(c, cp, s, sp, self.seq[0] + 1, self.seq[1] + 1, ACK)]
        self.seq[0] += 1
        self.seq[1] += 1
        return out


def timed(frames: list[bytes], start: float, step: float = 0.001) -> list[tuple[float, bytes]]:
    return [(start + i * step, f) for i, f in enumerate(frames)]


# --------------------------------------------------------------------------
# NetBIOS / SMB1
# --------------------------------------------------------------------------

def nbss(msg: bytes) -> bytes:
    return struct.pack(">I", len(msg)) + msg


def smb1(cmd: int, words: bytes = b"", data: bytes = b"", *, mid: int = 64, reply: bool = False,
         status: int = 0, tid: int = 2048, uid: int = 2048, pid: int = 0xFEFF, signature: bytes = b"\0" * 8) -> bytes:
    """An SMB1 message (header, word block, byte block)."""
    flags = 0x98 if reply else 0x18
    hdr = struct.pack("<4sBIBHH8sHHHHH", b"\xffSMB", cmd, status, flags, 0x4001, 0, signature, 0, tid, pid, uid, mid)
    return hdr + bytes([len(words) // 2]) + words + struct.pack("<H", len(data)) + data


def negotiate_request(dialects: tuple[str, ...] = ("NT LM 0.12",), mid: int = 64) -> bytes:
    data = b"".join(b"\x02" + d.encode() + b"\0" for d in dialects)
    return smb1(0x72, b"", data, mid=mid, tid=0, uid=0)


def negotiate_reply(index: int = 0, mid: int = 64) -> bytes:
    words = struct.pack("<HBHHIIIIQhB", index, 0x03, 50, 1, 0x10000, 0x10000, 0, 0x8000E3FD, 0, 0, 0)
    return smb1(0x72, words, b"\0" * 16, mid=mid, reply=True, tid=0, uid=0)


def session_setup_request(mid: int = 64, native_os: str = "Windows 2000 2195") -> bytes:
    words = struct.pack("<BBHHHHIHHII", 0xFF, 0, 0, 4356, 10, 1, 0, 1, 0, 0, 0x40)
    data = b"\0" + b"\0" + b"\0" + native_os.encode() + b"\0" + b"Windows 2000 5.0\0"  # password, account, domain
    return smb1(0x73, words, data, mid=mid, tid=0, uid=0)


def session_setup_reply(mid: int = 64, native_os: str = "Windows 5.1") -> bytes:
    words = struct.pack("<BBHH", 0xFF, 0, 0, 0)
    return smb1(0x73, words, native_os.encode() + b"\0Windows 2000 LAN Manager\0\0", mid=mid, reply=True, tid=0)


def tree_connect_request(path: str = "\\\\192.0.2.1\\IPC$", mid: int = 64) -> bytes:
    words = struct.pack("<BBHHH", 0xFF, 0, 0, 0, 1)
    return smb1(0x75, words, b"\0" + path.encode() + b"\0?????\0", mid=mid, tid=0)


def tree_connect_reply(mid: int = 64) -> bytes:
    return smb1(0x75, struct.pack("<BBHH", 0xFF, 0, 0, 1), b"IPC\0", mid=mid, reply=True)


def transaction(cmd: int, setup: tuple[int, ...], params: bytes = b"", data: bytes = b"", *,
                total_params: int | None = None, total_data: int | None = None, timeout: int = 0,
                mid: int = 64, name: bytes = b"", max_param: int = 0xFFFF, max_data: int = 0xFFFF) -> bytes:
    """TRANSACTION (0x25, with a name) or TRANSACTION2 (0x32) request."""
    tp = len(params) if total_params is None else total_params
    td = len(data) if total_data is None else total_data
    wc = 14 + len(setup)
    p_off = 32 + 1 + 2 * wc + 2 + len(name)
    d_off = p_off + len(params)
    words = struct.pack("<HHHHBBHIHHHHHBB", tp, td, max_param, max_data, 0, 0, 0, timeout, 0,
                        len(params), p_off, len(data), d_off, len(setup), 0)
    words += struct.pack(f"<{len(setup)}H", *setup)
    return smb1(cmd, words, name + params + data, mid=mid)


def nt_transact(function: int, setup: bytes = b"", params: bytes = b"", data: bytes = b"", *,
                total_params: int | None = None, total_data: int | None = None, mid: int = 64) -> bytes:
    tp = len(params) if total_params is None else total_params
    td = len(data) if total_data is None else total_data
    wc = 19 + len(setup) // 2
    p_off = 32 + 1 + 2 * wc + 2 + 3  # three pad bytes
    d_off = p_off + len(params)
    words = struct.pack("<BHIIIIIIIIBH", 0, 0, tp, td, 0x400, 0x400, len(params), p_off, len(data), d_off,
                        len(setup) // 2, function) + setup
    return smb1(0xA0, words, b"\0\0\0" + params + data, mid=mid)


def nt_transact_secondary(params: bytes = b"", data: bytes = b"", *, total_params: int = 0,
                          total_data: int = 0, param_disp: int = 0, data_disp: int = 0, mid: int = 64) -> bytes:
    p_off = 32 + 1 + 36 + 2
    d_off = p_off + len(params)
    words = struct.pack("<3xIIIIIIIIx", total_params, total_data, len(params), p_off, param_disp,
                        len(data), d_off, data_disp)
    return smb1(0xA1, words, params + data, mid=mid)


def smb1_session(tcp: Tcp) -> list[bytes]:
    """Negotiate NT LM 0.12, anonymous session setup and a tree connect to IPC$."""
    frames = []
    for d, msg in ((0, negotiate_request()), (1, negotiate_reply()), (0, session_setup_request()),
                   (1, session_setup_reply()), (0, tree_connect_request()), (1, tree_connect_reply())):
        frames += tcp.send(d, nbss(msg))
    return frames


def dns_query(name: str, qid: int, response: bool = False, answer: str | None = None) -> bytes:
    qname = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
    flags = 0x8180 if response else 0x0100
    ancount = 1 if answer else 0
    msg = struct.pack("!HHHHHH", qid, flags, 1, ancount, 0, 0) + qname + struct.pack("!HH", 1, 1)
    if answer:
        msg += struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + ip4(answer)
    return msg


# --------------------------------------------------------------------------
# The traces
# --------------------------------------------------------------------------

def sweep_trace() -> bytes:
    records = []
    for i in range(1, 51):
        t = T0 + (i - 1) / 10
        dst = f"{SWEEP_NET}{i}"
        sport = 49152 + i
        records.append((t, tcp_packet(SCANNER, sport, dst, 445, 100_000 * i, 0, SYN)))
        if i % 10 == 0:  # a few hosts listen
            records.append((t + 0.0004, tcp_packet(dst, 445, SCANNER, sport, 7_000 * i, 100_000 * i + 1, SYN | ACK)))
            records.append((t + 0.0006, tcp_packet(SCANNER, sport, dst, 445, 100_000 * i + 1, 0, RST)))
        else:
            records.append((t + 0.0003, tcp_packet(dst, 445, SCANNER, sport, 0, 100_000 * i + 1, RST | ACK)))
    return pcap(records)


def dns_trace() -> bytes:
    client, sport = "203.0.113.50", 53001
    records = [
        (T0, udp_packet(client, sport, RESOLVER, 53, dns_query("example.com", 0x1111))),
        (T0 + 0.01, udp_packet(RESOLVER, 53, client, sport, dns_query("example.com", 0x1111, True, "192.0.2.80"))),
        (T0 + 1.0, udp_packet(client, sport + 1, RESOLVER, 53, dns_query(KILLSWITCH, 0x2222))),
        (T0 + 1.02, udp_packet(RESOLVER, 53, client, sport + 1, dns_query(KILLSWITCH, 0x2222, True, "192.0.2.99"))),
    ]
    return pcap(records)


def eternalchampion_trace() -> bytes:
    tcp = Tcp(CLIENT, 49300, SERVER, 445)
    frames = tcp.handshake() + smb1_session(tcp)
    params = struct.pack("<HH", 0x4000, 0) + b"\0" * 4  # FID, flags, reserved: RENAME's parameters
    data = "new-name".encode("utf-16-le")
    primary = nt_transact(0x0005, b"", params, data, mid=70)
    secondary = nt_transact_secondary(b"", b"\0" * 8, total_params=len(params), total_data=len(data),
                                      data_disp=len(data), mid=70)
    frames.append(tcp.segment(0, nbss(primary) + nbss(secondary)))
    frames += tcp.send(1, nbss(smb1(0xA0, mid=70, reply=True, status=0xC0000002)))
    frames += tcp.close()
    return pcap(timed(frames, T0))


TRACES = {
    "smb-sweep-445.pcap": sweep_trace,
    "wannacry-killswitch-dns.pcap": dns_trace,
    "eternalchampion-pattern.pcap": eternalchampion_trace,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder (default {DEFAULT_OUT})")
    p.add_argument("--check", action="store_true", help="only verify that the files on disk are up to date")
    args = p.parse_args(argv)
    stale = []
    for name, build in TRACES.items():
        data = build()
        assert len(data) < 50_000, name
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(name)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{path}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    if stale:
        print(f"out of date: {', '.join(stale)} (run scripts/make_traces.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
