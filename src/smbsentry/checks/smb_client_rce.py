"""CVE-2022-24500: remote code execution in the Windows SMB client.

A user of the host opens a path on a malicious SMB server; the host's own
SMB server shows nothing of it, so the answer is the build's releases and,
with credentials, the build revision (checks/revision.py).  Not in the
default set: every pre-2022 Windows host is `likely` until its revision is
known, which is noise in a network scan without credentials."""

from __future__ import annotations

from .revision import RevisionCheck


class SmbClientRce2022(RevisionCheck):
    id = "cve-2022-24500"
    default = False
    exposed_text = "client side: a user opening a malicious SMB server runs the attacker's code"
