"""Which files a list of rule paths names (shared by `smbsentry rules` and the recorder).

Its own module so that rules/cli.py and rules/record.py both read it without
importing each other.
"""

from __future__ import annotations

from pathlib import Path


def expand(paths: list[str]) -> list[str]:
    """Files as given (the very strings); a directory contributes its regular files in name order
    (textio.expand_files, the one rule of every command that takes folders)."""
    from ..textio import expand_files

    out: list[str] = []
    for p in paths:
        out += [str(f) for f in expand_files([p])] if Path(p).is_dir() else [p]
    return out
