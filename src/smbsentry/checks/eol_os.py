"""End-of-support OS, from the build's candidate products and their dates.

The NTLM build names every release that may run it, grouped in product
lines: client and server editions that share a build (7601: Windows 7 SP1
and Server 2008 R2 SP1) and, within a line, the later releases an
enablement package installs on the same base build (19041: Windows 10 2004
to 22H2).  A line's end of support is its latest release's (the build may
be that release, and the finding says so); where the lines disagree (one
ended, one supported), the verdict is unknown and the reason names both."""

from __future__ import annotations

from datetime import date

from ..kb.builds import lookup
from ..kb.lifecycle import end_of_support
from ..model import Finding
from .base import Check, HostAccess


def release_lines(ident) -> list[tuple[str, ...]]:
    """The candidate lines of the host's build (each oldest release first)."""
    if ident.os_version and ident.os_build is not None:
        try:
            major, minor = (int(x) for x in ident.os_version.split(".")[:2])
            guess = lookup(major, minor, ident.os_build)
            if guess.lines and set(guess.candidates) == set(ident.os_candidates):
                return list(guess.lines)
        except ValueError:
            pass
    return [(c,) for c in ident.os_candidates]


def _describe(line: tuple[str, ...], end: date, today: date) -> str:
    verb = "ended" if end < today else "supported until"
    if len(line) == 1:
        return f"{line[0]} ({verb} {end.isoformat()})"
    return f"{line[0]} to {line[-1]} ({verb} {end.isoformat()}, the date of its latest release {line[-1]}, which the build may be)"


class EolOs(Check):
    id = "eol-os"
    needs: frozenset = frozenset()  # the identity may come from RDP or SMTP when SMB is closed

    async def run(self, host: HostAccess) -> list[Finding]:
        ident = host.result.identity
        if ident.implementation != "windows" or not ident.os_candidates:
            return []
        today = host.scan_date
        lines = release_lines(ident)
        ends = [(line, end_of_support(line[-1])) for line in lines]
        missing = [line[-1] for line, end in ends if end is None]
        if missing:
            return [self.unknown(f"no end-of-support date for {', '.join(missing)}")]
        past = [_describe(line, e, today) for line, e in ends if e < today]
        current = [_describe(line, e, today) for line, e in ends if e >= today]
        if past and not current:
            return [self.finding("vulnerable", evidence="; ".join(past), inferred=True)]
        if current and not past:
            return [self.finding("not_vulnerable", evidence="; ".join(current), inferred=True)]
        return [self.unknown(f"build {ident.os_build} is shared: " + "; ".join(past + current))]
