"""Audit results in contract.md's shape (one object per host)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .facts import HostFacts

STATUSES = ("patched", "missing", "not_applicable", "unknown")


@dataclass(slots=True)
class Verdict:
    """One finding id on one host.

    patched: the remedy is in place (an update, a build revision, a file
    version, or for configuration findings and unpatchable modules the
    hardening / workaround); missing: needed and not in place, `fix` lists
    the updates or actions; not_applicable: cannot occur on this host;
    unknown: the inventory does not say, `evidence` says what is lacking.
    """

    id: str
    status: str
    evidence: str
    fix: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "evidence": self.evidence, "fix": self.fix}


@dataclass(slots=True)
class AuditResult:
    host: str | None
    address: str | None
    source: str
    facts: HostFacts
    verdicts: list[Verdict] = field(default_factory=list)

    def verdict(self, finding_id: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.id == finding_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "address": self.address, "source": self.source, "facts": self.facts.to_dict(),
                "verdicts": [v.to_dict() for v in self.verdicts]}
