<#
.SYNOPSIS
    smbsentry collector: SMB exposure and patch facts of this Windows host as one JSON document.

.DESCRIPTION
    Read-only: it reads the registry, WMI, the installed-updates list, service and process
    lists, netstat and the firewall rules; it changes nothing on the host.
    Works on Windows PowerShell 2.0 (Windows 7 / Server 2008 R2 out of the box) and later;
    cmdlets that exist only on Windows 8 / Server 2012 and later (Get-SmbServerConfiguration,
    Get-NetTCPConnection, Get-NetFirewallRule) are used when present, the registry and
    netstat otherwise.  Output: {"format": "smbsentry-collector", "version": 1, ...}, written
    with ConvertTo-Json on PowerShell 3 and later and with the small writer below on 2.0.

.EXAMPLE
    powershell -NoProfile -ExecutionPolicy Bypass -File collect.ps1 > %COMPUTERNAME%.json
    smbsentry audit *.json
.EXAMPLE
    powershell -NoProfile -ExecutionPolicy Bypass -File collect.ps1 -OutFile \\share\inv\host.json
#>
param([string]$OutFile = '')

$ErrorActionPreference = 'SilentlyContinue'
$SentryFormat = 'smbsentry-collector'
$SentryVersion = 1

# A 32-bit PowerShell on 64-bit Windows sees the 32-bit registry and System32: run the 64-bit one.
if ($env:PROCESSOR_ARCHITEW6432 -and -not $env:SMBSENTRY_COLLECTOR_64 -and $MyInvocation.MyCommand.Path) {
    $native = Join-Path $env:WINDIR 'Sysnative\WindowsPowerShell\v1.0\powershell.exe'
    if (Test-Path $native) {
        $env:SMBSENTRY_COLLECTOR_64 = '1'
        if ($OutFile) { & $native -NoProfile -ExecutionPolicy Bypass -File $MyInvocation.MyCommand.Path -OutFile $OutFile }
        else { & $native -NoProfile -ExecutionPolicy Bypass -File $MyInvocation.MyCommand.Path }
        exit $LASTEXITCODE
    }
}

$script:Problems = @()
function Add-Problem([string]$Step, $ErrorRecord) {
    $text = [string]$ErrorRecord
    if ($text.Length -gt 300) { $text = $text.Substring(0, 300) }
    $script:Problems += ($Step + ': ' + $text)
}

function New-Map { return (New-Object System.Collections.Specialized.OrderedDictionary) }

function Get-PSMajor {
    if ($PSVersionTable -and $PSVersionTable.PSVersion) { return [int]$PSVersionTable.PSVersion.Major }
    return 1
}

function Test-Command([string]$Name) {
    return [bool](Get-Command -Name $Name -ErrorAction SilentlyContinue)
}

# --- registry helpers ---------------------------------------------------------------------
function Get-RegValue([string]$Path, [string]$Name) {
    try {
        $item = Get-ItemProperty -Path $Path -Name $Name -ErrorAction Stop
        if ($null -eq $item) { return $null }
        return $item.$Name
    } catch {
        return $null
    }
}

function Get-RegInt([string]$Path, [string]$Name) {
    $v = Get-RegValue $Path $Name
    if ($null -eq $v) { return $null }
    try { return [int]$v } catch { return $null }
}

function Get-RegString([string]$Path, [string]$Name) {
    $v = Get-RegValue $Path $Name
    if ($null -eq $v) { return $null }
    return [string]$v
}

# --- WMI (Get-CimInstance on PowerShell 3+, Get-WmiObject on 2.0) ------------------------
# Output is unrolled by the pipeline: callers always wrap the call in @( ).
function Get-Wmi([string]$Class, [string]$Filter = '') {
    try {
        if (Test-Command 'Get-CimInstance') {
            if ($Filter) { Get-CimInstance -ClassName $Class -Filter $Filter -ErrorAction Stop }
            else { Get-CimInstance -ClassName $Class -ErrorAction Stop }
        } elseif ($Filter) { Get-WmiObject -Class $Class -Filter $Filter -ErrorAction Stop }
        else { Get-WmiObject -Class $Class -ErrorAction Stop }
    } catch {
        Add-Problem $Class $_
    }
}

$HKLM = 'HKLM:\'
$CurrentVersionKey = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$LanmanServerKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters'
$NetBTKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\NetBT\Parameters'
$SmbPorts = @('139', '445')

# --- operating system ---------------------------------------------------------------------
function Get-OsFacts {
    $os = New-Map
    $w = @(Get-Wmi 'Win32_OperatingSystem')
    $o = $null
    if ($w.Count -gt 0) { $o = $w[0] }
    if ($o) {
        $os['caption'] = ([string]$o.Caption).Trim()
        $os['version'] = [string]$o.Version
        $os['build_number'] = [string]$o.BuildNumber
        $os['service_pack_major'] = [int]$o.ServicePackMajorVersion
        $os['product_type'] = [int]$o.ProductType
        $os['os_architecture'] = [string]$o.OSArchitecture
        $os['language'] = [int]$o.OSLanguage
    } else {
        $os['caption'] = $null; $os['version'] = $null; $os['build_number'] = $null
        $os['service_pack_major'] = $null; $os['product_type'] = $null; $os['os_architecture'] = $null; $os['language'] = $null
    }
    $os['product_name'] = Get-RegString $CurrentVersionKey 'ProductName'
    $os['edition_id'] = Get-RegString $CurrentVersionKey 'EditionID'
    $os['current_version'] = Get-RegString $CurrentVersionKey 'CurrentVersion'
    $os['current_build'] = Get-RegString $CurrentVersionKey 'CurrentBuild'
    $os['current_build_number'] = Get-RegString $CurrentVersionKey 'CurrentBuildNumber'
    $os['ubr'] = Get-RegInt $CurrentVersionKey 'UBR'
    $os['csd_version'] = Get-RegString $CurrentVersionKey 'CSDVersion'
    $os['release_id'] = Get-RegString $CurrentVersionKey 'ReleaseId'
    $os['display_version'] = Get-RegString $CurrentVersionKey 'DisplayVersion'
    $os['processor_architecture'] = Get-RegString 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Environment' 'PROCESSOR_ARCHITECTURE'
    $os['product_type_registry'] = Get-RegString 'HKLM:\SYSTEM\CurrentControlSet\Control\ProductOptions' 'ProductType'
    return $os
}

# --- installed updates: Get-HotFix (Win32_QuickFixEngineering), plus XP/2003's Updates key ---
function Get-Hotfixes {
    $out = @()
    $seen = @{}
    $rows = @()
    $failed = $false
    try {
        if (-not (Test-Command 'Get-HotFix')) { throw 'Get-HotFix is not available' }
        $rows = @(Get-HotFix -ErrorAction Stop)
    } catch {
        Add-Problem 'Get-HotFix' $_
        $before = $script:Problems.Count
        $rows = @(Get-Wmi 'Win32_QuickFixEngineering')
        if ($script:Problems.Count -gt $before) { $failed = $true }
    }
    foreach ($r in $rows) {
        $id = [string]$r.HotFixID
        if ($id -notmatch '^KB\d+') { continue }
        $id = $matches[0].ToUpper()
        if ($seen.ContainsKey($id)) { continue }
        $seen[$id] = $true
        $h = New-Map
        $h['id'] = $id
        $h['description'] = [string]$r.Description
        $when = $null
        try {
            if ($r.InstalledOn -is [DateTime]) { $when = $r.InstalledOn.ToString('yyyy-MM-dd') }
            elseif ($r.InstalledOn) { $when = [string]$r.InstalledOn }
        } catch { $when = $null }
        $h['installed_on'] = $when
        $h['source'] = 'qfe'
        $out += $h
    }
    # Windows XP / Server 2003 record updates under HKLM\SOFTWARE\Microsoft\Updates\<product>\<level>\KBnnnnnn
    $updates = 'HKLM:\SOFTWARE\Microsoft\Updates'
    if (Test-Path $updates) {
        foreach ($product in @(Get-ChildItem -Path $updates -ErrorAction SilentlyContinue)) {
            foreach ($level in @(Get-ChildItem -Path $product.PSPath -ErrorAction SilentlyContinue)) {
                foreach ($kb in @(Get-ChildItem -Path $level.PSPath -ErrorAction SilentlyContinue)) {
                    if ($kb.PSChildName -match '^KB\d+') {
                        $id = $matches[0].ToUpper()
                        if ($seen.ContainsKey($id)) { continue }
                        $seen[$id] = $true
                        $h = New-Map
                        $h['id'] = $id
                        $h['description'] = [string]$level.PSChildName
                        $h['installed_on'] = $null
                        $h['source'] = 'updates-registry'
                        $out += $h
                    }
                }
            }
        }
    }
    # Nothing could be read: say "not known" (null), never "no updates installed".
    if ($failed -and $out.Count -eq 0) { return $null }
    return ,$out
}

# --- SMB server configuration -----------------------------------------------------------------
function Get-SmbFacts {
    $smb = New-Map
    $smb['server_configuration'] = $null
    if (Test-Command 'Get-SmbServerConfiguration') {
        # Windows 8 / Server 2012 and later
        try {
            $c = Get-SmbServerConfiguration -ErrorAction Stop
            $cfg = New-Map
            $cfg['EnableSMB1Protocol'] = [bool]$c.EnableSMB1Protocol
            $cfg['EnableSMB2Protocol'] = [bool]$c.EnableSMB2Protocol
            $cfg['RequireSecuritySignature'] = [bool]$c.RequireSecuritySignature
            $cfg['EnableSecuritySignature'] = [bool]$c.EnableSecuritySignature
            $cfg['EncryptData'] = [bool]$c.EncryptData
            $cfg['AuditSmb1Access'] = $null
            if ($null -ne $c.AuditSmb1Access) { $cfg['AuditSmb1Access'] = [bool]$c.AuditSmb1Access }
            $smb['server_configuration'] = $cfg
        } catch { Add-Problem 'Get-SmbServerConfiguration' $_ }
    }
    $reg = New-Map
    $reg['key_found'] = [bool](Test-Path $LanmanServerKey)
    foreach ($name in @('SMB1', 'SMB2', 'DisableCompression', 'RequireSecuritySignature', 'EnableSecuritySignature', 'RestrictNullSessAccess', 'AutoShareServer', 'AutoShareWks')) {
        $reg[$name] = Get-RegInt $LanmanServerKey $name
    }
    $smb['lanmanserver_parameters'] = $reg
    $nbt = New-Map
    $nbt['key_found'] = [bool](Test-Path $NetBTKey)
    $nbt['SMBDeviceEnabled'] = Get-RegInt $NetBTKey 'SMBDeviceEnabled'
    $smb['netbt_parameters'] = $nbt
    $lsa = New-Map
    $lsa['RestrictAnonymous'] = Get-RegInt 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa' 'RestrictAnonymous'
    $lsa['RestrictAnonymousSAM'] = Get-RegInt 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa' 'RestrictAnonymousSAM'
    $smb['lsa'] = $lsa
    # The SMB 1.0 server driver (srv.sys) service: gone when the SMB1 feature is removed.
    $srv = New-Map
    $srv['key_found'] = [bool](Test-Path 'HKLM:\SYSTEM\CurrentControlSet\Services\srv')
    $srv['Start'] = Get-RegInt 'HKLM:\SYSTEM\CurrentControlSet\Services\srv' 'Start'
    $smb['srv_driver'] = $srv
    return $smb
}

# --- the Server service (LanmanServer) --------------------------------------------------------
function Get-ServerService {
    $s = New-Map
    $w = @(Get-Wmi 'Win32_Service' "Name='LanmanServer'")
    if ($w.Count -gt 0) {
        $s['state'] = [string]$w[0].State
        $s['start_mode'] = [string]$w[0].StartMode
    } else {
        $s['state'] = $null
        $s['start_mode'] = $null
    }
    $s['start_registry'] = Get-RegInt 'HKLM:\SYSTEM\CurrentControlSet\Services\LanmanServer' 'Start'
    return $s
}

# --- listening ports: Get-NetTCPConnection (8 / 2012+) or netstat -an ----------------------------
function Get-Listening {
    $l = New-Map
    foreach ($p in $SmbPorts) { $l[$p] = $false }
    $l['3389'] = $false
    $source = 'netstat'
    $done = $false
    if (Test-Command 'Get-NetTCPConnection') {
        try {
            $conns = @(Get-NetTCPConnection -State Listen -ErrorAction Stop)
            foreach ($c in $conns) {
                $port = [string]$c.LocalPort
                if ($l.Contains($port)) { $l[$port] = $true }
            }
            $source = 'Get-NetTCPConnection'
            $done = $true
        } catch { Add-Problem 'Get-NetTCPConnection' $_ }
    }
    if (-not $done) {
        try {
            # A listening socket has the foreign address 0.0.0.0:0 or [::]:0; the state word is
            # localised (LISTENING, ABHOEREN, ...), so it is not used.
            foreach ($line in @(netstat -an)) {
                $f = ([string]$line).Trim() -split '\s+'
                if ($f.Count -lt 3 -or $f[0] -ne 'TCP') { continue }
                if ($f[2] -ne '0.0.0.0:0' -and $f[2] -ne '[::]:0') { continue }
                $port = $f[1].Substring($f[1].LastIndexOf(':') + 1)
                if ($l.Contains($port)) { $l[$port] = $true }
            }
        } catch {
            Add-Problem 'netstat' $_
            $l = $null
        }
    }
    $r = New-Map
    $r['source'] = $source
    $r['ports'] = $l
    return $r
}

# --- firewall rules for 139/445 --------------------------------------------------------------
function Get-PortsText($value) {
    return ((@($value) | ForEach-Object { [string]$_ }) -join ',')
}

function Test-PortMatch([string]$Ports) {
    foreach ($part in ($Ports -split ',')) {
        $p = $part.Trim()
        if ($SmbPorts -contains $p) { return $true }
        if ($p -match '^(\d+)-(\d+)$') {
            foreach ($sp in $SmbPorts) { if ([int]$sp -ge [int]$matches[1] -and [int]$sp -le [int]$matches[2]) { return $true } }
        }
    }
    return $false
}

function Get-FirewallFacts {
    $fw = New-Map
    $rules = @()
    $fw['source'] = $null
    if (Test-Command 'Get-NetFirewallRule') {
        # Windows 8 / Server 2012 and later: the active store (local and Group Policy rules).
        try {
            $filters = @(Get-NetFirewallPortFilter -PolicyStore ActiveStore -ErrorAction Stop | Where-Object { (Test-PortMatch (Get-PortsText $_.LocalPort)) })
            foreach ($pf in $filters) {
                $rule = $pf | Get-NetFirewallRule -ErrorAction SilentlyContinue
                if ($null -eq $rule) { continue }
                $x = New-Map
                $x['name'] = [string]$rule.DisplayName
                $x['enabled'] = ([string]$rule.Enabled -eq 'True')
                $x['direction'] = [string]$rule.Direction
                $x['action'] = [string]$rule.Action
                $x['protocol'] = [string]$pf.Protocol
                $x['local_ports'] = Get-PortsText $pf.LocalPort
                $x['profile'] = [string]$rule.Profile
                $rules += $x
            }
            $fw['source'] = 'Get-NetFirewallRule'
        } catch { Add-Problem 'Get-NetFirewallRule' $_ }
    }
    if ($null -eq $fw['source']) {
        # Vista / 2008 / 7 / 2008 R2: the rule strings behind netsh advfirewall, read from the
        # registry (the same on every display language, unlike netsh's output).
        $stores = @('HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules',
                    'HKLM:\SOFTWARE\Policies\Microsoft\WindowsFirewall\FirewallRules')
        foreach ($store in $stores) {
            if (-not (Test-Path $store)) { continue }
            $fw['source'] = 'registry'
            $key = Get-Item -Path $store -ErrorAction SilentlyContinue
            if ($null -eq $key) { continue }
            foreach ($valueName in @($key.GetValueNames())) {
                $text = [string]$key.GetValue($valueName)
                $f = @{}
                foreach ($pair in ($text -split '\|')) {
                    $kv = $pair -split '=', 2
                    if ($kv.Count -eq 2) {
                        if ($f.ContainsKey($kv[0])) { $f[$kv[0]] = $f[$kv[0]] + ',' + $kv[1] } else { $f[$kv[0]] = $kv[1] }
                    }
                }
                if (-not $f.ContainsKey('LPort')) { continue }
                if (-not (Test-PortMatch $f['LPort'])) { continue }
                $x = New-Map
                $x['name'] = [string]$f['Name']
                $x['enabled'] = ([string]$f['Active'] -eq 'TRUE')
                $x['direction'] = [string]$f['Dir']
                $x['action'] = [string]$f['Action']
                $x['protocol'] = [string]$f['Protocol']
                $x['local_ports'] = [string]$f['LPort']
                $x['profile'] = [string]$f['Profile']
                $rules += $x
            }
        }
    }
    $profiles = New-Map
    $base = 'HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy'
    foreach ($p in @('DomainProfile', 'StandardProfile', 'PublicProfile')) {
        $profiles[$p] = Get-RegInt ($base + '\' + $p) 'EnableFirewall'
    }
    $fw['profiles'] = $profiles
    # Windows XP / Server 2003: no block rules; the "File and Printer Sharing" exception decides.
    $xp = New-Map
    $xp['file_and_print_exception'] = Get-RegInt ($base + '\StandardProfile\Services\FileAndPrint') 'Enabled'
    $xp['do_not_allow_exceptions'] = Get-RegInt ($base + '\StandardProfile') 'DoNotAllowExceptions'
    $fw['xp'] = $xp
    $fw['rules'] = $rules
    return $fw
}

# --- WannaCry indicators (seed 004) ---------------------------------------------------------
function Get-WannaCry {
    $wc = New-Map
    $names = @('mssecsvc.exe', 'tasksche.exe', 'taskse.exe', '@WanaDecryptor@.exe', 'taskdl.exe')
    $dirs = @($env:WINDIR, (Join-Path $env:WINDIR 'System32'), (Join-Path $env:WINDIR 'Temp'), $env:TEMP, 'C:\Intel', $env:ProgramData)
    if ($env:ALLUSERSPROFILE) { $dirs += (Join-Path $env:ALLUSERSPROFILE 'Application Data') }
    # WannaCry unpacks into a randomly named folder under ProgramData or C:\Intel.
    foreach ($parent in @($env:ProgramData, 'C:\Intel')) {
        if ($parent -and (Test-Path $parent)) {
            foreach ($d in @(Get-ChildItem -Path $parent -Force -ErrorAction SilentlyContinue | Where-Object { $_.PSIsContainer })) { $dirs += $d.FullName }
        }
    }
    foreach ($profileRoot in @('C:\Users', 'C:\Documents and Settings')) {
        if (Test-Path $profileRoot) {
            foreach ($u in @(Get-ChildItem -Path $profileRoot -Force -ErrorAction SilentlyContinue | Where-Object { $_.PSIsContainer })) {
                $dirs += (Join-Path $u.FullName 'Desktop')
            }
        }
    }
    $files = @()
    foreach ($d in $dirs) {
        if (-not $d) { continue }
        foreach ($n in $names) {
            $p = Join-Path $d $n
            if (Test-Path -LiteralPath $p) { if ($files -notcontains $p) { $files += $p } }
        }
    }
    $procs = @()
    foreach ($pn in @('mssecsvc', 'tasksche', 'taskse', '@WanaDecryptor@', 'taskdl')) {
        foreach ($p in @(Get-Process -Name $pn -ErrorAction SilentlyContinue)) { $procs += ([string]$p.ProcessName + '.exe (pid ' + [string]$p.Id + ')') }
    }
    $services = @()
    if (Test-Path 'HKLM:\SYSTEM\CurrentControlSet\Services\mssecsvc2.0') { $services += 'mssecsvc2.0' }
    $wc['files'] = $files
    $wc['processes'] = $procs
    $wc['services'] = $services
    return $wc
}

# --- other facts the audit uses -----------------------------------------------------------------
function Get-FileVersions {
    $fv = New-Map
    $sys = Join-Path $env:WINDIR 'System32'
    if (Test-Path (Join-Path $env:WINDIR 'Sysnative')) { $sys = Join-Path $env:WINDIR 'Sysnative' }
    foreach ($n in @('srv.sys', 'srv2.sys')) {
        $p = Join-Path (Join-Path $sys 'drivers') $n
        $fv[$n] = $null
        if (Test-Path -LiteralPath $p) {
            try {
                $vi = (Get-Item -LiteralPath $p).VersionInfo
                $fv[$n] = ('{0}.{1}.{2}.{3}' -f $vi.FileMajorPart, $vi.FileMinorPart, $vi.FileBuildPart, $vi.FilePrivatePart)
            } catch { Add-Problem $n $_ }
        }
    }
    return $fv
}

function Get-Shares {
    $out = @()
    foreach ($s in @(Get-Wmi 'Win32_Share')) {
        $x = New-Map
        $x['name'] = [string]$s.Name
        $x['type'] = [int64]$s.Type
        $x['path'] = [string]$s.Path
        $out += $x
    }
    return ,$out
}

function Get-GuestEnabled {
    foreach ($u in @(Get-Wmi 'Win32_UserAccount' "LocalAccount='True'")) {
        if (([string]$u.SID) -match '-501$') { return (-not [bool]$u.Disabled) }
    }
    return $null
}

function Get-Software {
    $out = New-Map
    foreach ($root in @('HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall', 'HKLM:\SOFTWARE\Wow6432Node\Microsoft\Windows\CurrentVersion\Uninstall')) {
        if (-not (Test-Path $root)) { continue }
        foreach ($k in @(Get-ChildItem -Path $root -ErrorAction SilentlyContinue)) {
            $name = Get-RegString $k.PSPath 'DisplayName'
            if (-not $name -or $out.Contains($name)) { continue }
            $out[$name] = Get-RegString $k.PSPath 'DisplayVersion'
        }
    }
    return $out
}

function Get-Addresses {
    $out = @()
    foreach ($a in @(Get-Wmi 'Win32_NetworkAdapterConfiguration' "IPEnabled='True'")) {
        foreach ($ip in @($a.IPAddress)) { if ($ip) { $out += [string]$ip } }
    }
    return ,$out
}

# --- JSON for PowerShell 2.0 (no ConvertTo-Json there) -------------------------------------
function ConvertTo-SentryJsonString([string]$Text) {
    $sb = New-Object System.Text.StringBuilder
    [void]$sb.Append('"')
    foreach ($ch in $Text.ToCharArray()) {
        $code = [int]$ch
        if ($code -eq 34) { [void]$sb.Append('\"') }
        elseif ($code -eq 92) { [void]$sb.Append('\\') }
        elseif ($code -lt 32 -or $code -gt 126) { [void]$sb.Append(('\u{0:x4}' -f $code)) }
        else { [void]$sb.Append($ch) }
    }
    [void]$sb.Append('"')
    return $sb.ToString()
}

function ConvertTo-SentryJson($Value, [int]$Level = 0) {
    $inner = '  ' * ($Level + 1)
    $outer = '  ' * $Level
    if ($null -eq $Value) { return 'null' }
    if ($Value -is [bool]) { if ($Value) { return 'true' } else { return 'false' } }
    if ($Value -is [int] -or $Value -is [long] -or $Value -is [int16] -or $Value -is [uint32] -or $Value -is [uint64] -or $Value -is [byte]) { return [string]$Value }
    if ($Value -is [string] -or $Value -is [char]) { return (ConvertTo-SentryJsonString ([string]$Value)) }
    if ($Value -is [System.Collections.IDictionary]) {
        $parts = @()
        foreach ($k in @($Value.Keys)) {
            $parts += ($inner + (ConvertTo-SentryJsonString ([string]$k)) + ': ' + (ConvertTo-SentryJson $Value[$k] ($Level + 1)))
        }
        if ($parts.Count -eq 0) { return '{}' }
        return ("{`r`n" + ($parts -join ",`r`n") + "`r`n" + $outer + '}')
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        $parts = @()
        foreach ($item in $Value) { $parts += ($inner + (ConvertTo-SentryJson $item ($Level + 1))) }
        if ($parts.Count -eq 0) { return '[]' }
        return ("[`r`n" + ($parts -join ",`r`n") + "`r`n" + $outer + ']')
    }
    return (ConvertTo-SentryJsonString ([string]$Value))
}

# --- collect ----------------------------------------------------------------------------------
$doc = New-Map
$doc['format'] = $SentryFormat
$doc['version'] = $SentryVersion
$doc['collected_at'] = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
$doc['host'] = [string]$env:COMPUTERNAME
$doc['domain'] = $null
$cs = @(Get-Wmi 'Win32_ComputerSystem')
if ($cs.Count -gt 0 -and $cs[0].PartOfDomain) { $doc['domain'] = [string]$cs[0].Domain }
$doc['addresses'] = Get-Addresses
$doc['powershell'] = [string](Get-PSMajor)

$steps = @(
    @('os', 'Get-OsFacts'), @('hotfixes', 'Get-Hotfixes'), @('smb', 'Get-SmbFacts'), @('server_service', 'Get-ServerService'),
    @('listening', 'Get-Listening'), @('firewall', 'Get-FirewallFacts'), @('wannacry', 'Get-WannaCry'),
    @('file_versions', 'Get-FileVersions'), @('shares', 'Get-Shares'), @('software', 'Get-Software')
)
foreach ($step in $steps) {
    try {
        $value = & $step[1]
        $doc[$step[0]] = $value
    } catch {
        Add-Problem $step[0] $_
        $doc[$step[0]] = $null
    }
}
# The update ids once more as a flat list (what `smbsentry audit` needs first).
$kbs = @()
foreach ($h in @($doc['hotfixes'])) { if ($h) { $kbs += [string]$h['id'] } }
$doc['installed_kbs'] = $kbs
if ($null -eq $doc['hotfixes']) { $doc['installed_kbs'] = $null }
$doc['guest_enabled'] = Get-GuestEnabled
$doc['rdp_deny_connections'] = Get-RegInt 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server' 'fDenyTSConnections'
$doc['errors'] = $script:Problems

if ((Get-PSMajor) -ge 3 -and (Test-Command 'ConvertTo-Json')) {
    $json = $doc | ConvertTo-Json -Depth 8
} else {
    $json = ConvertTo-SentryJson $doc
}

if ($OutFile) {
    # UTF-8 (with a BOM on Windows PowerShell); smbsentry reads UTF-8 and UTF-16 alike.
    $json | Out-File -FilePath $OutFile -Encoding UTF8
} else {
    Write-Output $json
}
