"""ms09-050: inferred from the Windows build (see inference.py for why)."""

from __future__ import annotations

from .inference import BuildInferredCheck


class Ms09050(BuildInferredCheck):
    id = "ms09-050"
