"""CVE-2020-0796 (SMBGhost) from the SMB2 negotiate and the NTLM build.

No malformed compressed packet is ever sent (it crashes vulnerable hosts).
The affected code runs only on builds 18362/18363 that answer 3.1.1 with a
compression context offering LZNT1; their update revision is not visible
remotely, so the answer is `likely` until credentialed facts supply the
UBR (>= 720 is fixed).  Every other build, or no compression context (the
DisableCompression workaround), is not vulnerable, and the reason says so.
Public scanners that stop at "3.1.1 + compression" flag Server 2019 too.

`compression_gate` is shared with SMBleed (checks/smbleed.py), which sits in
the same decompression path.
"""

from __future__ import annotations

from ..kb.findings import affected_build, fixed_by, meta
from ..model import Finding
from .base import Check, HostAccess, Need


def compression_gate(check: Check, host: HostAccess) -> list[Finding] | None:
    """The findings when the negotiate alone decides a compression bug ([] when there is nothing to say), else None.

    No SMB2 or not Windows: nothing.  No 3.1.1, or a 3.1.1 answer without an
    LZNT1 compression context: the server-side decompression path is closed."""
    r = host.result
    ident, smb2 = r.identity, r.smb2
    if smb2 is None or not smb2.dialects or ident.implementation != "windows":
        return []  # no SMB2 at all: nothing to say about an SMB3 bug
    port = smb_port(r)
    if "3.1.1" not in smb2.dialects:
        return [check.finding("not_vulnerable", evidence=f"highest dialect {smb2.dialects[-1]}: no SMB 3.1.1", port=port)]
    if "LZNT1" not in smb2.compression:
        detail = f"compression offered: {', '.join(smb2.compression)}" if smb2.compression else "no compression context in the 3.1.1 negotiate (compression disabled)"
        return [check.finding("not_vulnerable", evidence=f"3.1.1 negotiated; {detail}", port=port)]
    return None


class SmbGhost(Check):
    id = "cve-2020-0796"
    needs = frozenset({Need.SMB, Need.SMB2_NEGOTIATE})

    async def run(self, host: HostAccess) -> list[Finding]:
        decided = compression_gate(self, host)
        if decided is not None:
            return decided
        ident = host.result.identity
        port = smb_port(host.result)
        if ident.os_version is None or ident.os_build is None:
            return [self.unknown("3.1.1 with LZNT1 compression, but the build is not visible", port=port)]
        version = ".".join(ident.os_version.split(".")[:2])
        if not affected_build(self.id, version, ident.os_build):
            return [
                self.finding(
                    "not_vulnerable",
                    evidence=f"3.1.1 with LZNT1 compression on build {ident.os_build} ({ident.os_name}): not an affected build "
                             f"({'/'.join(str(b['build']) for b in meta(self.id)['affected_builds'])} only)",
                    inferred=True,
                    port=port,
                )
            ]
        ubr = host.facts.get("ubr")
        fixed = meta(self.id)["fixed_ubr"]
        if ubr is not None:
            status = "not_vulnerable" if ubr >= fixed else "vulnerable"
            return [
                self.finding(
                    status,
                    evidence=f"build {ident.os_build}.{ubr} with LZNT1 compression; fixed from revision {fixed} ({', '.join(fixed_by(self.id))})",
                    port=port,
                )
            ]
        return [
            self.finding(
                "likely",
                evidence=f"build {ident.os_build} answers 3.1.1 with an LZNT1 compression context",
                reason=f"patch level (update revision, fixed from .{fixed}) is not visible remotely",
                inferred=True,
                port=port,
            )
        ]


def smb_port(r) -> int | None:
    return next((int(p) for p, s in r.ports.items() if s == "open"), None)
