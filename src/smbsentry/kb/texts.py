"""The knowledge base's texts that the patch audit writes into its evidence, with their Chinese forms.

The audit's sentences embed module names ("Eternalblue"), the systems a
bulletin affects, fix texts and supersedence rules as they stand in
vulnerabilities.json and fixes.json.  The translation layer (i18n) renders
those sentences in Chinese and takes the embedded texts from here, so a
Chinese form exists once, in the data: a module's `name_zh`, `fix_text_zh`,
and the affected systems as the module's `title_zh` states them after its
colon (titles read "<Module> (Shadow Brokers): <affected systems>").  A text
with no Chinese form in the data maps to {} and stays English in a Chinese
sentence; it is listed all the same, so the translation layer knows it is a
knowledge-base text and not some other sentence.
"""

from __future__ import annotations

from functools import lru_cache

from . import query
from .findings import meta
from .model import Vulnerability
from .store import kb


def _affected_zh(v: Vulnerability) -> str | None:
    if v.module and v.affected_text and v.title == f"{v.module} (Shadow Brokers): {v.affected_text}":
        head, colon, tail = v.title_zh.partition("：")
        return tail if colon and tail else None
    return None


@lru_cache(maxsize=1)
def glossary() -> dict[str, dict[str, str]]:
    """English text -> {"zh": its Chinese form} ({} where the knowledge base has none)."""
    out: dict[str, dict[str, str]] = {}

    def add(en: str | None, zh: str | None) -> None:
        if en and (zh or en not in out):
            out[en] = {"zh": zh} if zh else {}

    for v in kb().vulns.values():
        add(v.id, None)
        add(v.bulletin, None)
        add(v.module, f"{v.module_zh}（{v.module}）" if v.module_zh else None)
        add(query.affected_summary(v), _affected_zh(v))
        add(v.fix_text, meta(v.id).get("fix_text_zh"))
    for rule in kb().rules:
        add(rule.text, None)
    return out
