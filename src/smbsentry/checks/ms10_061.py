"""ms10-061: inferred from the Windows build (see inference.py for why)."""

from __future__ import annotations

from .inference import BuildInferredCheck


class Ms10061(BuildInferredCheck):
    id = "ms10-061"
