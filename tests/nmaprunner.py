"""Run nmap's SMB NSE scripts against loopback test servers and parse the XML.

nmap 7.93 (Debian 12) specifics, see also tests/sambaserver.py:
* smb-protocols: ``<table key="dialects">`` with one ``<elem>`` per dialect:
  "NT LM 0.12 (SMBv1) [dangerous, but default]", "202", "210", "300", "302",
  "311".  Other nmap releases print "2.02"/"3.11" or "2:0:2"/"3:1:1"; all are
  normalised to "2.0.2", "2.1", "3.0", "3.0.2", "3.1.1".
* smb2-security-mode: ``<table key="311"><elem>Message signing enabled and
  required</elem></table>`` (key = highest dialect, same odd formatting).
* smb-security-mode (SMB1 only): elems account_used, authentication_level,
  challenge_response, message_signing ("disabled"/"supported"/"required").
* smb-os-discovery (SMB1 only): elems os, lanmanager, server, date, fqdn,
  domain_dns, workgroup (Samba's server/workgroup carry a literal "\\x00"
  suffix, stripped here).
A script that gets no answer is simply absent from the XML.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "DEFAULT_SCRIPTS",
    "NmapError",
    "nmap_available",
    "nmap_version",
    "normalise_dialect",
    "parse_nmap_xml",
    "run_nmap",
    "scan",
]

DEFAULT_SCRIPTS: tuple[str, ...] = ("smb-protocols", "smb2-security-mode", "smb-os-discovery", "smb-security-mode")
SMB1_DIALECT = "NT LM 0.12"
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class NmapError(RuntimeError):
    pass


def nmap_path() -> str | None:
    return shutil.which("nmap") or shutil.which("nmap", path="/usr/bin:/usr/local/bin")


def nmap_available() -> bool:
    return nmap_path() is not None


def nmap_version() -> str | None:
    path = nmap_path()
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=15, check=False).stdout
    except (subprocess.TimeoutExpired, OSError):
        return None
    m = re.search(r"Nmap version (\S+)", out)
    return m.group(1) if m else None


def _check_target(target: str) -> str:
    ip = ipaddress.ip_address(target)
    if ip.version != 4 or ip not in _LOOPBACK:
        raise ValueError(f"refusing to scan {target!r}: the test harness only scans 127.0.0.0/8")
    return str(ip)


def normalise_dialect(text: str) -> str | None:
    """"202"/"2.02"/"2:0:2"/"2.0.2" -> "2.0.2"; "210" -> "2.1"; SMB1 names -> None."""
    t = text.strip()
    if not t or "NT LM" in t.upper() or "SMBV1" in t.upper():
        return None
    digits = re.sub(r"[^0-9]", "", t)
    if len(digits) == 2:  # "2.1" / "3.0" already short
        digits += "0"
    if len(digits) != 3:
        return None
    major, minor, sub = digits
    return f"{major}.{minor}" if sub == "0" else f"{major}.{minor}.{sub}"


def _dialect_key(d: str) -> tuple[int, ...]:
    return tuple(int(x) for x in d.split("."))


def _signing_from_text(text: str) -> str | None:
    t = text.lower()
    if "enabled and required" in t:
        return "required"
    if "enabled but not required" in t:
        return "enabled"
    if "disabled" in t:
        return "disabled"
    return None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.replace("\\x00", "").replace("\x00", "").strip()
    return value


def _table_to_py(node: ET.Element) -> Any:
    """Convert an NSE <script>/<table> element into dict (keyed) or list (unkeyed)."""
    children = [c for c in node if c.tag in ("elem", "table")]
    if children and all(c.get("key") is None for c in children):
        return [(_clean(c.text) or "") if c.tag == "elem" else _table_to_py(c) for c in children]
    out: dict[str, Any] = {}
    for i, c in enumerate(children):
        key = c.get("key") or str(i)
        out[key] = (_clean(c.text) or "") if c.tag == "elem" else _table_to_py(c)
    return out


def _empty_host(address: str) -> dict[str, Any]:
    return {
        "address": address,
        "state": None,
        "ports": {},
        "dialects": [],
        "smb1": None,
        "smb2_signing": None,
        "smb2_signing_dialect": None,
        "smb1_signing": None,
        "smb1_security": {},
        "os_discovery": {},
        "scripts": {},
        "raw_scripts": {},
    }


def _apply_script(host: dict[str, Any], script_id: str, data: Any, output: str) -> None:
    host["scripts"][script_id] = data
    host["raw_scripts"][script_id] = output
    if script_id == "smb-protocols":
        entries = data.get("dialects", []) if isinstance(data, dict) else []
        dialects = {d for d in (normalise_dialect(e) for e in entries) if d}
        host["dialects"] = sorted(dialects, key=_dialect_key)
        host["smb1"] = any(SMB1_DIALECT in e for e in entries)
    elif script_id == "smb2-security-mode" and isinstance(data, dict):
        for key, lines in data.items():
            texts = lines if isinstance(lines, list) else [lines]
            for text in texts:
                mode = _signing_from_text(str(text))
                if mode:
                    host["smb2_signing"] = mode
                    host["smb2_signing_dialect"] = normalise_dialect(key)
    elif script_id == "smb-security-mode" and isinstance(data, dict):
        host["smb1_security"] = dict(data)
        host["smb1_signing"] = data.get("message_signing") or None
    elif script_id == "smb-os-discovery" and isinstance(data, dict):
        host["os_discovery"] = {k: v for k, v in data.items() if isinstance(v, str)}


def parse_nmap_xml(xml_text: str) -> dict[str, dict[str, Any]]:
    """Parse ``nmap -oX`` output into {address: host-dict}.

    Host dict keys: address, state, ports {port: {state, service, product,
    version}}, dialects (SMB2+ as "2.0.2".."3.1.1", sorted), smb1 (True/False,
    None if smb-protocols did not answer), smb2_signing ("required"/"enabled"/
    "disabled"/None), smb2_signing_dialect, smb1_signing (smb-security-mode's
    "disabled"/"supported"/"required"/None), smb1_security (all its elems),
    os_discovery (os, lanmanager, server, workgroup, fqdn, domain_dns, date,
    ...), scripts (structured output per script id), raw_scripts (human text).
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise NmapError(f"unparseable nmap XML: {exc}\n{xml_text[-2000:]}") from exc
    hosts: dict[str, dict[str, Any]] = {}
    for h in root.iter("host"):
        addr_el = next((a for a in h.findall("address") if a.get("addrtype") in ("ipv4", "ipv6")), None)
        if addr_el is None:
            continue
        host = _empty_host(addr_el.get("addr", ""))
        status = h.find("status")
        host["state"] = status.get("state") if status is not None else None
        for port in h.iter("port"):
            state = port.find("state")
            service = port.find("service")
            entry = {
                "protocol": port.get("protocol"),
                "state": state.get("state") if state is not None else None,
                "service": service.get("name") if service is not None else None,
                "product": service.get("product") if service is not None else None,
                "version": service.get("version") if service is not None else None,
            }
            host["ports"][int(port.get("portid", "0"))] = entry
            for script in port.findall("script"):
                _apply_script(host, script.get("id", ""), _table_to_py(script), script.get("output", ""))
        hostscript = h.find("hostscript")
        if hostscript is not None:
            for script in hostscript.findall("script"):
                _apply_script(host, script.get("id", ""), _table_to_py(script), script.get("output", ""))
        hosts[host["address"]] = host
    return hosts


def run_nmap(
    targets: str | Iterable[str],
    *,
    ports: Sequence[int] | str = (445,),
    scripts: Sequence[str] | str = DEFAULT_SCRIPTS,
    script_args: str | None = None,
    timeout: float = 120.0,
    extra_args: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """``nmap -Pn -n -p445 --script ... -oX - TARGETS`` -> {address: host-dict}."""
    path = nmap_path()
    if path is None:
        raise NmapError("nmap not installed (apt install nmap)")
    if isinstance(targets, str):
        targets = [targets]
    addrs = [_check_target(t) for t in targets]
    if not addrs:
        raise ValueError("no targets")
    port_spec = ports if isinstance(ports, str) else ",".join(str(p) for p in ports)
    script_spec = scripts if isinstance(scripts, str) else ",".join(scripts)
    cmd = [path, "-Pn", "-n", "-p", port_spec]
    if script_spec:
        cmd += ["--script", script_spec]
    if script_args:
        cmd += ["--script-args", script_args]
    cmd += ["--host-timeout", f"{max(1, int(timeout))}s", *extra_args, "-oX", "-", *addrs]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 15, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise NmapError(f"nmap timed out after {timeout}s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise NmapError(f"nmap exited {proc.returncode}: {' '.join(cmd)}\n{proc.stderr}\n{proc.stdout[-2000:]}")
    hosts = parse_nmap_xml(proc.stdout)
    for a in addrs:
        hosts.setdefault(a, _empty_host(a))
    return hosts


def scan(address: str, **kwargs: Any) -> dict[str, Any]:
    """Scan one address; returns its host dict (see parse_nmap_xml)."""
    return run_nmap([address], **kwargs)[_check_target(address)]


def vuln_state(host: dict[str, Any], script_id: str) -> str | None:
    """The vulns-library state a script reported ("VULNERABLE", "NOT VULNERABLE",
    "LIKELY VULNERABLE", ...), or None when the script printed nothing.
    Run nmap with ``script_args="vulns.showall"`` to see NOT VULNERABLE too."""
    data = host.get("scripts", {}).get(script_id)
    if not isinstance(data, dict):
        return None
    for table in data.values():
        if isinstance(table, dict) and "state" in table:
            return str(table["state"]).strip().upper()
    return None
