"""Apply / rollback scripts per host group, and the firewall snippet.

* cmd + reg for Windows XP / Server 2003, Vista / 2008, 7 / 2008 R2 (no
  PowerShell needed; cmd has no PowerShell 2 gaps);
* PowerShell for Windows 8 / Server 2012 and later;
* sh for Samba.

Safety rules:
* Nothing that came from the network or an inventory is executed or
  interpolated into a command.  Commands are the knowledge base's templates
  (actions.json) filled with KB numbers and package file names from the
  knowledge base; host names and addresses appear only in comments, after
  `safe_label` reduced them to [A-Za-z0-9._-] (a NetBIOS name like
  `x"; del c:\\ & "` becomes `x__del_c___`); addresses are printed only
  when they parse as IP addresses.
* Each apply script first checks that it runs on the OS builds and the
  architecture of its group, as Administrator, and, before the first step
  that interrupts service (unless the hosts are proven to hold no data),
  that SMBSENTRY_BACKUP_DONE=1 says the backup exists: without it the script
  stops (exit 3) before changing anything.
* A service pack ends the run: restart, then run the script again.
* Rollback scripts undo the configuration changes in reverse order; they
  remove updates only when asked (`updates` / -IncludeUpdates).
"""

from __future__ import annotations

import ipaddress
import re
import textwrap
from datetime import date

from ..kb.model import Action
from ..kb.store import kb
from .texts import t as tr
from .plan_model import HostPlan, Plan, ScriptGroup, Step, commands_for

SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_label(text: str | None, limit: int = 40) -> str:
    """A remote string reduced to letters, digits, dot, dash and underscore, for comments and file names."""
    out = SAFE.sub("_", text or "").strip("_.")[:limit]
    return out or "unnamed"


def safe_address(text: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        return None


def host_label(h: HostPlan) -> str:
    addr = safe_address(h.address)
    name = safe_label(h.name) if h.name else None
    if name and addr:
        return f"{name} ({addr})"
    return name or addr or safe_label(h.key)


def _comment_text(text: str, flavour: str) -> str:
    """Trusted text (kb, planner) made harmless for a one-line comment in the script's language."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    if flavour == "cmd":
        # cmd expands %...% even in REM lines and a trailing caret joins the next line.
        text = text.replace("%", " percent ").replace("^", " ").replace("&", " and ").replace("|", "/").replace("<", "(").replace(">", ")")
    return text


def _comments(lines: list[str], flavour: str, width: int = 100) -> list[str]:
    mark = "rem " if flavour == "cmd" else "# "
    out = []
    for line in lines:
        clean = _comment_text(line, flavour)
        wrapped = textwrap.wrap(clean, width) or [""]
        out += [(mark + w).rstrip() for w in wrapped]
    return out


def _action(step: Step) -> Action | None:
    return kb().actions.get(step.id)


def _header(g: ScriptGroup, hosts: list[HostPlan], kind: str, lang: str, today: date) -> list[str]:
    os_names = ", ".join(dict.fromkeys(h.os for h in hosts if h.os)) or "?"
    shown = [host_label(h) for h in hosts[:40]]
    more = f" and {len(hosts) - 40} more" if len(hosts) > 40 else ""
    run = {"cmd": (f"{g.name}-apply.cmd", f"{g.name}-apply.cmd verify", f"{g.name}-rollback.cmd [updates]"),
           "ps1": (f".\\{g.name}-apply.ps1", f".\\{g.name}-apply.ps1 -Verify", f".\\{g.name}-rollback.ps1 [-IncludeUpdates]"),
           "sh": (f"sh {g.name}-apply.sh", f"sh {g.name}-apply.sh verify", f"sh {g.name}-rollback.sh")}[g.flavour]
    lines = [
        "=" * 90,
        f"smbsentry remediation plan - group {g.name} ({kind})",
        f"OS: {os_names}; architecture: {g.architecture or 'picked per host'}; builds: {' '.join(map(str, g.builds)) or '-'}",
        f"hosts ({len(hosts)}): {', '.join(shown)}{more}",
        f"generated {today.isoformat()} by smbsentry plan (read plan.md first); run as "
        f"{'root' if g.flavour == 'sh' else 'Administrator'} on each host of the group.",
        f"apply: {run[0]}; check afterwards: {run[1]}; undo: {run[2]}",
        "=" * 90,
    ]
    return _comments(lines, g.flavour)


def _step_comment(n: int, s: Step, flavour: str, lang: str = "en") -> list[str]:
    head = f"step {n}: {s.id}" + (f" {s.kb}" if s.kb else "") + (f" ({', '.join(s.findings)})" if s.findings else "")
    # steps whose text quotes host data (share names, evidence) get the generic wording: no remote strings in scripts
    text = tr(s.text_key, lang, **{k: "see plan.md" for k in s.text_args}) if s.text_key else s.text
    lines = [head, text]
    if s.title:
        lines.append(s.title)
    if s.note:
        lines.append(s.note)
    return _comments(["-" * 80] + lines, flavour)


# --- cmd ------------------------------------------------------------------------------------------

def _cmd_files(s: Step, arch: str | None) -> list[str]:
    """Lines that set PKG_FILE to the package name for the host's architecture (a wildcard when the kb has none)."""
    lines = ['set "PKG_FILE="']
    for a, name in sorted(s.files.items()):
        if arch is None or a == arch:
            lines.append(f'if "%ARCH%"=="{a}" set "PKG_FILE={name}"')
    lines.append(f'if not defined PKG_FILE set "PKG_FILE=*{s.kb}*%ARCH%*"')
    return lines


def _fill(template: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


def _cmd_apply(g: ScriptGroup, hosts: list[HostPlan], lang: str, today: date) -> str:
    """The group's apply.cmd: checks (admin, OS build, architecture), the steps in order, `verify`, the helpers."""
    nt5 = g.family == "windows-nt5"
    L = ["@echo off"] + _header(g, hosts, "apply", lang, today) + _cmd_prologue(g)
    for n, s in enumerate(g.steps, 1):
        L += [""] + _step_comment(n, s, "cmd", lang) + _cmd_step(n, s, g, nt5)
    L += ["", "goto :end", "", ":verify", "echo [smbsentry] %GROUP%: checking the updates"]
    for s in g.steps:
        L += _cmd_verify_step(s, nt5)
    L += _cmd_detect(g, nt5) + _cmd_installers() + _cmd_exits(g)
    return "\r\n".join(L) + "\r\n"


def _cmd_prologue(g: ScriptGroup) -> list[str]:
    L = [
        "setlocal EnableExtensions",
        f'set "GROUP={g.name}"',
        'set "BUNDLE=%~dp0..\\bundle"',
        'if defined SMBSENTRY_BUNDLE set "BUNDLE=%SMBSENTRY_BUNDLE%"',
        'set "FAILED=0"',
        'set "REBOOT=0"',
        "fsutil dirty query %SystemDrive% >nul 2>&1",
        "if errorlevel 1 goto :not_admin",
        "call :detect",
        'if not "%OSOK%"=="1" goto :wrong_os',
    ]
    if g.architecture:
        L.append(f'if not "%ARCH%"=="{g.architecture}" goto :wrong_arch')
    L.append('if /i "%~1"=="verify" goto :verify')
    return L


def _cmd_step(n: int, s: Step, g: ScriptGroup, nt5: bool) -> list[str]:
    """Step n's lines: the backup gate, an update install (with its build / service-pack conditions), or the kb commands."""
    if not s.scripted and s.id != "backup":
        return _comments(["(done by people, not by this script: see plan.md)"], "cmd")
    if s.id == "backup":
        return ['if not "%SMBSENTRY_BACKUP_DONE%"=="1" goto :need_backup']
    if s.id in ("install-update", "install-update-nt5", "install-service-pack"):
        return _cmd_install_step(n, s, g, nt5)
    if s.id == "xp-firewall":
        return ["netsh firewall set opmode mode=ENABLE", "netsh firewall set service type=FILEANDPRINT mode=DISABLE",
                f"if errorlevel 1 echo [smbsentry] step {n}: netsh firewall returned %ERRORLEVEL%"]
    L = []
    a = _action(s)
    for cmd in commands_for(a, "cmd", None) if a else ():
        L.append(cmd)
        if not cmd.startswith("netstat") and a.kind != "check":  # checks print what they find; no match is fine
            L.append(f"if errorlevel 1 echo [smbsentry] step {n}: {s.id} returned %ERRORLEVEL%")
    return L


def _cmd_install_step(n: int, s: Step, g: ScriptGroup, nt5: bool) -> list[str]:
    skip = f":s{n}_done"
    L = []
    if s.condition_build:
        L += ['set "HIT=0"', f'for %%B in ({" ".join(map(str, s.condition_build))}) do if "%%B"=="%OSBUILD%" set "HIT=1"',
              f'if not "%HIT%"=="1" goto {skip}']
    if s.condition_sp is not None:
        L += [f'echo %CSD% | findstr /i /c:"Service Pack {s.condition_sp}" >nul && goto {skip}']
    L += _cmd_files(s, g.architecture)
    kind = "msu" if s.id == "install-update" and not nt5 else "exe"
    L.append(f"call :install_{kind} {s.kb}")
    if s.id == "install-service-pack":
        L += ['if not "%RC%"=="0" goto :end',
              f"echo [smbsentry] {s.kb} installed: restart, then run this script again for the updates",
              "goto :end"]
    L.append(skip)
    return L


def _cmd_verify_step(s: Step, nt5: bool) -> list[str]:
    """`apply.cmd verify`: is the update (or one that replaces it) installed?"""
    if not (s.verify_kbs and s.id in ("install-update", "install-update-nt5")):
        return []
    kbs = " ".join(s.verify_kbs[:40])
    L = ['set "HAS=0"', f'wmic qfe get HotFixID 2>nul | findstr /i "{kbs}" >nul && set "HAS=1"']
    if nt5:
        L.append(f'reg query "HKLM\\SOFTWARE\\Microsoft\\Updates" /s 2>nul | findstr /i "{kbs}" >nul && set "HAS=1"')
    L += [f'if "%HAS%"=="1" echo [smbsentry] {s.kb}: the fix is installed',
          f'if not "%HAS%"=="1" echo [smbsentry] {s.kb}: NOT installed (nor an update that replaces it)',
          'if not "%HAS%"=="1" set /a FAILED+=1']
    tmpl = (kb().actions["install-update-nt5" if nt5 else "install-update"].commands["cmd"][1])
    return L + _comments([f"by hand: {_fill(tmpl, {'kb': s.kb, 'kbnum': s.kb[2:]})}"], "cmd")


def _cmd_detect(g: ScriptGroup, nt5: bool) -> list[str]:
    """:detect (OS build, service pack, architecture) and :has (is an update installed)."""
    L = [
        "goto :end",
        "",
        ":detect",
        'set "OSBUILD="',
        "for /f \"tokens=3\" %%B in ('reg query \"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\" /v CurrentBuildNumber 2^>nul ^| findstr /i \"CurrentBuildNumber\"') do set \"OSBUILD=%%B\"",
        'set "CSD="',
        "for /f \"tokens=2,*\" %%A in ('reg query \"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\" /v CSDVersion 2^>nul ^| findstr /i \"CSDVersion\"') do set \"CSD=%%B\"",
        'set "ARCH=x86"',
        'if /i "%PROCESSOR_ARCHITECTURE%"=="AMD64" set "ARCH=x64"',
        'if /i "%PROCESSOR_ARCHITEW6432%"=="AMD64" set "ARCH=x64"',
        'if /i "%PROCESSOR_ARCHITECTURE%"=="IA64" set "ARCH=ia64"',
        'if /i "%PROCESSOR_ARCHITEW6432%"=="IA64" set "ARCH=ia64"',
        'set "OSOK=0"',
        f'for %%B in ({" ".join(map(str, g.builds))}) do if "%%B"=="%OSBUILD%" set "OSOK=1"',
        "goto :eof",
        "",
        ":has",
        'set "HAS=0"',
        'wmic qfe get HotFixID 2>nul | findstr /i /c:"%~1" >nul && set "HAS=1"',
    ]
    if nt5:
        L.append('reg query "HKLM\\SOFTWARE\\Microsoft\\Updates" /s 2>nul | findstr /i /c:"%~1" >nul && set "HAS=1"')
    L += ["goto :eof", ""]
    return L


def _cmd_installers() -> list[str]:
    """:install_msu and :install_exe: install from the bundle unless present; exit codes explained."""
    msu = _fill(kb().actions["install-update"].commands["cmd"][0], {"file": "%PKG%"})
    exe = _fill(kb().actions["install-update-nt5"].commands["cmd"][0], {"file": "%PKG%"})
    L = []
    for kind, line in (("msu", msu), ("exe", exe)):
        L += [
            f":install_{kind}",
            'set "RC=0"',
            "call :has %1",
            f'if "%HAS%"=="1" goto :{kind}_have',
            'set "PKG="',
            'for %%F in ("%BUNDLE%\\%PKG_FILE%") do if exist "%%~fF" set "PKG=%%~fF"',
            f"if not defined PKG goto :{kind}_missing",
            'echo [smbsentry] installing %1 from "%PKG%"',
            line,
            'set "RC=%ERRORLEVEL%"',
        ]
        L += _cmd_exit_codes()
        L += [
            'if "%RC%"=="0" set "REBOOT=1"',
            'if not "%RC%"=="0" echo [smbsentry] %1 failed: exit code %RC%',
            'if not "%RC%"=="0" set /a FAILED+=1',
            "goto :eof",
            f":{kind}_have",
            "echo [smbsentry] %1 is already installed",
            "goto :eof",
            f":{kind}_missing",
            'echo [smbsentry] %1: "%PKG_FILE%" is not in "%BUNDLE%" - stage it first, see bundle.csv',
            'set "RC=1"',
            "set /a FAILED+=1",
            "goto :eof",
            "",
        ]
    return L


def _cmd_exit_codes() -> list[str]:
    """The installer's exit codes from the knowledge base (remediation.json): each one's meaning is
    echoed, and the successful ones (installed, restart needed / already there) become 0."""
    exits = kb().remediation.installer_exits
    L = [f'if "%RC%"=="{e.code}" echo [smbsentry] %1: {e.meaning}' for e in exits]
    L += [f'if "%RC%"=="{e.code}" set "RC=0"' for e in exits if e.outcome in ("reboot", "installed")]
    return L


def _cmd_exits(g: ScriptGroup) -> list[str]:
    L = [
        ":not_admin",
        "echo [smbsentry] run this script as Administrator",
        "exit /b 2",
        ":wrong_os",
        f"echo [smbsentry] %GROUP% is for OS builds {' '.join(map(str, g.builds))}; this host is build %OSBUILD%",
        "exit /b 2",
        ":wrong_arch",
        "echo [smbsentry] %GROUP% is not for %ARCH% systems",
        "exit /b 2",
        ":need_backup",
        "echo [smbsentry] the next steps interrupt service (see plan.md): back this host up or snapshot it first, then run: set SMBSENTRY_BACKUP_DONE=1",
        "exit /b 3",
        ":end",
        'if "%REBOOT%"=="1" echo [smbsentry] restart the host, then run: %~nx0 verify',
        'if not "%FAILED%"=="0" echo [smbsentry] %FAILED% step(s) failed',
        'if not "%FAILED%"=="0" exit /b 1',
        "exit /b 0",
    ]
    return L


def _cmd_rollback(g: ScriptGroup, hosts: list[HostPlan], lang: str, today: date) -> str:
    L = ["@echo off"] + _header(g, hosts, "rollback", lang, today) + [
        "setlocal EnableExtensions",
        f'set "GROUP={g.name}"',
        "fsutil dirty query %SystemDrive% >nul 2>&1",
        "if errorlevel 1 goto :not_admin",
    ]
    n = 0
    for s in reversed(g.steps):
        a = _action(s)
        if s.id == "xp-firewall":
            n += 1
            L += [""] + _comments([f"undo: {s.id}"], "cmd") + ["netsh firewall set service type=FILEANDPRINT mode=ENABLE"]
        elif a is not None and s.scripted and s.id not in ("install-update", "install-update-nt5", "install-service-pack"):
            cmds = commands_for(a, "cmd", None, rollback=True)
            if cmds:
                n += 1
                L += [""] + _comments([f"undo: {s.id}"], "cmd") + list(cmds)
    updates = [s for s in reversed(g.steps) if s.id in ("install-update", "install-update-nt5")]
    if updates:
        L += ["", 'if /i not "%~1"=="updates" goto :updates_kept']
        L += _comments(["removing the updates reopens the holes they closed: only when an update broke the host"], "cmd")
        for s in updates:
            tmpl = kb().actions[s.id].rollback["cmd"][0]
            L.append(_fill(tmpl, {"kb": s.kb, "kbnum": s.kb[2:]}))
        L += [":updates_kept"]
    if any(s.id == "install-service-pack" for s in g.steps):
        L += _comments(["service packs are not rolled back: restore the backup or snapshot instead"], "cmd")
    L += ["", "echo [smbsentry] %GROUP%: rollback done; restart the host", "exit /b 0", ":not_admin",
          "echo [smbsentry] run this script as Administrator", "exit /b 2"]
    return "\r\n".join(L) + "\r\n"


# --- PowerShell -----------------------------------------------------------------------------------

def _ps_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ps_files(s: Step) -> str:
    return "@{" + "; ".join(f"{_ps_string(a)} = {_ps_string(n)}" for a, n in sorted(s.files.items())) + "}"


def _ps_command(cmd: str) -> str:
    """A kb cmd template run from PowerShell: `sc` is Set-Content there, %VAR% is $env:VAR."""
    cmd = re.sub(r"^sc ", "sc.exe ", cmd)
    return re.sub(r"%(\w+)%", r"$env:\1", cmd)


PS_PRELUDE = r"""param([switch]$Verify)
$ErrorActionPreference = 'Continue'
$Group = '{group}'
$Bundle = Join-Path $PSScriptRoot '..\bundle'
if ($env:SMBSENTRY_BUNDLE) {{ $Bundle = $env:SMBSENTRY_BUNDLE }}
$script:Failed = 0
$script:Reboot = $false
$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {{ Write-Host '[smbsentry] run this script as Administrator'; exit 2 }}
$cv = Get-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$OsBuild = [int]$cv.CurrentBuildNumber
$Ubr = 0
if ($null -ne $cv.UBR) {{ $Ubr = [int]$cv.UBR }}
$pa = $env:PROCESSOR_ARCHITECTURE
if ($env:PROCESSOR_ARCHITEW6432) {{ $pa = $env:PROCESSOR_ARCHITEW6432 }}
$Arch = 'x86'
switch ($pa) {{ 'AMD64' {{ $Arch = 'x64' }} 'ARM64' {{ $Arch = 'arm64' }} 'IA64' {{ $Arch = 'ia64' }} }}
if (@({builds}) -notcontains $OsBuild) {{ Write-Host ('[smbsentry] {{0}} is for OS builds {builds_text}; this host is build {{1}}' -f $Group, $OsBuild); exit 2 }}
"""

PS_FUNCTIONS = r"""
function Test-Installed([string[]]$Kb) {
    return [bool](Get-HotFix -Id $Kb -ErrorAction SilentlyContinue)
}

function Install-Package([string]$Kb, [hashtable]$Files) {
    if (Test-Installed @($Kb)) { Write-Host ('[smbsentry] {0} is already installed' -f $Kb); return }
    $path = $null
    if ($Files.ContainsKey($Arch)) {
        $candidate = Join-Path $Bundle $Files[$Arch]
        if (Test-Path -LiteralPath $candidate) { $path = $candidate }
    }
    if (-not $path) {
        $hit = Get-ChildItem -Path $Bundle -Filter ('*{0}*{1}*' -f $Kb, $Arch) -ErrorAction SilentlyContinue | Select-Object -First 1
        if ($hit) { $path = $hit.FullName }
    }
    if (-not $path) { Write-Host ('[smbsentry] {0}: no {1} package in {2} - stage it first, see bundle.csv' -f $Kb, $Arch, $Bundle); $script:Failed++; return }
    Write-Host ('[smbsentry] installing {0} from {1}' -f $Kb, $path)
    # the knowledge base's install-update command: wusa.exe "<file>" /quiet /norestart
    $p = Start-Process -Wait -PassThru -FilePath wusa.exe -ArgumentList ('"' + $path + '" /quiet /norestart')
    switch ($p.ExitCode) {
        0 { $script:Reboot = $true }
@EXIT_CODES@
        default { Write-Host ('[smbsentry] {0} failed: exit code {1}' -f $Kb, $p.ExitCode); $script:Failed++ }
    }
}

function Invoke-Step([string]$Name, [scriptblock]$Body) {
    Write-Host ('[smbsentry] {0}' -f $Name)
    try {
        $ErrorActionPreference = 'Stop'
        & $Body
    } catch {
        Write-Host ('[smbsentry] {0} failed: {1}' -f $Name, $_)
        $script:Failed++
    }
}
"""


def _ps_exit_codes() -> str:
    """The switch cases of Install-Package for the installer's exit codes in the knowledge base
    (remediation.json): restart needed sets the reboot flag, already installed says so, a failure
    says why and counts."""
    cases = []
    for e in kb().remediation.installer_exits:
        say = f"Write-Host ('[smbsentry] {{0}}: {e.meaning}' -f $Kb)"
        body = {"reboot": "$script:Reboot = $true", "installed": say, "failed": f"{say}; $script:Failed++"}[e.outcome]
        cases.append(f"        {e.code} {{ {body} }}")
    return "\n".join(cases)


def _ps_apply(g: ScriptGroup, hosts: list[HostPlan], lang: str, today: date) -> str:
    builds = ", ".join(map(str, g.builds)) or "0"
    L = _header(g, hosts, "apply", lang, today)
    L += PS_PRELUDE.format(group=g.name, builds=builds, builds_text=" ".join(map(str, g.builds))).splitlines()
    if g.architecture:
        L.append(f"if ($Arch -ne {_ps_string(g.architecture)}) {{ Write-Host ('[smbsentry] {{0}} is for {g.architecture} systems; this host is {{1}}' -f $Group, $Arch); exit 2 }}")
    L += PS_FUNCTIONS.replace("@EXIT_CODES@", _ps_exit_codes()).splitlines()
    # verify first (it exits), then the steps in order
    L += ["", "if ($Verify) {"]
    for s in g.steps:
        if s.id not in ("install-update", "install-update-nt5"):
            continue
        if s.verify_build:
            blds, ubr = s.verify_build
            L += [f"    if ((@({', '.join(map(str, blds))}) -contains $OsBuild) -and $Ubr -lt {ubr}) {{ Write-Host ('[smbsentry] {s.kb}: build revision {{0}} is below {ubr}' -f $Ubr); $script:Failed++ }}",
                  f"    else {{ Write-Host '[smbsentry] {s.kb}: the build revision carries the fix' }}"]
        elif s.verify_kbs and s.id == "install-update":
            ids = ", ".join(_ps_string(k) for k in s.verify_kbs[:40])
            tmpl = _fill(kb().actions["install-update"].commands["powershell"][1], {"kb": s.kb})
            L += [f"    # by hand: {tmpl}",
                  f"    if (Test-Installed @({ids})) {{ Write-Host '[smbsentry] {s.kb}: the fix is installed' }}",
                  f"    else {{ Write-Host '[smbsentry] {s.kb}: NOT installed (nor an update that replaces it)'; $script:Failed++ }}"]
    L += ["    if ($script:Failed -gt 0) { exit 1 }", "    exit 0", "}"]
    n = 0
    for s in g.steps:
        n += 1
        L += [""] + _step_comment(n, s, "ps1", lang)
        name = _ps_string(f"step {n}: {s.id}" + (f" {s.kb}" if s.kb else ""))
        if not s.scripted and s.id != "backup":
            L += _comments(["(done by people, not by this script: see plan.md)"], "ps1")
        elif s.id == "backup":
            L.append("if ($env:SMBSENTRY_BACKUP_DONE -ne '1') { Write-Host '[smbsentry] the next steps interrupt service (see plan.md): "
                     "back this host up or snapshot it first, then set SMBSENTRY_BACKUP_DONE=1'; exit 3 }")
        elif s.id in ("install-update", "install-update-nt5", "install-service-pack"):
            call = f"Install-Package {_ps_string(s.kb)} {_ps_files(s)}"
            if s.verify_build:
                blds, ubr = s.verify_build
                L.append(f"if ((@({', '.join(map(str, blds))}) -contains $OsBuild) -and $Ubr -ge {ubr}) {{ Write-Host '[smbsentry] {s.kb}: "
                         f"build revision already at or above {ubr}' }} else {{ {call} }}")
            else:
                L.append(call)
        elif s.id in ("verify-update", "verify-build"):
            L.append("# checked by -Verify after the restart")
        else:
            a = _action(s)
            cmds = [_ps_command(c) if c else c for c in (commands_for(a, "ps1", _product(hosts)) if a else ())]
            if cmds:
                L.append(f"Invoke-Step {name} {{")
                L += ["    " + c for c in cmds]
                L.append("}")
    L += ["", "if ($script:Reboot) { Write-Host '[smbsentry] restart the host, then run this script with -Verify' }",
          "if ($script:Failed -gt 0) { Write-Host ('[smbsentry] {0} step(s) failed' -f $script:Failed); exit 1 }", "exit 0"]
    return "\r\n".join(L) + "\r\n"


def _product(hosts: list[HostPlan]):
    from ..kb import query

    pid = next((h.product for h in hosts if h.product), None)
    return query.product(pid) if pid else None


def _ps_rollback(g: ScriptGroup, hosts: list[HostPlan], lang: str, today: date) -> str:
    L = _header(g, hosts, "rollback", lang, today) + [
        "param([switch]$IncludeUpdates)",
        "$ErrorActionPreference = 'Continue'",
        "$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())",
        "if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) { Write-Host '[smbsentry] run this script as Administrator'; exit 2 }",
    ]
    for s in reversed(g.steps):
        a = _action(s)
        if a is None or not s.scripted or s.id in ("install-update", "install-update-nt5", "install-service-pack"):
            continue
        cmds = commands_for(a, "ps1", _product(hosts), rollback=True)
        if cmds:
            L += [""] + _comments([f"undo: {s.id}"], "ps1") + [_ps_command(c) for c in cmds]
    updates = [s for s in reversed(g.steps) if s.id == "install-update"]
    if updates:
        L += ["", "if ($IncludeUpdates) {", "    # removing the updates reopens the holes they closed: only when an update broke the host"]
        for s in updates:
            L.append("    " + _fill(kb().actions["install-update"].rollback["powershell"][0], {"kb": s.kb, "kbnum": s.kb[2:]}))
        L.append("}")
    L += ["", "Write-Host '[smbsentry] rollback done; restart the host'", "exit 0"]
    return "\r\n".join(L) + "\r\n"


# --- sh (Samba) -------------------------------------------------------------------------------------

def _sh_verify(g: ScriptGroup) -> list[str]:
    """The verify commands of the group's steps (actions.json `verify.shell`)."""
    actions = kb().actions
    return [a.verify["shell"] for s in g.steps if (a := actions.get(s.id)) is not None and a.verify and "shell" in a.verify]


def _sh_apply(g: ScriptGroup, hosts: list[HostPlan], lang: str, today: date, rollback: bool = False) -> str:
    L = ["#!/bin/sh"] + _header(g, hosts, "rollback" if rollback else "apply", lang, today) + [
        "set -u", '[ "$(id -u)" = 0 ] || { echo "[smbsentry] run as root"; exit 2; }']
    if not rollback:
        checks = _sh_verify(g)
        L += ['if [ "${1:-}" = verify ]; then', "    failed=0"]
        L += [f'    {c} || {{ echo "[smbsentry] not in place: {c.split("grep -qi ")[-1]}"; failed=1; }}' for c in checks]
        L += ['    exit "$failed"', "fi"]
        if any(s.id == "backup" for s in g.steps):
            L.append('[ "${SMBSENTRY_BACKUP_DONE:-}" = 1 ] || { echo "[smbsentry] the next steps interrupt service (see plan.md): '
                     'back this host up or snapshot it first, then run with SMBSENTRY_BACKUP_DONE=1"; exit 3; }')
    steps = list(reversed(g.steps)) if rollback else g.steps
    for n, s in enumerate(steps, 1):
        a = _action(s)
        cmds = commands_for(a, "sh", None, rollback=rollback) if a and s.scripted else ()
        if cmds:
            L += [""] + _step_comment(n, s, "sh", lang) + list(cmds)
        elif not rollback:
            L += [""] + _step_comment(n, s, "sh", lang) + ["# (done by people, not by this script: see plan.md)"]
    L += ["", 'echo "[smbsentry] done"']
    return "\n".join(L) + "\n"


def render_group(g: ScriptGroup, hosts: list[HostPlan], lang: str, today: date) -> tuple[str, str]:
    if g.flavour == "cmd":
        return _cmd_apply(g, hosts, lang, today), _cmd_rollback(g, hosts, lang, today)
    if g.flavour == "ps1":
        return _ps_apply(g, hosts, lang, today), _ps_rollback(g, hosts, lang, today)
    return _sh_apply(g, hosts, lang, today), _sh_apply(g, hosts, lang, today, rollback=True)


# --- firewall ----------------------------------------------------------------------------------------

def firewall_snippet(p: Plan) -> str:
    a = kb().actions
    L = ["# smbsentry: firewall rules for SMB (TCP 139/445, UDP 137/138), as the Antiy, 360 and Alibaba Cloud WannaCry guides advise",
         f"# generated {p.as_of.isoformat()}; review before use.", ""]
    L += ["## Windows Vista / Server 2008 and later, cmd (netsh advfirewall)"] + list(a["block-smb-firewall"].commands["cmd"])
    L += ["## undo"] + list(a["block-smb-firewall"].rollback["cmd"]) + [""]
    L += ["## Windows 8 / Server 2012 and later, PowerShell"] + list(a["block-smb-firewall"].commands["powershell"])
    L += ["## undo"] + list(a["block-smb-firewall"].rollback["powershell"]) + [""]
    L += ["## Windows XP / Server 2003 (netsh firewall: no block rules; turn the File and Printer Sharing exception off)",
          "netsh firewall set opmode mode=ENABLE", "netsh firewall set service type=FILEANDPRINT mode=DISABLE",
          "## undo", "netsh firewall set service type=FILEANDPRINT mode=ENABLE", ""]
    L += ["## Border (Linux router / iptables): no SMB, NetBIOS, RPC or RDP across the boundary",
          "iptables -I FORWARD -p tcp -m multiport --dports 135,139,445,3389 -j DROP",
          "iptables -I FORWARD -p udp -m multiport --dports 137,138 -j DROP",
          "## Cloud security groups: no inbound 0.0.0.0/0 rule for TCP 135/139/445/3389 or UDP 137/138 (Alibaba Cloud's WannaCry guide)", ""]
    addrs = [x for x in (safe_address(h.address) for h in p.isolate_now) if x]
    if addrs:
        L.append("## Isolate now (compromised hosts): drop everything to and from them at the switch / router")
        for ip in addrs:
            flag = "ip6tables" if ":" in ip else "iptables"
            L += [f"{flag} -I FORWARD -s {ip} -j DROP", f"{flag} -I FORWARD -d {ip} -j DROP"]
    return "\n".join(L) + "\n"


__all__ = ["firewall_snippet", "host_label", "render_group", "safe_address", "safe_label"]
