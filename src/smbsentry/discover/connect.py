"""Discovery without raw sockets: TCP connects with timeouts that follow the RTT.

What naabu and nmap -sT do when they may not craft packets: a full
connect to each port of each address, `concurrency` at a time, in the
permuted order.  The connect timeout is rtt.RttEstimator's (1 s until
the first answer, then the measured round-trip times), so a silent
address costs a few hundred milliseconds on a LAN instead of the
fingerprint's 5 s.  A connect that timed out is tried `retries` more
times (with the timeout of then).  An accepted connect on an SMB port is
confirmed by a negotiate on that same connection (confirm.verdict: a
middlebox is dropped, a host without an SMB answer is handed on all the
same); on a service port it hands the host on.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from .confirm import CLOSED, FILTERED, LOCAL, MIDDLEBOX, NO_SMB, SMB, connect, verdict
from .rtt import RttEstimator
from .stage import Request, Stats

__all__ = ["ConnectDiscovery"]

MAX_BACKLOG = 4096  # hosts handed on and not yet taken before the connects pause
LOCAL_BACKOFF = 0.25  # seconds before trying again after a local resource error
LOCAL_TRIES = 8


def _ntoa(n: int) -> str:
    return socket.inet_ntoa(n.to_bytes(4, "big"))


class ConnectDiscovery:
    def __init__(self, req: Request, on_host: Callable[[str], None], why: str = "") -> None:
        self.req, self.on_host = req, on_host
        self.rtt = RttEstimator()
        self.stats = Stats("connect", why=why, rate=req.rate, retries=req.retries, timeout=self.rtt.timeout)
        self._next_slot = 0.0

    async def _paced(self) -> None:
        if not self.req.rate:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.req.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _port(self, address: str, port: int) -> tuple[str, socket.socket | None]:
        for _ in range(self.req.retries + 1):
            await self._paced()
            timeout = self.rtt.timeout
            for attempt in range(LOCAL_TRIES):
                try:
                    state, rtt, sock = await connect(address, port, timeout)
                    break
                except OSError:
                    if attempt == LOCAL_TRIES - 1:
                        raise  # still out of descriptors or ports: the scan falls back (scan/runner.py)
                    await asyncio.sleep(LOCAL_BACKOFF)  # ours, not the host's: try again
            self.stats.sent += 1
            if state != FILTERED:
                self.rtt.sample(rtt)
                return state, sock
        return FILTERED, None

    async def _host(self, address: str) -> None:
        stats, smb = self.stats, frozenset(self.req.smb_ports)
        answered = unconfirmed = False
        for port in self.req.ports:
            state, sock = await self._port(address, port)
            if state == CLOSED:
                stats.closed += 1
            if sock is None:
                continue
            if not answered:
                answered = True
                stats.answered += 1
            if port not in smb:
                sock.close()
                stats.services_only += 1
                self.on_host(address)
                return
            said = await verdict(address, port, self.req.timeout, sock=sock)
            if said == SMB:
                stats.confirmed += 1
                self.on_host(address)
                return
            if said == MIDDLEBOX:
                stats.note("middlebox", address)
                return
            unconfirmed = unconfirmed or said in (NO_SMB, LOCAL)
        if unconfirmed:
            stats.note("unconfirmed", address)
            self.on_host(address)

    async def _worker(self, order) -> None:
        backlog = self.req.backlog
        for address in order:
            self.stats.addresses += 1
            while backlog is not None and backlog() > MAX_BACKLOG:
                await asyncio.sleep(0.05)  # the fingerprint is behind: found hosts must not pile up
            await self._host(_ntoa(address))

    async def run(self) -> Stats:
        start = time.perf_counter()
        order = self.req.addresses(self.req.permutation())  # one iterator the workers share
        workers = [asyncio.ensure_future(self._worker(order)) for _ in range(max(1, self.req.concurrency))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            self.stats.elapsed = time.perf_counter() - start
            self.stats.timeout = self.rtt.timeout
        return self.stats
