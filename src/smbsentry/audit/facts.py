"""What an inventory tells about one host.

Every field is optional: None means "the inventory does not say", which the
evaluator must treat differently from False ("it says no").  Several files
can describe one host (systeminfo for the OS, Get-HotFix for the updates);
`merge` combines them without letting a silent file erase a fact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

KB_RE = re.compile(r"\b(KB\d{6,7})\b", re.I)

# Serialisation order: contract.md's facts first, then the host-side facts.
ORDER = ("os_name", "os_version", "service_pack", "build", "ubr", "architecture", "installed_kbs", "smb1_server",
         "smb_device_enabled", "disable_compression", "server_service", "listening", "firewall_blocks_smb", "firewall_rules",
         "wannacry_indicators", "file_versions", "domain_controller", "smb_signing_required", "restrict_null_sessions",
         "guest_enabled", "rdp_enabled", "iis_webdav", "samba_version", "software", "edition", "product", "hotfixes_declared",
         "domain")


@dataclass(slots=True)
class HostFacts:
    host: str | None = None
    address: str | None = None
    os_name: str | None = None
    os_version: str | None = None  # "6.1.7601"
    service_pack: int | None = None
    build: int | None = None
    ubr: int | None = None  # update build revision: the 720 of 18363.720
    architecture: str | None = None  # x86 | x64 | arm64 | ia64
    installed_kbs: list[str] | None = None
    smb1_server: bool | None = None
    smb_device_enabled: bool | None = None  # NetBT SMBDeviceEnabled (XP / 2003)
    disable_compression: bool | None = None  # LanmanServer DisableCompression = 1
    server_service: str | None = None  # running | stopped | disabled
    listening: dict[str, bool] | None = None  # {"445": True, "139": False}
    firewall_blocks_smb: bool | None = None
    firewall_rules: list[str] | None = None
    wannacry_indicators: list[str] | None = None  # files, processes or services found
    file_versions: dict[str, str] | None = None  # {"srv.sys": "6.1.7601.23689"}
    domain_controller: bool | None = None
    smb_signing_required: bool | None = None
    restrict_null_sessions: bool | None = None
    guest_enabled: bool | None = None
    rdp_enabled: bool | None = None
    iis_webdav: bool | None = None
    samba_version: str | None = None
    software: dict[str, str] | None = None  # installed applications: name -> version
    edition: str | None = None
    product: str | None = None  # knowledge-base product id, filled by the evaluator
    # systeminfo lists at most a few hundred hotfixes: when it announced more than it listed, the number it announced
    # (installed_kbs is then only part of the list; a full export merged in clears it)
    hotfixes_declared: int | None = None
    # systeminfo's Domain line (Get-ComputerInfo's CsDomain): the DNS domain of a member, the workgroup name of a stand-alone
    # host; what joins these facts to a scan's NetBIOS / DNS domain
    domain: str | None = None
    sources: list[str] = field(default_factory=list)

    @property
    def key(self) -> str | None:
        """Host identity used to merge files: the name, else the address."""
        name = self.host or self.address
        return name.strip().lower() if name else None

    def add_kbs(self, kbs, clean: bool = False) -> None:
        """Add update ids; `clean` when they are already upper-case KB numbers (parsers that extracted them)."""
        got = set(kbs) if clean else {m.upper() for k in kbs for m in KB_RE.findall(str(k))}
        self.installed_kbs = sorted(set(self.installed_kbs or ()) | got, key=lambda k: int(k[2:]))

    def merge(self, other: HostFacts) -> None:
        """Fill what this one does not know from `other`; unions for lists and maps."""
        # A complete update list (Get-HotFix, wmic qfe, the collector) on either side lifts systeminfo's cap.
        full = any(x.installed_kbs is not None and x.hotfixes_declared is None for x in (self, other))
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "hotfixes_declared":
                self.hotfixes_declared = None if full else (mine or theirs)
                continue
            if theirs is None:
                continue
            if f.name == "installed_kbs":
                self.add_kbs(theirs, clean=True)
            elif f.name == "sources":
                self.sources += [s for s in theirs if s not in self.sources]
            elif mine is None:
                setattr(self, f.name, theirs)
            elif isinstance(mine, dict):
                setattr(self, f.name, {**theirs, **mine})
            elif isinstance(mine, list):
                setattr(self, f.name, mine + [x for x in theirs if x not in mine])

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ORDER}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostFacts:
        """Facts from a JSON object (an audit result's `facts`, or a collector's output)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names and k != "sources"}
        facts = cls(**{k: v for k, v in known.items() if k != "installed_kbs"})
        if known.get("installed_kbs") is not None:
            facts.add_kbs(known["installed_kbs"])
        return facts
