"""Who may reach which share, and the access mask a tree connect reports.

Shared by the SMB1 and SMB2 servers so both dialects of one emulated host
agree.  The masks are what Windows reports in TREE_CONNECT responses
(0x001fffff on IPC$; full or read-only file access on disk shares); a
profile may give its own (Samba reports 0x1ff on IPC$).
"""

from __future__ import annotations

from ..protocol import status
from .profiles import Profile, Share

IPC_ACCESS = 0x001FFFFF
FULL_ACCESS = 0x001F01FF
READ_ACCESS = 0x001200A9


def share_denied(profile: Profile, share: Share, kind: str) -> int:
    """0 when a session of `kind` (anonymous | guest) may connect, else the status."""
    return 0 if share.reachable(kind) else status.ACCESS_DENIED


def maximal_access(profile: Profile, share: Share) -> int:
    if share.maximal_access is not None:
        return share.maximal_access
    if share.type == "ipc":
        return IPC_ACCESS
    return FULL_ACCESS if share.writable else READ_ACCESS
