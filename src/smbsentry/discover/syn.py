"""Stateless SYN discovery: probes from a thread, replies on the event loop.

The sender thread walks the permutation (permute.py) and hands batches of
addresses to the ProbeSender at the asked rate; nothing is remembered about
a probe.  The event loop reads a raw TCP socket: a SYN-ACK from one of the
ranges' addresses and ports, to one of our source ports, whose
acknowledgement number is our cookie plus one (cookie.py), is an open port.
An open SMB port is then confirmed by a real negotiate (confirm.py) before
the host is handed on (`on_host`), so fingerprinting starts while the
probes are still going out; a host that answers on every port (a
middlebox) is not.  A SYN-ACK on a service port hands the host on
without a negotiate (the service probes decide what answers there).

Memory is bounded by the range, never by what answers: one bit per
address for each thing remembered (answered, found, negotiate tried,
middlebox), and the probes pause while more than MAX_PENDING negotiates
or MAX_BACKLOG hosts handed on wait.  `--retries N` walks the
permutation N more times, skipping the hosts already found, with other
source ports.
"""

from __future__ import annotations

import array
import asyncio
import ctypes
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

from ..protocol.errors import ProtocolError
from ..protocol.tcpip import parse_segment
from . import cookie
from .confirm import LOCAL, MIDDLEBOX, NO_SMB, SMB, verdict
from .permute import AddressBits
from .sender import MAX_BATCH, ProbeSender, RawUnavailable, paced, reserve_ports, route_source
from .stage import Request, Stats

__all__ = ["SynDiscovery"]

RECEIVE_BUFFER = 8 << 20
MAX_PENDING = 4096  # negotiates waiting or under way before the probes pause
MAX_BACKLOG = 4096  # hosts handed on and not yet taken by the fingerprint before the probes pause
READS_PER_WAKE = 4096  # packets read per wake-up before the loop serves others


SO_ATTACH_FILTER = 26


def port_filter(base: int, count: int) -> bytes:
    """A classic BPF program: keep the TCP segments to ports base..base+count-1, drop the rest.

    A raw TCP socket gets a copy of every TCP segment the machine receives;
    the kernel runs this on each one, so a busy machine's traffic never
    reaches Python (or fills the receive buffer the replies need)."""
    insns = [
        (0xB1, 0, 0, 0),                # ldxb 4*([0]&0xf): X = the IP header's length
        (0x48, 0, 0, 2),                # ldh [x+2]: the TCP destination port
        (0x35, 0, 2, base),             # jge #base, next, drop
        (0x35, 1, 0, base + count),     # jge #end, drop, keep
        (0x06, 0, 0, 0xFFFF),           # ret #65535: keep
        (0x06, 0, 0, 0),                # ret #0: drop
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in insns)


def attach_port_filter(sock: socket.socket, base: int, count: int):
    """Attach `port_filter` (SO_ATTACH_FILTER); without it the Python checks still filter, only slower."""
    program = ctypes.create_string_buffer(port_filter(base, count))
    fprog = struct.pack("=HxxxxxxQ", len(program.raw) // 8, ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return None
    return program  # kept alive with the socket


def _ntoa(n: int) -> str:
    return socket.inet_ntoa(n.to_bytes(4, "big"))


class SynDiscovery:
    def __init__(self, req: Request, on_host: Callable[[str], None]) -> None:
        self.req, self.on_host = req, on_host
        self.key = cookie.new_key()
        self.src = route_source(_ntoa(req.space.address(0)))
        self.sports = reserve_ports(self.src)
        try:
            self.sender = ProbeSender(self.key, self.src, req.ports, self.sports)
            try:
                self.rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            except PermissionError as exc:
                self.sender.close()
                raise RawUnavailable(exc.errno, "raw sockets need root or CAP_NET_RAW") from None
        except BaseException:
            self.sports.close()
            raise
        self.rx.setblocking(False)
        try:
            self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            pass
        self._filter = attach_port_filter(self.rx, self.sports.base, self.sports.count)
        self.stats = Stats("syn", engine=self.sender.engine, rate=req.rate, retries=req.retries,
                           source_ports=self.sports.describe())
        space = req.space
        self.found = AddressBits(space)  # hosts handed on (read by the sender thread to skip retries)
        self.tried = {port: AddressBits(space) for port in req.smb_ports}  # negotiates started, per port
        self.answered = AddressBits(space)
        self.middleboxes = AddressBits(space)
        self.pending: set[asyncio.Task] = set()  # negotiates under way (at most MAX_PENDING: see _congested)
        self.gate = asyncio.Semaphore(max(1, req.concurrency))
        self.smb = frozenset(req.smb_ports)
        self.ports = frozenset(req.ports)

    # -- sending (in a thread) ---------------------------------------------------

    def _batches(self) -> Iterator[tuple[array.array, int]]:
        req = self.req
        found = self.found
        per_batch = max(1, min(MAX_BATCH // len(req.ports), int(req.rate / len(req.ports) / 200) or 1))
        perm = req.permutation()
        stats = self.stats
        for salt in range(req.retries + 1):
            batch = array.array("I")
            while self._congested():
                time.sleep(0.05)
            for address in req.addresses(perm):
                if not salt:
                    stats.addresses += 1
                elif address in found:
                    continue
                batch.append(address)
                if len(batch) == per_batch:
                    yield batch, salt
                    batch = array.array("I")
                    while self._congested():
                        time.sleep(0.05)
            if batch:
                yield batch, salt

    def _congested(self) -> bool:
        """Hold the probes while too many hosts wait for their negotiate or their assessment:
        a middlebox answering for a whole /8 must not make millions of tasks."""
        backlog = self.req.backlog
        return len(self.pending) > MAX_PENDING or (backlog is not None and backlog() > MAX_BACKLOG)

    # -- receiving (on the event loop) -----------------------------------------

    def _readable(self) -> None:
        space, sports, ports, key = self.req.space, self.sports, self.ports, self.key
        for _ in range(READS_PER_WAKE):
            try:
                packet = self.rx.recv(128)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                seg = parse_segment(packet)
            except ProtocolError:
                continue
            if seg.dport not in sports or seg.sport not in ports or seg.src not in space:
                continue
            if not cookie.valid_ack(key, seg.src, seg.sport, seg.dport, seg.ack):
                continue  # not an answer to one of our probes
            if seg.syn_ack:
                self._open(seg.src, seg.sport)
            elif seg.reset:
                self.stats.closed += 1

    def _open(self, address: int, port: int) -> None:
        if address in self.found or address in self.middleboxes:
            return
        if address not in self.answered:
            self.answered.add(address)
            self.stats.answered += 1
        if port not in self.smb:
            self._hand_on(address, kind="services_only")
            return
        tried = self.tried[port]
        if address in tried:
            return
        tried.add(address)
        task = asyncio.ensure_future(self._confirm(address, port))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _confirm(self, address: int, port: int) -> None:
        async with self.gate:
            if address in self.found or address in self.middleboxes:
                return
            said = await verdict(_ntoa(address), port, self.req.timeout)
        if said == SMB:
            self._hand_on(address)
        elif address in self.found or address in self.middleboxes:
            return
        elif said in (NO_SMB, LOCAL):  # LOCAL: the engine's own retries of local errors decide
            self.stats.note("unconfirmed", _ntoa(address))
            self._hand_on(address, kind=None)
        elif said == MIDDLEBOX:
            self.middleboxes.add(address)
            self.stats.note("middlebox", _ntoa(address))

    def _hand_on(self, address: int, kind: str | None = "confirmed") -> None:
        if address in self.found:
            return
        self.found.add(address)
        if kind is not None:
            setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        self.on_host(_ntoa(address))

    # -- the run ----------------------------------------------------------------

    async def run(self) -> Stats:
        loop = asyncio.get_running_loop()
        stats, stop = self.stats, threading.Event()
        start = time.perf_counter()
        loop.add_reader(self.rx.fileno(), self._readable)
        sending = loop.run_in_executor(None, paced, self.sender, self._batches(), self.req.rate, stop)
        try:
            stats.sent = await asyncio.shield(sending)
            stats.sending = time.perf_counter() - start
            await asyncio.sleep(self.req.cooldown)
            self._readable()
            while self.pending:
                await asyncio.gather(*list(self.pending), return_exceptions=True)
        except BaseException:
            stop.set()
            for task in list(self.pending):
                task.cancel()
            raise
        finally:
            stop.set()
            loop.remove_reader(self.rx.fileno())
            try:
                await asyncio.wait_for(asyncio.shield(sending), 5)
            except BaseException:  # noqa: BLE001 - the thread ends at its next batch
                pass
            stats.sent = self.sender.sent
            self.rx.close()
            self.sender.close()
            self.sports.close()
            stats.elapsed = time.perf_counter() - start
        return stats
