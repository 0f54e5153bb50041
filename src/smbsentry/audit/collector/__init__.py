"""The PowerShell collector shipped with smbsentry (collect.ps1).

Run it on a Windows host (PowerShell 2.0 and later) and feed its JSON to
`smbsentry audit`; it is read by audit/formats/collector.py.
"""

from __future__ import annotations

from importlib import resources

SCRIPT_NAME = "collect.ps1"


def collector_script() -> str:
    """The collector's PowerShell source (for `smbsentry collector` to print or save)."""
    return resources.files(__package__).joinpath(SCRIPT_NAME).read_text(encoding="utf-8")


__all__ = ["SCRIPT_NAME", "collector_script"]
