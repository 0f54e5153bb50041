"""What the protocol servers (SMB1, SMB2, named pipes) may ask of their connection.

`HostConnection` (host.py) owns the servers and satisfies this Protocol; the
servers depend on this declaration only, so host -> servers is the one arrow
and there is no import cycle between them.
"""

from __future__ import annotations

from typing import Any, Protocol

from .profile_model import Profile


class Connection(Protocol):
    profile: Profile
    role: int  # 445 (direct TCP) or 139 (NBSS)
    start_time: int  # the emulated host's boot time, FILETIME
    pipes: Any  # the named-pipe server (pipes.PipeServer), or None when IPC$ has no pipes

    def now(self) -> int:
        """The current time as FILETIME (the connection's clock)."""

    def server_guid(self, guid: bytes | None) -> bytes:
        """The profile's server GUID personalised with the host address."""

    def smb2_upgrade(self, dialect: int) -> bytes:
        """Answer an SMB1 multi-protocol NEGOTIATE in SMB2."""
