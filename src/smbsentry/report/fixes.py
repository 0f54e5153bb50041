"""Fix text for a finding from the knowledge base: updates per OS (kb.show.which_kb) where
the OS is known, else the finding's workarounds (kb actions), in English or Chinese."""

from __future__ import annotations

from ..kb import query
from ..kb.findings import meta
from ..kb.show import which_kb

MAX_OS = 6


def fix_text(finding_id: str, os_names: list[str | None], lang: str = "en") -> list[str]:
    """Paragraphs of fix advice for the OS names of the affected hosts."""
    out: list[str] = []
    seen: set[str] = set()
    for os_name in os_names:
        if not os_name or os_name in seen or len(seen) >= MAX_OS:
            continue
        seen.add(os_name)
        try:
            text = which_kb(os_name, finding_id, addresses=False)  # a self-contained report links nowhere
        except Exception:  # noqa: BLE001 - unknown OS or a finding without updates
            continue
        if "install one of" in text or "first install" in text or "no update exists" in text:
            out.append(text)
    try:
        m = meta(finding_id)
    except KeyError:
        return out
    acts = []
    for aid in m.get("workarounds", [])[:4]:
        try:
            a = query.action(aid)
        except Exception:  # noqa: BLE001
            continue
        acts.append("- " + (a.text_zh if lang == "zh" and a.text_zh else a.text_en))
    if acts:
        out.append(("缓解措施：" if lang == "zh" else "Workarounds:") + "\n" + "\n".join(acts))
    return out
