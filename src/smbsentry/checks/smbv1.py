"""SMBv1 enabled, per port: an NT LM 0.12-only negotiate that gets an SMB1 answer.

445 and 139 are tested separately because they can differ (NetBIOS over
TCP may be off, or SMBDeviceEnabled=0 on old systems)."""

from __future__ import annotations

from ..model import Finding
from .base import Check, HostAccess


class Smbv1Enabled(Check):
    id = "smbv1-enabled"

    async def run(self, host: HostAccess) -> list[Finding]:
        s1 = host.result.smb1
        if s1 is None:
            return []
        out = []
        for port, enabled in sorted(s1.ports.items(), key=lambda kv: -int(kv[0])):
            if enabled:
                extra = f" ({s1.native_os} / {s1.native_lm})" if s1.native_os or s1.native_lm else ""
                out.append(self.finding("vulnerable", evidence=f"NT LM 0.12 negotiate accepted on {port}{extra}", port=int(port)))
            else:
                out.append(self.finding("not_vulnerable", evidence=f"NT LM 0.12 negotiate refused on {port}", port=int(port)))
        return out
