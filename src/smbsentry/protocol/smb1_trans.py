"""SMB1 TRANSACTION / TRANSACTION2 from the server's side, and the client's
reader of multi-part replies, declared once (MS-CIFS 2.2.4.33, 2.2.4.46).

The word layouts (TransactionRequestWords, TransactionResponseWords) are
smb1.py's, where the scanner's request builder and its MS17-010 reply parser
use them.  Here are the lab's request parser and reply builder (lab/smb1_server,
lab/pipes, lab/files and the tests' fake servers) and the pipe reader's parser
of one reply part (protocol/smb1_session); before, smb1_replies.py and
smb1_pipe.py each had a request parser and a reply builder of their own.

Every count and offset is checked by `smb1.parse_message` and `take`; the
parameter block is capped at smb1.MAX_BLOB and the data block at 64 KiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import smb1
from .errors import ProtocolError
from .fields import asciiz, read_u16s, take, u16s, utf16z
from .smb1_pipe import error_response, reply_header
from .status import is_error

MAX_NAME = 256  # bytes of a transaction's pipe or mailslot name
MAX_PARAMS = smb1.MAX_BLOB
MAX_DATA = 1 << 16
_TRANSACTIONS = (smb1.TRANSACTION, smb1.TRANSACTION2)
_REQ = smb1.TransactionRequestWords
_RESP = smb1.TransactionResponseWords


# -- server: request in, reply out ----------------------------------------------


@dataclass(slots=True)
class TransactionRequest:
    header: smb1.Header
    setup: tuple[int, ...]
    params: bytes
    data: bytes
    total_params: int
    total_data: int
    max_params: int
    max_data: int
    max_setup: int
    flags: int
    timeout: int
    message: smb1.Message

    @property
    def subcommand(self) -> int | None:
        return self.setup[0] if self.setup else None

    @property
    def fid(self) -> int | None:
        """The FID of a named-pipe transaction (second setup word)."""
        return self.setup[1] if len(self.setup) >= 2 else None

    @property
    def name(self) -> str | None:
        """The TRANSACTION's pipe or mailslot name (None for TRANSACTION2 or
        an empty byte block).  Read when asked, so that a server which never
        looks at it does not refuse a request for a malformed one."""
        m = self.message
        if m.header.command != smb1.TRANSACTION or not m.data:
            return None
        if m.unicode:
            return utf16z(m.data, m.data_offset % 2, MAX_NAME, "smb1: transaction name")[0]
        return asciiz(m.data, 0, MAX_NAME, "smb1: transaction name")[0]


def parse_transaction_request(msg: bytes) -> TransactionRequest:
    """TRANSACTION or TRANSACTION2 primary request (the first fragment: the
    lab answers MS17-010 probes, TransactNmPipe calls and FIND_FIRST2 from it
    and nothing that needs secondaries)."""
    m = smb1.parse_message(msg)
    if m.header.command not in _TRANSACTIONS or len(m.words) < _REQ.size:
        raise ProtocolError("smb1: not a TRANSACTION/TRANSACTION2 request")
    w = _REQ.unpack_from(m.words)
    setup = read_u16s(m.words, _REQ.size, w.setup_count, "smb1: transaction setup")
    raw = m.raw
    params = take(raw, w.param_offset, w.param_count, "smb1: transaction parameters", cap=MAX_PARAMS) if w.param_count else b""
    data = take(raw, w.data_offset, w.data_count, "smb1: transaction data", cap=MAX_DATA) if w.data_count else b""
    return TransactionRequest(m.header, setup, params, data, w.total_params, w.total_data, w.max_params,
                              w.max_data, w.max_setup, w.flags, w.timeout, m)


def transaction_response(
    req: smb1.Header,
    data: bytes = b"",
    params: bytes = b"",
    setup: tuple[int, ...] = (),
    status: int = 0,
    total_params: int | None = None,
    total_data: int | None = None,
    param_displacement: int = 0,
    data_displacement: int = 0,
) -> bytes:
    """One TRANSACTION / TRANSACTION2 reply message (WordCount 10 + setup).
    An error status with no data gives the WordCount 0 error reply;
    STATUS_BUFFER_OVERFLOW with data is the "more to read" reply of a
    message-mode pipe.  Replies split over several messages set `total_*`
    and the displacements.  Parameters and data start on 4-byte offsets."""
    command = req.command if req.command in _TRANSACTIONS else smb1.TRANSACTION
    if status and not (data or params) and is_error(status):
        return error_response(req, status, command)
    data_start = smb1.block_start(_RESP.size + 2 * len(setup))
    pad1 = b"\x00" * ((4 - data_start % 4) % 4)
    param_offset = data_start + len(pad1)
    pad2 = b"\x00" * ((4 - (param_offset + len(params)) % 4) % 4)
    data_offset = param_offset + len(params) + len(pad2)
    words = _RESP.build(
        total_params=len(params) if total_params is None else total_params,
        total_data=len(data) if total_data is None else total_data,
        param_count=len(params),
        param_offset=param_offset if params else 0,
        param_displacement=param_displacement,
        data_count=len(data),
        data_offset=data_offset,
        data_displacement=data_displacement,
        setup_count=len(setup),
    ) + u16s(setup)
    return smb1._message(reply_header(req, status, command), words, pad1 + params + pad2 + data)


# -- client: one part of a reply ------------------------------------------------


@dataclass(slots=True)
class TransactionResponsePart:
    """One TRANSACTION reply message: the data it carries and where that
    lies in the whole reply (total_data, data_displacement)."""

    status: int
    mid: int
    setup: tuple[int, ...] = ()
    params: bytes = b""
    data: bytes = b""
    total_params: int = 0
    total_data: int = 0
    param_displacement: int = 0
    data_displacement: int = 0


def parse_transaction_response_part(msg: bytes) -> TransactionResponsePart:
    """A TRANSACTION reply with its totals and displacements (the MS17-010
    parser in smb1.py drops them; a pipe reader needs them)."""
    m = smb1.parse_message(msg)
    if m.header.command not in _TRANSACTIONS:
        raise ProtocolError(f"smb1: expected a transaction reply, got 0x{m.header.command:02x}")
    if len(m.words) < _RESP.size:
        return TransactionResponsePart(m.status, m.header.mid)
    w = _RESP.unpack_from(m.words)
    setup = read_u16s(m.words, _RESP.size, w.setup_count, "smb1: transaction setup")
    params = take(m.raw, w.param_offset, w.param_count, "smb1: transaction parameters") if w.param_count else b""
    data = take(m.raw, w.data_offset, w.data_count, "smb1: transaction data") if w.data_count else b""
    if w.data_displacement + w.data_count > w.total_data or w.param_displacement + w.param_count > w.total_params:
        raise ProtocolError("smb1: transaction reply part lies outside the announced totals")
    return TransactionResponsePart(m.status, m.header.mid, setup, params, data, w.total_params,
                                   w.total_data, w.param_displacement, w.data_displacement)
