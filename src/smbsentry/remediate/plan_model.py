"""What a remediation plan is: its dataclasses, and the commands an action runs in one script flavour.

The planner (planner.py) builds these and the script writer (scripts.py)
renders them; both read this module, so neither imports the other's
internals and there is no planner <-> scripts cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from ..kb.model import Action, Product
from ..model import plain_dict

# The script language per OS family is knowledge: kb/data/remediation.json `families[].script`.


@dataclass
class Step:
    id: str  # a kb action id, or the planner's: backup, isolate-now, verify-update, verify-build, isolate-segment, xp-firewall, identify
    phase: str
    text: str
    findings: list[str] = field(default_factory=list)
    kb: str | None = None
    title: str | None = None
    level: str | None = None  # the product (service-pack level) the package installs on
    files: dict[str, str] = field(default_factory=dict)  # architecture -> package file name (kb data)
    urls: dict[str, str] = field(default_factory=dict)
    alternatives: list[str] = field(default_factory=list)
    verify_kbs: list[str] = field(default_factory=list)  # any of these proves the fix (kb supersedence)
    verify_build: tuple[tuple[int, ...], int] | None = None  # (builds, lowest fixed UBR)
    condition_build: tuple[int, ...] = ()  # service packs: run only on these builds
    condition_sp: int | None = None  # ... or where CSDVersion is below this service pack
    reboot: bool = False
    scripted: bool = False
    note: str | None = None
    text_key: str | None = None  # planner steps whose text names host data (shares, evidence): scripts show the generic text
    text_args: dict[str, str] = field(default_factory=dict)  # ... and the host data, kept apart so writers can escape it
    disrupts: str | None = None  # what the step interrupts (kb actions' `disrupts`): the backup gate goes before it

    def to_dict(self) -> dict[str, Any]:
        # Every field is a string, a number or a flat list/dict of them: a shallow copy with the containers
        # copied is a plain copy. The instance dict holds exactly the fields in their declared order (a plain
        # dataclass); copying it beats one getattr per field (plain_dict's recursion, then a dict comprehension,
        # were most of the cost of writing a plan).
        d = self.__dict__.copy()
        for n in _STEP_CONTAINERS:
            d[n] = d[n].copy()
        d["verify_build"] = list(d["verify_build"][0]) + [d["verify_build"][1]] if self.verify_build else None
        d["condition_build"] = list(self.condition_build)
        return d


_STEP_CONTAINERS = tuple(f.name for f in fields(Step) if f.default_factory in (list, dict))


@dataclass
class HostPlan:
    key: str
    name: str | None
    address: str | None
    os: str | None
    product: str | None
    family: str | None
    architecture: str | None
    end_of_support: str | None
    eol: bool
    holds_data: bool
    data_shares: list[str]
    isolate: str | None  # "implant" | "wannacry" | None
    needs: dict[str, str]  # finding id -> the status that asked for a remedy
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group: str | None = None
    priority: int = 9

    @property
    def category(self) -> str:
        if self.isolate:
            return "isolate"
        if any(s.id == "identify" for s in self.steps):
            return "identify"
        if any(s.phase == "patch" for s in self.steps):
            return "patch"
        if any(s.id not in ("verify", "resolve-conflict") for s in self.steps):
            return "workaround"
        if self.steps:
            return "verify"
        return "clean"

    def to_dict(self) -> dict[str, Any]:
        d = {k: plain_dict(v) if hasattr(v, "__dataclass_fields__") else (list(v) if isinstance(v, list) else
             dict(v) if isinstance(v, dict) else v) for k, v in ((f, getattr(self, f)) for f in _HOSTPLAN_FIELDS)}
        d["steps"] = [s.to_dict() for s in self.steps]
        d["category"] = self.category
        return d


_HOSTPLAN_FIELDS = ("key", "name", "address", "os", "product", "family", "architecture", "end_of_support", "eol", "holds_data",
                    "data_shares", "isolate", "needs", "notes", "group", "priority")


@dataclass
class BundleRow:
    product: str
    os: str
    architecture: str
    kb: str
    kind: str
    role: str  # base | key | alternative
    title: str
    file: str | None
    url: str | None
    hosts: int
    order: int
    note: str | None = None
    language: str | None = None  # None: a language-neutral package (or no update data)


@dataclass
class ScriptGroup:
    name: str
    flavour: str  # cmd | ps1 | sh
    family: str
    architecture: str | None  # None: the script picks the package by the host's architecture
    products: list[str]
    builds: list[int]
    hosts: list[str]  # host keys
    steps: list[Step]
    apply: str = ""
    rollback: str = ""

    @property
    def extension(self) -> str:
        return {"cmd": ".cmd", "ps1": ".ps1", "sh": ".sh"}[self.flavour]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "flavour": self.flavour, "family": self.family, "architecture": self.architecture,
                "products": self.products, "builds": self.builds, "hosts": self.hosts,
                "files": [f"scripts/{self.name}-apply{self.extension}", f"scripts/{self.name}-rollback{self.extension}"],
                "steps": [s.id + (f" {s.kb}" if s.kb else "") for s in self.steps]}


@dataclass
class Plan:
    lang: str
    as_of: date
    hosts: list[HostPlan]
    groups: list[ScriptGroup]
    bundle: list[BundleRow]
    firewall: str = ""
    actions: list = field(default_factory=list)  # the ranked action list (actions.ActionRow)

    @property
    def isolate_now(self) -> list[HostPlan]:
        return [h for h in self.hosts if h.isolate]

    @property
    def backup_first(self) -> list[HostPlan]:
        return [h for h in self.hosts if any(s.id == "backup" for s in h.steps)]

    def host(self, ref: str) -> HostPlan | None:
        low = ref.lower()
        return next((h for h in self.hosts if h.key == low or h.address == ref or (h.name or "").lower() == low), None)

    def to_dict(self, hosts: bool = True) -> dict[str, Any]:
        """plan.json; hosts=False leaves the per-host plans out (the writer streams them)."""
        return {
            "format": "smbsentry-plan", "version": 1, "lang": self.lang, "as_of": self.as_of.isoformat(),
            "actions": [r.to_dict() for r in self.actions],
            "isolate_now": [{"host": h.name, "address": h.address, "reason": h.isolate} for h in self.isolate_now],
            "backup_first": [{"host": h.name, "address": h.address, "shares": h.data_shares} for h in self.backup_first],
            **({"hosts": [h.to_dict() for h in self.hosts]} if hosts else {}),
            "groups": [g.to_dict() for g in self.groups],
            "bundle": [plain_dict(b) for b in self.bundle],
        }


def commands_for(a: Action, flavour: str, p: Product | None, rollback: bool = False) -> tuple[str, ...]:
    """The commands of `a` for one script flavour (ps1 | cmd | sh); the rollback ones when asked."""
    src = a.rollback if rollback else a.commands
    if flavour == "ps1":
        if p is not None and p.role == "server" and src.get("powershell-server"):
            return src["powershell-server"]
        return src.get("powershell") or src.get("cmd") or ()
    if flavour == "cmd":
        return src.get("cmd") or ()
    if flavour == "sh":
        return src.get("shell") or ()
    return ()

