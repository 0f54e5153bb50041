"""The planner's own words, English and Simplified Chinese.

Step texts for remediation actions come from the knowledge base
(kb/data/actions.json, `text.en` / `text.zh`); these are the steps the
knowledge base has no action for (backup, isolate now, verify, identify) and
the headings of plan.md.  Placeholders use str.format names.
"""

from __future__ import annotations

LANGS = ("en", "zh")

TEXT: dict[str, dict[str, str]] = {
    # --- steps -----------------------------------------------------------------------------
    "backup": {
        "en": "Back up this host's data before any change: copy its shares ({why}) to offline storage or take a disk snapshot "
              "(cloud hosts: the provider's snapshot), and check that it restores.",
        "zh": "在任何改动之前先备份本机数据：将共享数据（{why}）复制到离线存储，或创建磁盘快照（云主机使用云平台的快照功能），并确认可以恢复。",
    },
    "isolate-implant": {
        "en": "Isolate now: the DoublePulsar implant answered on this host ({evidence}). It lives in kernel memory: disconnect the host, "
              "snapshot the disk for analysis, install the update and restart (the restart removes the implant); rebuild the host if it may "
              "have been used.",
        "zh": "立即隔离：本机存在 DoublePulsar（双脉冲星）后门（{evidence}）。后门驻留在内核内存中：先断网，对磁盘做快照留作分析，"
              "再安装补丁并重启（重启可清除后门）；如果主机可能已被利用，应重装系统。",
    },
    "isolate-wannacry": {
        "en": "Isolate now: WannaCry indicators on this host ({evidence}). Disconnect it before it spreads further; end the processes, "
              "snapshot the disk, then clean or rebuild it and restore data from a backup. Do not reconnect it before it is patched.",
        "zh": "立即隔离：本机发现 WannaCry（魔窟）勒索蠕虫迹象（{evidence}）。先断网防止继续传播；结束相关进程，对磁盘做快照，"
              "再清除或重装系统并从备份恢复数据。打好补丁之前不要重新接入网络。",
    },
    "verify-update": {
        "en": "After the restart, confirm the fix is installed: {how}.",
        "zh": "重启后确认补丁已安装：{how}。",
    },
    "verify-build": {
        "en": "After the restart, confirm the OS build revision is {build}.{ubr} or later (winver, or the UBR value under "
              "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion).",
        "zh": "重启后确认系统版本号不低于 {build}.{ubr}（winver，或注册表 HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion 下的 UBR 值）。",
    },
    "isolate-segment": {
        "en": "Until the host is upgraded, keep it on an isolated network segment and allow only the connections the business needs.",
        "zh": "在完成升级之前，将主机放在隔离网段，只放行业务必需的连接。",
    },
    "xp-firewall": {
        "en": "Windows XP / Server 2003: turn the Windows Firewall on and remove the File and Printer Sharing exception "
              "(the XP firewall has no block rules).",
        "zh": "Windows XP / Server 2003：启用 Windows 防火墙并取消\"文件和打印机共享\"例外（XP 防火墙不支持阻止规则）。",
    },
    "identify": {
        "en": "The operating system of this host is not known, so no update can be chosen: run the collector on it "
              "(smbsentry collector) or audit it with credentials (smbsentry audit --remote), then plan again. Findings: {findings}.",
        "zh": "无法确定本机的操作系统，因此无法选择补丁：请在主机上运行采集脚本（smbsentry collector）或使用凭据进行远程审计"
              "（smbsentry audit --remote），然后重新生成计划。相关发现：{findings}。",
    },
    "no-update": {
        "en": "No update exists for {finding} on {os}: use the workarounds below and upgrade.",
        "zh": "{os} 上的 {finding} 没有可用补丁：请采用下列缓解措施并升级系统。",
    },
    "samba-smb1": {
        "en": "Samba: set `server min protocol = SMB2_02` in the [global] section of smb.conf and reload (smbcontrol all reload-config).",
        "zh": "Samba：在 smb.conf 的 [global] 段设置 `server min protocol = SMB2_02` 并重新加载（smbcontrol all reload-config）。",
    },
    "samba-signing": {
        "en": "Samba: set `server signing = mandatory` in the [global] section of smb.conf and reload.",
        "zh": "Samba：在 smb.conf 的 [global] 段设置 `server signing = mandatory` 并重新加载。",
    },
    "samba-anonymous": {
        "en": "Samba: set `restrict anonymous = 2` in the [global] section of smb.conf and reload.",
        "zh": "Samba：在 smb.conf 的 [global] 段设置 `restrict anonymous = 2` 并重新加载。",
    },
    "samba-guest": {
        "en": "Samba: set `map to guest = Never` and remove `guest ok = yes` from shares that hold data, then reload.",
        "zh": "Samba：设置 `map to guest = Never`，并去掉存放数据的共享上的 `guest ok = yes`，然后重新加载。",
    },
    "server-choice-dc": {
        "en": "Do not stop the Server service or block 445 on this host: it is a domain controller, and that would take SYSVOL and "
              "NETLOGON (every logon of the domain) down with it. Turn SMB1 off by its own switch, require signing, and block 139/445 "
              "at the border and between segments instead. Stopping the Server service stays a manual choice for the domain's owners.",
        "zh": "不要在本机停止 Server 服务或封禁 445 端口：本机是域控制器，这样做会让 SYSVOL 和 NETLOGON（整个域的登录）一起停止。"
              "请改用单独关闭 SMB1、强制签名，并在边界和网段之间封禁 139/445。是否停止 Server 服务由域的负责人人工决定。",
    },
    "server-choice-data": {
        "en": "Do not stop the Server service or block 445 on this host: it shares data its users need. Turn SMB1 off by its own "
              "switch, require signing, allow 139/445 only from the clients that need them (border and segment rules). Stopping "
              "the Server service stays a manual choice for the owners of the shares.",
        "zh": "不要在本机停止 Server 服务或封禁 445 端口：本机共享的数据仍有用户需要。请改用单独关闭 SMB1、强制签名，"
              "并只允许需要访问的客户端连接 139/445（边界和网段规则）。是否停止 Server 服务由共享数据的负责人人工决定。",
    },
    "server-choice-unseen": {
        "en": "The Server service is not stopped by these scripts: this host's shares could not be listed, so nobody knows what it "
              "serves (not seeing shares is not knowing it has none). Check on the host (net share) whether anything uses its "
              "shares; only if nothing does, stop it by hand (net stop server; sc config lanmanserver start= disabled; undo: "
              "sc config lanmanserver start= auto; net start server). Meanwhile turn SMB1 off, require signing and block 139/445 "
              "at the border.",
        "zh": "这些脚本不会停止 Server 服务：无法列出本机的共享，因此不知道它提供哪些服务（看不到共享不等于没有共享）。请在主机上"
              "（net share）确认共享是否仍在使用；确认无人使用后再人工停止（net stop server；sc config lanmanserver start= disabled；"
              "撤销：sc config lanmanserver start= auto；net start server）。在此之前请关闭 SMB1、强制签名，并在边界封禁 139/445。",
    },
    "verify-unknown": {
        "en": "Settle {finding}: the scan could not decide it ({reason}). {how}",
        "zh": "核实 {finding}：扫描无法判定（{reason}）。{how}",
    },
    "verify-untested": {
        "en": "SMB answered on this host but it could not be tested ({errors}): it is not known to be safe. Check why (an IPS, a "
              "firewall that resets, a device that is not Windows), let the scanner reach 139/445, and scan it again or audit it "
              "on the host (smbsentry collector, then smbsentry audit).",
        "zh": "本机 SMB 端口有应答，但无法完成检测（{errors}）：不能认为它是安全的。请查明原因（IPS、会重置连接的防火墙、"
              "非 Windows 设备），让扫描器能够访问 139/445 后重新扫描，或在主机上审计（smbsentry collector，然后 smbsentry audit）。",
    },
    "conflict-scan-bad": {
        "en": "The scan and the audit disagree on {finding}: the scan proved it on the wire ({scan}: {scan_evidence}) while the "
              "inventory says {audit} ({audit_evidence}). Trust the wire until this is settled. Likely causes: the update is "
              "installed but not active until the host restarts; the inventory is older than the scan; the inventory belongs to "
              "another host with the same name. Settle it: restart the host if an update is pending, export a fresh inventory "
              "(smbsentry collector) and scan it again.",
        "zh": "扫描与审计对 {finding} 的结论不一致：扫描在网络上证实了问题（{scan}：{scan_evidence}），而清单显示为 {audit}"
              "（{audit_evidence}）。在查明之前以网络结果为准。可能原因：补丁已安装但需要重启才生效；清单早于扫描；清单属于另一台同名主机。"
              "判定方法：如有待重启的补丁先重启主机，重新导出清单（smbsentry collector），然后重新扫描。",
    },
    "conflict-audit-bad": {
        "en": "The scan and the audit disagree on {finding}: the scan's probe found it fixed ({scan_evidence}) while the inventory "
              "says {audit} ({audit_evidence}). Likely causes: the fix came with a later update the inventory does not list "
              "(systeminfo's list is cut at about 245 entries), or the inventory is older than the scan, or belongs to another host. "
              "Settle it: export a full inventory (Get-HotFix or the collector) and audit it again.",
        "zh": "扫描与审计对 {finding} 的结论不一致：扫描探测显示已修复（{scan_evidence}），而清单显示为 {audit}（{audit_evidence}）。"
              "可能原因：修复包含在清单未列出的更新中（systeminfo 的列表约 245 条后会被截断），或清单早于扫描，或属于另一台主机。"
              "判定方法：导出完整清单（Get-HotFix 或采集脚本）后重新审计。",
    },
    "no-answer": {"en": "no usable answer", "zh": "没有可用的应答"},
    "settle-session": {
        "en": "To settle it: scan again with an account that can open IPC$ (--user, password from SMBSENTRY_PASSWORD), or audit the "
              "host's installed updates (smbsentry collector on the host, then smbsentry audit).",
        "zh": "判定方法：使用能打开 IPC$ 的账户重新扫描（--user，密码通过 SMBSENTRY_PASSWORD 提供），或审计主机已安装的补丁"
              "（在主机上运行 smbsentry collector，再用 smbsentry audit 分析）。",
    },
    "settle-ubr": {
        "en": "To settle it: read the build revision (UBR) on the host (smbsentry collector, or smbsentry audit --remote with an "
              "administrator account): 720 or later is fixed.",
        "zh": "判定方法：读取主机的系统修订号（UBR）（smbsentry collector，或使用管理员账户 smbsentry audit --remote）：720 及以上已修复。",
    },
    "settle-audit": {
        "en": "To settle it: audit the host (systeminfo or the collector's output through smbsentry audit, or smbsentry audit --remote).",
        "zh": "判定方法：审计该主机（通过 smbsentry audit 分析 systeminfo 或采集脚本的输出，或使用 smbsentry audit --remote）。",
    },
    "settle-rescan": {
        "en": "To settle it: let the scanner reach 139/445 of this host and scan it again.",
        "zh": "判定方法：让扫描器能够访问该主机的 139/445 端口后重新扫描。",
    },
    "settle-none": {
        "en": "No public information decides it (the affected versions were never published): rely on the general measures "
              "(SMB signing required, 445 blocked between segments and at the border, supported Windows versions).",
        "zh": "没有公开信息可以判定（受影响版本从未公布）：依靠通用措施（强制 SMB 签名、在网段之间和边界封禁 445、使用受支持的 Windows 版本）。",
    },
    "settle-samba": {
        "en": "To settle it: read the Samba version on the host (smbd -V).",
        "zh": "判定方法：在主机上查看 Samba 版本（smbd -V）。",
    },
    "why-dc": {"en": "domain controller: SYSVOL, NETLOGON and the directory", "zh": "域控制器：SYSVOL、NETLOGON 和目录数据"},
    "why-data": {"en": "it holds data", "zh": "存有数据"},
    "why-unseen": {"en": "its shares could not be listed, so what it holds is not known", "zh": "无法列出其共享，不清楚其中存有哪些数据"},
    # --- notes -----------------------------------------------------------------------------
    "note-data-host": {
        "en": "This host shares data: stopping the Server service or blocking 139/445 on the host would cut its users off; "
              "allow 139/445 only from the clients that need them instead.",
        "zh": "本机对外共享数据：停止 Server 服务或在本机封禁 139/445 会中断业务；改为只允许需要访问的客户端连接 139/445。",
    },
    "smb1-clients-seen": {
        "en": "Before turning SMB1 off on this host, move these clients off SMB1 (upgrade them, or enable SMB2 on them): they "
              "still spoke SMB1 to it in the recorded traffic: {clients}. Turn it off once none is left.",
        "zh": "关闭本机 SMB1 之前，先让以下客户端不再使用 SMB1（升级系统或启用 SMB2）：在记录的流量中它们仍通过 SMB1 访问本机：{clients}。"
              "全部处理完毕后再关闭 SMB1。",
    },
    "smb1-none-seen": {
        "en": "No SMB1 use of this host was seen in the recorded traffic ({spans}): turning SMB1 off should cut nobody off that "
              "those captures saw.",
        "zh": "在记录的流量（{spans}）中没有发现访问本机的 SMB1 连接：关闭 SMB1 不会影响这些抓包中出现过的客户端。",
    },
    "note-smb1-clients": {
        "en": "Turning SMB1 off cuts off Windows XP / Server 2003 clients: find who still uses it first (smbsentry detect "
              "--store on captures of this host's traffic, or the SMB1 access audit).",
        "zh": "关闭 SMB1 后 Windows XP / Server 2003 客户端将无法访问共享：先确认还有哪些客户端在使用 SMB1"
              "（对本机流量的抓包运行 smbsentry detect --store，或启用 SMB1 访问审计）。",
    },
    "note-later-update": {
        "en": "{note}",
        "zh": "{note}",
    },
    "note-service-pack": {
        "en": "{kb} needs {sp} first (\"update not applicable\" otherwise): install it, restart, then run the script again.",
        "zh": "{kb} 需要先安装 {sp}（否则提示\"此更新不适用于您的计算机\"）：安装后重启，再次运行脚本。",
    },
    "note-os-assumed": {
        "en": "OS from the network fingerprint: {os} (they share one build; the plan takes {chosen}'s updates and dates).",
        "zh": "操作系统来自网络指纹：{os}（构建号相同；计划按 {chosen} 选择补丁和支持期限）。",
    },
    "note-smb-closed": {
        "en": "SMB (139/445) did not answer the scan on this host (it was seen through other services): "
              "the steps that close SMB are left out; check from the other segments that it stays closed.",
        "zh": "本次扫描中该主机的 SMB（139/445）没有应答（是通过其他服务发现的）：因此省略了关闭 SMB 的步骤；"
              "请从其他网段确认这些端口确实保持关闭。",
    },
    "note-eol": {
        "en": "{os} is past the end of extended support ({date}): patch what can be patched, then upgrade.",
        "zh": "{os} 已超出微软扩展支持期（{date}）：先修补能修补的漏洞，再升级系统。",
    },
    "note-signing": {
        "en": "Advice: make sure every client can sign (all supported Windows versions can) before requiring it.",
        "zh": "建议：要求签名之前先确认所有客户端都支持 SMB 签名（受支持的 Windows 版本均支持）。",
    },
    "note-reboot": {
        "en": "Restart required.",
        "zh": "需要重启。",
    },
    "note-pending": {
        "en": "Already done on this host: {what}.",
        "zh": "本机已完成：{what}。",
    },
    # --- plan.md -------------------------------------------------------------------------------
    "title": {"en": "smbsentry remediation plan", "zh": "smbsentry 修复计划"},
    "summary": {
        "en": "{hosts} hosts: {isolate} to isolate now, {backup} to back up first, {patch} to patch, {workaround} needing workarounds, "
              "{identify} to identify, {verify} to verify, {clean} with nothing to do.",
        "zh": "共 {hosts} 台主机：{isolate} 台需立即隔离，{backup} 台需先备份，{patch} 台需打补丁，{workaround} 台需采取缓解措施，"
              "{identify} 台需先确定操作系统，{verify} 台需核实，{clean} 台无需处理。",
    },
    "flow": {
        "en": "Order (the response flow of the vendors' WannaCry and Shadow Brokers advisories, Antiy's in particular): isolate "
              "compromised hosts; back up or snapshot before any change that interrupts service; where an update exists for the exact "
              "OS and architecture, install it (prerequisites first) and verify it; where none exists or the OS is past end of support, "
              "disable SMB1, block 139/445 at the border and between segments, isolate the host and upgrade (stopping the Server "
              "service only where the host is proven to share nothing); then harden; then settle what the scan could not decide. "
              "Stage the offline bundle (bundle.csv) for isolated networks before you start.",
        "zh": "处置顺序（依据各安全厂商关于 WannaCry 和“影子经纪人”工具的处置建议，特别是安天的基本处置流程）：先隔离已被入侵的主机；"
              "任何会中断业务的改动之前先备份或创建快照；系统有对应版本和位数的补丁时，先装前置补丁再装补丁并验证；"
              "没有补丁或系统已停止支持时，关闭 SMB1、在边界和网段之间封禁 139/445 端口、隔离主机并升级"
              "（只有确认主机不提供任何共享时才停止 Server 服务）；然后进行安全加固；最后核实扫描无法判定的项目。"
              "隔离网络请提前准备离线补丁包（bundle.csv）。",
    },
    "h-actions": {"en": "What to do first", "zh": "优先处置清单"},
    "actions-help": {
        "en": "Ranked: isolate compromised hosts now, then proven vulnerabilities (critical first), then likely ones, then hardening, "
              "then what the scan could not decide. Within a rank, hosts exposed more widely come first where the exposure is known. "
              "The step ids are the plan's (plan.json `steps[].id`).",
        "zh": "排序：先立即隔离已被入侵的主机，再处理已证实的漏洞（严重的优先），然后是疑似漏洞、安全加固，最后核实扫描无法判定的项目。"
              "同一级别内，已知暴露范围更大的主机优先。步骤编号与计划中的一致（plan.json 的 `steps[].id`）。",
    },
    "actions-more": {"en": "... and {n} more rows: plan.json `actions` has the whole list.",
                     "zh": "……另有 {n} 行：完整列表见 plan.json 的 `actions`。"},
    "col-rank": {"en": "rank", "zh": "级别"},
    "col-host": {"en": "host", "zh": "主机"},
    "col-why": {"en": "why (evidence)", "zh": "原因（证据）"},
    "col-next": {"en": "next step", "zh": "下一步"},
    "rank-isolate-now": {"en": "isolate now", "zh": "立即隔离"},
    "rank-vulnerable": {"en": "vulnerable", "zh": "存在漏洞"},
    "rank-likely": {"en": "likely vulnerable", "zh": "疑似漏洞"},
    "rank-hardening": {"en": "hardening", "zh": "安全加固"},
    "rank-verify": {"en": "verify", "zh": "待核实"},
    "interrupts": {"en": "interrupts: {what}", "zh": "影响：{what}"},
    "h-isolate": {"en": "Isolate now", "zh": "立即隔离"},
    "h-backup": {"en": "Back up first", "zh": "先备份"},
    "h-hosts": {"en": "Hosts, in order", "zh": "各主机处置步骤（按顺序）"},
    "h-groups": {"en": "Script groups", "zh": "脚本分组"},
    "h-bundle": {"en": "Offline patch bundle", "zh": "离线补丁包"},
    "h-clean": {"en": "Nothing to do", "zh": "无需处理"},
    "h-firewall": {"en": "Firewall", "zh": "防火墙"},
    "none": {"en": "none", "zh": "无"},
    "os-unknown": {"en": "OS unknown", "zh": "操作系统未知"},
    "findings": {"en": "findings", "zh": "发现"},
    "manual": {"en": "manual", "zh": "人工"},
    "script": {"en": "script", "zh": "脚本"},
    "group": {"en": "script group", "zh": "脚本分组"},
    "hosts-word": {"en": "hosts", "zh": "主机"},
    "groups-help": {
        "en": "Run `<group>-apply` as Administrator on every host of the group (it checks the OS and architecture first), restart, "
              "then `<group>-apply verify` (PowerShell: -Verify); `<group>-rollback` undoes the configuration changes "
              "(`updates` / -IncludeUpdates also removes the updates). Packages are read from ..\\bundle next to the scripts, or from "
              "%SMBSENTRY_BUNDLE%.",
        "zh": "以管理员身份在该组的每台主机上运行 `<分组>-apply`（脚本会先检查系统版本和位数），重启后运行 `<分组>-apply verify`"
              "（PowerShell 使用 -Verify）进行验证；`<分组>-rollback` 撤销配置改动（加 `updates` / -IncludeUpdates 参数同时卸载补丁）。"
              "补丁文件从脚本旁的 ..\\bundle 目录读取，或由 %SMBSENTRY_BUNDLE% 指定。",
    },
    "bundle-help": {
        "en": "Stage these files for isolated networks: the base packages and the key patches first. base = service "
              "pack needed first; key = the update to install; alternative = another update that also fixes it. Windows XP / "
              "Server 2003 packages exist per system language (English and Chinese rows are listed; stage only the one matching "
              "the hosts' language, the scripts take whichever is staged); a row without a file says why.",
        "zh": "为隔离网络提前准备以下文件（先储备基础补丁包和重要补丁包）。base = 需先安装的 Service Pack；key = 需要安装的补丁；"
              "alternative = 同样能修复的其他补丁。Windows XP / Server 2003 的补丁按系统语言区分（列出英文和简体中文两行；"
              "只放入与主机语言相符的那个，脚本会使用已放入的文件）；没有文件的行说明了原因。",
    },
}


def t(key: str, lang: str, **values) -> str:
    entry = TEXT[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**values) if values else text
