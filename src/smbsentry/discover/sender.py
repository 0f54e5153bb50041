"""Sending the probes: a raw IPv4 socket, the C batch sender or plain Python, a paced loop.

The socket is ``AF_INET, SOCK_RAW, IPPROTO_RAW`` (the header is ours,
IP_HDRINCL implied): the kernel still routes each packet and resolves the
next hop's link address, so nothing here knows about Ethernet or ARP, and
the probes go through the kernel's netfilter like any other packet.  The C
extension (_fastsend.c) builds and sends a whole batch per system call
(sendmmsg) without the GIL; without it, `socket.sendto` sends the bytes
`protocol.tcpip.syn` builds, one call per packet (slower, same packets).

The source ports are ours for the scan: `reserve_ports` binds a placeholder
TCP socket on each one (never listening), so no other socket of this
machine, ours or another program's, gets one of them while the scan runs;
they are picked outside the kernel's ephemeral range
(net.ipv4.ip_local_port_range).  A SYN-ACK to such a port has no socket to
go to, and the kernel answers it with a RST: that is the RST that closes
the half-open connection on the target, which we want (we confirm SMB over
a normal connection of our own, never over the probe's port).
"""

from __future__ import annotations

import array
import errno
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..protocol import tcpip
from . import cookie

__all__ = ["ProbeSender", "RawUnavailable", "SourcePorts", "fast_module", "reserve_ports", "source_port"]

PORT_COUNT = 16
SEND_BUFFER = 4 << 20
MAX_BATCH = 512  # packets handed to the kernel per call (the C sender's batch)
CATCH_UP = 0.05  # seconds of lag the pacing may make up at once


class RawUnavailable(OSError):
    """This process may not open raw sockets (not root, no CAP_NET_RAW) or there is no route."""


def fast_module():
    """The C send path, or None (not compiled, or SMBSENTRY_PURE_PYTHON set)."""
    v = os.environ.get("SMBSENTRY_PURE_PYTHON", "")
    if v and v != "0":
        return None
    try:
        from . import _fastsend  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _fastsend


def source_port(dst: int, dport: int, salt: int, base: int, count: int) -> int:
    """The source port of a probe (the C sender's rule, bit for bit)."""
    h = (dst * 2654435761 + dport + salt * 40503) & 0xFFFFFFFF
    return base + (h >> 7) % count


@dataclass
class SourcePorts:
    """The ports our probes come from, held by placeholder sockets while the scan runs."""

    base: int
    count: int
    holders: list[socket.socket]

    def __contains__(self, port: int) -> bool:
        return self.base <= port < self.base + self.count

    def close(self) -> None:
        for s in self.holders:
            s.close()
        self.holders.clear()

    def describe(self) -> str:
        return f"{self.base}-{self.base + self.count - 1}"


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            lo, hi = (int(x) for x in f.read().split()[:2])
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def reserve_ports(src: str, count: int = PORT_COUNT, rng: random.Random | None = None) -> SourcePorts:
    """Bind `count` consecutive TCP ports outside the ephemeral range; OSError when none are free."""
    lo, hi = _ephemeral_range()
    rng = rng or random.Random()
    starts = []
    for a, b in ((hi + 1, 65535), (1024, lo - 1)):  # above the ephemeral range first, as masscan's 61000
        span = list(range(a, b - count + 2, count))
        rng.shuffle(span)
        starts += span
    for base in starts[:64]:
        holders: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                holders.append(s)
                s.bind((src, port))
        except OSError:
            for s in holders:
                s.close()
            continue
        return SourcePorts(base, count, holders)
    raise OSError(errno.EADDRINUSE, f"no {count} free TCP ports outside the ephemeral range {lo}-{hi}")


def route_source(dst: str) -> str:
    """The local address the kernel would use towards dst (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((dst, 9))
        except OSError as exc:
            raise RawUnavailable(exc.errno, f"no route to {dst}: {exc.strerror}") from None
        return s.getsockname()[0]


class ProbeSender:
    """Builds and sends the SYNs of one scan: one raw socket, one key, one source address."""

    def __init__(self, key: bytes, src: str, ports: tuple[int, ...], sports: SourcePorts) -> None:
        try:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        except PermissionError as exc:
            raise RawUnavailable(exc.errno, "raw sockets need root or CAP_NET_RAW") from None
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass
        self.key, self.ports, self.sports = key, tuple(ports), sports
        self.src = int.from_bytes(socket.inet_aton(src), "big")
        self.fast = fast_module()
        self.sent = 0

    @property
    def engine(self) -> str:
        return "C sendmmsg" if self.fast is not None else "Python sendto"

    def send(self, dsts: array.array, salt: int) -> int:
        """Send every port's probe to each address of `dsts` (uint32, host order); return packets sent."""
        total = len(dsts) * len(self.ports)
        done = 0
        while done < total:
            try:
                if self.fast is not None:
                    n = self.fast.send(self.sock.fileno(), self.key, self.src, dsts, self.ports,
                                       self.sports.base, self.sports.count, salt, done)
                else:
                    n = self._send_python(dsts, salt, done, total)
            except OSError as exc:
                if exc.errno in (errno.ENOBUFS, errno.EAGAIN, errno.EINTR):
                    time.sleep(0.001)  # the queue is full: give the device a moment
                    continue
                if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM, errno.EACCES):
                    n = 1  # this one cannot go (a firewall or no route): skip it, not the scan
                else:
                    raise
            done += n
        self.sent += total
        return total

    def _send_python(self, dsts: array.array, salt: int, start: int, end: int) -> int:
        nports = len(self.ports)
        for k in range(start, end):
            dst, dport = dsts[k // nports], self.ports[k % nports]
            sport = source_port(dst, dport, salt, self.sports.base, self.sports.count)
            packet = tcpip.syn(self.src, dst, sport, dport, cookie.cookie(self.key, dst, dport, sport))
            try:
                self.sock.sendto(packet, (socket.inet_ntoa(dst.to_bytes(4, "big")), 0))
            except OSError:
                if k == start:
                    raise
                return k - start
        return end - start

    def close(self) -> None:
        self.sock.close()


def paced(sender: ProbeSender, batches: Iterator[tuple[array.array, int]], rate: float,
          stop: threading.Event, on_batch: Callable[[int], None] | None = None) -> int:
    """Send the batches at `rate` packets per second (a thread runs this); return packets sent.

    The batches' iterator may pause (back-pressure): the time it held is not
    made up afterwards by a burst (at most CATCH_UP seconds of it are)."""
    next_at = time.perf_counter()
    sent = 0
    for dsts, salt in batches:
        if stop.is_set():
            break
        next_at = max(next_at, time.perf_counter() - CATCH_UP)
        n = sender.send(dsts, salt)
        sent += n
        if on_batch is not None:
            on_batch(sent)
        next_at += n / rate
        ahead = next_at - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    return sent
