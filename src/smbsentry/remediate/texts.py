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
    # --- notes -----------------------------------------------------------------------------
    "note-data-host": {
        "en": "This host shares data: stopping the Server service or blocking 139/445 on the host would cut its users off; "
              "allow 139/445 only from the clients that need them instead.",
        "zh": "本机对外共享数据：停止 Server 服务或在本机封禁 139/445 会中断业务；改为只允许需要访问的客户端连接 139/445。",
    },
    "note-smb1-clients": {
        "en": "Turning SMB1 off cuts off Windows XP / Server 2003 clients: find who still uses it first.",
        "zh": "关闭 SMB1 后 Windows XP / Server 2003 客户端将无法访问共享：先确认还有哪些客户端在使用 SMB1。",
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
        "en": "OS from the network fingerprint: {os} (the candidates share one build and take the same updates).",
        "zh": "操作系统来自网络指纹：{os}（这些候选系统构建号相同，补丁也相同）。",
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
              "{identify} to identify, {clean} with nothing to do.",
        "zh": "共 {hosts} 台主机：{isolate} 台需立即隔离，{backup} 台需先备份，{patch} 台需打补丁，{workaround} 台需采取缓解措施，"
              "{identify} 台需先确定操作系统，{clean} 台无需处理。",
    },
    "flow": {
        "en": "Order (seed 001's decision flow): isolate compromised hosts; back up hosts that hold data; where an update exists for the "
              "exact OS and architecture, install it (prerequisites first) and verify it; where none exists or the OS is past end of "
              "support, disable SMB1, stop the Server service, block 139/445, isolate the host and upgrade. Stage the offline bundle "
              "(bundle.csv) for isolated networks before you start.",
        "zh": "处置顺序（依据基本处置流程）：先隔离已被入侵的主机；备份存有数据的主机；系统有对应版本和位数的补丁时，先装前置补丁再装补丁并验证；"
              "没有补丁或系统已停止支持时，关闭 SMB1、停止 Server 服务、封禁 139/445 端口、隔离主机并升级。"
              "隔离网络请提前准备离线补丁包（bundle.csv）。",
    },
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
