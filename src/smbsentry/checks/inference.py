"""Verdicts inferred from version facts, for bugs that must not be probed.

MS08-067's remote test crashes many vulnerable hosts, and the others need
exploit traffic; the project never sends such probes (checks.md).  The
knowledge base lists the affected builds; the NTLM-reported build decides
and the finding says it was inferred.  A build cannot show the patch
level, so an affected build is `likely`, never `vulnerable`.
"""

from __future__ import annotations

from ..kb.findings import affected_build
from ..kb.store import kb
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


def smb1_proven_off(host: HostAccess) -> str | None:
    """Evidence that SMBv1 is off on every SMB port that answered, or None.

    Proven means: at least one port answered, every open SMB port gave an
    answer to the NT LM 0.12-only negotiate, and every answer was a refusal
    (a reset or an SMB2 reply).  A port that stayed silent proves nothing."""
    s1 = host.result.smb1
    if s1 is None or s1.enabled or not s1.ports:
        return None
    open_ports = [p for p, state in host.result.ports.items() if state == "open"]
    if any(p not in s1.ports for p in open_ports) or any(s1.ports.values()):
        return None
    ports = sorted(s1.ports, key=lambda p: -int(p))
    return f"the NT LM 0.12 negotiate was refused on {' and '.join(ports)}"


def _candidate_products(names: list[str]) -> list[list[str]] | None:
    """Product ids per candidate name (a line such as "Windows XP" has several); None when one is not known."""
    data = kb()
    out = []
    for name in names:
        p = data.names.get(name)
        members = [p] if p is not None else data.lines.get(name)
        if not members:
            return None
        out.append([m.id for m in members])
    return out


def unaffected_build(vuln_ids: tuple[str, ...], host: HostAccess) -> str | None:
    """Evidence when no product the host's build may be is affected by any of `vuln_ids`.

    The NTLM build names every release that shares it (client and server
    editions, enablement-package releases); only when none of them is in the
    knowledge base's affected list, and none is a product a bulletin left
    unassessed, does the build decide the finding."""
    ident = host.result.identity
    if ident.implementation == "samba" and ident.os_name:
        names = ["Samba"]
    elif ident.implementation == "windows" and ident.os_candidates:
        names = list(ident.os_candidates)
    else:
        return None
    groups = _candidate_products(names)
    if groups is None:
        return None
    vulns = kb().vulns
    for vid in vuln_ids:
        v = vulns[vid]
        for pid in (pid for g in groups for pid in g):
            if pid in v.unassessed or any(pid in a.products for a in v.affected):
                return None
    what = ident.os_name or " / ".join(names)
    build = f" (NT {'.'.join((ident.os_version or '').split('.')[:2])}, build {ident.os_build})" if ident.os_build else ""
    named = dict.fromkeys(vulns[v].bulletin or v.upper() for v in vuln_ids)
    return f"{what}{build}: not a release {' or '.join(named)} affected"


def release_scope(vuln_id: str, host: HostAccess) -> tuple[str, str] | None:
    """("all" | "none" | "some", the releases named) for the releases sharing a Windows host's NTLM build.

    "all": every release that reports this build is affected, so the build
    alone makes the finding `likely`; "none": no release sharing it is
    affected or left unassessed; "some": the build cannot tell (an affected
    server and an out-of-support client share it, say).  None when the host
    is not Windows or its build names no release the knowledge base knows."""
    ident = host.result.identity
    if ident.implementation != "windows" or not ident.os_candidates:
        return None
    groups = _candidate_products(list(ident.os_candidates))
    if groups is None:
        return None
    v = kb().vulns[vuln_id]
    members = {pid for g in groups for pid in g}
    hit = {pid for pid in members if any(pid in a.products for a in v.affected)}
    names = " / ".join(ident.os_candidates)
    if hit == members:
        return "all", names
    if not hit and not members & v.unassessed:
        return "none", names
    return "some", names


def decided_without_probe(check: Check, host: HostAccess, vulns: tuple[str, ...], smb1_off_reason: str) -> Finding | None:
    """not_vulnerable from the facts when the probe cannot run, or None.

    SMBv1 proven off first (a wire fact about this host), then the build."""
    off = smb1_proven_off(host)
    if off is not None:
        return check.finding("not_vulnerable", evidence=f"SMBv1 is off: {off}", reason=smb1_off_reason)
    build = unaffected_build(vulns, host)
    if build is not None:
        return check.finding("not_vulnerable", evidence=build, inferred=True,
                             reason="inferred from the OS build reported over NTLM: no release sharing it was affected")
    return None
