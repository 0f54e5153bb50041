#!/usr/bin/env python3
"""Seal the packaged knowledge-base files: check each in full, then record its digest in kb/data/sealed.json.

At start-up the loader skips the JSON Schema check (and the import of
jsonschema) for a packaged file whose bytes and schema still have the digest
recorded here; any other file is checked in full (src/smbsentry/kb/store.py).
Run this after editing a data file or a schema (tests/test_kb_data.py fails
until it is run; a stale seal only costs start-up time, never a check).

Usage: python scripts/seal_kb_data.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from smbsentry.kb import catalog, store  # noqa: E402
from smbsentry.kb.schema import CATALOG, SCHEMAS, digest  # noqa: E402

DATA = ROOT / "src" / "smbsentry" / "kb" / "data"


def seals() -> dict:
    store.load(DATA)  # every file against its schema, every reference (the directory given: nothing is trusted)
    catalog.read(DATA / catalog.FILE)
    files = {name: digest((DATA / name).read_bytes(), schema) for name, schema in sorted(SCHEMAS.items())}
    files[catalog.FILE] = digest((DATA / catalog.FILE).read_bytes(), CATALOG)
    return {"_about": "Digests of the packaged data files and their schemas, written by scripts/seal_kb_data.py after checking "
                      "them in full; the loader skips the schema check of a file whose digest matches.", "files": files}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the seal file is not current; write nothing")
    args = ap.parse_args(argv)
    text = json.dumps(seals(), indent=1, sort_keys=True) + "\n"
    target = DATA / store.SEALS
    if args.check:
        current = target.is_file() and target.read_text("utf-8") == text
        print(f"{target}: {'current' if current else 'STALE: run python scripts/seal_kb_data.py'}")
        return 0 if current else 1
    target.write_text(text, "utf-8")
    print(f"{target}: {len(json.loads(text)['files'])} files sealed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
