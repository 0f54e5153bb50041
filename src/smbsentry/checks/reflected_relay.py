"""CVE-2025-33073: the SMB client's authentication relayed back to the host itself.

An authenticated attacker coerces the host to authenticate to a name it
controls and relays that authentication to the host's own SMB server, which
grants SYSTEM.  The relayed session cannot be used where the host's SMB
server requires signing: seen on every negotiate, that is the workaround on
the wire (as no compression context is for SMBGhost).  Otherwise the build
and revision decide (checks/revision.py)."""

from __future__ import annotations

from ..model import Finding
from .base import HostAccess
from .revision import RevisionCheck
from .signing import signing_per_dialect
from .smbghost import smb_port


class ReflectedRelay(RevisionCheck):
    id = "cve-2025-33073"

    def exposure(self, host: HostAccess) -> tuple[list[Finding] | None, str]:
        seen = signing_per_dialect(host)
        text = "; ".join(f"{p} negotiate: signing {s}" for p, s in seen)
        if seen and all(s == "required" for _, s in seen):
            return [self.finding("not_vulnerable", evidence=f"{text}; a session relayed back to this host is refused",
                                 reason="the workaround is on the wire; whether the CVE-2025-33073 update is installed is not visible remotely",
                                 inferred=True, port=smb_port(host.result))], text
        if not seen:
            return None, "signing was not seen in a negotiate"
        return None, f"{text}; a relayed session is accepted"
