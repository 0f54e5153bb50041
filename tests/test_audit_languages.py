"""systeminfo in every display language and console code page, and the other PowerShell exports (issue 16, readers).

Samples are built here from the label tables (audit/formats/labels.py) and value shapes real
systeminfo outputs print: the version line of each release ("10.0.18363 暂缺 Build 18363",
"6.1.7601 Service Pack 1 сборка 7601", "5.2.3790 Build 3790"), the hotfix header with its count,
the "[01]: KB..." entries, the network card block.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path

import pytest

from smbsentry.audit import audit_files
from smbsentry.audit.encoding import decode
from smbsentry.audit.formats.labels import LANGUAGES
from smbsentry.audit.inventory import parse_text, read_file

# Per language: (code page systeminfo > file writes in cmd, "not available", the build word, a Windows 10 edition name)
SHAPES = {
    "en": ("cp437", "N/A", "Build", "Microsoft Windows 10 Pro"), "zh-CN": ("gbk", "暂缺", "Build", "Microsoft Windows 10 专业版"),
    "zh-TW": ("cp950", "N/A", "組建", "Microsoft Windows 10 專業版"), "ja": ("cp932", "N/A", "ビルド", "Microsoft Windows 10 Pro"),
    "ko": ("cp949", "N/A", "빌드", "Microsoft Windows 10 Pro"), "de": ("cp850", "Nicht zutreffend", "Build", "Microsoft Windows 10 Pro"),
    "fr": ("cp850", "N/A", "version", "Microsoft Windows 10 Professionnel"), "es": ("cp850", "N/D", "Compilación", "Microsoft Windows 10 Pro"),
    "it": ("cp850", "N/D", "build", "Microsoft Windows 10 Pro"), "pt-BR": ("cp850", "N/A", "compilação", "Microsoft Windows 10 Pro"),
    "ru": ("cp866", "Н/Д", "сборка", "Майкрософт Windows 10 Pro"), "nl": ("cp850", "N.v.t.", "Build", "Microsoft Windows 10 Pro"),
    "pl": ("cp852", "Nie dotyczy", "Kompilacja", "Microsoft Windows 10 Pro"), "tr": ("cp857", "Yok", "Derleme", "Microsoft Windows 10 Pro"),
    "cs": ("cp852", "Není k dispozici", "Build", "Microsoft Windows 10 Pro"), "sv": ("cp850", "Saknas", "Version", "Microsoft Windows 10 Pro"),
}
ANSI = {"ru": "cp1251", "de": "cp1252", "fr": "cp1252", "es": "cp1252", "en": "cp1252"}


def sample(lang: str, *, host="PC-01", name=None, version=None, kbs=("KB4528760", "KB4551762"), declared=None, labels=None,
           config="Member Workstation", arch="x64-based PC") -> str:
    """A systeminfo block in one language: the labels of the table, the other lines in systeminfo's order."""
    host_l, name_l, ver_l, cfg_l, type_l, hot_l, nic_l, dom_l = labels or LANGUAGES[lang]
    na, build_word, edition = SHAPES.get(lang, SHAPES["en"])[1:]
    version = version or f"10.0.18363 {na} {build_word} 18363"
    rows = [(host_l, host), (name_l, name or edition), (ver_l, version), ("OS Manufacturer", "Microsoft Corporation"), (cfg_l, config),
            ("OS Build Type", "Multiprocessor Free"), ("Registered Owner", "IT"), ("Product ID", "00330-80000-00000-AA123"),
            ("System Manufacturer", "LENOVO"), ("System Model", "20L5"), (type_l, arch), ("Processor(s)", "1")]
    lines = [""] + [f"{k}:{' ' * max(1, 30 - len(k))}{v}" for k, v in rows]
    lines.append(" " * 31 + "[01]: Intel64 Family 6 Model 142 Stepping 10 GenuineIntel ~1800 Mhz")
    lines += [f"{dom_l}:{' ' * max(1, 30 - len(dom_l))}CORP", f"Logon Server:{' ' * 18}\\\\DC01", f"{hot_l}:{' ' * max(1, 30 - len(hot_l))}"
              f"{declared if declared is not None else len(kbs)} Hotfix(s)"]
    lines += [" " * 31 + f"[{i:02d}]: {kb}" for i, kb in enumerate(kbs, 1)]
    lines += [f"{nic_l}:{' ' * max(1, 30 - len(nic_l))}1 NIC(s)", " " * 31 + "[01]: Intel(R) Ethernet Connection I219-LM",
              " " * 37 + "IP address(es)", " " * 37 + "[01]: 10.1.2.3", "Hyper-V Requirements:         A hypervisor has been detected."]
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_every_language_in_its_console_code_page(tmp_path, lang):
    enc = SHAPES[lang][0]
    path = tmp_path / f"si-{lang}.txt"
    path.write_bytes(sample(lang).encode(enc))
    text, chosen = decode(path.read_bytes())
    assert LANGUAGES[lang][0] in text, f"{lang}: decoded as {chosen}"
    hosts, errors, kind = read_file(path)
    assert (kind, errors) == ("systeminfo", [])
    h = hosts[0]
    assert (h.host, h.os_version, h.build, h.service_pack, h.architecture, h.address) == ("PC-01", "10.0.18363", 18363, 0, "x64", "10.1.2.3")
    assert h.installed_kbs == ["KB4528760", "KB4551762"] and h.domain_controller is False and h.domain == "CORP"


@pytest.mark.parametrize("lang, enc", [*sorted(ANSI.items()), ("en", "utf-16-le"), ("zh-CN", "utf-16-le"), ("ja", "utf-8"), ("ko", "utf-8-sig")])
def test_ansi_code_pages_and_utf16_with_and_without_bom(tmp_path, lang, enc):
    body = sample(lang).encode(enc)
    for data in ([codecs.BOM_UTF16_LE + body, body] if enc == "utf-16-le" else [body]):
        path = tmp_path / "si.txt"
        path.write_bytes(data)
        hosts, errors, _ = read_file(path)
        assert errors == [] and hosts[0].installed_kbs == ["KB4528760", "KB4551762"]
        assert LANGUAGES[lang][0] in decode(data)[0]


def test_unknown_language_is_read_by_place_and_value_shape():
    labels = ("Gazdagépnév", "Operációs rendszer neve", "Operációs rendszer verziója", "Operációs rendszer konfigurációja",
              "Rendszer típusa", "Gyorsjavítás(ok)", "Hálózati kártyák", "Tartomány")  # Hungarian: not in the table
    text = sample("en", labels=labels, version="6.1.7601 Service Pack 1 Build 7601", name="Microsoft Windows 7 Professional",
                  kbs=("KB4012212",), config="Elsődleges tartományvezérlő")
    hosts, errors, kind = parse_text(text, "hu.txt")
    assert (kind, errors) == ("systeminfo", [])
    h = hosts[0]
    assert (h.host, h.os_name, h.service_pack, h.build, h.architecture, h.installed_kbs, h.domain) == (
        "PC-01", "Microsoft Windows 7 Professional", 1, 7601, "x64", ["KB4012212"], "CORP")
    run = audit_files([])
    assert run.results == []


def test_unknown_language_with_no_hotfixes_finds_the_header_after_the_logon_server():
    labels = ("Gazdagépnév", "Név", "Verzió", "Konfig", "Típus", "Gyorsjavítás(ok)", "Hálózati kártyák", "Tartomány")
    text = sample("en", labels=labels, kbs=(), declared="N/A")
    hosts, errors, _ = parse_text(text, "hu.txt")
    assert errors == [] and hosts[0].installed_kbs == [] and hosts[0].hotfixes_declared is None


@pytest.mark.parametrize("version, sp, build", [
    ("5.2.3790 Build 3790", 0, 3790), ("5.1.2600 Service Pack 3 Build 2600", 3, 2600), ("10.0.18363 暂缺 Build 18363", 0, 18363),
    ("6.1.7601 Service Pack 1 сборка 7601", 1, 7601), ("6.3.9600 Н/Д построение 9600", 0, 9600), ("10.0.17763 N/D Compilación 17763", 0, 17763),
    ("10.0.26100 N/A Build 26100", 0, 26100),
])
def test_version_lines_rtm_and_localised(version, sp, build):
    hosts, errors, _ = parse_text(sample("en", version=version), "v.txt")
    assert errors == [] and (hosts[0].service_pack, hosts[0].build) == (sp, build)


def test_server_2003_rtm_is_read_and_audited(tmp_path):
    path = tmp_path / "2003.txt"
    path.write_bytes(sample("en", name="Microsoft(R) Windows(R) Server 2003, Standard Edition", version="5.2.3790 Build 3790",
                            kbs=("KB4012598",), arch="X86-based PC").encode("cp437"))
    r = audit_files([path]).results[0]
    assert r.facts.product == "windows-server-2003-rtm" and r.facts.service_pack == 0


def test_capped_hotfix_list_is_read_and_recorded(tmp_path):
    kbs = [f"KB{4000000 + i}" for i in range(245)]  # none of them fixes SMBGhost
    path = tmp_path / "capped.txt"
    path.write_text(sample("en", kbs=kbs, declared=273), "utf-8")
    hosts, errors, _ = read_file(path)
    assert errors == [] and len(hosts[0].installed_kbs) == 245 and hosts[0].hotfixes_declared == 273
    v = audit_files([path]).results[0].verdict("cve-2020-0796")
    assert v.status == "unknown" and "lists 245 of 273" in v.evidence and "wmic qfe" in v.evidence and "Get-HotFix" in v.evidence
    # a listed update that decides still decides
    path.write_text(sample("en", kbs=kbs[:-1] + ["KB4549951"], declared=273), "utf-8")
    assert audit_files([path]).results[0].verdict("cve-2020-0796").status == "patched"


def test_capped_list_completed_by_a_full_export_of_the_same_host(tmp_path):
    kbs = [f"KB{4000000 + i}" for i in range(10)]
    (tmp_path / "si.txt").write_text(sample("en", kbs=kbs, declared=12), "utf-8")
    (tmp_path / "hf.csv").write_text('"PSComputerName","HotFixID"\r\n' + "".join(f'"PC-01","{k}"\r\n' for k in kbs + ["KB4540673"]), "utf-8")
    r = audit_files([tmp_path]).results[0]
    assert r.facts.hotfixes_declared is None
    v = r.verdict("cve-2020-0796")
    assert v.status == "missing" and "KB4540673 (2020-03 cumulative update), predates the fix KB4551762" in v.evidence


def test_cut_file_inside_the_list_is_still_refused():
    text = sample("en", kbs=("KB4528760", "KB4532693"), declared=5).split("Network")[0]  # the file ends inside the list
    hosts, errors, _ = parse_text(text, "cut.txt")
    assert hosts == [] and str(errors[0]) == "cut.txt:17: host PC-01: 5 hotfixes announced, 2 listed (output cut short?)"


@pytest.mark.parametrize("name, version, product", [
    ("Microsoft Windows 11 Pro", "10.0.22000 N/A Build 22000", "windows-11-21h2"),
    ("Microsoft Windows 11 Enterprise", "10.0.22621 N/A Build 22621", "windows-11-22h2"),
    ("Microsoft Windows 11 Pro", "10.0.22631 N/A Build 22631", "windows-11-23h2"),
    ("Microsoft Windows 11 Enterprise LTSC", "10.0.26100 N/A Build 26100", "windows-11-24h2"),
    ("Microsoft Windows 11 Pro", "10.0.26200 N/A Build 26200", "windows-11-25h2"),
    ("Microsoft Windows Server 2022 Datacenter", "10.0.20348 N/A Build 20348", "windows-server-2022"),
    ("Microsoft Windows Server 2025 Standard", "10.0.26100 N/A Build 26100", "windows-server-2025"),
])
def test_windows_11_and_server_2022_2025(tmp_path, name, version, product):
    path = tmp_path / "w.txt"
    path.write_text(sample("en", name=name, version=version, kbs=("KB5094041",)), "utf-8")
    r = audit_files([path]).results[0]
    assert r.facts.product == product
    assert r.verdict("ms17-010").status == "not_applicable" and r.verdict("cve-2020-0796").status == "not_applicable"


def test_get_computerinfo_console_list_and_json(tmp_path):
    text = ("\r\nWindowsBuildLabEx                                       : 18362.1.amd64fre.19h1_release.190318-1202\r\n"
            "WindowsProductName                                      : Windows 10 Pro\r\nWindowsUBR                                              : 719\r\n"
            "CsDomainRole                                            : MemberWorkstation\r\nCsName                                                  : WS-42\r\n"
            "OsName                                                  : Microsoft Windows 10 Pro\r\nOsVersion                                               : 10.0.18363\r\n"
            "OsBuildNumber                                           : 18363\r\nOsHotFixes                                              : {KB4528760, KB4532693, KB4540673...}\r\n"
            "OsArchitecture                                          : 64-bit\r\n")
    (tmp_path / "ci.txt").write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    hosts, errors, kind = read_file(tmp_path / "ci.txt")
    assert (kind, errors) == ("computerinfo", [])
    h = hosts[0]
    assert (h.host, h.build, h.ubr, h.architecture, h.domain_controller, h.installed_kbs) == (
        "WS-42", 18363, 719, "x64", False, ["KB4528760", "KB4532693", "KB4540673"])
    assert h.hotfixes_declared == 4  # "..." : PowerShell cut the list
    # the build revision still decides: 719 is below the fixed 720
    assert audit_files([tmp_path / "ci.txt"]).results[0].verdict("cve-2020-0796").status == "missing"
    doc = {"CsName": "WS-43", "OsName": "Microsoft Windows 10 Pro", "OsVersion": "10.0.18363", "OsArchitecture": "64-bit", "CsDomainRole": 1,
           "OsHotFixes": [{"HotFixID": "KB4551762", "Description": "Security Update", "InstalledOn": "3/13/2020"}]}
    (tmp_path / "ci.json").write_text(json.dumps(doc), "utf-8")
    hosts, errors, kind = read_file(tmp_path / "ci.json")
    assert kind == "computerinfo-json" and hosts[0].installed_kbs == ["KB4551762"] and hosts[0].hotfixes_declared is None


def test_get_ciminstance_win32_quickfixengineering_csv_and_json(tmp_path):
    csv_text = ('#TYPE Microsoft.Management.Infrastructure.CimInstance#root/cimv2/Win32_QuickFixEngineering\r\n'
                '"Caption","Description","InstallDate","Name","Status","CSName","FixComments","HotFixID","InstalledBy","InstalledOn","ServicePackInEffect","PSComputerName"\r\n'
                '"http://support.microsoft.com/?kbid=4551762","Security Update",,,,"WS-44",,"KB4551762","NT AUTHORITY\\SYSTEM","3/13/2020 12:00:00 AM",,\r\n')
    (tmp_path / "qfe.csv").write_text(csv_text, "utf-8")
    hosts, errors, kind = read_file(tmp_path / "qfe.csv")
    assert (kind, errors, hosts[0].host, hosts[0].installed_kbs) == ("gethotfix-csv", [], "WS-44", ["KB4551762"])
    items = [{"Caption": "", "Description": "Update", "HotFixID": "KB4528760", "CSName": "WS-44", "CimClass": "root/cimv2:Win32_QuickFixEngineering",
              "CimInstanceProperties": ["Caption", "HotFixID"], "PSComputerName": None}]
    (tmp_path / "qfe.json").write_bytes(codecs.BOM_UTF16_LE + json.dumps(items).encode("utf-16-le"))
    hosts, errors, kind = read_file(tmp_path / "qfe.json")
    assert (kind, hosts[0].host, hosts[0].installed_kbs) == ("gethotfix-json", "WS-44", ["KB4528760"])


def test_a_bad_file_among_languages_is_one_line_and_the_others_are_audited(tmp_path):
    (tmp_path / "a-de.txt").write_bytes(sample("de").encode("cp850"))
    (tmp_path / "b-bad.txt").write_bytes(sample("ru", version="неизвестно").encode("cp866"))
    (tmp_path / "c-ja.txt").write_bytes(sample("ja", host="PC-02").encode("cp932"))
    run = audit_files([tmp_path])
    assert [r.host for r in run.results] == ["PC-01", "PC-02"]
    assert len(run.errors) == 1 and "b-bad.txt" in str(run.errors[0]) and "\n" not in str(run.errors[0])


# Fixtures with the shape of captured outputs (tests/data/systeminfo/README.md names each source), in the console code
# page cmd writes: (file, language, host, version, build, service pack, domain, address, KBs listed, KBs announced when capped)
CAPTURED = [
    ("systeminfo-zh-tw-1809-cp950.txt", "zh-TW", "TW-WS-0417", "10.0.17763", 17763, 0, "corp.example.tw", "10.20.30.40", 11, None),
    ("systeminfo-ja-win7-capped-cp932.txt", "ja", "JP-WS-0042", "6.1.7601", 7601, 1, "WORKGROUP", "10.0.5.101", 245, 294),
    ("systeminfo-ko-22h2-cp949.txt", "ko", "KR-WS-0815", "10.0.19045", 19045, 0, "WORKGROUP", "10.1.8.22", 3, None),
    ("systeminfo-pt-br-win11-cp850.txt", "pt-BR", "BR-WS-0101", "10.0.26100", 26100, 0, "WORKGROUP", "10.9.0.20", 5, None),
]
INVENTORIES = Path(__file__).parent / "data" / "systeminfo"


@pytest.mark.parametrize("name, lang, host, version, build, sp, domain, address, listed, declared", CAPTURED)
def test_captured_shapes_are_read_in_their_code_page(name, lang, host, version, build, sp, domain, address, listed, declared):
    data = (INVENTORIES / name).read_bytes()
    text, enc = decode(data)
    assert enc == SHAPES[lang][0] and LANGUAGES[lang][0] in text
    hosts, errors, kind = read_file(INVENTORIES / name)
    assert (kind, errors, len(hosts)) == ("systeminfo", [], 1)
    h = hosts[0]
    assert (h.host, h.os_version, h.build, h.service_pack, h.architecture, h.domain, h.address) == (
        host, version, build, sp, "x64", domain, address)
    assert (len(h.installed_kbs), h.hotfixes_declared, h.domain_controller) == (listed, declared, False)


@pytest.mark.parametrize("name, lang", [(c[0], c[1]) for c in CAPTURED])
def test_captured_shapes_are_read_without_their_labels(name, lang):
    """The same files with every label the table knows replaced: place and value shape alone give the same facts."""
    text, _ = decode((INVENTORIES / name).read_bytes())
    labelled, _, _ = parse_text(text, name)
    for i, label in enumerate(LANGUAGES[lang]):
        text, n = re.subn(rf"(?m)^{re.escape(label)}:", f"Ismeretlen{i}:", text)
        assert n == 1, f"{lang}: {label!r} is not a line of {name}"
    hosts, errors, _ = parse_text(text, name)
    assert errors == [] and len(hosts) == 1
    assert hosts[0].to_dict() == labelled[0].to_dict() and hosts[0].address == labelled[0].address


def test_captured_japanese_capped_list_keeps_ms17_010_open():
    """294 announced, 245 listed (the capture's own numbers): none listed fixes MS17-010, so the answer is unknown, not missing."""
    v = audit_files([INVENTORIES / "systeminfo-ja-win7-capped-cp932.txt"]).results[0].verdict("ms17-010")
    assert v.status == "unknown" and "lists 245 of 294" in v.evidence


def test_domain_is_read_from_get_computerinfo(tmp_path):
    text = ("\r\nCsName      : WS-42\r\nCsDomain    : corp.example.com\r\nOsName      : Microsoft Windows 10 Pro\r\n"
            "OsVersion   : 10.0.18363\r\nOsHotFixes  : {KB4528760}\r\n")
    (tmp_path / "ci.txt").write_text(text, "utf-8")
    hosts, errors, kind = read_file(tmp_path / "ci.txt")
    assert (kind, errors, hosts[0].domain) == ("computerinfo", [], "corp.example.com")
    assert audit_files([tmp_path / "ci.txt"]).results[0].to_dict()["facts"]["domain"] == "corp.example.com"
