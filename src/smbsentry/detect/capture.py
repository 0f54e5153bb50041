"""Streaming reader for pcap and pcapng capture files (optionally gzip-compressed).

Standard library only (``gzip``).  :class:`CaptureReader` drives the sans-I/O
parser (:class:`~smbsentry.detect.pcap.CaptureParser`) from a binary file
object in chunks of 64 KiB, or of the rest of a larger record/block once its
length is known (:meth:`CaptureParser.wanted`), so memory stays bounded (one
chunk plus at most one record or block, itself at most 16 MiB) however long
the capture is.  Records are ``(frame, timestamp, linktype, data, wirelen)``
tuples (see :mod:`smbsentry.detect.pcap`).

Damage raises :class:`CaptureError` at the point of damage, after every good
record before it has been yielded; input that is not a capture at all raises
``CaptureError("not a pcap or pcapng file")`` before any record.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from .pcap import MAX_BLOCK_LEN, MAX_CAPLEN, NOT_A_CAPTURE, CaptureError, CaptureParser, Record, damage

__all__ = [
    "CHUNK_SIZE",
    "MAX_BLOCK_LEN",
    "MAX_CAPLEN",
    "CaptureError",
    "CaptureParser",
    "CaptureReader",
    "Record",
    "open_capture",
    "read_capture",
]

#: Default read size of :class:`CaptureReader`.  Small enough that each chunk (and the
#: chunk plus a partial record carried over) stays under glibc's mmap threshold (128 KiB):
#: with 1 MiB reads every chunk was a fresh mmap, and its page faults cost ~10% of a run.
CHUNK_SIZE = 64 * 1024

_GZIP_MAGIC = b"\x1f\x8b"

class _PrefixedReader(io.RawIOBase):
    """A non-seekable stream with some already-read bytes put back in front."""

    def __init__(self, prefix: bytes, fp: BinaryIO) -> None:
        self._prefix = prefix
        self._fp = fp

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data, self._prefix = self._prefix + self._fp.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._fp.read(size)

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


class CaptureReader:
    """Iterate the records of a (possibly gzip-compressed) capture file object.

    The format is sniffed in the constructor, so a non-capture raises
    :class:`CaptureError` immediately.  Iterating yields
    ``(frame, timestamp, linktype, data, wirelen)`` tuples and raises
    :class:`CaptureError` at the first damaged record.  The file object is not
    closed (see :func:`open_capture` / :func:`read_capture` for that).
    """

    def __init__(self, fileobj: BinaryIO, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        self.compressed = False
        self._parser = CaptureParser()
        self._gz: gzip.GzipFile | None = None
        head = self._read_at_least(fileobj, 4)
        if head[:2] == _GZIP_MAGIC:
            self.compressed = True
            try:
                if _seekable(fileobj):
                    fileobj.seek(-len(head), os.SEEK_CUR)
                    self._gz = gzip.GzipFile(fileobj=fileobj, mode="rb")
                else:
                    self._gz = gzip.GzipFile(
                        fileobj=_PrefixedReader(head, fileobj), mode="rb"
                    )  # type: ignore[arg-type]
                self._fp: BinaryIO = self._gz  # type: ignore[assignment]
                head = self._read_at_least(self._fp, 4)
            except _GZIP_ERRORS as exc:
                raise CaptureError(
                    f"{NOT_A_CAPTURE} (bad gzip data: {exc})", 0
                ) from None
        else:
            self._fp = fileobj
        self._parser.feed(head)
        if len(head) < 4:
            self._parser.close()  # raises "not a pcap or pcapng file"

    def _read_at_least(self, fp: BinaryIO, n: int) -> bytes:
        data = fp.read(max(self.chunk_size, n))
        while 0 < len(data) < n:
            more = fp.read(n - len(data))
            if not more:
                break
            data += more
        return data

    @property
    def format(self) -> str | None:
        """``"pcap"`` or ``"pcapng"``."""
        return self._parser.format

    @property
    def linktype(self) -> int | None:
        """The pcap file's link type (pcapng: most recent interface's, once read)."""
        return self._parser.linktype

    @property
    def frames(self) -> int:
        """Number of records yielded so far."""
        return self._parser.frames

    def batches(self, shard: int = 0, shards: int = 1) -> Iterator[list[Record]]:
        """Like iterating the reader, but one list of records per chunk read (faster).

        ``shard``/``shards``: see :meth:`CaptureParser.record_batch`.
        """
        parser = self._parser
        while True:
            batch = parser.record_batch(shard, shards)
            if batch:
                yield batch
                if parser._error is not None:  # damage right after these records
                    raise parser._error
            if not self._feed_more():
                break
        batch = parser.record_batch(shard, shards)
        if batch:
            yield batch
        parser.close()

    @property
    def dropped(self) -> tuple[int, int]:
        """(packets, bytes) a sharded :meth:`batches` left out so far."""
        return self._parser.dropped_packets, self._parser.dropped_bytes

    def __iter__(self) -> Iterator[Record]:
        parser = self._parser
        while True:
            yield from parser.records()
            if not self._feed_more():
                break
        parser.close()

    def _feed_more(self) -> bool:
        """Feed the parser the next chunk, or the rest of a large block at once; False at the end."""
        parser = self._parser
        try:
            chunk = self._fp.read(max(self.chunk_size, parser.wanted()))
        except _GZIP_ERRORS as exc:
            raise damage(f"corrupt gzip data ({exc})", parser.bytes_fed) from None
        if not chunk:
            return False
        parser.feed(chunk)
        return True


def _seekable(fp: BinaryIO) -> bool:
    try:
        return bool(fp.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class open_capture:
    """Context manager: ``with open_capture(path) as reader: for rec in reader: ...``

    Raises :class:`CaptureError` on entry (construction) if the file is not a capture.
    """

    def __init__(
        self, path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE
    ) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close()/__exit__)
        try:
            self.reader = CaptureReader(self._file, chunk_size)
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> CaptureReader:
        return self.reader

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.reader._gz is not None:
            self.reader._gz.close()
        self._file.close()


def read_capture(
    source: str | os.PathLike[str] | BinaryIO, chunk_size: int = CHUNK_SIZE
) -> Iterator[Record]:
    """Return an iterator over the records of a capture path or binary file object.

    Not a generator function: a non-capture raises :class:`CaptureError` here,
    at call time.  A path is opened and closed by the iterator.
    """
    if isinstance(source, (str, os.PathLike)):
        ctx = open_capture(source, chunk_size)
        return _closing_iter(ctx)
    return iter(CaptureReader(source, chunk_size))


def _closing_iter(ctx: open_capture) -> Iterator[Record]:
    try:
        yield from ctx.reader
    finally:
        ctx.close()
