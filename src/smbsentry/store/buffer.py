"""Buffered writes of host results: nothing leaves the buffer uncommitted.

`add` appends to a list and, when a batch is due (it holds `batch` items,
or its oldest item is `flush_seconds` old), writes it at once if nobody else
is writing; a background thread writes what is due when no `add` comes,
waits out transient errors, and touches the heartbeat of the scans this
process runs.  An item
leaves the list only once the transaction that wrote it has committed, so a
database that goes away mid-batch loses nothing: the batch is tried again
with a growing pause (retry.py) for up to the retry window.  Past the window,
or on an error waiting does not cure (a full disk), the buffer is *failed*:
`add` and `flush` raise WriteFailed with one line, and the caller stops the
scan cleanly; whatever is still in the list was never recorded, so
`--resume` scans those hosts again.

The list is bounded (`max_pending`): a database that keeps a scan waiting
that long fails the buffer instead of growing memory without end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .retry import cause, retrying, transient


class WriteFailed(Exception):
    """Internal: the write failed for good; `message` is the one line to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WriteBehind:
    def __init__(self, write: Callable[[list], None], beat: Callable[[], None], *, window: float,
                 batch: int, flush_seconds: float, beat_seconds: float, max_pending: int = 50_000) -> None:
        self._write = write
        self._beat = beat
        self.window = window
        self.batch = batch
        self.flush_seconds = flush_seconds
        self.beat_seconds = beat_seconds
        self.max_pending = max_pending
        self._items: list[Any] = []
        self._since: float | None = None  # when the oldest pending item was added
        self._lock = threading.Lock()  # guards _items
        self._flushing = threading.Lock()  # one writer at a time
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_beat = time.monotonic()
        self.failure: str | None = None
        self.committed = 0  # items written by this process
        self.beating = False  # scans to keep alive: the thread runs even with nothing pending

    # -------------------------------------------------------------- producer side
    def add(self, item: Any) -> None:
        """Queue one item.  When a batch is due and nobody is writing, it is
        written here, once (the scan's thread doing the work, as before, costs
        less than a second thread fighting it for the interpreter); a
        transient failure is left to the background thread to wait out."""
        if self.failure is not None:
            raise WriteFailed(self.failure)
        with self._lock:
            self._items.append(item)
            if self._since is None:
                self._since = time.monotonic()
            n = len(self._items)
        if n > self.max_pending:
            self.failure = f"{n} results waiting for the database for too long (the store stopped accepting writes)"
            raise WriteFailed(self.failure)
        if self._due() and self._flushing.acquire(blocking=False):
            try:
                self._write_pending(retry=False)
            except SQLAlchemyError as exc:
                if not transient(exc):
                    self.failure = f"the store stopped accepting writes: {cause(exc)}"
                    raise WriteFailed(self.failure) from None
                self._wake.set()
            finally:
                self._flushing.release()
        self.start()

    def __len__(self) -> int:
        return len(self._items)

    def start(self) -> None:
        with self._lock:
            if self._closed or self._thread is not None:
                return
            thread = self._thread = threading.Thread(target=self._run, name="smbsentry-store", daemon=True)
        thread.start()

    # -------------------------------------------------------------- writing
    def flush(self) -> int:
        """Write everything pending now, waiting out transient errors; returns how many items were written."""
        if self.failure is not None:
            raise WriteFailed(self.failure)
        with self._flushing:
            return self._write_pending(retry=True)

    def _write_pending(self, retry: bool) -> int:
        """The caller holds self._flushing.  Items leave the list only once committed."""
        with self._lock:
            batch = list(self._items)
        if not batch:
            return 0
        if not retry:
            self._write(batch)
        else:
            try:
                retrying(lambda: self._write(batch), self.window)
            except SQLAlchemyError as exc:
                self.failure = f"the store stopped accepting writes: {cause(exc)}"
                raise WriteFailed(self.failure) from None
        with self._lock:
            del self._items[:len(batch)]
            self._since = time.monotonic() if self._items else None
        self.committed += len(batch)
        return len(batch)

    def _due(self) -> bool:
        since = self._since
        return bool(self._items) and (len(self._items) >= self.batch or
                                      (since is not None and time.monotonic() - since >= self.flush_seconds))

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds / 2)
            self._wake.clear()
            if self._closed:
                return
            if self.failure is None and self._due():
                try:
                    self.flush()
                except WriteFailed:
                    pass  # said by the next add() or flush()
            if self.beating and time.monotonic() - self._last_beat >= self.beat_seconds:
                self._last_beat = time.monotonic()
                try:
                    self._beat()
                except SQLAlchemyError:
                    pass  # the next beat, or the next write, tries again
            with self._lock:  # add() appends under the same lock, then calls start()
                if not self._items and not self.beating:
                    self._thread = None
                    return

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.window + 10)
