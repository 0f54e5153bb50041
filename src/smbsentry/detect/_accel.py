"""Which detector modules run compiled, and the switch back to plain Python.

``setup.py`` compiles the modules in :data:`COMPILED` with Cython when it
can (see its docstring); the extension modules sit next to the ``.py``
files and Python's import would always prefer them.  This module installs
a finder (once, from :mod:`smbsentry.detect`) that loads the ``.py`` instead
when

* the environment has ``SMBSENTRY_PURE_PYTHON`` set (to a non-empty value
  other than ``0``): the tests use it to check that both forms give the
  same events; or
* the extension was built from a different ``.py`` than the one on disk
  (the build's ``_compiled.json`` records each source's SHA-256): an
  editable install whose source was edited after the build.

The modules must be all compiled or all plain: the compiled engine uses the
C layout of the compiled flow, event, exploit-rule and reassembly classes
(``cimport`` in the ``.pxd`` files).  So one stale or missing extension
sends all of them to plain Python.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

__all__ = ["COMPILED", "STAMP", "extensions_usable", "install", "mode", "modules", "pure_requested", "source_digest"]

#: The compiled modules (setup.py compiles these; it loads this file for the list).
COMPILED = tuple(
    f"smbsentry.detect.{name}"
    for name in ("reassembly", "flows", "events", "smb1_exploits", "wormscan", "inventory", "engine", "pcap", "capture")
)
_HERE = Path(__file__).resolve().parent
STAMP = "_compiled.json"


def pure_requested() -> bool:
    """Is ``SMBSENTRY_PURE_PYTHON`` set to something other than empty or ``0``? (Read by setup.py too.)"""
    v = os.environ.get("SMBSENTRY_PURE_PYTHON", "")
    return bool(v) and v != "0"


def source_digest(here: Path, short: str) -> str:
    """SHA-256 of a compiled module's source: its ``.py`` and, when there is one, its ``.pxd``."""
    h = hashlib.sha256((here / (short + ".py")).read_bytes())
    pxd = here / (short + ".pxd")
    if pxd.is_file():
        h.update(pxd.read_bytes())
    return h.hexdigest()


def extensions_usable(here: Path = _HERE) -> tuple[bool, str]:
    """Are all compiled modules in ``here`` present and built from the sources there?"""
    if pure_requested():
        return False, "SMBSENTRY_PURE_PYTHON is set"
    try:
        stamp = json.loads((here / STAMP).read_text())
    except (OSError, ValueError):
        return False, "not compiled"
    if not isinstance(stamp, dict):
        return False, "not compiled"
    for name in COMPILED:
        short = name.rsplit(".", 1)[1]
        if not any((here / (short + suffix)).is_file() for suffix in importlib.machinery.EXTENSION_SUFFIXES):
            return False, f"{short} is not compiled for this Python"
        try:
            digest = source_digest(here, short)
        except OSError:
            continue  # an install without sources: the extension is all there is
        if stamp.get(name) != digest:
            return False, f"{short}.py changed since it was compiled"
    return True, "compiled"


_USABLE, _WHY = extensions_usable()


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` of a compiled module (used only when the extensions are not)."""

    @classmethod
    def invalidate_caches(cls) -> None:
        """Nothing cached (the class itself sits in sys.meta_path, so this must not need an instance)."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):  # type: ignore[no-untyped-def,override]
        if fullname not in COMPILED:
            return None
        src = _HERE / (fullname.rsplit(".", 1)[1] + ".py")
        if not src.is_file():
            return None
        loader = importlib.machinery.SourceFileLoader(fullname, str(src))
        return importlib.util.spec_from_file_location(fullname, str(src), loader=loader)


def install() -> None:
    """Put the source-first finder in front when the extensions must not be used."""
    if _USABLE or any(f is _SourceFirst for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _SourceFirst)


def mode() -> str:
    """``compiled`` or ``python (<why>)``: what this process runs."""
    return "compiled" if _USABLE else f"python ({_WHY})"


def modules() -> dict[str, str]:
    """Each compiled module and the file it was loaded from (imports them)."""
    import importlib

    return {name: str(getattr(importlib.import_module(name), "__file__", "?")) for name in COMPILED}
