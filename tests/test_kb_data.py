"""The knowledge-base data files: schema, references, coverage, and the legacy loaders' results."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from importlib import resources
from pathlib import Path

import pytest

from smbsentry.kb import builds, findings, lifecycle, query
from smbsentry.kb.store import KbDataError, kb, load, read, seals

DATA = Path(str(resources.files("smbsentry.kb").joinpath("data")))
CONTRACT_IDS = ["ms17-010", "doublepulsar", "cve-2020-0796", "smbv1-enabled", "smb-signing-not-required", "smb-null-session", "smb-guest-access",
                "ms08-067", "ms09-050", "ms10-061", "cve-2017-7494", "eol-os"]
SHADOW_BROKERS = {"easybee": "易之蜂针", "easypi": "易之远控", "eclipsedwing": "日食之翼", "educatedscholar": "文雅学者", "emeraldthread": "翡翠纤维",
                  "emphasismine": "地域之雷", "englishmansdentist": "恐怖牙医", "erraticgopher": "古怪地鼠", "eskimoroll": "爱斯基摩卷",
                  "esteemaudit": "尊重审查", "eternalromance": "永恒浪漫", "eternalsynergy": "永恒协作", "ewokfrenzy": "星际流氓",
                  "explodingcan": "爆炸之罐", "zippybeer": "夺命之酒", "eternalblue": "永恒之蓝", "doublepulsar": "双脉冲星", "eternalchampion": "永恒王者"}


@pytest.fixture
def data_copy(tmp_path):
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target


def edit(directory: Path, name: str, change) -> None:
    path = directory / name
    doc = json.loads(path.read_text("utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")


def test_packaged_data_loads_and_validates():
    data = load(DATA)
    assert len(data.fixes) > 80 and len(data.products) > 50 and len(data.actions) > 20


def test_packaged_data_is_sealed_and_start_up_skips_only_the_schema_check():
    """The seals match the files as shipped (else: python scripts/seal_kb_data.py), and a fresh process loads the packaged
    knowledge base without importing jsonschema."""
    root = Path(__file__).resolve().parent.parent
    check = subprocess.run([sys.executable, str(root / "scripts" / "seal_kb_data.py"), "--check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    code = "import sys; from smbsentry.kb.store import kb; k = kb(); print(len(k.fixes), 'jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert int(out[0]) == len(kb().fixes) and out[1] == "False"


def test_a_file_that_no_longer_matches_its_seal_is_checked_in_full(data_copy):
    sealed = seals(data_copy)
    assert set(sealed) == {"sources.json", "products.json", "fixes.json", "vulnerabilities.json", "actions.json", "builds.json", "catalog.json",
                           "update_files.json", "remediation.json", "services.json", "osnames.json"}
    assert read(data_copy, "fixes.json", sealed)["fixes"]  # unchanged: read without the schema check
    edit(data_copy, "fixes.json", lambda d: d["fixes"][3].__setitem__("kind", "weekly"))
    with pytest.raises(KbDataError, match=r"^fixes.json: \$.fixes\[3\].kind: 'weekly' is not one of"):
        read(data_copy, "fixes.json", sealed)


def test_invalid_json_names_file_and_line(data_copy):
    text = (data_copy / "fixes.json").read_text("utf-8").split("\n")
    text[5] = text[5].rstrip(",") + ",,"
    (data_copy / "fixes.json").write_text("\n".join(text), "utf-8")
    with pytest.raises(KbDataError) as exc:
        load(data_copy)
    assert str(exc.value).startswith("fixes.json: line 6 column")


def test_schema_violation_names_file_and_path(data_copy):
    edit(data_copy, "fixes.json", lambda d: d["fixes"][3].__setitem__("kind", "weekly"))
    with pytest.raises(KbDataError) as exc:
        load(data_copy)
    assert str(exc.value).startswith("fixes.json: $.fixes[3].kind: 'weekly' is not one of")


def test_missing_source_is_refused(data_copy):
    edit(data_copy, "products.json", lambda d: d["products"][0].pop("source"))
    with pytest.raises(KbDataError, match=r"products\.json: \$\.products\[0\]: 'source' is a required property"):
        load(data_copy)


@pytest.mark.parametrize("name, change, message", [
    ("fixes.json", lambda d: d["fixes"][8]["supersedes"].append("KB1234567"), r"fixes\.json: \$\.fixes\[8\]\.supersedes\[\d\]: supersedes unknown update KB1234567"),
    ("fixes.json", lambda d: d["fixes"][0].__setitem__("source", ["nowhere"]), r"fixes\.json: \$\.fixes\[0\]\.source\[0\]: unknown source 'nowhere'"),
    ("vulnerabilities.json", lambda d: d["findings"]["ms17-010"]["workarounds"].append("pray"), r"\$\.findings\.ms17-010\.workarounds\[\d+\]: unknown action 'pray'"),
    ("vulnerabilities.json", lambda d: d["findings"]["ms17-010"]["affected"][0]["products"].append("windows-95"), r"unknown product 'windows-95'"),
    ("builds.json", lambda d: d["builds"][0]["products"].append("OS/2 Warp"), r"builds\.json: \$\.builds\[0\]\.products\[1\]: product 'OS/2 Warp' is not in products\.json"),
    ("builds.json", lambda d: d["samba"].__setitem__("native_lm", "Samba [0-9"), r"builds\.json: \$\.samba\.native_lm: not a regular expression"),
    ("builds.json", lambda d: d["samba"].__setitem__("native_lm", "Samba"), r"builds\.json: \$\.samba\.native_lm: the pattern needs a group"),
    ("remediation.json", lambda d: d["families"]["windows-nt6.1"].__setitem__("smb1_action", "pray"),
     r"remediation\.json: \$\.families\.windows-nt6\.1\.smb1_action: unknown action 'pray'"),
    ("remediation.json", lambda d: d["findings"]["cve-2020-0796"]["steps"][0].__setitem__("action", "pray"), r"unknown action 'pray'"),
    ("remediation.json", lambda d: d["settle"].__setitem__("ms17-011", {"how": "settle-session", "source": "checks-md"}),
     r"remediation\.json: \$\.settle\.ms17-011: unknown finding 'ms17-011'"),
    ("remediation.json", lambda d: d["hardening"]["smb-null-session"].__setitem__("source", "nowhere"), r"unknown source 'nowhere'"),
    ("remediation.json", lambda d: d["installer_exit_codes"].append(dict(d["installer_exit_codes"][0])),
     r"remediation\.json: \$\.installer_exit_codes: an exit code is listed twice"),
    ("remediation.json", lambda d: d["installer_exit_codes"][1].__setitem__("source", "nowhere"),
     r"remediation\.json: \$\.installer_exit_codes\[1\]\.source: unknown source 'nowhere'"),
    ("remediation.json", lambda d: d["installer_exit_codes"][2].__setitem__("meaning", "it's %PATH%"), r"does not match"),
    ("osnames.json", lambda d: d["lines"]["patterns"].append(["os/2", "OS/2 Warp"]),
     r"osnames\.json: \$\.lines\.patterns\[\d+\]\[1\]: no product line 'OS/2 Warp'"),
    ("osnames.json", lambda d: d["architectures"]["words"][0].__setitem__(0, "(x64"),
     r"osnames\.json: \$\.architectures\.words\[0\]\[0\]: not a regular expression"),
    ("services.json", lambda d: d["services"]["http"]["ports"].append(3389), r"services\.json: \$\.services\.http\.ports\[1\]: port 3389 is already listed under 'rdp'"),
])
def test_broken_references_fail_loudly(data_copy, name, change, message):
    edit(data_copy, name, change)
    with pytest.raises(KbDataError, match=message):
        load(data_copy)


def test_every_entry_names_a_known_source():
    data = kb()
    entries = [*data.products.values(), *data.fixes.values(), *data.vulns.values(), *data.actions.values(), *data.rules]
    assert all(e.source and all(s in data.sources for s in e.source) for e in entries)
    assert all(fr.source for f in data.fixes.values() for fr in f.files)


def test_every_finding_id_of_the_contract_and_every_shadow_brokers_module():
    data = kb()
    for fid in CONTRACT_IDS:
        assert fid in data.vulns
    for fid, zh in SHADOW_BROKERS.items():
        v = data.vulns[fid]
        assert v.module.lower() == fid and v.module_zh == zh and v.ports and v.fix_text


def test_ms17_010_has_an_update_path_for_every_affected_product():
    v = query.vulnerability("ms17-010")
    for pid in v.affected_products:
        assert query.fixes_for("ms17-010", pid), pid


def test_knowledge_md_lists_are_all_fixes():
    """knowledge.md's 'any of these means fixed' lists, per product."""
    lists = {"windows-server-2012": "KB4012214 KB4012217 KB4019216 KB4012220 KB4015551 KB4015554",
             "windows-10-1507": "KB4012606 KB4015221 KB4016637 KB4019474",
             "windows-10-1511": "KB4013198 KB4015219 KB4016636 KB4019473",
             "windows-10-1607": "KB4013429 KB4015217 KB4015438 KB4016635 KB4019472"}
    for pid, kbs in lists.items():
        covers = query.covering_updates("MS17-010", pid)
        assert set(kbs.split()) <= covers.keys(), pid
    assert "KB4016871" not in query.covering_updates("MS17-010", "windows-10-1511")  # the 1703 update other lists misfile


def test_smbghost_fixed_builds_and_cves():
    assert query.fixed_build("cve-2020-0796", "windows-10-1909") == (18363, 720, "KB4551762")
    assert query.fixed_build("cve-2020-0796", "windows-server-1903") == (18362, 720, "KB4551762")
    assert query.fix("KB4556799").fixed_builds == {18362: 836, 18363: 836}


def test_legacy_meta_fields_unchanged():
    m = findings.meta("cve-2020-0796")
    assert m["fixed_ubr"] == 720 and m["severity"] == "critical" and m["cves"] == ["CVE-2020-0796"]
    assert findings.affected_build("ms08-067", "6.0", 6001) and not findings.affected_build("ms08-067", "6.1", 7601)
    assert findings.samba_affected("cve-2017-7494", "4.5.9-Debian") == (True, "4.5.0 <= 4.5.9-Debian < 4.5.10")
    assert findings.samba_affected("cve-2017-7494", "4.6.4") == (False, None)
    assert findings.meta("eternalblue")["title_zh"].startswith("永恒之蓝")
    with pytest.raises(KeyError):
        findings.meta("nope")


@pytest.mark.parametrize("name, end", [
    ("Windows XP", "2014-04-08"), ("Windows XP x64", "2014-04-08"), ("Windows Server 2003", "2015-07-14"), ("Windows Vista SP1", "2017-04-11"),
    ("Windows Server 2008", "2020-01-14"), ("Windows Server 2008 SP2", "2020-01-14"), ("Windows 7", "2020-01-14"), ("Windows 7 SP1", "2020-01-14"),
    ("Windows 8", "2016-01-12"), ("Windows 10 1507", "2025-10-14"), ("Windows 10 1607", "2026-10-13"), ("Windows Server 1909", "2021-05-11"),
    ("Windows 11 24H2", "2034-10-10"), ("Windows Server 2025", "2034-10-10"), ("Windows 2000", "2010-07-13"),
])
def test_lifecycle_dates_as_before(name, end):
    assert lifecycle.end_of_support(name) == date.fromisoformat(end)


def test_lifecycle_unknown_and_builds_lookup():
    assert lifecycle.end_of_support("OS/2 Warp") is None
    g = builds.lookup(6, 1, 7601)
    assert g.candidates == ("Windows 7 SP1", "Windows Server 2008 R2 SP1") and g.shared
    assert builds.lookup(6, 1, 0).implementation == "samba"
    for b in kb().builds["builds"]:
        for name in b["products"]:
            assert lifecycle.end_of_support(name) is not None, name


def test_remediation_data_names_texts_the_planner_has():
    """remediation.json's manual Samba steps and ways of settling an unknown are texts of remediate/texts.py, in both
    languages; every family a script is written for has a label, and every Windows family an SMB1 action."""
    from smbsentry.remediate.texts import TEXT

    rem = kb().remediation
    keys = [*rem.samba_manual.values(), *rem.settle.values()]
    assert keys and all(set(TEXT[k]) == {"en", "zh"} for k in keys)
    windows = {p.family for p in kb().products.values() if p.windows}
    assert windows <= set(rem.families) and all(rem.families[f].smb1_action for f in windows)
    assert {f.script for f in rem.families.values()} == {"cmd", "ps1", "sh"}


def test_samba_native_lanman_pattern():
    pattern = builds.samba_native_lm()
    assert pattern.search("Samba 4.5.16-Debian").group(1) == "4.5.16-Debian"
    assert pattern.search("Samba 3.0.37").group(1) == "3.0.37"
    assert pattern.search("Windows 2000 LAN Manager") is None and pattern.search("Samba") is None


def test_service_ports_and_functional_levels_as_before():
    """services.json holds what services/ and store/diff.py had in code (the same ports, in the same probe order)."""
    from smbsentry import services
    from smbsentry.services import ldap
    from smbsentry.store import diff

    assert services.SERVICE_PORTS == {"rdp": (3389,), "http": (80,), "https": (443,), "kerberos": (88,), "smtp": (25,),
                                      "imap": (143,), "notes": (1352, 3264), "worldclient": (3000, 1000), "nbns": (137,),
                                      "ldap": (389,), "quic": (443,)}
    assert list(services.SERVICE_PORTS) == ["rdp", "http", "https", "kerberos", "smtp", "imap", "notes", "worldclient",
                                            "nbns", "ldap", "quic"]
    assert services.DEFAULT_PORTS == {25, 80, 88, 137, 143, 389, 443, 1000, 1352, 3000, 3264, 3389}  # QUIC's: by its check
    assert diff._service_ports() == services.DEFAULT_PORTS  # not SMB ports, whatever asks for them
    assert services.UDP_PORTS == {137, 443}
    assert ldap.role_facts({"domainControllerFunctionality": ["7"]})["dc_functionality"] == "Windows Server 2016"
    assert ldap.role_facts({"domainControllerFunctionality": ["1"]})["dc_functionality"] == "level 1"


def test_nt_version_names_and_end_of_life_as_before():
    """builds.json `nt_versions` holds what checks/shadowbrokers.py had in code."""
    names = {"4.0": "Windows NT 4.0", "5.0": "Windows 2000", "5.1": "Windows XP", "5.2": "Windows Server 2003 / XP x64",
             "6.0": "Windows Vista / Server 2008", "6.1": "Windows 7 / Server 2008 R2"}
    assert {v: builds.nt_version_name(v) for v in names} == names
    assert builds.nt_version_name("6.3") == "Windows NT 6.3" and builds.nt_version_name("10.0") == "Windows NT 10.0"
    assert [v for v in ("4.0", "5.0", "5.1", "5.2", "6.0", "6.1", "6.2", "6.3", "10.0") if builds.nt_version_ended(v)] == list(names)
