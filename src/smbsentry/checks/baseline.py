"""The Windows 11 24H2 / Windows Server 2025 SMB defaults, per host, from facts the scan has.

Those releases require signing, ship without SMB1, negotiate 3.1.1 with
AES-256-GCM available, offer encryption and refuse guest logons.  Each gap
is its own low/medium finding (`baseline-*`) whose fix -- the exact
Set-SmbServerConfiguration call or Group Policy path, with its rollback -- is
the knowledge base's action data (kb/data actions.json, named by the
finding's `workarounds`), not code.  No packet is sent: the negotiate, the
SMB1 probe and the guest check's result decide, and what they cannot show
(AES-256-GCM when the server chose another cipher from our offer) is
`unknown` with the reason.  Windows hosts only: Samba has its own defaults.
"""

from __future__ import annotations

from ..model import Finding
from .base import Check, HostAccess, Need
from .inference import smb1_proven_off
from .signing import signing_per_dialect
from .smbghost import smb_port

AES256_BUILD = 20348  # Windows Server 2022 / Windows 11: the first builds with AES-256 SMB ciphers


class SmbBaseline(Check):
    id = "smb-baseline"
    needs = frozenset({Need.SMB, Need.SMB2_NEGOTIATE})
    default = False

    async def run(self, host: HostAccess) -> list[Finding]:
        r = host.result
        if r.identity.implementation != "windows" or r.smb2 is None or not r.smb2.dialects:
            return []
        port = smb_port(r)
        out = [self._signing(host), self._smb1(host), self._aes256(host), self._encryption(host), self._guest(host)]
        for f in out:
            f.port = port
        return out

    def _signing(self, host: HostAccess) -> Finding:
        seen = signing_per_dialect(host)
        if not seen:
            return self.finding("unknown", reason="no negotiate reported its signing mode", finding_id="baseline-signing")
        text = "; ".join(f"{p} negotiate: signing {s}" for p, s in seen)
        weak = any(s != "required" for _, s in seen)
        return self.finding("vulnerable" if weak else "not_vulnerable", evidence=text, finding_id="baseline-signing")

    def _smb1(self, host: HostAccess) -> Finding:
        s1 = host.result.smb1
        if s1 is not None and s1.enabled:
            return self.finding("vulnerable", evidence="SMB1 negotiate answered (NT LM 0.12)", finding_id="baseline-smb1")
        off = smb1_proven_off(host)
        if off is not None:
            return self.finding("not_vulnerable", evidence=f"SMBv1 is off: {off}", finding_id="baseline-smb1")
        return self.finding("unknown", reason="no SMB port answered the SMB1 negotiate either way", finding_id="baseline-smb1")

    def _aes256(self, host: HostAccess) -> Finding:
        s2, build = host.result.smb2, host.result.identity.os_build
        fid = "baseline-smb311-aes256"
        if "3.1.1" not in s2.dialects:
            return self.finding("vulnerable", evidence=f"highest dialect {s2.dialects[-1]}: no SMB 3.1.1", finding_id=fid)
        if "AES-256-GCM" in s2.encryption:
            return self.finding("not_vulnerable", evidence="3.1.1 negotiated; cipher chosen: AES-256-GCM", finding_id=fid)
        if build is not None and build < AES256_BUILD:
            return self.finding("vulnerable", evidence=f"build {build}: AES-256 SMB ciphers arrived with build {AES256_BUILD}",
                                inferred=True, finding_id=fid)
        chosen = ", ".join(s2.encryption) or "none"
        return self.finding("unknown", evidence=f"3.1.1 negotiated; cipher chosen: {chosen}",
                            reason="the server chose another cipher from the scanner's offer; whether AES-256-GCM is enabled is not visible",
                            finding_id=fid)

    def _encryption(self, host: HostAccess) -> Finding:
        s2 = host.result.smb2
        fid = "baseline-encryption"
        if s2.encryption:
            return self.finding("not_vulnerable", evidence=f"3.1.1 negotiated; cipher chosen: {', '.join(s2.encryption)}", finding_id=fid)
        if "encryption" in s2.capabilities:
            return self.finding("not_vulnerable", evidence=f"highest dialect {s2.dialects[-1]}: encryption capability set", finding_id=fid)
        if not any(d.startswith("3.") for d in s2.dialects):
            return self.finding("vulnerable", evidence=f"highest dialect {s2.dialects[-1]}: no SMB 3", finding_id=fid)
        return self.finding("vulnerable", evidence=f"highest dialect {s2.dialects[-1]}: no cipher and no encryption capability", finding_id=fid)

    def _guest(self, host: HostAccess) -> Finding:
        guest = next((f for f in host.result.findings if f.id == "smb-guest-access"), None)
        fid = "baseline-guest"
        if guest is None or guest.status not in ("vulnerable", "not_vulnerable"):
            return self.finding("unknown", reason="the guest logon was not tested (run smb-guest-access with this check)", finding_id=fid)
        return self.finding(guest.status, evidence=guest.evidence, finding_id=fid)
