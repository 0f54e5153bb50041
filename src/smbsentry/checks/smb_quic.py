"""SMB over QUIC: is SMB offered on UDP 443, and what certificate does it present?

Windows Server 2025 (and Server 2022 Datacenter: Azure Edition) can serve
SMB inside QUIC on UDP 443, a port firewalls open to the internet for
HTTP/3; Microsoft's "SMB over QUIC" page describes it.  The probe
(services/quic.py, run by the engine because this check declares
`Need.QUIC`) sends a QUIC Initial offering ALPN "smb" and reads the TLS 1.3
handshake far enough to see the server certificate; no SMB is sent inside.
The port is the knowledge base's (`udp_ports` of the smb-over-quic entry).

Findings (both low, `kind: configuration`):
* `smb-over-quic`: vulnerable when the server accepted ALPN smb (SMB is
  reachable on the internet-facing port: know that it is meant to be);
  not_vulnerable when the port answered ICMP port unreachable or a QUIC
  server refused ALPN smb; unknown when the port stayed silent or answered
  with something that is not QUIC -- a silent UDP port is "could not see",
  never "has none".
* `smb-over-quic-cert` (only when SMB over QUIC was offered): vulnerable
  when the certificate is expired, not yet valid or self-signed at the scan
  date, with its names, issuer and validity as evidence.

Not default: it sends a datagram exchange the default scan does not.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from ..model import Finding
from .base import Check, HostAccess, Need

CERT_ID = "smb-over-quic-cert"


def _r(value: Any) -> str:
    """A remote string inside an evidence part: "; " separates parts, so the peer may not write one."""
    return str(value).replace("; ", ";") if value else "(empty)"


def cert_text(cert: dict[str, Any]) -> str:
    """The certificate facts as "; "-joined parts (each translated on its own)."""
    parts = [f"certificate subject {_r(cert.get('subject'))}"]
    if cert.get("names"):
        parts.append(f"certificate names {_r(', '.join(cert['names']))}")
    parts.append(f"issuer {_r(cert.get('issuer'))}")
    parts.append(f"valid from {cert.get('not_before') or '?'} to {cert.get('not_after') or '?'}")
    if cert.get("self_signed"):
        parts.append("self-signed")
    return "; ".join(parts)


def cert_problems(cert: dict[str, Any], today: _dt.date) -> list[str]:
    """Why the certificate would fail a client's check: expired, not yet valid, self-signed."""
    out = []
    after, before = cert.get("not_after"), cert.get("not_before")
    if after and after[:10] < today.isoformat():
        out.append(f"expired on {after[:10]}")
    if before and before[:10] > today.isoformat():
        out.append(f"not valid before {before[:10]}")
    if cert.get("self_signed"):
        out.append("self-signed")
    return out


class SmbOverQuic(Check):
    id = "smb-over-quic"
    needs = frozenset({Need.QUIC})
    default = False
    description = "SMB over QUIC on UDP 443: ALPN smb offered or not, the server certificate"

    async def run(self, host: HostAccess) -> list[Finding]:
        facts = (host.services or {}).get("quic")
        if not isinstance(facts, dict):
            return [self.unknown("the SMB over QUIC probe did not run (UDP port not probed)")]
        port = facts.get("port")
        if facts.get("offered"):
            return self._offered(host, facts, port)
        if facts.get("unreachable"):
            return [self.finding("not_vulnerable", port=port,
                                 evidence=f"UDP {port} answered ICMP port unreachable: nothing listens")]
        if "close" in facts or "alpn" in facts:
            return [self.finding("not_vulnerable", port=port, evidence=_refusal(facts), details={"quic": facts})]
        return [self.unknown(str(facts.get("error") or "no answer on the SMB over QUIC port"), port=port)]

    def _offered(self, host: HostAccess, facts: dict[str, Any], port: int | None) -> list[Finding]:
        cert = facts.get("certificate")
        details = {"quic": facts}
        evidence = f"UDP {port}: QUIC handshake completed with ALPN smb (TLS 1.3)"
        out = [self.finding("vulnerable", port=port, evidence=evidence + (f"; {cert_text(cert)}" if cert else ""),
                            details=details)]
        if not cert:
            out.append(self.finding("unknown", port=port, finding_id=CERT_ID,
                                    reason="the handshake completed but no server certificate could be read"))
            return out
        problems = cert_problems(cert, host.scan_date)
        if problems:
            out.append(self.finding("vulnerable", port=port, finding_id=CERT_ID, details={"certificate": cert},
                                    evidence="; ".join([f"certificate {p}" for p in problems] + [cert_text(cert)])))
        else:
            out.append(self.finding("not_vulnerable", port=port, finding_id=CERT_ID, details={"certificate": cert},
                                    evidence=f"certificate within its validity period, not self-signed; {cert_text(cert)}"))
        return out


def _refusal(facts: dict[str, Any]) -> str:
    port = facts.get("port")
    close = facts.get("close")
    if close is None:
        return f"UDP {port}: a QUIC server completed the handshake without agreeing ALPN smb"
    code = int(close.get("error_code") or 0)
    if code == 0x178:
        return f"UDP {port}: a QUIC server refused ALPN smb (CONNECTION_CLOSE 0x178, TLS alert no_application_protocol)"
    return f"UDP {port}: a QUIC server closed the handshake (CONNECTION_CLOSE 0x{code:x})"
