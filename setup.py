"""Build script: compiles the traffic detector's hot modules with Cython, when it can.

Everything else about the package is in pyproject.toml.  The modules listed
in ``COMPILED`` are ordinary Python (they run as they are); Cython compiles
them, with the C types declared in their ``.pxd`` files, into extension
modules that shadow the ``.py`` files.  If Cython or a C compiler is missing,
or compiling fails, the install goes on without them and the detector runs
as plain Python (slower, same results).  ``SMBSENTRY_PURE_PYTHON=1`` at build
time skips compiling.

Next to the extensions the build writes ``_compiled.json``: the SHA-256 of
each ``.py`` it compiled (with its ``.pxd``).  :mod:`smbsentry.detect._accel` loads an extension
only when its source still has that hash, so an edited ``.py`` in an
editable install is never shadowed by a stale build.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
#: Modules compiled (dotted name -> source); keep in step with smbsentry.detect._accel.COMPILED.
COMPILED = {
    "smbsentry.detect.reassembly": "src/smbsentry/detect/reassembly.py",
    "smbsentry.detect.engine": "src/smbsentry/detect/engine.py",
    "smbsentry.detect.capture": "src/smbsentry/detect/capture.py",
}
STAMP = "_compiled.json"


def _digest(path: str) -> str:
    """As smbsentry.detect._accel.source_digest: the .py, then the .pxd when there is one."""
    h = hashlib.sha256((HERE / path).read_bytes())
    pxd = (HERE / path).with_suffix(".pxd")
    if pxd.is_file():
        h.update(pxd.read_bytes())
    return h.hexdigest()


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install, and records what it compiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - no compiler, no headers: plain Python it is
            self._skip("the build step", e)
            return
        self._write_stamp()

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            self._skip(ext.name, e)
            self.failed = [*getattr(self, "failed", []), ext.name]

    def _skip(self, what: str, e: Exception) -> None:
        print(f"smbsentry: compiling {what} failed ({e}); the detector runs as plain Python", file=sys.stderr)

    def _write_stamp(self) -> None:
        failed = set(getattr(self, "failed", []))
        done = {name: _digest(src) for name, src in COMPILED.items() if name not in failed}
        if not done:
            return
        out = Path(self.get_ext_fullpath("smbsentry.detect.engine")).parent / STAMP
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")


def _extensions() -> list:
    if os.environ.get("SMBSENTRY_PURE_PYTHON"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("smbsentry: Cython is not available; the detector runs as plain Python", file=sys.stderr)
        return []
    from setuptools import Extension

    exts = [Extension(name, [src]) for name, src in COMPILED.items()]
    try:
        return cythonize(
            exts,
            compiler_directives={"language_level": 3},
            quiet=True,
        )
    except Exception as e:  # noqa: BLE001
        print(f"smbsentry: Cython failed ({e}); the detector runs as plain Python", file=sys.stderr)
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
