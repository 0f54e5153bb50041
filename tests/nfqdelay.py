"""Delay queued packets by a fixed time: `tc netem delay` for kernels built without netem.

    python tests/nfqdelay.py --queue 0 --delay-ms 1      (inside a namespace whose
    iptables sends packets to NFQUEUE 0)

The kernel hands each packet of the queue to this process over netlink
(nfnetlink_queue, metadata only: no payload is copied) and holds it until a
verdict comes back; this process gives the ACCEPT verdict `delay` after the
packet arrived.  The delay is the same for every packet, so the verdicts
go out in arrival order, as one batch verdict (every id up to N) per
wake-up.  Only packets to live hosts are queued (the silent addresses are
dropped before), so a Python loop keeps up.  Used by tests/netns.py; the
kernel's netlink message layouts are from linux/netfilter/nfnetlink_queue.h.
"""

from __future__ import annotations

import argparse
import collections
import os
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT_BATCH, NFQNL_MSG_CONFIG = 0, 3, 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\x00" * (-len(raw) % 4)


def _message(msg: int, queue: int, attrs: bytes, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, NLM_F_REQUEST, seq, 0) + body


def _packet_ids(data: bytes):
    off = 0
    while off + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
        if length < 16:
            return
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pos, end = off + 20, off + length
            while pos + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, pos)
                if alen < 4:
                    break
                if atype & 0x7FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from(">I", data, pos + 4)[0]
                    break
                pos += (alen + 3) & ~3
        elif kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, off + 16)
            if code:
                raise OSError(-code, os.strerror(-code))
        off += (length + 3) & ~3


def run(queue: int, delay: float) -> None:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    sock.send(_message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_CMD, struct.pack(">BxH", NFQNL_CFG_CMD_BIND, 0))))
    sock.send(_message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META))
                       + _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", 65536))))
    print("ready", flush=True)
    held: collections.deque[tuple[float, int]] = collections.deque()
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while True:
        wait = max(0.0, held[0][0] - time.monotonic()) if held else 1.0
        if poller.poll(wait * 1000):
            data = sock.recv(1 << 20)
            now = time.monotonic()
            for packet_id in _packet_ids(data):
                held.append((now + delay, packet_id))
        now = time.monotonic()
        last = None
        while held and held[0][0] <= now:
            last = held.popleft()[1]
        if last is not None:
            sock.send(_message(NFQNL_MSG_VERDICT_BATCH, queue,
                               _attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, last))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queue", type=int, default=0)
    p.add_argument("--delay-ms", type=float, default=1.0)
    args = p.parse_args()
    try:
        run(args.queue, args.delay_ms / 1000)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
