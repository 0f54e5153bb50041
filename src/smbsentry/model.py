"""The one result model (../shared/reference/contract.md).

Scanner, checks, CLI writers, store, reports and the web UI all read and
write these classes; `to_dict` produces exactly the contract's JSON shape.
Fields that could not be learned stay None and serialise as null: nothing
here is ever filled with a guess.  Attacker-controlled strings (names,
NativeOS) are capped at MAX_REMOTE_STRING when they enter the model.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

MAX_REMOTE_STRING = 256

#: errno values that mean this machine ran out of something, not that the
#: target did anything: a step failing so is a "local-error" (scan and
#: service probes alike), and the scan tries that host again later.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL})



class Verdict(StrEnum):
    """A finding's status: the contract's four strings (contract.md), as one type.

    A StrEnum, so a member is its string: it compares, hashes and serialises as
    "vulnerable" etc., and a dict read back from JSON needs no conversion."""

    VULNERABLE = "vulnerable"
    LIKELY = "likely"
    NOT_VULNERABLE = "not_vulnerable"
    UNKNOWN = "unknown"


#: The statuses that mean "act on this" (seen or inferred), in order of certainty.
#: Defined once here; reports, diffs, --fail-on and the arsenal view read it.
#: Plain strings (the contract's), so a store query can take the tuple as it is.
BAD: tuple[str, ...] = (Verdict.VULNERABLE.value, Verdict.LIKELY.value)

STATUSES = tuple(v.value for v in Verdict)
SEVERITIES = ("critical", "high", "medium", "low", "info")
SIGNING = ("disabled", "enabled", "required")


def _plain(value: Any) -> Any:
    """A copy of a field value for JSON: dicts and lists copied, dataclasses made dicts.

    What dataclasses.asdict does, without its deepcopy of every leaf: the
    per-host cost of asdict was a third of the scanner's CPU."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None or kind is float:
        return value
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(_plain(v) for v in value)
    if hasattr(kind, "__dataclass_fields__"):
        return _as_dict(value)
    return value


def _as_dict(obj: Any) -> dict[str, Any]:
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    return {name: _plain(getattr(obj, name)) for name in names}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def plain_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as JSON-able dicts and lists, without dataclasses.asdict's deep copies
    (the writers of large results - plans of 10,000 hosts - use it)."""
    return _as_dict(obj)


def cap(text: str | None, limit: int = MAX_REMOTE_STRING) -> str | None:
    """Cap a string that came from the network and drop control characters."""
    if text is None:
        return None
    if text.isprintable():
        return text[:limit]
    cleaned = "".join(ch if ch.isprintable() else "\ufffd" for ch in text[:limit])
    return cleaned


@dataclass(slots=True)
class Finding:
    id: str
    status: str  # a Verdict value (the contract's string)
    severity: str
    title: str
    cves: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    evidence: str | None = None
    reason: str | None = None
    inferred: bool = False
    port: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = _as_dict(self)
        if not d["details"]:
            del d["details"]
        return d


@dataclass(slots=True)
class Smb1Info:
    enabled: bool
    ports: dict[str, bool] = field(default_factory=dict)
    signing: str | None = None
    native_os: str | None = None
    native_lm: str | None = None
    primary_domain: str | None = None
    server_name: str | None = None
    extended_security: bool | None = None
    capabilities: int | None = None
    system_time: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if not self.enabled:
            return {"enabled": False, "ports": self.ports}
        return _as_dict(self)


@dataclass(slots=True)
class Smb2Info:
    dialects: list[str] = field(default_factory=list)
    dialects_confirmed: list[str] = field(default_factory=list)
    dialects_method: str = "range"
    signing: str | None = None
    capabilities: list[str] = field(default_factory=list)
    compression: list[str] = field(default_factory=list)
    encryption: list[str] = field(default_factory=list)
    signing_algorithms: list[str] = field(default_factory=list)
    server_guid: str | None = None
    system_time: str | None = None
    boot_time: str | None = None
    max_read: int | None = None
    max_write: int | None = None
    max_transact: int | None = None
    security_mechanisms: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(slots=True)
class Identity:
    netbios_name: str | None = None
    netbios_domain: str | None = None
    dns_name: str | None = None
    dns_domain: str | None = None
    dns_forest: str | None = None
    os_version: str | None = None
    os_build: int | None = None
    os_name: str | None = None
    os_candidates: list[str] = field(default_factory=list)
    os_build_shared: bool | None = None
    implementation: str | None = None
    samba_version: str | None = None
    null_session: bool | None = None
    guest_session: bool | None = None
    ntlm_time: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(slots=True)
class HostResult:
    address: str
    hostname: str | None = None
    ports: dict[str, str] = field(default_factory=dict)
    smb1: Smb1Info | None = None
    smb2: Smb2Info | None = None
    identity: Identity = field(default_factory=Identity)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration_ms: int = 0
    connections: int = 0
    services: dict[str, Any] = field(default_factory=dict)  # other services (RDP, HTTP, Kerberos...) when probed
    # domain-controller | file-server | unknown, with the evidence, whether a share
    # listing succeeded and the data shares it showed, and the directory probe's ports when it ran
    # (probed_ports: scan/role.py); None: not assessed
    role: dict[str, Any] | None = None

    @property
    def smb_open(self) -> bool:
        return any(state == "open" for state in self.ports.values())

    @property
    def services_answered(self) -> bool:
        """Some non-SMB service probe got an answer (Notes: a port was open)."""
        for value in self.services.values():
            if not isinstance(value, dict) or "error" in value:
                continue
            ports = value.get("ports")
            if isinstance(ports, dict) and not any(isinstance(p, dict) and p.get("open") for p in ports.values()):
                continue
            return True
        return False

    @property
    def reportable(self) -> bool:
        """Worth a result record: SMB is open, another probed service answered, or
        this host could not be judged because of us (a local error or a bug):
        such a host is never dropped silently."""
        return self.smb_open or self.services_answered or self.local_error or any(
            ": internal-error:" in e for e in self.errors)

    @property
    def local_error(self) -> bool:
        """Some step failed because this machine ran out of something
        (LOCAL_ERRNOS): the host itself was not judged."""
        if any(": local-error:" in e for e in self.errors):
            return True
        return any(isinstance(v, dict) and "local-error:" in str(v.get("error", "")) for v in self.services.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "hostname": self.hostname,
            "ports": dict(self.ports),
            "smb1": self.smb1.to_dict() if self.smb1 else None,
            "smb2": self.smb2.to_dict() if self.smb2 else None,
            "identity": self.identity.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "errors": list(self.errors),
            "duration_ms": self.duration_ms,
            "connections": self.connections,
            **({"services": self.services} if self.services else {}),
            **({"role": self.role} if self.role is not None else {}),
        }
