"""Which database errors are worth waiting out, and how they are told to people.

A PostgreSQL server that restarts, a network blip, or a SQLite file locked
by another writer go away on their own: the store retries those with a
growing pause for up to its retry window (SMBSENTRY_DB_RETRY seconds,
default 60).  A full disk, a read-only file, a constraint or a bad statement
do not: they fail at once.  Either way the caller gets one line naming the
cause, never the SQL statement and its parameters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

T = TypeVar("T")

DEFAULT_WINDOW = 60.0
PAUSES = (0.25, 0.5, 1.0, 2.0, 4.0)  # then 5 s between tries
NOT_TRANSIENT = ("disk is full", "no space left", "disk full", "could not extend file", "readonly database",
                 "read-only", "quota", "permission denied", "password authentication failed",
                 "does not exist", "no such table", "malformed")


def window_from_env() -> float:
    """SMBSENTRY_DB_RETRY (seconds, >= 0), else DEFAULT_WINDOW."""
    text = os.environ.get("SMBSENTRY_DB_RETRY", "").strip()
    try:
        value = float(text) if text else DEFAULT_WINDOW
    except ValueError:
        return DEFAULT_WINDOW
    return value if value >= 0 else DEFAULT_WINDOW


def cause(exc: BaseException) -> str:
    """The driver's own message, first line only (no statement, no parameters)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def transient(exc: BaseException) -> bool:
    if not isinstance(exc, (OperationalError, InterfaceError, DBAPIError)):
        return False
    low = cause(exc).lower()
    if any(word in low for word in NOT_TRANSIENT):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError))


def retrying(fn: Callable[[], T], window: float, on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """fn(), tried again on transient errors until `window` seconds have passed.

    The last error propagates (the caller turns it into a StoreError)."""
    start = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except SQLAlchemyError as exc:
            if not transient(exc):
                raise
            pause = PAUSES[attempt] if attempt < len(PAUSES) else 5.0
            left = window - (time.monotonic() - start)
            if left <= 0:
                raise
            pause = min(pause, left)
            if on_retry is not None:
                on_retry(exc, pause)
            time.sleep(pause)
            attempt += 1
