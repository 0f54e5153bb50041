"""Which package file of an update to fetch for a product, architecture and language, or why there is none.

XP / Server 2003 era updates ship one .exe per system language, later ones one language-neutral .msu per
architecture. An offline bundle has to say, for every update the plan names, what to download for each
language an operator may meet (English and Chinese at least), and when nothing can be named, why: the
update was not published for that architecture, the data records a reason (update_files.json `gaps`), or
the sources behind the data list no such file. "Not listed here" is never presented as "does not exist".
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import FileRef, Fix, Product

# Languages every language-specific update gets a bundle row for, whatever the hosts run.
REQUIRED_LANGUAGES = ("en-us", "zh-cn")
LANGUAGE_NAMES = {"en-us": "English", "zh-cn": "Chinese (Simplified)", "zh-tw": "Chinese (Traditional)"}


@dataclass(frozen=True, slots=True)
class PackageChoice:
    """The file to fetch (None when there is none) and, without a file or without its address, why."""

    language: str | None  # None: a language-neutral package
    file: FileRef | None
    reason: str | None


def language_specific(fix: Fix, product: Product, arch: str) -> bool:
    """XP / 2003 packages are per language; later ones are when the data lists language-tagged files."""
    return product.family == "windows-nt5" or any(f.language for f in fix.files_for(arch, product.id))


def _label(language: str | None) -> str:
    return LANGUAGE_NAMES.get(language or "", language or "") + (" " if language else "")


def choose(fix: Fix, product: Product, arch: str, language: str | None) -> PackageChoice:
    """One package of `fix` for the product / architecture / language (None: the neutral package)."""
    if arch not in fix.architectures or arch not in product.architectures:
        return PackageChoice(language, None, f"not published for {arch}: {fix.kb} exists for {', '.join(fix.architectures)} only")
    files = [f for f in fix.files_for(arch, product.id, language) if language is not None or f.language is None]
    if files:
        f = files[0]
        return PackageChoice(language, f, None if f.url else (f.note or "the source gives the file name without its address"))
    gap = fix.gap_for(arch, product.id, language)
    if gap:
        return PackageChoice(language, None, gap.reason)
    return PackageChoice(language, None, f"the sources behind the knowledge base list no {_label(language)}package of {fix.kb} "
                                         f"for {product.name} {arch}: search the Microsoft Update Catalog for {fix.kb}")


def packages(fix: Fix, product: Product, arch: str) -> list[PackageChoice]:
    """Every package a bundle should list: one per required language for per-language updates, else the neutral one."""
    if not language_specific(fix, product, arch):
        return [choose(fix, product, arch, None)]
    return [choose(fix, product, arch, lang) for lang in REQUIRED_LANGUAGES]


def other_languages(fix: Fix, product: Product, arch: str) -> list[str]:
    """Languages beyond the required ones the data has a package for (to say where to look for them)."""
    langs = {f.language for f in fix.files_for(arch, product.id) if f.language}
    return sorted(langs - set(REQUIRED_LANGUAGES))
