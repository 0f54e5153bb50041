"""Real-world audit cases: each asserts the verdict and the evidence that decided it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from smbsentry.audit import AuditResult, HostFacts, audit_files, evaluate, render_audit

INV = Path(__file__).parent / "data" / "inventories"
AS_OF = date(2026, 1, 1)


def facts(os_name, kbs=None, **kw) -> HostFacts:
    f = HostFacts(os_name=os_name, **kw)
    if kbs is not None:
        f.add_kbs(kbs)
    return f


def verdict(f: HostFacts, fid: str):
    return next(v for v in evaluate(f, as_of=AS_OF, ids=[fid]))


@pytest.fixture(scope="module")
def run():
    return audit_files(sorted(INV.iterdir()), as_of=AS_OF)


def host(run, name) -> AuditResult:
    return next(r for r in run.results if r.host == name)


def test_windows_7_sp1_with_only_the_security_only_update(run):
    v = host(run, "WS-FIN-03").verdict("ms17-010")
    assert (v.status, v.evidence, v.fix) == ("patched", "KB4012212 (2017-03 security-only update) is installed and fixes MS17-010", None)


def test_windows_7_with_a_2018_rollup_and_no_march_2017_update(run):
    v = host(run, "WIN7-PC").verdict("ms17-010")
    assert v.status == "patched"
    assert v.evidence == ("KB4103718 (2018-05 monthly rollup) supersedes KB4093118, which supersedes KB4088875, "
                          "and so on through 11 more updates to KB4012215")


def test_contract_example_rollup_chain_from_two_files(run):
    r = host(run, "WS-FIN-07")  # OS from hosts.csv, updates from Get-HotFix JSON
    assert r.source == "gethotfix-ws-fin-07.json, hosts.csv"
    v = r.verdict("ms17-010")
    assert (v.status, v.evidence) == ("patched", "KB4019264 (2017-05 monthly rollup) supersedes KB4015549, which supersedes KB4012215")


def test_1909_at_719_is_missing_with_the_fix(run):
    v = host(run, "DESK-1909").verdict("cve-2020-0796")
    assert (v.status, v.evidence) == ("missing", "OS build 18363.719 is below 18363.720 (KB4551762)")
    assert [x["kb"] for x in v.fix] == ["KB4551762"]
    assert v.fix[0]["note"] == "or any later cumulative update of Windows 10 1909"


def test_1909_at_720_is_patched_by_build_revision(run):
    v = host(run, "DESK-1909B").verdict("cve-2020-0796")
    assert (v.status, v.evidence, v.fix) == ("patched", "OS build 18363.720 is at or above 18363.720 (KB4551762)", None)


def test_2012_r2_with_the_april_rollup(run):
    r = host(run, "SRV-APP-12")  # systeminfo (UTF-8) + Get-HotFix CSV
    v = r.verdict("ms17-010")
    assert (v.status, v.evidence) == ("patched", "KB4015550 (2017-04 monthly rollup) supersedes KB4012216")


def test_xp_with_the_emergency_update(run):
    r = host(run, "POS-XP-01")
    v = r.verdict("ms17-010")
    assert (v.status, v.evidence) == ("patched", "KB4012598 (2017-05 security update) is installed and fixes MS17-010")
    assert r.verdict("eclipsedwing").evidence == "KB958644 (2008-10 security update) is installed and fixes MS08-067"
    assert r.verdict("erraticgopher").status == "missing"
    assert r.verdict("eol-os").evidence == "Windows XP SP3: extended support ended 2014-04-08"


def test_2008_r2_without_sp1_needs_sp1_first(run):
    v = host(run, "SRV-LEGACY-08").verdict("ms17-010")
    assert v.status == "missing"
    assert v.evidence == ('none of the 2 installed updates fixes MS17-010 on Windows Server 2008 R2; Windows Server 2008 R2 has no update '
                          'for MS17-010 ("update not applicable"): install SP1 (KB976932) first, then KB4012212 or KB4012215')
    assert [(x["kb"], [p["kb"] for p in x["prerequisites"]]) for x in v.fix] == [("KB4012212", ["KB976932"]), ("KB4012215", ["KB976932"])]
    assert v.fix[0]["files"] == ["windows6.1-kb4012212-x64_2decefaa02e2058dcd965702509a992d8c4e92b3.msu"]


def test_windows_10_1607_with_a_2019_cumulative_update(run):
    r = host(run, "LTSB-1607")  # hosts.csv (build 14393.2906) + wmic qfe (UTF-16)
    v = r.verdict("ms17-010")
    # the installed cumulative update decides (with its supersedence chain) before the build revision would
    assert (v.status, v.evidence) == ("patched", "KB4493470 (2019-04 cumulative update) supersedes KB4489882, which supersedes KB4487026, "
                                                 "and so on through 21 more updates to KB4013429")
    assert r.facts.installed_kbs == ["KB3199986", "KB4132216", "KB4493470", "KB4494175"]


def test_8_1_batch_host_and_errors_do_not_drop_hosts(run):
    assert host(run, "WS-OK-01").verdict("ms17-010").evidence == "KB4012213 (2017-03 security-only update) is installed and fixes MS17-010"
    assert len(run.results) == 10 and len(run.errors) == 4


def test_later_security_only_update_is_not_a_fix():
    f = facts("Microsoft Windows 7 Enterprise", ["KB4015546", "KB4019263"], service_pack=1, build=7601)
    v = verdict(f, "ms17-010")
    assert (v.status, v.evidence) == ("missing", "none of the 2 installed updates fixes MS17-010 on Windows 7 SP1")


def test_newer_unknown_updates_make_it_unknown_not_missing():
    f = facts("Microsoft Windows Server 2012 R2 Standard", ["KB2919355", "KB5999999"], build=9600)
    v = verdict(f, "ms17-010")
    assert v.status == "unknown" and "KB5999999 is newer than the update catalog (20" in v.evidence
    # an update the catalog knows decides instead: the 2018-01 rollup carries MS17-010
    assert verdict(facts("Microsoft Windows Server 2012 R2 Standard", ["KB2919355", "KB4056895"], build=9600), "ms17-010").status == "patched"


def test_ubr_alone_is_not_proof_on_8_1_and_older():
    f = facts("Microsoft Windows Server 2012 R2 Standard", ["KB2919355"], build=9600, ubr=18969)
    v = verdict(f, "ms17-010")
    assert v.status == "missing" and "the build revision (18969) is not proof on Windows Server 2012 R2" in v.evidence


def test_file_version_decides_when_nothing_else_does():
    f = facts("Microsoft Windows Vista Business", None, service_pack=2, build=6002, file_versions={"srv.sys": "6.0.6002.24067"})
    v = verdict(f, "ms17-010")
    assert (v.status, v.evidence) == ("patched", "srv.sys 6.0.6002.24067 is at or above 6.0.6002.24067 (LDR) (KB4012598)")


def test_no_inventory_of_updates_is_unknown():
    v = verdict(facts("Microsoft Windows 7 Professional", None, service_pack=1), "ms17-010")
    assert (v.status, v.evidence) == ("unknown", "the inventory lists no installed updates, no build revision and no srv.sys version")


def test_no_os_is_unknown_and_not_affected_is_not_applicable():
    assert verdict(HostFacts(host="x", installed_kbs=["KB4012212"]), "ms17-010").evidence.startswith("the inventory has no OS name")
    v = verdict(facts("Microsoft Windows 10 Pro", [], build=17763), "ms17-010")
    assert v.status == "not_applicable" and v.evidence.startswith("Windows 10 1809 is not affected by MS17-010")
    v = verdict(facts("Microsoft Windows Server 2019 Standard", [], build=17763), "cve-2020-0796")
    assert v.status == "not_applicable"


def test_eskimoroll_depends_on_the_domain_controller_role():
    dc = facts("Microsoft Windows Server 2008 R2 Enterprise", ["KB3011780"], service_pack=1, domain_controller=True)
    assert verdict(dc, "eskimoroll").evidence == "KB3011780 (2014-11 security update) is installed and fixes MS14-068"
    member = facts("Microsoft Windows Server 2008 R2 Enterprise", [], service_pack=1, domain_controller=False)
    assert verdict(member, "eskimoroll").status == "not_applicable"


def test_workarounds_settle_unpatchable_modules_and_configuration():
    xp = facts("Microsoft Windows XP Professional", ["KB4012598"], service_pack=3, smb_device_enabled=False, rdp_enabled=True)
    assert verdict(xp, "erraticgopher").evidence == "no update exists for Windows XP SP3; the workaround is in place: SMBDeviceEnabled=0"
    es = verdict(xp, "esteemaudit")
    assert es.status == "missing" and [x["action"] for x in es.fix][:2] == ["upgrade-os", "disable-remote-desktop"]
    assert verdict(xp, "smbv1-enabled").evidence == "SMB (SMB1 only on this system) is off: SMBDeviceEnabled=0"
    w7 = facts("Windows 7 SP1", ["KB4012212"], smb1_server=True, wannacry_indicators=["mssecsvc.exe"])
    v = verdict(w7, "smbv1-enabled")
    assert v.status == "missing" and [x["action"] for x in v.fix] == ["disable-smb1-registry"]
    assert verdict(w7, "ms17-010").evidence.endswith("; WannaCry indicators present: mssecsvc.exe (host compromised)")


def test_applications_and_samba():
    f = facts("Microsoft Windows Server 2008 R2", [], service_pack=1, software={"IBM Lotus Domino": "8.5.3", "Microsoft Exchange Server 2007": "8.3"})
    assert verdict(f, "emphasismine").status == "missing"
    assert verdict(f, "englishmansdentist").evidence.startswith("Microsoft Exchange Server 2007 8.3")
    assert verdict(f, "easybee").status == "not_applicable"
    assert verdict(facts("Windows 7 SP1", []), "easybee").status == "unknown"
    samba = HostFacts(host="nas", samba_version="4.5.9")
    v = verdict(samba, "cve-2017-7494")
    assert (v.status, v.evidence) == ("missing", "Samba 4.5.0 <= 4.5.9 < 4.5.10")


def test_serialises_exactly_as_the_contract(run):
    d = json.loads(render_audit([host(run, "WS-FIN-07")], "json"))[0]
    assert list(d) == ["host", "address", "source", "facts", "verdicts"]
    assert list(d["facts"])[:8] == ["os_name", "os_version", "service_pack", "build", "ubr", "architecture", "installed_kbs", "smb1_server"]
    assert d["facts"]["installed_kbs"] == ["KB2479943", "KB4019264"] and d["facts"]["service_pack"] == 1
    assert all(list(v) == ["id", "status", "evidence", "fix"] for v in d["verdicts"])
    assert {v["status"] for v in d["verdicts"]} <= {"patched", "missing", "not_applicable", "unknown"}
    lines = render_audit(run.results, "jsonl").splitlines()
    assert len(lines) == len(run.results) and json.loads(lines[0])["host"] == run.results[0].host


def test_table_lists_problems_first_and_errors():
    r = audit_files([INV / "systeminfo-2008r2-rtm-utf16.txt", INV / "unknown-format.txt"], as_of=AS_OF)
    text = render_audit(r.results, "table", r.errors)
    assert text.splitlines()[0].startswith("host") and "SRV-LEGACY-08" in text
    assert "-> KB4012212, KB4012215" in text and "error: " in text
    with pytest.raises(ValueError):
        render_audit(r.results, "xml")


def test_service_pack_assumption_is_said():
    f = facts("Microsoft Windows XP Professional", ["KB4012598"], build=2600)
    v = verdict(f, "ms17-010")
    assert v.evidence == "KB4012598 (2017-05 security update) is installed and fixes MS17-010 (service pack not given: assumed SP3)"
