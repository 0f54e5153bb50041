"""Stateless SYN discovery: probes from a thread, replies on the event loop.

The sender thread walks the permutation (permute.py) and hands batches of
addresses to the ProbeSender at the asked rate; nothing is remembered about
a probe.  The event loop reads a raw TCP socket: a SYN-ACK from one of the
ranges' addresses and ports, to one of our source ports, whose
acknowledgement number is our cookie plus one (cookie.py), is an open port.
An open SMB port is then confirmed by a real negotiate (confirm.py) before
the host is handed on (`on_host`), so fingerprinting starts while the
probes are still going out.  A SYN-ACK on a service port hands the host on
without a negotiate (the service probes decide what answers there).

Memory is per answering host (the hosts that answered and the ones being
confirmed), never per address probed.  `--retries N` walks the
permutation N more times, skipping the hosts already found, with other
source ports.
"""

from __future__ import annotations

import array
import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

from ..protocol.errors import ProtocolError
from ..protocol.tcpip import parse_segment
from . import cookie
from .confirm import smb_answers
from .permute import Permutation
from .sender import MAX_BATCH, ProbeSender, RawUnavailable, paced, reserve_ports, route_source
from .stage import Request, Stats

__all__ = ["SynDiscovery"]

RECEIVE_BUFFER = 8 << 20
READS_PER_WAKE = 4096  # packets read per wake-up before the loop serves others
NOT_SMB_SAMPLE = 5


def _ntoa(n: int) -> str:
    return socket.inet_ntoa(n.to_bytes(4, "big"))


class SynDiscovery:
    def __init__(self, req: Request, on_host: Callable[[str], None]) -> None:
        self.req, self.on_host = req, on_host
        self.key = cookie.new_key()
        self.src = route_source(_ntoa(req.space.address(0)))
        self.sports = reserve_ports(self.src)
        try:
            self.sender = ProbeSender(self.key, self.src, req.ports, self.sports, pure=req.pure)
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
        self.stats = Stats("syn", engine=self.sender.engine, rate=req.rate, retries=req.retries,
                           addresses=req.space.count, source_ports=self.sports.describe())
        self.found: set[int] = set()  # hosts handed on (read by the sender thread to skip retries)
        self.tried: dict[int, set[int]] = {}  # host -> SMB ports whose negotiate started
        self.answered: set[int] = set()
        self.pending: set[asyncio.Task] = set()
        self.gate = asyncio.Semaphore(max(1, req.concurrency))
        self.smb = frozenset(req.smb_ports)
        self.ports = frozenset(req.ports)

    # -- sending (in a thread) ---------------------------------------------------

    def _batches(self) -> Iterator[tuple[array.array, int]]:
        req = self.req
        space, found = req.space, self.found
        per_batch = max(1, min(MAX_BATCH // len(req.ports), int(req.rate / len(req.ports) / 200) or 1))
        perm = Permutation.random(space.count)
        single = len(space.starts) == 1
        base = space.starts[0]
        for salt in range(req.retries + 1):
            batch = array.array("I")
            for index in perm.shard(*req.shard):
                address = base + index if single else space.address(index)
                if salt and address in found:
                    continue
                batch.append(address)
                if len(batch) == per_batch:
                    yield batch, salt
                    batch = array.array("I")
            if batch:
                yield batch, salt

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
        if address in self.found:
            return
        if address not in self.answered:
            self.answered.add(address)
            self.stats.answered += 1
        if port not in self.smb:
            self._hand_on(address, services_only=True)
            return
        tried = self.tried.setdefault(address, set())
        if port in tried:
            return
        tried.add(port)
        task = asyncio.ensure_future(self._confirm(address, port))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _confirm(self, address: int, port: int) -> None:
        async with self.gate:
            if address in self.found:
                return
            ok = await smb_answers(_ntoa(address), port, self.req.timeout)
        if ok:
            self._hand_on(address)

    def _hand_on(self, address: int, services_only: bool = False) -> None:
        if address in self.found:
            return
        self.found.add(address)
        if services_only:
            self.stats.services_only += 1
        else:
            self.stats.confirmed += 1
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
            self._count_not_smb()
        return stats

    def _count_not_smb(self) -> None:
        stats = self.stats
        for address in self.tried:
            if address not in self.found:
                stats.not_smb += 1
                if len(stats.not_smb_sample) < NOT_SMB_SAMPLE:
                    stats.not_smb_sample.append(_ntoa(address))
