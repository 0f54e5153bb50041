"""Shared pieces of the service probes: the error type, capped reads, one TCP exchange.

Every probe reads at most READ_CAP bytes per connection and gives up after its
timeout; failures become ServiceError with a one-line reason, never anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import contextvars
import ssl
from collections.abc import Awaitable, Callable

from ..model import LOCAL_ERRNOS

READ_CAP = 64 * 1024

# The scan's connection-rate limiter (--rate), set by probe_services for the
# probes it starts: every new connection or datagram exchange waits its turn.
RATE: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar("smbsentry_service_rate",
                                                                                         default=None)


async def pace() -> None:
    """Wait for the scan's rate limiter, when there is one."""
    acquire = RATE.get()
    if acquire is not None:
        await acquire()


class ServiceError(Exception):
    """A probe could not learn what it asked: the message is the reason, one line."""


def os_error(prefix: str, exc: OSError) -> ServiceError:
    """The reason for a failed socket call; "local-error" when this machine ran out of something."""
    text = exc.strerror or str(exc)
    if exc.errno in LOCAL_ERRNOS:
        return ServiceError(f"{prefix}: local-error: {text}")
    return ServiceError(f"{prefix}: {text}")


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """A client context that reads any certificate and checks none.

    The probes ask what a service offers (its authentication schemes, its
    refusal of a bind), not whether its certificate is trusted: internal
    servers use self-signed or private-CA certificates, and refusing them
    would hide exactly the hosts an audit looks for.  Nothing secret is sent.
    One context for the whole scan, without the system's CA store (nothing is
    verified against it): loading that store for every HTTPS and LDAPS probe
    was most of the CPU those probes cost."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError, ValueError):
        ctx.set_ciphers("DEFAULT:@SECLEVEL=1")  # older IIS and Windows DCs still offer SHA-1 suites
    return ctx


async def connect(address: str, port: int, timeout: float, tls: bool = False):
    """(reader, writer) to address:port; with tls, after a TLS handshake (no certificate check).

    The timeout covers the TCP connect and the handshake together."""
    await pace()
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=tls_context() if tls else None,
                                    server_hostname="" if tls else None), timeout)
    except asyncio.TimeoutError:
        raise ServiceError(f"{port}: connect timed out") from None
    except ConnectionRefusedError:
        raise ServiceError(f"{port}: connection refused") from None
    except ssl.SSLError as exc:
        raise ServiceError(f"{port}: TLS handshake failed: {exc.reason or exc}"[:200]) from None
    except OSError as exc:
        raise os_error(str(port), exc) from None


async def close(writer) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1.0)


async def read_some(reader, timeout: float, cap: int = READ_CAP) -> bytes:
    """One read (up to cap bytes); b'' on EOF; ServiceError on timeout or reset."""
    try:
        return await asyncio.wait_for(reader.read(cap), timeout)
    except asyncio.TimeoutError:
        raise ServiceError("no answer before the timeout") from None
    except OSError as exc:
        raise ServiceError(f"connection error: {exc.strerror or exc}") from None


async def read_until(reader, done, timeout: float, cap: int = READ_CAP) -> bytes:
    """Read until done(buffer) is true, EOF, or cap bytes; timeout covers the whole read."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    buf = bytearray()
    while len(buf) < cap and not done(bytes(buf)):
        left = end - loop.time()
        if left <= 0:
            if buf:
                break
            raise ServiceError("no answer before the timeout")
        try:
            chunk = await asyncio.wait_for(reader.read(cap - len(buf)), left)
        except asyncio.TimeoutError:
            if buf:
                break
            raise ServiceError("no answer before the timeout") from None
        except OSError as exc:
            raise ServiceError(f"connection error: {exc.strerror or exc}") from None
        if not chunk:
            break
        buf += chunk
    return bytes(buf[:cap])


async def send(writer, data: bytes, timeout: float) -> None:
    try:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), timeout)
    except asyncio.TimeoutError:
        raise ServiceError("send timed out") from None
    except OSError as exc:
        raise ServiceError(f"connection error: {exc.strerror or exc}") from None


def text(data: bytes, limit: int = 256) -> str:
    """Printable text from network bytes, capped."""
    s = data[:limit * 2].decode("latin-1")
    return "".join(ch if ch.isprintable() else " " for ch in s).strip()[:limit]
