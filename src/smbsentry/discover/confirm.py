"""Is it SMB? One negotiate, before an open port counts as an SMB host.

Firewalls, load balancers and tarpits answer a SYN on every port, so a
SYN-ACK on 445 proves nothing.  A host counts only when a real SMB server
answers: this sends one multi-protocol SMB1 NEGOTIATE (offering NT LM 0.12,
SMB 2.002 and SMB 2.???), which every SMB1 server answers with an SMB1
reply and every SMB2/3 server with an SMB2 NEGOTIATE response, and looks at
the reply's protocol signature (0xFF 'SMB' or 0xFE 'SMB').  On 139 the
NetBIOS session request comes first, as for the scan.  Reads are bounded:
the four-byte frame header and the four-byte signature, nothing more.

Also the connect probe of discovery without raw sockets (`connect`), which
returns the connect round-trip time that the adaptive timeouts follow.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time

from ..protocol import netbios, smb1

__all__ = ["CLOSED", "FILTERED", "OPEN", "connect", "smb_answers"]

OPEN, CLOSED, FILTERED = "open", "closed", "filtered"
NETBIOS_PORT = 139
_PROBE = netbios.frame(smb1.negotiate_request((smb1.NT_LM_012, "SMB 2.002", "SMB 2.???")))
_SIGNATURES = (b"\xffSMB", b"\xfeSMB")


async def connect(address: str, port: int, timeout: float) -> tuple[str, float, socket.socket | None]:
    """(state, seconds the answer took, the connected socket when open)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    start = time.perf_counter()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (address, port)), timeout)
    except ConnectionRefusedError:
        sock.close()
        return CLOSED, time.perf_counter() - start, None
    except (TimeoutError, asyncio.TimeoutError):
        sock.close()
        return FILTERED, timeout, None
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EADDRNOTAVAIL, errno.ENOMEM):
            raise  # ours, not the host's: the caller tries again
        return FILTERED, time.perf_counter() - start, None  # unreachable, and the like
    except BaseException:
        sock.close()
        raise
    return OPEN, time.perf_counter() - start, sock


async def _exchange(sock: socket.socket, payload: bytes, want: int, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_sendall(sock, payload), timeout)
    got = b""
    while len(got) < want:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, want - len(got)), timeout)
        if not chunk:
            break
        got += chunk
    return got


async def speaks_smb(sock: socket.socket, port: int, timeout: float) -> bool:
    """Does the peer on this connected socket answer an SMB negotiate?"""
    try:
        if port == NETBIOS_PORT:
            head = await _exchange(sock, netbios.session_request(), 4, timeout)
            if len(head) < 4 or head[0] != 0x82:
                return False
        head = await _exchange(sock, _PROBE, 8, timeout)
    except (OSError, TimeoutError, asyncio.TimeoutError):
        return False
    return len(head) == 8 and head[0] == 0 and head[4:8] in _SIGNATURES


async def smb_answers(address: str, port: int, timeout: float) -> bool:
    """Connect and negotiate: True only when an SMB server answered."""
    try:
        state, _, sock = await connect(address, port, timeout)
    except OSError:
        return False
    if sock is None:
        return False
    try:
        return await speaks_smb(sock, port, timeout)
    finally:
        sock.close()
