"""Logging in without letting a guesser in, or slowing everyone else down.

- **Throttle.**  Failed logins are counted per client address and per user name.  The
  first `FREE` failures cost nothing; after that the next attempt from that address, or
  for that user, is not even heard (429, Retry-After) for 1, 2, 4 ... seconds (at most
  `MAX_DELAY`); `LOCKOUT_AFTER` failures within `WINDOW` lock that address or user out
  for `LOCKOUT`.  A success clears both counts.  The counts live in the server's memory
  (at most `MAX_TRACKED` addresses and as many user names): restarting `smbsentry serve`
  clears them, and `smbsentry users passwd` works whatever they say.
- **scrypt off the event loop.**  A password check (16 MB and ~50 ms of scrypt) runs in a
  worker thread, at most `SCRYPT_SLOTS` at once, so a crowd posting passwords neither
  stalls every other page nor takes the machine's memory.
- **Logged.**  Every failed and successful login, every refusal by the throttle and every
  wrong setup token is logged (logger ``smbsentry.web.login``; `smbsentry serve` prints it
  on the console) with the client address; a user name is shown quoted and cut short.
- **Setup token.**  While no admin exists, /setup asks for a one-time token that
  `smbsentry serve` prints on its console, so only someone who sees that console can set
  the first password (not a page in a browser that a rebinding DNS name points here).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import anyio

log = logging.getLogger("smbsentry.web.login")

FREE = 3
BASE_DELAY = 1.0
MAX_DELAY = 60.0
LOCKOUT_AFTER = 10
WINDOW = 900.0
LOCKOUT = 900.0
MAX_TRACKED = 10_000
SCRYPT_SLOTS = 2


def shown(name: str) -> str:
    """A user name fit for a log line: quoted, escaped, short."""
    return repr(str(name)[:64])


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0


class Throttle:
    """Failure counts per address and per user, with growing delays and a lockout (see the module's docstring)."""

    def __init__(self, free: int = FREE, base: float = BASE_DELAY, max_delay: float = MAX_DELAY,
                 lockout_after: int = LOCKOUT_AFTER, lockout: float = LOCKOUT, window: float = WINDOW,
                 limit: int = MAX_TRACKED, clock=time.monotonic) -> None:
        self.free, self.base, self.max_delay = free, base, max_delay
        self.lockout_after, self.lockout, self.window = lockout_after, lockout, window
        self.limit, self.clock = limit, clock
        self._records: dict[str, OrderedDict[str, _Record]] = {"address": OrderedDict(), "user": OrderedDict()}
        self._lock = threading.Lock()

    def _keys(self, address: str, user: str) -> list[tuple[str, str]]:
        return [("address", address or "?"), ("user", (user or "").lower()[:64])]

    def _get(self, kind: str, key: str, now: float, create: bool = False) -> _Record | None:
        table = self._records[kind]
        rec = table.get(key)
        if rec is not None and now - rec.last > self.window and now >= rec.until:
            rec = None
            del table[key]
        if rec is None and create:
            rec = table[key] = _Record()
            while len(table) > self.limit:
                table.popitem(last=False)
        if rec is not None:
            table.move_to_end(key)
        return rec

    def wait(self, address: str, user: str) -> float:
        """Seconds before an attempt from this address for this user is heard (0: now)."""
        now = self.clock()
        with self._lock:
            recs = [self._get(kind, key, now) for kind, key in self._keys(address, user)]
        return max([r.until - now for r in recs if r is not None] + [0.0])

    def failed(self, address: str, user: str) -> tuple[int, float]:
        """Count a failure; (the larger count, seconds until the next attempt is heard)."""
        now = self.clock()
        worst, delay = 0, 0.0
        with self._lock:
            for kind, key in self._keys(address, user):
                rec = self._get(kind, key, now, create=True)
                rec.failures += 1
                rec.last = now
                if rec.failures >= self.lockout_after:
                    wait = self.lockout
                elif rec.failures > self.free:
                    wait = min(self.base * 2 ** (rec.failures - self.free - 1), self.max_delay)
                else:
                    wait = 0.0
                rec.until = max(rec.until, now + wait)
                worst, delay = max(worst, rec.failures), max(delay, rec.until - now)
        return worst, delay

    def succeeded(self, address: str, user: str) -> None:
        with self._lock:
            for kind, key in self._keys(address, user):
                self._records[kind].pop(key, None)


_limiters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # event loop -> its CapacityLimiter


async def off_loop(fn, *args):
    """Run a password hash or check in a worker thread, SCRYPT_SLOTS at a time (callers wait in the loop)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(SCRYPT_SLOTS)
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)


class SetupToken:
    """The one-time token /setup asks for while no admin exists."""

    def __init__(self, needed: bool) -> None:
        self.value: str | None = secrets.token_urlsafe(18) if needed else None

    def check(self, given: str) -> bool:
        return self.value is not None and hmac.compare_digest(given.strip().encode(), self.value.encode())

    def spend(self) -> None:
        self.value = None
