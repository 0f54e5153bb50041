"""Update package files (kb/data/update_files.json): the import script, the loader's checks, the per-language
choices, and the offline bundle of a plan for XP / Server 2003 hosts in English and Chinese."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from datetime import date
from importlib import resources
from pathlib import Path

import pytest

from smbsentry.kb import query
from smbsentry.kb.packages import REQUIRED_LANGUAGES, packages
from smbsentry.kb.store import KbDataError, kb, load
from smbsentry.remediate import plan, write_plan

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "import-update-files"
DATA = Path(str(resources.files("smbsentry.kb").joinpath("data")))
CASES = Path(__file__).parent / "data" / "update-files"
CLI = [sys.executable, "-m", "smbsentry.cli"]
NT5 = ("windows-xp-sp3", "windows-server-2003-sp2", "windows-xp-x64-sp2")


def import_files(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


# --- the import script -------------------------------------------------------------------------------

def test_import_script_builds_the_expected_json(tmp_path):
    out = tmp_path / "update_files.json"
    p = import_files(str(CASES / "small.csv"), "-o", str(out), "--sources", str(DATA / "sources.json"))
    assert p.returncode == 0, p.stderr
    assert "2 files, 2 gaps" in p.stdout  # the name found only in a script of unknown licence is a gap
    doc = json.loads(out.read_text("utf-8"))
    assert doc.pop("_about").startswith("Package files")
    assert doc == json.loads((CASES / "expected.json").read_text("utf-8"))


@pytest.mark.parametrize("case, message", [
    ("bad.csv", "bad.csv:3: name 'windows6.1-kb4012212-x86.msu' differs from the file the url names"),
    ("nosource.csv", "nosource.csv:2: source is empty"),
])
def test_import_script_refuses_a_bad_row_naming_file_and_line(tmp_path, case, message):
    out = tmp_path / "update_files.json"
    p = import_files(str(CASES / case), "-o", str(out))
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()


def test_shipped_json_is_what_the_source_list_gives():
    p = import_files("--check")
    assert p.returncode == 0, p.stderr


def test_import_script_help_documents_the_columns():
    p = import_files("--help")
    assert p.returncode == 0 and "scripts/data/update-files.csv" in p.stdout and "--check" in p.stdout


# --- the loader -----------------------------------------------------------------------------------

@pytest.fixture
def data_copy(tmp_path):
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target


def edit(directory: Path, change) -> None:
    path = directory / "update_files.json"
    doc = json.loads(path.read_text("utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")


@pytest.mark.parametrize("change, message", [
    (lambda d: d["files"][0].pop("source"), r"update_files\.json: \$\.files\[0\]: 'source' is a required property"),
    (lambda d: d["gaps"][0].pop("source"), r"update_files\.json: \$\.gaps\[0\]: 'source' is a required property"),
    (lambda d: d["files"][0].__setitem__("source", ["a-blog-somewhere"]), r"\$\.files\[0\]\.source\[0\]: unknown source 'a-blog-somewhere'"),
    (lambda d: d["files"][0].__setitem__("kb", "KB1234567"), r"\$\.files\[0\]\.kb: no update KB1234567 in fixes\.json"),
    (lambda d: d["files"][0]["products"].append("windows-10-1909"), r"'windows-10-1909' is not one of KB4012598's products"),
    (lambda d: d["files"][0].__setitem__("language", "English"), r"update_files\.json: \$\.files\[0\]\.language"),
])
def test_loader_refuses_a_bad_entry(data_copy, change, message):
    edit(data_copy, change)
    with pytest.raises(KbDataError, match=message):
        load(data_copy)


def test_files_live_in_one_place(data_copy):
    fixes = json.loads((data_copy / "fixes.json").read_text("utf-8"))
    fixes["fixes"][0]["files"] = [{"name": "x.exe", "architecture": "x86", "source": "seed-004"}]
    (data_copy / "fixes.json").write_text(json.dumps(fixes), "utf-8")
    with pytest.raises(KbDataError, match=r"fixes\.json: \$\.fixes\[0\]: Additional properties are not allowed \('files'"):
        load(data_copy)


# --- every update the planner can name --------------------------------------------------------------

def _named_updates():
    """(fix, product it installs on, architecture) for every update fixes_for can name, service packs included."""
    data = kb()
    for v in data.vulns.values():
        for pid in sorted(v.affected_products):
            p = data.products[pid]
            for arch in p.architectures:
                for o in query.fixes_for(v.id, p, arch):
                    yield o.fix, o.product, arch
                    for pre in o.prerequisites:
                        below = [p, *(lvl for _, lvl in query.service_pack_path(p))]
                        sp_from = next((q for q in below if q.next_service_pack and q.next_service_pack[0] == pre.kb), None)
                        yield data.fixes[pre.kb], sp_from or o.product, arch
                    for later in query.covering_updates(v.bulletin, o.product.id) if v.bulletin else ():
                        yield data.fixes[later], o.product, arch


def test_every_update_the_planner_can_name_has_a_file_or_a_reason():
    seen = set()
    for fix, product, arch in _named_updates():
        if (fix.kb, product.id, arch) in seen:
            continue
        seen.add((fix.kb, product.id, arch))
        choices = packages(fix, product, arch)
        assert choices, (fix.kb, product.id, arch)
        for c in choices:
            assert (c.file and c.file.url) or c.reason, (fix.kb, product.id, arch, c)
            if c.reason and not c.file:
                assert fix.kb in c.reason or c.reason.startswith(("not published", "not imported")), c.reason
        if product.family == "windows-nt5":
            assert [c.language for c in choices] == list(REQUIRED_LANGUAGES), (fix.kb, product.id)
    assert len(seen) > 100  # the walk reached the whole catalogue, not a corner of it


# The MS17-010 updates Microsoft's bulletin and WannaCrypt guidance name, and the service packs they need.
KEY = ("KB4012598", "KB4012212", "KB4012215", "KB4012213", "KB4012216", "KB4012214", "KB4012217", "KB4012606", "KB4013198", "KB4013429",
       "KB976932", "KB936929", "KB914961", "KB948465", "KB936330", "KB2919355")
# ... of which these have no English / neutral package address in the sources; the data says why.
NO_ADDRESS = {("KB4013429", "x86")}


# ... and these have addresses from a source whose terms allow importing them (Microsoft, the user's
# source documents, cited pages, permissive repositories); the others say where they are listed.
IMPORTED = {("KB4012598", "x86"), ("KB4012598", "x64"), ("KB4012212", "x64"), ("KB4012215", "x64"), ("KB976932", "x86"),
            ("KB976932", "x64"), ("KB2919355", "x64"), ("KB4013429", "x64")}


def test_every_ms17_010_key_update_has_an_address_or_says_where_it_is_listed():
    data = kb()
    for fix in (data.fixes[k] for k in KEY):
        for pid in fix.products:
            p = data.products[pid]
            for arch in (a for a in p.architectures if a in ("x86", "x64") and a in fix.architectures):
                first = packages(fix, p, arch)[0]  # en-us, or the language-neutral package
                if (fix.kb, arch) in NO_ADDRESS:
                    assert first.file is None and "delta" in first.reason, (fix.kb, pid, arch)
                    continue
                if first.file is None:
                    assert (fix.kb, arch) not in IMPORTED and first.reason.startswith("not imported") \
                        and "Microsoft Update Catalog" in first.reason, (fix.kb, pid, arch, first.reason)
                    continue
                assert first.file.url, (fix.kb, pid, arch)
                host = first.file.url.split("/")[2]
                assert host in ("download.windowsupdate.com", "www.download.windowsupdate.com", "download.microsoft.com",
                                "catalog.s.download.windowsupdate.com"), first.file.url


def test_server_2003_and_xp_get_english_and_chinese_ms17_010_packages():
    data = kb()
    fix = data.fixes["KB4012598"]
    for pid, arch in (("windows-xp-sp3", "x86"), ("windows-server-2003-sp2", "x86"), ("windows-server-2003-sp2", "x64")):
        en, zh = packages(fix, data.products[pid], arch)
        assert (en.language, zh.language) == ("en-us", "zh-cn")
        assert "enu" in en.file.name.lower() and en.file.url, (pid, arch)
        if pid == "windows-xp-sp3":  # listed only by WSUS Offline (GPL): a gap that says where
            assert zh.file is None and "WSUS Offline" in zh.reason and "Custom-CHS" in zh.reason
        else:  # the Alibaba Cloud guide gives the Server 2003 Chinese packages
            assert "chs" in zh.file.name.lower() and zh.file.url, (pid, arch)
    ia64 = packages(fix, data.products["windows-server-2003-sp2"], "ia64")
    assert all(c.file is None and "Itanium" in c.reason for c in ia64)


# --- the plan's offline bundle ----------------------------------------------------------------------

def _audit(host: str, address: str, os_name: str, version: str, arch: str) -> dict:
    return {"host": host, "address": address, "source": f"systeminfo-{host}.txt",
            "facts": {"os_name": os_name, "os_version": version, "service_pack": 2, "build": int(version.split(".")[2]), "ubr": None,
                      "architecture": arch, "installed_kbs": ["KB958644"], "domain_controller": False},
            "verdicts": [{"id": "ms17-010", "status": "missing", "evidence": "KB4012598 is not installed", "fix": None}]}


def _scan_xp() -> dict:
    return {"address": "127.51.0.3", "hostname": None, "ports": {"445": "open", "139": "closed"},
            "smb1": {"enabled": True, "signing": "disabled", "native_os": "Windows 5.1"}, "smb2": {"dialects": [], "signing": "disabled"},
            "identity": {"netbios_name": "XP-CN", "os_name": "Windows XP", "os_candidates": ["Windows XP"], "os_build": 2600,
                         "os_build_shared": False, "implementation": "windows"},
            "findings": [{"id": "ms17-010", "status": "vulnerable", "severity": "critical", "title": "ms17-010", "cves": [], "references": [],
                          "evidence": "PeekNamedPipe on FID 0 answered 0xC0000205", "reason": None, "inferred": False, "port": 445}],
            "errors": [], "duration_ms": 40}


@pytest.fixture(scope="module")
def nt5_plan():
    records = [_scan_xp(),
               _audit("W2K3-X86", "127.51.0.1", "Microsoft(R) Windows(R) Server 2003, Standard Edition", "5.2.3790", "x86"),
               _audit("W2K3-X64", "127.51.0.2", "Microsoft(R) Windows(R) Server 2003, Standard x64 Edition", "5.2.3790", "x64")]
    return plan(records, "en", as_of=date(2026, 6, 1))


def test_bundle_lists_english_and_chinese_rows_for_xp_and_2003(nt5_plan):
    rows = [r for r in nt5_plan.bundle if r.kb == "KB4012598"]
    by = {(r.product, r.architecture, r.language): r for r in rows}
    for product, arch in (("windows-xp-sp3", "x86"), ("windows-server-2003-sp2", "x86"), ("windows-server-2003-sp2", "x64")):
        en, zh = by[(product, arch, "en-us")], by[(product, arch, "zh-cn")]
        assert "-enu" in en.file.lower() and en.url.startswith("http://download.windowsupdate.com/"), en
        assert ("-chs" in zh.file.lower() and zh.url.startswith("http")) if zh.file else "not imported" in zh.note, zh
        assert {r.language for r in rows if (r.product, r.architecture) == (product, arch)} == {"en-us", "zh-cn"}
    assert not any("Chinese (Simplified) package" in (r.note or "") for r in nt5_plan.bundle)


def test_bundle_csv_has_the_language_column(nt5_plan, tmp_path):
    write_plan(nt5_plan, tmp_path)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "bundle.csv").read_text(encoding="utf-8-sig"))))
    langs = {r["language"] for r in rows if r["kb"] == "KB4012598"}
    assert langs == {"en-us", "zh-cn"}
    assert all(r["file"] or r["note"] for r in rows)
    md = (tmp_path / "plan.md").read_text("utf-8")
    assert "| language |" in md and "windowsserver2003-kb4012598-x64-custom-chs" in md


# --- the command line ---------------------------------------------------------------------------------

def test_which_kb_prints_the_packages_per_language():
    p = subprocess.run([*CLI, "kb", "which-kb", "--os", "Windows Server 2003 SP2 x86", "ms17-010"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "file (x86, en-us): windowsserver2003-kb4012598-x86-custom-enu_" in p.stdout
    assert "file (x86, zh-cn): windowsserver2003-kb4012598-x86-custom-chs_" in p.stdout
    assert "http://download.windowsupdate.com/c/csa/csa/secu/2017/02/windowsserver2003-kb4012598-x86-custom-enu_" in p.stdout
    p = subprocess.run([*CLI, "kb", "show", "KB4012598"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "(x64, zh-cn; windows-server-2003-sp2" in p.stdout and "no file (ia64; windows-server-2003-sp2): not published for Itanium" in p.stdout
