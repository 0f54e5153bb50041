"""What the detectors read from SMB messages: names and small parsers.

Only the fields the detectors need are read, straight from the bytes with
``struct`` (the hot path).  The SESSION_SETUP_ANDX strings are read in place
too, with the same layout and checks as the sans-I/O parsers of
:mod:`smbsentry.protocol` (the tests compare the two).  Nothing here raises
on malformed input: functions return ``None`` (or an empty result) instead.
"""

from __future__ import annotations

import struct

from ..protocol import smb1 as proto_smb1
from ..protocol import smb2 as proto_smb2
from ..protocol.errors import ProtocolError

__all__ = [
    "SMB1_COMMANDS",
    "SMB2_COMMANDS",
    "SMB2_DIALECTS",
    "session_setup_strings",
    "smb1_command_name",
    "smb1_dialects",
    "smb2_command_name",
    "status_hex",
]

SMB1_COMMANDS = {
    0x00: "CREATE_DIRECTORY", 0x01: "DELETE_DIRECTORY", 0x02: "OPEN", 0x03: "CREATE",
    0x04: "CLOSE", 0x05: "FLUSH", 0x06: "DELETE", 0x07: "RENAME",
    0x08: "QUERY_INFORMATION", 0x09: "SET_INFORMATION", 0x0A: "READ", 0x0B: "WRITE",
    0x0C: "LOCK_BYTE_RANGE", 0x0D: "UNLOCK_BYTE_RANGE", 0x0E: "CREATE_TEMPORARY",
    0x0F: "CREATE_NEW", 0x10: "CHECK_DIRECTORY", 0x11: "PROCESS_EXIT", 0x12: "SEEK",
    0x13: "LOCK_AND_READ", 0x14: "WRITE_AND_UNLOCK", 0x1A: "READ_RAW", 0x1B: "READ_MPX",
    0x1C: "READ_MPX_SECONDARY", 0x1D: "WRITE_RAW", 0x1E: "WRITE_MPX",
    0x1F: "WRITE_MPX_SECONDARY", 0x20: "WRITE_COMPLETE", 0x21: "QUERY_SERVER",
    0x22: "SET_INFORMATION2", 0x23: "QUERY_INFORMATION2", 0x24: "LOCKING_ANDX",
    0x25: "TRANSACTION", 0x26: "TRANSACTION_SECONDARY", 0x27: "IOCTL",
    0x28: "IOCTL_SECONDARY", 0x29: "COPY", 0x2A: "MOVE", 0x2B: "ECHO",
    0x2C: "WRITE_AND_CLOSE", 0x2D: "OPEN_ANDX", 0x2E: "READ_ANDX", 0x2F: "WRITE_ANDX",
    0x30: "NEW_FILE_SIZE", 0x31: "CLOSE_AND_TREE_DISC", 0x32: "TRANSACTION2",
    0x33: "TRANSACTION2_SECONDARY", 0x34: "FIND_CLOSE2", 0x35: "FIND_NOTIFY_CLOSE",
    0x70: "TREE_CONNECT", 0x71: "TREE_DISCONNECT", 0x72: "NEGOTIATE",
    0x73: "SESSION_SETUP_ANDX", 0x74: "LOGOFF_ANDX", 0x75: "TREE_CONNECT_ANDX",
    0x7E: "SECURITY_PACKAGE_ANDX", 0x80: "QUERY_INFORMATION_DISK", 0x81: "SEARCH",
    0x82: "FIND", 0x83: "FIND_UNIQUE", 0x84: "FIND_CLOSE", 0xA0: "NT_TRANSACT",
    0xA1: "NT_TRANSACT_SECONDARY", 0xA2: "NT_CREATE_ANDX", 0xA4: "NT_CANCEL",
    0xA5: "NT_RENAME", 0xC0: "OPEN_PRINT_FILE", 0xC1: "WRITE_PRINT_FILE",
    0xC2: "CLOSE_PRINT_FILE", 0xC3: "GET_PRINT_QUEUE", 0xD8: "READ_BULK",
    0xD9: "WRITE_BULK", 0xDA: "WRITE_BULK_DATA", 0xFE: "INVALID",
}  # fmt: skip

SMB2_COMMANDS = {
    0: "NEGOTIATE", 1: "SESSION_SETUP", 2: "LOGOFF", 3: "TREE_CONNECT",
    4: "TREE_DISCONNECT", 5: "CREATE", 6: "CLOSE", 7: "FLUSH", 8: "READ", 9: "WRITE",
    10: "LOCK", 11: "IOCTL", 12: "CANCEL", 13: "ECHO", 14: "QUERY_DIRECTORY",
    15: "CHANGE_NOTIFY", 16: "QUERY_INFO", 17: "SET_INFO", 18: "OPLOCK_BREAK",
    19: "SERVER_TO_CLIENT_NOTIFICATION",
}  # fmt: skip

#: DialectRevision -> the flow event's name for it: the dialects the protocol layer declares
#: (:data:`smbsentry.protocol.smb2.DIALECTS`), and the codes it never negotiates that a capture can
#: still hold: the SMB2 wildcard and the pre-release SMB 2.2 / 3.1 builds of Windows 8 and 10.
SMB2_DIALECTS = {
    **proto_smb2.DIALECTS,
    proto_smb2.WILDCARD_DIALECT: "2.???",
    0x0222: "2.2.2",
    0x0224: "2.2.4",
    0x0310: "3.1",
}

_u16 = struct.Struct("<H").unpack_from


def smb1_command_name(cmd: int) -> str:
    return SMB1_COMMANDS.get(cmd) or f"0x{cmd:02X}"


def smb2_command_name(cmd: int) -> str:
    return SMB2_COMMANDS.get(cmd) or f"0x{cmd:04X}"


def status_hex(status: int) -> str:
    return f"0x{status:08x}"


def smb1_dialects(msg: bytes, limit: int = 64) -> list[str]:
    """Dialect strings of an SMB1 NEGOTIATE request (empty when malformed)."""
    if len(msg) < 35:
        return []
    wc = msg[32]
    off = 33 + 2 * wc
    if off + 2 > len(msg):
        return []
    bcc = _u16(msg, off)[0]
    data = msg[off + 2 : off + 2 + bcc]
    known = _DIALECT_LISTS.get((data, limit))
    if known is not None:
        return list(known)
    out: list[str] = []
    pos = 0
    n = len(data)
    while pos < n and len(out) < limit:
        if data[pos] != 0x02:
            break
        end = data.find(b"\x00", pos + 1)
        if end < 0:
            break
        out.append(data[pos + 1 : end].decode("latin-1"))
        pos = end + 1
    if len(data) <= 1024:
        if len(_DIALECT_LISTS) >= 256:
            _DIALECT_LISTS.clear()
        _DIALECT_LISTS[(data, limit)] = tuple(out)
    return out


#: Dialect block -> its dialects: clients of one kind offer the same list on every connection.
_DIALECT_LISTS: dict[tuple[bytes, int], tuple[str, ...]] = {}


def session_setup_strings(msg: bytes, reply: bool) -> tuple[str | None, str | None]:
    """(NativeOS, NativeLanMan) of an SMB1 SESSION_SETUP_ANDX request or reply.

    Every SMBv1 session passes here, so only the counts and the strings are
    read (no header or message objects): the same layout and the same
    checks as :func:`smbsentry.protocol.smb1_replies.parse_session_setup_request` /
    ``_response`` (the tests compare the two on corpus messages and on
    random ones), at a sixth of the cost.  A reply whose strings are
    damaged gives ``(None, None)``; a request keeps the strings read before
    the damage, as the parser does.
    """
    n = len(msg)
    if n < 33 or msg[:4] != b"\xffSMB" or msg[4] != proto_smb1.SESSION_SETUP_ANDX:
        return None, None
    wc = msg[32]
    off = 33 + 2 * wc
    if off + 2 > n:  # no ByteCount (cut inside the words, or none after them): no strings
        return None, None
    data_offset = off + 2
    end = data_offset + _u16(msg, off)[0]
    if end > n:
        return None, None
    data = msg[data_offset:end]
    unicode = bool(_u16(msg, 10)[0] & proto_smb1.FLAGS2_UNICODE)
    read = proto_smb1.read_strings
    try:
        if reply:
            skip = 0
            if wc >= 4:  # extended: AndX(4) Action(2) SecurityBlobLength(2)
                skip = _u16(msg, 39)[0]
                if skip > proto_smb1.MAX_BLOB or skip > len(data):
                    return None, None
            strings = read(data, data_offset, skip, 3, unicode, strict=True)
            return strings[0] or None, strings[1] or None
        if wc == 12:
            skip = _u16(msg, 47)[0]
            if skip > proto_smb1.MAX_BLOB or skip > len(data):
                return None, None
            strings = read(data, data_offset, skip, 2, unicode)
            return strings[0] or None, strings[1] or None
        if wc == 13 or wc == 10:
            oem = _u16(msg, 47)[0]
            uni = _u16(msg, 49)[0] if wc == 13 else 0
            if oem > 256 or uni > 1024 or oem + uni > len(data):
                return None, None
            strings = read(data, data_offset, oem + uni, 4, unicode)
            return strings[2] or None, strings[3] or None
    except ProtocolError:
        return None, None
    return None, None
