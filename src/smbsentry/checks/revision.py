"""Windows bugs decided by the releases sharing the NTLM build, then by the build revision.

The newer SMB vulnerabilities (SMBleed, CVE-2022-24500, CVE-2025-33073) are
fixed by cumulative updates whose level the wire does not show.  Like
NetExec's `enum_cve`, the build revision (UBR) decides when credentials or
an inventory supply it; the fixed revision per build comes from the updates
that address the bulletin in the knowledge base (fixes.json and the update
catalog), the data `smbsentry audit` decides by.  Without the revision the
NTLM build says `likely` only when every release sharing that build is
affected: a build shared by an affected server and an out-of-support client
the bulletin never assessed stays `unknown`, with the reason.

A subclass may see a workaround on the wire first (`exposure`): compression
off for SMBleed, signing required for the reflected relay.
"""

from __future__ import annotations

from typing import ClassVar

from ..kb.findings import fixed_revision, meta
from ..model import Finding
from .base import Check, HostAccess
from .inference import release_scope, windows_build
from .smbghost import smb_port


class RevisionCheck(Check):
    """One Windows finding: the build's releases, then the revision, then what the wire shows."""

    #: what the finding is when the wire shows no workaround and the revision is unknown
    exposed_text: ClassVar[str] = "the build revision decides"

    def exposure(self, host: HostAccess) -> tuple[list[Finding] | None, str]:
        """(findings when the wire alone decides, else None; evidence of exposure for the `likely` text)."""
        return None, self.exposed_text

    async def run(self, host: HostAccess) -> list[Finding]:
        vb = windows_build(host)
        if vb is None:
            return []
        port = smb_port(host.result)
        build = vb[1]
        bulletin = meta(self.id).get("bulletin") or self.id.upper()
        scope = release_scope(self.id, host)
        if scope is None:
            return [self.unknown(f"build {build} names no release the knowledge base knows; scan with credentials or audit an inventory", port=port)]
        kind, names = scope
        where = f"{names} (NT {vb[0]}, build {build})"
        if kind == "none":
            return [self.finding("not_vulnerable", evidence=f"{where}: not a release {bulletin} affected",
                                 reason="inferred from the OS build reported over NTLM: no release sharing it was affected", inferred=True, port=port)]
        revision = self._by_revision(host, build, bulletin, port)
        if revision is not None:
            return revision
        decided, exposed = self.exposure(host)
        if decided is not None:
            return decided
        if kind == "some":
            return [self.unknown(f"{where}: not every release sharing the build is one {bulletin} was assessed for "
                                 f"(an out-of-support release may carry the same code); the build revision would decide", port=port)]
        fixed = fixed_revision(self.id, build)
        need = f"patch level (update revision, fixed from .{fixed[0]}) is not visible remotely" if fixed else f"whether the {bulletin} update is installed is not visible remotely"
        return [self.finding("likely", evidence=f"{where}: an affected release; {exposed}",
                             reason=f"{need}; scan with credentials or audit an inventory", inferred=True, port=port)]

    def _by_revision(self, host: HostAccess, build: int, bulletin: str, port: int | None) -> list[Finding] | None:
        ubr = host.facts.get("ubr")
        if ubr is None:
            return None
        fixed = fixed_revision(self.id, build)
        if fixed is None:
            return [self.unknown(f"build {build}.{ubr}: the knowledge base names no fixed revision of {bulletin} for this build; "
                                 f"scan with credentials or audit an inventory", port=port)]
        low, kbs = fixed
        status = "not_vulnerable" if ubr >= low else "vulnerable"
        word = "at or above" if ubr >= low else "below"
        return [self.finding(status, evidence=f"OS build {build}.{ubr} is {word} {build}.{low} ({kbs[0]})", port=port)]
