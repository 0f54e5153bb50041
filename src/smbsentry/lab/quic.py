"""SMB over QUIC peers of the emulated hosts: a real QUIC server (aioquic) on UDP 443.

A profile with a "quic" section (Windows Server 2025) answers a QUIC Initial
on the lab's QUIC port of its address with a full TLS 1.3 handshake, offering
the ALPN its profile lists ("smb") and presenting a self-signed certificate
made at start for the names the profile gives.  The peer speaks no SMB inside
the stream: what the scanner reads is the handshake, the ALPN and the
certificate, and a real QUIC implementation keeps that honest.  Addresses
whose profile has no "quic" section do not listen, so the scanner sees the
ICMP port unreachable a host without SMB over QUIC sends.
"""

from __future__ import annotations

import datetime
import logging
from functools import lru_cache

from .profile_model import QuicConfig

log = logging.getLogger("smbsentry.lab")

QUIC_PORT = 443
MAX_ADDRESSES = 4096  # one UDP socket per address, as for the name service
IDLE_TIMEOUT = 10.0


@lru_cache(maxsize=16)
def certificate(names: tuple[str, ...], valid_days: int):
    """(certificate, key): self-signed ECDSA P-256 for `names` (the first is the subject CN), made once per process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=valid_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def configuration(conf: QuicConfig):
    """aioquic's server configuration for one profile."""
    from aioquic.quic.configuration import QuicConfiguration

    cert, key = certificate(conf.names, conf.valid_days)
    config = QuicConfiguration(is_client=False, alpn_protocols=list(conf.alpn), idle_timeout=IDLE_TIMEOUT)
    config.certificate, config.private_key = cert, key
    return config


class QuicPeers:
    """The QUIC servers of a lab range: start(), stop(); `unbound` lists what could not be bound."""

    def __init__(self, lab_range, profile_at, port: int = QUIC_PORT) -> None:
        self.range = lab_range
        self.profile_at = profile_at
        self.port = port
        self.unbound: list[str] = []
        self.bound: list[str] = []
        self._servers: list = []

    async def start(self) -> None:
        from aioquic.asyncio import serve

        quic_log = logging.getLogger("quic")  # aioquic's per-connection info lines: not the lab's log
        if quic_log.level == logging.NOTSET:
            quic_log.setLevel(logging.WARNING)
        count = min(len(self.range), MAX_ADDRESSES)
        for index in range(count):
            conf = self.profile_at(index).quic
            if conf is None:
                continue
            address = self.range.address(index)
            try:
                server = await serve(address, self.port, configuration=configuration(conf))
            except OSError as exc:
                self.unbound.append(f"{address}:{self.port}/udp: {exc.strerror or exc}")
                continue
            self._servers.append(server)
            self.bound.append(address)
        if self.unbound:
            log.warning("lab: no SMB over QUIC peer on %d address(es), e.g. %s", len(self.unbound), self.unbound[0])

    def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
