"""Declarative fixed-size layouts, in the manner of dpkt.

A layout lists its fields once as (name, struct format, default); packing,
unpacking, size and repr follow from that list.  SMB1/SMB2 headers, NTLM
structures and negotiate contexts are declared with it, so that no caller
indexes raw slices and every read is bounds-checked in one place.

All SMB and NTLM integers are little-endian; the NetBIOS session header is the
one big-endian structure and declares that with `_byte_order_ = ">"`.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from .errors import ProtocolError


class Layout:
    """Base class: subclasses set `_fields_ = [(name, fmt, default), ...]`."""

    _fields_: ClassVar[list[tuple[str, str, Any]]] = []
    _byte_order_: ClassVar[str] = "<"
    _struct: ClassVar[struct.Struct]
    _names: ClassVar[tuple[str, ...]]
    _defaults: ClassVar[tuple[Any, ...]]
    size: ClassVar[int]
    #: Each field's byte offset: readers that need one field of a header on a
    #: hot path (a reply's message id) read it there instead of unpacking all.
    offsets: ClassVar[dict[str, int]]
    #: The compiled struct, fields in declaration order: a hot path that packs
    #: or reads a one-field layout (SMB1's ByteCount on every message) calls
    #: `codec.pack(n)` / `codec.unpack_from(buf, off)` without building an object.
    codec: ClassVar[struct.Struct]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fmt = cls._byte_order_ + "".join(f for _, f, _ in cls._fields_)
        cls._struct = cls.codec = struct.Struct(fmt)
        cls._names = tuple(n for n, _, _ in cls._fields_)
        cls._defaults = tuple(d for _, _, d in cls._fields_)
        cls._default_map = dict(zip(cls._names, cls._defaults))
        cls.size = cls._struct.size
        cls.offsets = {n: struct.calcsize(cls._byte_order_ + "".join(f for _, f, _ in cls._fields_[:i]))
                       for i, (n, _, _) in enumerate(cls._fields_)}

    # Instances keep their fields in __dict__, filled in one update: these
    # layouts are built and parsed tens of thousands of times a second on
    # the scan hot path.

    def __init__(self, **values: Any) -> None:
        if not values.keys() <= self._default_map.keys():
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(values.keys() - self._default_map.keys())}")
        d = self.__dict__
        d.update(self._default_map)
        d.update(values)

    @classmethod
    def build(cls, **values: Any) -> bytes:
        """Pack straight from keyword values and defaults, without an instance.

        The defaults' dict keeps the declaration order and a merge keeps a
        known key's place, so its values are the struct's arguments; an
        unknown name is appended and shows as an extra key.
        """
        packed = {**cls._default_map, **values}
        if len(packed) != len(cls._names):
            raise TypeError(f"{cls.__name__}: unknown fields {sorted(values.keys() - cls._default_map.keys())}")
        try:
            return cls._struct.pack(*packed.values())
        except struct.error as exc:
            raise ProtocolError(f"{cls.__name__}: {exc}") from None

    @classmethod
    def unpack_from(cls, buf: bytes | memoryview, offset: int = 0):
        """Parse the layout at `offset`; ProtocolError when the buffer is short."""
        if offset < 0 or len(buf) - offset < cls.size:
            raise ProtocolError(
                f"{cls.__name__}: need {cls.size} bytes at offset {offset}, have {max(0, len(buf) - offset)}"
            )
        obj = cls.__new__(cls)
        obj.__dict__.update(zip(cls._names, cls._struct.unpack_from(buf, offset)))
        return obj

    def pack(self) -> bytes:
        d = self.__dict__
        try:
            return self._struct.pack(*[d[n] for n in self._names])
        except struct.error as exc:  # a caller put a value that does not fit
            raise ProtocolError(f"{type(self).__name__}: {exc}") from None

    def replace(self, **values: Any):
        if not values.keys() <= self._default_map.keys():
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(values.keys() - self._default_map.keys())}")
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(values)
        return new

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self._names)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._names)
        return f"{type(self).__name__}({inner})"


def u16s(values: tuple[int, ...] | list[int]) -> bytes:
    """A run of little-endian 16-bit words whose count the message gives
    elsewhere (SMB1's transaction setup words): the one variable-length
    shape a Layout cannot declare."""
    try:
        return struct.pack(f"<{len(values)}H", *values)
    except struct.error as exc:
        raise ProtocolError(f"16-bit words: {exc}") from None


def read_u16s(buf: bytes | memoryview, offset: int, count: int, what: str) -> tuple[int, ...]:
    """`count` little-endian 16-bit words at `offset`, bounds-checked by take()."""
    return struct.unpack(f"<{count}H", take(buf, offset, 2 * count, what))


def take(buf: bytes | memoryview, offset: int, length: int, what: str, cap: int | None = None) -> bytes:
    """Return buf[offset:offset+length] after checking it lies inside the buffer.

    `cap` is the fixed maximum for this kind of field (security blob, AV pair,
    string): a hostile peer that announces more gets a ProtocolError rather
    than a large allocation.
    """
    if length < 0 or offset < 0:
        raise ProtocolError(f"{what}: negative offset or length")
    if cap is not None and length > cap:
        raise ProtocolError(f"{what}: length {length} exceeds the cap of {cap}")
    if offset + length > len(buf):
        raise ProtocolError(f"{what}: {length} bytes at offset {offset} run past the {len(buf)}-byte buffer")
    return bytes(buf[offset : offset + length])


def utf16z(buf: bytes, offset: int, cap: int, what: str) -> tuple[str, int]:
    """Read a NUL-terminated UTF-16LE string; return (text, offset after the NUL).

    A missing terminator at the end of the buffer is accepted (old Samba and
    some NAS firmware omit the last one); text longer than `cap` bytes raises.
    """
    if offset < 0 or offset > len(buf):
        raise ProtocolError(f"{what}: offset {offset} outside the buffer")
    # Fast path: the first even-aligned NUL pair within the cap, found by bytes.find.
    chunk = bytes(buf[offset : offset + cap + 2])
    i = chunk.find(b"\x00\x00")
    while 0 <= i <= cap:
        if not i & 1:
            return chunk[:i].decode("utf-16-le", "replace"), offset + i + 2
        i = chunk.find(b"\x00\x00", i + 1)
    # No terminator within the cap: the exact rules below (tolerated at the end, else too long).
    end = offset
    while end + 1 < len(buf):
        if end - offset > cap:
            raise ProtocolError(f"{what}: string longer than {cap} bytes")
        if buf[end] == 0 and buf[end + 1] == 0:
            return bytes(buf[offset:end]).decode("utf-16-le", "replace"), end + 2
        end += 2
    if end - offset > cap:
        raise ProtocolError(f"{what}: string longer than {cap} bytes")
    return bytes(buf[offset:end]).decode("utf-16-le", "replace"), len(buf)


def asciiz(buf: bytes, offset: int, cap: int, what: str) -> tuple[str, int]:
    """Read a NUL-terminated 8-bit string (OEM code page, decoded as latin-1)."""
    if offset < 0 or offset > len(buf):
        raise ProtocolError(f"{what}: offset {offset} outside the buffer")
    nul = bytes(buf[offset : offset + cap + 1]).find(b"\x00")
    if nul < 0:
        if len(buf) - offset > cap:
            raise ProtocolError(f"{what}: string longer than {cap} bytes")
        return bytes(buf[offset:]).decode("latin-1"), len(buf)
    return bytes(buf[offset : offset + nul]).decode("latin-1"), offset + nul + 1
