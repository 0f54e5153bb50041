"""The scanner against servers that misbehave: every case ends within the
timeout with an `errors` entry and whatever was learned, never an exception.

The servers are asyncio listeners on loopback addresses (127.22.0.x) inside
the test's own event loop; Linux routes all of 127.0.0.0/8 to lo.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

import pytest

from smbsentry.scan.fingerprint import RateLimiter, ScanOptions, scan_host

PORT = 44500
TIMEOUT = 0.6


async def _serve(address: str, handler):
    server = await asyncio.start_server(handler, address, PORT, reuse_address=True)
    return server


async def _scan(address: str, handler, timeout: float = TIMEOUT):
    server = await _serve(address, handler)
    try:
        start = time.perf_counter()
        result = await scan_host(address, ScanOptions(ports=(PORT,), timeout=timeout), RateLimiter(None))
        return result, time.perf_counter() - start
    finally:
        server.close()
        await server.wait_closed()


def run(coro):
    return asyncio.run(coro)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    return await reader.readexactly(int.from_bytes(head[1:], "big"))


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- hostile servers ---------------------------------------------------------------------


async def _silent(reader, writer):
    await asyncio.sleep(30)


async def _garbage(reader, writer):
    await _read_frame(reader)
    payload = os.urandom(60)
    writer.write(b"\x00\x00\x00" + bytes([len(payload)]) + payload)
    await writer.drain()
    await asyncio.sleep(30)


async def _reset(reader, writer):
    await _read_frame(reader)
    _rst(writer)


async def _huge(reader, writer):
    await _read_frame(reader)
    writer.write(b"\x00\xff\xff\xff" + b"A" * 100)
    await writer.drain()
    await asyncio.sleep(30)


def test_silent_server_times_out_with_an_error():
    result, elapsed = run(_scan("127.22.0.1", _silent))
    assert result.ports == {str(PORT): "open"}
    assert any("io-timeout" in e for e in result.errors), result.errors
    # Two probes run in parallel, then nothing else can proceed: a few timeouts at most.
    assert elapsed < 6 * TIMEOUT + 1


def test_reset_after_negotiate_means_protocols_refused_not_a_crash():
    result, _ = run(_scan("127.22.0.2", _reset))
    assert result.ports[str(PORT)] == "open"
    assert result.smb1 is not None and result.smb1.enabled is False
    assert result.smb2 is not None and result.smb2.dialects == []
    assert result.identity.netbios_name is None


def test_garbage_reply_is_a_protocol_error():
    result, elapsed = run(_scan("127.22.0.3", _garbage))
    assert any("protocol-error" in e for e in result.errors), result.errors
    assert elapsed < 6 * TIMEOUT + 1


def test_huge_announced_length_is_refused_at_once():
    result, elapsed = run(_scan("127.22.0.4", _huge, timeout=3.0))
    assert any("protocol-error" in e and "announced" in e for e in result.errors), result.errors
    # refused when the header arrives, not after waiting for 16 MB
    assert elapsed < 3.0


def test_truncated_reply_then_stall_times_out():
    async def handler(reader, writer):
        await _read_frame(reader)
        writer.write(b"\x00\x00\x00\x64" + b"\xffSMB\x72")  # announces 100, sends 5
        await writer.drain()
        await asyncio.sleep(5)

    result, elapsed = run(_scan("127.22.0.5", handler))
    assert any("io-timeout" in e for e in result.errors), result.errors
    assert elapsed < 6 * TIMEOUT + 1


def test_trickling_server_does_not_extend_the_deadline():
    async def handler(reader, writer):
        await _read_frame(reader)
        writer.write(b"\x00\x00\x10\x00")  # 4096 bytes announced
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(TIMEOUT / 4)

    result, elapsed = run(_scan("127.22.0.6", handler))
    assert any("io-timeout" in e for e in result.errors), result.errors
    assert elapsed < 6 * TIMEOUT + 1


def test_close_on_accept_is_reported_without_traceback():
    async def handler(reader, writer):
        writer.close()

    result, _ = run(_scan("127.22.0.7", handler))
    assert result.ports[str(PORT)] == "open"
    assert result.smb1 is not None and result.smb1.enabled is False


def test_closed_port_is_closed_and_not_an_error():
    result = run(scan_host("127.22.0.8", ScanOptions(ports=(PORT,), timeout=TIMEOUT), RateLimiter(None)))
    assert result.ports == {str(PORT): "closed"}
    assert result.errors == []
    assert not result.smb_open


@pytest.mark.parametrize("flood", [b"\x85\x00\x00\x00" * 5000])
def test_keepalive_flood_then_silence_times_out(flood):
    async def handler(reader, writer):
        await _read_frame(reader)
        writer.write(flood)
        await writer.drain()
        await asyncio.sleep(5)

    result, elapsed = run(_scan("127.22.0.9", handler))
    assert any("io-timeout" in e for e in result.errors), result.errors
    assert elapsed < 6 * TIMEOUT + 1


# -- every connection closed on every path (issue 17) ---------------------------------------


async def _tiny_flood(reader, writer):
    await _read_frame(reader)
    chunk = b"\x00\x00\x00\x01A" * 5000
    for _ in range(400):
        writer.write(chunk)
        await writer.drain()
    await asyncio.sleep(30)


async def _smb1_only(reader, writer):
    """Answers SMB1 negotiates with a refusal status, stays silent to SMB2."""
    while True:
        msg = await _read_frame(reader)
        if msg[:4] == b"\xffSMB":
            reply = b"\xffSMB\x72" + struct.pack("<I", 0xC0000002) + b"\x00" * 23 + b"\x00\x00\x00"
            writer.write(struct.pack(">I", len(reply)) + reply)
            await writer.drain()


@pytest.mark.parametrize("handler", [_silent, _garbage, _reset, _huge, _tiny_flood, _smb1_only],
                         ids=lambda h: h.__name__.strip("_"))
def test_no_socket_is_left_open_after_a_hostile_host(handler):
    """Counted in /proc after scan_host returns: the client sockets this process
    still holds to the hostile server.  (A failed SMB2 negotiate used to keep
    its connection, which a flooding server then filled without end.)"""
    from faultkit import client_sockets

    address = "127.22.0.10"

    async def go():
        server = await _serve(address, handler)
        try:
            result = await scan_host(address, ScanOptions(ports=(PORT,), timeout=TIMEOUT), RateLimiter(None))
            await asyncio.sleep(0.1)  # aborted transports close on the next loop turns
            return result, client_sockets(address, PORT)
        finally:
            server.close()

    result, left = run(go())
    assert result.ports == {str(PORT): "open"}
    assert left == 0, f"{left} socket(s) still open to {address}:{PORT}"
