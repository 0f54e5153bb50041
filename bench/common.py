"""Shared helpers of the benchmarks in bench/ (see bench/README.md).

* loopback-only guards (every benchmark target must be inside 127.0.0.0/8),
* the smbsentry command of the interpreter running the benchmark,
* running a child with wall time, user+sys CPU and peak RSS taken from the
  child's own rusage (os.wait4), bounded by a timeout,
* a tshark capture of TCP SYNs on lo (capture filter, so the kernel drops
  everything else) that counts connection attempts per destination,
* medians and table formatting.

Nothing here fixes or tunes the scanner; it only measures it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


class BenchError(RuntimeError):
    """A precondition of the benchmark is not met (tool missing, not root, ...)."""


# --------------------------------------------------------------------------
# Loopback guards
# --------------------------------------------------------------------------

def check_loopback_network(text: str) -> ipaddress.IPv4Network:
    """Parse *text* as an IPv4 network inside 127.0.0.0/8, else raise ValueError."""
    net = ipaddress.ip_network(text, strict=True)
    if net.version != 4 or not net.subnet_of(LOOPBACK):
        raise ValueError(f"refusing {text}: benchmarks only target 127.0.0.0/8")
    return net


def check_loopback_addresses(addresses: list[str]) -> list[str]:
    for a in addresses:
        ip = ipaddress.ip_address(a)
        if ip.version != 4 or ip not in LOOPBACK:
            raise ValueError(f"refusing {a}: benchmarks only target 127.0.0.0/8")
    return addresses


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------

def which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def require_tools(*names: str) -> dict[str, str]:
    found = {n: which(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise BenchError(f"missing tools: {', '.join(missing)} (apt install samba nmap tshark)")
    return {n: p for n, p in found.items() if p is not None}


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        raise BenchError(f"must run as root ({why})")


def ensure_smbsentry_interpreter() -> None:
    """Make sure ``sys.executable -m smbsentry.cli`` works.

    If this interpreter cannot import smbsentry but the repo's .venv exists,
    re-execute the script with .venv/bin/python (so ``./bench/sweep`` works
    after ``make venv``); otherwise explain what to run.
    """
    try:
        import smbsentry.cli  # noqa: F401
        return
    except ImportError:
        pass
    venv_python = REPO / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve() \
            and os.environ.get("SMBSENTRY_BENCH_REEXEC") != "1":
        os.environ["SMBSENTRY_BENCH_REEXEC"] = "1"
        os.execv(str(venv_python), [str(venv_python), sys.argv[0], *sys.argv[1:]])
    raise BenchError(f"{sys.executable} cannot import smbsentry; run `make venv` and use "
                     f".venv/bin/python {sys.argv[0]} (or any interpreter with smbsentry installed)")


def smbsentry_cmd() -> list[str]:
    """The smbsentry CLI of the interpreter running the benchmark."""
    return [sys.executable, "-m", "smbsentry.cli"]


def smbsentry_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("smbsentry")
    except Exception:  # pragma: no cover - informational only
        return None


def tool_version(cmd: list[str], prefix: str) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if prefix in line:
            return line.strip()
    return out.splitlines()[0].strip() if out.strip() else None


def code_state() -> dict:
    """Which smbsentry code was measured (the package this interpreter imports).

    ``location`` of the package, a digest (sha256 over its *.py and *.json
    files, path + content, first 16 hex digits) that also identifies a dirty
    working tree, and, when the package lives in this repo (editable install),
    git HEAD and the number of uncommitted files under src/ (read-only git).
    """
    import hashlib
    import importlib.util
    state: dict = {}
    spec = importlib.util.find_spec("smbsentry")
    if spec is None or spec.origin is None:
        return state
    pkg = Path(spec.origin).resolve().parent
    state["location"] = str(pkg)
    h = hashlib.sha256()
    for path in sorted([*pkg.rglob("*.py"), *pkg.rglob("*.json")]):
        h.update(str(path.relative_to(pkg)).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            pass
    state["package_sha256"] = h.hexdigest()[:16]
    git = which("git")
    if git and pkg.is_relative_to(REPO):
        try:
            state["git_head"] = subprocess.run([git, "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                               capture_output=True, text=True, timeout=20).stdout.strip()
            dirty = subprocess.run([git, "-C", str(REPO), "status", "--porcelain", "--", "src"],
                                   capture_output=True, text=True, timeout=20).stdout.splitlines()
            state["uncommitted_src_files"] = len(dirty)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return state


def machine_info() -> dict:
    info: dict = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_before": os.getloadavg(),
    }
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    try:
        info["debian_version"] = Path("/etc/debian_version").read_text().strip()
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------
# Running a child with its own rusage
# --------------------------------------------------------------------------

def machine_busy_seconds() -> float | None:
    """CPU seconds spent busy (not idle/iowait) by the whole machine since boot, all CPUs."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    values = [int(v) for v in fields[1:]]
    busy = sum(values[:8]) - values[3] - values[4]  # user..steal minus idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def busy_fraction(sample: float = 2.0) -> float | None:
    """Fraction of all CPUs busy over the next *sample* seconds."""
    b0 = machine_busy_seconds()
    t0 = time.monotonic()
    time.sleep(sample)
    b1 = machine_busy_seconds()
    if b0 is None or b1 is None:
        return None
    return (b1 - b0) / ((time.monotonic() - t0) * (os.cpu_count() or 1))


def wait_for_idle(max_wait: float, threshold: float = 0.15, sample: float = 2.0) -> float | None:
    """Wait at most *max_wait* s until the machine is < *threshold* busy; return the last reading.

    Other jobs on the machine inflate wall times; this only waits, it never
    kills anything.  max_wait <= 0 returns at once (no reading).
    """
    if max_wait <= 0:
        return None
    deadline = time.monotonic() + max_wait
    while True:
        busy = busy_fraction(sample)
        if busy is None or busy < threshold or time.monotonic() + sample > deadline:
            return busy
        print(f"  machine {busy * 100:.0f} % busy; waiting for it to quiet down "
              f"({deadline - time.monotonic():.0f} s left)", file=sys.stderr, flush=True)


@dataclass
class RunResult:
    cmd: list[str]
    wall: float          # seconds, Popen() .. wait4() returned
    user: float          # child's user CPU seconds (incl. its waited-for children)
    sys: float           # child's system CPU seconds
    maxrss_kb: int       # child's peak RSS (ru_maxrss, KiB on Linux)
    returncode: int
    timed_out: bool
    stderr_tail: str
    machine_busy: float | None = None  # busy CPU seconds of the whole machine during the run

    @property
    def other_cpu(self) -> float | None:
        """Busy CPU during the run not spent by the child (servers, background load)."""
        return None if self.machine_busy is None else max(0.0, self.machine_busy - self.cpu)

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def summary(self) -> dict:
        d = asdict(self)
        d["cpu"] = self.cpu
        d["other_cpu"] = self.other_cpu
        return d


def run_measured(cmd: list[str], *, timeout: float, cwd: str | None = None,
                 env: dict[str, str] | None = None) -> RunResult:
    """Run *cmd*, wait for it with os.wait4 and return its wall time and rusage.

    The child runs in its own session; if it outlives *timeout* its whole
    process group is killed (the run is then marked ``timed_out``).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0 = machine_busy_seconds()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                cwd=cwd, env=env, start_new_session=True)
        fired = threading.Event()

        def _kill() -> None:
            fired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        timer = threading.Timer(timeout, _kill)
        timer.daemon = True
        timer.start()
        try:
            while True:
                try:
                    _, status, ru = os.wait4(proc.pid, 0)
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries anyway
                    continue
        except BaseException:
            _kill()
            try:
                os.wait4(proc.pid, 0)
            except ChildProcessError:
                pass
            proc.returncode = -9
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        busy1 = machine_busy_seconds()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-4000:].decode("utf-8", "replace")
    return RunResult(cmd=list(cmd), wall=wall, user=ru.ru_utime, sys=ru.ru_stime,
                     maxrss_kb=ru.ru_maxrss, returncode=proc.returncode,
                     timed_out=fired.is_set(), stderr_tail=tail,
                     machine_busy=(busy1 - busy0) if busy0 is not None and busy1 is not None else None)


def process_tree_cpu(pid: int | None) -> float | None:
    """utime+stime+cutime+cstime of *pid* in seconds (cutime/cstime: its reaped children).

    smbd forks one child per connection and reaps it, so the delta of this
    value for smbd's main process over a run (after the children have exited)
    is the server-side CPU spent on that run's connections.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    ticks = sum(int(x) for x in rest[11:15])  # fields 14..17: utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# SYN capture with tshark
# --------------------------------------------------------------------------

@dataclass
class SynCount:
    """SYNs (without ACK) seen on lo towards the counted destinations."""
    syn_packets: Counter = field(default_factory=Counter)   # dport -> SYN packets
    connections: Counter = field(default_factory=Counter)   # dport -> unique (src, sport, dst) tuples
    per_host: dict = field(default_factory=dict)            # dport -> Counter(dst -> unique connections)
    canaries: int = 0
    dropped: int | None = None
    complete: bool = False  # both canaries seen and nothing dropped

    def per_host_stats(self, port: int, hosts: list[str]) -> dict:
        c = self.per_host.get(port, Counter())
        values = [c.get(h, 0) for h in hosts]
        return {"min": min(values), "max": max(values), "hosts_with_none": sum(1 for v in values if v == 0)}


class SynCapture:
    """``tshark -i lo -f "<SYN to ports> and dst net NET" -w PCAP`` around one tool run.

    Readiness: wait for tshark's "Capturing on" line; then a *canary* SYN is
    sent to ``canary``:``canary_port`` (a loopback address and port where
    nothing listens, refused at once; the filter admits exactly that too)
    before and after the tool run.  Both canaries must be in the pcap, else
    the count is marked incomplete (capture started late or stopped early).
    """

    def __init__(self, ports: list[int], dst_net: str, canary: str, *, tmpdir: str,
                 canary_port: int = 9) -> None:
        check_loopback_network(dst_net)
        check_loopback_addresses([canary])
        if canary_port in ports:
            raise ValueError("the canary port must not be one of the counted ports")
        self.ports = list(ports)
        self.dst_net = dst_net
        self.canary = canary
        self.canary_port = canary_port
        self.pcap = os.path.join(tmpdir, f"syn-{time.monotonic_ns()}.pcap")
        self.tshark = require_tools("tshark")["tshark"]
        port_expr = " or ".join(f"dst port {p}" for p in self.ports)
        self.filter = (f"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and "
                       f"((dst net {dst_net} and ({port_expr})) or "
                       f"(dst host {canary} and dst port {canary_port}))")
        self._proc: subprocess.Popen | None = None
        self._stderr_lines: list[str] = []
        self._ready = threading.Event()

    def _send_canary(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2.0)
        try:
            s.connect((self.canary, self.canary_port))
        except OSError:
            pass  # refused is what we expect
        finally:
            s.close()

    def _reader(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr_lines.append(line)
            if "Capturing on" in line:
                self._ready.set()
        self._ready.set()

    def start(self, timeout: float = 20.0) -> "SynCapture":
        self._proc = subprocess.Popen(
            [self.tshark, "-i", "lo", "-f", self.filter, "-F", "pcap", "-w", self.pcap, "-q"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        threading.Thread(target=self._reader, daemon=True).start()
        if not self._ready.wait(timeout) or self._proc.poll() is not None:
            self.stop()
            raise BenchError("tshark did not start capturing:\n" + "\n".join(self._stderr_lines[-10:]))
        time.sleep(0.3)  # let dumpcap's BPF/ring settle
        self._send_canary()
        return self

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._proc = None

    def finish(self, destinations: set[str]) -> SynCount:
        """Send the closing canary, stop tshark and count SYNs per destination port."""
        self._send_canary()
        time.sleep(0.3)
        self.stop()
        time.sleep(0.1)  # reader thread drains stderr
        result = SynCount()
        for line in self._stderr_lines:
            low = line.lower()
            if "dropped" in low:
                digits = [int(t) for t in low.replace(",", " ").replace("(", " ").split() if t.isdigit()]
                if digits:
                    result.dropped = (result.dropped or 0) + digits[0]
        proc = subprocess.run(
            [self.tshark, "-r", self.pcap, "-T", "fields", "-E", "separator=,",
             "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"],
            capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise BenchError(f"tshark -r {self.pcap} failed: {proc.stderr[-2000:]}")
        seen: set[tuple[str, str, str, int]] = set()
        for line in proc.stdout.splitlines():
            parts = line.strip().split(",")
            if len(parts) != 4 or not parts[3].isdigit():
                continue
            src, sport, dst, dport_s = parts
            dport = int(dport_s)
            if dst == self.canary and dport == self.canary_port:
                result.canaries += 1
                continue
            if dst not in destinations:
                continue
            result.syn_packets[dport] += 1
            key = (src, sport, dst, dport)
            if key not in seen:
                seen.add(key)
                result.connections[dport] += 1
                result.per_host.setdefault(dport, Counter())[dst] += 1
        result.complete = result.canaries >= 2 and not result.dropped
        try:
            os.unlink(self.pcap)
        except OSError:
            pass
        return result


# --------------------------------------------------------------------------
# Listeners (ss)
# --------------------------------------------------------------------------

WILDCARDS = {"0.0.0.0", "*", "::", "[::]"}


def tcp_listeners() -> list[tuple[str, int]]:
    """(local address, port) of every listening TCP socket (``ss -ltnH``)."""
    ss = which("ss")
    if ss is None:
        raise BenchError("ss not found (apt install iproute2)")
    out = subprocess.run([ss, "-ltnH"], capture_output=True, text=True, timeout=30, check=True).stdout
    found: list[tuple[str, int]] = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        local = parts[3]
        addr, _, port = local.rpartition(":")
        addr = addr.split("%")[0].strip("[]") or "*"
        if port.isdigit():
            found.append((addr, int(port)))
    return found


def listeners_reaching(network: ipaddress.IPv4Network, ports: list[int]) -> list[str]:
    """Listeners that would accept a connection to some address of *network* on *ports*."""
    bad: list[str] = []
    for addr, port in tcp_listeners():
        if port not in ports:
            continue
        if addr in WILDCARDS or addr.startswith("::ffff:0.0.0.0"):
            bad.append(f"{addr}:{port} (wildcard)")
            continue
        try:
            ip = ipaddress.ip_address(addr.removeprefix("::ffff:"))
        except ValueError:
            continue
        if ip.version == 4 and ip in network:
            bad.append(f"{addr}:{port}")
    return bad


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------

def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def write_json(path: str, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def install_term_handler() -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so `with SambaServer(...)` cleans up."""
    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGHUP, _raise)


# --------------------------------------------------------------------------
# Lab-shaped host records (bench/report, bench/web)
# --------------------------------------------------------------------------

def lab_scan_records(targets: str, port: int) -> list[dict]:
    """The lab's profiles on `targets` (loopback, one high port), scanned once with every check."""
    from smbsentry.lab.background import BackgroundLab

    check_loopback_addresses([targets.split("-")[0]])
    with BackgroundLab(targets, ports=[port], bind_mode="per-address"):
        out = subprocess.run([sys.executable, "-m", "smbsentry.cli", "scan", targets, "--ports", str(port), "--checks", "all",
                              "--timeout", "2", "--format", "json", "--no-store", "-q"], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise BenchError(f"the lab scan failed: {out.stderr[-500:]}")
    return json.loads(out.stdout)


def copy_records(records: list[dict], n: int, base: int) -> list[dict]:
    """n records cycling through `records`, each with its own address (base + 1 ...) and names."""
    import copy

    out = []
    for i in range(n):
        r = copy.deepcopy(records[i % len(records)])
        r["address"] = str(ipaddress.IPv4Address(base + i + 1))
        ident = r.get("identity") or {}
        for key in ("netbios_name", "dns_name"):
            if ident.get(key):
                ident[key] = f"{ident[key][:12]}-{i}"
        out.append(r)
    return out
