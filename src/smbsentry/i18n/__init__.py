"""The words and sentences reports and the dashboard show, in English and Simplified Chinese.

    from smbsentry import i18n
    t = i18n.labels("report", "zh")            # {"evidence": "证据", ...} for a template
    i18n.label("status", "likely", "zh")       # "疑似存在漏洞"
    i18n.sentence(finding["evidence"], "zh")   # the evidence in Chinese, remote strings kept
    i18n.sentence_html(text, "zh")             # the same as Markup: remote parts in <span class="r">
    i18n.install(jinja_env)                    # the filters status / severity / role / rank / sentence

The catalogs are data (data/labels.json, data/sentences.json, and
data/sentences_audit.json for the patch audit's verdicts).  English is
the source: English output is exactly what the checks wrote, never
re-rendered.  A sentence with no Chinese pattern is shown in English rather
than dropped (tests assert the lab's sentences and the audit's all have one).
The report, the web dashboard and `audit --lang zh` use it.  Its one link to
the rest of smbsentry is the knowledge base's own Chinese texts (kb/texts.py)
that audit sentences embed: read the first time such a sentence is rendered in
Chinese, never for English output.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from markupsafe import Markup, escape

from . import sentences as _s

LANGS = ("en", "zh")
VALUE_SPAN = '<span class="v">{}</span>'
REMOTE_SPAN = '<span class="r">{}</span>'


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r} (en or zh)")
    return lang


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict[str, dict[str, str]]]:
    data = json.loads(resources.files("smbsentry.i18n").joinpath("data", "labels.json").read_text("utf-8"))
    return {group: entries for group, entries in data.items() if not group.startswith("_")}


@lru_cache(maxsize=None)
def labels(group: str, lang: str) -> dict[str, str]:
    """Every label of a group in one language (a missing Chinese text falls back to the English)."""
    check_lang(lang)
    entries = _catalog()[group]
    return {key: e.get(lang) or e["en"] for key, e in entries.items()}


def label(group: str, key: str | None, lang: str, default: str | None = None) -> str:
    """One label; an unknown key gives `default`, else the key itself (a value from newer data stays readable)."""
    if key is None:
        return default or ""
    got = labels(group, lang).get(key)
    return got if got is not None else (default if default is not None else key)


def fmt(group: str, key: str, lang: str, **values: Any) -> str:
    return labels(group, lang)[key].format(**values)


def _kb_texts() -> _s.Glossary:
    from ..kb.texts import glossary  # here, not at the top: only a sentence that needs it loads the knowledge base

    return glossary()


@lru_cache(maxsize=1)
def translator() -> _s.Translator:
    return _s.load(LANGS[1:], _catalog()["term"], _kb_texts)


def translate(text: str, lang: str) -> tuple | None:
    """The segments of `text` in `lang` (None: no pattern fits); English is the text itself."""
    if lang == "en":
        return (("r", text),)
    check_lang(lang)
    return translator().translate(text, lang)


def sentence(text: str | None, lang: str) -> str:
    """Plain text (escape it where it is written); the English when no pattern fits."""
    if not text:
        return ""
    if lang == "en":
        return text
    got = translate(text, lang)
    return _s.plain(got) if got is not None else text


_HTML: dict[tuple[str, str], Markup] = {}
HTML_CACHE = 100_000


def sentence_html(text: str | None, lang: str) -> Markup:
    """Markup: the catalog's words as text, values in <span class="v">, remote strings in <span class="r">."""
    if not text:
        return Markup("")
    key = (lang, text)
    got = _HTML.get(key)
    if got is None:
        segments = None if lang == "en" else translate(text, lang)
        got = escape(text) if segments is None else Markup(_s.join(segments, lambda x: str(escape(x)), VALUE_SPAN, REMOTE_SPAN))
        if len(_HTML) >= HTML_CACHE:
            _HTML.clear()
        _HTML[key] = got
    return got


def translated(text: str, lang: str) -> bool:
    """A catalog rendering exists for `text` in `lang` (tests, and a marker for untranslated text)."""
    return lang == "en" or translate(text, lang) is not None


def install(env) -> None:
    """Jinja2 filters: `x|status(lang)`, `severity`, `role`, `rank`, `term`, `sentence` (Markup)."""
    env.filters["status"] = lambda v, lang: label("status", v, lang)
    env.filters["severity"] = lambda v, lang: label("severity", v, lang)
    env.filters["role"] = lambda v, lang: label("role", v, lang)
    env.filters["rank"] = lambda v, lang: label("rank", v, lang)
    env.filters["term"] = lambda v, lang: label("term", v, lang)
    env.filters["sentence"] = lambda v, lang: sentence_html(v, lang)
