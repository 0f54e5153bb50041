"""Real-Samba test harness: run Debian's smbd on private loopback addresses.

What we learned on this machine (Debian 12, Samba 4.17.12-Debian, nmap 7.93):

* Flags: ``smbd --foreground --no-process-group --debug-stdout -s CONF`` all
  exist in 4.17 (``-F``/``-i``/``-D``, ``--debug-stdout``, ``-l`` log basename).
  We run it in a new session (``start_new_session=True``) so the whole smbd
  tree shares one process group, and capture stdout (incl. PANICs) to
  ``ROOT/logs/smbd.log``.
* ``-s`` MUST be an absolute path: smbd hands the very same string to the
  samba-dcerpcd it spawns (``--configfile=smb.conf``), which runs with cwd
  ``/`` and dies with "Failed to load config file".  The only symptom is that
  share enumeration over SMB2 (srvsvc RPC) silently returns nothing.
* samba-dcerpcd (on demand, ``rpc start on demand helpers = yes``) is started
  by smbd at the first RPC (e.g. ``smbclient -L``), not at startup.  It
  DAEMONISES: ppid 1, its own process group (pgid == its pid), and survives
  smbd's exit, together with its rpcd_* workers.  Killing smbd's process group
  is therefore not enough; we also kill the pgid from
  ``ROOT/pid/samba-dcerpcd.pid`` and finally every process whose command line
  mentions our private tmp dir (all Samba processes keep ``--configfile=...``
  in argv).
* Addresses: the kernel would let a socket bind any 127/8 address (local
  route), but smbd's ``interfaces =`` only accepts IPs it finds via
  getifaddrs(); an unassigned 127.x.y.z gives "open_sockets_smbd: No sockets
  available to bind to" + PANIC.  So ``ip addr add ADDR/32 dev lo`` IS needed
  (root / CAP_NET_ADMIN).  We add only missing addresses and remove only what
  we added.  Using ``interfaces = 127.x.y.z/8`` is no workaround: it binds
  lo's own 127.0.0.1 instead.
* One smbd serves many addresses fine: ``interfaces = 127.30.0.1 ... .64``
  opens 2 listeners per address.  Start-to-ready (incl. ``ip -batch`` adding
  the addresses): 1 addr ~0.08 s, 64 ~0.08 s, 256 ~0.09 s, 1024 ~0.25 s;
  stop ~0.07 s.  Killed processes then sit as zombies of init (PID 1 here)
  for ~1.5 s until reaped; wait_for_reaping() waits for that.
* Logging: smbd runs with --debug-stdout (-> ROOT/logs/smbd.log) and
  ``-l ROOT/logs``; smbd forwards the log basename to samba-dcerpcd, which
  forwards it to its rpcd_* workers, so they log to ROOT/logs/log.<prog>
  (the -l option beats ``log file =``, which only the remaining processes
  use -> ROOT/logs/samba.log).  Without -l they would write to
  /var/log/samba/log.<prog>.  Even so, dcerpcd's first probe of each rpcd_*
  touches EMPTY /var/log/samba/log.rpcd_* files; harmless.
* "lanman auth" is deprecated in 4.17 (setting it logs a warning); its
  default is already "no", so presets do not set it (test_harness checks
  the effective value with testparm).
* If the test process is SIGKILLed, PR_SET_PDEATHSIG takes the smbd tree down;
  an already-spawned samba-dcerpcd lingers until its workers idle out (~60 s)
  and then exits by itself.  Added lo addresses stay until the next run of the
  same slot adopts and removes them.
* smbd binds with SO_REUSEPORT: a second smbd on an address that is already
  served starts "successfully" and the kernel splits connections between the
  two.  start() therefore refuses when /proc/net/tcp shows a listener on any
  ADDR:445/139 before it launches smbd.
* Unix sockets live under lock/ncalrpc dirs; sun_path is limited to 108
  bytes, so the tmp root is a short ``/tmp/sentry-smb-XXXX`` (not pytest's
  long tmp_path).
* smbclient: ``-m NT1`` alone fails ("Max protocol NT1 is less than min
  protocol SMB2_02"); the client also needs ``client min protocol = NT1``.
* nmap 7.93 ``smb-protocols`` prints SMB2 dialects as "202", "210", "300",
  "302", "311" (its smb2.lua means "2.0.2" but stdnse.tohex drops the
  separator); other releases print "2.02"/"2:0:2".  SMB1 appears as
  "NT LM 0.12 (SMBv1) [dangerous, but default]".  smb2-security-mode is a
  table keyed by the highest dialect ("311") with "Message signing enabled
  and required" / "... enabled but not required".  smb-os-discovery (SMB1
  only) returns elems os/lanmanager/server/workgroup/fqdn/domain_dns/date and
  server/workgroup end with a literal "\\x00".  nmap against one loopback
  host with all four scripts takes ~0.25 s.

Everything lives under one tmp dir (config, state, lock, cache, private, pid,
ncalrpc, logs, share dirs).  Only 127.0.0.0/8 addresses are accepted.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "BENCH_NETWORK",
    "FIXTURE_HOSTS",
    "PRESETS",
    "SambaError",
    "SambaServer",
    "SambaUnavailable",
    "bench_addresses",
    "fixture_address",
    "harness_slot",
    "missing_tools",
    "samba_version",
    "wait_for_reaping",
]

# --------------------------------------------------------------------------
# Addresses: the one place where the test-suite's loopback addresses live.
# --------------------------------------------------------------------------

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

#: Fixture servers live at 127.21.<slot>.<host>; slot 0 normally, another
#: slot when a concurrent pytest run on this machine already holds slot 0.
FIXTURE_PREFIX = "127.21"
FIXTURE_HOSTS: dict[str, int] = {
    "smb1-guest": 1,
    "smb1-off": 2,
    "signing-required": 3,
    "max-smb2_10": 4,
}
#: Host numbers 100..199 of the slot are for ad-hoc servers (samba_factory).
SCRATCH_HOST_FIRST = 100
SCRATCH_HOST_LAST = 199
MAX_SLOTS = 64

#: The benchmark puts its many-address smbd here (127.30.0.1, 127.30.0.2, ...).
BENCH_NETWORK = "127.30.0.0/16"


def _check_loopback(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if ip.version != 4 or ip not in LOOPBACK:
        raise ValueError(f"refusing non-loopback address {address!r}: harness only uses 127.0.0.0/8")
    if str(ip) == "127.0.0.1":
        raise ValueError("refusing 127.0.0.1: use a private 127.x.y.z address")
    return str(ip)


_SLOT_LOCK = threading.Lock()
_slot: int | None = None
_slot_fd: int | None = None


def harness_slot() -> int:
    """Claim (once per process) a slot number so concurrent test runs don't collide.

    The flock is held until the process exits (released by the kernel even on
    a crash), so a stale lock is impossible.
    """
    global _slot, _slot_fd
    with _SLOT_LOCK:
        if _slot is not None:
            return _slot
        lock_dir = Path(tempfile.gettempdir())
        for slot in range(MAX_SLOTS):
            fd = os.open(lock_dir / f"smbsentry-harness-slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            _slot, _slot_fd = slot, fd
            return slot
        raise SambaError(f"all {MAX_SLOTS} harness slots are busy")


def fixture_address(preset: str, slot: int | None = None) -> str:
    """Address of the session fixture for *preset* (127.21.0.1 .. 127.21.0.4 in slot 0)."""
    slot = harness_slot() if slot is None else slot
    return f"{FIXTURE_PREFIX}.{slot}.{FIXTURE_HOSTS[preset]}"


def scratch_addresses(count: int, slot: int | None = None) -> list[str]:
    slot = harness_slot() if slot is None else slot
    if count > SCRATCH_HOST_LAST - SCRATCH_HOST_FIRST + 1:
        raise ValueError("too many scratch addresses")
    return [f"{FIXTURE_PREFIX}.{slot}.{SCRATCH_HOST_FIRST + i}" for i in range(count)]


def bench_addresses(count: int, network: str = BENCH_NETWORK) -> list[str]:
    """``count`` consecutive addresses of *network*: 127.30.0.1, 127.30.0.2, ..."""
    net = ipaddress.ip_network(network)
    if not net.subnet_of(LOOPBACK):
        raise ValueError(f"{network} is not inside 127.0.0.0/8")
    out: list[str] = []
    for ip in net.hosts():
        if len(out) == count:
            break
        out.append(str(ip))
    if len(out) < count:
        raise ValueError(f"{network} has fewer than {count} host addresses")
    return out


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------

_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SambaError(RuntimeError):
    """smbd failed to start/stop or a Samba tool failed."""


class SambaUnavailable(SambaError):
    """A required tool is missing or we lack privileges."""


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=_SBIN_PATH)


def _tool(name: str) -> str:
    path = _which(name)
    if path is None:
        raise SambaUnavailable(f"{name} not found (apt install samba smbclient iproute2)")
    return path


def missing_tools(names: Iterable[str] = ("smbd", "pdbedit", "ip")) -> list[str]:
    return [n for n in names if _which(n) is None]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":" + _SBIN_PATH
    env["LC_ALL"] = "C"
    env.pop("PASSWD", None)
    return env


def _run(args: Sequence[str], *, timeout: float = 30.0, input: str | None = None,
         check: bool = True, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(args), input=input, capture_output=True, text=True, check=False,
                              timeout=timeout, env=dict(env) if env is not None else _env(),
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise SambaError(f"timed out after {timeout}s: {' '.join(args)}") from exc
    if check and proc.returncode != 0:
        raise SambaError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


@functools.lru_cache(maxsize=1)
def samba_version() -> str | None:
    """``smbd --version`` without the "Version " prefix (e.g. "4.17.12-Debian"), or None."""
    smbd = _which("smbd")
    if smbd is None:
        return None
    try:
        out = _run([smbd, "--version"], timeout=10).stdout.strip()
    except SambaError:
        return None
    return out.removeprefix("Version ").strip() or None


def samba_version_tuple() -> tuple[int, ...]:
    v = samba_version() or "0"
    nums: list[int] = []
    for part in v.split("-")[0].split("."):
        if not part.isdigit():
            break
        nums.append(int(part))
    return tuple(nums)


# --------------------------------------------------------------------------
# Loopback address management (refcounted within this process)
# --------------------------------------------------------------------------

_ADDR_LOCK = threading.Lock()
_ADDR_REFS: dict[str, int] = {}  # addresses this process added to lo -> users


def lo_addresses() -> set[str]:
    out = _run([_tool("ip"), "-o", "-4", "addr", "show", "dev", "lo"], timeout=10).stdout
    found: set[str] = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            found.add(parts[parts.index("inet") + 1].split("/")[0])
    return found


def _ip_batch(commands: list[str], *, check: bool) -> None:
    if commands:
        _run([_tool("ip"), "-force", "-batch", "-"], input="\n".join(commands) + "\n",
             timeout=30 + len(commands) * 0.05, check=check)


def acquire_addresses(addresses: Iterable[str], *, adopt: bool = False) -> list[str]:
    """Make sure every address is on lo; return the ones this call took ownership of.

    ``adopt=True`` also takes ownership of addresses that are already present
    (leftovers of a crashed run in a slot we hold), so they get removed later.
    """
    addrs = [_check_loopback(a) for a in addresses]
    with _ADDR_LOCK:
        present = lo_addresses()
        owned: list[str] = []
        to_add: list[str] = []
        for a in addrs:
            if a in _ADDR_REFS:
                _ADDR_REFS[a] += 1
                owned.append(a)
            elif a in present:
                if adopt:
                    _ADDR_REFS[a] = 1
                    owned.append(a)
            else:
                to_add.append(a)
        _ip_batch([f"addr add {a}/32 dev lo" for a in to_add], check=False)
        now = lo_addresses() if to_add else present
        failed = [a for a in to_add if a not in now]
        for a in to_add:
            if a in now:
                _ADDR_REFS[a] = 1
                owned.append(a)
        if failed:
            _release_locked(owned)
            raise SambaUnavailable(f"could not add {failed[:5]} to lo (need root/CAP_NET_ADMIN)")
        return owned


def _release_locked(addresses: Iterable[str]) -> None:
    drop: list[str] = []
    for a in addresses:
        if a not in _ADDR_REFS:
            continue
        _ADDR_REFS[a] -= 1
        if _ADDR_REFS[a] <= 0:
            del _ADDR_REFS[a]
            drop.append(a)
    _ip_batch([f"addr del {a}/32 dev lo" for a in drop], check=False)


def release_addresses(addresses: Iterable[str]) -> None:
    with _ADDR_LOCK:
        _release_locked(addresses)


# --------------------------------------------------------------------------
# Unix accounts for Samba users (tdbsam needs a passwd entry)
# --------------------------------------------------------------------------

_USER_LOCK = threading.Lock()
_USER_REFS: dict[str, int] = {}  # unix users this process created -> servers using them


def _acquire_unix_user(name: str) -> bool:
    with _USER_LOCK:
        if name in _USER_REFS:
            _USER_REFS[name] += 1
            return True
        try:
            pwd.getpwnam(name)
            return False
        except KeyError:
            pass
        _run([_tool("useradd"), "--system", "--no-create-home", "--home-dir", "/nonexistent",
              "--shell", "/usr/sbin/nologin", "--comment", "smbsentry test user", name], timeout=30)
        _USER_REFS[name] = 1
        return True


def _release_unix_user(name: str) -> None:
    with _USER_LOCK:
        if name not in _USER_REFS:
            return
        _USER_REFS[name] -= 1
        if _USER_REFS[name] <= 0:
            del _USER_REFS[name]
            _run([_tool("userdel"), name], timeout=30, check=False)


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------

ParamValue = str | int | bool | Sequence[str] | None

#: Named configurations.  "global" entries are merged over the common
#: settings; "shares" maps share name -> parameters ("path" defaults to a
#: fresh world-writable dir under the server's tmp root).  Everything is
#: overridable through SambaServer(options=..., shares=...).
PRESETS: dict[str, dict] = {
    "smb1-guest": {
        "description": "SMBv1 (NT1) enabled, guest share 'public', NTLMv1 permitted",
        "netbios_name": "SENTRYSMB1",
        "workgroup": "TESTLAB",
        "global": {
            "server min protocol": "NT1",
            "ntlm auth": "ntlmv1-permitted",
            "map to guest": "Bad User",
            "restrict anonymous": "0",
            "guest account": "nobody",
        },
        "shares": {
            "public": {"comment": "guest share", "guest ok": "yes", "read only": "no", "browseable": "yes"},
        },
    },
    "smb1-off": {
        "description": "SMB2/3 only (Samba default)",
        "netbios_name": "SENTRYNOSMB1",
        "workgroup": "TESTLAB",
        "global": {"server min protocol": "SMB2_02"},
        "shares": {"data": {"comment": "users only", "guest ok": "no", "read only": "no"}},
    },
    "signing-required": {
        "description": "SMB2/3 only, signing mandatory",
        "netbios_name": "SENTRYSIGN",
        "workgroup": "TESTLAB",
        "global": {"server min protocol": "SMB2_02", "server signing": "mandatory"},
        "shares": {"data": {"comment": "users only", "guest ok": "no", "read only": "no"}},
    },
    "max-smb2_10": {
        "description": "SMB 2.0.2 and 2.1 only (no SMB3)",
        "netbios_name": "SENTRYSMB210",
        "workgroup": "TESTLAB",
        "global": {"server min protocol": "SMB2_02", "server max protocol": "SMB2_10"},
        "shares": {"data": {"comment": "users only", "guest ok": "no", "read only": "no"}},
    },
}

#: Credentials used by credential tests.
TEST_USER = "scanuser"
TEST_PASSWORD = "Sc4n-pass!"


def _render(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------
# Process helpers
# --------------------------------------------------------------------------


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:][:1].decode() or None


def _pids_mentioning(needle: str) -> list[int]:
    """Live (non-zombie) processes whose argv contains *needle*."""
    raw = needle.encode()
    me = os.getpid()
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if raw in cmd and _proc_state(int(entry)) not in (None, "Z"):
            found.append(int(entry))
    return found


def _pids_in_group(pgid: int) -> list[int]:
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        if len(rest) > 2 and rest[0] != b"Z" and int(rest[2]) == pgid:
            found.append(int(entry))
    return found


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tcp_listeners(addresses: Iterable[str], ports: Iterable[int]) -> list[tuple[str, int]]:
    """(address, port) pairs from the given sets that something already LISTENs on (IPv4).

    A wildcard listener (0.0.0.0, e.g. an smbsentry lab bound to lo) counts
    for every address: the kernel would hand it the connections meant for
    our smbd, and the tests would silently talk to the wrong server."""
    ports = [int(p) for p in ports]
    wanted = {(a, p) for a in addresses for p in ports}
    wildcard = {("0.0.0.0", p) for p in ports}
    found: list[tuple[str, int]] = []
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A":  # 0A = TCP_LISTEN
            continue
        hex_ip, hex_port = fields[1].split(":")
        addr = socket.inet_ntoa(int(hex_ip, 16).to_bytes(4, "little"))
        key = (addr, int(hex_port, 16))
        if key in wanted or key in wildcard:
            found.append(key)
    return sorted(found)


try:  # resolved here: no imports/allocation-heavy work between fork and exec
    import ctypes

    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):  # pragma: no cover
    _PRCTL = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """PR_SET_PDEATHSIG: smbd gets SIGTERM if the test process dies without cleanup.

    Only used when starting from the main thread: the signal fires when the
    *thread* that forked exits.
    """
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _tail(path: Path, lines: int) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------

_REAP_LOCK = threading.Lock()
_REAP_PENDING: set[int] = set()  # pids of killed Samba processes, maybe still zombies


def wait_for_reaping(timeout: float = 5.0) -> list[int]:
    """Wait until killed Samba processes have vanished from /proc (zombies reaped).

    Returns the pids still present after *timeout* (normally none).
    """
    deadline = time.monotonic() + timeout
    while True:
        with _REAP_LOCK:
            for pid in list(_REAP_PENDING):
                if not os.path.exists(f"/proc/{pid}"):
                    _REAP_PENDING.discard(pid)
            left = sorted(_REAP_PENDING)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


_LIVE: set[SambaServer] = set()
_LIVE_LOCK = threading.Lock()


class SambaServer:
    """One smbd (plus on-demand samba-dcerpcd) serving one or many loopback addresses.

    >>> with SambaServer("127.21.0.1", "smb1-guest") as srv:   # doctest: +SKIP
    ...     srv.address, srv.netbios_name, srv.version
    """

    def __init__(
        self,
        addresses: str | Sequence[str],
        config: str = "smb1-guest",
        *,
        netbios_name: str | None = None,
        workgroup: str | None = None,
        options: Mapping[str, ParamValue] | None = None,
        shares: Mapping[str, Mapping[str, ParamValue] | None] | None = None,
        ports: Sequence[int] = (445, 139),
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        log_level: int = 1,
        adopt_addresses: bool = False,
        keep_tmp: bool | None = None,
        wait_reaped: bool = True,
    ) -> None:
        if isinstance(addresses, str):
            addresses = [addresses]
        self.addresses: list[str] = [_check_loopback(a) for a in addresses]
        if not self.addresses:
            raise ValueError("need at least one address")
        if len(set(self.addresses)) != len(self.addresses):
            raise ValueError("duplicate addresses")
        if config not in PRESETS:
            raise ValueError(f"unknown preset {config!r}; choose from {sorted(PRESETS)}")
        preset = PRESETS[config]
        self.config = config
        self.description: str = preset["description"]
        self.netbios_name = (netbios_name or preset["netbios_name"]).upper()
        if len(self.netbios_name) > 15:
            raise ValueError("netbios name longer than 15 characters")
        self.workgroup = (workgroup or preset["workgroup"]).upper()
        self.ports = tuple(int(p) for p in ports)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_level = log_level
        self.adopt_addresses = adopt_addresses
        self.wait_reaped = wait_reaped
        self.keep_tmp = (os.environ.get("SMBSENTRY_KEEP_SAMBA_TMP") == "1") if keep_tmp is None else keep_tmp

        self.global_options: dict[str, ParamValue] = dict(preset["global"])
        for key, value in (options or {}).items():
            self.global_options[key.lower()] = value
        self.share_options: dict[str, dict[str, ParamValue]] = {
            name: dict(params) for name, params in preset["shares"].items()
        }
        for name, params in (shares or {}).items():
            if params is None:
                self.share_options.pop(name, None)
            else:
                self.share_options.setdefault(name, {}).update(params)

        self.version: str | None = samba_version()
        self.root: Path | None = None
        self.conf_path: Path | None = None
        self.client_conf_path: Path | None = None
        self.share_paths: dict[str, Path] = {}
        self.users: dict[str, str] = {}
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh = None
        self._owned_addresses: list[str] = []
        self._unix_users: list[str] = []

    # -- convenient attributes -------------------------------------------
    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_dir(self) -> Path:
        assert self.root is not None
        return self.root / "logs"

    @property
    def smbd_log(self) -> Path:
        return self.log_dir / "smbd.log"

    @property
    def samba_log(self) -> Path:
        return self.log_dir / "samba.log"

    def __repr__(self) -> str:
        more = f"+{len(self.addresses) - 1}" if len(self.addresses) > 1 else ""
        state = "running" if self.is_running() else "stopped"
        return f"<SambaServer {self.config} {self.address}{more} {self.netbios_name} {state}>"

    # -- configuration ----------------------------------------------------
    def _dirs(self) -> dict[str, Path]:
        assert self.root is not None
        r = self.root
        return {
            "state directory": r / "state",
            "lock directory": r / "lock",
            "cache directory": r / "cache",
            "private dir": r / "private",
            "pid directory": r / "pid",
            "ncalrpc dir": r / "ncalrpc",
            "usershare path": r / "usershares",
            "binddns dir": r / "binddns",
            "winbindd socket directory": r / "winbindd",
            "ntp signd socket directory": r / "ntp_signd",
        }

    def global_parameters(self) -> dict[str, str]:
        assert self.root is not None
        params: dict[str, ParamValue] = {
            "netbios name": self.netbios_name,
            "workgroup": self.workgroup,
            "server string": "smbsentry test server",
            "server role": "standalone server",
            "interfaces": self.addresses,
            "bind interfaces only": "yes",
            "smb ports": [str(p) for p in self.ports],
            **{k: str(v) for k, v in self._dirs().items()},
            "smb passwd file": str(self.root / "private" / "smbpasswd"),
            "passdb backend": "tdbsam",
            "log file": str(self.samba_log),
            "max log size": "0",
            "log level": str(self.log_level),
            "load printers": "no",
            "printcap name": "/dev/null",
            "printing": "bsd",
            "disable spoolss": "yes",
            "smbd: backgroundqueue": "no",
            "usershare max shares": "0",
            "dns proxy": "no",
            "enable core files": "no",
        }
        params.update(self.global_options)
        return {k: _render(v) for k, v in params.items() if v is not None}

    def render_config(self) -> str:
        lines = ["# generated by tests/sambaserver.py", "[global]"]
        lines += [f"\t{k} = {v}" for k, v in self.global_parameters().items()]
        for name, params in self.share_options.items():
            lines += ["", f"[{name}]"]
            params = dict(params)
            params.setdefault("path", str(self.share_paths[name]))
            lines += [f"\t{k} = {_render(v)}" for k, v in params.items() if v is not None]
        return "\n".join(lines) + "\n"

    def _prepare_root(self) -> None:
        # Short path on purpose: unix socket paths (lock/msg.sock/<pid>,
        # ncalrpc/np/<pipe>) must fit in 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="sentry-smb-", dir="/tmp"))
        self.users = {}
        self.root.chmod(0o755)  # guest (nobody) must reach the share dirs
        for d in self._dirs().values():
            d.mkdir(parents=True, exist_ok=True)
        (self.root / "usershares").chmod(0o1770)
        self.log_dir.mkdir()
        (self.root / "shares").mkdir()
        (self.root / "shares").chmod(0o755)
        self.share_paths = {}
        for name, params in self.share_options.items():
            if params.get("path"):
                self.share_paths[name] = Path(str(params["path"]))
                continue
            p = self.root / "shares" / name
            p.mkdir()
            p.chmod(0o1777)
            self.share_paths[name] = p
        self.conf_path = self.root / "smb.conf"
        self.conf_path.write_text(self.render_config())
        client = self.root / "client"
        for sub in ("lock", "state", "cache", "private"):
            (client / sub).mkdir(parents=True)
        self.client_conf_path = self.root / "client.conf"
        self.client_conf_path.write_text(
            "[global]\n"
            f"\tworkgroup = {self.workgroup}\n"
            f"\tlock directory = {client / 'lock'}\n"
            f"\tstate directory = {client / 'state'}\n"
            f"\tcache directory = {client / 'cache'}\n"
            f"\tprivate dir = {client / 'private'}\n"
            f"\tpid directory = {client / 'lock'}\n"
            f"\tncalrpc dir = {client / 'lock'}\n"
            "\tclient use kerberos = off\n"
            "\tlog level = 0\n"
        )

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> SambaServer:
        if self.is_running():
            raise SambaError("already running")
        self._proc = None
        if os.geteuid() != 0:
            raise SambaUnavailable("smbd harness needs root (binds :445/:139, adds lo addresses)")
        smbd = _tool("smbd")
        _tool("ip")
        # Samba sets SO_REUSEPORT, so a second smbd on the same address does
        # NOT fail to bind: the kernel would silently split connections
        # between both (and the readiness probe would be fooled). Refuse.
        busy = tcp_listeners(self.addresses, self.ports)
        if busy:
            raise SambaError(f"already listening on {busy[:6]}: another smbd? (a stale one from "
                             f"a killed test run shows up in `pgrep -af sentry-smb-`)")
        t0 = time.monotonic()
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._prepare_root()
            assert self.conf_path is not None and self.root is not None
            self._owned_addresses = acquire_addresses(self.addresses, adopt=self.adopt_addresses)
            self._log_fh = open(self.smbd_log, "ab")  # noqa: SIM115 - closed in stop()
            main_thread = threading.current_thread() is threading.main_thread()
            preexec = _die_with_parent if main_thread else None
            self._proc = subprocess.Popen(
                [smbd, "--foreground", "--no-process-group", "--debug-stdout",
                 f"--log-basename={self.log_dir}", "-s", str(self.conf_path.resolve())],
                stdin=subprocess.DEVNULL, stdout=self._log_fh, stderr=subprocess.STDOUT,
                cwd=self.root, env=_env(), start_new_session=True,
                preexec_fn=preexec,  # noqa: PLW1509 - only prctl(), see _die_with_parent
            )
            self._wait_ready(t0 + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, deadline: float) -> None:
        pending = [(a, 445 if 445 in self.ports else self.ports[0]) for a in self.addresses]
        pending += [(self.address, p) for p in self.ports if (self.address, p) not in pending]
        while pending:
            assert self._proc is not None
            rc = self._proc.poll()
            if rc is not None:
                raise SambaError(f"smbd exited with status {rc} during startup "
                                 f"({self.config} on {self.address})\n{self.log_tail()}")
            addr, port = pending[0]
            try:
                with socket.create_connection((addr, port), timeout=0.5):
                    pass
            except OSError:
                if time.monotonic() > deadline:
                    raise SambaError(
                        f"smbd not answering on {addr}:{port} after {self.start_timeout}s "
                        f"({len(pending)} endpoints pending)\n{self.log_tail()}") from None
                time.sleep(0.02)
                continue
            pending.pop(0)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def samba_pids(self) -> list[int]:
        """All live processes belonging to this server (smbd tree, dcerpcd, rpcd_*)."""
        if self.root is None:
            return []
        pids = set(_pids_mentioning(str(self.root)))
        if self._proc is not None:
            pids.update(_pids_in_group(self._proc.pid))
        return sorted(pids)

    def _dcerpcd_pgid(self) -> int | None:
        if self.root is None:
            return None
        try:
            pid = int((self.root / "pid" / "samba-dcerpcd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if str(self.root).encode() in cmd else None

    def stop(self) -> None:
        """Stop smbd, samba-dcerpcd and every child; remove added addresses. Idempotent.

        Killed daemons become zombies of init (samba-dcerpcd daemonises, smbd's
        children are orphaned), which init here reaps only every ~1.5 s.  With
        ``wait_reaped`` (default) stop() waits for that so ``pgrep smbd`` is
        clean afterwards; fixtures pass False and call wait_for_reaping() once.
        """
        try:
            self._kill_everything()
        finally:
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None
            if self._owned_addresses:
                try:
                    release_addresses(self._owned_addresses)
                finally:
                    self._owned_addresses = []
            for name in self._unix_users:
                _release_unix_user(name)
            self._unix_users = []
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self.root is not None and not self.keep_tmp and not self.samba_pids():
                shutil.rmtree(self.root, ignore_errors=True)
        if self.wait_reaped:
            wait_for_reaping()

    def _kill_everything(self) -> None:
        with _REAP_LOCK:
            _REAP_PENDING.update(self.samba_pids())
        proc = self._proc
        deadline = time.monotonic() + self.stop_timeout
        # 1. smbd first (else it could respawn samba-dcerpcd on demand).
        if proc is not None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        # 2. the daemonised samba-dcerpcd and its rpcd_* workers.
        pgid = self._dcerpcd_pgid()
        if pgid is not None:
            _signal_group(pgid, signal.SIGTERM)
        # 3. anything still alive that belongs to us: TERM, then KILL.
        sent_kill = False
        term_until = time.monotonic() + 2.0
        while True:
            pids = self.samba_pids()
            if not pids:
                break
            now = time.monotonic()
            if now > deadline + 5:
                raise SambaError(f"could not stop Samba processes {pids}")
            sig = signal.SIGTERM if now < term_until and not sent_kill else signal.SIGKILL
            sent_kill = sent_kill or sig == signal.SIGKILL
            with _REAP_LOCK:
                _REAP_PENDING.update(pids)
            for pid in pids:
                _signal_pid(pid, sig)
            time.sleep(0.05)
        if proc is not None and proc.poll() is None:
            raise SambaError(f"smbd {proc.pid} survived SIGKILL")

    def restart(self) -> SambaServer:
        """Stop and start again with a FRESH tmp dir (shares, users and logs are reset)."""
        self.stop()
        return self.start()

    def __enter__(self) -> SambaServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- diagnostics -------------------------------------------------------
    def log_tail(self, lines: int = 40) -> str:
        if self.root is None:
            return "(no logs: tmp dir not created)"
        parts = []
        extra = sorted(self.log_dir.glob("log.*")) if self.log_dir.is_dir() else []
        for path in (self.smbd_log, self.samba_log, *extra):
            text = _tail(path, lines)
            if text:
                parts.append(f"--- {path} (last {lines} lines) ---\n{text}")
        return "\n".join(parts) or "(logs empty)"

    def testparm(self, parameter: str, section: str = "global") -> str:
        """Effective value of one parameter as Samba sees it (testparm -sv)."""
        assert self.conf_path is not None
        out = _run([_tool("testparm"), "-s", "-v", "--suppress-prompt", f"--section-name={section}",
                    f"--parameter-name={parameter}", str(self.conf_path)], timeout=30).stdout
        return out.strip()

    # -- users & clients -----------------------------------------------------
    def add_user(self, username: str = TEST_USER, password: str = TEST_PASSWORD) -> None:
        """Create a Samba (tdbsam) user in this server's private passdb.

        Also creates a system account of that name if none exists (tdbsam needs
        one); it is removed again when the last server using it stops.
        """
        if self.conf_path is None:
            raise SambaError("start() the server before adding users")
        if username not in self._unix_users and _acquire_unix_user(username):
            self._unix_users.append(username)
        pdbedit = [_tool("pdbedit"), "-s", str(self.conf_path)]
        if _run([*pdbedit, "-L", "-u", username], timeout=30, check=False).returncode == 0:
            _run([*pdbedit, "-x", "-u", username], timeout=30)  # re-add = set new password
        _run([*pdbedit, "-t", "-a", "-u", username], input=f"{password}\n{password}\n", timeout=30)
        self.users[username] = password

    def smbclient(self, *args: str, service: str | None = None, address: str | None = None,
                  user: str | None = None, password: str | None = None,
                  protocol: str | None = None, timeout: float = 30.0,
                  check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run smbclient against this server with a private client config.

        ``service=None`` lists shares (-L); ``protocol`` sets the max protocol
        (NT1 also lowers the client's min protocol so SMB1 really is used).
        Anonymous (-N) unless *user* is given; the password goes via $PASSWD.
        """
        assert self.client_conf_path is not None
        addr = _check_loopback(address or self.address)
        cmd = [_tool("smbclient"), "-s", str(self.client_conf_path)]
        cmd += ["-L", f"//{addr}"] if service is None else [f"//{addr}/{service}"]
        env = _env()
        if user is None:
            cmd.append("-N")
        else:
            cmd += ["-U", f"{self.workgroup}\\{user}"]
            env["PASSWD"] = password if password is not None else self.users.get(user, "")
        if protocol:
            cmd += ["-m", protocol]
            if protocol.upper() in ("NT1", "LANMAN1", "LANMAN2", "CORE", "COREPLUS"):
                cmd += ["--option=client min protocol=" + protocol.upper()]
        cmd += list(args)
        return _run(cmd, timeout=timeout, check=check, env=env)


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for srv in live:
        try:
            srv.stop()
        except Exception as exc:  # noqa: BLE001 - best effort at interpreter exit
            print(f"sambaserver: could not stop {srv!r}: {exc}", file=sys.stderr)


atexit.register(_stop_all_at_exit)
