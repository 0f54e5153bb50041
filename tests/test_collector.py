"""The PowerShell collector: the script itself (static checks) and its JSON as an inventory format.

The fixtures in tests/data/remote are byte-for-byte what the collector writes:
collector-ws-fin-07-ps51.json as Windows PowerShell 5.1's ConvertTo-Json lays
it out, redirected with `>` (UTF-16 LE with a BOM, CRLF); collector-cw-xp-
lab3-ps2.json as the script's own writer on PowerShell 2.0 (also redirected).
The two layout functions below re-create those layouts so the test can prove
the files are exact, not hand-indented approximations.
"""

from __future__ import annotations

import codecs
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from smbsentry.audit import audit_files
from smbsentry.audit.collector import collector_script
from smbsentry.audit.formats import collector as collector_format

DATA = Path(__file__).parent / "data" / "remote"
PS51 = DATA / "collector-ws-fin-07-ps51.json"
PS2 = DATA / "collector-cw-xp-lab3-ps2.json"


# --- layouts ------------------------------------------------------------------------------

def _js_string(text: str) -> str:
    """JavaScriptSerializer's string escaping (Windows PowerShell 5.1 ConvertTo-Json)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "<>&'":
            out.append(f"\\u{ord(ch):04x}")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def _scalar(value, string) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    return string(value)


def ps51_convertto_json(value, col: int = 0) -> str:
    """Windows PowerShell 5.1's pretty printer: four spaces per level, two after the colon, and a
    nested value's contents indented four past the column where its bracket opened."""
    if isinstance(value, dict):
        if not value:
            return "{\r\n\r\n" + " " * col + "}"
        parts = []
        for k, v in value.items():
            key = _js_string(k) + ":  "
            parts.append(" " * (col + 4) + key + ps51_convertto_json(v, col + 4 + len(key)))
        return "{\r\n" + ",\r\n".join(parts) + "\r\n" + " " * col + "}"
    if isinstance(value, list):
        if not value:
            return "[\r\n\r\n" + " " * col + "]"
        parts = [" " * (col + 4) + ps51_convertto_json(v, col + 4) for v in value]
        return "[\r\n" + ",\r\n".join(parts) + "\r\n" + " " * col + "]"
    return _scalar(value, _js_string)


def _ps2_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 32 or code > 126:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def ps2_sentry_json(value, level: int = 0) -> str:
    """ConvertTo-SentryJson in collect.ps1 (PowerShell 2.0 has no ConvertTo-Json)."""
    inner, outer = "  " * (level + 1), "  " * level
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = [inner + _ps2_string(k) + ": " + ps2_sentry_json(v, level + 1) for k, v in value.items()]
        return "{\r\n" + ",\r\n".join(parts) + "\r\n" + outer + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\r\n" + ",\r\n".join(inner + ps2_sentry_json(v, level + 1) for v in value) + "\r\n" + outer + "]"
    return _scalar(value, _ps2_string)


def _redirected(data: bytes) -> str:
    """What `> file` in Windows PowerShell wrote: UTF-16 LE with a BOM and a final CRLF."""
    assert data.startswith(codecs.BOM_UTF16_LE)
    text = data[2:].decode("utf-16-le")
    assert text.endswith("}\r\n") and "\n" not in text.replace("\r\n", "")
    return text[:-2]


# --- the fixtures are exactly what PowerShell writes ----------------------------------------

def test_ps51_fixture_is_convertto_json_layout():
    text = _redirected(PS51.read_bytes())
    doc = json.loads(text)
    assert text == ps51_convertto_json(doc)
    # the hallmarks of 5.1's printer, visible in the file itself
    assert '\r\n    "format":  "smbsentry-collector",\r\n' in text
    assert '"hotfixes":  [\r\n                     {\r\n                         "id":  "KB2534111",' in text
    assert '"files":  [\r\n\r\n' in text  # empty arrays print as two line breaks
    assert "Bob\\u0027s Tools \\u003cbeta\\u003e \\u0026 more" in text


def test_ps2_fixture_is_the_scripts_writer_layout():
    text = _redirected(PS2.read_bytes())
    doc = json.loads(text)
    assert text == ps2_sentry_json(doc)
    assert text.isascii()  # the writer escapes everything outside printable ASCII
    assert "\\u5f20\\u4f1f" in text


# --- parsed into facts ------------------------------------------------------------------

def test_ps51_output_parses_into_facts_and_verdicts():
    run = audit_files([PS51])
    assert run.errors == []
    (r,) = run.results
    f = r.facts
    assert (r.host, r.address) == ("WS-FIN-07", "10.20.4.57")
    assert f.os_name == "Microsoft Windows 7 Professional"
    assert (f.os_version, f.service_pack, f.build, f.ubr, f.architecture, f.edition) == ("6.1.7601", 1, 7601, None, "x64", "Professional")
    assert f.product == "windows-7-sp1"
    assert f.installed_kbs == sorted(f.installed_kbs, key=lambda k: int(k[2:])) and "KB3212646" in f.installed_kbs and len(f.installed_kbs) == 9
    assert f.smb1_server is True  # SMB1 value absent on Windows 7: the default, on
    assert f.smb_device_enabled is True
    assert f.disable_compression is False
    assert f.server_service == "running"
    assert f.listening == {"139": True, "445": True, "3389": False}
    assert f.firewall_blocks_smb is False  # only the built-in allow rules cover 445
    assert any("Allow" in x and "445" in x for x in f.firewall_rules)
    assert f.wannacry_indicators == []
    assert f.file_versions == {"srv.sys": "6.1.7601.23642", "srv2.sys": "6.1.7601.23642"}
    assert f.domain_controller is False and f.guest_enabled is False and f.rdp_enabled is False
    assert f.smb_signing_required is False and f.restrict_null_sessions is True
    assert f.software["Bob's Tools <beta> & more"] == "1.0"
    assert r.source == PS51.name
    v = r.verdict("ms17-010")
    assert v.status == "missing"
    assert "srv.sys 6.1.7601.23642 is below 6.1.7601.23689" in v.evidence
    assert [x["kb"] for x in v.fix] == ["KB4012212", "KB4012215"]
    assert r.verdict("smbv1-enabled").status == "missing"
    assert r.verdict("cve-2020-0796").status == "not_applicable"


def test_ps2_output_from_windows_xp_with_wannacry():
    run = audit_files([PS2])
    assert run.errors == []
    (r,) = run.results
    f = r.facts
    assert (f.host, f.address, f.product, f.architecture, f.service_pack, f.build) == ("CW-XP-LAB3", "192.168.31.40", "windows-xp-sp3", "x86", 3, 2600)
    assert f.installed_kbs == ["KB958644", "KB968930", "KB2347290", "KB2686509"]
    assert "file C:\\Documents and Settings\\张伟\\桌面\\@WanaDecryptor@.exe" in f.wannacry_indicators
    assert "service mssecsvc2.0" in f.wannacry_indicators and "process mssecsvc.exe (pid 1620)" in f.wannacry_indicators
    assert f.firewall_blocks_smb is False  # XP firewall on, but the File and Printer Sharing exception is open
    assert f.smb_device_enabled is True and f.smb1_server is True
    v = r.verdict("ms17-010")
    assert v.status == "missing" and "WannaCry indicators present" in v.evidence
    assert r.verdict("ms08-067").status == "patched"
    assert r.verdict("eol-os").status == "missing"


def test_utf8_outfile_and_unknown_version(tmp_path):
    doc = json.loads(_redirected(PS51.read_bytes()))
    ok = tmp_path / "ok.json"
    ok.write_bytes(codecs.BOM_UTF8 + json.dumps(doc).encode())  # -OutFile: Out-File -Encoding UTF8
    assert audit_files([ok]).results[0].facts.build == 7601
    doc["version"] = 2
    bad = tmp_path / "v2.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    run = audit_files([bad, ok])
    assert len(run.results) == 1 and len(run.errors) == 1
    assert "smbsentry-collector version 2 is not supported" in str(run.errors[0])


def test_collector_defaults_and_firewall_decisions():
    base = json.loads(_redirected(PS51.read_bytes()))
    # Windows 8+ with Get-SmbServerConfiguration: it decides SMB1 and signing
    doc = json.loads(json.dumps(base))
    doc["smb"]["server_configuration"] = {"EnableSMB1Protocol": False, "EnableSMB2Protocol": True, "RequireSecuritySignature": True,
                                          "EnableSecuritySignature": True, "EncryptData": False, "AuditSmb1Access": None}
    doc["smb"]["lanmanserver_parameters"]["DisableCompression"] = 1
    doc["firewall"]["rules"].append({"name": "smbsentry: block inbound SMB", "enabled": True, "direction": "Inbound", "action": "Block",
                                     "protocol": "TCP", "local_ports": "139,445", "profile": "Any"})
    doc["server_service"] = {"state": "Stopped", "start_mode": "Disabled", "start_registry": 4}
    f = collector_format.parse_item(doc, "x.json", 1)
    assert (f.smb1_server, f.smb_signing_required, f.disable_compression, f.firewall_blocks_smb, f.server_service) == (False, True, True, True, "disabled")
    # firewall off in every profile: a block rule does not block
    doc["firewall"]["profiles"] = {"DomainProfile": 0, "StandardProfile": 0, "PublicProfile": 0}
    assert collector_format.parse_item(doc, "x.json", 1).firewall_blocks_smb is False
    # Windows 10 without the SMB 1.0 feature: the srv driver service is gone
    doc = json.loads(json.dumps(base))
    doc["os"].update(caption="Microsoft Windows 10 Pro", version="10.0.18363", build_number="18363", current_build_number="18363", ubr=720,
                     csd_version=None, service_pack_major=0)
    doc["smb"]["srv_driver"] = {"key_found": False, "Start": None}
    f = collector_format.parse_item(doc, "x.json", 1)
    assert (f.smb1_server, f.ubr, f.build) == (False, 720, 18363)
    # a failed hotfix read is "not known", never "nothing installed"
    doc["hotfixes"] = None
    doc["installed_kbs"] = None
    assert collector_format.parse_item(doc, "x.json", 1).installed_kbs is None


# --- the script ---------------------------------------------------------------------------

def _code_only(script: str) -> str:
    """The script with comments and string contents removed (PowerShell quoting rules)."""
    out, i, n = [], 0, len(script)
    while i < n:
        ch = script[i]
        if script.startswith("<#", i):
            i = script.index("#>", i) + 2
        elif ch == "#":
            j = script.find("\n", i)
            i = n if j < 0 else j
        elif ch == "'":
            j = i + 1
            while True:
                j = script.index("'", j)
                if script.startswith("''", j):
                    j += 2
                    continue
                break
            out.append("''")
            i = j + 1
        elif ch == '"':
            j = i + 1
            while script[j] != '"':
                j += 2 if script[j] == "`" else 1
            out.append('""')
            i = j + 1
        elif ch == "`":
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def test_script_is_balanced():
    code = _code_only(collector_script())
    stack = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for no, line in enumerate(code.split("\n"), 1):
        for ch in line:
            if ch in "([{":
                stack.append((ch, no))
            elif ch in ")]}":
                assert stack and stack[-1][0] == pairs[ch], f"unbalanced {ch!r} on code line {no}"
                stack.pop()
    assert not stack, f"unclosed {stack[-1]}"


@pytest.mark.parametrize("item", [
    # OS facts
    "Win32_OperatingSystem", "'ProductName'", "'CurrentBuild'", "'CurrentBuildNumber'", "'UBR'", "'EditionID'", "'CSDVersion'",
    "PROCESSOR_ARCHITECTURE",
    # updates
    "Get-HotFix", "Win32_QuickFixEngineering", r"SOFTWARE\Microsoft\Updates",
    # SMB configuration
    "Get-SmbServerConfiguration", "EnableSMB1Protocol", "'SMB1'", "'SMBDeviceEnabled'", "'DisableCompression'",
    r"Services\LanmanServer\Parameters", r"Services\NetBT\Parameters", "'RequireSecuritySignature'",
    # the Server service and the ports
    "Name='LanmanServer'", "StartMode", "netstat -an", "Get-NetTCPConnection", "'139', '445'",
    # firewall
    "Get-NetFirewallRule", "Get-NetFirewallPortFilter", r"FirewallPolicy\FirewallRules", "FileAndPrint",
    # WannaCry (seed 004)
    "'mssecsvc.exe'", "'tasksche.exe'", "'taskse.exe'", "'@WanaDecryptor@.exe'", "mssecsvc2.0", "Get-Process",
    # output
    "'smbsentry-collector'", "$SentryVersion = 1", "ConvertTo-Json -Depth", "ConvertTo-SentryJson",
])
def test_script_collects(item):
    assert item in collector_script()


def test_script_runs_on_powershell_2():
    script = collector_script()
    code = _code_only(script)
    for construct in ("[ordered]", "[pscustomobject]", " -in ", " -notin ", "$PSScriptRoot", "::new(", ".Where(", ".ForEach("):
        assert construct.lower() not in code.lower(), construct
    assert not re.search(r"^\s*(class|enum|using)\s", code, re.M | re.I)  # PowerShell 5 syntax
    # cmdlets that Windows 7's PowerShell 2.0 lacks appear only behind Test-Command guards
    for cmdlet in ("Get-SmbServerConfiguration", "Get-NetTCPConnection", "Get-NetFirewallRule", "Get-CimInstance", "ConvertTo-Json"):
        first_use = min(m.start() for m in re.finditer(re.escape(cmdlet) + r"\b(?!')", code))
        guard = code.rfind("Test-Command ''", 0, first_use)
        assert guard != -1 and first_use - guard < 400, f"{cmdlet} used without a Test-Command guard"
    assert "-ErrorAction Stop" in script and "Add-Problem" in script


def test_package_data_ships_the_script():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "audit/collector/*.ps1" in pyproject["tool"]["setuptools"]["package-data"]["smbsentry"]
    assert collector_script().startswith("<#")


@pytest.mark.skipif(shutil.which("pwsh") is None, reason="pwsh is not installed (the static checks above stand in)")
def test_script_parses_with_pwsh(tmp_path):
    path = tmp_path / "collect.ps1"
    path.write_text(collector_script(), encoding="utf-8")
    cmd = ("$t=$null;$e=$null;[void][System.Management.Automation.Language.Parser]::ParseFile("
           f"'{path}',[ref]$t,[ref]$e);$e.Count")
    out = subprocess.run(["pwsh", "-NoProfile", "-NonInteractive", "-Command", cmd], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stdout + out.stderr
