"""NetBIOS name service on UDP 137: NBSTAT node status query for "*" (the I/O only).

The answer lists the registered names (15 characters + suffix, flags), from which
the computer name, the workgroup / domain, and domain-controller roles (<1C>) follow,
and the adapter MAC in the statistics.  The messages are protocol/nbns.py's;
this module sends the query, waits for the matching answer and retries.
"""

from __future__ import annotations

import asyncio
import secrets

from ..protocol import nbns as wire
from ..protocol.errors import ProtocolError
from .common import ServiceError, os_error, pace

MAX_DATAGRAM = 65536


def status_query(txid: int | None = None) -> bytes:
    """protocol/nbns.py's NBSTAT request, with a random transaction id unless one is given."""
    return wire.status_query(secrets.randbits(16) if txid is None else txid)


def parse_status(data: bytes, txid: int | None = None) -> dict:
    """protocol/nbns.py's reading of the reply; a malformed one is this probe's ServiceError."""
    try:
        return wire.parse_status(data, txid)
    except ProtocolError as exc:
        raise ServiceError(str(exc)) from None


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, fut: asyncio.Future, txid: int) -> None:
        self.fut, self.txid = fut, txid

    def datagram_received(self, data, addr) -> None:
        if not self.fut.done() and len(data) >= 2 and int.from_bytes(data[:2], "big") == self.txid:
            self.fut.set_result(data[:MAX_DATAGRAM])

    def error_received(self, exc) -> None:
        if not self.fut.done():
            self.fut.set_exception(ServiceError(f"nbns: {exc.strerror or exc}"))


async def probe(address: str, port: int = 137, timeout: float = 3.0, retries: int = 2) -> dict:
    await pace()
    loop = asyncio.get_running_loop()
    txid = secrets.randbits(16)
    fut = loop.create_future()
    try:
        transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(fut, txid), remote_addr=(address, port))
    except OSError as exc:
        raise os_error("nbns", exc) from None
    try:
        for _ in range(retries):
            transport.sendto(status_query(txid))
            try:
                data = await asyncio.wait_for(asyncio.shield(fut), timeout / retries)
                break
            except asyncio.TimeoutError:
                continue
        else:
            raise ServiceError("nbns: no answer before the timeout")
    finally:
        transport.close()
    out = parse_status(data, txid)
    out["port"] = port
    return out
