"""Inventory formats and encodings exactly as Windows writes them (tests/data/inventories)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from smbsentry.audit import InventoryError, audit_files, collect
from smbsentry.audit.encoding import decode
from smbsentry.audit.inventory import parse_text, read_file

INV = Path(__file__).parent / "data" / "inventories"


def one(name):
    hosts, errors, kind = read_file(INV / name)
    assert errors == [] and len(hosts) == 1
    return hosts[0], kind


@pytest.mark.parametrize("name, encoding", [
    ("systeminfo-win7-en-cp437.txt", "cp437"), ("systeminfo-win7-zh-gbk.txt", "gbk"), ("systeminfo-2008r2-rtm-utf16.txt", "utf-16-le"),
    ("systeminfo-2012r2-utf8.txt", "utf-8"), ("gethotfix-2012r2.csv", "utf-8"), ("gethotfix-ws-fin-07.json", "utf-16-le"),
    ("wmic-qfe-1607.csv", "utf-16-le"), ("hosts.csv", "utf-8-sig"), ("osquery-patches-1909.json", "utf-8"),
])
def test_encodings_are_detected(name, encoding):
    raw = (INV / name).read_bytes()
    text, enc = decode(raw)
    assert enc == encoding and "\r" not in text
    assert raw.count(b"\r\n") or raw.count("\r\n".encode("utf-16-le"))  # the samples keep Windows line ends


def test_systeminfo_english_windows_7():
    h, kind = one("systeminfo-win7-en-cp437.txt")
    assert kind == "systeminfo"
    assert (h.host, h.os_name, h.os_version, h.service_pack, h.build, h.architecture) == (
        "WS-FIN-03", "Microsoft Windows 7 Professional", "6.1.7601", 1, 7601, "x64")
    assert h.installed_kbs == ["KB2479943", "KB2491683", "KB2506212", "KB4012212"]
    assert h.address == "10.0.10.57" and h.domain_controller is False


def test_systeminfo_chinese_windows_7_in_gbk():
    h, _ = one("systeminfo-win7-zh-gbk.txt")
    assert (h.host, h.os_name, h.service_pack, h.architecture) == ("WIN7-PC", "Microsoft Windows 7 旗舰版", 1, "x64")
    assert h.installed_kbs == ["KB2479943", "KB2533552", "KB4103718"] and h.address == "192.168.1.23"


def test_systeminfo_from_powershell_redirection_utf16():
    h, _ = one("systeminfo-2008r2-rtm-utf16.txt")
    assert (h.os_version, h.service_pack, h.build, h.installed_kbs) == ("6.1.7600", 0, 7600, ["KB958488", "KB976902"])


def test_systeminfo_xp_labels_and_odd_hotfix_entries():
    h, _ = one("systeminfo-xp-sp3-cp437.txt")
    assert (h.service_pack, h.architecture, h.address) == (3, "x86", "10.20.1.15")
    assert h.installed_kbs == ["KB958644", "KB2347290", "KB4012598"]  # "File 1" and Q147222 are not KB numbers


def test_systeminfo_batch_keeps_good_hosts_and_reports_the_bad_one():
    hosts, errors, _ = read_file(INV / "systeminfo-batch-cp437.txt")
    assert [h.host for h in hosts] == ["WS-OK-01"]
    assert len(errors) == 1 and errors[0].host == "WS-CUT-02"
    assert str(errors[0]).endswith("systeminfo-batch-cp437.txt:49: host WS-CUT-02: 4 hotfixes announced, 2 listed (output cut short?)")


def test_systeminfo_csv_format():
    text = ('"Host Name","OS Name","OS Version","System Type","Hotfix(s)","Network Card(s)"\n'
            '"SRV1","Microsoft Windows Server 2012 R2 Standard","6.3.9600 N/A Build 9600","x64-based PC",'
            '"2 Hotfix(s) Installed.,[01]: KB2919355,[02]: KB4012216","1 NIC(s) Installed.,[01]: vmxnet3,IP address(es),[01]: 10.1.1.1"\n')
    hosts, errors, kind = parse_text(text, "si.csv")
    assert kind == "systeminfo" and errors == []
    assert hosts[0].installed_kbs == ["KB2919355", "KB4012216"] and hosts[0].address == "10.1.1.1"


def test_gethotfix_export_csv_with_type_line():
    h, kind = one("gethotfix-2012r2.csv")
    assert kind == "gethotfix-csv" and h.host == "SRV-APP-12" and h.os_name is None
    assert h.installed_kbs == ["KB2919355", "KB3000850", "KB4015550"]


def test_gethotfix_convertto_json_utf16():
    h, kind = one("gethotfix-ws-fin-07.json")
    assert kind == "gethotfix-json" and (h.host, h.installed_kbs) == ("WS-FIN-07", ["KB2479943", "KB4019264"])


def test_wmic_qfe_csv_utf16_with_blank_first_line():
    h, kind = one("wmic-qfe-1607.csv")
    assert kind == "wmic-qfe-csv" and h.host == "LTSB-1607" and h.installed_kbs == ["KB3199986", "KB4132216", "KB4493470"]


def test_wmic_piped_through_cmd_has_cr_cr_lf():
    raw = (INV / "wmic-qfe-1607.csv").read_bytes()[2:].decode("utf-16-le").replace("\r\n", "\r\r\n").encode("cp437")
    text, enc = decode(raw)
    hosts, errors, kind = parse_text(text, "piped.csv")
    assert (enc, kind, errors, hosts[0].installed_kbs[-1]) == ("utf-8", "wmic-qfe-csv", [], "KB4493470")


def test_osquery_os_version_and_patches_merge_by_hostname():
    hosts, errors = collect([INV / "osquery-os_version-1909.json", INV / "osquery-patches-1909.json"])
    assert errors == [] and len(hosts) == 1
    h = hosts[0]
    assert (h.host, h.build, h.ubr, h.architecture) == ("DESK-1909", 18363, 719, "x64")
    assert h.installed_kbs == ["KB4528759", "KB4537759", "KB4540673"]
    assert h.sources == ["osquery-os_version-1909.json", "osquery-patches-1909.json"]


def test_plain_csv_rows_and_a_bad_row():
    hosts, errors, kind = read_file(INV / "hosts.csv")
    assert kind == "hosts-csv" and [h.host for h in hosts] == ["WS-FIN-07", "LTSB-1607", "DESK-1909B"]
    assert hosts[0].installed_kbs is None  # an empty kbs cell means "not known"
    assert (hosts[1].build, hosts[1].ubr) == (14393, 2906)
    assert str(errors[0]).endswith("hosts.csv:5: host DESK-BAD: cannot read build 'eighteen' (7601, 6.1.7601 or 18363.720)")


def test_plain_csv_extra_fact_columns():
    text = "host,os,build,kbs,smb1_server,listening,arch\nh1,Windows 7 SP1,7601,KB4012212,yes,445=yes;139=no,64-bit\n"
    hosts, errors, _ = parse_text(text, "x.csv")
    assert errors == [] and hosts[0].smb1_server is True and hosts[0].listening == {"445": True, "139": False}
    assert hosts[0].architecture == "x64"


def test_facts_json_round_trip(tmp_path):
    run = audit_files([INV / "systeminfo-win7-en-cp437.txt"])
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(json.dumps(r.to_dict()) for r in run.results) + "\n", "utf-8")
    hosts, errors, kind = read_file(path)
    assert kind == "facts-json" and errors == [] and hosts[0].installed_kbs == run.results[0].facts.installed_kbs


def test_utf16_without_bom_and_utf8_with_bom():
    body = "host,os,build,kbs\r\nh,Windows 8.1,9600,KB4012213\r\n"
    for raw in (body.encode("utf-16-le"), codecs.BOM_UTF8 + body.encode()):
        text, _ = decode(raw)
        assert parse_text(text, "x")[0][0].installed_kbs == ["KB4012213"]


@pytest.mark.parametrize("name, line, message", [
    ("unknown-format.txt", 1, "unknown inventory format"),
    ("broken.json", 4, "invalid JSON: Expecting value"),
])
def test_broken_files_name_file_and_line(name, line, message):
    with pytest.raises(InventoryError) as exc:
        read_file(INV / name)
    assert str(exc.value).startswith(f"{INV / name}:{line}: {message}")


def test_more_broken_inputs(tmp_path):
    cases = {"empty.txt": (b"", "1: empty file"), "nul.bin": (b"\x89PNG\x00\x00\x01\x02" * 8, "binary data"),
             "odd.txt": (codecs.BOM_UTF16_LE + b"h\x00i", "not valid UTF-16-LE"),
             "si.txt": (b"\r\nHost Name:   X\r\nOS Name:     Microsoft Windows 7\r\nOS Version:  six\r\nHotfix(s): 0 Hotfix(s) Installed.\r\n", "4: host X: cannot read OS Version")}
    for name, (raw, msg) in cases.items():
        (tmp_path / name).write_bytes(raw)
    run = audit_files(sorted(tmp_path.iterdir()))
    assert run.results == []
    got = sorted(str(e) for e in run.errors)
    assert len(got) == 4 and all(any(m in g for g in got) for _, m in cases.values())
    assert all(str(tmp_path) in g for g in got)
