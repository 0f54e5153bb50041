"""CVE-2020-1206 (SMBleed): kernel memory disclosure in SMBv3 decompression.

The same code path as SMBGhost on the same builds (Windows 10 / Server 1903
and 1909), fixed later (KB4560960, June 2020, revision .900): a host patched
for SMBGhost in March 2020 can still leak.  Nothing is probed: the negotiate
says whether the decompression path is open, the build and revision decide
the rest (checks/revision.py)."""

from __future__ import annotations

from ..model import Finding
from .base import HostAccess, Need
from .revision import RevisionCheck
from .smbghost import compression_gate


class SmbLeed(RevisionCheck):
    id = "cve-2020-1206"
    needs = frozenset({Need.SMB, Need.SMB2_NEGOTIATE})
    exposed_text = "answers 3.1.1 with an LZNT1 compression context"

    async def run(self, host: HostAccess) -> list[Finding]:
        decided = compression_gate(self, host)
        if decided is not None:
            return decided
        return await super().run(host)
