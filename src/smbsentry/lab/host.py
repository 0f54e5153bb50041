"""One TCP connection to one emulated host, without I/O (in the manner of h11).

The asyncio server feeds received bytes to `HostConnection.feed` and gets
back an `Action`: the bytes to send and whether to end the connection, and
how ("close" = FIN, "reset" = RST, as Windows does when SMBv1 is disabled).
Tests drive the same object with byte strings.

The connection owns the bounded NetBIOS framing (port 139's SESSION REQUEST
included), the special behaviours (silent, garbage, reset-after-negotiate)
and the switch between SMB1 and SMB2 (an SMB1 NEGOTIATE offering
"SMB 2.???" is answered in SMB2).  Protocol errors in client input never
escape: the connection is reset, as a real server would drop it.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass

from ..protocol import netbios, smb1, smb2
from ..protocol.errors import ProtocolError
from ..protocol.transport import NETBIOS_SESSION, SMB_DIRECT_TCP
from .profile_model import Profile
from .smb1_server import Smb1Server
from .smb2_server import Smb2Server

try:  # the named-pipe layer (share listing) is optional: without it IPC$ has no pipes
    from .pipes import PipeServer
except ImportError:  # pragma: no cover
    PipeServer = None  # type: ignore[assignment,misc]

MAX_FRAME = 1 << 18
MAX_COMPOUND = 16
SMB2_RELATED = 0x00000004
EPOCH_DIFF = 116444736000000000
CALLED_NAME_NOT_PRESENT = 0x82


def filetime_now() -> int:
    return int(time.time() * 10_000_000) + EPOCH_DIFF


@dataclass(frozen=True, slots=True)
class Action:
    send: bytes = b""
    end: str | None = None  # None | "close" | "reset"


class HostConnection:
    """Emulation of one connection; `role` is 445 (direct TCP) or 139 (NBSS).

    `address` (the emulated host's IPv4 address as an int) personalises the
    server GUID so that hosts sharing a profile stay distinct, as cloned
    machines do.  `start_time` is the host's boot time (FILETIME) for the
    profiles that report it.
    """

    def __init__(
        self,
        profile: Profile,
        role: int = SMB_DIRECT_TCP,
        address: int = 0,
        start_time: int | None = None,
        clock=filetime_now,
        pipes_factory=PipeServer,
    ) -> None:
        self.profile = profile
        self.role = role
        self.address = address
        self.clock = clock
        self.start_time = start_time if start_time is not None else clock() - 3_600 * 10_000_000
        self.reader = netbios.FrameReader(MAX_FRAME, netbios.SERVER_TYPES)
        self.session_open = role != NETBIOS_SESSION
        self.negotiated = False
        self.ended: str | None = None
        self.smb1 = Smb1Server(self)
        self.smb2 = Smb2Server(self)
        self.pipes = pipes_factory(self) if pipes_factory is not None else None

    # -- helpers used by the protocol servers ------------------------------------

    def now(self) -> int:
        return self.clock()

    def server_guid(self, guid: bytes | None) -> bytes:
        """The profile's GUID with the host address folded into its last bytes."""
        if guid is None:
            guid = self.profile.smb2.server_guid if self.profile.smb2 else b"\x00" * 16
        tail = int.from_bytes(guid[12:], "big") ^ (self.address & 0xFFFFFFFF)
        return guid[:12] + tail.to_bytes(4, "big")

    def smb2_upgrade(self, dialect: int) -> bytes:
        """Answer an SMB1 multi-protocol NEGOTIATE in SMB2: 0x02FF asks the
        client to negotiate again in SMB2, 0x0202 settles on SMB 2.0.2."""
        self.smb2.wildcard = dialect == 0x02FF
        self.smb2.dialect = None if dialect == 0x02FF else dialect
        return self.smb2.response_for(dialect)

    # -- the sans-I/O interface ------------------------------------------------

    def feed(self, data: bytes) -> Action:
        if self.ended:
            return Action(end=self.ended)
        behaviour = self.profile.behaviour
        if behaviour == "silent":
            return Action()  # keep nothing: a tarpit reads and forgets
        try:
            messages = self.reader.feed(data)
        except ProtocolError:
            return self._end("reset")
        out = bytearray()
        for msg_type, payload in messages:
            reply = self._message(msg_type, payload)
            if isinstance(reply, str):
                return self._end(reply, bytes(out))
            if reply:
                out += reply
            if self.ended:
                return Action(bytes(out), self.ended)
        return Action(bytes(out))

    def _end(self, how: str, send: bytes = b"") -> Action:
        self.ended = how
        return Action(send, how)

    def _message(self, msg_type: int, payload: bytes) -> bytes | str | None:
        if self.profile.behaviour == "garbage":
            return netbios.frame(_garbage())
        if msg_type == netbios.SESSION_REQUEST:
            return self._session_request(payload)
        if msg_type != netbios.SESSION_MESSAGE or not self.session_open:
            return "close"
        if self.profile.behaviour == "reset-after-negotiate" and self.negotiated:
            return "reset"
        try:
            reply = self._smb(payload)
        except (ProtocolError, ValueError, IndexError, KeyError, struct.error):
            # A request the emulation cannot follow ends the connection the
            # way a real server drops one: never an exception in the server.
            return "reset"
        if isinstance(reply, bytes):
            self.negotiated = self.negotiated or self.smb1.negotiated or self.smb2.dialect is not None or self.smb2.wildcard
            return netbios.frame(reply)
        return reply

    def _smb(self, payload: bytes) -> bytes | str | None:
        magic = payload[:4]
        if magic == smb1.MAGIC:
            if self.smb2.dialect is not None or self.smb2.wildcard:
                return "close"  # SMB1 after SMB2 was chosen
            return self.smb1.handle(payload)
        if magic == smb2.MAGIC:
            if self.smb1.negotiated:
                return "close"
            return self._smb2_compound(payload)
        return "reset"  # transform/compression headers or junk: never negotiated here

    def _smb2_compound(self, payload: bytes) -> bytes | str | None:
        """Answer each request of an SMB2 compound in turn and chain the
        responses (8-byte aligned, NextCommand set), as MS-SMB2 3.3.4.1.3
        describes.  Related requests inherit the previous SessionId/TreeId."""
        replies: list[bytes] = []
        offset, session_id, tree_id = 0, 0, 0
        for _ in range(MAX_COMPOUND):
            hdr = smb2.parse_header(payload[offset:])
            end = offset + hdr.next_command if hdr.next_command else len(payload)
            if end <= offset or end > len(payload):
                return "reset"
            msg = payload[offset:end]
            if hdr.flags & SMB2_RELATED and replies:
                fixed = hdr.replace(
                    session_id=session_id if hdr.session_id == 0xFFFFFFFFFFFFFFFF else hdr.session_id,
                    tree_id=tree_id if hdr.tree_id == 0xFFFFFFFF else hdr.tree_id,
                )
                msg = fixed.pack() + msg[smb2.Header.size :]
            reply = self.smb2.handle(msg)
            if reply is None or isinstance(reply, str):
                return reply  # "close"/"reset" end the whole connection
            answered = smb2.Header.unpack_from(reply)
            session_id, tree_id = answered.session_id, answered.tree_id
            replies.append(reply)
            if not hdr.next_command:
                break
            offset = end
        for i in range(len(replies) - 1):
            padded = replies[i] + b"\x00" * ((8 - len(replies[i]) % 8) % 8)
            replies[i] = padded[:20] + len(padded).to_bytes(4, "little") + padded[24:]
        return b"".join(replies)

    def _session_request(self, payload: bytes) -> bytes | str:
        """Port 139: answer the NetBIOS SESSION REQUEST for *SMBSERVER or the
        host's own name (Samba accepts any name)."""
        if self.session_open and self.role == NETBIOS_SESSION:
            return "close"
        try:
            called, _suffix, _ = netbios.decode_name(payload, 0)
        except ProtocolError:
            return "close"
        wanted = {"*SMBSERVER", self.profile.netbios_name.upper()}
        if self.profile.accept_any_called_name or called.upper() in wanted:
            self.session_open = True
            return netbios.frame(b"", netbios.POSITIVE_RESPONSE)
        self.ended = "close"
        return netbios.frame(bytes([CALLED_NAME_NOT_PRESENT]), netbios.NEGATIVE_RESPONSE)


def _garbage() -> bytes:
    """16-200 random bytes that start like no SMB message."""
    size = 16 + os.urandom(1)[0] % 185
    data = bytearray(os.urandom(size))
    if data[0] in (0xFC, 0xFD, 0xFE, 0xFF):
        data[0] = 0x42
    return bytes(data)
