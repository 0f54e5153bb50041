"""SMB2 QUERY_DIRECTORY and QUERY_INFO, and the MS-FSCC structures they carry.

The lab lists its disk shares with these (impacket asks
FileFullDirectoryInformation, pysmb and smbclient FileIdBothDirectoryInformation,
smbclient also the volume's size and attributes); the SMB1 FIND_FIRST2 of the
lab reuses the directory entries (SMB_FIND_FILE_BOTH_DIRECTORY_INFO is
FileBothDirectoryInformation's layout, MS-CIFS 2.2.8.1.7).  Client-side
builders and parsers are here too, so the tests and a future share crawl read
what the lab writes with the same declarations.  Every offset and length a
peer sends is checked (fields.take); names are capped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from . import smb2
from .errors import ProtocolError
from .fields import Layout, take
from .smb2_pipe import _request, _request_of, _response_of, _utf16, error_response, reply_header
from .status import NtStatus

QUERY_DIRECTORY = 0x000E
QUERY_INFO = 0x0010

# QUERY_DIRECTORY flags (MS-SMB2 2.2.33)
RESTART_SCANS, RETURN_SINGLE_ENTRY, INDEX_SPECIFIED, REOPEN = 0x01, 0x02, 0x04, 0x10
# FileInformationClass values for directories (MS-FSCC 2.4)
FILE_DIRECTORY_INFORMATION = 1
FILE_FULL_DIRECTORY_INFORMATION = 2
FILE_BOTH_DIRECTORY_INFORMATION = 3
FILE_NAMES_INFORMATION = 12
FILE_ID_BOTH_DIRECTORY_INFORMATION = 37
FILE_ID_FULL_DIRECTORY_INFORMATION = 38
# QUERY_INFO InfoType
INFO_FILE, INFO_FILESYSTEM, INFO_SECURITY, INFO_QUOTA = 1, 2, 3, 4

FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_ARCHIVE = 0x01, 0x10, 0x20
MAX_NAME = 512  # bytes of a search pattern or file name (UTF-16)
MAX_OUTPUT = 1 << 16


class QueryDirectoryRequestFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 33),
        ("info_class", "B", FILE_ID_BOTH_DIRECTORY_INFORMATION),
        ("flags", "B", 0),
        ("file_index", "I", 0),
        ("file_id", "16s", b"\x00" * 16),
        ("name_offset", "H", 0),
        ("name_length", "H", 0),
        ("output_length", "I", MAX_OUTPUT),
    ]


class QueryInfoRequestFixed(Layout):
    _fields_ = [
        ("structure_size", "H", 41),
        ("info_type", "B", INFO_FILE),
        ("info_class", "B", 0),
        ("output_length", "I", MAX_OUTPUT),
        ("input_offset", "H", 0),
        ("reserved", "H", 0),
        ("input_length", "I", 0),
        ("additional", "I", 0),
        ("flags", "I", 0),
        ("file_id", "16s", b"\x00" * 16),
    ]


class OutputResponseFixed(Layout):
    """QUERY_DIRECTORY and QUERY_INFO responses: StructureSize 9, then where the output is."""

    _fields_ = [("structure_size", "H", 9), ("offset", "H", 0), ("length", "I", 0)]


@dataclass(slots=True)
class QueryDirectoryRequest:
    header: smb2.Header
    info_class: int
    flags: int
    file_index: int
    file_id: bytes
    pattern: str
    output_length: int


def query_directory_request(file_id: bytes, pattern: str, message_id: int, session_id: int, tree_id: int,
                            info_class: int = FILE_ID_BOTH_DIRECTORY_INFORMATION, flags: int = 0,
                            output_length: int = MAX_OUTPUT) -> bytes:
    raw = pattern.encode("utf-16-le")
    if len(raw) > MAX_NAME:
        raise ProtocolError(f"smb2: pattern of {len(raw)} bytes exceeds {MAX_NAME}")
    fixed = QueryDirectoryRequestFixed.build(info_class=info_class, flags=flags, file_id=file_id,
                                             name_offset=smb2.Header.size + QueryDirectoryRequestFixed.size,
                                             name_length=len(raw), output_length=output_length)
    return _request(QUERY_DIRECTORY, message_id, session_id, tree_id, fixed + (raw or b"\x00"))


def parse_query_directory_request(msg: bytes) -> QueryDirectoryRequest:
    hdr = _request_of(msg, QUERY_DIRECTORY)
    f = QueryDirectoryRequestFixed.unpack_from(msg, smb2.Header.size)
    raw = take(msg, f.name_offset, f.name_length, "smb2: search pattern", cap=MAX_NAME) if f.name_length else b""
    return QueryDirectoryRequest(hdr, f.info_class, f.flags, f.file_index, f.file_id, _utf16(raw), f.output_length)


@dataclass(slots=True)
class QueryInfoRequest:
    header: smb2.Header
    info_type: int
    info_class: int
    output_length: int
    additional: int
    file_id: bytes


def query_info_request(file_id: bytes, info_type: int, info_class: int, message_id: int, session_id: int,
                       tree_id: int, output_length: int = 4096) -> bytes:
    fixed = QueryInfoRequestFixed.build(info_type=info_type, info_class=info_class, output_length=output_length,
                                        input_offset=smb2.Header.size + QueryInfoRequestFixed.size, file_id=file_id)
    return _request(QUERY_INFO, message_id, session_id, tree_id, fixed + b"\x00")


def parse_query_info_request(msg: bytes) -> QueryInfoRequest:
    hdr = _request_of(msg, QUERY_INFO)
    f = QueryInfoRequestFixed.unpack_from(msg, smb2.Header.size)
    if f.input_length:
        take(msg, f.input_offset, f.input_length, "smb2: query info input", cap=MAX_OUTPUT)
    return QueryInfoRequest(hdr, f.info_type, f.info_class, f.output_length, f.additional, f.file_id)


def output_response(req: smb2.Header, command: int, data: bytes, status: int = 0) -> bytes:
    """Server: a QUERY_DIRECTORY / QUERY_INFO answer (status 0 or STATUS_BUFFER_OVERFLOW with data),
    or the ERROR response for any other failure."""
    if status and not (status == NtStatus.BUFFER_OVERFLOW and data):
        return error_response(req, status, command=command)
    offset = smb2.Header.size + OutputResponseFixed.size
    return reply_header(req, status, command=command) + OutputResponseFixed.build(offset=offset, length=len(data)) + (
        data or b"\x00")


def parse_output_response(msg: bytes, command: int) -> tuple[int, bytes]:
    """Client: (status, output bytes) of a QUERY_DIRECTORY / QUERY_INFO response."""
    hdr = _response_of(msg, command)
    f = OutputResponseFixed.unpack_from(msg, smb2.Header.size)
    if hdr.status not in (0, 0x80000005) or not f.length:
        return hdr.status, b""
    return hdr.status, take(msg, f.offset, f.length, "smb2: query output", cap=MAX_OUTPUT)


# -- directory entries (MS-FSCC 2.4) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One file or directory as a listing shows it."""

    name: str
    attributes: int = FILE_ATTRIBUTE_ARCHIVE
    size: int = 0
    time: int = 0  # FILETIME for the four times
    file_id: int = 0

    @property
    def is_dir(self) -> bool:
        return bool(self.attributes & FILE_ATTRIBUTE_DIRECTORY)


_COMMON = struct.Struct("<IIQQQQQQII")  # next, index, 4 times, EOF, allocation, attributes, name length
_FIXED = {FILE_DIRECTORY_INFORMATION: 64, FILE_FULL_DIRECTORY_INFORMATION: 68, FILE_BOTH_DIRECTORY_INFORMATION: 94,
          FILE_ID_BOTH_DIRECTORY_INFORMATION: 104, FILE_ID_FULL_DIRECTORY_INFORMATION: 80, FILE_NAMES_INFORMATION: 12}
DIRECTORY_CLASSES = frozenset(_FIXED)


def _allocation(size: int) -> int:
    return (size + 4095) // 4096 * 4096


def pack_entry(entry: Entry, info_class: int, index: int = 0, unicode: bool = True) -> bytes:
    """One entry without alignment padding; NextEntryOffset left 0 (pack_entries sets it).

    unicode=False is SMB1 without FLAGS2_UNICODE: the name in the OEM code
    page (Latin-1 here) with its terminating NUL counted, as Windows sends it."""
    if info_class not in _FIXED:
        raise ProtocolError(f"smb2: information class {info_class} is not a directory class")
    name = entry.name.encode("utf-16-le")[:MAX_NAME] if unicode else entry.name.encode("latin-1", "replace")[:255] + b"\x00"
    if info_class == FILE_NAMES_INFORMATION:
        return struct.pack("<III", 0, index, len(name)) + name
    t = entry.time
    body = _COMMON.pack(0, index, t, t, t, t, entry.size, _allocation(entry.size), entry.attributes, len(name))
    if info_class == FILE_FULL_DIRECTORY_INFORMATION:
        body += struct.pack("<I", 0)
    elif info_class == FILE_BOTH_DIRECTORY_INFORMATION:
        body += struct.pack("<IBB24s", 0, 0, 0, b"")
    elif info_class == FILE_ID_BOTH_DIRECTORY_INFORMATION:
        body += struct.pack("<IBB24sHQ", 0, 0, 0, b"", 0, entry.file_id)
    elif info_class == FILE_ID_FULL_DIRECTORY_INFORMATION:
        body += struct.pack("<IIQ", 0, 0, entry.file_id)
    return body + name


def pack_entries(entries: list[Entry], info_class: int, limit: int, single: bool = False,
                 first_index: int = 0, unicode: bool = True) -> tuple[bytes, int]:
    """(buffer, how many entries) of as many entries as fit in `limit` bytes, each 8-byte aligned."""
    out = bytearray()
    last = None
    count = 0
    for i, entry in enumerate(entries):
        raw = pack_entry(entry, info_class, first_index + i, unicode)
        pad = -len(out) % 8
        if len(out) + pad + len(raw) > limit:
            break
        if last is not None:
            out += b"\x00" * pad
            struct.pack_into("<I", out, last, len(out) - last)
        last = len(out)
        out += raw
        count += 1
        if single:
            break
    return bytes(out), count


def parse_entries(buf: bytes, info_class: int, limit: int = 1024) -> list[Entry]:
    """Client: the entries of a QUERY_DIRECTORY output (or an SMB1 FIND's data), bounds-checked."""
    fixed = _FIXED.get(info_class)
    if fixed is None:
        raise ProtocolError(f"smb2: information class {info_class} is not a directory class")
    out, pos = [], 0
    for _ in range(limit):
        if info_class == FILE_NAMES_INFORMATION:
            nxt, _index, name_len = struct.unpack_from("<III", take(buf, pos, 12, "smb2: names entry"))
            name = take(buf, pos + 12, name_len, "smb2: entry name", cap=MAX_NAME)
            out.append(Entry(_utf16(name)))
        else:
            head = take(buf, pos, fixed, "smb2: directory entry")
            nxt, _index, t, _a, _w, _c, size, _alloc, attrs, name_len = _COMMON.unpack_from(head)
            name = take(buf, pos + fixed, name_len, "smb2: entry name", cap=MAX_NAME)
            file_id = struct.unpack_from("<Q", head, fixed - 8)[0] if info_class in (
                FILE_ID_BOTH_DIRECTORY_INFORMATION, FILE_ID_FULL_DIRECTORY_INFORMATION) else 0
            out.append(Entry(_utf16(name), attrs, size, t, file_id))
        if not nxt:
            return out
        pos += nxt
    raise ProtocolError(f"smb2: more than {limit} directory entries")


# -- file and volume information (MS-FSCC 2.4, 2.5) -------------------------------------------


def file_info(entry: Entry, info_class: int, path: str = "") -> bytes | None:
    """FILE information of one open (None: a class the lab does not answer)."""
    t, size, attrs = entry.time, entry.size, entry.attributes
    basic = struct.pack("<QQQQII", t, t, t, t, attrs, 0)
    standard = struct.pack("<QQIBBH", _allocation(size), size, 1, 0, int(entry.is_dir), 0)
    name = path.encode("utf-16-le")[:MAX_NAME]
    parts = {
        4: basic, 5: standard, 6: struct.pack("<Q", entry.file_id), 7: struct.pack("<I", 0),
        8: struct.pack("<I", 0x001200A9), 14: struct.pack("<Q", 0), 16: struct.pack("<I", 0x20),
        17: struct.pack("<I", 0), 9: struct.pack("<I", len(name)) + name,
        34: struct.pack("<QQQQQQII", t, t, t, t, _allocation(size), size, attrs, 0),
        35: struct.pack("<II", attrs, 0),
    }
    if info_class == 18:  # FileAllInformation
        return b"".join(parts[k] for k in (4, 5, 6, 7, 8, 14, 16, 17, 9))
    if info_class == 22:  # FileStreamInformation: a directory has none, a file its ::$DATA
        if entry.is_dir:
            return b""
        stream = "::$DATA".encode("utf-16-le")
        return struct.pack("<IIQQ", 0, len(stream), size, _allocation(size)) + stream
    return parts.get(info_class)


def fs_info(info_class: int, label: str, serial: int, time: int, total_units: int, free_units: int) -> bytes | None:
    """FILESYSTEM information of a share's volume: NTFS, 4 KiB clusters (None: not answered)."""
    if info_class == 1:
        raw = label.encode("utf-16-le")[:64]
        return struct.pack("<QIIBB", time, serial, len(raw), 0, 0) + raw
    if info_class == 3:
        return struct.pack("<QQII", total_units, free_units, 8, 512)
    if info_class == 4:
        return struct.pack("<II", 0x07, 0x20)  # FILE_DEVICE_DISK, FILE_DEVICE_IS_MOUNTED
    if info_class == 5:
        raw = "NTFS".encode("utf-16-le")
        return struct.pack("<III", 0x000700FF, 255, len(raw)) + raw
    if info_class == 7:
        return struct.pack("<QQQII", total_units, free_units, free_units, 8, 512)
    return None
