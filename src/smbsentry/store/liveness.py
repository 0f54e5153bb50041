"""Is the process that runs a scan still there?

A scan row says "running" from begin_scan until finish_scan.  A process
killed with SIGKILL (or a machine that lost power) never gets to finish, so
the row would say "running" for ever.  Each running scan therefore records
its owner (host name, process id and the process's start time, so a reused
pid is not taken for the same process) in its options under "owner", and
the store touches the row's `updated` column every HEARTBEAT seconds while
the scan runs.  A reader decides:

* same machine: the owner's process is gone (or is another process with
  the same pid): stale;
* another machine: no heartbeat for STALE_AFTER seconds: stale.

A stale scan is shown, and recorded, as "interrupted"; `--resume` may then
take it over.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

HEARTBEAT = 10.0
STALE_AFTER = 90.0  # several missed heartbeats (a busy database, a slow flush)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None elsewhere or if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields after the last ")"
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return int(fields[19])  # field 22: starttime
    except (IndexError, ValueError):
        return None


def me() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _start_ticks(pid)}


def alive(owner: dict | None) -> bool | None:
    """True / False when it can be told from here (same machine), None otherwise."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    if os.path.isdir("/proc/self"):
        ticks = _start_ticks(pid)
        if ticks is None:
            return False
        return owner.get("start") is None or ticks == owner.get("start")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale(owner: dict | None, updated: datetime | None, now: datetime | None = None) -> bool:
    """A "running" scan whose process is known gone, or silent for STALE_AFTER seconds."""
    state = alive(owner)
    if state is not None:
        return not state
    if updated is None:
        return True
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return (now - updated).total_seconds() > STALE_AFTER
