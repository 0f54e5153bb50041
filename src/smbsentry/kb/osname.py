"""Map what people and tools write for an OS to a product entry.

Inputs come from systeminfo ("Microsoft Windows 7 Professional" plus the
service pack and "x64-based PC" on other lines, Chinese editions such as
"旗舰版"), NativeOS strings, inventory CSVs and people typing "Windows 7 SP1
x64".  Windows 10 / 11 and the Server semi-annual releases share one name,
so the build number (or a release tag like 1909) picks the release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .model import Product
from .store import kb


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    """kb/data/osnames.json, compiled once."""
    editions_zh: tuple[tuple[str, str], ...]  # (Chinese edition name, English), tried in order
    editions_en: tuple[str, ...]
    arch_words: tuple[tuple[re.Pattern[str], str], ...]
    release: re.Pattern[str]
    lines: tuple[tuple[re.Pattern[str], str], ...]  # (pattern, product line), longer names first


@lru_cache(maxsize=1)
def _vocabulary() -> _Vocabulary:
    raw = kb().osnames
    return _Vocabulary(tuple(raw["editions"]["zh"].items()), tuple(raw["editions"]["en"]),
                       tuple((re.compile(p), a) for p, a in raw["architectures"]["words"]),
                       re.compile(r"\b(" + "|".join(map(re.escape, raw["releases"]["tags"])) + r")\b"),
                       tuple((re.compile(p), line) for p, line in raw["lines"]["patterns"]))


@dataclass(frozen=True, slots=True)
class ProductMatch:
    product: Product
    edition: str | None
    architecture: str | None
    assumed: tuple[str, ...] = ()  # what was guessed, said out loud


def _clean(text: str) -> str:
    t = text.replace("®", " ").replace("™", " ").replace("(R)", " ").replace("(TM)", " ").replace("(r)", " ")
    # cmd's code page 437 has no ® or ™ and writes their best fit: "Microsoftr Windows VistaT Enterprise",
    # "Microsoftr Windows Serverr 2008 Standard" (Vista and 2008 systeminfo redirected to a file)
    t = re.sub(r"\b(Microsoft|Windows|Server)r\b", r"\1", t)
    t = re.sub(r"\bVistaT\b", "Vista", t)
    t = re.sub(r"\bmicrosoft\b", " ", t, flags=re.I)
    return re.sub(r"[\s,]+", " ", t).strip().lower()


def _edition(t: str) -> str | None:
    vocabulary = _vocabulary()
    for zh, en in vocabulary.editions_zh:
        if zh in t:
            return en
    for en in vocabulary.editions_en:
        if re.search(rf"\b{re.escape(en)}\b", t):
            return en.title().replace("Ltsc", "LTSC").replace("Ltsb", "LTSB").replace("Pc", "PC")
    return None


def _by_build(family_lines: list[str], build: int, role: str) -> Product | None:
    for p in kb().products.values():
        if p.line.startswith(tuple(family_lines)) and build in p.builds and p.role in (role, "both"):
            return p
    return None


def _pick_level(line: str, sp: int | None, build: int | None, text: str) -> tuple[Product, tuple[str, ...]]:
    members = kb().lines.get(line, [])
    if not members:
        raise ValueError(f"unknown OS {text!r}")
    if sp is not None:
        for p in members:
            if p.service_pack == sp:
                return p, ()
        levels = ", ".join(f"SP{p.service_pack}" if p.service_pack else "no service pack" for p in members)
        raise ValueError(f"{line} with service pack {sp} is not in the knowledge base (known: {levels})")
    if build is not None:
        hits = [p for p in members if build in p.builds]
        if len(hits) == 1:
            return hits[0], ()
        if hits:  # XP SP2 and SP3 share build 2600: say what was assumed
            best = max(hits, key=lambda p: p.service_pack or 0)
            return best, (f"service pack not given: assumed SP{best.service_pack}",)
    for p in members:
        if p.name == line or p.service_pack == 0:
            return p, ()
    best = max(members, key=lambda p: p.service_pack or 0)
    return best, (f"service pack not given: assumed SP{best.service_pack}",)


@lru_cache(maxsize=4096)
def product_from_os_string(text: str, sp: int | None = None, arch: str | None = None, build: int | None = None) -> ProductMatch:
    """Parse an OS name; `sp`, `arch` and `build` (from other systeminfo lines) override what the text says.

    Raises ValueError with a one-line message when the text names no known product.
    """
    t = _clean(text)
    if not t:
        raise ValueError("empty OS string")
    m = re.search(r"\b(?:sp|service pack)\s*(\d)\b", t)
    if sp is None and m:
        sp = int(m.group(1))
    if build is None:
        m = re.search(r"\bbuild\s*(\d{4,5})\b|\b10\.0\.(\d{5})\b|\b(\d{5})(?:\.\d+)?\b", t)
        if m:
            build = int(next(g for g in m.groups() if g))
    vocabulary = _vocabulary()
    if arch is None:
        arch = next((a for pat, a in vocabulary.arch_words if pat.search(t)), None)
    line = next((name for pat, name in vocabulary.lines if pat.search(t)), None)
    if line is None:
        raise ValueError(f"unknown OS {text!r}")
    assumed: tuple[str, ...] = ()
    rel = vocabulary.release.search(t)
    if line in ("Windows 10", "Windows 11", "Windows Server"):
        role = "server" if line == "Windows Server" else "client"
        product = None
        if rel:
            name = f"{line} {rel.group(1).upper()}"
            product = kb().names.get(name)
        if product is None and build is not None:
            product = _by_build(["Windows 10", "Windows 11"] if role == "client" else ["Windows Server"], build, role)
        if product is None:
            raise ValueError(f"{text!r}: say which release (e.g. 1909) or give the build number")
    else:
        product, assumed = _pick_level(line, sp, build, text)
    if arch is not None and product.architectures and arch not in product.architectures:
        raise ValueError(f"{product.name} has no {arch} edition (known: {', '.join(product.architectures)})")
    return ProductMatch(product, _edition(t), arch, assumed)
