"""The plan on the `make demo` lab: every rule of the planner against real scan results.

The lab serves its 19 profiles (the default mix, as `make demo` does) on one
port of 127.78.0.1-19; the real CLI scans them with the default checks and
plans the result. Each assertion names the profile it is about, found through
the lab's manifest (address -> profile).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "smbsentry.cli"]
RANGE, FIRST, PORT = "127.78.0.1-19", "127.78.0.1", "44470"


@pytest.fixture(scope="module")
def lab_plan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan-lab")
    manifest = tmp / "manifest.json"
    lab = subprocess.Popen([sys.executable, "-m", "smbsentry.lab", RANGE, "--port", PORT, "--manifest", str(manifest)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((FIRST, int(PORT)), timeout=0.5).close()
                if manifest.exists():
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or lab.poll() is not None:
                pytest.fail(f"the lab did not start: {lab.stderr.read() if lab.poll() is not None else 'timeout'}")
            time.sleep(0.1)
        scan = tmp / "scan.json"
        r = subprocess.run([*CLI, "scan", RANGE, "--ports", PORT, "--timeout", "2", "--format", "json", "-o", str(scan),
                            "--no-store", "-q"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    finally:
        lab.terminate()
        lab.wait(10)
    out = tmp / "plan"
    r = subprocess.run([*CLI, "plan", str(scan), "-o", str(out), "--no-store"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    profiles = {addr: entry["profile"] for addr, entry in json.loads(manifest.read_text()).items()}
    plan = json.loads((out / "plan.json").read_text("utf-8"))
    by_profile = {profiles[h["address"]]: h for h in plan["hosts"] if h["address"] in profiles}
    return {"plan": plan, "hosts": by_profile, "out": out, "profiles": profiles}


def steps(host: dict) -> list[str]:
    return [s["id"] for s in host["steps"]]


def test_implanted_host_is_first(lab_plan):
    first = lab_plan["plan"]["actions"][0]
    assert first["category"] == "isolate-now" and lab_plan["profiles"][first["address"]] == "win7-doublepulsar"
    assert lab_plan["plan"]["hosts"][0]["address"] == first["address"]


def test_ranked_order(lab_plan):
    ranks = [a["rank"] for a in lab_plan["plan"]["actions"]]
    assert ranks == sorted(ranks)
    vulnerable = {lab_plan["profiles"][a["address"]] for a in lab_plan["plan"]["actions"] if a["category"] == "vulnerable"}
    assert {"win7-sp1-unpatched", "winxp-sp3", "win2003-sp2", "win2012r2-unpatched"} <= vulnerable


def test_locked_down_host_keeps_its_server_service_and_its_unknowns(lab_plan):
    h = lab_plan["hosts"]["win2008r2-locked"]
    order = steps(h)
    assert "stop-server-service" not in order and "block-smb-firewall" not in order
    assert "server-service-choice" in order
    verify = [s for s in h["steps"] if s["id"] == "verify"]
    assert verify and "ms17-010" in verify[0]["findings"] and "--user" in verify[0]["text"]
    assert any(a["address"] == h["address"] and a["category"] == "verify" for a in lab_plan["plan"]["actions"])


@pytest.mark.parametrize("profile", ["silent", "garbage", "reset-after-negotiate"])
def test_broken_hosts_are_never_nothing_to_do(lab_plan, profile):
    h = lab_plan["hosts"][profile]
    assert h["category"] != "clean" and "verify" in steps(h)
    assert any(a["address"] == h["address"] for a in lab_plan["plan"]["actions"])
    md = (lab_plan["out"] / "plan.md").read_text("utf-8")
    clean = md.split("## 6.")[1]
    assert h["address"] not in clean


def test_smb1_off_hosts_are_not_left_unknown_for_ms17_010(lab_plan):
    for profile in ("win10-22h2", "win2019", "win2022-signing-required"):
        h = lab_plan["hosts"][profile]
        assert "ms17-010" not in h["needs"] and not any("ms17-010" in s["findings"] for s in h["steps"] if s["id"] == "verify")


def test_backup_gate_in_every_script_with_a_disruptive_step(lab_plan):
    out = lab_plan["out"]
    plan = lab_plan["plan"]
    gated = 0
    for g in plan["groups"]:
        members = [h for h in plan["hosts"] if h["address"] in g["hosts"] or h["key"] in g["hosts"]]
        apply = (out / g["files"][0]).read_text(encoding="utf-8-sig", errors="replace")
        disruptive = [s for s in members[0]["steps"] if s.get("disrupts") and s.get("scripted")]
        if not disruptive or not any(s["id"] == "backup" for s in members[0]["steps"]):
            continue
        gated += 1
        gate = apply.index("SMBSENTRY_BACKUP_DONE")
        first = min(apply.index(f"step {n}: {s['id']}") for n, s in enumerate(members[0]["steps"], 1)
                    if s.get("disrupts") and s.get("scripted") and f"step {n}: {s['id']}" in apply)
        assert gate < first, g["name"]
    assert gated >= 2


def test_hosts_planned_while_the_scan_runs_give_the_plan_made_after_it(lab_plan, tmp_path, monkeypatch):
    """respond plans each host as the scan reports it (app/ahead.py); the plan after the scan takes those only for
    an unchanged view. The lab's real records, followed line by line as respond's writer reads them: every host
    is taken from what was read ahead, in both languages, and the plan is the one planning everything after the
    scan gives. A host whose view an inventory changed is planned again (its conflict step is there)."""
    from smbsentry.app.ahead import PlanAhead
    from smbsentry.app.follow import ScanFollower
    from smbsentry.remediate import planner
    from smbsentry.remediate.hosts import collect_hosts

    data = json.loads((lab_plan["out"].parent / "scan.json").read_text("utf-8"))
    records = data["hosts"] if isinstance(data, dict) else data
    path = tmp_path / "scan.jsonl"
    ahead = PlanAhead(ScanFollower(path), ("en", "zh"))
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            ahead.idle()
    while ahead.idle():  # the writer's steps while it waits: a few hosts planned or a few records read each
        pass
    ahead.follower.finish()
    made = []
    real = planner.plan_host
    monkeypatch.setattr(planner, "plan_host", lambda *a, **k: made.append(a[0].key) or real(*a, **k))
    for lang in ("en", "zh"):
        got = planner.plan([], lang, views=collect_hosts(records), ready=ahead.ready(lang)).to_dict()
        assert made == [], f"{lang}: hosts planned again although their views did not change: {made}"
        assert got == planner.plan(records, lang).to_dict()
        made.clear()
    # with the SMB1 traffic `detect --store` recorded (read before the scan ends, as respond does): a client of
    # one host, and the captures every host's view names; still nothing planned again, and the same plan
    smb1_host = next(r for r in records if lab_plan["profiles"].get(r["address"]) == "win7-sp1-unpatched")
    usage = [{"kind": "smb1-usage", "address": smb1_host["address"],
              "smb1_usage": {"clients": [{"client": "127.0.0.99", "dialect": "NT LM 0.12", "last_seen": "2026-12-01T10:00:00Z"}],
                             "captures": ["floor3.pcap"], "span": ["2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"]}}]
    ahead = PlanAhead(ScanFollower(path), ("en",))
    ahead.usage = usage
    ahead.add(records)
    made.clear()
    got = planner.plan([], "en", views=collect_hosts(records + usage), ready=ahead.ready("en"))
    assert made == [] and got.to_dict() == planner.plan(records + usage, "en").to_dict()
    assert "upgrade-smb1-clients" in steps(next(h for h in got.to_dict()["hosts"] if h["address"] == smb1_host["address"]))
    # an inventory that disagrees with the scan about one host: that host alone is planned again
    win7 = next(r for r in records if lab_plan["profiles"].get(r["address"]) == "win7-sp1-unpatched")
    inventory = {"host": (win7.get("identity") or {}).get("netbios_name") or "W7", "address": win7["address"],
                 "facts": {"os_name": "Microsoft Windows 7 Professional", "build": 7601, "service_pack": 1,
                           "installed_kbs": ["KB4012212"]},
                 "verdicts": [{"id": "ms17-010", "status": "patched", "evidence": "KB4012212 installed", "fix": None}]}
    ahead = PlanAhead(ScanFollower(path), ("en",))
    ahead.add(records)
    made.clear()
    got = planner.plan([], "en", views=collect_hosts(records + [inventory]), ready=ahead.ready("en"))
    assert made == [win7["address"]]
    assert got.to_dict() == planner.plan(records + [inventory], "en").to_dict()
    assert "resolve-conflict" in steps(next(h for h in got.to_dict()["hosts"] if h["address"] == win7["address"]))


def test_a_plan_made_for_a_page_only_gives_the_same_page(lab_plan):
    """respond's second-language report is made from a plan without its scripts (scripts=False): the page
    shows steps and fixes, never the scripts, so it must be the page the full plan gives."""
    from smbsentry.remediate import planner
    from smbsentry.report import html

    data = json.loads((lab_plan["out"].parent / "scan.json").read_text("utf-8"))
    records = data["hosts"] if isinstance(data, dict) else data
    for lang in ("en", "zh"):
        full, page = planner.plan(records, lang), planner.plan(records, lang, scripts=False)
        assert all(g.apply for g in full.groups) and not any(g.apply or g.rollback for g in page.groups)
        cut = lambda text: text.split("</h1>", 1)[1].split("</p>", 1)[1]  # noqa: E731 - past the generated time
        assert cut(html.render(records, lang=lang, plan=page)) == cut(html.render(records, lang=lang, plan=full))


def test_the_page_from_parts_made_while_the_scan_ran_is_the_same_page(lab_plan, monkeypatch):
    """respond makes each record's share of the HTML report as the record comes (report.view.Pieces); the page
    built from them must be the page built from the records, and a part is only taken for the very record it
    was made from (a changed record is read again)."""
    import copy
    from smbsentry.report import html, view

    data = json.loads((lab_plan["out"].parent / "scan.json").read_text("utf-8"))
    records = data["hosts"] if isinstance(data, dict) else data
    cut = lambda text: text.split("</h1>", 1)[1].split("</p>", 1)[1]  # noqa: E731 - past the generated time
    for lang in ("en", "zh"):
        made = {r["address"]: (r, view.pieces(r, lang)) for r in records}
        want = cut(html.render(records, lang=lang))
        read = []
        real = view.finding_entries
        monkeypatch.setattr(view, "finding_entries", lambda h, lg: read.append(h["address"]) or real(h, lg))
        assert cut(html.render(records, lang=lang, pieces=made)) == want and read == []
        other = copy.deepcopy(records)  # equal records, other objects: their parts are not taken
        assert cut(html.render(other, lang=lang, pieces=made)) == want and len(read) == len(records)
        monkeypatch.undo()
