"""Credentialed remote audit over SMB: the remote registry (winreg) -> HostFacts -> verdicts.

    audit_remote(targets, user, password, domain, timeout, workers) -> AuditRun

Per host: an SMB session with the given account (impacket), the \\winreg pipe,
then read-only registry reads:

* OS: CurrentVersion's ProductName, CurrentBuild(Number), UBR, EditionID,
  CSDVersion, CurrentMajor/MinorVersionNumber; PROCESSOR_ARCHITECTURE;
  ProductOptions\\ProductType (domain controller); the computer name;
* SMB: LanmanServer\\Parameters SMB1, DisableCompression,
  RequireSecuritySignature, RestrictNullSessAccess; NetBT\\Parameters
  SMBDeviceEnabled; the LanmanServer start type; the SMB 1.0 server driver
  service (`srv`, absent when Windows 10's SMB1 feature is removed);
* updates: Component Based Servicing\\Packages names with a KB number whose
  CurrentState is installed (XP / 2003: SOFTWARE\\Microsoft\\Updates).  On
  Windows 10 the monthly cumulative update is "Package_for_RollupFix", not
  a KB name: the build revision (UBR) is the evidence there;
* WannaCry: the mssecsvc2.0 service key, and mssecsvc.exe / tasksche.exe in
  ADMIN$ (C:\\Windows) when the account may read it.

Nothing is changed on the host, with one opt-in exception: with
`start_remote_registry=True` a stopped RemoteRegistry service is started
through svcctl (enabled first if disabled, like impacket's reg.py) and put
back as it was afterwards.  Without it a stopped service is reported as the
per-host error "RemoteRegistry not running".

Hosts run in a thread pool; each host has its own deadline and its own
errors, so a wrong password, a refused port or a hung host never affects the
others.  The registry layer is an interface (open key, query value, enumerate
subkeys) so tests feed recorded answers (RecordedRegistry) instead of a host.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from ..model import cap
from ..protocol.status import NtStatus
from ..protocol.status import name as status_name
from .api import AuditRun
from .errors import InventoryError
from .evaluate import evaluate
from .facts import HostFacts
from .result import AuditResult

__all__ = [
    "CBS_PACKAGES", "CURRENT_VERSION", "ERROR_KINDS", "HostOutcome", "KeyNotFound", "RecordedRegistry", "Registry", "RegistryDenied",
    "RecordedSession", "RemoteAuditError", "audit_remote", "audit_hosts", "expand_targets", "facts_from_registry", "load_recording",
]

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

# The per-host error vocabulary (like the scanner's): the first word of every error.
ERROR_KINDS = ("connection-refused", "connection-timeout", "connection-reset", "unreachable", "timeout", "logon-failure",
               "account-restricted", "guest-session", "access-denied", "remote-registry-not-running", "registry-error",
               "partial", "protocol-error", "unknown-error")


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

class RemoteAuditError(InventoryError):
    """A per-host failure of the remote audit: str() is "<target>: <kind>: <detail>"."""

    def __init__(self, target: str, kind: str, detail: str):
        self.kind, self.target = kind, target
        super().__init__(target, None, f"{kind}: {detail}")


class _Failed(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


_KIND_OF_STATUS = {
    NtStatus.LOGON_FAILURE: "logon-failure", NtStatus.NO_SUCH_USER: "logon-failure",
    NtStatus.WRONG_PASSWORD: "logon-failure", NtStatus.ACCOUNT_LOCKED_OUT: "account-restricted",
    NtStatus.ACCOUNT_DISABLED: "account-restricted", NtStatus.PASSWORD_EXPIRED: "account-restricted",
    NtStatus.PASSWORD_MUST_CHANGE: "account-restricted", NtStatus.ACCOUNT_RESTRICTION: "account-restricted",
    NtStatus.LOGON_TYPE_NOT_GRANTED: "account-restricted", NtStatus.ACCESS_DENIED: "access-denied",
}
#: NT status -> (kind, detail) of a failed remote audit logon
NT_STATUS_KINDS = {int(code): (kind, status_name(code)) for code, kind in _KIND_OF_STATUS.items()}
NT_STATUS_KINDS[NtStatus.LOGON_FAILURE] = ("logon-failure", "STATUS_LOGON_FAILURE: wrong user name or password")
# the names tests and callers use for the three codes the pipe steps test
STATUS_OBJECT_NAME_NOT_FOUND = NtStatus.OBJECT_NAME_NOT_FOUND
STATUS_ACCESS_DENIED = NtStatus.ACCESS_DENIED
NOT_RUNNING = ("RemoteRegistry not running (the \\winreg pipe does not exist): start the service on the host, or rerun "
               "with start_remote_registry (--start-remote-registry), which starts it through svcctl and restores it afterwards")


def _socket_failure(exc: BaseException) -> _Failed | None:
    if isinstance(exc, ConnectionRefusedError):
        return _Failed("connection-refused", "port 445 refused the connection")
    if isinstance(exc, ConnectionResetError):
        return _Failed("connection-reset", "the connection was reset")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return _Failed("connection-timeout", "no answer on port 445")
    if isinstance(exc, OSError) and exc.errno in (101, 113, 65, 10051, 10065):
        return _Failed("unreachable", exc.strerror or str(exc))
    text = str(exc)
    if "Connection refused" in text or "[Errno 111]" in text:
        return _Failed("connection-refused", "port 445 refused the connection")
    if "timed out" in text:
        return _Failed("connection-timeout", "no answer on port 445")
    if "Connection reset" in text:
        return _Failed("connection-reset", "the connection was reset")
    return None


def _smb_failure(exc: BaseException, step: str) -> _Failed:
    code = getattr(exc, "getErrorCode", lambda: None)()
    if isinstance(code, int) and code in NT_STATUS_KINDS:
        kind, text = NT_STATUS_KINDS[code]
        return _Failed(kind, f"{step}: {text}")
    sock = _socket_failure(exc)
    if sock:
        return sock
    return _Failed("protocol-error", f"{step}: {exc}")


class ImpacketRegistry:
    """Registry over the winreg pipe (MS-RRP) with impacket; read-only (KEY_READ)."""

    def __init__(self, dce):
        from impacket.dcerpc.v5 import rrp

        self._rrp, self._dce = rrp, dce
        self._hklm = rrp.hOpenLocalMachine(dce, samDesired=rrp.KEY_READ)["phKey"]

    @staticmethod
    def _code(exc) -> int | None:
        try:
            return exc.get_error_code()
        except AttributeError:
            return None

    def open_key(self, path: str):
        try:
            return self._rrp.hBaseRegOpenKey(self._dce, self._hklm, path, samDesired=self._rrp.KEY_READ)["phkResult"]
        except Exception as exc:
            code = self._code(exc)
            if code == 2:
                raise KeyNotFound(path) from None
            if code == 5 or "access_denied" in str(exc).lower():
                raise RegistryDenied(path) from None
            raise

    def query_value(self, key, name: str):
        try:
            kind, data = self._rrp.hBaseRegQueryValue(self._dce, key, name)
        except Exception as exc:
            if self._code(exc) == 2:
                return None
            raise
        if kind == self._rrp.REG_MULTI_SZ and isinstance(data, str):
            return [x for x in data.split("\x00") if x]
        return data

    def enum_keys(self, key) -> list[str]:
        out, i = [], 0
        while True:
            try:
                resp = self._rrp.hBaseRegEnumKey(self._dce, key, i)
            except Exception as exc:
                if self._code(exc) == 259:  # ERROR_NO_MORE_ITEMS
                    return out
                raise
            out.append(resp["lpNameOut"].rstrip("\x00"))
            i += 1

    def close_key(self, key) -> None:
        try:
            self._rrp.hBaseRegCloseKey(self._dce, key)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class _ServiceGuard:
    """Start RemoteRegistry through svcctl (opt-in) and restore its state afterwards, as impacket's reg.py does."""

    def __init__(self, conn, target: str):
        from impacket.dcerpc.v5 import scmr, transport

        self.scmr = scmr
        rpc = transport.SMBTransport(target, filename=r"\svcctl", smb_connection=conn)
        self.dce = rpc.get_dce_rpc()
        self.dce.connect()
        self.dce.bind(scmr.MSRPC_UUID_SCMR)
        manager = scmr.hROpenSCManagerW(self.dce)["lpScHandle"]
        self.service = scmr.hROpenServiceW(self.dce, manager, "RemoteRegistry")["lpServiceHandle"]
        self.stop_after = self.disabled = False

    def start(self) -> None:
        s = self.scmr
        state = s.hRQueryServiceStatus(self.dce, self.service)["lpServiceStatus"]["dwCurrentState"]
        if state == s.SERVICE_RUNNING:
            return
        if s.hRQueryServiceConfigW(self.dce, self.service)["lpServiceConfig"]["dwStartType"] == 0x4:
            self.disabled = True
            s.hRChangeServiceConfigW(self.dce, self.service, dwStartType=0x3)
        s.hRStartServiceW(self.dce, self.service)
        self.stop_after = True
        time.sleep(1)

    def restore(self) -> list[str]:
        s, notes = self.scmr, []
        try:
            if self.stop_after:
                s.hRControlService(self.dce, self.service, s.SERVICE_CONTROL_STOP)
                notes.append("RemoteRegistry was started for the audit and stopped again")
            if self.disabled:
                s.hRChangeServiceConfigW(self.dce, self.service, dwStartType=0x4)
                notes.append("RemoteRegistry was enabled for the audit and disabled again")
        except Exception as exc:  # noqa: BLE001 - report, do not fail the host
            notes.append(f"partial: could not restore the RemoteRegistry service: {exc}")
        return notes


class ImpacketSession:
    """One credentialed SMB session to a host and its winreg pipe."""

    def __init__(self, target: str, user: str, password: str, domain: str = "", *, port: int = 445, timeout: float = 10.0,
                 start_remote_registry: bool = False, lmhash: str = "", nthash: str = ""):
        self.target, self.port = target, port
        self.conn = None
        self.guard: _ServiceGuard | None = None
        self.notes: list[str] = []
        self._user, self._password, self._domain, self._timeout = user, password, domain, timeout
        self._start_rr, self._lm, self._nt = start_remote_registry, lmhash, nthash
        self._dce = None

    # every step maps its failure to one error kind
    def open(self) -> None:
        from impacket.smbconnection import SMBConnection

        # A plain TCP connect first: it names refused / unreachable / silent ports exactly, and impacket
        # leaves its socket open when the connect inside its constructor fails.
        try:
            socket.create_connection((self.target, self.port), timeout=self._timeout).close()
        except OSError as exc:
            raise _socket_failure(exc) or _Failed("unreachable", exc.strerror or str(exc)) from None
        self.conn = SMBConnection(self.target, self.target, sess_port=self.port, timeout=self._timeout, manualNegotiate=True)
        try:
            self.conn.negotiateSession()
        except Exception as exc:
            nmb_session, self.conn = getattr(self.conn, "_nmbSession", None), None
            try:
                if nmb_session:
                    nmb_session.close()
            except Exception:  # noqa: BLE001
                pass
            raise _socket_failure(exc) or _smb_failure(exc, "negotiate") from None
        try:
            self.conn.login(self._user, self._password, self._domain, self._lm, self._nt)
        except Exception as exc:
            raise _smb_failure(exc, "session setup") from None
        if self.conn.isGuestSession():
            raise _Failed("guest-session", f"the server logged {self._user!r} on as Guest: the credentials were not accepted as an account")

    @property
    def server_name(self) -> str | None:
        try:
            return cap(self.conn.getServerName() or None, 63) if self.conn else None
        except Exception:  # noqa: BLE001
            return None

    def _bind_winreg(self):
        from impacket.dcerpc.v5 import rrp, transport

        rpc = transport.SMBTransport(self.target, filename=r"\winreg", smb_connection=self.conn)
        dce = rpc.get_dce_rpc()
        dce.connect()
        dce.bind(rrp.MSRPC_UUID_RRP)
        return dce

    def registry(self, deadline: float) -> ImpacketRegistry:
        tries = 0
        while True:
            try:
                self._dce = self._bind_winreg()
                return ImpacketRegistry(self._dce)
            except Exception as exc:
                code = getattr(exc, "getErrorCode", lambda: None)()
                text = str(exc)
                if code == NtStatus.PIPE_NOT_AVAILABLE and tries < 5 and time.monotonic() + 1 < deadline:
                    tries += 1  # Windows 8+ starts RemoteRegistry on the first pipe open (trigger start)
                    time.sleep(1)
                    continue
                if code == STATUS_OBJECT_NAME_NOT_FOUND or "OBJECT_NAME_NOT_FOUND" in text:
                    if self._start_rr and self.guard is None:
                        self._start_remote_registry()
                        continue
                    raise _Failed("remote-registry-not-running", NOT_RUNNING) from None
                if code == STATUS_ACCESS_DENIED or "access_denied" in text.lower() or "ACCESS_DENIED" in text:
                    raise _Failed("access-denied", "the account may not use the remote registry (winreg): "
                                                   "use a local administrator or a domain administrator account") from None
                raise _smb_failure(exc, "winreg") from None

    def _start_remote_registry(self) -> None:
        try:
            self.guard = _ServiceGuard(self.conn, self.target)
            self.guard.start()
        except Exception as exc:
            text = str(exc)
            if "access_denied" in text.lower() or "ACCESS_DENIED" in text:
                raise _Failed("access-denied", "cannot start RemoteRegistry through svcctl: the account is not an administrator") from None
            raise _Failed("remote-registry-not-running", f"RemoteRegistry not running and could not be started: {exc}") from None

    def file_exists(self, share: str, path: str) -> bool | None:
        """True / False, or None when the share cannot be read (no admin rights, no share)."""
        try:
            self.conn.listPath(share, path)
            return True
        except Exception as exc:  # noqa: BLE001
            text = str(exc)
            if "NO_SUCH_FILE" in text or "OBJECT_NAME_NOT_FOUND" in text or "OBJECT_PATH_NOT_FOUND" in text:
                return False
            return None

    def abort(self) -> None:
        """Unblock a worker stuck in a socket call (from the watchdog thread)."""
        try:
            sock = self.conn.getSMBServer().get_socket() if self.conn else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # noqa: BLE001
            pass

    def close(self) -> None:
        if self.guard is not None:
            self.notes += self.guard.restore()
        try:
            if self._dce is not None:
                self._dce.disconnect()
        except Exception:  # noqa: BLE001
            pass
        try:
            if self.conn is not None:
                self.conn.close()
        except Exception:  # noqa: BLE001
            pass


# --- many hosts ------------------------------------------------------------------------------------

@dataclass
class HostOutcome:
    """One target's facts (None when nothing could be read) and its errors."""

    target: str
    facts: HostFacts | None = None
    errors: list[RemoteAuditError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Job:
    def __init__(self, target: str):
        self.target = target
        self.started: float | None = None
        self.session = None
        self.lock = threading.Lock()


def _address_of(target: str) -> str | None:
    try:
        return str(ipaddress.ip_address(target))
    except ValueError:
        return None


def _one_host(job: _Job, make_session: Callable[[str], Any], timeout: float, check_package_state: bool) -> HostOutcome:
    job.started = time.monotonic()
    deadline = job.started + timeout
    out = HostOutcome(job.target)
    session = make_session(job.target)
    with job.lock:
        job.session = session
    try:
        session.open()
        reg = session.registry(deadline)
        facts, notes = facts_from_registry(reg, host=session.server_name, address=_address_of(job.target),
                                           check_package_state=check_package_state)
        facts.listening = {**(facts.listening or {}), str(getattr(session, "port", 445)): True}
        found = []
        for name in WANNACRY_FILES:
            got = session.file_exists("ADMIN$", name)
            if got:
                found.append(f"file C:\\Windows\\{name}")
        if found:
            facts.wannacry_indicators = (facts.wannacry_indicators or []) + found
        facts.sources.append(f"winreg:{job.target}")
        out.facts = facts
        for n in notes:
            if n.startswith("partial: "):
                out.errors.append(RemoteAuditError(job.target, "partial", n[len("partial: "):]))
            else:
                out.notes.append(n)
    except _Failed as exc:
        out.errors.append(RemoteAuditError(job.target, exc.kind, exc.detail))
    except Exception as exc:  # noqa: BLE001 - one host's surprise never stops the run
        failed = _socket_failure(exc) or (_smb_failure(exc, "smb") if hasattr(exc, "getErrorCode") else
                                          _Failed("unknown-error", f"{type(exc).__name__}: {exc}"))
        out.errors.append(RemoteAuditError(job.target, failed.kind, failed.detail))
    finally:
        try:
            session.close()
        except Exception:  # noqa: BLE001
            pass
        out.notes += getattr(session, "notes", [])
        out.seconds = round(time.monotonic() - job.started, 3)
    return out


def audit_hosts(targets: Iterable[str], make_session: Callable[[str], Any], *, timeout: float = 30.0, workers: int = 16,
                check_package_state: bool = True) -> list[HostOutcome]:
    """Run `make_session(target)` sessions in a thread pool; outcomes in target order.

    A host that passes `timeout` seconds (from when its worker started) gets a "timeout" error;
    its session is aborted (socket shut down) so the worker ends, and its late answer is dropped.
    """
    targets = list(dict.fromkeys(t.strip() for t in targets if t and t.strip()))
    jobs = [_Job(t) for t in targets]
    results: dict[str, HostOutcome] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1)), thread_name_prefix="smbsentry-remote")
    try:
        futures: dict[Future, _Job] = {pool.submit(_one_host, j, make_session, timeout, check_package_state): j for j in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in done:
                job = futures[fut]
                if job.target not in results:
                    results[job.target] = fut.result()
            now = time.monotonic()
            for fut in list(pending):
                job = futures[fut]
                if job.started is not None and now - job.started > timeout:
                    with job.lock:
                        if job.session is not None and hasattr(job.session, "abort"):
                            job.session.abort()
                    results[job.target] = HostOutcome(job.target, None, [RemoteAuditError(
                        job.target, "timeout", f"no complete answer within {timeout:g} s")], seconds=round(now - job.started, 3))
                    pending.discard(fut)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [results[j.target] for j in jobs]


def audit_remote(targets: list[str], user: str, password: str, domain: str = "", timeout: float = 30.0, workers: int = 16, *,
                 start_remote_registry: bool = False, port: int = 445, as_of: date | None = None, ids=None,
                 check_package_state: bool = True,
                 session_factory: Callable[[str], Any] | None = None) -> AuditRun:
    """Credentialed registry audit of every target: AuditRun(results for hosts with facts, per-host errors).

    `targets`: addresses, CIDRs, ranges or host names (as `smbsentry scan` takes them).  A host whose
    session or registry failed has no result, only RemoteAuditErrors ("<target>: <kind>: ...",
    kind from ERROR_KINDS); a host read only in part (no ProductName, updates unreadable) has a
    result whose verdicts say unknown where facts are missing, and a "partial" error.
    `session_factory(target)` replaces the impacket session (tests; other transports).
    """
    targets = expand_targets(targets)
    if session_factory is None:
        def session_factory(target: str) -> ImpacketSession:
            return ImpacketSession(target, user, password, domain, port=port, timeout=min(timeout, 30.0),
                                   start_remote_registry=start_remote_registry)
    outcomes = audit_hosts(targets, session_factory, timeout=timeout, workers=workers, check_package_state=check_package_state)
    results, errors = [], []
    for o in outcomes:
        errors += o.errors
        if o.facts is not None:
            f = o.facts
            results.append(AuditResult(f.host, f.address or _address_of(o.target), ", ".join(f.sources), f,
                                       evaluate(f, as_of=as_of, ids=ids)))
    return AuditRun(results, errors)


def expand_targets(tokens: Iterable[str]) -> list[str]:
    """Addresses, CIDRs, ranges and host names as `smbsentry scan` takes them -> one string per host.

    Raises discover.targets.TargetError (a ValueError) for a bad token, before anything is contacted.
    """
    from ..discover.targets import TargetSet

    out = []
    for t in TargetSet(list(tokens)):
        out.append(t.address or t.hostname)
    return list(dict.fromkeys(x for x in out if x))


class RecordedSession:
    """A session that answers from a recording (tests, demos): same interface as ImpacketSession."""

    def __init__(self, registry: Registry, server_name: str | None = None, files: Iterable[str] = (), port: int = 445):
        self._reg, self.server_name, self._files, self.port = registry, server_name, {f.lower() for f in files}, port
        self.notes: list[str] = []

    def open(self) -> None:
        return None

    def registry(self, deadline: float) -> Registry:
        return self._reg

    def file_exists(self, share: str, path: str) -> bool | None:
        return path.lower() in self._files

    def close(self) -> None:
        return None
