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

from ..protocol import smb1, smb1_find, smb1_pipe, smb1_trans, smb2, smb2_dir, smb2_pipe, status
from ..protocol.errors import ProtocolError
from ..protocol.smb2_dir import Entry
from .profile_model import Profile, Share

MAX_OPENS = 64
# 2017-05-12 00:00:00 UTC as a FILETIME: the listing's fixed times
FIXED_TIME = (1494547200 + 11644473600) * 10_000_000
VOLUME_UNITS, VOLUME_FREE = 26_214_400, 13_107_200  # 100 GiB of 4 KiB clusters, half free


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
            code = status.MEDIA_WRITE_PROTECTED if hdr.command == smb2_pipe.WRITE else status.NOT_SUPPORTED
            return smb2_pipe.error_response(hdr, code)
        return handler(hdr, msg, share)

    def _open(self, hdr: smb2.Header, file_id: bytes) -> Open | None:
        op = self.opens.get(file_id)
        return op if op is not None and op.tree_id == hdr.tree_id else None

    def create(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        req = smb2_pipe.parse_create_request(msg)
        entry = lookup(share, req.name)
        if entry is None:
            missing = status.OBJECT_PATH_NOT_FOUND if "\\" in req.name.strip("\\") else status.OBJECT_NAME_NOT_FOUND
            code = status.ACCESS_DENIED if req.disposition not in (FILE_OPEN,) and share.writable else missing
            return smb2_pipe.error_response(hdr, code)
        if req.disposition not in (FILE_OPEN, FILE_OPEN_IF) or req.create_options & FILE_DELETE_ON_CLOSE:
            return smb2_pipe.error_response(hdr, status.ACCESS_DENIED)  # nothing is replaced or deleted here
        if req.desired_access & WRITE_ACCESS and not share.writable:
            return smb2_pipe.error_response(hdr, status.ACCESS_DENIED)
        if req.create_options & FILE_DIRECTORY_FILE and not entry.is_dir:
            return smb2_pipe.error_response(hdr, status.NOT_A_DIRECTORY)
        if req.create_options & FILE_NON_DIRECTORY_FILE and entry.is_dir:
            return smb2_pipe.error_response(hdr, status.FILE_IS_A_DIRECTORY)
        if len(self.opens) >= MAX_OPENS:
            return smb2_pipe.error_response(hdr, status.INSUFF_SERVER_RESOURCES)
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
            return smb2_pipe.error_response(hdr, status.FILE_CLOSED)
        del self.opens[req.file_id]
        return smb2_pipe.close_response(hdr)

    def read(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        """A file's bytes are zeros of its size; the lab never hands out more than one read's worth."""
        req = smb2_pipe.parse_read_request(msg)
        op = self._open(hdr, req.file_id)
        if op is None:
            return smb2_pipe.error_response(hdr, status.FILE_CLOSED)
        if op.entry.is_dir:
            return smb2_pipe.error_response(hdr, status.INVALID_DEVICE_REQUEST)
        left = max(0, op.entry.size - req.offset)
        if not left:
            return smb2_pipe.error_response(hdr, status.END_OF_FILE)
        return smb2_pipe.read_response(hdr, b"\x00" * min(left, req.length, smb2_pipe.MAX_DATA))

    def query_directory(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        req = smb2_dir.parse_query_directory_request(msg)
        op = self._open(hdr, req.file_id)
        if op is None:
            return smb2_pipe.error_response(hdr, status.FILE_CLOSED)
        if not op.entry.is_dir:
            return smb2_pipe.error_response(hdr, status.INVALID_PARAMETER)
        if req.info_class not in smb2_dir.DIRECTORY_CLASSES:
            return smb2_pipe.error_response(hdr, status.INVALID_INFO_CLASS)
        if req.flags & (smb2_dir.RESTART_SCANS | smb2_dir.REOPEN) or op.pattern is None:
            op.cursor, op.pattern = 0, req.pattern or "*"
        items = listing(op.share, op.entry, op.pattern)
        if op.cursor >= len(items):
            return smb2_pipe.error_response(hdr, status.NO_SUCH_FILE if not items else status.NO_MORE_FILES)
        data, count = smb2_dir.pack_entries(items[op.cursor:], req.info_class, min(req.output_length, smb2_dir.MAX_OUTPUT),
                                            bool(req.flags & smb2_dir.RETURN_SINGLE_ENTRY), op.cursor)
        if not count:
            return smb2_pipe.error_response(hdr, status.INFO_LENGTH_MISMATCH)
        op.cursor += count
        return smb2_dir.output_response(hdr, smb2_dir.QUERY_DIRECTORY, data)

    def query_info(self, hdr: smb2.Header, msg: bytes, share: Share) -> bytes:
        req = smb2_dir.parse_query_info_request(msg)
        op = self._open(hdr, req.file_id)
        if op is None:
            return smb2_pipe.error_response(hdr, status.FILE_CLOSED)
        if req.info_type == smb2_dir.INFO_FILE:
            data = smb2_dir.file_info(op.entry, req.info_class, "\\" + op.path)
        elif req.info_type == smb2_dir.INFO_FILESYSTEM:
            serial = struct.unpack("<I", self.profile.name.encode()[:4].ljust(4, b"\x00"))[0]
            data = smb2_dir.fs_info(req.info_class, "", serial, FIXED_TIME, VOLUME_UNITS, VOLUME_FREE)
        else:  # security descriptors and quotas: not for anonymous or guest callers
            return smb2_pipe.error_response(hdr, status.ACCESS_DENIED)
        if data is None:
            return smb2_pipe.error_response(hdr, status.INVALID_INFO_CLASS)
        if len(data) > req.output_length:
            if req.info_class in (1, 5, 9, 18, 22):  # variable-length: the part that fits, and say so
                return smb2_dir.output_response(hdr, smb2_dir.QUERY_INFO, data[:req.output_length], status.BUFFER_OVERFLOW)
            return smb2_pipe.error_response(hdr, status.INFO_LENGTH_MISMATCH)
        return smb2_dir.output_response(hdr, smb2_dir.QUERY_INFO, data)


# -- SMB1: TRANSACTION2 FIND_FIRST2 / FIND_NEXT2, QUERY_FS_INFORMATION, FIND_CLOSE2 ------------

MAX_SEARCHES = 16
MAX_FIND_DATA = 16384  # bytes of entries per FIND reply, below every client's MaxDataCount


@dataclass(slots=True)
class Search:
    items: list[Entry]
    cursor: int = 0


class Smb1Files:
    """The disk-share searches of one SMB1 connection (SIDs of FIND_FIRST2, kept until the end or FIND_CLOSE2)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.searches: dict[int, Search] = {}
        self.next_sid = 1

    def transaction2(self, hdr, req, share: Share) -> bytes:
        sub = req.setup[0] if req.setup else None
        try:
            if sub == smb1_find.FIND_FIRST2:
                return self.find_first(hdr, req, share)
            if sub == smb1_find.FIND_NEXT2:
                return self.find_next(hdr, req)
            if sub == smb1_find.QUERY_FS_INFORMATION:
                return self.query_fs(hdr, req)
        except ProtocolError:
            return smb1_pipe.error_response(hdr, status.INVALID_PARAMETER)
        return smb1_pipe.error_response(hdr, status.NOT_SUPPORTED)

    def _page(self, hdr, search: Search, level: int, count: int, max_data: int) -> tuple[bytes, int, bool] | bytes:
        info_class = smb1_find.FIND_LEVELS.get(level)
        if info_class is None:
            return smb1_pipe.error_response(hdr, status.INVALID_INFO_CLASS if level else status.INVALID_PARAMETER)
        left = search.items[search.cursor:search.cursor + max(1, min(count or 1, 1024))]
        data, n = smb2_dir.pack_entries(left, info_class, min(max_data or MAX_FIND_DATA, MAX_FIND_DATA),
                                        first_index=search.cursor, unicode=bool(hdr.flags2 & smb1_find.FLAGS2_UNICODE))
        if not n:
            return smb1_pipe.error_response(hdr, status.INFO_LENGTH_MISMATCH)
        search.cursor += n
        return data, n, search.cursor >= len(search.items)

    def find_first(self, hdr, req, share: Share) -> bytes:
        ask = smb1_find.parse_find_first2(req.params, hdr.flags2)
        folder, _, pattern = ask.name.replace("/", "\\").rpartition("\\")
        directory = lookup(share, folder)
        if directory is None or not directory.is_dir:
            return smb1_pipe.error_response(hdr, status.OBJECT_PATH_NOT_FOUND)
        items = listing(share, directory, pattern)
        if not items:
            return smb1_pipe.error_response(hdr, status.NO_SUCH_FILE)
        if len(self.searches) >= MAX_SEARCHES:
            return smb1_pipe.error_response(hdr, status.INSUFF_SERVER_RESOURCES)
        search = Search(items)
        page = self._page(hdr, search, ask.level, ask.count, req.max_data)
        if isinstance(page, bytes):
            return page
        data, n, end = page
        sid = self.next_sid
        self.next_sid = self.next_sid % 0xFFFF + 1
        if not (ask.flags & smb1_find.CLOSE_AFTER_REQUEST or (end and ask.flags & smb1_find.CLOSE_AT_EOS)):
            self.searches[sid] = search
        params = smb1_find.find_first2_response_params(sid, n, end, smb1_find.last_entry_offset(data))
        return smb1_trans.transaction_response(hdr, data=data, params=params)

    def find_next(self, hdr, req) -> bytes:
        ask = smb1_find.parse_find_next2(req.params, hdr.flags2)
        search = self.searches.get(ask.sid)
        if search is None:
            return smb1_pipe.error_response(hdr, status.INVALID_HANDLE)
        if search.cursor >= len(search.items):
            return smb1_pipe.error_response(hdr, status.NO_MORE_FILES)
        page = self._page(hdr, search, ask.level, ask.count, req.max_data)
        if isinstance(page, bytes):
            return page
        data, n, end = page
        if ask.flags & smb1_find.CLOSE_AFTER_REQUEST or (end and ask.flags & smb1_find.CLOSE_AT_EOS):
            self.searches.pop(ask.sid, None)
        params = smb1_find.find_next2_response_params(n, end, smb1_find.last_entry_offset(data))
        return smb1_trans.transaction_response(hdr, data=data, params=params)

    def query_fs(self, hdr, req) -> bytes:
        (level,) = struct.unpack("<H", req.params[:2].ljust(2, b"\x00"))
        serial = struct.unpack("<I", self.profile.name.encode()[:4].ljust(4, b"\x00"))[0]
        if level == smb1_find.SMB_INFO_ALLOCATION:
            data = smb1_find.info_allocation(serial, VOLUME_UNITS, VOLUME_FREE)
        else:
            info_class = smb1_find.fs_level(level)
            data = None if info_class is None else smb2_dir.fs_info(info_class, "", serial, FIXED_TIME, VOLUME_UNITS,
                                                                    VOLUME_FREE)
        if data is None:
            return smb1_pipe.error_response(hdr, status.INVALID_INFO_CLASS)
        return smb1_trans.transaction_response(hdr, data=data)

    def find_close(self, hdr, msg: bytes) -> bytes:
        m = smb1.parse_message(msg)
        (sid,) = struct.unpack("<H", m.words[:2].ljust(2, b"\x00"))
        if self.searches.pop(sid, None) is None:
            return smb1_pipe.error_response(hdr, status.INVALID_HANDLE)
        return smb1_pipe.error_response(hdr, 0)
