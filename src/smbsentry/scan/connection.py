"""One TCP connection speaking NetBIOS-framed SMB, driven by asyncio.

The protocol layer knows nothing of sockets; this module owns them.  It uses
a bare asyncio.Protocol (no StreamReader) because the hot path opens tens of
thousands of connections: bytes go straight into the bounded FrameReader and
whole messages come out.  Every wait has a deadline, and every failure is
raised as ScanError with a kind from a small fixed vocabulary (as zgrab2
does), so results read the same whatever went wrong.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import socket

from ..model import LOCAL_ERRNOS  # what this machine runs out of: the engine tries such a host again
from ..protocol import netbios
from ..protocol.errors import ProtocolError

# The fixed error vocabulary.
REFUSED = "connection-refused"
CONNECT_TIMEOUT = "connection-timeout"
UNREACHABLE = "unreachable"
RESET = "connection-reset"
CLOSED = "connection-closed"
IO_TIMEOUT = "io-timeout"
PROTOCOL = "protocol-error"
LOCAL = "local-error"  # this machine could not even try (no file descriptor, buffer or local port left)
HOST_TIMEOUT = "host-timeout"  # the host used up its --host-timeout
#: A peer may not queue more than this many whole messages, or bytes in them,
#: that nobody has asked for: a host flooding tiny NetBIOS messages would
#: otherwise grow the queue by gigabytes (every reply here is one message).
MAX_QUEUED_MESSAGES = 64
MAX_QUEUED_BYTES = 2 << 20


class ScanError(Exception):
    """A failed step: `kind` is from the vocabulary above.  `connected` says
    the TCP connection itself was established (the port is open) and a later
    step failed, e.g. the NetBIOS session request on 139."""

    def __init__(self, kind: str, detail: str = "", connected: bool = False) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.connected = connected


class _FrameProtocol(asyncio.Protocol):
    __slots__ = ("reader", "messages", "waiter", "error", "transport")

    def __init__(self, max_frame: int) -> None:
        self.reader = netbios.FrameReader(max_frame)
        self.messages: collections.deque[tuple[int, bytes]] = collections.deque()
        self.waiter: asyncio.Future | None = None
        self.error: ScanError | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            got = self.reader.feed(data)
        except ProtocolError as exc:
            self._fail(ScanError(PROTOCOL, str(exc)))
            got = ()
        if got:
            messages = self.messages
            messages.extend(got)
            # One queued message is the reply being waited for (at most max_frame
            # bytes); only more than that needs counting.
            if len(messages) > 1 and (len(messages) > MAX_QUEUED_MESSAGES or
                                      sum(len(body) for _, body in messages) > MAX_QUEUED_BYTES):
                messages.clear()
                self._fail(ScanError(PROTOCOL, f"peer flooded the connection (over {MAX_QUEUED_MESSAGES} messages "
                                               f"or {MAX_QUEUED_BYTES >> 20} MiB nobody asked for)"))
        # Wake the reader only for a whole message or an error: a server that
        # trickles bytes must not reset the step's deadline.
        if self.messages or self.error is not None:
            self._wake()

    def _fail(self, error: ScanError) -> None:
        """Keep the first error and drop the connection: nothing more is read."""
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self):
        if self.error is None:
            self.error = ScanError(CLOSED, "peer closed the connection")
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            if isinstance(exc, ConnectionResetError):
                self.error = ScanError(RESET, "connection reset by peer")
            elif exc is not None:
                self.error = ScanError(CLOSED, str(exc) or type(exc).__name__)
            else:
                self.error = ScanError(CLOSED, "peer closed the connection")
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)


class Connection:
    """An open SMB transport; `request` sends one message and returns the reply."""

    __slots__ = ("_proto", "_transport", "port", "host")

    def __init__(self, host: str, port: int, transport, proto: _FrameProtocol) -> None:
        self.host = host
        self.port = port
        self._transport = transport
        self._proto = proto

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        timeout: float,
        max_frame: int = netbios.DEFAULT_MAX_FRAME,
        called_name: str | None = None,
    ) -> "Connection":
        """Connect; on port 139 also run the NetBIOS session request."""
        loop = asyncio.get_running_loop()
        sock = await tcp_connect(loop, host, port, timeout)
        try:
            transport, proto = await loop.create_connection(lambda: _FrameProtocol(max_frame), sock=sock)
        except OSError as exc:
            sock.close()
            raise ScanError(LOCAL if exc.errno in LOCAL_ERRNOS else CLOSED, exc.strerror or str(exc)) from None
        except BaseException:  # cancelled (Ctrl-C, --host-timeout): the socket is ours to close
            sock.close()
            raise
        conn = cls(host, port, transport, proto)
        if called_name is not None:
            try:
                await conn.session_request(called_name, timeout)
            except ScanError as exc:
                conn.close()
                exc.connected = True
                exc.detail = f"NetBIOS session request: {exc.detail}" if exc.detail else "NetBIOS session request"
                exc.args = (f"{exc.kind}: {exc.detail}",)
                raise
            except BaseException:
                conn.close()
                raise
        return conn

    async def session_request(self, called_name: str, timeout: float) -> None:
        self._transport.write(netbios.session_request(called_name))
        msg_type, body = await self._next(timeout)
        try:
            resp = netbios.parse_session_response(msg_type, body)
        except ProtocolError as exc:
            raise ScanError(PROTOCOL, str(exc)) from None
        if not resp.positive:
            raise ScanError(PROTOCOL, f"NetBIOS session refused: {resp.reason}")

    async def _next(self, timeout: float) -> tuple[int, bytes]:
        proto = self._proto
        if not proto.messages:
            if proto.error is not None:
                raise proto.error
            loop = asyncio.get_running_loop()
            proto.waiter = loop.create_future()
            handle = loop.call_later(timeout, _expire, proto.waiter)
            try:
                await proto.waiter
            finally:
                handle.cancel()
                proto.waiter = None
            if not proto.messages:
                if proto.error is not None:
                    raise proto.error
                raise ScanError(IO_TIMEOUT, f"no complete reply within {timeout:g}s")
        return proto.messages.popleft()

    @property
    def max_frame(self) -> int:
        """The largest message this connection takes (its FrameReader's cap)."""
        return self._proto.reader.max_frame

    def send(self, payload: bytes) -> None:
        if self._proto.error is not None:
            raise self._proto.error
        self._transport.write(netbios.frame(payload))

    async def recv(self, timeout: float) -> bytes:
        while True:
            msg_type, body = await self._next(timeout)
            if msg_type == netbios.SESSION_MESSAGE:
                return body

    async def request(self, payload: bytes, timeout: float) -> bytes:
        self.send(payload)
        return await self.recv(timeout)

    def close(self) -> None:
        self._transport.abort()


_ERRNO_KIND = {
    errno.ECONNREFUSED: REFUSED,
    errno.ECONNRESET: RESET,
    errno.ETIMEDOUT: CONNECT_TIMEOUT,
    errno.EHOSTUNREACH: UNREACHABLE,
    errno.ENETUNREACH: UNREACHABLE,
    errno.EACCES: UNREACHABLE,
    errno.EPERM: UNREACHABLE,
}


def _connect_error(code: int) -> ScanError:
    if code in LOCAL_ERRNOS:  # e.g. EADDRNOTAVAIL: no local port left
        return ScanError(LOCAL, f"cannot connect: {os.strerror(code)}")
    kind = _ERRNO_KIND.get(code, CLOSED)
    return ScanError(kind, "" if kind == REFUSED else os.strerror(code))


async def tcp_connect(loop: asyncio.AbstractEventLoop, host: str, port: int, timeout: float) -> socket.socket:
    """A connected non-blocking TCP socket, or ScanError.

    Done by hand (connect_ex, wait for writability, read SO_ERROR) rather
    than with create_connection: a sweep meets mostly closed ports, and a
    refusal here costs one errno instead of an exception chain, a Task and a
    timer inside asyncio that only the cycle collector would free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: nothing was sent
        raise ScanError(LOCAL, f"cannot open a socket: {exc.strerror or exc}") from None
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex((host, port))
        if code == errno.EINPROGRESS:
            fd = sock.fileno()
            ready = loop.create_future()
            loop.add_writer(fd, _expire, ready)
            timer = loop.call_later(timeout, _expire_false, ready)
            try:
                connected = await ready
            finally:
                loop.remove_writer(fd)
                timer.cancel()
            if connected is False:
                raise ScanError(CONNECT_TIMEOUT, f"no answer within {timeout:g}s")
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code != 0:
            raise _connect_error(code)
    except ScanError:
        sock.close()
        raise
    except OSError as exc:  # e.g. a bad address family for this host
        sock.close()
        if exc.errno in LOCAL_ERRNOS:
            raise ScanError(LOCAL, f"cannot connect: {exc.strerror or exc}") from None
        raise ScanError(UNREACHABLE, exc.strerror or str(exc)) from None
    except BaseException:
        sock.close()
        raise
    return sock


def _expire_false(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(False)


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
