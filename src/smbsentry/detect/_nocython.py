"""Stands in for the ``cython`` module when the detector runs as plain Python.

The compiled modules ``import cython`` for ``cython.compiled`` and their
type annotations; without Cython installed they import this instead.  The
annotations are never evaluated (``from __future__ import annotations``),
so ``compiled`` is all that is needed.
"""

compiled = False
