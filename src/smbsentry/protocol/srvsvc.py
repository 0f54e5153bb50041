"""SRVSVC NetrShareEnum (MS-SRVS 3.1.4.8, opnum 15) at level 1, in NDR; no I/O.

    NET_API_STATUS NetrShareEnum(
        [in, string, unique] SRVSVC_HANDLE ServerName,
        [in, out] LPSHARE_ENUM_STRUCT InfoStruct,
        [in] DWORD PreferedMaximumLength,
        [out] DWORD *TotalEntries,
        [in, out, unique] DWORD *ResumeHandle);

Request stub: ServerName (unique pointer to a conformant varying UTF-16
string), InfoStruct (Level, the union discriminant, a unique pointer to a
SHARE_INFO_1_CONTAINER {EntriesRead, Buffer}), PreferedMaximumLength,
ResumeHandle (unique pointer to a DWORD).  Response stub: InfoStruct with
the SHARE_INFO_1 array {netname*, type, remark*} and its deferred strings,
TotalEntries, ResumeHandle, then the WERROR return value.

All integers here are 4-byte aligned little-endian NDR (transfer syntax NDR
2.0, drep 0x10); every count is checked against the stub and the caps below.
Samba calls this call srvsvc_NetShareEnumAll; nmap's and NetExec's share
listings send exactly this request.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from .errors import ProtocolError
from .fields import take

SRVSVC_SYNTAX = (uuid.UUID("4b324fc8-1670-01d3-1278-5a47bf6ee188"), 3, 0)
PIPE_NAME = "srvsvc"
OPNUM_NETR_SHARE_ENUM = 15
OPNUM_NETR_SHARE_GET_INFO = 16

MAX_SHARES = 1024
MAX_STRING_CHARS = 1024  # share names are <= 80 chars, remarks <= 256 on Windows

# shi1_type
STYPE_DISKTREE = 0
STYPE_PRINTQ = 1
STYPE_DEVICE = 2
STYPE_IPC = 3
STYPE_MASK = 0x000000FF
STYPE_CLUSTER_FS = 0x02000000
STYPE_CLUSTER_SOFS = 0x04000000
STYPE_CLUSTER_DFS = 0x08000000
STYPE_TEMPORARY = 0x40000000
STYPE_SPECIAL = 0x80000000
TYPE_NAMES = {STYPE_DISKTREE: "disk", STYPE_PRINTQ: "printq", STYPE_DEVICE: "device", STYPE_IPC: "ipc"}

# WERROR return codes
WERR_OK = 0
WERR_ACCESS_DENIED = 5
WERR_NOT_ENOUGH_MEMORY = 8
WERR_NOT_SUPPORTED = 50
WERR_INVALID_PARAMETER = 87
WERR_INVALID_LEVEL = 124
WERR_MORE_DATA = 234
WERR_NET_NAME_NOT_FOUND = 2310
WERR_INVALID_NAME = 123
WERROR_NAMES = {
    WERR_OK: "OK",
    WERR_ACCESS_DENIED: "ACCESS_DENIED",
    WERR_NOT_ENOUGH_MEMORY: "NOT_ENOUGH_MEMORY",
    WERR_NOT_SUPPORTED: "NOT_SUPPORTED",
    WERR_INVALID_PARAMETER: "INVALID_PARAMETER",
    WERR_INVALID_NAME: "INVALID_NAME",
    WERR_INVALID_LEVEL: "INVALID_LEVEL",
    WERR_MORE_DATA: "MORE_DATA",
    0x000006BA: "RPC_S_SERVER_UNAVAILABLE",
    0x00000842: "NERR_BUFTOOSMALL",
}


def describe_werror(code: int) -> str:
    """`5 (ACCESS_DENIED)`, the form evidence uses."""
    name = WERROR_NAMES.get(code)
    return f"{code} ({name})" if name else f"0x{code:08X}"


@dataclass(frozen=True, slots=True)
class Share:
    name: str
    type: int
    remark: str = ""

    @property
    def kind(self) -> str:
        """disk | printq | device | ipc, or the number for anything else."""
        return TYPE_NAMES.get(self.type & STYPE_MASK, str(self.type & STYPE_MASK))

    @property
    def special(self) -> bool:
        """Administrative share (ADMIN$, C$, IPC$): STYPE_SPECIAL."""
        return bool(self.type & STYPE_SPECIAL)


@dataclass(slots=True)
class ShareEnumRequest:
    server_name: str | None
    level: int
    entries_read: int  # the container's count; 0 from every real client
    prefered_maximum_length: int
    resume_handle: int | None


@dataclass(slots=True)
class ShareEnumResponse:
    werror: int
    shares: list[Share] = field(default_factory=list)
    total_entries: int = 0
    resume_handle: int | None = None
    level: int = 1

    @property
    def ok(self) -> bool:
        return self.werror == WERR_OK


# -- NDR primitives ------------------------------------------------------------


class _Writer:
    __slots__ = ("buf", "_ref")

    def __init__(self) -> None:
        self.buf = bytearray()
        self._ref = 0x00020000

    def u32(self, value: int) -> None:
        self.align4()
        self.buf += struct.pack("<I", value & 0xFFFFFFFF)

    def align4(self) -> None:
        self.buf += b"\x00" * ((4 - len(self.buf) % 4) % 4)

    def referent(self) -> int:
        ref = self._ref
        self._ref += 4
        self.u32(ref)
        return ref

    def string(self, text: str) -> None:
        """Conformant varying UTF-16 string with its NUL terminator."""
        raw = text.encode("utf-16-le") + b"\x00\x00"
        n = len(raw) // 2
        if n > MAX_STRING_CHARS + 1:
            raise ProtocolError(f"srvsvc: string of {n} characters exceeds the cap of {MAX_STRING_CHARS}")
        self.u32(n)  # max count
        self.u32(0)  # offset
        self.u32(n)  # actual count
        self.buf += raw
        self.align4()


class _Reader:
    __slots__ = ("buf", "off")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.off = 0

    def align4(self) -> None:
        self.off += (4 - self.off % 4) % 4

    def u32(self, what: str) -> int:
        self.align4()
        raw = take(self.buf, self.off, 4, f"srvsvc: {what}")
        self.off += 4
        return struct.unpack("<I", raw)[0]

    def string(self, what: str) -> str:
        max_count = self.u32(f"{what} max count")
        offset = self.u32(f"{what} offset")
        actual = self.u32(f"{what} actual count")
        if max_count > MAX_STRING_CHARS + 1 or actual > MAX_STRING_CHARS + 1:
            raise ProtocolError(f"srvsvc: {what} of {max(max_count, actual)} characters exceeds the cap")
        if offset + actual > max_count:
            raise ProtocolError(f"srvsvc: {what} offset {offset} + count {actual} exceeds max count {max_count}")
        raw = take(self.buf, self.off, 2 * actual, f"srvsvc: {what}")
        self.off += 2 * actual
        text = raw.decode("utf-16-le", "replace")
        nul = text.find("\x00")
        return text if nul < 0 else text[:nul]


# -- request ---------------------------------------------------------------------


def share_enum_request(server_name: str | None = None, level: int = 1,
                       prefered_maximum_length: int = 0xFFFFFFFF, resume_handle: int | None = 0) -> bytes:
    """Client: the NetrShareEnum stub.  `server_name` is sent as "\\\\NAME"
    as Windows does; None sends a NULL pointer.  The container is the empty
    one real clients send (EntriesRead 0, Buffer NULL)."""
    if level not in (0, 1):
        raise ProtocolError(f"srvsvc: level {level} is not implemented (0 and 1 are)")
    w = _Writer()
    if server_name is None:
        w.u32(0)
    else:
        w.referent()
        w.string(server_name if server_name.startswith("\\\\") else "\\\\" + server_name)
    w.u32(level)  # InfoStruct.Level
    w.u32(level)  # union discriminant
    w.referent()  # -> container
    w.u32(0)  # EntriesRead
    w.u32(0)  # Buffer: NULL
    w.u32(prefered_maximum_length)
    if resume_handle is None:
        w.u32(0)
    else:
        w.referent()
        w.u32(resume_handle)
    return bytes(w.buf)


def parse_share_enum_request(stub: bytes) -> ShareEnumRequest:
    """Server: decode a NetrShareEnum request stub (levels 0, 1, 2, 501, 502
    are accepted as numbers; the container must be empty)."""
    r = _Reader(stub)
    server_name = None
    if r.u32("server name pointer"):
        server_name = r.string("server name")
    level = r.u32("level")
    switch = r.u32("union discriminant")
    if switch != level:
        raise ProtocolError(f"srvsvc: union discriminant {switch} differs from level {level}")
    entries = 0
    if r.u32("container pointer"):
        entries = r.u32("entries read")
        if r.u32("buffer pointer"):
            raise ProtocolError("srvsvc: request container carries a buffer")
    prefmax = r.u32("preferred maximum length")
    resume = None
    if r.u32("resume handle pointer"):
        resume = r.u32("resume handle")
    if r.off < len(stub) - 3:  # NDR may pad the end; more than that is not ours
        raise ProtocolError(f"srvsvc: {len(stub) - r.off} bytes after the request")
    return ShareEnumRequest(server_name, level, entries, prefmax, resume)


# -- response --------------------------------------------------------------------


def share_enum_response(shares: list[tuple[str, int, str]] | list[Share] | None = None, werror: int = WERR_OK,
                        total_entries: int | None = None, resume_handle: int | None = 0, level: int = 1) -> bytes:
    """Server: the NetrShareEnum response stub for `shares` [(name, type,
    remark)] or, with an error `werror` and no shares, the reply Windows and
    Samba give on refusal (empty container, NULL resume handle)."""
    if level not in (0, 1):
        raise ProtocolError(f"srvsvc: level {level} is not implemented (0 and 1 are)")
    items = [s if isinstance(s, Share) else Share(*s) for s in (shares or [])]
    if len(items) > MAX_SHARES:
        raise ProtocolError(f"srvsvc: {len(items)} shares exceeds the cap of {MAX_SHARES}")
    w = _Writer()
    w.u32(level)
    w.u32(level)
    w.referent()  # -> container
    w.u32(len(items))
    if items or werror == WERR_OK:
        w.referent()  # -> array
        w.u32(len(items))  # conformance
        refs = []
        for s in items:
            name_ref = w.referent()
            if level == 1:
                w.u32(s.type)
                remark_ref = w.referent()
            else:
                remark_ref = 0
            refs.append((name_ref, remark_ref))
        for s, (_name_ref, remark_ref) in zip(items, refs):
            w.string(s.name)
            if remark_ref:
                w.string(s.remark)
    else:
        w.u32(0)  # Buffer: NULL
    w.u32(len(items) if total_entries is None else total_entries)
    if werror != WERR_OK and not items:
        resume_handle = None
    if resume_handle is None:
        w.u32(0)
    else:
        w.referent()
        w.u32(resume_handle)
    w.u32(werror)
    return bytes(w.buf)


def parse_share_enum_response(stub: bytes) -> ShareEnumResponse:
    """Client: decode the response stub.  The WERROR is the last four bytes;
    when it is an error other than MORE_DATA the body is not decoded (servers
    differ in what they put in front of a refusal)."""
    if len(stub) < 4:
        raise ProtocolError(f"srvsvc: response stub of {len(stub)} bytes has no return code")
    (werror,) = struct.unpack_from("<I", stub, len(stub) - 4)
    if werror not in (WERR_OK, WERR_MORE_DATA):
        return ShareEnumResponse(werror)
    body = stub[:-4]
    r = _Reader(body)
    level = r.u32("level")
    switch = r.u32("union discriminant")
    if level not in (0, 1) or switch != level:
        raise ProtocolError(f"srvsvc: response at level {level}/{switch}, asked for 0 or 1")
    shares: list[Share] = []
    if r.u32("container pointer"):
        entries = r.u32("entries read")
        if entries > MAX_SHARES:
            raise ProtocolError(f"srvsvc: {entries} shares exceeds the cap of {MAX_SHARES}")
        if r.u32("buffer pointer"):
            count = r.u32("array size")
            if count != entries:
                raise ProtocolError(f"srvsvc: array of {count} entries, EntriesRead {entries}")
            fixed = []
            for _ in range(count):
                name_ptr = r.u32("netname pointer")
                stype, remark_ptr = 0, 0
                if level == 1:
                    stype = r.u32("share type")
                    remark_ptr = r.u32("remark pointer")
                fixed.append((name_ptr, stype, remark_ptr))
            for name_ptr, stype, remark_ptr in fixed:
                name = r.string("netname") if name_ptr else ""
                remark = r.string("remark") if remark_ptr else ""
                shares.append(Share(name, stype, remark))
        elif entries:
            raise ProtocolError(f"srvsvc: EntriesRead {entries} with a NULL buffer")
    total = r.u32("total entries")
    resume = None
    if r.u32("resume handle pointer"):
        resume = r.u32("resume handle")
    if r.off != len(body):
        raise ProtocolError(f"srvsvc: {len(body) - r.off} unexpected bytes before the return code")
    return ShareEnumResponse(werror, shares, total, resume, level)


# -- NetrShareGetInfo (opnum 16, MS-SRVS 3.1.4.10) ---------------------------------


@dataclass(slots=True)
class ShareGetInfoRequest:
    server_name: str | None
    net_name: str
    level: int


def parse_share_get_info_request(stub: bytes) -> ShareGetInfoRequest:
    """Server: ServerName (unique pointer), NetName (inline string), Level."""
    r = _Reader(stub)
    server_name = r.string("server name") if r.u32("server name pointer") else None
    net_name = r.string("share name")
    level = r.u32("level")
    return ShareGetInfoRequest(server_name, net_name, level)


def share_get_info_response(share: Share | None, level: int, werror: int = WERR_OK) -> bytes:
    """Server: SHARE_INFO at level 0 or 1 for `share`, or (share None) the
    refusal: the level, a NULL pointer and `werror`."""
    w = _Writer()
    w.u32(level)  # union discriminant
    if share is None or level not in (0, 1):
        w.u32(0)
        w.u32(werror if share is None else WERR_INVALID_LEVEL)
        return bytes(w.buf)
    w.referent()  # -> SHARE_INFO_0 / _1
    w.referent()  # netname
    if level == 1:
        w.u32(share.type)
        w.referent()  # remark
    w.string(share.name)
    if level == 1:
        w.string(share.remark)
    w.u32(WERR_OK)
    return bytes(w.buf)
