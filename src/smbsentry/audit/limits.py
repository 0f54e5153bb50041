"""Bounds on what one inventory file may cost, applied where files are read.

* size: a file over MAX_FILE_BYTES is refused before it is read (a real
  export is kilobytes per host; a Get-HotFix CSV of a thousand hosts is
  about 10 MB);
* depth: JSON nested deeper than textio.MAX_JSON_DEPTH is refused before
  the parser recurses into it;
* junk: a systeminfo file whose lines are mostly neither `Label: value` nor
  indented continuations is flagged (its hosts are still read): the parser
  skips labels it does not need, so junk would otherwise pass unseen;
* errors: at most MAX_ERRORS_PER_FILE per file are kept, then one line
  says how many more there were (a million broken rows are not a million
  lines on stderr).
"""

from __future__ import annotations

from .errors import InventoryError

MAX_FILE_BYTES = 32 << 20
MAX_ERRORS_PER_FILE = 50
JUNK_MIN_LINES = 100  # fewer junk lines than this are not worth a word
JUNK_SHARE = 0.5


def _shaped(line: str) -> bool:
    head = line[:80]
    return line[:1] in (" ", "\t") or ":" in head or "：" in head


def junk_error(text: str, path: str) -> InventoryError | None:
    """The flag for a systeminfo (list format) file that is mostly something else, or None."""
    total = junk = 0
    first = None
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        total += 1
        if not _shaped(line):
            junk += 1
            if first is None:
                first = no
    if junk < JUNK_MIN_LINES or junk <= total * JUNK_SHARE:
        return None
    return InventoryError(path, first, f"mostly not systeminfo output: {junk:,} of {total:,} lines are neither "
                                       "'Label: value' nor indented continuations (the hosts found are kept; is it the right file?)")


def cap_errors(errors: list[InventoryError], path: str) -> list[InventoryError]:
    if len(errors) <= MAX_ERRORS_PER_FILE:
        return errors
    more = len(errors) - MAX_ERRORS_PER_FILE
    return errors[:MAX_ERRORS_PER_FILE] + [InventoryError(path, None, f"... and {more:,} more errors in this file")]
