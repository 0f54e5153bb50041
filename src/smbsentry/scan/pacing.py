"""How many hosts the scan keeps in flight, and what this machine can afford.

Two limits, both about *this* machine rather than the targets:

* At start, the file-descriptor budget: every host in flight holds a few
  sockets at once (fingerprint.py's connection plan), so the requested
  concurrency is fitted to RLIMIT_NOFILE (raised towards what is needed
  when the hard limit allows) and the caller says so when it had to lower it.
* While running, `AdaptiveLimit`: when a host fails because this machine ran
  out of something (EMFILE, ENFILE, ENOBUFS, EADDRNOTAVAIL: connection.py's
  LOCAL_ERRNOS), the number of hosts in flight is halved, and it creeps back
  up by one for every `limit` hosts that finish cleanly (as TCP's congestion
  window does).  The failed host is tried again after a pause instead of
  being recorded with an error that says nothing about the host.
"""

from __future__ import annotations

import asyncio
import collections
import resource
from dataclasses import dataclass

from .host import ScanOptions

RESERVED_FDS = 64  # standard streams, the output file, the store, DNS, the event loop
SERVICE_PROBES_AT_ONCE = 8  # rdp, http, kerberos, smtp, imap, notes, worldclient, nbns (SMB closed first)


def connections_per_host(options: ScanOptions) -> int:
    """The most sockets one host holds at once under fingerprint.py's plan.

    Each SMB port's first connection (SMB1), the SMB2 connection on the main
    port, and the dialect probes (one at a time with "range", all lower
    dialects at once with "exact"); the service probes run after the SMB
    sockets are closed."""
    smb = 0
    if options.ports:
        smb = len(options.ports) + 1 + (1 if options.dialect_method == "range" else 4)
    return max(1, smb, SERVICE_PROBES_AT_ONCE if options.service_ports else 0)


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


@dataclass(frozen=True, slots=True)
class Fit:
    requested: int
    concurrency: int
    fd_limit: int
    per_host: int

    @property
    def lowered(self) -> bool:
        return self.concurrency < self.requested

    def message(self) -> str:
        return (f"--concurrency {self.requested} needs about {self.requested * self.per_host + RESERVED_FDS} file "
                f"descriptors ({self.per_host} per host); the limit (ulimit -n) is {self.fd_limit}: "
                f"scanning {self.concurrency} hosts at once")


def fit_concurrency(requested: int, per_host: int) -> Fit:
    limit = raise_fd_limit(requested * per_host + RESERVED_FDS)
    return Fit(requested, max(1, min(requested, (limit - RESERVED_FDS) // per_host)), limit, per_host)


class AdaptiveLimit:
    """A semaphore whose size halves on local resource errors and grows back."""

    __slots__ = ("ceiling", "limit", "active", "_clean", "_waiters", "_last_cut")

    def __init__(self, limit: int) -> None:
        self.ceiling = self.limit = max(1, limit)
        self.active = 0
        self._clean = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._last_cut = float("-inf")

    async def acquire(self) -> None:
        while self.active >= self.limit:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        self.active += 1

    def release(self, clean: bool = True) -> None:
        self.active -= 1
        if clean and self.limit < self.ceiling:
            self._clean += 1
            if self._clean >= self.limit:
                self._clean = 0
                self.limit += 1
        self._wake()

    def shrink(self, now: float) -> None:
        """Halve the limit; the failures of one burst (within a second) count once."""
        if now - self._last_cut < 1.0:
            return
        self._last_cut = now
        self._clean = 0
        self.limit = max(1, self.limit // 2)

    def _wake(self) -> None:
        free = self.limit - self.active
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1
