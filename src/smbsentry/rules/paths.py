"""Which files a list of rule paths names (shared by `smbsentry rules` and the recorder).

Its own module so that rules/cli.py and rules/record.py both read it without
importing each other.
"""

from __future__ import annotations

from pathlib import Path


def expand(paths: list[str]) -> list[str]:
    """Files as given; a directory contributes its regular files in name order."""
    out: list[str] = []
    for p in paths:
        pp = Path(p)
        if pp.is_dir():
            out += [str(f) for f in sorted(pp.iterdir()) if f.is_file() and not f.name.startswith(".")]
        else:
            out.append(p)
    return out
