"""Who may reach which share, and the access mask a tree connect reports.

Shared by the SMB1 and SMB2 servers so both dialects of one emulated host
agree.  The masks are what Windows reports in TREE_CONNECT responses
(0x001fffff on IPC$; full or read-only file access on disk shares); a
profile may give its own (Samba reports 0x1ff on IPC$).
"""

from __future__ import annotations

from ..protocol import status
from .profile_model import Profile, Share

IPC_ACCESS = 0x001FFFFF
FULL_ACCESS = 0x001F01FF
READ_ACCESS = 0x001200A9
MAX_TREES = 32  # trees one connection may hold: a bound on what a client can make us keep


def admit_tree(profile: Profile, share_name: str, kind: str, open_trees: int) -> tuple[Share | None, int]:
    """(the share, 0) when a session of `kind` (anonymous | guest) may connect
    to `share_name`, else (None, the NT status to answer).  One decision for
    both dialects, so SMB1 and SMB2 of an emulated host never disagree."""
    share = profile.share(share_name)
    if share is None:
        return None, status.BAD_NETWORK_NAME
    if not share.reachable(kind):
        return None, status.ACCESS_DENIED
    if open_trees >= MAX_TREES:
        return None, status.REQUEST_NOT_ACCEPTED
    return share, 0


def maximal_access(profile: Profile, share: Share) -> int:
    if share.maximal_access is not None:
        return share.maximal_access
    if share.type == "ipc":
        return IPC_ACCESS
    return FULL_ACCESS if share.writable else READ_ACCESS
