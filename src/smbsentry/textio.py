"""Reading inputs with their size bounded first, and writing outputs that may fail.

Shared by the commands that read exports people hand in (`rules`, `audit`)
and those that write reports (`report`, `audit`, `rules`):

* `read_bounded` refuses a file larger than its limit before reading it;
* `loads_json` refuses JSON nested deeper than MAX_JSON_DEPTH before the
  parser recurses into it (a document nested 10,000 deep used to end in
  RecursionError, taking the good files beside it down too);
* `write_text` writes to a file or standard output and returns a one-line
  reason instead of raising when the disk is full;
* `replace_folder` puts a folder written in full beside its destination in
  the destination's place (plans and respond folders: all or nothing).
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from itertools import accumulate
from pathlib import Path
from typing import Any

MAX_JSON_DEPTH = 64  # exports are shallow: an AWS or Azure export is under 10 levels
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


class InputTooLarge(ValueError):
    pass


class NotRegularFile(InputTooLarge):
    """A FIFO, a device or a socket given as an input file: refused unread."""


class TooDeep(ValueError):
    pass


def expand_files(paths) -> list[Path]:
    """Files as given; a folder stands for its regular files in name order, not recursive, hidden (dot)
    files skipped (an editor's swap file or .DS_Store is never an input).  The one rule of every command
    that takes folders: audit and respond inventories, rules exports, plan and merge results."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith(".")) if p.is_dir() else [p]
    return out


def read_bounded(path: str | os.PathLike, limit: int) -> bytes:
    """The file's bytes, or InputTooLarge when it holds more than `limit` (checked before reading) or is not a
    regular file (a FIFO or a device has no size to check, and opening a FIFO would wait for a writer for ever:
    it is opened without blocking and refused)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile("not a regular file (a pipe or a device is never read as an input)")
        size = st.st_size
        if size > limit:
            raise InputTooLarge(f"{_mb(size)} is over the {_mb(limit)} limit for one file")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while we looked, or not a regular file
        raise InputTooLarge(f"more than the {_mb(limit)} limit for one file")
    return data


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n} bytes"


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (strings skipped); linear, no recursion."""
    skeleton = _STRING.sub("", text)
    opens = skeleton.count("[") + skeleton.count("{")
    if opens <= MAX_JSON_DEPTH:
        return opens
    steps = (1 if c in "[{" else -1 for c in skeleton if c in "[]{}")
    return max(accumulate(steps), default=0)


def loads_json(text: str) -> Any:
    """json.loads after the depth check: TooDeep, or json.JSONDecodeError, or the value."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise TooDeep(f"JSON nested {depth} levels deep (the limit is {MAX_JSON_DEPTH})")
    return json.loads(text)


def write_text(text: str, path: str | os.PathLike | None) -> str | None:
    """Write `text` to `path` (standard output when None); None, or the one-line reason it failed."""
    try:
        if path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            Path(path).write_text(text, encoding="utf-8")
    except BrokenPipeError:
        raise
    except OSError as exc:
        if path is None:
            discard_stdout()
        return f"cannot write {path if path is not None else 'standard output'}: {exc.strerror or exc}"
    return None


def discard_stdout() -> None:
    """Point file descriptor 1 at /dev/null: what is still buffered for a full
    disk (or a closed pipe) is dropped at exit instead of failing again there."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def replace_folder(tmp, final) -> None:
    """tmp (written in full beside final) takes final's place; an earlier final is replaced whole,
    never merged with the new one (stale files of an earlier run would look current)."""
    from pathlib import Path
    import shutil

    tmp, final = Path(tmp), Path(final)
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
