"""Is it SMB? One negotiate, before an open port counts as an SMB host.

Firewalls, load balancers and tarpits answer a SYN on every port, so a
SYN-ACK on 445 proves nothing.  A host counts only when a real SMB server
answers: this sends one multi-protocol SMB1 NEGOTIATE (offering NT LM 0.12,
SMB 2.002 and SMB 2.???), which every SMB1 server answers with an SMB1
reply and every SMB2/3 server with an SMB2 NEGOTIATE response, and looks at
the reply's protocol signature (0xFF 'SMB' or 0xFE 'SMB').  On 139 the
NetBIOS session request comes first, as for the scan.  Reads are bounded:
the four-byte frame header and the four-byte signature, nothing more.

When no SMB answer comes, one more connect tells a middlebox from a host:
tarpits and some firewalls complete the handshake on every port, so a
connect to port 1 (tcpmux, which no Windows or Samba host serves) that is
accepted too means "middlebox": not counted, not reported.  A host that
refuses or ignores port 1 but holds 445 open without answering SMB (hung,
overloaded, or something else on the port) is handed on all the same: the
fingerprint reports what it sees and the plan asks to verify it ("could not
see" is not "has none").

Also the connect probe of discovery without raw sockets (`connect`), which
returns the connect round-trip time that the adaptive timeouts follow.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time

from ..protocol import netbios, smb1

__all__ = ["CLOSED", "FILTERED", "OPEN", "SMB", "NO_SMB", "MIDDLEBOX", "GONE", "LOCAL", "connect", "verdict"]

OPEN, CLOSED, FILTERED = "open", "closed", "filtered"
SMB, NO_SMB, MIDDLEBOX, GONE = "smb", "no-smb", "middlebox", "gone"  # what `verdict` says of a host
LOCAL = "local"  # this machine ran out of descriptors or ports: nothing was learned about the host
NETBIOS_PORT = 139
CONTROL_PORT = 1
MIDDLEBOX_WAIT = 1.0  # seconds the negotiate still gets once the control port was accepted too
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


async def _connected(address: str, port: int, timeout: float) -> socket.socket | None:
    """A connected socket, or None (refused or filtered); OSError when this machine ran out of something."""
    _, _, sock = await connect(address, port, timeout)
    return sock


async def _control_open(address: str, timeout: float) -> bool:
    control = await _connected(address, CONTROL_PORT, timeout)
    if control is None:
        return False
    control.close()
    return True


async def verdict(address: str, port: int, timeout: float, sock: socket.socket | None = None) -> str:
    """SMB, NO_SMB (open, no SMB answer, not a middlebox), MIDDLEBOX, GONE (the port no longer
    accepts) or LOCAL (this machine ran out of descriptors: the caller hands the host on, and
    the scan engine's own retries of local errors take over).

    The connect to the control port runs beside the negotiate: an SMB answer
    always wins (a SYN proxy in front of a real server accepts every port
    too), but once the control port has been accepted the negotiate gets
    only MIDDLEBOX_WAIT seconds, so a tarpit answering for a whole range
    costs one second an address, not the full timeout.
    `sock`: a connection to address:port already made (connect discovery); closed here."""
    control = asyncio.ensure_future(_control_open(address, timeout))
    try:
        return await _verdict(address, port, timeout, sock, control)
    except OSError:
        return LOCAL
    finally:
        control.cancel()
        await asyncio.gather(control, return_exceptions=True)
        if sock is not None:
            sock.close()


async def _verdict(address: str, port: int, timeout: float, sock: socket.socket | None, control: asyncio.Future) -> str:
    try:
        if sock is None:
            sock = await _connected(address, port, timeout)
            if sock is None:
                return GONE
        negotiate = asyncio.ensure_future(speaks_smb(sock, port, timeout))
        try:
            done, _ = await asyncio.wait({negotiate, control}, return_when=asyncio.FIRST_COMPLETED)
            if negotiate not in done:  # the control port answered first: accepted, or refused / unreachable
                await asyncio.wait({negotiate}, timeout=MIDDLEBOX_WAIT if control.result() else None)
            if negotiate.done() and negotiate.result():
                return SMB
        finally:
            negotiate.cancel()
            await asyncio.gather(negotiate, return_exceptions=True)
        return MIDDLEBOX if await control else NO_SMB
    finally:
        if sock is not None:
            sock.close()
