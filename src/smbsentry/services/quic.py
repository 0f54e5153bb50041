"""SMB over QUIC discovery on UDP 443: a QUIC Initial offering ALPN "smb".

Windows Server 2025 (and 2022 Datacenter: Azure Edition) can carry SMB 3.1.1
inside QUIC with TLS 1.3 on UDP 443, the port meant to face the internet.
What the scan needs is the handshake, not SMB: whether the server accepts
ALPN "smb", and the certificate it presents (names, issuer, validity).

aioquic's `QuicConnection` is itself sans-I/O -- datagrams in, datagrams and
events out, a timer to honour -- so this module is only the boundary: one
connected UDP socket, the deadline, a cap on datagrams and bytes read, and
the translation of what happened into facts or a one-line reason.  The peer
certificate is never verified (we want to read it, not trust it), no stream
is opened and the connection is closed with NO_ERROR once the handshake is
done.  Every certificate field is capped and kept as data.

Outcomes, so that a silent port is never read as "has none":
* offered: the handshake completed with ALPN smb; the certificate facts.
* not offered: the peer closed the connection (TLS alert 120,
  no_application_protocol, when it serves QUIC but not SMB), or the port
  answered ICMP port unreachable (nothing listens).  Returned, with
  "offered": False; an ICMP answer also carries "error" (no service answered).
* could not see: silence, or datagrams that are not a QUIC handshake, or more
  than the cap: ServiceError with the reason (the check's `unknown`).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import ipaddress
import ssl

from .common import ServiceError, os_error, pace, text

ALPN = "smb"
MAX_DATAGRAMS = 64  # a handshake with a long chain takes a handful; more is a flood
MAX_BYTES = 256 * 1024
MAX_NAMES = 32
NO_APPLICATION_PROTOCOL = 0x100 + 120  # CRYPTO_ERROR carrying the TLS alert (RFC 9001 4.8)


def _load():
    """aioquic's pieces, imported on first use: a scan without this check never loads them.

    aioquic logs each refused handshake as a warning of its "quic" logger; a
    handler of our own keeps that off the scan's stderr when nothing else
    configured logging (it still reaches an application's handlers)."""
    import logging

    quic_log = logging.getLogger("quic")
    if not quic_log.handlers:
        quic_log.addHandler(logging.NullHandler())
    from aioquic.quic import events
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    return events, QuicConfiguration, QuicConnection


def _name_text(name) -> str:
    try:
        return text(name.rfc4514_string().encode("utf-8", "replace"), 256)
    except Exception:  # noqa: BLE001 - an undecodable name stays a fact of its own
        return "(unreadable name)"


def _common_name(name) -> str | None:
    from cryptography.x509.oid import NameOID

    try:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:  # noqa: BLE001
        return None
    return text(str(attrs[0].value).encode("utf-8", "replace"), 256) if attrs else None


def _san(cert) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # noqa: BLE001 - absent or malformed: no names
        return []
    out = [text(str(v).encode("utf-8", "replace"), 256) for v in ext.get_values_for_type(x509.DNSName)]
    out += [str(v) for v in ext.get_values_for_type(x509.IPAddress)]
    return out[:MAX_NAMES]


def _when(cert, attr: str) -> _dt.datetime | None:
    try:
        value = getattr(cert, attr + "_utc", None)
        if value is None:  # cryptography before 42
            value = getattr(cert, attr).replace(tzinfo=_dt.timezone.utc)
        return value
    except Exception:  # noqa: BLE001
        return None


def _self_signed(cert) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    try:
        if cert.issuer != cert.subject:
            return False
        cert.verify_directly_issued_by(cert)
        return True
    except Exception:  # noqa: BLE001 - a bad signature or an unsupported key: not proven self-signed
        return False


def certificate_facts(cert, chain_length: int) -> dict:
    """The facts a report shows of the leaf certificate (a cryptography x509.Certificate)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    before, after = _when(cert, "not_valid_before"), _when(cert, "not_valid_after")
    try:
        sha256 = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    except Exception:  # noqa: BLE001
        sha256 = None
    return {
        "subject": _name_text(cert.subject),
        "common_name": _common_name(cert.subject),
        "names": _san(cert),
        "issuer": _name_text(cert.issuer),
        "not_before": before.strftime("%Y-%m-%dT%H:%M:%SZ") if before else None,
        "not_after": after.strftime("%Y-%m-%dT%H:%M:%SZ") if after else None,
        "self_signed": _self_signed(cert),
        "sha256": sha256,
        "chain_length": chain_length,
    }


class _Udp(asyncio.DatagramProtocol):
    """Queues what the peer sends, within the caps; notes an ICMP refusal."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.datagrams = 0
        self.bytes = 0
        self.refused: OSError | None = None
        self.overflow = False

    def datagram_received(self, data: bytes, addr) -> None:
        if self.overflow:
            return
        self.datagrams += 1
        self.bytes += len(data)
        if self.datagrams > MAX_DATAGRAMS or self.bytes > MAX_BYTES:
            self.overflow = True
        self.queue.put_nowait((data[:65536], addr))

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and self.refused is None:
            self.refused = exc
            self.queue.put_nowait(None)


def _server_name(name: str | None) -> str | None:
    """SNI only for a DNS name (an address is not sent as SNI, RFC 6066 3)."""
    if not name:
        return None
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        return name[:253]


async def probe(address: str, port: int = 443, timeout: float = 3.0, server_name: str | None = None) -> dict:
    """Offer ALPN smb to `address`:`port`/udp; the facts, or ServiceError when nothing could be seen."""
    events, QuicConfiguration, QuicConnection = _load()
    await pace()
    loop = asyncio.get_running_loop()
    try:
        transport, proto = await loop.create_datagram_endpoint(_Udp, remote_addr=(address, port))
    except OSError as exc:
        raise os_error(f"quic {port}/udp", exc) from None
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE,
                               server_name=_server_name(server_name),
                               idle_timeout=timeout + 5.0)  # past our deadline: aioquic's idle close never reads as the peer's
    conn = QuicConnection(configuration=config)
    peer = transport.get_extra_info("peername") or (address, port)
    try:
        return await _drive(conn, transport, proto, peer, port, timeout, events)
    finally:
        transport.close()


def _flush(conn, transport, now: float) -> None:
    for data, _ in conn.datagrams_to_send(now=now):
        transport.sendto(data)


async def _drive(conn, transport, proto: _Udp, peer, port: int, timeout: float, events) -> dict:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    conn.connect(peer, now=loop.time())
    _flush(conn, transport, loop.time())
    while True:
        got = _outcome(conn, events, port)
        if got is not None:
            outcome, completed = got
            if completed:
                conn.close(error_code=0, reason_phrase="")  # NO_ERROR: we only wanted the handshake
                _flush(conn, transport, loop.time())
            return outcome
        now = loop.time()
        if now >= end:
            raise ServiceError(_silence(proto, port, timeout))
        timer = conn.get_timer()
        wait = min(end, timer) - now if timer is not None else end - now
        try:
            item = await asyncio.wait_for(proto.queue.get(), max(wait, 0.0))
        except asyncio.TimeoutError:
            if timer is not None and loop.time() >= timer:
                conn.handle_timer(now=loop.time())
                _flush(conn, transport, loop.time())
            continue
        if item is None:
            return _refused(proto.refused, port)
        if proto.overflow:
            raise ServiceError(f"quic {port}/udp: more than {MAX_DATAGRAMS} datagrams or {MAX_BYTES // 1024} KiB "
                               f"without a completed handshake")
        data, _addr = item
        try:
            conn.receive_datagram(data, peer, now=loop.time())
        except Exception as exc:  # noqa: BLE001 - a datagram aioquic cannot take is the peer's, not ours
            raise ServiceError(f"quic {port}/udp: the answer is not a QUIC handshake ({type(exc).__name__})") from None
        _flush(conn, transport, loop.time())


def _outcome(conn, events, port: int) -> tuple[dict, bool] | None:
    """(facts, whether the handshake completed and the connection is ours to close), or None to keep waiting."""
    while True:
        ev = conn.next_event()
        if ev is None:
            return None
        if isinstance(ev, events.HandshakeCompleted):
            return _offered(conn, ev.alpn_protocol, port), True
        if isinstance(ev, events.ConnectionTerminated):
            reason = text((ev.reason_phrase or "").encode("utf-8", "replace"), 200)
            return {"port": port, "offered": False, "close": {"error_code": ev.error_code, "reason": reason}}, False


def _offered(conn, alpn: str | None, port: int) -> dict:
    if alpn != ALPN:  # a server may complete without ALPN: then SMB was not agreed
        return {"port": port, "offered": False, "alpn": alpn, "close": None}
    tls = conn.tls
    # aioquic keeps the peer's chain on its TLS context; read, never verified.
    leaf = getattr(tls, "_peer_certificate", None)
    chain = getattr(tls, "_peer_certificate_chain", None) or []
    out = {"port": port, "offered": True, "alpn": alpn, "tls": "TLS 1.3", "certificate": None}
    if leaf is not None:
        out["certificate"] = certificate_facts(leaf, 1 + len(chain))
    return out


def _refused(exc: OSError | None, port: int) -> dict:
    why = (exc.strerror if exc is not None else None) or "port unreachable"
    return {"port": port, "offered": False, "unreachable": True,
            "error": f"quic {port}/udp: ICMP port unreachable ({why}): nothing listens"}


def _silence(proto: _Udp, port: int, timeout: float) -> str:
    if proto.datagrams:
        return (f"quic {port}/udp: {proto.datagrams} datagram(s) answered in {timeout:g}s, none of them a QUIC "
                f"handshake")
    return f"quic {port}/udp: no answer in {timeout:g}s (a filtered or silent UDP port)"
