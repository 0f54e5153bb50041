"""The asyncio scan engine: many hosts in flight, bounded memory, clean stops.

Targets come from a lazy iterator and are pulled by a fixed number of
workers, so a /8 starts at once and is never materialised.  Only hosts with
an open SMB port or a probed service that answered are handed to the
writer; the rest are counted.  A host that failed because this machine ran
out of something (file descriptors, buffers, local ports) is not a result:
the scan slows down (pacing.AdaptiveLimit) and tries it again after a
pause; one that still fails after LOCAL_RETRIES is handed to `on_lost` and
counted in `summary.lost`, so the caller can say so and exit non-zero.  A
stop request (Ctrl-C) makes the workers take no new targets and cancels the
hosts in flight, and everything already finished has been written by then.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..model import HostResult
from .fingerprint import RateLimiter, ScanOptions, scan_host
from .pacing import AdaptiveLimit, connections_per_host, fit_concurrency
from ..discover.targets import Target

LOST_SAMPLE = 5  # addresses or names a summary line quotes
# getaddrinfo's answers that mean the name does not exist (bad input), as opposed to a resolver that failed
NO_SUCH_NAME = frozenset(e for e in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None)) if e is not None)
LOCAL_RETRIES = 6  # tries after the first for a host lost to a local resource error
LOCAL_BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # seconds before each of them


@dataclass(slots=True)
class ScanSummary:
    targets: int = 0
    with_smb: int = 0
    services_only: int = 0  # SMB closed, another probed service answered
    port_states: Counter = field(default_factory=Counter)
    unresolved: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    connections: int = 0
    retried: int = 0  # hosts tried again after a local resource error
    lost: int = 0  # hosts never scanned: local resource errors on every try
    lost_sample: list[str] = field(default_factory=list)  # the first few of them
    lost_reason: str | None = None  # the first of their errors
    unresolved_sample: list[str] = field(default_factory=list)  # the first few host names that did not resolve
    unresolved_for_now: int = 0  # ... of them: the resolver failed or timed out (not "no such name")

    @property
    def hosts_per_second(self) -> float:
        return self.targets / self.elapsed if self.elapsed > 0 else 0.0


class Engine:
    def __init__(
        self,
        options: ScanOptions,
        concurrency: int = 256,
        rate: float | None = None,
        on_result: Callable[[HostResult], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_lost: Callable[[HostResult], None] | None = None,
    ) -> None:
        """`on_lost` gets the hosts given up after local resource errors; without
        it they go to `on_result` with their errors (as for the engines' workers)."""
        self.options = options
        self.fit = fit_concurrency(concurrency, connections_per_host(options))
        self.concurrency = self.fit.concurrency
        self.gate = AdaptiveLimit(self.concurrency)
        self.limiter = RateLimiter(rate)
        self.on_result = on_result
        self.on_progress = on_progress
        self.on_lost = on_lost
        self.summary = ScanSummary()
        self._stopping = False

    def stop(self) -> None:
        """Take no new targets; the caller cancels the run task for the rest."""
        self._stopping = True

    async def _resolve(self, target: Target) -> str | None:
        """The target's address; None for a host name that did not resolve, counted in the summary (a name the
        resolver says does not exist is bad input; a resolver that failed or timed out, a run-time failure)."""
        if target.address is not None:
            return target.address
        loop = asyncio.get_running_loop()
        permanent = True
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(target.hostname, None, type=socket.SOCK_STREAM), self.options.timeout
            )
        except socket.gaierror as exc:
            infos, permanent = [], exc.errno in NO_SUCH_NAME
        except (OSError, asyncio.TimeoutError):
            infos, permanent = [], False
        except UnicodeError:  # not a name IDNA can encode
            infos = []
        if infos:
            return infos[0][4][0]
        s = self.summary
        s.unresolved += 1
        s.unresolved_for_now += not permanent
        if len(s.unresolved_sample) < LOST_SAMPLE:
            s.unresolved_sample.append(str(target.hostname)[:80])
        return None

    async def _worker(self, it) -> None:
        summary = self.summary
        feed = it if isinstance(it, Feed) else None
        while True:
            target = await feed.get() if feed is not None else next(it, None)
            if target is None or self._stopping:
                return
            address = await self._resolve(target)
            summary.targets += 1
            if address is None:
                if self.on_progress:
                    self.on_progress(1)
                continue
            options = self.options
            if target.open_ports is not None:
                # An earlier nmap/masscan run said which SMB ports are open: probe only those.
                # Service ports are all probed: such a run may not have scanned them at all
                # (nmap -p445,139), and "not listed" is not "closed".
                ports = tuple(p for p in options.ports if p in target.open_ports)
                if not ports and not options.service_ports:
                    if self.on_progress:
                        self.on_progress(1)
                    continue
                if ports != options.ports:
                    options = ScanOptions(**{**_fields(options), "ports": ports})
            result = await self._scan(address, options, target.hostname)
            if result is None:
                return  # stopping
            for state in result.ports.values():
                summary.port_states[state] += 1
            if result.smb_open:
                summary.with_smb += 1
            elif result.services_answered:
                summary.services_only += 1
            if result.local_error:
                self._lose(result)
            elif result.reportable and self.on_result:
                self.on_result(result)
            if self.on_progress:
                self.on_progress(1)

    async def _scan(self, address: str, options: ScanOptions, hostname: str | None) -> HostResult | None:
        """scan_host within the adaptive limit, tried again after local resource errors."""
        loop = asyncio.get_running_loop()
        for attempt in range(LOCAL_RETRIES + 1):
            await self.gate.acquire()
            clean = False
            try:
                result = await scan_host(address, options, self.limiter, hostname=hostname)
                clean = not result.local_error
            finally:
                self.gate.release(clean)
            self.summary.connections += result.connections
            if clean or attempt == LOCAL_RETRIES:
                return result
            self.gate.shrink(loop.time())
            if attempt == 0:
                self.summary.retried += 1
            await asyncio.sleep(LOCAL_BACKOFF[min(attempt, len(LOCAL_BACKOFF) - 1)])
            if self._stopping:
                return None
        return result  # pragma: no cover - the loop returns

    def _lose(self, result: HostResult) -> None:
        summary = self.summary
        summary.lost += 1
        if len(summary.lost_sample) < LOST_SAMPLE:
            summary.lost_sample.append(result.address)
        if summary.lost_reason is None:
            summary.lost_reason = next((e for e in result.errors if "local-error" in e), None)
        if self.on_lost is not None:
            self.on_lost(result)
        elif self.on_result is not None:
            self.on_result(result)

    async def run(self, targets: Iterable[Target] | Feed) -> ScanSummary:
        # Start-up objects (modules, the knowledge base) never die: freeze
        # them out of the cycle collector's scans, and collect the young
        # generation less often; per-host objects are freed by refcount.
        gc.freeze()
        gc.set_threshold(20000, 20, 100)
        it = targets if isinstance(targets, Feed) else iter(targets)
        start = time.perf_counter()
        workers = [asyncio.ensure_future(self._worker(it)) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            self.summary.interrupted = True
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            self.summary.elapsed = time.perf_counter() - start
        return self.summary


class Feed:
    """Targets that arrive while the scan runs: discovery hands each confirmed
    host here and the workers take them at once (pipelining); `close` after
    the last one lets the workers finish."""

    def __init__(self, high_water: int = 1024) -> None:
        self._queue: asyncio.Queue = asyncio.Queue()
        self._closed = False
        self.high_water = high_water  # `wait_room` holds a producer above this many waiting

    def put(self, target: Target) -> None:
        if not self._closed:
            self._queue.put_nowait(target)

    def backlog(self) -> int:
        """Targets waiting for a worker (read by discovery, also from its sender thread)."""
        return self._queue.qsize()

    async def wait_room(self) -> None:
        while self._queue.qsize() > self.high_water:
            await asyncio.sleep(0.01)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def get(self) -> Target | None:
        target = await self._queue.get()
        if target is None:
            self._queue.put_nowait(None)  # the end, for the next worker too
        return target


def _fields(options: ScanOptions) -> dict:
    return {name: getattr(options, name) for name in options.__slots__}


def install_uvloop() -> bool:
    """Use uvloop when it is installed (Linux); plain asyncio otherwise."""
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
