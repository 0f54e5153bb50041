"""Disk shares as a directory listing sees them: read-only, a few fixed entries.

A share's root holds the profile's `entries` (shares[].entries: names,
directories, sizes), every directory in it is empty, and nothing can be
created, written or deleted: the lab answers what a listing asks (impacket's
and pysmb's listPath, smbclient's `ls`, nmap's smb-ls) and refuses the rest
with the status Windows gives a read-only share.  One `DiskFiles` per
connection keeps the opens (at most MAX_OPENS) and each directory open's
enumeration cursor, as Windows does per handle: a QUERY_DIRECTORY goes on
where the last one stopped until RESTART_SCANS, and the end is
STATUS_NO_MORE_FILES (STATUS_NO_SUCH_FILE when the pattern matched nothing).

SMB2 only here (CREATE, QUERY_DIRECTORY, QUERY_INFO, READ, CLOSE on a disk
tree); the SMB1 FIND_FIRST2 answer reads the same `listing`.
"""

from __future__ import annotations

import fnmatch
import os
import struct
from dataclasses import dataclass

from ..protocol import smb2, smb2_dir, smb2_pipe, status
from ..protocol.smb2_dir import Entry
from .profile_model import Profile, Share

MAX_OPENS = 64
# 2017-05-12 00:00:00 UTC as a FILETIME: the listing's fixed times
FIXED_TIME = (1494547200 + 11644473600) * 10_000_000
VOLUME_UNITS, VOLUME_FREE = 26_214_400, 13_107_200  # 100 GiB of 4 KiB clusters, half free

STATUS_NO_MORE_FILES = 0x80000006
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_INVALID_INFO_CLASS = 0xC0000003
STATUS_INFO_LENGTH_MISMATCH = 0xC0000004
STATUS_NO_SUCH_FILE = 0xC000000F
STATUS_END_OF_FILE = 0xC0000011
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_OBJECT_PATH_NOT_FOUND = 0xC000003A
STATUS_FILE_IS_A_DIRECTORY = 0xC00000BA
STATUS_NOT_A_DIRECTORY = 0xC0000103
STATUS_FILE_CLOSED = 0xC0000128
STATUS_MEDIA_WRITE_PROTECTED = 0xC00000A2
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_INSUFF_SERVER_RESOURCES = 0xC0000205
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_INVALID_DEVICE_REQUEST = 0xC0000010

FILE_DIRECTORY_FILE, FILE_NON_DIRECTORY_FILE, FILE_DELETE_ON_CLOSE = 0x01, 0x40, 0x1000
FILE_OPEN, FILE_OPEN_IF = 1, 3
WRITE_ACCESS = 0x00000002 | 0x00000004 | 0x00000010 | 0x00000100 | 0x00010000 | 0x40000000  # write, append, EA, attrs, DELETE, GENERIC_WRITE


def root_entry(share: Share) -> Entry:
    return Entry("", smb2_dir.FILE_ATTRIBUTE_DIRECTORY, 0, FIXED_TIME, 5)


def children(share: Share) -> list[Entry]:
    """The entries of the share's root, in the profile's order (file ids from 0x100)."""
    out = []
    for i, (name, is_dir, size) in enumerate(share.entries):
        attrs = smb2_dir.FILE_ATTRIBUTE_DIRECTORY if is_dir else smb2_dir.FILE_ATTRIBUTE_ARCHIVE
        out.append(Entry(name, attrs, size, FIXED_TIME, 0x100 + i))
    return out


def lookup(share: Share, path: str) -> Entry | None:
    """The entry at `path` (\\ or / separated, case-insensitive), None when it does not exist."""
    parts = [p for p in path.replace("/", "\\").split("\\") if p]
    if not parts:
        return root_entry(share)
    if len(parts) > 1:
        return None  # the share's directories are empty
    return next((e for e in children(share) if e.name.upper() == parts[0].upper()), None)


def listing(share: Share, directory: Entry, pattern: str) -> list[Entry]:
    """`.`, `..` and the directory's entries that match `pattern` (`*` and `?`, case-insensitive)."""
    dots = [Entry(".", smb2_dir.FILE_ATTRIBUTE_DIRECTORY, 0, FIXED_TIME, directory.file_id),
            Entry("..", smb2_dir.FILE_ATTRIBUTE_DIRECTORY, 0, FIXED_TIME, 5)]
    items = dots + (children(share) if directory.name == "" else [])
    want = (pattern or "*").upper().replace("<", "*").replace(">", "?").replace('"', ".")
    if want in ("*", "*.*"):
        return items
    return [e for e in items if fnmatch.fnmatchcase(e.name.upper(), want)]


@dataclass(slots=True)
class Open:
    tree_id: int
    share: Share
    entry: Entry
    path: str
    cursor: int = 0
    pattern: str | None = None


class DiskFiles:
    """The disk-share opens of one SMB2 connection."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.opens: dict[bytes, Open] = {}

    def smb2_request(self, server, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        handler = {smb2_pipe.CREATE: self.create, smb2_pipe.CLOSE: self.close, smb2_dir.QUERY_DIRECTORY: self.query_directory,
                   smb2_dir.QUERY_INFO: self.query_info, smb2_pipe.READ: self.read}.get(hdr.command)
        if handler is None:  # WRITE, IOCTL, SET_INFO ...: a read-only share
            code = STATUS_MEDIA_WRITE_PROTECTED if hdr.command == smb2_pipe.WRITE else STATUS_NOT_SUPPORTED
            return smb2_pipe.error_response(hdr, code)
        return handler(hdr, msg, share)

    def _open(self, hdr: smb2.Header, file_id: bytes) -> Open | None:
        op = self.opens.get(file_id)
        return op if op is not None and op.tree_id == hdr.tree_id else None

    def create(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        req = smb2_pipe.parse_create_request(msg)
        entry = lookup(share, req.name)
        if entry is None:
            missing = STATUS_OBJECT_PATH_NOT_FOUND if "\\" in req.name.strip("\\") else STATUS_OBJECT_NAME_NOT_FOUND
            code = STATUS_ACCESS_DENIED if req.disposition not in (FILE_OPEN,) and share.writable else missing
            return smb2_pipe.error_response(hdr, code)
        if req.disposition not in (FILE_OPEN, FILE_OPEN_IF) or req.create_options & FILE_DELETE_ON_CLOSE:
            return smb2_pipe.error_response(hdr, STATUS_ACCESS_DENIED)  # nothing is replaced or deleted here
        if req.desired_access & WRITE_ACCESS and not share.writable:
            return smb2_pipe.error_response(hdr, STATUS_ACCESS_DENIED)
        if req.create_options & FILE_DIRECTORY_FILE and not entry.is_dir:
            return smb2_pipe.error_response(hdr, STATUS_NOT_A_DIRECTORY)
        if req.create_options & FILE_NON_DIRECTORY_FILE and entry.is_dir:
            return smb2_pipe.error_response(hdr, STATUS_FILE_IS_A_DIRECTORY)
        if len(self.opens) >= MAX_OPENS:
            return smb2_pipe.error_response(hdr, STATUS_INSUFF_SERVER_RESOURCES)
        file_id = os.urandom(16)
        self.opens[file_id] = Open(hdr.tree_id, share, entry, req.name.strip("\\"))
        t = entry.time
        body = smb2_pipe.CreateResponseFixed(create_action=1, creation_time=t, last_access_time=t, last_write_time=t,
                                             change_time=t, allocation_size=(entry.size + 4095) // 4096 * 4096,
                                             end_of_file=entry.size, attributes=entry.attributes, file_id=file_id).pack()
        return smb2_pipe.reply_header(hdr, command=smb2_pipe.CREATE) + body

    def close(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        req = smb2_pipe.parse_close_request(msg)
        if self._open(hdr, req.file_id) is None:
            return smb2_pipe.error_response(hdr, STATUS_FILE_CLOSED)
        del self.opens[req.file_id]
        return smb2_pipe.close_response(hdr)

    def read(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        """A file's bytes are zeros of its size; the lab never hands out more than one read's worth."""
        req = smb2_pipe.parse_read_request(msg)
        op = self._open(hdr, req.file_id)
        if op is None:
            return smb2_pipe.error_response(hdr, STATUS_FILE_CLOSED)
        if op.entry.is_dir:
            return smb2_pipe.error_response(hdr, STATUS_INVALID_DEVICE_REQUEST)
        left = max(0, op.entry.size - req.offset)
        if not left:
            return smb2_pipe.error_response(hdr, STATUS_END_OF_FILE)
        return smb2_pipe.read_response(hdr, b"\x00" * min(left, req.length, smb2_pipe.MAX_DATA))

    def query_directory(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        req = smb2_dir.parse_query_directory_request(msg)
        op = self._open(hdr, req.file_id)
        if op is None:
            return smb2_pipe.error_response(hdr, STATUS_FILE_CLOSED)
        if not op.entry.is_dir:
            return smb2_pipe.error_response(hdr, status.INVALID_PARAMETER)
        if req.info_class not in smb2_dir.DIRECTORY_CLASSES:
            return smb2_pipe.error_response(hdr, STATUS_INVALID_INFO_CLASS)
        if req.flags & (smb2_dir.RESTART_SCANS | smb2_dir.REOPEN) or op.pattern is None:
            op.cursor, op.pattern = 0, req.pattern or "*"
        items = listing(op.share, op.entry, op.pattern)
        if op.cursor >= len(items):
            return smb2_pipe.error_response(hdr, STATUS_NO_SUCH_FILE if not items else STATUS_NO_MORE_FILES)
        data, count = smb2_dir.pack_entries(items[op.cursor:], req.info_class, min(req.output_length, smb2_dir.MAX_OUTPUT),
                                            bool(req.flags & smb2_dir.RETURN_SINGLE_ENTRY), op.cursor)
        if not count:
            return smb2_pipe.error_response(hdr, STATUS_INFO_LENGTH_MISMATCH)
        op.cursor += count
        return smb2_dir.output_response(hdr, smb2_dir.QUERY_DIRECTORY, data)

    def query_info(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        req = smb2_dir.parse_query_info_request(msg)
        op = self._open(hdr, req.file_id)
        if op is None:
            return smb2_pipe.error_response(hdr, STATUS_FILE_CLOSED)
        if req.info_type == smb2_dir.INFO_FILE:
            data = smb2_dir.file_info(op.entry, req.info_class, "\\" + op.path)
        elif req.info_type == smb2_dir.INFO_FILESYSTEM:
            serial = struct.unpack("<I", self.profile.name.encode()[:4].ljust(4, b"\x00"))[0]
            data = smb2_dir.fs_info(req.info_class, "", serial, FIXED_TIME, VOLUME_UNITS, VOLUME_FREE)
        else:  # security descriptors and quotas: not for anonymous or guest callers
            return smb2_pipe.error_response(hdr, STATUS_ACCESS_DENIED)
        if data is None:
            return smb2_pipe.error_response(hdr, STATUS_INVALID_INFO_CLASS)
        if len(data) > req.output_length:
            if req.info_class in (1, 5, 9, 18, 22):  # variable-length: the part that fits, and say so
                return smb2_dir.output_response(hdr, smb2_dir.QUERY_INFO, data[:req.output_length], STATUS_BUFFER_OVERFLOW)
            return smb2_pipe.error_response(hdr, STATUS_INFO_LENGTH_MISMATCH)
        return smb2_dir.output_response(hdr, smb2_dir.QUERY_INFO, data)
