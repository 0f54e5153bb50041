"""The asyncio scan engine: many hosts in flight, bounded memory, clean stops.

Targets come from a lazy iterator and are pulled by a fixed number of
workers, so a /8 starts at once and is never materialised.  Only hosts with
an open SMB port, a probed service that answered, or a local failure are
handed to the writer; the rest are counted.  A stop
request (Ctrl-C) makes the workers take no new targets and cancels the hosts
in flight, and everything already finished has been written by then.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..model import HostResult
from .fingerprint import RateLimiter, ScanOptions, scan_host
from .targets import Target

CONNECTIONS_PER_HOST = 3  # what one host can hold open at once (SMB)
# with service probes: rdp, http, kerberos, smtp, imap, notes, worldclient, nbns at
# once; the SMB sockets are closed before they start (fingerprint.scan_host)
CONNECTIONS_PER_HOST_WITH_SERVICES = 8


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

    @property
    def hosts_per_second(self) -> float:
        return self.targets / self.elapsed if self.elapsed > 0 else 0.0


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted`; return what we have."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ValueError, OSError):
        return 1024


def effective_concurrency(requested: int, per_host: int = CONNECTIONS_PER_HOST) -> int:
    limit = raise_fd_limit(requested * per_host + 64)
    return max(1, min(requested, (limit - 64) // per_host))


class Engine:
    def __init__(
        self,
        options: ScanOptions,
        concurrency: int = 256,
        rate: float | None = None,
        on_result: Callable[[HostResult], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.options = options
        self.concurrency = effective_concurrency(
            concurrency, CONNECTIONS_PER_HOST_WITH_SERVICES if options.service_ports else CONNECTIONS_PER_HOST)
        self.limiter = RateLimiter(rate)
        self.on_result = on_result
        self.on_progress = on_progress
        self.summary = ScanSummary()
        self._stopping = False

    def stop(self) -> None:
        """Take no new targets; the caller cancels the run task for the rest."""
        self._stopping = True

    async def _resolve(self, target: Target) -> str | None:
        if target.address is not None:
            return target.address
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(target.hostname, None, type=socket.SOCK_STREAM), self.options.timeout
            )
        except (OSError, asyncio.TimeoutError, UnicodeError):
            return None
        return infos[0][4][0] if infos else None

    async def _worker(self, it) -> None:
        summary = self.summary
        for target in it:
            if self._stopping:
                return
            address = await self._resolve(target)
            summary.targets += 1
            if address is None:
                summary.unresolved += 1
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
            result = await scan_host(address, options, self.limiter, hostname=target.hostname)
            summary.connections += result.connections
            for state in result.ports.values():
                summary.port_states[state] += 1
            if result.smb_open:
                summary.with_smb += 1
            elif result.services_answered:
                summary.services_only += 1
            if result.reportable:
                if self.on_result:
                    self.on_result(result)
            if self.on_progress:
                self.on_progress(1)

    async def run(self, targets: Iterable[Target]) -> ScanSummary:
        # Start-up objects (modules, the knowledge base) never die: freeze
        # them out of the cycle collector's scans, and collect the young
        # generation less often; per-host objects are freed by refcount.
        gc.freeze()
        gc.set_threshold(20000, 20, 100)
        it = iter(targets)
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
