"""NetBIOS name service on UDP 137: NBSTAT node status query for "*".

The answer lists the registered names (15 characters + suffix, flags), from which
the computer name, the workgroup / domain, and domain-controller roles (<1C>) follow,
and the adapter MAC in the statistics.
"""

from __future__ import annotations

import asyncio
import secrets
import struct

from .common import ServiceError, os_error, pace

GROUP = 0x8000
SUFFIXES = {0x00: "workstation / domain", 0x03: "messenger", 0x20: "file server", 0x1B: "domain master browser",
            0x1C: "domain controllers", 0x1D: "master browser", 0x1E: "browser election", 0x01: "browse"}


def encode_name(name: bytes) -> bytes:
    """First-level encoding of a 16-byte NetBIOS name, as a DNS label."""
    name = name[:16].ljust(16, b"\x00" if name.startswith(b"*") else b" ")
    enc = bytes(c for b in name for c in (0x41 + (b >> 4), 0x41 + (b & 0x0F)))
    return b"\x20" + enc + b"\x00"


def status_query(txid: int | None = None) -> bytes:
    txid = secrets.randbits(16) if txid is None else txid
    return struct.pack(">HHHHHH", txid, 0x0000, 1, 0, 0, 0) + encode_name(b"*") + struct.pack(">HH", 0x21, 1)


def _skip_name(data: bytes, pos: int) -> int:
    for _ in range(64):
        if pos >= len(data):
            raise ServiceError("nbns: truncated name")
        n = data[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + n
    raise ServiceError("nbns: name too long")


def parse_status(data: bytes, txid: int | None = None) -> dict:
    if len(data) < 12:
        raise ServiceError("nbns: short answer")
    tid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    if txid is not None and tid != txid:
        raise ServiceError("nbns: transaction id does not match")
    if not flags & 0x8000 or an < 1:
        raise ServiceError("nbns: not a node status answer")
    pos = _skip_name(data, 12)
    if pos + 10 > len(data):
        raise ServiceError("nbns: truncated record")
    rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[pos:pos + 10])
    if rtype != 0x21:
        raise ServiceError(f"nbns: record type 0x{rtype:x}, not NBSTAT")
    pos += 10
    rdata = data[pos:pos + rdlen]
    if not rdata:
        raise ServiceError("nbns: empty NBSTAT record")
    count = rdata[0]
    if 1 + count * 18 > len(rdata):
        raise ServiceError("nbns: name table runs past the record")
    names = []
    for i in range(count):
        raw = rdata[1 + i * 18:1 + i * 18 + 18]
        name = raw[:15].decode("latin-1").rstrip(" \x00")
        name = "".join(ch if ch.isprintable() else "?" for ch in name)
        suffix, nflags = raw[15], struct.unpack(">H", raw[16:18])[0]
        names.append({"name": name, "suffix": suffix, "group": bool(nflags & GROUP), "flags": nflags,
                      "role": SUFFIXES.get(suffix)})
    stats = rdata[1 + count * 18:]
    mac = ":".join(f"{b:02x}" for b in stats[:6]) if len(stats) >= 6 else None
    computer = next((n["name"] for n in names if n["suffix"] == 0x00 and not n["group"]), None) or \
        next((n["name"] for n in names if n["suffix"] == 0x20 and not n["group"]), None)
    workgroup = next((n["name"] for n in names if n["suffix"] == 0x00 and n["group"]), None)
    dc = any(n["suffix"] == 0x1C and n["group"] for n in names)
    return {"names": names, "computer_name": computer, "workgroup": workgroup, "mac": mac,
            "domain_controller": dc, "file_server": any(n["suffix"] == 0x20 for n in names)}


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, fut: asyncio.Future, txid: int) -> None:
        self.fut, self.txid = fut, txid

    def datagram_received(self, data, addr) -> None:
        if not self.fut.done() and len(data) >= 2 and struct.unpack(">H", data[:2])[0] == self.txid:
            self.fut.set_result(data[:65536])

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
