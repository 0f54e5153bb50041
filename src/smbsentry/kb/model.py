"""Typed, read-only views of the knowledge-base entries.

The JSON files are the source of truth; these classes exist so that code
asking questions (queries, the audit evaluator, later the remediation
planner) gets attribute access, parsed dates and version tuples instead of
re-parsing strings on every host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

KIND_LABELS = {
    "security-only": "security-only update",
    "monthly-rollup": "monthly rollup",
    "preview-rollup": "preview of monthly rollup",
    "cumulative": "cumulative update",
    "standalone": "security update",
    "service-pack": "service pack",
}


def as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def parse_date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def version_tuple(text: str) -> tuple[int, ...]:
    """'6.1.7601.23689' -> (6, 1, 7601, 23689); stops at the first non-number."""
    out = []
    for part in text.strip().split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
        if len(digits) != len(part):
            break
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    line: str
    family: str
    role: str
    version: str | None
    build: int | None
    service_pack: int | None
    editions: tuple[str, ...]
    architectures: tuple[str, ...]
    end_of_support: date | None
    ubr_is_proof: bool
    source: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    other_builds: tuple[int, ...] = ()
    next_service_pack: tuple[str, str] | None = None  # (KB, product id)
    service_pack_support_end: date | None = None
    lifecycle_note: str | None = None

    @property
    def windows(self) -> bool:
        return self.family.startswith("windows")

    @property
    def builds(self) -> tuple[int, ...]:
        return ((self.build,) if self.build is not None else ()) + self.other_builds


@dataclass(frozen=True, slots=True)
class Prerequisite:
    kb: str
    name: str
    kind: str  # service-pack | update
    provides: tuple[str, ...] = ()  # service packs: the product levels they lead to
    products: tuple[str, ...] = ()  # updates: the products that need them

    def to_dict(self) -> dict:
        return {"kb": self.kb, "name": self.name}


def language_matches(tag: str | None, wanted: str | None) -> bool:
    """Whether a package language tag serves `wanted` ('zh-cn', or just 'zh'); a neutral package (None) serves any."""
    if tag is None or wanted is None:
        return True
    wanted = wanted.lower()
    return tag == wanted or tag.split("-")[0] == wanted


@dataclass(frozen=True, slots=True)
class FileRef:
    """One package file of an update (update_files.json): where it installs, its language (None: neutral) and address."""

    name: str
    architecture: str
    url: str | None
    language: str | None
    source: tuple[str, ...]
    products: tuple[str, ...] = ()  # empty: every product of the fix
    note: str | None = None


@dataclass(frozen=True, slots=True)
class FileGap:
    """Why an update has no package file for these products / architecture / language (update_files.json `gaps`)."""

    products: tuple[str, ...]
    architecture: str
    language: str | None
    reason: str
    source: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FileVersion:
    products: tuple[str, ...]
    text: str
    version: tuple[int, ...]
    branch: str | None = None
    revisions: tuple[int, int] | None = None

    def covers(self, host: tuple[int, ...]) -> bool:
        """Whether this threshold applies to a host file version (same build, same branch band)."""
        if host[:3] != self.version[:3]:
            return False
        if self.revisions is None or len(host) < 4:
            return self.revisions is None
        lo, hi = self.revisions
        return lo <= host[3] <= hi


@dataclass(frozen=True, slots=True)
class Fix:
    kb: str
    title: str
    kind: str
    products: tuple[str, ...]
    architectures: tuple[str, ...]
    released: date | None
    addresses: tuple[str, ...]
    supersedes: tuple[str, ...]
    source: tuple[str, ...]
    released_for: dict[str, date] = field(default_factory=dict)
    fixed_builds: dict[int, int] = field(default_factory=dict)
    fixed_file: str | None = None
    fixed_versions: tuple[FileVersion, ...] = ()
    prerequisites: tuple[Prerequisite, ...] = ()
    files: tuple[FileRef, ...] = ()
    note: str | None = None
    gaps: tuple[FileGap, ...] = ()

    @property
    def number(self) -> int:
        return int(self.kb[2:])

    def released_on(self, product_id: str | None = None) -> date | None:
        return self.released_for.get(product_id, self.released) if product_id else self.released

    def label(self, product_id: str | None = None) -> str:
        """'2017-05 monthly rollup': how evidence names an update."""
        day = self.released_on(product_id)
        kind = KIND_LABELS[self.kind]
        return f"{day:%Y-%m} {kind}" if day else kind

    def files_for(self, arch: str | None, product_id: str | None = None, language: str | None = None) -> tuple[FileRef, ...]:
        """Package files for an architecture / product / language (None: any); neutral packages serve every language."""
        return tuple(f for f in self.files if (arch is None or f.architecture == arch)
                     and (product_id is None or not f.products or product_id in f.products)
                     and language_matches(f.language, language))

    def gap_for(self, arch: str, product_id: str, language: str | None = None) -> FileGap | None:
        """The recorded reason this update has no package for the architecture / product / language, if any."""
        return next((g for g in self.gaps if g.architecture == arch and product_id in g.products
                     and (g.language is None or language_matches(g.language, language))), None)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    bulletin: str
    kinds: tuple[str, ...]
    products: tuple[str, ...]
    released_from: date
    text: str
    source: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Affected:
    products: frozenset[str]
    architectures: frozenset[str] | None = None
    role: str | None = None
    component: str | None = None
    versions: tuple[str, ...] = ()
    fixed_version: str | None = None
    platforms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Vulnerability:
    id: str
    title: str
    title_zh: str
    kind: str
    severity: str
    cves: tuple[str, ...]
    references: tuple[str, ...]
    source: tuple[str, ...]
    cvss: str | None = None
    bulletin: str | None = None
    released: date | None = None
    ports: tuple[int, ...] = ()
    udp_ports: tuple[int, ...] = ()  # learned over UDP (SMB over QUIC): says nothing of the SMB server on TCP
    component: str | None = None
    fixed_file: str | None = None
    affected: tuple[Affected, ...] = ()
    workarounds: tuple[str, ...] = ()
    module: str | None = None
    module_zh: str | None = None
    affected_text: str | None = None
    fix_text: str | None = None
    note: str | None = None
    unassessed: frozenset[str] = frozenset()

    @property
    def affected_products(self) -> frozenset[str]:
        out: set[str] = set()
        for a in self.affected:
            out |= a.products
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class Action:
    id: str
    kind: str
    text_en: str
    text_zh: str
    applies_to: tuple[str, ...]
    commands: dict[str, tuple[str, ...]]
    rollback: dict[str, tuple[str, ...]]
    reboot: bool
    source: tuple[str, ...]
    note: str | None = None
    disrupts: dict[str, str] | None = None  # {"en": ..., "zh": ...}: what the action interrupts (None: nothing)
    verify: dict[str, str] | None = None  # {"shell": command}: succeeds once the action is in place

    def render(self, fix: Fix | None = None, arch: str | None = None) -> dict[str, list[str]]:
        """Commands with {file}, {kb} and {kbnum} filled from a fix entry."""
        values = {"kb": fix.kb if fix else "{kb}", "kbnum": fix.kb[2:] if fix else "{kbnum}", "file": "{file}"}
        if fix:
            files = fix.files_for(arch) or fix.files  # the planner passes the exact file when it knows the product
            values["file"] = files[0].name if files else f"<{fix.kb} package for this system>"
        def fill(cmd: str) -> str:
            for key, value in values.items():
                cmd = cmd.replace("{" + key + "}", value)
            return cmd

        return {k: [fill(c) for c in v] for k, v in self.commands.items()}


# remediation.json: how the planner answers findings per OS family (read by remediate/planner.py)

@dataclass(frozen=True, slots=True)
class FamilyPlan:
    label: str  # the script group's name prefix ("win7-2008r2")
    script: str  # cmd | ps1 | sh: the language the family's scripts are written in
    smb1_action: str | None  # the action that turns the SMB1 server off on this family
    source: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlanStep:
    action: str
    phase: str  # immediate | patch
    unless_fact: str | None = None  # skipped when the host's facts say this is already True


@dataclass(frozen=True, slots=True)
class FindingPlan:
    families: tuple[str, ...]  # the plan acts on the finding only on these families (empty: on any)
    steps: tuple[PlanStep, ...]
    source: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InstallerExit:
    """An update installer's exit code the apply scripts explain (wusa.exe; the older .exe installers share 3010)."""

    code: int  # as cmd's ERRORLEVEL and PowerShell's ExitCode show it: signed 32-bit
    name: str  # the Win32 / Windows Update Agent constant
    outcome: str  # reboot (installed, restart needed) | installed (already there) | failed
    meaning: str  # the script's words for it
    source: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Remediation:
    families: dict[str, FamilyPlan]
    hardening: dict[str, str]  # configuration finding -> its Windows hardening action
    samba_manual: dict[str, str]  # configuration finding -> the manual step on Samba (a remediate text key)
    findings: dict[str, FindingPlan]
    settle: dict[str, str]  # finding -> how an unknown is settled (a remediate text key)
    installer_exits: tuple[InstallerExit, ...] = ()  # in the order the scripts test them
