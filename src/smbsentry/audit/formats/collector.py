"""The JSON written by smbsentry's PowerShell collector (audit/collector/collect.ps1).

Marker: {"format": "smbsentry-collector", "version": 1, ...}.  Windows
PowerShell 5.1 writes it with ConvertTo-Json (`> file` makes it UTF-16 LE
with a BOM, which encoding.decode handles), PowerShell 2.0 with the
script's own writer.  The collector reports raw values (registry values are
null when absent, with `key_found` saying whether the key was there); the
defaults Windows applies to absent values are decided here:

* SMB1 server: Get-SmbServerConfiguration's EnableSMB1Protocol (8 / 2012+),
  else LanmanServer\\Parameters SMB1 (0 = off), else on Windows 10 / 2016+
  the SMB 1.0 server driver service `srv` (absent or Start=4 = off), else
  on by default (XP / 2003 speak nothing else; Vista to 8.1 enable it).
* SMBDeviceEnabled absent with the NetBT key present: enabled (the default).
* DisableCompression absent with the LanmanServer key present: not disabled.
* The firewall blocks SMB when a profile is on and an enabled inbound block
  rule covers TCP 445; on XP / 2003 (no block rules) when the firewall is on
  and the File and Printer Sharing exception is off or exceptions are refused.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InventoryError
from ..facts import HostFacts

MARKER = "smbsentry-collector"
VERSIONS = (1,)
ARCH = {"amd64": "x64", "x86": "x86", "arm64": "arm64", "ia64": "ia64", "em64t": "x64"}


def is_collector(item: Any) -> bool:
    return isinstance(item, dict) and item.get("format") == MARKER


def _int(value) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _flag(value) -> bool | None:
    """A registry DWORD or a boolean as True/False; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    n = _int(value)
    return None if n is None else n != 0


def _os(item: dict, facts: HostFacts) -> None:
    os_ = item.get("os") or {}
    caption = (os_.get("caption") or "").strip() or None
    name = (os_.get("product_name") or "").strip() or None
    # WMI's caption is right for Windows 11 (ProductName still says "Windows 10"); ProductName
    # is the fallback when WMI failed.
    facts.os_name = caption or name
    build = _int(os_.get("current_build_number")) or _int(os_.get("build_number")) or _int(os_.get("current_build"))
    facts.build = build
    version = os_.get("version")
    if version:
        facts.os_version = str(version)
    elif os_.get("current_version") and build:
        facts.os_version = f"{os_['current_version']}.{build}"
    facts.ubr = _int(os_.get("ubr"))
    sp = _int(os_.get("service_pack_major"))
    if sp is None and os_.get("csd_version"):
        m = re.search(r"(\d+)", str(os_["csd_version"]))
        sp = int(m.group(1)) if m else None
    if sp is None and (caption or name):
        sp = 0 if not os_.get("csd_version") else None
    facts.service_pack = sp
    arch = str(os_.get("processor_architecture") or "").strip().lower()
    facts.architecture = ARCH.get(arch)
    if facts.architecture is None:
        text = str(os_.get("os_architecture") or "")
        facts.architecture = "x64" if "64" in text and "arm" not in text.lower() else ("x86" if "32" in text else None)
    facts.edition = os_.get("edition_id") or None
    ptype = _int(os_.get("product_type"))
    reg_type = str(os_.get("product_type_registry") or "").lower()
    if ptype is not None:
        facts.domain_controller = ptype == 2
    elif reg_type:
        facts.domain_controller = reg_type == "lanmannt"


def _smb(item: dict, facts: HostFacts) -> None:
    smb = item.get("smb")
    if not isinstance(smb, dict):
        return
    cfg = smb.get("server_configuration") or {}
    reg = smb.get("lanmanserver_parameters") or {}
    nbt = smb.get("netbt_parameters") or {}
    srv = smb.get("srv_driver") or {}
    build = facts.build or 0
    if isinstance(cfg.get("EnableSMB1Protocol"), bool):
        facts.smb1_server = cfg["EnableSMB1Protocol"]
    elif reg.get("SMB1") is not None:
        facts.smb1_server = _flag(reg["SMB1"])
    elif build >= 10240 and srv:
        facts.smb1_server = bool(srv.get("key_found")) and _int(srv.get("Start")) != 4
    elif reg.get("key_found") and build:
        facts.smb1_server = True  # the default up to Windows 8.1 / 2012 R2, and all XP / 2003 speak
    if nbt.get("SMBDeviceEnabled") is not None:
        facts.smb_device_enabled = _flag(nbt["SMBDeviceEnabled"])
    elif nbt.get("key_found"):
        facts.smb_device_enabled = True
    if reg.get("DisableCompression") is not None:
        facts.disable_compression = _int(reg["DisableCompression"]) == 1
    elif reg.get("key_found"):
        facts.disable_compression = False
    if isinstance(cfg.get("RequireSecuritySignature"), bool):
        facts.smb_signing_required = cfg["RequireSecuritySignature"]
    elif reg.get("key_found"):
        facts.smb_signing_required = _int(reg.get("RequireSecuritySignature")) == 1
    restrict = _flag(reg.get("RestrictNullSessAccess"))
    if restrict is not None:
        facts.restrict_null_sessions = restrict


def _service(item: dict, facts: HostFacts) -> None:
    svc = item.get("server_service")
    if not isinstance(svc, dict):
        return
    state = str(svc.get("state") or "").lower()
    mode = str(svc.get("start_mode") or "").lower()
    if state == "running":
        facts.server_service = "running"
    elif mode == "disabled" or _int(svc.get("start_registry")) == 4:
        facts.server_service = "disabled"
    elif state:
        facts.server_service = "stopped"


def _listening(item: dict, facts: HostFacts) -> None:
    lst = item.get("listening")
    ports = lst.get("ports") if isinstance(lst, dict) else None
    if isinstance(ports, dict):
        facts.listening = {str(k): bool(v) for k, v in ports.items() if isinstance(v, bool)}


def _covers(ports: str, port: int) -> bool:
    for part in str(ports).split(","):
        part = part.strip()
        if part == str(port):
            return True
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m and int(m.group(1)) <= port <= int(m.group(2)):
            return True
    return False


def _firewall(item: dict, facts: HostFacts) -> None:
    fw = item.get("firewall")
    if not isinstance(fw, dict):
        return
    profiles = {k: _flag(v) for k, v in (fw.get("profiles") or {}).items()}
    any_on = any(v for v in profiles.values())
    rules = [r for r in fw.get("rules") or () if isinstance(r, dict)]
    described = []
    blocks = False
    for r in rules:
        inbound = str(r.get("direction", "")).lower() in ("in", "inbound", "1")
        block = str(r.get("action", "")).lower() in ("block", "0")
        tcp = str(r.get("protocol", "")).lower() in ("tcp", "6", "any", "")
        enabled = r.get("enabled") is True
        ports = str(r.get("local_ports", ""))
        described.append(f"{'enabled' if enabled else 'disabled'} {r.get('direction') or '?'} {r.get('action') or '?'} "
                         f"{r.get('protocol') or '?'} {ports}: {r.get('name') or '(no name)'}")
        if enabled and inbound and block and tcp and _covers(ports, 445):
            blocks = True
    facts.firewall_rules = described
    xp = fw.get("xp") or {}
    xp_block = (xp.get("file_and_print_exception") is not None and profiles.get("StandardProfile")
                and (_int(xp.get("file_and_print_exception")) == 0 or _int(xp.get("do_not_allow_exceptions")) == 1))
    if fw.get("source") is None and not rules and not profiles:
        return
    facts.firewall_blocks_smb = bool((blocks and any_on) or xp_block)


def _wannacry(item: dict, facts: HostFacts) -> None:
    wc = item.get("wannacry")
    if not isinstance(wc, dict):
        return
    found = [f"file {x}" for x in wc.get("files") or ()] + [f"process {x}" for x in wc.get("processes") or ()]
    found += [f"service {x}" for x in wc.get("services") or ()]
    facts.wannacry_indicators = found


def parse_item(item: dict, path: str, line: int) -> HostFacts:
    """Facts of one collector document; InventoryError for a version this code does not know."""
    version = item.get("version")
    if version not in VERSIONS:
        raise InventoryError(path, line, f"smbsentry-collector version {version!r} is not supported (known: {', '.join(map(str, VERSIONS))})")
    host = str(item.get("host") or "").strip() or None
    facts = HostFacts(host=host)
    addrs = [a for a in item.get("addresses") or () if isinstance(a, str)]
    v4 = [a for a in addrs if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a) and not a.startswith(("127.", "169.254."))]
    facts.address = v4[0] if v4 else None
    _os(item, facts)
    hotfixes = item.get("hotfixes")
    if isinstance(hotfixes, list):
        facts.add_kbs([h.get("id") if isinstance(h, dict) else h for h in hotfixes])
    elif isinstance(item.get("installed_kbs"), list):
        facts.add_kbs(item["installed_kbs"])
    _smb(item, facts)
    _service(item, facts)
    _listening(item, facts)
    _firewall(item, facts)
    _wannacry(item, facts)
    fv = item.get("file_versions")
    if isinstance(fv, dict):
        facts.file_versions = {k: str(v) for k, v in fv.items() if v} or None
    guest = item.get("guest_enabled")
    if isinstance(guest, bool):
        facts.guest_enabled = guest
    deny = _int(item.get("rdp_deny_connections"))
    if deny is not None:
        facts.rdp_enabled = deny == 0
    sw = item.get("software")
    if isinstance(sw, dict):
        facts.software = {str(k): str(v or "") for k, v in sw.items()}
    if facts.key is None:
        raise InventoryError(path, line, "collector output names no host")
    return facts
