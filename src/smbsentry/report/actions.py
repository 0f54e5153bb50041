"""The ranked action list and the plan's step texts, ready for a page (HTML report, dashboard).

    rows = action_rows(plan, records, lang)    # plan = remediate.planner.plan(records, lang)
    step_html(step, record, lang)              # a planner Step (or ActionRow) as Markup

The planner keeps host data out of its step templates (`text_key`,
`text_args`); here the template is escaped and the host data put back in,
escaped too, and in Chinese the evidence it quotes is translated from the
host's own findings (the planner's copy may be cut at 160 or 400
characters, which no sentence pattern can read).  English rows show the
planner's words exactly.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from .. import i18n
from ..remediate import texts

WHY_FINDINGS = 4  # as the planner: the first four findings of a rank name the reason
BAD = ("vulnerable", "likely", "missing")


def findings_by_id(record: dict | None) -> dict[str, dict]:
    """One finding per id (the vulnerable or likely one where a check wrote one per port)."""
    out: dict[str, dict] = {}
    for f in (record or {}).get("findings") or []:
        fid = f.get("id")
        if fid not in out or (f.get("status") in BAD and out[fid].get("status") not in BAD):
            out[fid] = f
    return out


def _text_of(f: dict | None) -> str:
    return str((f or {}).get("evidence") or (f or {}).get("reason") or "")


def _unknown_reasons(fids: list[str], found: dict[str, dict]) -> str | None:
    reasons = [str(found[f].get("reason") or found[f].get("evidence") or "") for f in fids if f in found]
    return "; ".join(dict.fromkeys(r for r in reasons if r)) or None


def _audit_text_of(f: dict | None) -> str:
    """The audit's own evidence that a merge kept in the finding (details.audit), uncut."""
    details = (f or {}).get("details")
    audit = details.get("audit") if isinstance(details, dict) else None
    return str(audit.get("evidence") or "") if isinstance(audit, dict) else ""


def _arg_html(key: str, name: str, value: str, found: dict[str, dict], fids: list[str], lang: str, finding: str | None = None) -> Markup:
    """One piece of host data in a step text: evidence re-read untruncated from the host's findings and
    translated, statuses as words, anything else (names, shares, ids) escaped as it is."""
    if key == "isolate-implant" and name == "evidence":
        return i18n.sentence_html(_text_of(found.get("doublepulsar")) or value, lang)
    if key == "verify-unknown" and name == "reason":
        return i18n.sentence_html(_unknown_reasons(fids, found) or value, lang)
    if key.startswith("conflict-") and name in ("scan", "audit"):
        return escape(i18n.label("status", value, lang))
    if key.startswith("conflict-") and name in ("scan_evidence", "audit_evidence"):
        # the finding the conflict is about (an action row lists every finding of its rank)
        f = found.get(finding or "") or (found.get(fids[0]) if fids else None)
        return i18n.sentence_html((_text_of(f) if name == "scan_evidence" else _audit_text_of(f)) or value, lang)
    if name in ("errors", "audit_evidence", "scan_evidence"):
        return i18n.sentence_html(value, lang)
    return escape(value)


def step_html(step: Any, record: dict | None, lang: str) -> Markup:
    """A planner Step or an ActionRow's next step: the trusted template escaped, the host data in it escaped."""
    key = getattr(step, "text_key", None) or getattr(step, "step_text_key", None)
    args = step.text_args if hasattr(step, "text_args") else getattr(step, "step_text_args", {})
    plain = step.text if hasattr(step, "text") else step.next
    if not key or lang == "en" and not args:
        return escape(plain)
    marks = {name: f"\x00{i}\x00" for i, name in enumerate(args)}
    out = str(escape(texts.t(key, lang, **marks)))
    found = findings_by_id(record)
    fids = list(getattr(step, "findings", []) or [])
    for name, mark in marks.items():
        arg = _arg_html(key, name, str(args[name]), found, fids, lang, args.get("finding")) if lang != "en" else escape(args[name])
        out = out.replace(str(escape(mark)), str(arg))
    return Markup(out)


def why_html(row: Any, record: dict | None, lang: str) -> Markup:
    """The row's reason: the planner's text in English; rebuilt from the host's findings in Chinese."""
    if lang == "en" or record is None:
        return escape(row.why)
    found = findings_by_id(record)
    if row.category == "isolate-now":
        f = found.get("doublepulsar")
        return i18n.sentence_html(_text_of(f), lang) if f and f.get("status") == "vulnerable" else escape(row.why)
    if row.category == "verify":
        # as the planner: the host's unknowns (all of them for a host it could not test), else its errors
        ids = row.findings or list(found)
        parts = [(fid, found[fid].get("reason") or found[fid].get("evidence")) for fid in ids if fid in found]
        parts = [(fid, r) for fid, r in parts if r and found[fid].get("status") == "unknown"][:WHY_FINDINGS]
        if not parts:
            errors = [str(e) for e in (record.get("errors") or [])[:3]]
            return i18n.sentence_html("; ".join(errors), lang) if errors else escape(row.why)
        return Markup("；".join(f"{escape(fid)}：{i18n.sentence_html(r, lang)}" for fid, r in parts))
    out = []
    for fid in row.findings[:WHY_FINDINGS]:
        f = found.get(fid)
        if f is None:
            return escape(row.why)  # an audit verdict the scan record lacks: the planner's words
        status = i18n.label("status", f.get("status"), lang)
        # f-strings of escaped parts: Markup.format goes through string.Formatter, most of this function's time
        out.append(f"{escape(fid)} {escape(status)}：{i18n.sentence_html(_text_of(f), lang)}")
    return Markup("；".join(out))


def action_rows(plan: Any, records: list[dict], lang: str, limit: int | None = None) -> list[dict]:
    """The plan's ranked rows for a template: rank label, isolate badge, host, why and next step as Markup.

    With `limit`, only the isolate-now rows and the first `limit` rows in all are made
    (a page cannot show twenty thousand rows; the JSON report carries them)."""
    acts = plan.actions  # ranked: the isolate-now rows come first
    if limit is not None:
        acts = acts[:max(limit, sum(1 for r in acts if r.rank == 1))]
    by_addr = {str(r.get("address")): r for r in records if r.get("address")}
    ranks = i18n.labels("rank", lang)
    rows = []
    for r in acts:
        rec = by_addr.get(str(r.address)) if r.address else None
        rows.append({"rank": r.rank, "category": r.category, "label": ranks.get(r.category, r.category),
                     "isolate": r.rank == 1, "host": r.host, "address": r.address, "key": r.key, "findings": r.findings,
                     "severity": r.severity, "step": r.step, "why": why_html(r, rec, lang), "next": step_html(r, rec, lang)})
    return rows
