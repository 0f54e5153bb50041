"""Build script: compiles the traffic detector's hot modules with Cython, when it can.

Everything else about the package is in pyproject.toml.  The modules listed
in ``COMPILED`` are ordinary Python (they run as they are); Cython compiles
them, with the C types declared in their ``.pxd`` files, into extension
modules that shadow the ``.py`` files.  If a C compiler is missing, or
compiling fails, the install goes on without them and the detector runs as
plain Python (slower, same results).  ``SMBSENTRY_PURE_PYTHON=1`` at build
time skips compiling.  Cython itself is a build requirement (pyproject.toml);
a build without it (``--no-build-isolation`` in an environment that lacks
it) also falls back to plain Python.

One more extension is plain C, not Cython: ``smbsentry.discover._fastsend``,
discovery's SYN send path (sendmmsg on a raw socket).  It is built whether
or not Cython is there and, like the others, its failure only means the
plain-Python sender (slower, same packets) runs instead.

Next to the extensions the build writes ``_compiled.json``: the SHA-256 of
each ``.py`` (with its ``.pxd``) as it was when Cython read it.
:mod:`smbsentry.detect._accel` loads the extensions only when every source
still has that hash, so an edited ``.py`` in an editable install is never
shadowed by a stale build.  A build that compiles nothing removes the stamp.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DETECT = HERE / "src" / "smbsentry" / "detect"


def _load_accel():  # type: ignore[no-untyped-def]
    """smbsentry.detect._accel (standard library only), read from the source tree: the list of
    compiled modules, the stamp's name, the source digest and the environment switch live there once."""
    spec = importlib.util.spec_from_file_location("_smbsentry_accel", DETECT / "_accel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


accel = _load_accel()
#: Module name -> its source file (relative, as setuptools wants it).
COMPILED = {name: f"src/{name.replace('.', '/')}.py" for name in accel.COMPILED}
STAMP = accel.STAMP


def _say(message: str) -> None:
    print(f"smbsentry: {message}; the detector runs as plain Python", file=sys.stderr)


#: The sources' digests, taken before Cython reads them (a file saved during the build
#: then no longer matches its stamp, and the build is not used).
DIGESTS = {name: accel.source_digest(DETECT, name.rsplit(".", 1)[1]) for name in COMPILED}


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install, and records what it compiled."""

    def run(self) -> None:
        self.failed: list[str] = []
        stamp = Path(self.get_ext_fullpath("smbsentry.detect.engine")).parent / STAMP
        stamp.unlink(missing_ok=True)  # no stamp while the extensions are being replaced
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - no compiler, no headers: plain Python it is
            _say(f"compiling failed ({e})")
            return
        built = {ext.name for ext in self.extensions} - set(self.failed)
        if not set(COMPILED) <= built:
            return  # all or none: the compiled engine needs the compiled classes' layouts (.pxd cimports)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(DIGESTS, indent=1, sort_keys=True) + "\n")

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            if ext.name in C_EXTENSIONS:
                print(f"smbsentry: compiling {ext.name} failed ({e}); discovery sends with plain Python", file=sys.stderr)
            else:
                _say(f"compiling {ext.name} failed ({e})")
            self.failed.append(ext.name)


class StampAwareBuildPy(build_py):
    """build_py that removes a stamp left by an earlier build when this one compiles nothing.

    (setuptools skips build_ext entirely when there are no extensions, so
    OptionalBuildExt cannot do it: without this, an old stamp and old
    extensions in build/ or, for an editable install, in src/ would still
    be used while the sources are unchanged.)
    """

    def run(self) -> None:
        super().run()
        if not self.distribution.ext_modules:
            for root in (Path(self.build_lib), HERE / "src"):
                (root / "smbsentry" / "detect" / STAMP).unlink(missing_ok=True)


#: Plain C extensions (no Cython): discovery's send path.
C_EXTENSIONS = {"smbsentry.discover._fastsend": "src/smbsentry/discover/_fastsend.c"}


def _c_extensions() -> list:
    from setuptools import Extension

    return [Extension(name, [src], optional=True, extra_compile_args=["-O2"]) for name, src in C_EXTENSIONS.items()]


def _extensions() -> list:
    if accel.pure_requested():
        return []
    return _cython_extensions() + _c_extensions()


def _cython_extensions() -> list:
    try:
        from Cython.Build import cythonize
    except Exception:  # noqa: BLE001 - not installed, or broken
        _say("Cython is not available")
        return []
    from setuptools import Extension

    exts = [Extension(name, [src], optional=True) for name, src in COMPILED.items()]
    try:
        # force: never reuse a .c file left from another version of the source
        return cythonize(exts, compiler_directives={"language_level": 3}, quiet=True, force=True)
    except Exception as e:  # noqa: BLE001
        _say(f"Cython failed ({e})")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt, "build_py": StampAwareBuildPy})
