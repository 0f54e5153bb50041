"""End-of-support OS, from the build's candidate products and their dates.

Where client and server editions share a build and only some are past end of
support, the verdict is unknown and the reason names both."""

from __future__ import annotations

from ..kb.lifecycle import end_of_support
from ..model import Finding
from .base import Check, HostAccess
from .registry import register


@register
class EolOs(Check):
    id = "eol-os"
    needs_smb = False  # the identity may come from RDP or SMTP when SMB is closed

    async def run(self, host: HostAccess) -> list[Finding]:
        ident = host.result.identity
        if ident.implementation != "windows" or not ident.os_candidates:
            return []
        today = host.scan_date
        ends = [(p, end_of_support(p)) for p in ident.os_candidates]
        if any(end is None for _, end in ends):
            return [self.unknown(f"no end-of-support date for {', '.join(p for p, e in ends if e is None)}")]
        past = [f"{p} (ended {e.isoformat()})" for p, e in ends if e < today]
        current = [f"{p} (supported until {e.isoformat()})" for p, e in ends if e >= today]
        if past and not current:
            return [self.finding("vulnerable", evidence="; ".join(past), inferred=True)]
        if current and not past:
            return [self.finding("not_vulnerable", evidence="; ".join(current), inferred=True)]
        return [self.unknown(f"build {ident.os_build} is shared: " + "; ".join(past + current))]
