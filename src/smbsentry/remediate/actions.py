"""The ranked action list: what to do first, across every host of a plan.

A responder in an outbreak needs one list, not a plan per host. Rows, in
this order (the step ids are the plan's, a stable contract: docs/plan.md):

1. isolate-now: the DoublePulsar implant answered, or WannaCry indicators;
2. vulnerable: proven (on the wire, or an audit found the fix missing);
3. likely: strong signs that cannot be proven remotely (builds, versions);
4. hardening: SMBv1, signing, anonymous and guest access, end of support;
5. verify: what the scan could not decide, and hosts it could not test.

Within a rank: hosts exposed more widely first where a firewall or security
group exposure is known (a shorter prefix of the widest source), then the
finding's severity, then the address. Each row names the host, why (the
evidence, which may quote the network: writers escape it) and the exact
next step (the first step of the host's plan that acts on those findings,
or the backup gate when that step interrupts service).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..kb.store import kb
from ..model import BAD
from .hosts import HostView

RANKS = ("isolate-now", "vulnerable", "likely", "hardening", "verify")
SEVERITY = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
ACTING_KINDS = {"vulnerability", "implant", "exploit-module"}


@dataclass
class ActionRow:
    rank: int  # 1..5, RANKS[rank - 1]
    category: str
    key: str
    host: str | None
    address: str | None
    findings: list[str]
    severity: str
    why: str  # evidence; may quote remote strings (escape where written)
    step: str  # the step id of the next step
    next: str  # its text
    step_text_key: str | None = None  # the step's text template when it quotes host data (writers escape text_args)
    step_text_args: dict[str, str] = field(default_factory=dict)
    exposure: str | None = None  # the widest source this host is exposed to, where known

    def to_dict(self) -> dict[str, Any]:
        # strings, numbers and two flat containers: the instance dict with those copied is the plain copy
        # (plain_dict's recursion was most of writing the ranked list of a large plan)
        d = self.__dict__.copy()
        d["findings"], d["step_text_args"] = list(self.findings), dict(self.step_text_args)
        return d


def _exposure(view: HostView) -> tuple[int, str | None]:
    """(prefix length of the widest exposure, its text); (99, None) when unknown."""
    best: tuple[int, str | None] = (99, None)
    for f in [view.scan.get("firewall-exposure")] + list(view.facts.get("exposures") or []):
        if not isinstance(f, dict) or f.get("status", "vulnerable") not in BAD:
            continue
        src = (f.get("details") or {}).get("exposed_to") or f.get("exposed_to")
        try:
            net = ipaddress.ip_network(str(src), strict=False)
        except ValueError:
            continue
        width = net.prefixlen if net.version == 4 else net.prefixlen // 4
        if width < best[0]:
            best = (width, str(net))
    return best


def _category(view: HostView, fid: str, status: str) -> str | None:
    v = kb().vulns.get(fid)
    if v is None:
        return None
    if v.kind in ACTING_KINDS:
        return {"vulnerable": "vulnerable", "missing": "vulnerable", "likely": "likely"}.get(status)
    return "hardening" if status in BAD or status == "missing" else None


def _next_step(hp, findings: list[str]):
    """The first step acting on these findings; the backup gate when that step interrupts service."""
    acting = [s for s in hp.steps if set(s.findings) & set(findings)]
    step = acting[0] if acting else (hp.steps[0] if hp.steps else None)
    if step is not None and step.disrupts:
        gate = next((s for s in hp.steps if s.id == "backup"), None)
        if gate is not None and hp.steps.index(gate) < hp.steps.index(step):
            return gate
    return step


def _row(rank_name: str, view: HostView, hp, findings: list[str], why: str, exposure) -> ActionRow | None:
    step = _next_step(hp, findings)
    if step is None:
        return None
    sev = min((kb().vulns[f].severity for f in findings if f in kb().vulns), key=lambda s: SEVERITY.get(s, 5), default="info")
    return ActionRow(RANKS.index(rank_name) + 1, rank_name, view.key, view.name, view.address, findings, sev, why, step.id, step.text,
                     step.text_key, dict(step.text_args), exposure[1])


def host_rows(view: HostView, hp) -> list[ActionRow]:
    """One row per rank this host has work in."""
    exposure = _exposure(view)
    rows: list[ActionRow | None] = []
    if hp.isolate:
        fid = "doublepulsar" if hp.isolate == "implant" else "ms17-010"
        why = view.evidence("doublepulsar") if hp.isolate == "implant" else ", ".join(view.wannacry[:4])
        rows.append(_row("isolate-now", view, hp, [fid], why, exposure))
    by_cat: dict[str, list[str]] = {}
    for fid, status in hp.needs.items():
        cat = _category(view, fid, status)
        if cat is not None and not (hp.isolate and fid == "doublepulsar"):
            by_cat.setdefault(cat, []).append(fid)
    for cat in ("vulnerable", "likely", "hardening"):
        fids = by_cat.get(cat)
        if fids:
            why = "; ".join(f"{f} {hp.needs[f]}: {view.evidence(f)[:160]}".rstrip(": ") for f in fids[:4])
            rows.append(_row(cat, view, hp, fids, why, exposure))
    verify = [s for s in hp.steps if s.id in ("resolve-conflict", "verify")]
    if verify:
        fids = [f for s in verify for f in s.findings]
        why = "; ".join(f"{fid}: {reason[:160]}" for fid, reason in view.unknowns()[:4]) or "; ".join(view.errors[:3])
        if verify[0].id == "resolve-conflict":
            why = "; ".join(f"{fid}: scan {scan}, audit {audit}" for fid, scan, audit in view.conflicts()) + ("; " + why if why else "")
        row = ActionRow(5, "verify", view.key, view.name, view.address, fids, "info", why, verify[0].id, verify[0].text,
                        verify[0].text_key, dict(verify[0].text_args), exposure[1])
        rows.append(row)
    return [r for r in rows if r is not None]


@lru_cache(maxsize=1 << 16)
def _address_key(address: str | None) -> tuple:
    try:
        ip = ipaddress.ip_address(address or "")
        return (ip.version, int(ip))
    except ValueError:
        return (9, 0)


def ranked(pairs: list[tuple[HostView, Any]], made: list[list[ActionRow] | None] | None = None) -> list[ActionRow]:
    """The ranked list for (view, host plan) pairs; `made[i]`, when not None, is host_rows() of pair i made
    earlier (respond makes them while the scan runs, with the plan)."""
    rows = []
    widths = {}
    for i, (view, hp) in enumerate(pairs):
        widths[view.key] = _exposure(view)[0]
        got = made[i] if made is not None else None
        rows += got if got is not None else host_rows(view, hp)
    rows.sort(key=lambda r: (r.rank, widths.get(r.key, 99), SEVERITY.get(r.severity, 5), _address_key(r.address), r.key))
    return rows
