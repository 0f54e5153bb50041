"""The update catalog: the import script on an excerpt of its source, the shipped catalog's integrity,
`kb info` / `kb update`, and verdicts for one host per product at three points in time (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbsentry.audit import HostFacts, evaluate
from smbsentry.kb import catalog, query
from smbsentry.kb.store import kb

ROOT = Path(__file__).resolve().parent.parent
EXCERPT = ROOT / "tests" / "data" / "catalog" / "CVEs_20260628-excerpt.csv"
SHIPPED = json.loads((ROOT / "src" / "smbsentry" / "kb" / "data" / "catalog.json").read_text("utf-8"))
UPDATES = {u["kb"]: u for u in SHIPPED["updates"]}


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "smbsentry.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_import_script_on_the_source_excerpt(tmp_path):
    out = tmp_path / "catalog.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_catalog.py"), str(EXCERPT), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = catalog.read(out)
    got = {u["kb"]: u for u in doc["updates"]}
    assert doc["date"] == "2026-06-28" and doc["source"]["licence"].startswith("BSD-3-Clause") and doc["source"]["rows"] == 987
    # kinds told apart without a SubType column: the rollup chain, its security-only twins, cumulative updates, standalone fixes
    assert [got[k]["kind"] for k in ("KB4012215", "KB4015549", "KB4019264")] == ["monthly-rollup"] * 3
    assert [got[k]["kind"] for k in ("KB4012212", "KB4015546", "KB4019263")] == ["security-only"] * 3
    assert got["KB4015549"]["supersedes"] == ["KB4012215"] and got["KB4015546"]["supersedes"] == []
    assert got["KB4551762"] == {"kb": "KB4551762", "kind": "cumulative", "released": "2020-03-13", "products": ["windows-10-1909"],
                                "architectures": ["x64"], "supersedes": ["KB4540673"], "fixes": ["ADV200005"]}
    assert got["KB4018466"]["kind"] == "standalone" and got["KB4018466"]["supersedes"] == ["KB4012598"]
    # repeatable: same input, same bytes
    again = tmp_path / "again.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "import_catalog.py"), str(EXCERPT), "-o", str(again)], check=True,
                   capture_output=True, timeout=120)
    assert again.read_bytes() == out.read_bytes()


def test_a_head_whose_predecessor_names_another_release_still_starts_the_chain(tmp_path):
    """June 2020's 1909 update rewritten to supersede an update with no row for 1909 (as 22H2's June 2026 update does in the
    real data): it is still the newest cumulative update, May's stays in the chain, and a small reposted update is not a head."""
    rows = EXCERPT.read_text("utf-8").replace(',"4556799",""', ',"9999999",""').splitlines()
    assert sum(',"9999999",' in r for r in rows) == 90
    src = tmp_path / "CVEs_20260628.csv"
    src.write_text("\n".join(rows) + "\n", "utf-8")
    out = tmp_path / "catalog.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_catalog.py"), str(src), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = {u["kb"]: u for u in catalog.read(out)["updates"]}
    assert got["KB4560960"]["kind"] == "cumulative" and got["KB4560960"]["supersedes"] == []
    assert got["KB4556799"]["kind"] == "cumulative" and got["KB4556799"]["supersedes"] == ["KB4549951"]
    assert "KB4574727" not in got  # one reposted row in June: not a head


def test_shipped_catalog_covers_every_release_to_the_source_month():
    info = kb().catalog
    assert info is not None and info.date >= date(2026, 6, 1) and info.counts["cumulative"] > 500
    for pid, last in [("windows-10-22h2", "2026-06"), ("windows-11-24h2", "2026-06"), ("windows-server-2025", "2026-06"),
                      ("windows-server-2016", "2026-06"), ("windows-7-sp1", "2023-01"), ("windows-server-2012-r2", "2026-06")]:
        chain = query.chain_of(pid)
        assert chain and chain[-1].released.isoformat().startswith(last), (pid, chain[-1])
    months = {f.released.strftime("%Y-%m") for f in query.chain_of("windows-7-sp1") if f.released >= date(2017, 3, 1)}
    assert len(months) == 71  # every month March 2017 - January 2023


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(UPDATES)))
def test_every_supersedence_chain_ends_and_every_reference_exists(start):
    seen, frontier = set(), [start]
    while frontier:
        cur = frontier.pop()
        assert cur in UPDATES, f"{cur} is referenced but not in the catalog"
        if cur in seen:
            continue
        seen.add(cur)
        assert len(seen) <= len(UPDATES)
        for old in UPDATES[cur]["supersedes"]:
            assert UPDATES[old]["released"] <= UPDATES[cur]["released"], (cur, old)  # nothing supersedes a later update
            frontier.append(old)
    assert catalog.find_cycle({k: u["supersedes"] for k, u in UPDATES.items()}) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=60))
def test_cycle_finder_agrees_with_a_topological_sort(edges):
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(f"KB{a}", []).append(f"KB{b}")
    indeg = {n: 0 for n in set(graph) | {x for v in graph.values() for x in v}}
    for v in graph.values():
        for x in v:
            indeg[x] += 1
    queue = [n for n, d in indeg.items() if d == 0]
    done = 0
    while queue:
        n = queue.pop()
        done += 1
        for x in graph.get(n, ()):
            indeg[x] -= 1
            if indeg[x] == 0:
                queue.append(x)
    cycle = catalog.find_cycle(graph)
    assert (cycle is not None) == (done < len(indeg))
    if cycle:
        assert cycle[0] == cycle[-1] and all(b in graph[a] for a, b in zip(cycle, cycle[1:]))


def test_kb_info_prints_date_source_and_counts(tmp_path):
    run = cli("kb", "info", env={"SMBSENTRY_KB_DIR": str(tmp_path)})
    assert run.returncode == 0
    assert f"update catalog of {SHIPPED['date']}" in run.stdout and "monthly rollups" in run.stdout and "BSD-3-Clause" in run.stdout


def test_kb_update_loads_a_newer_export_and_refuses_bad_ones(tmp_path):
    env = {"SMBSENTRY_KB_DIR": str(tmp_path / "kb")}
    newer = dict(SHIPPED, date="2099-01-31", updates=SHIPPED["updates"] + [
        {"kb": "KB9999991", "kind": "cumulative", "released": "2099-01-13", "products": ["windows-11-24h2"], "architectures": ["x64"],
         "supersedes": [SHIPPED["updates"][-1]["kb"]]}])
    (tmp_path / "newer.json").write_text(json.dumps(newer), "utf-8")
    run = cli("kb", "update", str(tmp_path / "newer.json"), env=env)
    assert run.returncode == 0 and "update catalog of 2099-01-31 installed" in run.stdout
    assert "update catalog of 2099-01-31" in cli("kb", "info", env=env).stdout
    again = cli("kb", "update", str(tmp_path / "newer.json"), env=env)
    assert again.returncode == 2 and "is not newer than the one in use (2099-01-31)" in again.stderr
    broken = dict(newer, date="2099-02-28", updates=newer["updates"] + [
        {"kb": "KB9999992", "kind": "cumulative", "released": "2099-02-10", "products": ["windows-11-24h2"], "architectures": ["x64"],
         "supersedes": ["KB9999993"]}])
    (tmp_path / "broken.json").write_text(json.dumps(broken), "utf-8")
    bad = cli("kb", "update", str(tmp_path / "broken.json"), env=env)
    assert bad.returncode == 2 and "supersedes KB9999993, which is not in the catalog" in bad.stderr and bad.stderr.count("\n") == 1
    (tmp_path / "junk.json").write_text("{not json", "utf-8")
    junk = cli("kb", "update", str(tmp_path / "junk.json"), env=env)
    assert junk.returncode == 2 and "invalid JSON" in junk.stderr
    assert "update catalog of 2099-01-31" in cli("kb", "info", env=env).stdout  # the good one stays


# (product, OS name, build, the vulnerability, an update from before the fix, the fixing update, an update years later)
POINTS = [
    ("windows-7-sp1", "Microsoft Windows 7 Professional", 7601, "ms17-010", "KB3212646", "KB4012215", "KB4534310"),
    ("windows-server-2008-r2-sp1", "Microsoft Windows Server 2008 R2 Standard", 7601, "ms17-010", "KB3212646", "KB4012215", "KB4534310"),
    ("windows-8.1", "Microsoft Windows 8.1 Pro", 9600, "ms17-010", "KB3205401", "KB4012216", "KB4534297"),
    ("windows-server-2012", "Microsoft Windows Server 2012 Standard", 9200, "ms17-010", "KB3205409", "KB4012217", "KB4534283"),
    ("windows-server-2012-r2", "Microsoft Windows Server 2012 R2 Standard", 9600, "ms17-010", "KB3205401", "KB4012216", "KB4534297"),
    ("windows-10-1507", "Microsoft Windows 10 Enterprise 2015 LTSB", 10240, "ms17-010", "KB3192440", "KB4012606", "KB4534306"),
    ("windows-10-1511", "Microsoft Windows 10 Pro", 10586, "ms17-010", "KB3192441", "KB4013198", "KB4103728"),
    ("windows-10-1607", "Microsoft Windows 10 Enterprise 2016 LTSB", 14393, "ms17-010", "KB3194798", "KB4013429", "KB4534271"),
    ("windows-10-1903", "Microsoft Windows 10 Pro", 18362, "cve-2020-0796", "KB4540673", "KB4551762", "KB4592449"),
    ("windows-10-1909", "Microsoft Windows 10 Pro", 18363, "cve-2020-0796", "KB4540673", "KB4551762", "KB5013945"),
]


@pytest.mark.parametrize("pid, name, build, vuln, before, fixing, later", POINTS)
def test_verdicts_before_the_fix_the_fixing_month_and_years_later(pid, name, build, vuln, before, fixing, later):
    def verdict(kbs):
        facts = HostFacts(host="H", os_name=name, build=build, architecture="x64", installed_kbs=list(kbs))
        v = next(v for v in evaluate(facts, as_of=date(2026, 6, 30), ids=[vuln]))
        assert facts.product == pid
        return v

    v = verdict([before])
    assert v.status == "missing" and f"the newest installed, {before}" in v.evidence and fixing in v.evidence
    assert any(x.get("kb") == fixing for x in v.fix)
    v = verdict([before, fixing])
    assert (v.status, v.evidence.startswith(f"{fixing} (")) == ("patched", True)
    v = verdict([later])  # only the later update is listed: the chain decides
    direct = {f.kb for f in kb().by_bulletin[query.vulnerability(vuln).bulletin] if pid in f.products}
    assert v.status == "patched" and v.evidence.startswith(f"{later} (") and any(k in v.evidence for k in direct)


def test_security_only_decides_its_own_month_only():
    def verdict(kbs):
        return evaluate(HostFacts(host="H", os_name="Microsoft Windows 7 Enterprise", build=7601, service_pack=1, installed_kbs=kbs),
                        ids=["ms17-010"])[0]

    assert verdict(["KB4012212"]).status == "patched"  # March 2017 security-only: the fixing month
    later = verdict(["KB4534314"])  # January 2020 security-only
    assert later.status == "missing"


def test_a_fix_from_before_the_rollups_is_unknown_when_only_rollups_are_listed():
    facts = HostFacts(host="DC1", os_name="Microsoft Windows Server 2012 R2 Standard", build=9600, domain_controller=True,
                      installed_kbs=["KB2919355", "KB4534297"])
    v = evaluate(facts, ids=["ms14-068"])[0]
    assert v.status == "unknown" and "KB3011780" in v.evidence and "does not say" in v.evidence


@pytest.mark.parametrize("change, message", [
    ({"kind": "weekly"}, ".kind: 'weekly' is not one of"), ({"kb": "4012215"}, ".kb: '4012215' is not KB"),
    ({"products": []}, ".products: [] is not a valid list"), ({"builds": {"x": 1}}, ".builds:"), ({"extra": 1}, "keys must be"),
])
def test_malformed_updates_are_refused_naming_the_place(tmp_path, change, message):
    doc = json.loads(json.dumps(SHIPPED))
    doc["updates"][5].update(change)
    (tmp_path / "c.json").write_text(json.dumps(doc), "utf-8")
    with pytest.raises(catalog.CatalogError) as exc:
        catalog.read(tmp_path / "c.json")
    assert "$.updates[5]" in str(exc.value) and message in str(exc.value)
