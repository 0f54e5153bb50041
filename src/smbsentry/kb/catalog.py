"""The update catalog: every rollup, security-only and cumulative update, from public data.

`data/catalog.json` is written by scripts/import_catalog.py from WES-NG's
flattening of Microsoft's MSRC security update data (BSD 3-Clause) and is
shipped: nothing is fetched at run time, because audits run in isolated
networks.  `smbsentry kb update FILE` validates a newer export and stores it
in the user data folder (SMBSENTRY_KB_DIR overrides where), where the loader
prefers it to the packaged one while it is newer.

Hand-written entries in fixes.json stay authoritative for what they say
(release date, title, files, prerequisites); the catalog adds the updates
they lack, further products and supersedence, and build revisions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .model import KIND_LABELS, Fix, parse_date
from .schema import CATALOG, CATALOG_UPDATE, digest

FILE = "catalog.json"
MAX_BYTES = 64 * 1024 * 1024  # an export is ~0.3 MB; refuse anything absurd before reading it
SOURCE_ID = "wesng-definitions"
BUILD_SOURCE_ID = "windows-version-feed"


class CatalogError(ValueError):
    """A catalog file is malformed: str() names the file and the place in it."""


@dataclass(frozen=True, slots=True)
class CatalogInfo:
    date: date
    path: str
    source: dict
    counts: dict[str, int]
    products: int
    newest_kb: int
    build_source: dict | None = None


def user_dir() -> Path:
    """Where `kb update` keeps a newer catalog (SMBSENTRY_KB_DIR, else the user data folder)."""
    env = os.environ.get("SMBSENTRY_KB_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("smbsentry")) / "kb"


def read(path: Path, seal: str | None = None) -> dict:
    """Parse and schema-check a catalog file (the envelope not when `seal` is its digest: store.py); CatalogError names
    the file and the JSON path.  The updates are always checked: by hand, which costs a few milliseconds."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CatalogError(f"{path}: {size} bytes, more than a catalog can be ({MAX_BYTES})")
        raw = path.read_bytes()
        doc = json.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise CatalogError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
    if seal is None or seal != digest(raw, CATALOG):
        import jsonschema  # only here: see store.py

        envelope = {**CATALOG, "properties": {**CATALOG["properties"], "updates": {"type": "array", "minItems": 1}}}
        errors = list(jsonschema.Draft202012Validator(envelope).iter_errors(doc))
        if errors:
            err = jsonschema.exceptions.best_match(errors)
            where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
            raise CatalogError(f"{path}: {where}: {err.message}")
    _check_updates(doc["updates"], path)
    return doc


_KB, _DATE, _PID = re.compile(r"KB\d{6,7}"), re.compile(r"\d{4}-\d{2}-\d{2}"), re.compile(r"[a-z0-9][a-z0-9.-]*")
_KINDS = frozenset(CATALOG_UPDATE["properties"]["kind"]["enum"])
_ARCHS = frozenset(CATALOG_UPDATE["properties"]["architectures"]["items"]["enum"])
_KEYS, _REQUIRED = frozenset(CATALOG_UPDATE["properties"]), frozenset(CATALOG_UPDATE["required"])


def _check_updates(updates: list, path: Path) -> None:
    """schema.CATALOG_UPDATE for each update, checked by hand: jsonschema would take 0.1 s of every start-up for 1,500 entries."""
    for i, u in enumerate(updates):
        def bad(what: str) -> CatalogError:
            return CatalogError(f"{path}: $.updates[{i}]{what}")

        if not isinstance(u, dict):
            raise bad(": not an object")
        if not _REQUIRED <= u.keys() or not u.keys() <= _KEYS:
            raise bad(f": keys must be {sorted(_REQUIRED)} (and optionally fixes, builds), got {sorted(u)}")
        if not (isinstance(u["kb"], str) and _KB.fullmatch(u["kb"])):
            raise bad(f".kb: {u['kb']!r} is not KB followed by 6 or 7 digits")
        if u["kind"] not in _KINDS:
            raise bad(f".kind: {u['kind']!r} is not one of {sorted(_KINDS)}")
        if not (isinstance(u["released"], str) and _DATE.fullmatch(u["released"])):
            raise bad(f".released: {u['released']!r} is not a date")
        for key, ok in (("products", lambda x: isinstance(x, str) and _PID.fullmatch(x)), ("architectures", lambda x: x in _ARCHS),
                        ("supersedes", lambda x: isinstance(x, str) and _KB.fullmatch(x)), ("fixes", lambda x: isinstance(x, str) and x)):
            if key not in u and key == "fixes":
                continue
            value = u[key]
            if not isinstance(value, list) or (key in ("products", "architectures", "fixes") and not value) or not all(map(ok, value)):
                raise bad(f".{key}: {value!r} is not a valid list")
        builds = u.get("builds", {})
        if not isinstance(builds, dict) or not all(k.isdigit() and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in builds.items()):
            raise bad(f".builds: {builds!r} is not a map of build to revision")


def check(doc: dict, path: Path, products: set[str], known: set[str] = frozenset()) -> None:
    """References a schema cannot see: unknown products, duplicate or dangling updates, supersedence cycles."""
    seen: dict[str, int] = {}
    for i, u in enumerate(doc["updates"]):
        if u["kb"] in seen:
            raise CatalogError(f"{path}: $.updates[{i}].kb: duplicate update {u['kb']}")
        seen[u["kb"]] = i
        for pid in u["products"]:
            if pid not in products:
                raise CatalogError(f"{path}: $.updates[{i}].products: unknown product {pid!r}")
    for i, u in enumerate(doc["updates"]):
        for old in u["supersedes"]:
            if old not in seen and old not in known:
                raise CatalogError(f"{path}: $.updates[{i}].supersedes: {u['kb']} supersedes {old}, which is not in the catalog")
    cycle = find_cycle({u["kb"]: u["supersedes"] for u in doc["updates"]})
    if cycle:
        raise CatalogError(f"{path}: supersedence cycle {' -> '.join(cycle)}")


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A supersedence loop (a, b, ..., a) or None; iterative, so long chains cannot overflow the stack."""
    state: dict[str, int] = {}
    for root in edges:
        if state.get(root):
            continue
        stack = [(root, iter(edges.get(root, ())))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(edges.get(nxt, ()))))
                path.append(nxt)
    return None


def choose(packaged: Path) -> Path:
    """The catalog to load: the user's newer export when there is one, else the packaged file."""
    mine = user_dir() / FILE
    if not mine.is_file():
        return packaged
    try:
        theirs, ours = _date_of(mine), _date_of(packaged)
    except (OSError, ValueError):
        return mine  # read() reports what is wrong with it
    return mine if theirs > ours else packaged


def _date_of(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(4096).decode("utf-8", errors="replace")
    i = head.find('"date":"') if '"date":"' in head else head.find('"date": "')
    if i < 0:
        raise ValueError("no date")
    return head[head.index('"', head.index(":", i)) + 1:][:10]


def merge(doc: dict, fixes: dict[str, Fix]) -> dict[str, Fix]:
    """fixes.json's entries completed by the catalog; catalog-only updates become Fix entries."""
    out = dict(fixes)
    for u in doc["updates"]:
        builds = {int(b): r for b, r in u.get("builds", {}).items()}
        old = out.get(u["kb"])
        if old is not None:
            # products and bulletins stay as curated (MSRC rows sometimes name a level the update does not install on,
            # e.g. Server 2008 R2 without SP1 for KB4012212); supersedence and build revisions are added
            sup = old.supersedes + tuple(s for s in u["supersedes"] if s not in old.supersedes)
            out[u["kb"]] = _replace(old, supersedes=sup, fixed_builds={**builds, **old.fixed_builds})
            continue
        day = parse_date(u["released"])
        src = (SOURCE_ID, BUILD_SOURCE_ID) if builds else (SOURCE_ID,)
        out[u["kb"]] = Fix(kb=u["kb"], title=f"{day:%Y-%m} {KIND_LABELS[u['kind']]}", kind=u["kind"], products=tuple(u["products"]),
                           architectures=tuple(u["architectures"]), released=day, addresses=tuple(u.get("fixes", ())),
                           supersedes=tuple(u["supersedes"]), source=src, fixed_builds=builds)
    return out


def _replace(f: Fix, **changes) -> Fix:
    from dataclasses import replace

    return replace(f, **changes)


def info(doc: dict, path: Path) -> CatalogInfo:
    counts = Counter(u["kind"] for u in doc["updates"])
    products = {p for u in doc["updates"] for p in u["products"]}
    newest = max((int(u["kb"][2:]) for u in doc["updates"]), default=0)
    return CatalogInfo(parse_date(doc["date"]), str(path), doc["source"], dict(counts), len(products), newest, doc.get("build_source"))


def install(source: Path, products: set[str], known: set[str], current: date) -> tuple[Path, CatalogInfo]:
    """Validate an export and store it as the user's catalog; refuses one that is not newer than `current`."""
    doc = read(source)
    check(doc, source, products, known)
    new = info(doc, source)
    if new.date <= current:
        raise CatalogError(f"{source}: catalog of {new.date} is not newer than the one in use ({current}); nothing changed")
    target = user_dir() / FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target, new
