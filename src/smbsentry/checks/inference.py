"""Verdicts inferred from version facts, for bugs that must not be probed.

MS08-067's remote test crashes many vulnerable hosts, and the others need
exploit traffic; the project never sends such probes (checks.md).  The
knowledge base lists the affected builds; the NTLM-reported build decides
and the finding says it was inferred.  A build cannot show the patch
level, so an affected build is `likely`, never `vulnerable`.
"""

from __future__ import annotations

from ..kb.findings import affected_build
from ..model import Finding
from .base import Check, HostAccess


def windows_build(host: HostAccess) -> tuple[str, int] | None:
    ident = host.result.identity
    if ident.implementation != "windows" or ident.os_version is None or ident.os_build is None:
        return None
    return ".".join(ident.os_version.split(".")[:2]), ident.os_build


class BuildInferredCheck(Check):
    """A Windows-only finding decided by the affected builds in the KB."""

    def verdict(self, host: HostAccess) -> list[Finding]:
        vb = windows_build(host)
        if vb is None:
            return []
        version, build = vb
        name = host.result.identity.os_name or f"build {version}.{build}"
        if affected_build(self.id, version, build):
            return [
                self.finding(
                    "likely",
                    evidence=f"{name} (NT {version}, build {build}) is an affected version",
                    reason="inferred from the OS version: the patch level is not visible remotely and the bug is not probed",
                    inferred=True,
                )
            ]
        return [self.finding("not_vulnerable", evidence=f"{name} (NT {version}, build {build}) is not an affected version", inferred=True)]

    async def run(self, host: HostAccess) -> list[Finding]:
        return self.verdict(host)
