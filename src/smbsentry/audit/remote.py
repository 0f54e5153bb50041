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
subkeys, audit/registry.py, with the reading of every key and value) so tests
feed recorded answers (RecordedRegistry) instead of a host.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..model import cap
from ..protocol.status import NtStatus
from ..protocol.status import name as status_name
from .api import AuditRun
from .errors import InventoryError
from .evaluate import evaluate
from .facts import HostFacts
from .registry import (CBS_PACKAGES, CURRENT_VERSION, WANNACRY_FILES, KeyNotFound, RecordedRegistry, Registry,
                       RegistryDenied, facts_from_registry, load_recording)
from .result import AuditResult

__all__ = [
    "CBS_PACKAGES", "CURRENT_VERSION", "ERROR_KINDS", "HostOutcome", "KeyNotFound", "RecordedRegistry", "Registry", "RegistryDenied",
    "RecordedSession", "RemoteAuditError", "audit_remote", "audit_hosts", "expand_targets", "facts_from_registry", "load_recording",
]

# The per-host error vocabulary (like the scanner's): the first word of every error.
ERROR_KINDS = ("connection-refused", "connection-timeout", "connection-reset", "unreachable", "timeout", "logon-failure",
               "account-restricted", "guest-session", "access-denied", "remote-registry-not-running", "registry-error",
               "partial", "protocol-error", "unknown-error")

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
