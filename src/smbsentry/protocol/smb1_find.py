"""SMB1 TRANSACTION2 directory searches and volume queries (MS-CIFS 2.2.6).

FIND_FIRST2 / FIND_NEXT2 parameters in and out, QUERY_FS_INFORMATION's
level, and the mapping of the SMB1 information levels onto the MS-FSCC
classes of protocol.smb2_dir (SMB_FIND_FILE_BOTH_DIRECTORY_INFO is
FileBothDirectoryInformation, the pass-through levels are 1000 + the class),
so the lab's SMB1 and SMB2 listings share one encoder.  Strings in the
parameters are UTF-16 when the header's FLAGS2_UNICODE is set; every read is
bounds-checked and names are capped.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import smb2_dir
from .errors import ProtocolError
from .fields import Layout, take

FIND_FIRST2, FIND_NEXT2, QUERY_FS_INFORMATION, QUERY_PATH_INFORMATION = 0x0001, 0x0002, 0x0003, 0x0005
FIND_CLOSE2 = 0x34  # SMB_COM_FIND_CLOSE2
# FIND flags
CLOSE_AFTER_REQUEST, CLOSE_AT_EOS, RETURN_RESUME_KEYS, CONTINUE_FROM_LAST = 0x01, 0x02, 0x04, 0x08
FLAGS2_UNICODE = 0x8000
MAX_NAME = 512
PASSTHROUGH = 1000

# SMB_FIND_FILE_* levels -> MS-FSCC classes
FIND_LEVELS = {0x101: smb2_dir.FILE_DIRECTORY_INFORMATION, 0x102: smb2_dir.FILE_FULL_DIRECTORY_INFORMATION,
               0x103: smb2_dir.FILE_NAMES_INFORMATION, 0x104: smb2_dir.FILE_BOTH_DIRECTORY_INFORMATION,
               0x105: smb2_dir.FILE_ID_FULL_DIRECTORY_INFORMATION, 0x106: smb2_dir.FILE_ID_BOTH_DIRECTORY_INFORMATION}
# SMB_QUERY_FS_* levels -> MS-FSCC FileFs* classes (SMB_INFO_ALLOCATION, 1, is its own layout)
FS_LEVELS = {0x102: 1, 0x103: 3, 0x104: 4, 0x105: 5}
SMB_INFO_ALLOCATION = 1


# -- the fixed parts, declared once (MS-CIFS 2.2.6.2, 2.2.6.3, 2.2.8.2.1) --------


class FindFirst2Params(Layout):
    """FIND_FIRST2 request parameters; the search pattern follows."""

    _fields_ = [("attributes", "H", 0x16), ("count", "H", 512), ("flags", "H", CLOSE_AT_EOS),
                ("level", "H", 0x104), ("storage_type", "I", 0)]


class FindNext2Params(Layout):
    """FIND_NEXT2 request parameters; the resume file name follows."""

    _fields_ = [("sid", "H", 0), ("count", "H", 0), ("level", "H", 0), ("resume_key", "I", 0), ("flags", "H", 0)]


class FindNext2ResponseParams(Layout):
    _fields_ = [("count", "H", 0), ("end_of_search", "H", 0), ("ea_error_offset", "H", 0),
                ("last_name_offset", "H", 0)]


class FindFirst2ResponseParams(Layout):
    """FIND_FIRST2's reply parameters: the search id, then FIND_NEXT2's."""

    _fields_ = [("sid", "H", 0)] + FindNext2ResponseParams._fields_


class NextEntryOffset(Layout):
    """The first field of every MS-FSCC directory entry: where the next one starts (0: the last)."""

    _fields_ = [("next", "I", 0)]


class InfoAllocation(Layout):
    """SMB_INFO_ALLOCATION (QUERY_FS_INFORMATION level 1)."""

    _fields_ = [("file_system_id", "I", 0), ("sectors_per_unit", "I", 8), ("units", "I", 0),
                ("free_units", "I", 0), ("bytes_per_sector", "H", 512)]


def _string(params: bytes, offset: int, unicode: bool) -> str:
    raw = params[offset:offset + MAX_NAME]
    if unicode:
        raw = raw[: len(raw) - len(raw) % 2]
        end = next((i for i in range(0, len(raw), 2) if raw[i:i + 2] == b"\x00\x00"), len(raw))
        return raw[:end].decode("utf-16-le", "replace")
    return raw.split(b"\x00", 1)[0].decode("latin-1")


@dataclass(frozen=True, slots=True)
class FindFirst:
    attributes: int
    count: int
    flags: int
    level: int
    name: str


def parse_find_first2(params: bytes, flags2: int) -> FindFirst:
    w = FindFirst2Params.unpack_from(take(params, 0, FindFirst2Params.size, "smb1: FIND_FIRST2 parameters"))
    name = _string(params, FindFirst2Params.size, bool(flags2 & FLAGS2_UNICODE))
    return FindFirst(w.attributes, w.count, w.flags, w.level, name)


@dataclass(frozen=True, slots=True)
class FindNext:
    sid: int
    count: int
    level: int
    resume_key: int
    flags: int
    name: str


def parse_find_next2(params: bytes, flags2: int) -> FindNext:
    w = FindNext2Params.unpack_from(take(params, 0, FindNext2Params.size, "smb1: FIND_NEXT2 parameters"))
    name = _string(params, FindNext2Params.size, bool(flags2 & FLAGS2_UNICODE))
    return FindNext(w.sid, w.count, w.level, w.resume_key, w.flags, name)


def find_first2_request_params(name: str, level: int = 0x104, count: int = 512, flags: int = CLOSE_AT_EOS,
                               attributes: int = 0x16) -> bytes:
    """Client: FIND_FIRST2 parameters (a Unicode name)."""
    raw = name.encode("utf-16-le")
    if len(raw) > MAX_NAME:
        raise ProtocolError(f"smb1: search name of {len(raw)} bytes exceeds {MAX_NAME}")
    head = FindFirst2Params.build(attributes=attributes, count=count, flags=flags, level=level)
    return head + raw + b"\x00\x00"


def last_entry_offset(data: bytes) -> int:
    """Where the last entry of a packed listing starts (FIND's LastNameOffset)."""
    read = NextEntryOffset.codec.unpack_from  # one field per entry: the compiled struct, no object
    pos = 0
    while pos + NextEntryOffset.size <= len(data):
        (nxt,) = read(data, pos)
        if not nxt:
            return pos
        pos += nxt
    return 0


def find_first2_response_params(sid: int, count: int, end: bool, last_name: int) -> bytes:
    return FindFirst2ResponseParams.build(sid=sid, count=count, end_of_search=int(end), last_name_offset=last_name)


def find_next2_response_params(count: int, end: bool, last_name: int) -> bytes:
    return FindNext2ResponseParams.build(count=count, end_of_search=int(end), last_name_offset=last_name)


def parse_find_first2_response_params(params: bytes) -> tuple[int, int, bool, int]:
    """Client: (sid, count, end of search, last name offset)."""
    head = take(params, 0, FindFirst2ResponseParams.size, "smb1: FIND_FIRST2 response")
    w = FindFirst2ResponseParams.unpack_from(head)
    return w.sid, w.count, bool(w.end_of_search), w.last_name_offset


def fs_level(level: int) -> int | None:
    """The FileFs* class a QUERY_FS_INFORMATION level asks for (None: SMB_INFO_ALLOCATION or unknown)."""
    if level > PASSTHROUGH:
        return level - PASSTHROUGH
    return FS_LEVELS.get(level)


def info_allocation(serial: int, total_units: int, free_units: int) -> bytes:
    """SMB_INFO_ALLOCATION: file system id, sectors per unit, units, free units, bytes per sector (16-bit counts)."""
    return InfoAllocation.build(file_system_id=serial, units=min(total_units, 0xFFFFFFFF),
                                free_units=min(free_units, 0xFFFFFFFF))
