"""ms08-067: inferred from the Windows build (see inference.py for why)."""

from __future__ import annotations

from .inference import BuildInferredCheck


class Ms08067(BuildInferredCheck):
    id = "ms08-067"
