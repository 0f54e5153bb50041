"""Evidence and reason sentences, rendered in another language without touching the English.

The checks write one English sentence per finding (contract.md keeps it in
the JSON as it is).  data/sentences.json lists the shapes those sentences
take, one pattern per shape, with a template per language; the patch audit's
verdicts and the scan/audit merge have theirs in data/sentences_audit.json
(with the update kinds their labels name, added to the `term` words):

    {"en": "probe could not run: {why:s}", "zh": "探测无法进行：{why}", "example": "..."}

A placeholder is `{name}` or `{name:type}`:

    (none)  a value kept as it is (product names, builds, dates, dialects)
    n       a number
    st      an NT status as the checks print it, 0xC0000022 (STATUS_ACCESS_DENIED)
    r       a remote string (names, banners, share lists): kept, marked, escaped by the writer
    q       a remote string in Python's quotes ('...'), as the checks print banners
    s       a nested sentence, translated in turn
    w       a word from the catalog's `term` group (anonymous, guest, signing states ...)
    d       a technical detail kept as it is (a decoder's message, an exception)
    rk      a remote list of "name (kind)" items: the names kept, the kinds translated
    kb      an update number, KB4012212
    date    a date, 2017-03-14;  ym  a month, 2017-03
    k       a text of the knowledge base (a module name, the systems a bulletin affects,
            a fix text, a supersedence rule): its Chinese form where the knowledge base
            has one, else kept as a value; a text the knowledge base does not hold fails
            the pattern, so a loose pattern cannot swallow an unrelated sentence

Sentences whose parts are joined by "; " are translated part by part (the
parts of a NetShareEnum answer, the logons tried, the editions sharing a
build); a pattern takes several parts only where the shorter parts fail.  A translation is a tuple of segments
(kind, text) with kind "t" (the catalog's own text), "v" (a value) or "r" (a
remote string); writers escape every segment.  Nothing is evaluated.

Speed: patterns are compiled once, indexed by their first literal
characters, and every sentence's translation is cached, so a report of ten
thousand hosts translates each distinct sentence once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Callable, Mapping

Segments = tuple[tuple[str, str], ...]

PART_SEP = "; "
MAX_PARTS = 24  # more "; "-joined parts than this: not a sentence the checks write
MAX_LEN = 4000
CACHE_LIMIT = 200_000
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?::([a-z]+))?\}")
QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
TYPES = {
    "": r".+?", "n": r"-?\d+(?:\.\d+)?", "st": r"0x[0-9A-Fa-f]{8}(?: \([A-Z0-9_]+\))?", "r": r".*?", "q": QUOTED,
    "s": r".+?", "d": r".+?", "rk": r".+?", "kb": r"KB\d{6,7}", "date": r"\d{4}-\d{2}-\d{2}", "ym": r"\d{4}-\d{2}", "k": r".+?",
}
FILES = ("sentences.json", "sentences_audit.json")
INDEX_CHARS = 3


@dataclass(frozen=True)
class Pattern:
    en: str
    source: str  # the regular expression, compiled on first use (`regex`)
    literals: tuple[str, ...]
    head: str
    types: dict[str, str]
    target: dict[str, tuple[tuple[str, str], ...]]  # lang -> ((literal, group), ...)
    weight: int

    @cached_property
    def regex(self) -> re.Pattern:
        """Compiled when a text first reaches this pattern: a process that translates a few hundred sentences
        (the Chinese report) tries a fraction of the catalog, and compiling all of it cost more than the
        translating."""
        return re.compile(self.source, re.S)


def _compile(entry: dict, terms: dict[str, dict[str, str]], langs: tuple[str, ...]) -> Pattern:
    en = entry["en"]
    parts, literals, types, pos = [], [], {}, 0
    for m in PLACEHOLDER.finditer(en):
        lit = en[pos:m.start()]
        if lit:
            literals.append(lit)
        name, kind = m.group(1), m.group(2) or ""
        if name in types:
            raise ValueError(f"sentence {en!r}: {{{name}}} twice")
        if kind == "w":
            rx = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
        elif kind in TYPES:
            rx = TYPES[kind]
        else:
            raise ValueError(f"sentence {en!r}: unknown placeholder type {kind!r}")
        types[name] = kind
        parts.append(re.escape(lit) + f"(?P<{name}>{rx})")
        pos = m.end()
    tail = en[pos:]
    if tail:
        literals.append(tail)
    parts.append(re.escape(tail))
    target = {}
    for lang in langs:
        text = entry.get(lang)
        if text is None:
            raise ValueError(f"sentence {en!r}: no {lang} text")
        chunks, pos = [], 0
        for m in PLACEHOLDER.finditer(text):
            if m.group(1) not in types:
                raise ValueError(f"sentence {en!r}: the {lang} text names {{{m.group(1)}}}, which the English lacks")
            chunks.append((text[pos:m.start()], m.group(1)))
            pos = m.end()
        chunks.append((text[pos:], ""))
        missing = set(types) - {name for _, name in chunks}
        if missing:  # a value the English shows must not vanish in translation
            raise ValueError(f"sentence {en!r}: the {lang} text drops {', '.join(sorted(missing))}")
        target[lang] = tuple(chunks)
    first = PLACEHOLDER.search(en)
    head = en[:first.start()] if first else en
    return Pattern(en, "".join(parts), tuple(literals), head, types, target, sum(map(len, literals)))


Glossary = Mapping[str, Mapping[str, str]]  # English text -> {lang: text}; an empty mapping: no form in that language


class Translator:
    """Sentences -> segments in one of the catalog's languages (None when no pattern fits).

    `glossary` gives the knowledge-base texts for `k` placeholders; it is called the
    first time one is met, so sentences without them never load it."""

    def __init__(self, entries: list[dict], terms: dict[str, dict[str, str]], langs: tuple[str, ...],
                 glossary: Callable[[], Glossary] | None = None):
        self.terms = terms
        self.langs = langs
        self._load_glossary = glossary
        self._glossary: Glossary | None = None
        self.patterns = sorted((_compile(e, terms, langs) for e in entries), key=lambda p: -p.weight)
        generic = [p for p in self.patterns if len(p.head) < INDEX_CHARS]
        by_head: dict[str, list[Pattern]] = {}
        for p in self.patterns:
            if len(p.head) >= INDEX_CHARS:
                by_head.setdefault(p.head[:INDEX_CHARS], []).append(p)
        # each bucket already merged with the generic patterns, heaviest (most specific) first
        self._index = {k: sorted(v + generic, key=lambda p: -p.weight) for k, v in by_head.items()}
        self._generic = generic
        self._cache: dict[tuple[str, str], Segments | None] = {}
        self._pieces: dict[tuple[str, str], Segments | None] = {}

    def translate(self, text: str, lang: str) -> Segments | None:
        key = (lang, text)
        got = self._cache.get(key, False)
        if got is not False:
            return got
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        if len(text) > MAX_LEN:
            result = None
        elif PART_SEP in text:
            result = self._parts(text, lang)
        else:
            result = self._whole(text, lang)
        self._cache[key] = result
        return result

    # -- one pattern for the whole text ------------------------------------------------------
    def _whole(self, text: str, lang: str) -> Segments | None:
        for p in self._index.get(text[:INDEX_CHARS], self._generic):
            if not text.startswith(p.head):
                continue
            if any(lit not in text for lit in p.literals):
                continue
            m = p.regex.fullmatch(text)
            if m is None:
                continue
            out = self._fill(p, m, lang)
            if out is not None:
                return out
        return None

    def _fill(self, p: Pattern, m: re.Match, lang: str) -> Segments | None:
        values: dict[str, Segments] = {}
        for name, kind in p.types.items():
            got = self._group(kind, m.group(name), lang)
            if got is None:
                return None
            values[name] = got
        out: list[tuple[str, str]] = []
        chunks = p.target[lang]
        for i, (literal, name) in enumerate(chunks):
            if i and chunks[i - 1][1] and _wide_text(values, p, chunks[i - 1][1], -1):
                literal = _unspace(literal, 0)
            if name and _wide_text(values, p, name, 0):
                literal = _unspace(literal, -1)
            if literal:
                out.append(("t", literal))
            if name:
                out.extend(values[name])
        return tuple(out)

    def _group(self, kind: str, value: str, lang: str) -> Segments | None:
        if kind == "s":
            return self.translate(value, lang)
        if kind == "w":
            return (("t", self.terms[value].get(lang) or value),)
        if kind in ("r", "q"):
            return (("r", value),) if value else ()
        if kind == "rk":
            return self._kinds(value, lang)
        if kind == "k":
            return self._kb_text(value, lang)
        return (("v", value),)

    def _kb_text(self, value: str, lang: str) -> Segments | None:
        if self._glossary is None:
            self._glossary = self._load_glossary() if self._load_glossary else {}
        forms = self._glossary.get(value)
        if forms is None:
            return None
        text = forms.get(lang)
        return (("t", text),) if text else (("v", value),)

    def _kinds(self, value: str, lang: str) -> Segments:
        """'MP3 (anonymous), MP3 (guest)': the share names stay, the logon kinds are words."""
        out: list[tuple[str, str]] = []
        for i, item in enumerate(value.split(", ")):
            if i:
                out.append(("t", "、" if lang == "zh" else ", "))
            name, sep, kind = item.rpartition(" (")
            word = kind[:-1] if sep and kind.endswith(")") else None
            if word in self.terms:
                out += [("r", name), ("t", f"（{self.terms[word].get(lang) or word}）" if lang == "zh" else f" ({word})")]
            else:
                out.append(("r", item))
        return tuple(out)

    # -- "; "-joined parts ---------------------------------------------------------------------
    def _parts(self, text: str, lang: str) -> Segments | None:
        """The shortest parts first, each taken by one pattern; the whole text is the last try.

        Shortest first keeps a remote string at the end of a part from swallowing
        the parts after it; longer spans are still tried, for a remote string or a
        pattern that holds "; " itself."""
        pieces = text.split(PART_SEP)
        if len(pieces) > MAX_PARTS:
            return None
        sep = (("t", "；" if lang == "zh" else PART_SEP),)
        memo: dict[int, Segments | None] = {len(pieces): ()}

        def rest(i: int) -> Segments | None:
            if i in memo:
                return memo[i]
            memo[i] = None
            for j in range(i + 1, len(pieces) + 1):
                head = self._piece(PART_SEP.join(pieces[i:j]), lang)
                if head is None:
                    continue
                tail = rest(j)
                if tail is not None:
                    memo[i] = head + (sep + tail if tail else ())
                    break
            return memo[i]

        return rest(0)

    def _piece(self, text: str, lang: str) -> Segments | None:
        key = (lang, text)
        got = self._pieces.get(key, False)
        if got is False:
            if len(self._pieces) >= CACHE_LIMIT:
                self._pieces.clear()
            got = self._pieces[key] = self._whole(text, lang)
        return got


WIDE = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def _wide_text(values: dict[str, Segments], p: Pattern, name: str, end: int) -> bool:
    """A knowledge-base text rendered in Chinese whose first (end=0) or last (end=-1) character is wide."""
    seg = values[name]
    return p.types[name] == "k" and len(seg) == 1 and seg[0][0] == "t" and bool(WIDE.match(seg[0][1][end]))


def _unspace(literal: str, end: int) -> str:
    """Drop the space a template puts between a value and a word where the value turned out Chinese:
    Chinese sets no space between two wide characters ("不受 MS08-067 影响", "不受永恒之蓝（Eternalblue）影响")."""
    if end == 0 and literal.startswith(" ") and WIDE.match(literal[1:2]):
        return literal[1:]
    if end == -1 and literal.endswith(" ") and WIDE.match(literal[-2:-1]):
        return literal[:-1]
    return literal


def catalog(name: str) -> dict:
    return json.loads(resources.files("smbsentry.i18n").joinpath("data", name).read_text("utf-8"))


def load(langs: tuple[str, ...], terms: dict[str, dict[str, str]], glossary: Callable[[], Glossary] | None = None) -> Translator:
    """Every catalog file's patterns; a file's own `terms` join the `term` words (the labels' words win)."""
    entries, words = [], dict(terms)
    for name in FILES:
        data = catalog(name)
        entries += data["sentences"]
        for key, forms in data.get("terms", {}).items():
            words.setdefault(key, forms)
    return Translator(entries, words, langs, glossary)


def plain(segments: Segments) -> str:
    return "".join(text for _, text in segments)


def join(segments: Segments, escape: Callable[[str], str], value: str, remote: str) -> str:
    """Segments as markup: `value` / `remote` are format strings with one {} for the escaped text."""
    out = []
    for kind, text in segments:
        e = escape(text)
        out.append(e if kind == "t" else (value if kind == "v" else remote).format(e))
    return "".join(out)
