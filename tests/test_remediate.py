"""Remediation plans (smbsentry.remediate): decision flow, scripts, bundle, languages, hostile names.

The mixed set: a Windows 7 SP1 x64 file server vulnerable to MS17-010 (scan + collector inventory), a
Windows Server 2008 R2 RTM x64 without SP1 (audit result), a Windows XP SP3 x86 (scan), a Windows 7 with
DoublePulsar (scan), a Windows XP with WannaCry on it (collector), a Windows 10 1909 likely SMBGhost
(scan), a Windows Server 2019 with only unsigned SMB (scan), a clean Server 2022 and a host with a
hostile NetBIOS name.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from datetime import date
from pathlib import Path

import pytest

from smbsentry.audit import audit_files
from smbsentry.kb.store import kb
from smbsentry.remediate import main_plan, plan, safe_label, write_plan

DATA = Path(__file__).parent / "data" / "remote"
AS_OF = date(2026, 6, 1)
HOSTILE = 'x"; del c:\\ & "'


def finding(fid, status, **extra):
    return {"id": fid, "status": status, "severity": "critical", "title": fid, "cves": [], "references": [], "evidence": extra.pop("evidence", None),
            "reason": None, "inferred": False, "port": 445, **({"details": extra} if extra else {})}


def scan(address, name, os_name, candidates, findings, native_os=None, build=None, smb1=True):
    return {"address": address, "hostname": None, "ports": {"445": "open", "139": "closed"},
            "smb1": {"enabled": smb1, "signing": "disabled", "native_os": native_os} if smb1 else {"enabled": False},
            "smb2": {"dialects": ["2.0.2", "2.1"], "signing": "enabled"},
            "identity": {"netbios_name": name, "os_name": os_name, "os_candidates": candidates, "os_build": build,
                         "os_build_shared": len(candidates) > 1, "implementation": "windows"},
            "findings": findings, "errors": [], "duration_ms": 40}


NOT = "not_vulnerable"
WIN7_FS = scan("127.50.0.1", "WS-FIN-07", "Windows 7 SP1 / Server 2008 R2 SP1", ["Windows 7 SP1", "Windows Server 2008 R2 SP1"],
               [finding("ms17-010", "vulnerable", evidence="PeekNamedPipe on FID 0 answered 0xC0000205"), finding("doublepulsar", NOT),
                finding("smbv1-enabled", "vulnerable"), finding("smb-null-session", "vulnerable", shares=["IPC$", "ADMIN$", "C$", "Finance"]),
                finding("eol-os", "vulnerable")], native_os="Windows 7 Professional 7601 Service Pack 1", build=7601)
R2_RTM = {"host": "APP-R2-01", "address": "127.50.0.2", "source": "systeminfo-app-r2-01.txt",
          "facts": {"os_name": "Microsoft Windows Server 2008 R2 Standard", "os_version": "6.1.7600", "service_pack": 0, "build": 7600,
                    "ubr": None, "architecture": "x64", "installed_kbs": ["KB958488", "KB2305420"], "domain_controller": False},
          "verdicts": [{"id": "ms17-010", "status": "missing", "evidence": "none of the 2 installed updates fixes MS17-010", "fix": None},
                       {"id": "eol-os", "status": "missing", "evidence": "ended 2020-01-14", "fix": None}]}
XP = scan("127.50.0.3", "XPSP3-LAB", "Windows XP", ["Windows XP"],
          [finding("ms17-010", "vulnerable"), finding("erraticgopher", "likely"), finding("smbv1-enabled", "vulnerable"),
           finding("eol-os", "vulnerable"), finding("smb-null-session", "vulnerable", shares=["IPC$", "ADMIN$", "C$"])],
          native_os="Windows 5.1", build=2600)
DP = scan("127.50.0.4", "IE11WIN7", "Windows 7 SP1 / Server 2008 R2 SP1", ["Windows 7 SP1", "Windows Server 2008 R2 SP1"],
          [finding("ms17-010", "vulnerable"),
           finding("doublepulsar", "vulnerable", evidence="Trans2 SESSION_SETUP with MID 65 answered with MID 81", architecture="x64",
                   xor_key="0x31F1CB56"), finding("eol-os", "vulnerable")],
          native_os="Windows 7 Enterprise 7601 Service Pack 1", build=7601)
GHOST = scan("127.50.0.5", "W10-1909-LZNT1", "Windows 10 1909 / Server 1909", ["Windows 10 1909", "Windows Server 1909"],
             [finding("cve-2020-0796", "likely"), finding("ms17-010", NOT), finding("smbv1-enabled", NOT)], build=18363, smb1=False)
WS2019 = scan("127.50.0.6", "WS2019", "Windows 10 1809 / Server 2019", ["Windows 10 1809", "Windows Server 2019"],
              [finding("smb-signing-not-required", "vulnerable"), finding("ms17-010", NOT), finding("cve-2020-0796", NOT),
               finding("smbv1-enabled", NOT), finding("eol-os", NOT)], build=17763, smb1=False)
WS2022 = scan("127.50.0.7", "WS2022-SIGN", "Windows Server 2022", ["Windows Server 2022"],
              [finding("smb-signing-not-required", NOT), finding("ms17-010", NOT), finding("eol-os", NOT)], build=20348, smb1=False)
EVIL = scan("127.50.0.8", HOSTILE, "Windows 7 SP1 / Server 2008 R2 SP1", ["Windows 7 SP1", "Windows Server 2008 R2 SP1"],
            [finding("ms17-010", "vulnerable"), finding("smb-null-session", "vulnerable", shares=["IPC$", 'Pay%PATH%^&"rolls', "<b>x</b>"])],
            native_os="Windows 7 Professional 7601 Service Pack 1\r\nrem", build=7601)


@pytest.fixture(scope="module")
def collector_results():
    run = audit_files([DATA / "collector-ws-fin-07-ps51.json", DATA / "collector-cw-xp-lab3-ps2.json"])
    assert run.errors == []
    return [r.to_dict() for r in run.results]


@pytest.fixture(scope="module")
def mixed(collector_results):
    return [WIN7_FS, R2_RTM, XP, DP, GHOST, WS2019, WS2022, EVIL] + collector_results


@pytest.fixture(scope="module", params=["en", "zh"])
def both(request, mixed):
    return plan(mixed, request.param, as_of=AS_OF)


@pytest.fixture(scope="module")
def en(mixed):
    return plan(mixed, "en", as_of=AS_OF)


def ids(h):
    return [s.id + (f":{s.kb}" if s.kb else "") for s in h.steps]


# --- the decision flow -------------------------------------------------------------------------

def test_hosts_merge_scan_and_inventory(en):
    h = en.host("127.50.0.1")
    assert h.name == "WS-FIN-07" and h.architecture == "x64"  # architecture from the collector inventory
    assert len([x for x in en.hosts if (x.name or "").upper() == "WS-FIN-07"]) == 1
    assert len(en.hosts) == 9


def test_isolate_now_first(en):
    iso = {h.name: h.isolate for h in en.isolate_now}
    assert iso == {"IE11WIN7": "implant", "CW-XP-LAB3": "wannacry"}
    assert [h.isolate is not None for h in en.hosts[:2]] == [True, True]
    dp = en.host("IE11WIN7")
    assert ids(dp)[0] == "isolate-now" and "MID 81" in dp.steps[0].text
    assert "install-update:KB4012212" in ids(dp)
    assert dp.architecture == "x64"  # DoublePulsar's reply said x64
    xp = en.host("CW-XP-LAB3")
    assert ids(xp)[:2] == ["isolate-now", "check-wannacry-indicators"]
    assert "mssecsvc" in xp.steps[0].text
    assert "install-update-nt5:KB4012598" in ids(xp)
    assert dp.group != en.host("127.50.0.1").group  # compromised hosts get their own scripts


def test_windows7_file_server_backup_then_patch(en):
    h = en.host("WS-FIN-07")
    assert h.holds_data and h.data_shares == ["Finance"]
    order = ids(h)
    assert order.index("backup") < order.index("install-update:KB4012212") < order.index("verify-update:KB4012212")
    step = h.steps[order.index("install-update:KB4012212")]
    assert step.alternatives == ["KB4012215"]
    assert step.files == {"x64": "windows6.1-kb4012212-x64_2decefaa02e2058dcd965702509a992d8c4e92b3.msu"}
    assert "KB4015549" in step.verify_kbs and "KB4019264" in step.verify_kbs  # later rollups prove the fix too
    assert "Finance" in h.steps[0].text
    # a file server keeps its Server service and host firewall; the note says why
    assert "stop-server-service" not in order and "block-smb-firewall" not in order
    choice = h.steps[order.index("server-service-choice")]
    assert not choice.scripted and "shares data its users need" in choice.text
    assert order[-1] == "upgrade-os" and h.eol


def test_2008r2_without_sp1_gets_sp1_first(en):
    h = en.host("APP-R2-01")
    order = ids(h)
    assert order.index("install-service-pack:KB976932") < order.index("install-update:KB4012212")
    sp = h.steps[order.index("install-service-pack:KB976932")]
    assert sp.files == {"x64": "windows6.1-KB976932-X64.exe"} and sp.condition_build == (7600,)
    upd = h.steps[order.index("install-update:KB4012212")]
    assert upd.level == "windows-server-2008-r2-sp1"
    assert any("KB976932" in n and "update not applicable" in n for n in h.notes)


def test_xp_patch_plus_workarounds_and_upgrade(en):
    h = en.host("XPSP3-LAB")
    order = ids(h)
    assert order[0] == "install-update-nt5:KB4012598"
    for step in ("disable-smb-device", "stop-server-service", "xp-firewall", "block-smb-border", "isolate-segment", "upgrade-os"):
        assert step in order, step
    assert order.index("install-update-nt5:KB4012598") < order.index("disable-smb-device") < order.index("upgrade-os")
    assert not h.holds_data  # only administrative shares
    assert h.eol and any("2014-04-08" in n for n in h.notes)


def test_smbghost_workaround_then_update(en):
    h = en.host("W10-1909-LZNT1")
    order = ids(h)
    assert order.index("disable-smb-compression") < order.index("install-update:KB4551762") < order.index("verify-build:KB4551762")
    upd = h.steps[order.index("install-update:KB4551762")]
    assert upd.verify_build == ((18363,), 720)
    assert "later cumulative update" in upd.note
    assert "disable-smb1-server" not in order  # SMB1 is already off on the wire
    assert h.os == "Windows 10 1909 / Server 1909"  # the scan's name for the build


def test_server2019_only_signing_advice_and_2022_nothing(en):
    h = en.host("WS2019")
    # requiring signing cuts off clients that cannot sign, and its shares were not listed: the backup gate first
    assert ids(h) == ["backup", "require-smb-signing"]
    assert h.steps[1].note.startswith("Advice") and h.category == "workaround"
    assert "could not be listed" in h.steps[0].text
    clean = en.host("WS2022-SIGN")
    assert clean.steps == [] and clean.category == "clean" and clean.group is None


def test_audit_only_inputs_use_installed_updates(collector_results):
    p = plan(collector_results[:1], "en", as_of=AS_OF)  # the collector says srv.sys is old: MS17-010 missing
    h = p.hosts[0]
    assert "install-update:KB4012212" in ids(h) and h.architecture == "x64"
    patched = json.loads(json.dumps(collector_results[0]))
    for v in patched["verdicts"]:
        if v["status"] == "missing":
            v["status"] = "patched"
    patched["facts"]["smb1_server"] = False
    before_eol = date(2019, 6, 1)  # Windows 7 was still supported: a patched host needs nothing
    assert plan([patched], "en", as_of=before_eol).hosts[0].steps == []
    # past its end of support the same host gets the measures for systems that can no longer be patched; its
    # shares are not in the inventory, so the Server service is a manual choice, never scripted
    eol = ids(plan([patched], "en", as_of=AS_OF).hosts[0])
    assert {"server-service-choice", "block-smb-border", "upgrade-os"} <= set(eol)  # nothing scripted interrupts service: no gate
    assert "stop-server-service" not in eol and "block-smb-firewall" not in eol
    # the same inventory with the host's shares listed, none holding data: the Server service may be stopped, no gate
    patched["facts"]["shares"] = ["IPC$", "ADMIN$", "C$"]
    listed = ids(plan([patched], "en", as_of=AS_OF).hosts[0])
    assert {"stop-server-service", "block-smb-firewall", "upgrade-os"} <= set(listed) and "backup" not in listed


def test_unknown_os_is_identified_first():
    p = plan([scan("127.50.0.9", None, None, [], [finding("ms17-010", "vulnerable")], smb1=True)], "en", as_of=AS_OF)
    assert ids(p.hosts[0]) == ["identify"] and p.hosts[0].group is None and p.groups == []


# --- both languages ------------------------------------------------------------------------------

def test_step_texts_come_from_the_knowledge_base(both):
    actions = kb().actions
    h = both.host("XPSP3-LAB")
    for s in h.steps:
        if s.id in actions:
            want = actions[s.id].text_zh if both.lang == "zh" else actions[s.id].text_en
            assert s.text == want
    from smbsentry.remediate import render_markdown
    md = render_markdown(both)
    if both.lang == "zh":
        assert "## 1. 立即隔离" in md and "先备份" in md and "离线补丁包" in md
        assert "安装与操作系统版本、位数完全对应的补丁包" in md
    else:
        assert "## 1. Isolate now" in md and "Offline patch bundle" in md
        assert "Install the update package for this exact OS" in md


# --- scripts ---------------------------------------------------------------------------------------

def group_of(p, host):
    name = p.host(host).group
    return next(g for g in p.groups if g.name == name)


def test_windows7_cmd_script(en):
    g = group_of(en, "WS-FIN-07")
    assert g.flavour == "cmd" and g.name.startswith("win7-2008r2-x64")
    a = g.apply
    assert a.startswith("@echo off\r\n") and "\r\n" in a
    assert 'set "PKG_FILE=windows6.1-kb4012212-x64_2decefaa02e2058dcd965702509a992d8c4e92b3.msu"' in a
    assert 'wusa.exe "%PKG%" /quiet /norestart' in a  # the kb's install-update template
    assert "call :install_msu KB4012212" in a
    assert 'if not "%SMBSENTRY_BACKUP_DONE%"=="1" goto :need_backup' in a
    assert 'for %%B in (7601) do if "%%B"=="%OSBUILD%" set "OSOK=1"' in a
    assert 'if not "%ARCH%"=="x64" goto :wrong_arch' in a
    verify = a[a.index(":verify"):]
    assert re.search(r'findstr /i "KB4012212 KB4012215 [^"]*KB4015549', verify)
    assert 'reg add "HKLM\\SYSTEM\\CurrentControlSet\\Services\\LanmanServer\\Parameters" /v SMB1 /t REG_DWORD /d 0 /f' in a
    r = g.rollback
    assert 'reg delete "HKLM\\SYSTEM\\CurrentControlSet\\Services\\LanmanServer\\Parameters" /v SMB1 /f' in r
    assert r.index('if /i not "%~1"=="updates" goto :updates_kept') < r.index("wusa.exe /uninstall /kb:4012212 /quiet /norestart")


def test_2008r2_script_installs_sp1_then_stops(en):
    a = group_of(en, "APP-R2-01").apply
    assert 'for %%B in (7600) do if "%%B"=="%OSBUILD%" set "HIT=1"' in a
    sp, upd = a.index("call :install_exe KB976932"), a.index("call :install_msu KB4012212")
    assert sp < upd and "restart, then run this script again" in a[sp:upd]
    assert 'for %%B in (7600 7601) do' in a  # RTM and SP1 hosts may run it (the second run installs the update)


def test_xp_script(en):
    g = group_of(en, "XPSP3-LAB")
    a, r = g.apply, g.rollback
    assert g.flavour == "cmd" and g.architecture is None
    assert "call :install_exe KB4012598" in a and 'set "PKG_FILE=*KB4012598*%ARCH%*"' in a
    assert '"%PKG%" /quiet /norestart' in a  # install-update-nt5 template
    assert 'reg add "HKLM\\SYSTEM\\CurrentControlSet\\Services\\NetBT\\Parameters" /v SMBDeviceEnabled /t REG_DWORD /d 0 /f' in a
    assert "netsh firewall set service type=FILEANDPRINT mode=DISABLE" in a and "sc config lanmanserver start= disabled" in a
    assert 'reg query "HKLM\\SOFTWARE\\Microsoft\\Updates" /s' in a  # XP keeps updates there
    assert "/v SMBDeviceEnabled /t REG_DWORD /d 1 /f" in r and "mode=ENABLE" in r and "sc config lanmanserver start= auto" in r
    assert "%windir%\\$NtUninstallKB4012598$\\spuninst\\spuninst.exe /quiet" in r


def test_powershell_scripts(en):
    g = group_of(en, "W10-1909-LZNT1")
    a, r = g.apply, g.rollback
    assert g.flavour == "ps1" and "param([switch]$Verify)" in a
    assert "-Name DisableCompression -Type DWORD -Value 1 -Force" in a
    assert a.index("DisableCompression") < a.index("Install-Package 'KB4551762'")
    assert "$Ubr -ge 720" in a and "$Ubr -lt 720" in a
    assert "-Name DisableCompression -Type DWORD -Value 0 -Force" in r
    assert "Start-Process -Wait -FilePath wusa.exe -ArgumentList '/uninstall /kb:4551762 /quiet /norestart'" in r
    s = group_of(en, "WS2019")
    assert "Set-SmbServerConfiguration -RequireSecuritySignature $true -Force" in s.apply
    assert "Set-SmbServerConfiguration -RequireSecuritySignature $false -Force" in s.rollback


def test_rollback_inverts_every_scripted_action(en):
    from smbsentry.remediate.plan_model import commands_for as _commands
    from smbsentry.kb import query

    for g in en.groups:
        if g.flavour == "sh":
            continue
        product = query.product(g.products[0])
        positions = []
        for s in g.steps:
            a = kb().actions.get(s.id)
            if not (a and s.scripted) or s.id.startswith("install-") or a.kind == "check":
                continue
            undo = _commands(a, g.flavour, product, rollback=True)
            assert undo, f"{g.name}: {s.id} has no rollback"
            for cmd in undo:
                shown = re.sub(r"^sc ", "sc.exe ", cmd) if g.flavour == "ps1" else cmd
                assert shown in g.rollback, f"{g.name}: {s.id}: {shown}"
            positions.append(g.rollback.index(undo[0] if g.flavour == "cmd" else re.sub(r"^sc ", "sc.exe ", undo[0])))
        assert positions == sorted(positions, reverse=True), f"{g.name}: rollback is not in reverse order"


# --- bundle -------------------------------------------------------------------------------------------

def test_bundle(en):
    rows = {(r.product, r.architecture, r.kb): r for r in en.bundle if r.language in (None, "en-us")}
    r = rows[("windows-7-sp1", "x64", "KB4012212")]
    assert r.role == "key" and r.file.startswith("windows6.1-kb4012212-x64_") and r.url.startswith("http://download.windowsupdate.com/")
    assert rows[("windows-7-sp1", "x64", "KB4012215")].role == "alternative"
    sp = rows[("windows-server-2008-r2-rtm", "x64", "KB976932")]
    assert sp.role == "base" and sp.file == "windows6.1-KB976932-X64.exe"
    assert rows[("windows-server-2008-r2-sp1", "x64", "KB4012212")].role == "key"
    xp = rows[("windows-xp-sp3", "x86", "KB4012598")]  # per-language packages: English and Chinese rows
    assert xp.language == "en-us" and "-enu_" in xp.file and xp.url.startswith("http://download.windowsupdate.com/")
    zh = next(r for r in en.bundle if (r.product, r.architecture, r.kb, r.language) == ("windows-xp-sp3", "x86", "KB4012598", "zh-cn"))
    assert zh.file is None and "not imported" in zh.note and "WindowsXP-KB4012598-x86-Custom-CHS.exe" in zh.note
    assert ("windows-xp-sp3", "ia64", "KB4012598") not in rows
    assert rows[("windows-10-1909", "x64", "KB4551762")].role == "key"
    order = [(r.os, r.architecture, r.order) for r in en.bundle]  # noqa: the language only breaks ties
    assert order == sorted(order)


# --- hostile names --------------------------------------------------------------------------------

def test_safe_label():
    assert safe_label(HOSTILE) == "x_del_c"
    assert safe_label("") == "unnamed" and safe_label("WS-FIN-07.corp") == "WS-FIN-07.corp"
    assert safe_label("a\r\nrem & calc") == "a_rem_calc"


def test_hostile_names_stay_data(en, tmp_path):
    h = en.host("127.50.0.8")
    assert h.name == HOSTILE  # kept as data in the plan
    written = write_plan(en, tmp_path)
    scripts = [p for p in written if p.parent.name == "scripts"]
    assert scripts
    for p in scripts:
        text = p.read_bytes().decode("utf-8-sig" if p.suffix != ".cmd" else "ascii")
        low = text.lower()
        assert "del c:" not in low and 'x"' not in text and "%path%" not in low and "<b>" not in text, p.name
        for line in text.splitlines():
            if "x_del_c" in line:
                assert line.startswith(("rem ", "# ")), f"{p.name}: host name outside a comment: {line!r}"
        if p.suffix == ".cmd":  # no comment line can continue or break out
            for line in text.splitlines():
                if line.startswith("rem "):
                    assert not line.rstrip().endswith("^") and "%" not in line.replace("%%", ""), line
    md = (tmp_path / "plan.md").read_text(encoding="utf-8")
    assert HOSTILE not in md and "x\"; del c:\\\\ &amp; \"" in md
    assert "&lt;b&gt;x&lt;/b&gt;" in md and "<b>" not in md
    doc = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    assert any(x["name"] == HOSTILE for x in doc["hosts"])
    fw = (tmp_path / "scripts" / "firewall-snippet.txt").read_text()
    assert "iptables -I FORWARD -s 127.50.0.4 -j DROP" in fw and "del c:" not in fw.lower()



def test_installer_exit_codes_in_the_scripts_come_from_the_knowledge_base(en, tmp_path):
    """wusa.exe's exit codes are data (remediation.json, with Microsoft's pages as sources); the cmd and PowerShell
    apply scripts are generated from them: each code explained, restart-needed and already-installed taken as success,
    not-applicable counted as a failure."""
    exits = {e.code: e for e in kb().remediation.installer_exits}
    assert {c: (e.name, e.outcome) for c, e in exits.items()} == {
        3010: ("ERROR_SUCCESS_REBOOT_REQUIRED", "reboot"), 2359302: ("WU_S_ALREADY_INSTALLED", "installed"),
        -2145124329: ("WU_E_NOT_APPLICABLE", "failed")}
    assert all(e.source and all(s in kb().sources for s in e.source) for e in exits.values())
    written = write_plan(en, tmp_path)
    cmd = [p for p in written if p.name.endswith("-apply.cmd") and "install_msu" in p.read_text("ascii")]
    ps1 = [p for p in written if p.name.endswith("-apply.ps1") and "wusa.exe" in p.read_text("utf-8-sig")]
    assert cmd and ps1
    for p in cmd:
        lines = p.read_text("ascii").splitlines()
        for kind in ("msu", "exe"):
            at = lines.index('set "RC=%ERRORLEVEL%"', lines.index(f":install_{kind}"))
            assert lines[at + 1 : at + 7] == [
                'if "%RC%"=="3010" echo [smbsentry] %1: restart needed',
                'if "%RC%"=="2359302" echo [smbsentry] %1: already installed',
                'if "%RC%"=="-2145124329" echo [smbsentry] %1: not applicable: check the service pack and architecture',
                'if "%RC%"=="3010" set "RC=0"',
                'if "%RC%"=="2359302" set "RC=0"',
                'if "%RC%"=="0" set "REBOOT=1"']
    for p in ps1:
        lines = p.read_text("utf-8-sig").splitlines()
        at = lines.index("    switch ($p.ExitCode) {")
        assert lines[at + 1 : at + 6] == [
            "        0 { $script:Reboot = $true }",
            "        3010 { $script:Reboot = $true }",
            "        2359302 { Write-Host ('[smbsentry] {0}: already installed' -f $Kb) }",
            "        -2145124329 { Write-Host ('[smbsentry] {0}: not applicable: check the service pack and architecture' -f $Kb);"
            " $script:Failed++ }",
            "        default { Write-Host ('[smbsentry] {0} failed: exit code {1}' -f $Kb, $p.ExitCode); $script:Failed++ }"]


def test_invalid_addresses_never_reach_scripts():
    bad = json.loads(json.dumps(R2_RTM))
    bad["address"] = "127.0.0.1; rm -rf /"
    bad["host"] = "$(reboot)`calc`"
    p = plan([bad], "en", as_of=AS_OF)
    text = p.groups[0].apply + p.groups[0].rollback + p.firewall
    assert "rm -rf" not in text and "$(reboot)" not in text and "`calc`" not in text
    assert "reboot_calc" in text


# --- files and the entry point ----------------------------------------------------------------------

def test_write_plan_files(en, tmp_path):
    written = write_plan(en, tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"plan.md", "plan.json", "bundle.csv", "scripts/firewall-snippet.txt"} <= names
    for g in en.groups:
        assert f"scripts/{g.name}-apply{g.extension}" in names and f"scripts/{g.name}-rollback{g.extension}" in names
    ps1 = next(p for p in written if p.suffix == ".ps1")
    assert ps1.read_bytes().startswith(codecs.BOM_UTF8) and b"\r\n" in ps1.read_bytes()
    cmd = next(p for p in written if p.suffix == ".cmd").read_bytes()
    assert cmd.isascii() and b"\r\n" in cmd and b"\n" not in cmd.replace(b"\r\n", b"")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "bundle.csv").read_text(encoding="utf-8-sig"))))
    assert rows[0].keys() >= {"order", "role", "kb", "os", "architecture", "file", "url", "hosts"}
    assert any(r["kb"] == "KB976932" and r["role"] == "base" for r in rows)
    doc = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    assert doc["format"] == "smbsentry-plan" and {x["reason"] for x in doc["isolate_now"]} == {"implant", "wannacry"}
    assert (tmp_path / "bundle").is_dir()


def test_chinese_cmd_scripts_are_gbk(mixed, tmp_path):
    p = plan(mixed, "zh", as_of=AS_OF)
    write_plan(p, tmp_path)
    cmd = (tmp_path / "scripts" / f"{p.host('XPSP3-LAB').group}-apply.cmd").read_bytes()
    text = cmd.decode("gbk")
    assert "未打补丁的 Windows XP" in text and "SMBDeviceEnabled" in text


def test_main_plan(tmp_path, mixed, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes(codecs.BOM_UTF16_LE + "".join(json.dumps(h) + "\n" for h in mixed).encode("utf-16-le"))
    assert main_plan([src], tmp_path / "out", "zh", as_of=AS_OF) == 0
    assert "9 hosts" in capsys.readouterr().out
    assert "## 1. 立即隔离" in (tmp_path / "out" / "plan.md").read_text(encoding="utf-8")
    assert main_plan([src], tmp_path / "out2", "fr") == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"nothing": 1}')
    assert main_plan([bad], tmp_path / "out3", "en") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "neither a scan result" in err
    assert main_plan([tmp_path / "missing.json"], tmp_path / "out4", "en") == 2


def test_host_seen_only_through_other_services_gets_no_smb_steps():
    """A 2008 R2 domain controller whose 139/445 did not answer, known from RDP's NTLM: no advice
    to stop its Server service or close SMB; the upgrade and the isolation stand, with a note."""
    dc = scan("127.50.0.10", "DC01", "Windows 7 SP1 / Server 2008 R2 SP1", ["Windows 7 SP1", "Windows Server 2008 R2 SP1"],
              [finding("eol-os", "vulnerable"), finding("eskimoroll", "likely")], build=7601, smb1=False)
    dc["ports"] = {"445": "closed", "139": "closed"}
    dc["smb1"], dc["smb2"] = None, None
    dc["services"] = {"rdp": {"selected_protocol": "HYBRID", "ntlm": {"netbios_name": "DC01"}}}
    both = [plan([dc], lang, as_of=AS_OF).hosts[0] for lang in ("en", "zh")]
    for h in both:
        order = ids(h)
        assert "upgrade-os" in order and "isolate-segment" in order
        for step in ("stop-server-service", "block-smb-firewall", "block-smb-border", "disable-smb1-server"):
            assert step not in order, (step, order)
    assert any("did not answer the scan" in n for n in both[0].notes)
    assert any("没有应答" in n for n in both[1].notes)
    # the same host with 445 open gets the SMB steps, but its shares were not listed: the Server service
    # stays a manual choice; with its role known (a domain controller), the choice says why
    dc["ports"] = {"445": "open", "139": "closed"}
    order = ids(plan([dc], "en", as_of=AS_OF).hosts[0])
    assert "server-service-choice" in order and "block-smb-border" in order and "stop-server-service" not in order
    dc["role"] = {"value": "domain-controller", "evidence": ["a Kerberos KDC answered on 88"], "shares_visible": False,
                  "data_shares": []}
    h = plan([dc], "en", as_of=AS_OF).hosts[0]
    choice = next(s for s in h.steps if s.id == "server-service-choice")
    assert "domain controller" in choice.text and "SYSVOL" in choice.text
    assert ids(h)[0] == "backup" and "domain controller" in h.steps[0].text


def test_enablement_package_build_is_named_as_the_range_and_planned_as_its_latest_release():
    """NTLM build 19041 may be Windows 10 2004 to 22H2 (or Server 2004/20H2): the plan names the
    range, takes 22H2's updates and end of support, and says so."""
    from smbsentry.kb.builds import lookup

    g = lookup(10, 0, 19041)
    assert g.name == "Windows 10 2004-22H2 / Server 2004-20H2"
    assert g.lines[0][-1] == "Windows 10 22H2" and g.lines[1] == ("Windows Server 2004", "Windows Server 20H2")
    rec = scan("127.50.0.30", "W10-22H2", g.name, list(g.candidates), [finding("eol-os", "vulnerable")], build=19041, smb1=False)
    h = plan([rec], "en", as_of=AS_OF).hosts[0]
    assert h.os == "Windows 10 2004-22H2 / Server 2004-20H2"
    assert h.product == "windows-10-22h2" and h.end_of_support == "2025-10-14"
    assert any("takes Windows 10 22H2's updates" in n for n in h.notes)


# --- unknowns, conflicts, the ranked list -----------------------------------------------------------

def test_unknowns_become_verify_steps_and_untested_hosts_are_never_clean():
    locked = scan("127.50.0.40", "LOCKED", "Windows 7 SP1 / Server 2008 R2 SP1", ["Windows 7 SP1", "Windows Server 2008 R2 SP1"],
                  [{**finding("ms17-010", "unknown"), "reason": "probe could not run: anonymous logon refused"},
                   {**finding("doublepulsar", "unknown"), "reason": "ping needs an SMB1 session on IPC$"},
                   finding("smbv1-enabled", "vulnerable")], build=7601)
    silent = {"address": "127.50.0.41", "ports": {"445": "open"}, "smb1": None, "smb2": None, "identity": {},
              "findings": [{**finding("ms17-010", "unknown"), "reason": "probe could not run: no SMB1 session"}],
              "errors": ["445 smb1-negotiate: io-timeout: no complete reply within 5s"]}
    p = plan([locked, silent], "en", as_of=AS_OF)
    lk = p.host("127.50.0.40")
    verify = [s for s in lk.steps if s.id == "verify"]
    assert len(verify) == 1 and verify[0].findings == ["ms17-010", "doublepulsar"]  # one step per way of settling
    assert "--user" in verify[0].text and "anonymous logon refused" in verify[0].text
    sl = p.host("127.50.0.41")
    assert sl.category == "verify" and [s.id for s in sl.steps] == ["verify"]
    assert "io-timeout" in sl.steps[0].text and "not known to be safe" in sl.steps[0].text
    rows = [r for r in p.actions if r.address == "127.50.0.41"]
    assert [r.category for r in rows] == ["verify"]


def test_scan_and_audit_disagreeing_is_flagged_with_causes_and_how_to_settle():
    host = scan("127.50.0.42", "WS-CONFLICT", "Windows 7 SP1 / Server 2008 R2 SP1", ["Windows 7 SP1", "Windows Server 2008 R2 SP1"],
                [finding("ms17-010", "vulnerable", evidence="PeekNamedPipe on FID 0 answered 0xC0000205")], build=7601)
    inventory = {"host": "WS-CONFLICT", "address": "127.50.0.42", "source": "ws-conflict.txt",
                 "facts": {"os_name": "Microsoft Windows 7 Professional", "os_version": "6.1.7601", "service_pack": 1,
                           "build": 7601, "architecture": "x64", "installed_kbs": ["KB4012212"]},
                 "verdicts": [{"id": "ms17-010", "status": "patched", "evidence": "KB4012212 installed", "fix": None}]}
    p = plan([host, inventory], "en", as_of=AS_OF)
    h = p.host("127.50.0.42")
    step = next(s for s in h.steps if s.id == "resolve-conflict")
    assert "disagree" in step.text and "restart" in step.text and "KB4012212 installed" in step.text
    assert "install-update:KB4012212" in ids(h)  # the wire wins until it is settled
    row = next(r for r in p.actions if r.address == "127.50.0.42" and r.category == "verify")
    assert row.step == "resolve-conflict" and "scan vulnerable, audit patched" in row.why
    zh = plan([host, inventory], "zh", as_of=AS_OF).host("127.50.0.42")
    assert "不一致" in next(s for s in zh.steps if s.id == "resolve-conflict").text


def test_ranked_list_isolate_first_then_vulnerable_then_likely_then_hardening_then_verify(en):
    ranks = [r.rank for r in en.actions]
    assert ranks == sorted(ranks) and ranks[0] == 1
    first = en.actions[0]
    assert first.category == "isolate-now" and first.step == "isolate-now"
    for r in en.actions:
        assert r.step in {s.id for s in en.host(r.key).steps}  # the next step is a real step of that host's plan
    # a disruptive next step is preceded by the backup gate when the host has one
    fin = next(r for r in en.actions if r.host == "WS-FIN-07" and r.category == "vulnerable")
    assert fin.step == "backup"
