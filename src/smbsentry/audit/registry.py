"""The remote registry read as host facts: what audit/remote.py asks a host, and what tests replay.

    facts_from_registry(registry, host=..., address=...) -> HostFacts

`Registry` is the interface (open key, query value, enumerate subkeys) the
credentialed audit reads through: ImpacketRegistry (audit/remote.py) over the
\\winreg pipe of a live host, RecordedRegistry from a recording.  The keys and
values read, and how each becomes a fact, are here; the SMB session, the
thread pool and the per-host errors are in remote.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ..model import cap
from .facts import HostFacts

CURRENT_VERSION = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion"
ENVIRONMENT = r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment"
PRODUCT_OPTIONS = r"SYSTEM\CurrentControlSet\Control\ProductOptions"
COMPUTER_NAME = r"SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName"
LANMAN_SERVER = r"SYSTEM\CurrentControlSet\Services\LanmanServer"
LANMAN_PARAMETERS = LANMAN_SERVER + r"\Parameters"
NETBT_PARAMETERS = r"SYSTEM\CurrentControlSet\Services\NetBT\Parameters"
SRV_DRIVER = r"SYSTEM\CurrentControlSet\Services\srv"
WANNACRY_SERVICE = r"SYSTEM\CurrentControlSet\Services\mssecsvc2.0"
TERMINAL_SERVER = r"SYSTEM\CurrentControlSet\Control\Terminal Server"
CBS_PACKAGES = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages"
XP_UPDATES = r"SOFTWARE\Microsoft\Updates"

# CBS CurrentState: 0x05 uninstall pending, 0x50 superseded, 0x60 install pending (needs a restart),
# 0x70 installed, 0x80 permanent.
INSTALLED_STATES = {0x05, 0x50, 0x70, 0x80}
PENDING_STATES = {0x60}
ARCH = {"amd64": "x64", "x86": "x86", "arm64": "arm64", "ia64": "ia64"}
KB_IN_NAME = re.compile(r"KB(\d{6,7})", re.I)
WANNACRY_FILES = ("mssecsvc.exe", "tasksche.exe")



# --- the registry interface ------------------------------------------------------------------

class KeyNotFound(LookupError):
    """The key does not exist (ERROR_FILE_NOT_FOUND)."""


class RegistryDenied(PermissionError):
    """The account may not open the key (ERROR_ACCESS_DENIED)."""


class Registry(Protocol):
    """What the fact reader needs from a registry; paths are below HKEY_LOCAL_MACHINE."""

    def open_key(self, path: str) -> Any:
        """A handle, or KeyNotFound / RegistryDenied."""

    def query_value(self, key: Any, name: str) -> Any:
        """str (REG_SZ / REG_EXPAND_SZ), int (REG_DWORD / REG_QWORD), list[str] (REG_MULTI_SZ), bytes; None when absent."""

    def enum_keys(self, key: Any) -> list[str]:
        """The names of the key's direct subkeys."""

    def close_key(self, key: Any) -> None: ...


class RecordedRegistry:
    """Recorded registry answers: {"keys": {path: {value name: value, ...}}, "denied": [path, ...]}.

    A path's subkeys are the recorded paths directly below it (plus an optional "@subkeys" list
    for keys recorded without their values).  Paths and names are case-insensitive, as in Windows;
    a value {"type": "REG_BINARY", "hex": "..."} stands for binary data.
    """

    def __init__(self, keys: dict[str, dict[str, Any]], denied: Iterable[str] = ()):
        self._keys: dict[str, dict[str, Any]] = {}
        self._children: dict[str, dict[str, str]] = {}
        self._denied = {p.strip("\\").lower() for p in denied}
        for path, values in keys.items():
            path = path.strip("\\")
            self._add_path(path)
            entry = self._keys.setdefault(path.lower(), {})
            for name, value in (values or {}).items():
                if name == "@subkeys":
                    for sub in value:
                        self._add_path(f"{path}\\{sub}")
                else:
                    entry[name.lower()] = value

    def _add_path(self, path: str) -> None:
        parts = path.split("\\")
        for i in range(1, len(parts) + 1):
            parent, name = "\\".join(parts[: i - 1]).lower(), parts[i - 1]
            self._children.setdefault(parent, {}).setdefault(name.lower(), name)
            self._keys.setdefault("\\".join(parts[:i]).lower(), {})

    def open_key(self, path: str) -> str:
        low = path.strip("\\").lower()
        if any(low == d or low.startswith(d + "\\") for d in self._denied):
            raise RegistryDenied(path)
        if low not in self._keys:
            raise KeyNotFound(path)
        return low

    def query_value(self, key: str, name: str) -> Any:
        value = self._keys[key].get(name.lower())
        if isinstance(value, dict) and "hex" in value:
            return bytes.fromhex(value["hex"])
        return value

    def enum_keys(self, key: str) -> list[str]:
        return list(self._children.get(key, {}).values())

    def close_key(self, key: str) -> None:
        return None


def load_recording(path: str | Path) -> tuple[RecordedRegistry, dict[str, Any]]:
    """(registry, the recording's other fields: host, address, captured, note, smb) from a JSON file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != "smbsentry-registry-recording":
        raise ValueError(f"{path}: not an smbsentry registry recording")
    meta = {k: v for k, v in data.items() if k not in ("keys", "denied")}
    return RecordedRegistry(data.get("keys") or {}, data.get("denied") or ()), meta


# --- registry -> facts -------------------------------------------------------------------------

class _Reader:
    """Reads values through a Registry, remembering which keys were missing or denied."""

    def __init__(self, reg: Registry):
        self.reg = reg
        self.denied: list[str] = []
        self.missing: list[str] = []

    def _open(self, path: str, note_missing: bool = True) -> tuple[Any, bool]:
        """(key handle or None, whether the key exists); a denied or missing key
        is written down once here so the facts can say what could not be read."""
        try:
            return self.reg.open_key(path), True
        except KeyNotFound:
            if note_missing:
                self.missing.append(path)
            return None, False
        except RegistryDenied:
            self.denied.append(path)
            return None, True

    def values(self, path: str, names: Iterable[str]) -> dict[str, Any] | None:
        """{name: value or None} for a key; None when the key is missing or denied."""
        key, _ = self._open(path)
        if key is None:
            return None
        try:
            return {n: _clean(self.reg.query_value(key, n)) for n in names}
        finally:
            self.reg.close_key(key)

    def exists(self, path: str) -> bool | None:
        """True or False; None when access is denied (existence unknown)."""
        key, found = self._open(path, note_missing=False)
        if key is None:
            return False if not found else None
        self.reg.close_key(key)
        return True

    def subkeys(self, path: str) -> list[str] | None:
        key, _ = self._open(path)
        if key is None:
            return None
        try:
            return self.reg.enum_keys(key)
        finally:
            self.reg.close_key(key)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.rstrip("\x00").strip() or None
    return value


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _kbs_from_cbs(reader: _Reader, check_state: bool) -> tuple[list[str] | None, list[str]]:
    """(installed KB ids or None, notes) from the servicing stack's package names."""
    names = reader.subkeys(CBS_PACKAGES)
    if names is None:
        return None, []
    by_kb: dict[str, list[str]] = {}
    for name in names:
        m = KB_IN_NAME.search(name)
        if m:
            by_kb.setdefault("KB" + m.group(1), []).append(name)
    installed, pending, notes = [], [], []
    for kb, packages in by_kb.items():
        if not check_state:
            installed.append(kb)
            continue
        states = []
        for pkg in packages:
            vals = reader.values(f"{CBS_PACKAGES}\\{pkg}", ("CurrentState",))
            states.append(_int(vals.get("CurrentState")) if vals else None)
        if any(s in INSTALLED_STATES or s is None for s in states):
            installed.append(kb)  # a package key without a readable state counts by its name
        elif any(s in PENDING_STATES for s in states):
            pending.append(kb)
    if pending:
        notes.append(f"installed but waiting for a restart (not counted): {', '.join(sorted(pending, key=lambda k: int(k[2:])))}")
    return installed, notes


def _kbs_from_xp_updates(reader: _Reader) -> list[str] | None:
    products = reader.subkeys(XP_UPDATES)
    if products is None:
        return None
    found = []
    for product in products:
        for level in reader.subkeys(f"{XP_UPDATES}\\{product}") or ():
            for name in reader.subkeys(f"{XP_UPDATES}\\{product}\\{level}") or ():
                m = KB_IN_NAME.search(name)
                if m:
                    found.append("KB" + m.group(1))
    return found


def facts_from_registry(reg: Registry, *, host: str | None = None, address: str | None = None,
                        check_package_state: bool = True) -> tuple[HostFacts, list[str]]:
    """HostFacts from registry answers and the notes on what could not be learned (empty when complete).

    Values Windows leaves absent get their documented defaults only where the key itself was read:
    SMB1 absent = on (Vista to 8.1 / 2012 R2; XP / 2003 speak nothing else), on Windows 10 / 2016+
    the `srv` driver service decides; SMBDeviceEnabled absent = on; DisableCompression absent = off.
    """
    r = _Reader(reg)
    notes: list[str] = []
    facts = HostFacts(host=host, address=address)
    cv = r.values(CURRENT_VERSION, ("ProductName", "CurrentVersion", "CurrentBuild", "CurrentBuildNumber", "UBR", "EditionID", "CSDVersion",
                                    "CurrentMajorVersionNumber", "CurrentMinorVersionNumber", "ReleaseId", "DisplayVersion")) or {}
    build = _int(cv.get("CurrentBuildNumber")) or _int(cv.get("CurrentBuild"))
    facts.build = build
    name = cv.get("ProductName")
    if name and build and build >= 22000 and "windows 10" in name.lower():
        name = re.sub(r"(?i)windows 10", "Windows 11", name)  # Windows 11 kept the Windows 10 ProductName
    facts.os_name = name
    major, minor = _int(cv.get("CurrentMajorVersionNumber")), _int(cv.get("CurrentMinorVersionNumber"))
    if build:
        facts.os_version = f"{major}.{minor}.{build}" if major is not None and minor is not None else (
            f"{cv['CurrentVersion']}.{build}" if cv.get("CurrentVersion") else None)
    facts.ubr = _int(cv.get("UBR"))
    facts.edition = cv.get("EditionID")
    if cv.get("CSDVersion"):
        m = re.search(r"(\d+)", cv["CSDVersion"])
        facts.service_pack = int(m.group(1)) if m else None
    elif name:
        facts.service_pack = 0
    if not name:
        seen = ", ".join(f"{k}={v}" for k, v in cv.items() if v is not None) or "nothing"
        notes.append(f"partial: the registry has no ProductName under HKLM\\{CURRENT_VERSION} (it answered {seen}); "
                     "not a full Windows registry (Samba serves a minimal one) or the value is unreadable: the OS is unknown")
    env = r.values(ENVIRONMENT, ("PROCESSOR_ARCHITECTURE",)) or {}
    facts.architecture = ARCH.get(str(env.get("PROCESSOR_ARCHITECTURE") or "").lower())
    po = r.values(PRODUCT_OPTIONS, ("ProductType",)) or {}
    if po.get("ProductType"):
        facts.domain_controller = str(po["ProductType"]).lower() == "lanmannt"
    cn = r.values(COMPUTER_NAME, ("ComputerName",)) or {}
    if cn.get("ComputerName"):
        facts.host = cap(str(cn["ComputerName"]), 63)

    ls = r.values(LANMAN_SERVER, ("Start",))
    lp = r.values(LANMAN_PARAMETERS, ("SMB1", "DisableCompression", "RequireSecuritySignature", "RestrictNullSessAccess"))
    if ls is not None:
        # We are talking to its SMB server: it runs now; Start=4 only says it will not start at boot.
        facts.server_service = "running"
        if _int(ls.get("Start")) == 4:
            notes.append("the Server service (LanmanServer) is set to Disabled but is running")
    if lp is not None:
        smb1 = _int(lp.get("SMB1"))
        if smb1 is not None:
            facts.smb1_server = smb1 != 0
        elif build and build >= 10240:
            srv = r.values(SRV_DRIVER, ("Start",))
            facts.smb1_server = srv is not None and _int(srv.get("Start")) != 4
        elif build:
            facts.smb1_server = True
        dc = _int(lp.get("DisableCompression"))
        facts.disable_compression = dc == 1
        facts.smb_signing_required = _int(lp.get("RequireSecuritySignature")) == 1
        rn = _int(lp.get("RestrictNullSessAccess"))
        if rn is not None:
            facts.restrict_null_sessions = rn != 0
    nbt = r.values(NETBT_PARAMETERS, ("SMBDeviceEnabled",))
    if nbt is not None:
        dev = _int(nbt.get("SMBDeviceEnabled"))
        facts.smb_device_enabled = True if dev is None else dev != 0
    ts = r.values(TERMINAL_SERVER, ("fDenyTSConnections",))
    if ts is not None and _int(ts.get("fDenyTSConnections")) is not None:
        facts.rdp_enabled = _int(ts["fDenyTSConnections"]) == 0
    wc = r.exists(WANNACRY_SERVICE) if name else None  # a minimal (non-Windows) registry proves nothing
    if wc is not None:
        facts.wannacry_indicators = ["service mssecsvc2.0"] if wc else []

    kbs, kb_notes = _kbs_from_cbs(r, check_package_state)
    notes += kb_notes
    xp = _kbs_from_xp_updates(r) if (build or 0) < 6000 else None
    if kbs is not None or xp is not None:
        facts.add_kbs((kbs or []) + (xp or []), clean=True)
    elif name:
        notes.append(f"partial: installed updates not readable (HKLM\\{CBS_PACKAGES})")
    if r.denied:
        notes.append("partial: access denied to " + ", ".join(f"HKLM\\{p}" for p in dict.fromkeys(r.denied)))
    return facts, notes


# --- one host over SMB ---------------------------------------------------------------------------
