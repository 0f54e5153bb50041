#!/usr/bin/env python3
"""Build src/smbsentry/kb/data/catalog.json, the update catalog, from public data.

Source: the definitions of WES-NG (Windows Exploit Suggester - Next
Generation, https://github.com/bitsadmin/wesng, BSD 3-Clause licence,
Copyright 2019 Arris Huijgen): `definitions.zip` holds `CVEs_<date>.csv`, a
flattening of Microsoft's MSRC security update data (CVRF) and the older
security bulletin data: one row per (CVE, update, affected product) with the
date posted and the updates each update supersedes.  Only this data file is
read; none of WES-NG's code is used.

Optional second source (--builds, repeatable): the monthly CVE-to-KB files of
ZentrixLabs' windows-version-feed (https://github.com/ZentrixLabs/windows-version-feed,
MIT licence), also extracted from MSRC CVRF, which carry the "FixedBuild" of
cumulative updates (e.g. 19045.6093) from June 2025 on.  Build revisions of
older cumulative updates are not in either source; kb/data/fixes.json keeps
the hand-checked ones.

What is written (see the catalog's `_about`):
* every monthly rollup and security-only update of Windows 7 SP1 / Server
  2008 R2 SP1, 8.1, Server 2012 and 2012 R2 (from October 2016) and of
  Server 2008 SP2 (from September 2018), and every cumulative update of each
  Windows 10 / 11 / Server 2016+ release (from October 2016, or the release's
  start), to the newest month in the source;
* every update that fixes a tracked vulnerability (the CVEs of
  kb/data/vulnerabilities.json) and every update that supersedes one of
  them, directly or through others, on the same product;
* for each: kinds, products, architectures, release date, supersedence
  (restricted to updates in the catalog, so every reference resolves),
  the tracked bulletins it fixes directly, and build revisions where known.

How kinds are told apart (the CSV has no "SubType"): per product, the
monthly-rollup / cumulative chain is the spine of supersedence walked back
from the newest large update, each step taking the superseded update with
the most rows; an update that supersedes a spine member (an out-of-band
cumulative update) joins the chain; on the rollup systems, an update of the
same month as a rollup that shares most of its CVEs and is not on the spine
is that month's security-only update.  Release date: the date most of the
update's rows were posted (CVE revisions repost old updates later), moved back to its earliest
posting where that would put it after an update superseding it.

Usage (repeatable; same input, same output):
    python scripts/import_catalog.py definitions.zip [--builds CVE_KB_Mapping_2026-Jun.json ...] \
        [-o src/smbsentry/kb/data/catalog.json]
    python scripts/seal_kb_data.py     # after replacing the packaged catalog (see kb/store.py)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KB_DATA = ROOT / "src" / "smbsentry" / "kb" / "data"
CATALOG_START = "2016-10-01"  # the first monthly rollups; before MS17-010 (2017-03), the first tracked fix of the rollup era
ROLLUP_ERA = {"windows-7-sp1": "2016-10-01", "windows-server-2008-r2-sp1": "2016-10-01", "windows-8.1": "2016-10-01",
              "windows-server-2012-r2": "2016-10-01", "windows-server-2012": "2016-10-01", "windows-server-2008-sp2": "2018-09-01"}
SKIP_COMPONENT = re.compile(r"flash|\.net|internet explorer|edge|office|silverlight|visual studio|sql server|exchange|sharepoint", re.I)
SOURCE = {"title": "WES-NG definitions (CVEs_<date>.csv), a flattening of Microsoft's MSRC security update data (CVRF) and bulletin data",
          "url": "https://github.com/bitsadmin/wesng", "licence": "BSD-3-Clause (Copyright 2019 Arris Huijgen)"}
BUILD_SOURCE = {"title": "ZentrixLabs windows-version-feed, CVE-to-KB mappings with FixedBuild from MSRC CVRF",
                "url": "https://github.com/ZentrixLabs/windows-version-feed", "licence": "MIT (Copyright 2025 ZentrixLabs)"}
W10 = {"1507": None, "1511": "1511", "1607": "1607", "1703": "1703", "1709": "1709", "1803": "1803", "1809": "1809", "1903": "1903",
       "1909": "1909", "2004": "2004", "20h2": "20h2", "21h1": "21h1", "21h2": "21h2", "22h2": "22h2"}


def product_ids(name: str) -> tuple[list[str], str | None]:
    """([product ids], architecture) of an MSRC product name; [] for products the knowledge base does not cover."""
    n = " ".join(name.replace("Microsoft ", "").split()).lower()
    arch = ("x86" if "32-bit" in n else "arm64" if "arm64" in n or "arm systems" in n else "ia64" if "itanium" in n
            else "x64" if "x64" in n else None)
    m = re.fullmatch(r"windows 10 (?:version (\w+) )?for .*", n)
    if m:
        return [f"windows-10-{m.group(1) or '1507'}"], arch
    m = re.fullmatch(r"windows 11 version (\w+) for .*", n)
    if m:
        return [f"windows-11-{m.group(1)}"], arch
    m = re.fullmatch(r"windows server, version (\w+) \(server core installation\)", n)
    if m:
        return [f"windows-server-{m.group(1)}"], "x64"
    n = n.replace(" (server core installation)", "")
    table = [
        (r"windows server 2022, 23h2 edition", ["windows-server-23h2"]), (r"windows server (2016|2019|2022|2025)", ["windows-server-{0}"]),
        (r"windows server 2012 r2", ["windows-server-2012-r2"]), (r"windows server 2012", ["windows-server-2012"]),
        (r"windows server 2008 r2 for .* service pack 1", ["windows-server-2008-r2-sp1"]), (r"windows server 2008 r2 for .*", ["windows-server-2008-r2-rtm"]),
        (r"windows server 2008 for .* service pack 2", ["windows-server-2008-sp2"]), (r"windows server 2008 for .*", ["windows-server-2008-sp1"]),
        (r"windows 8\.1 for .*", ["windows-8.1"]), (r"windows 8 for .*", ["windows-8"]),
        (r"windows 7 for .* service pack 1", ["windows-7-sp1"]), (r"windows 7 for .*", ["windows-7-rtm"]),
        (r"windows vista(?: x64 edition)? service pack (1|2)", ["windows-vista-sp{0}"]), (r"windows vista(?: x64 edition)?", ["windows-vista-rtm"]),
        (r"windows server 2003 r2(?: x64 edition)? service pack 2", ["windows-server-2003-r2-sp2"]),
        (r"windows server 2003(?: x64 edition| for itanium-based systems)? service pack 2", ["windows-server-2003-sp2", "windows-server-2003-r2-sp2"]),
        (r"windows server 2003(?: x64 edition| for itanium-based systems)? service pack 1", ["windows-server-2003-sp1"]),
        (r"windows server 2003(?: x64 edition| for itanium-based systems)?", ["windows-server-2003-rtm"]),
        (r"windows xp professional x64 edition service pack 2", ["windows-xp-x64-sp2"]), (r"windows xp service pack 3", ["windows-xp-sp3"]),
        (r"windows xp service pack 2", ["windows-xp-sp2"]), (r"windows 2000 service pack 4", ["windows-2000-sp4"]),
    ]
    for pattern, ids in table:
        m = re.fullmatch(pattern, n)
        if m:
            return [i.format(*m.groups()) for i in ids], arch or ("x86" if "xp service" in n or "2000" in n else None)
    return [], arch


def read_rows(path: Path) -> tuple[list[list[str]], str, str]:
    """(rows without the header, the CSV's name, sha256 of the input file)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            name = next(n for n in z.namelist() if re.fullmatch(r"CVEs_\d{8}\.csv", n))
            text = z.read(name).decode("utf-8", errors="replace")
    else:
        name, text = path.name, data.decode("utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0][:3] != ["DatePosted", "CVE", "BulletinKB"]:
        raise SystemExit(f"{path}: not a WES-NG CVEs_<date>.csv (header {rows[0][:3] if rows else None})")
    return rows[1:], name, digest


class Product:
    """What the rows say about one product: per update its row count, dates, CVEs and supersedence."""

    def __init__(self, pid: str):
        self.pid = pid
        self.rows: Counter[str] = Counter()
        self.dates: dict[str, Counter] = defaultdict(Counter)
        self.cves: dict[str, set[str]] = defaultdict(set)
        self.supersedes: dict[str, set[str]] = defaultdict(set)
        self.arch: dict[str, set[str]] = defaultdict(set)


def collect(rows, known: set[str]) -> tuple[dict[str, Product], Counter]:
    products: dict[str, Product] = {}
    unmapped: Counter[str] = Counter()
    for r in rows:
        if len(r) < 9 or not r[2].isdigit() or not re.fullmatch(r"\d{8}", r[0]):
            continue
        if SKIP_COMPONENT.search(r[5]) or SKIP_COMPONENT.search(r[4].split(" on ")[0] if " on " in r[4] else ""):
            continue
        ids, arch = product_ids(r[4])
        ids = [i for i in ids if i in known]
        if not ids:
            if "windows" in r[4].lower():
                unmapped[r[4]] += 1
            continue
        kb = "KB" + r[2]
        for pid in ids:
            p = products.setdefault(pid, Product(pid))
            p.rows[kb] += 1
            p.dates[kb][f"{r[0][:4]}-{r[0][4:6]}-{r[0][6:]}"] += 1
            if r[1].startswith("CVE-"):
                p.cves[kb].add(r[1])
            p.supersedes[kb].update("KB" + s for s in r[8].split(";") if s.strip().isdigit())
            if arch:
                p.arch[kb].add(arch)
    return products, unmapped


def released(dates: Counter) -> str:
    """The date most rows of an update were posted on (the earliest of equals)."""
    top = max(dates.values())
    return min(d for d, c in dates.items() if c == top)


def _consistent_dates(day: dict[str, str], dates: dict[str, Counter], products: dict[str, Product]) -> None:
    """An update is not released after one that supersedes it: where the most-posted date says so (an old
    update reposted with a later CVE revision), take its earliest posting, else the superseding update's date."""
    edges = {(new, old) for p in products.values() for new, olds in p.supersedes.items() for old in olds if old in day and new in day}
    for _ in range(20):
        changed = False
        for new, old in edges:
            if day[old] > day[new]:
                first = min(dates[old])
                day[old] = first if first <= day[new] else day[new]
                changed = True
        if not changed:
            return


def _large(p: Product, kb: str, day: dict[str, str]) -> bool:
    """At least half the rows of the largest update that supersedes another in the three months before it."""
    y, m = int(day[kb][:4]), int(day[kb][5:7])
    since = f"{y - (m <= 3)}-{(m - 4) % 12 + 1:02d}-01"
    before = [p.rows[k] for k in p.rows if since <= day[k] < day[kb][:7] + "-01" and p.supersedes[k]]
    return bool(before) and p.rows[kb] * 2 >= max(before)


def spine(p: Product, day: dict[str, str], start: str, cumulative: bool = True) -> list[str]:
    """The rollup / cumulative chain of one product, newest first (see the module docstring)."""
    # A head may supersede an update that lists no CVE for this product (Windows 10 22H2's June 2026 update supersedes
    # KB5087544, whose rows name 21H2 only) or, on a cumulative release, have no supersedence in the data at all (Server
    # 2025's June 2026 update; on the rollup systems that is what a security-only update looks like): it must then be as
    # large as the release's recent updates are, not an old update reposted with a CVE revision or a one-off (Secure
    # Boot DBX) after the release's last month.
    recent = [k for k in p.rows if day[k] >= start and (p.supersedes[k] & p.rows.keys() or ((p.supersedes[k] or cumulative) and _large(p, k, day)))]
    if not recent:
        return []
    newest_month = max(day[k][:7] for k in recent)
    cur = max((k for k in recent if day[k][:7] == newest_month), key=lambda k: (p.rows[k], k))
    chain, seen = [cur], {cur}
    while True:
        prev = [k for k in p.supersedes[cur] if k in p.rows and k not in seen and day[k] <= day[cur]]
        if not prev:  # a gap: the superseded update lists no CVE for this product; take last month's largest chained update
            older = [k for k in p.rows if k not in seen and day[k] < day[cur][:7] + "-01" and p.supersedes[k] and day[k] >= start]
            if not older:
                break
            month = max(day[k][:7] for k in older)
            prev = [k for k in older if day[k][:7] == month]
        nxt = max(prev, key=lambda k: (day[k][:7], p.rows[k], k))
        if day[nxt] < start or _security_only_twin(p, nxt, cur, day):
            break
        chain.append(nxt)
        seen.add(nxt)
        cur = nxt
    return chain


def _security_only_twin(p: Product, kb: str, rollup: str, day: dict[str, str]) -> bool:
    """Same month as the rollup, most of its CVEs shared, superseding nothing: that month's security-only update."""
    if day[kb][:7] != day[rollup][:7] or not p.cves[kb]:
        return False
    shared = len(p.cves[kb] & p.cves[rollup])
    return shared * 2 >= len(p.cves[kb]) and not (p.supersedes[kb] & p.rows.keys())


def classify(p: Product, day: dict[str, str], cumulative: bool, tracked: set[str], seeds: set[str]) -> dict[str, str]:
    """{kb: kind} of the updates of one product that go into the catalog."""
    kinds: dict[str, str] = {}
    era = ROLLUP_ERA.get(p.pid) if not cumulative else CATALOG_START
    chain_kind = "cumulative" if cumulative else "monthly-rollup"
    if era:
        chain = spine(p, day, era, cumulative)
        members = set(chain)
        for k in list(p.rows):  # out-of-band releases that supersede a chain member
            if k not in members and p.supersedes[k] & members and day[k] >= era:
                members.add(k)
        for k in members:
            kinds[k] = chain_kind
        if not cumulative:
            by_month = defaultdict(list)
            for k in members:
                by_month[day[k][:7]].append(k)
            for k in p.rows:
                if k in kinds or day[k] < era:
                    continue
                if any(_security_only_twin(p, k, r, day) and len(p.cves[k]) * 4 >= len(p.cves[r]) for r in by_month.get(day[k][:7], ())):
                    kinds[k] = "security-only"
    # tracked fixes and everything that supersedes them on this product
    frontier = [k for k in p.rows if p.cves[k] & tracked or k in seeds]
    frontier += [o for k in p.rows for o in p.supersedes[k] if o in seeds and o not in p.rows]  # MS08-067's KB958644 has no CVE row
    newer = defaultdict(set)
    for k, olds in p.supersedes.items():
        for o in olds:
            newer[o].add(k)
    seen = set(frontier)
    while frontier:
        k = frontier.pop()
        if k in p.rows:  # a seed without rows of its own (KB958644) only leads to the updates superseding it
            kinds.setdefault(k, "standalone")
        for n in newer.get(k, ()):
            if n not in seen and kinds.get(n) != "security-only":
                seen.add(n)
                frontier.append(n)
    return kinds


def load_builds(paths: list[Path], products: dict) -> dict[str, dict[int, int]]:
    """{kb: {build: revision}} from windows-version-feed CVE_KB_Mapping files."""
    out: dict[str, dict[int, int]] = defaultdict(dict)
    for path in paths:
        for item in json.loads(path.read_text("utf-8")):
            for patch in item.get("patches", ()):
                m = re.fullmatch(r"(?:10\.0\.)?(\d{5})\.(\d+)", str(patch.get("fixedBuild", "")).strip())
                kb = str(patch.get("kb", "")).upper()
                if m and re.fullmatch(r"KB\d{6,7}", kb):
                    out[kb][int(m.group(1))] = int(m.group(2))
    return out


def build(rows, kb_data: Path, builds: dict[str, dict[int, int]]) -> tuple[dict, Counter]:
    products = {p["id"]: p for p in json.loads((kb_data / "products.json").read_text("utf-8"))["products"]}
    vulns = json.loads((kb_data / "vulnerabilities.json").read_text("utf-8"))["findings"]
    cve_bulletin = {c: v["bulletin"] for v in vulns.values() if v.get("bulletin") for c in v["cves"]}
    seeds = {f["kb"] for f in json.loads((kb_data / "fixes.json").read_text("utf-8"))["fixes"] if f["addresses"]}
    per_product, unmapped = collect(rows, set(products))
    entries: dict[str, dict] = {}
    all_dates: dict[str, Counter] = defaultdict(Counter)
    for p in per_product.values():
        for k, d in p.dates.items():
            all_dates[k].update(d)
    day = {k: released(d) for k, d in all_dates.items()}
    _consistent_dates(day, all_dates, per_product)
    for pid, p in sorted(per_product.items()):
        kinds = classify(p, day, products[pid]["ubr_is_proof"], set(cve_bulletin), seeds)
        for k, kind in kinds.items():
            e = entries.setdefault(k, {"kb": k, "kinds": {}, "released": day[k], "products": set(), "architectures": set(),
                                       "supersedes": set(), "fixes": set()})
            e["kinds"][pid] = kind
            e["products"].add(pid)
            e["architectures"] |= p.arch[k] or set(products[pid]["architectures"])
            e["supersedes"] |= p.supersedes[k]
            e["fixes"] |= {cve_bulletin[c] for c in p.cves[k] if c in cve_bulletin}
    out = []
    for k in sorted(entries, key=lambda k: (entries[k]["released"], int(k[2:]))):
        e = entries[k]
        kinds = set(e["kinds"].values())
        kind = next(x for x in ("cumulative", "monthly-rollup", "security-only", "standalone") if x in kinds)
        item = {"kb": k, "kind": kind, "released": e["released"], "products": sorted(e["products"]),
                "architectures": sorted(e["architectures"]), "supersedes": sorted((s for s in e["supersedes"] if s in entries and s != k), key=lambda s: int(s[2:]))}
        if e["fixes"]:
            item["fixes"] = sorted(e["fixes"])
        if k in builds:
            item["builds"] = {str(b): r for b, r in sorted(builds[k].items()) if any(products[pid].get("build") == b for pid in e["products"])}
            if not item["builds"]:
                del item["builds"]
        out.append(item)
    return {"updates": out}, unmapped


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="WES-NG definitions.zip or its CVEs_<date>.csv")
    ap.add_argument("--builds", type=Path, action="append", default=[], help="windows-version-feed CVE_KB_Mapping_*.json (repeatable)")
    ap.add_argument("--kb-data", type=Path, default=KB_DATA, help="the knowledge base's data folder (products, vulnerabilities)")
    ap.add_argument("-o", "--output", type=Path, default=KB_DATA / "catalog.json")
    args = ap.parse_args(argv)
    rows, name, digest = read_rows(args.source)
    builds = load_builds(args.builds, None)
    body, unmapped = build(rows, args.kb_data, builds)
    date = re.search(r"(\d{4})(\d{2})(\d{2})", name)
    catalog_date = f"{date.group(1)}-{date.group(2)}-{date.group(3)}" if date else max(u["released"] for u in body["updates"])
    doc = {
        "_about": ("The update catalog: monthly rollups, security-only and cumulative updates of every Windows release the knowledge base covers "
                   "(from October 2016), every update that fixes a tracked vulnerability and every update superseding one, with kind, "
                   "release date, products, architectures, supersedence (within the catalog), the tracked bulletins fixed directly and OS build "
                   "revisions where the source has them. Generated by scripts/import_catalog.py; do not edit by hand: re-run the script."),
        "format": 1,
        "date": catalog_date,
        "source": {**SOURCE, "file": name, "sha256": digest, "rows": len(rows)},
        "updates": body["updates"],
    }
    if args.builds:
        doc["build_source"] = {**BUILD_SOURCE, "files": sorted(p.name for p in args.builds)}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    text = text.replace(',{"kb"', ',\n{"kb"')  # one update per line: readable diffs
    args.output.write_text(text + "\n", "utf-8")
    kinds = Counter(u["kind"] for u in body["updates"])
    print(f"{args.output}: {len(body['updates'])} updates ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}), catalog date {catalog_date}")
    if unmapped:
        print(f"rows of products the knowledge base does not cover: {sum(unmapped.values())} ({len(unmapped)} names, e.g. {', '.join(list(unmapped)[:3])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
