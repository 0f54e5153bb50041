"""Work handed to forked children, so `respond` uses the cores the scan leaves idle.

    wait = side(job, what)               # job() now, in a child; wait() raises OSError with its reason
    later = Deferred.start(warm, run)    # a child forked now runs warm() at once, run(message) when told
    status = later.go(message)           # ... and this is run()'s return value, its exit status
    later.cancel()                       # ... or it stops without running

Where there is no fork (Windows), both run the job in this process at the
moment it is asked for: the same results, one core.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import traceback
from typing import Callable

REASON_BYTES = 300
IDLE_SECONDS = 0.05
BACKGROUND_NICE = 10  # how much lower a Deferred child's priority is while the parent's work runs


def _background() -> int | None:
    """Lower this process's priority while it only prepares (loads, reads ahead) beside the parent's work:
    where the cores are busy, the scan goes first. Returns the priority to go back to (None: unchanged)."""
    try:
        before = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, min(before + BACKGROUND_NICE, 19))
    except (AttributeError, OSError):  # no priorities here (Windows), or not allowed
        return None
    return before


def _foreground(before: int | None) -> None:
    """Back to the priority the child started with, now that the parent waits for it. Raising a priority
    needs CAP_SYS_NICE (root has it); without it the child keeps the lower one, which slows it only where
    other work competes for the cores: the parent waits and takes none."""
    if before is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, before)
    except OSError:
        pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def side(job: Callable[[], None], what: str) -> Callable[..., None]:
    """Run job() in a forked child (the second core), or here where there is no fork; returns wait(kill=False),
    which raises OSError with the child's own one-line reason (a full disk...) when the job failed."""
    if not hasattr(os, "fork"):
        job()
        return lambda kill=False: None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's exit status and reason are what the parent tests
        os.close(r)
        code = 1
        try:
            job()
            code = 0
        except BaseException as e:  # noqa: BLE001 - the reason goes to the parent, never a traceback
            reason = e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}"
            os.write(w, str(reason).encode("utf-8", "replace")[:REASON_BYTES])
        finally:
            os._exit(code)
    os.close(w)

    def wait(kill: bool = False) -> None:
        if kill:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as fh:
            reason = fh.read(REASON_BYTES).decode("utf-8", "replace")
        if not kill and status != 0:
            raise OSError(0, f"{what}: {reason or 'failed'}")
    return wait


class Deferred:
    """A child forked before long work of the parent's (the scan): it loads what it will need (`warm`) while
    the parent works, at a lower priority (the parent's work goes first where the cores are busy), then waits,
    Ctrl-C ignored, for one message; `go(message)` has it run `run(message)` with Ctrl-C restored and returns
    its exit status, `cancel()` ends it unused. A parent that dies closes the pipe, and the child ends with it."""

    def __init__(self, run: Callable[[str], int], pid: int | None, pipe: int | None):
        self._run, self.pid, self._pipe = run, pid, pipe

    @classmethod
    def start(cls, warm: Callable[[], None], run: Callable[[str], int],
              idle: Callable[[], object] | None = None, orphaned: Callable[[], None] | None = None) -> "Deferred":
        """`idle`, when given, is called while the child waits (respond reads the scan's records as they are
        written and plans their hosts): again at once while it returns true (more is waiting; each call should
        be short, the message is read between calls), else after IDLE_SECONDS. `orphaned` is called when the
        parent died without a word (killed), so that what it left (respond's temporary folder) does not stay."""
        if not hasattr(os, "fork"):
            return cls(run, None, None)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - what the child does is tested through respond's results
            os.close(w)
            os._exit(_child(r, warm, run, idle, orphaned))
        os.close(r)
        return cls(run, pid, w)

    def go(self, message: str) -> int:
        """The child's exit status; -N when signal N ended it (os.waitstatus_to_exitcode's convention)."""
        if self.pid is None:
            return self._run(message)
        try:
            os.write(self._pipe, message.encode("utf-8"))
        except OSError:
            pass  # the child is gone already: its status says how
        os.close(self._pipe)
        return os.waitstatus_to_exitcode(self._wait())

    def cancel(self) -> None:
        if self.pid is None:
            return
        os.close(self._pipe)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._wait()

    def _wait(self) -> int:
        while True:
            try:
                return os.waitpid(self.pid, 0)[1]
            except KeyboardInterrupt:
                continue  # the child got the same Ctrl-C: it cleans up, says so and ends; its status is ours
            except ChildProcessError:
                return 1 << 8


def _child(r: int, warm: Callable[[], None], run: Callable[[str], int], idle: Callable[[], object] | None,
           orphaned: Callable[[], None] | None) -> int:  # pragma: no cover - see start
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C during the scan is the parent's to handle
    code = 1
    before = _background()
    try:
        warm()
        chunks = []
        busy = False
        while True:
            # idle() does a little at a time and says whether more is waiting: the message is read within one
            # such step of being sent, not after a long batch
            if idle is not None and not select.select([r], [], [], 0 if busy else IDLE_SECONDS)[0]:
                busy = bool(idle())
                continue
            chunk = os.read(r, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:  # cancelled, or the parent is gone (killed): what it left is the child's to clear
            if orphaned is not None:
                orphaned()
            return 0
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _foreground(before)
        code = run(b"".join(chunks).decode("utf-8"))
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - what the parent would have printed, then its status
        traceback.print_exc()
        code = 1
    finally:
        _flush()
    return code
