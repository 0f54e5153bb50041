"""A routed test network in namespaces this process creates, for discovery's tests and bench.

    with RoutedRange("10.77.0.0/16", live="10.77.200.1-64", delay_ms=1, loss=1.0) as net:
        net.run_in_scanner([...smbsentry scan...])

Two network namespaces joined by a veth pair: the *scanner* namespace
routes the range to the *targets* namespace, which owns the whole range
(``ip route add local RANGE dev lo``) and drops, in nftables' prerouting,
every packet to an address of the range that is not live: those addresses
are silent, not even a reset, as on a real network.  `tc netem` delays
every packet leaving the scanner; on a kernel built without netem (this
machine's), iptables queues the packets to the live hosts to
tests/nfqdelay.py, which holds each one for the delay.  Loss is nftables'
(`numgen random`), both ways, netem or not.  The lab (``python -m smbsentry.lab``, per-address binding) serves
the live hosts inside the targets namespace; `listen_silent` adds a host
that accepts TCP on 445 and never speaks SMB (a middlebox).

Nothing here touches an address outside the two namespaces: the machine's
own namespace gets only the names of the two namespaces, which are removed
at the end (also on errors), and the veth pair lives and dies with them.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINK_SCANNER, LINK_TARGETS = "10.254.254.1", "10.254.254.2"


class NetnsUnavailable(RuntimeError):
    """Not root, or ip / tc / nft missing: the caller skips (or fails in CI)."""


def require_netns() -> None:
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root")
    for tool in ("ip", "tc", "nft", "iptables"):
        if shutil.which(tool) is None:
            raise NetnsUnavailable(f"{tool} is not installed (iproute2, nftables, iptables)")


def _range_bounds(text: str) -> tuple[int, int]:
    if "-" in text:
        a, b = text.split("-", 1)
        first = ipaddress.IPv4Address(a)
        last = ipaddress.IPv4Address(b) if "." in b else ipaddress.IPv4Address((int(first) & ~0xFF) | int(b))
        return int(first), int(last)
    addr = ipaddress.IPv4Address(text)
    return int(addr), int(addr)


class RoutedRange:
    def __init__(self, cidr: str, live: list[str] | str = (), delay_ms: float = 1.0, loss: float = 0.0,
                 tag: str | None = None) -> None:
        require_netns()
        self.cidr = str(ipaddress.IPv4Network(cidr))
        self.live = [live] if isinstance(live, str) else list(live)
        self.delay_ms, self.loss = delay_ms, loss
        tag = tag or f"{os.getpid() % 100000}"
        self.scanner, self.targets = f"smbs-s{tag}", f"smbs-t{tag}"
        self.veth = (f"smbs{tag}a", f"smbs{tag}b")  # (scanner's end, targets' end)
        self.procs: list[subprocess.Popen] = []
        self.delay_how = "none"

    # -- set up / tear down ------------------------------------------------

    def __enter__(self) -> RoutedRange:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def _create(self) -> None:
        self.close()  # a namespace of the same name left by a killed run
        s, t = self.scanner, self.targets
        a, b = self.veth
        self._ip("netns", "add", s)
        self._ip("netns", "add", t)
        self._ip("link", "add", a, "netns", s, "type", "veth", "peer", "name", b, "netns", t)
        for ns, dev, addr in ((s, a, LINK_SCANNER), (t, b, LINK_TARGETS)):
            self._ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            self._ip("-n", ns, "link", "set", dev, "up")
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._ip("-n", s, "route", "add", self.cidr, "via", LINK_TARGETS)
        self._ip("-n", t, "route", "add", "local", self.cidr, "dev", "lo")
        self._silence()
        if self.delay_ms:
            self._delay(s, a)

    def _delay(self, ns: str, dev: str) -> None:
        netem = subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay",
                                f"{self.delay_ms}ms", "limit", "100000"], capture_output=True, timeout=30)
        if netem.returncode == 0:
            self.delay_how = "netem"
            return
        if shutil.which("iptables") is None:
            raise NetnsUnavailable("this kernel has no netem and iptables (for NFQUEUE) is not installed")
        proc = subprocess.Popen(self.command(self.targets, [sys.executable, str(REPO / "tests" / "nfqdelay.py"),
                                                            "--delay-ms", f"{self.delay_ms}"]),
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(proc)
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("tests/nfqdelay.py did not start")
        subprocess.run(self.command(self.targets, ["iptables", "-t", "mangle", "-A", "PREROUTING", "-d", self.cidr,
                                                   "-j", "NFQUEUE", "--queue-num", "0"]),
                       check=True, capture_output=True, timeout=30)
        self.delay_how = "nfqueue"

    def _silence(self) -> None:
        """Drop everything to the range except the live addresses (no RST, no ICMP)."""
        elements = []
        for spec in self.live:
            lo, hi = _range_bounds(spec)
            elements.append(str(ipaddress.IPv4Address(lo)) if lo == hi
                            else f"{ipaddress.IPv4Address(lo)}-{ipaddress.IPv4Address(hi)}")
        live = f"elements = {{ {', '.join(elements)} }}" if elements else ""
        per_mille = round(self.loss * 10)
        lose_in = f"ip daddr {self.cidr} numgen random mod 1000 < {per_mille} drop" if per_mille else ""
        lose_out = f"ip saddr {self.cidr} numgen random mod 1000 < {per_mille} drop" if per_mille else ""
        rules = f"""
table ip smbsentry_test {{
  set live {{ type ipv4_addr; flags interval; {live} }}
  chain pre {{
    type filter hook prerouting priority -300; policy accept;
    ip daddr {self.cidr} ip daddr != @live drop
    {lose_in}
  }}
  chain out {{
    type filter hook output priority -300; policy accept;
    {lose_out}
  }}
}}
"""
        self.nft(self.targets, rules)

    def nft(self, ns: str, rules: str) -> None:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules.encode(), check=True,
                       capture_output=True, timeout=30)

    def add_live(self, spec: str) -> None:
        lo, hi = (ipaddress.IPv4Address(n) for n in _range_bounds(spec))
        self.nft(self.targets, f"add element ip smbsentry_test live {{ {lo if lo == hi else f'{lo}-{hi}'} }}\n")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.procs.clear()
        for ns in (self.scanner, self.targets):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)

    # -- what runs inside --------------------------------------------------

    def command(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def start_lab(self, lab_range: str, mix: str | None = None, timeout: float = 60.0) -> subprocess.Popen:
        """The lab on lab_range in the targets namespace; returns once it listens."""
        argv = [sys.executable, "-m", "smbsentry.lab", lab_range, "--bind-mode", "per-address"]
        if mix:
            argv += ["--mix", mix]
        proc = subprocess.Popen(self.command(self.targets, argv), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                text=True, start_new_session=True)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"the lab ended before listening: {''.join(lines)[-2000:]}")
            lines.append(line)
            if line.startswith("lab:") and "addresses" in line:
                self.add_live(lab_range)
                return proc
        raise RuntimeError("the lab did not start in time")

    def listen_silent(self, address: str, every_port: bool = False) -> subprocess.Popen:
        """A host that completes the TCP handshake on 445 (every_port: on every port, as a
        tarpit or middlebox does) and never says a word."""
        port = 9 if every_port else 445
        code = ("import socket,sys,time\n"
                "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(({address!r}, {port})); s.listen(128); print('ready', flush=True)\n"
                "held=[]\n"
                "while True:\n"
                "    c,_=s.accept(); held.append(c)\n")
        proc = subprocess.Popen(self.command(self.targets, [sys.executable, "-c", code]), stdout=subprocess.PIPE,
                                text=True, start_new_session=True)
        self.procs.append(proc)
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the silent listener did not start")
        if every_port:
            self.nft(self.targets, f"""
table ip smbsentry_tarpit {{
  chain pre {{
    type nat hook prerouting priority -100; policy accept;
    ip daddr {address} tcp dport != {port} dnat ip to {address}:{port}
  }}
}}
""")
        self.add_live(address)
        return proc

    def answer_everywhere(self, keep: str) -> None:
        """Make every address of the range but `keep` (a lab range) a middlebox: a handshake on
        every port, never a word (the worst case for discovery's confirmation)."""
        net = ipaddress.IPv4Network(self.cidr)
        listener = str(net.broadcast_address - 1)
        lo, hi = (ipaddress.IPv4Address(n) for n in _range_bounds(keep))
        self.listen_silent(listener, every_port=True)
        self.nft(self.targets, f"""
table ip smbsentry_everywhere {{
  chain pre {{
    type nat hook prerouting priority -101; policy accept;
    ip daddr {self.cidr} ip daddr != {lo}-{hi} tcp dport 1-65535 dnat ip to {listener}:9
  }}
}}
flush set ip smbsentry_test live
add element ip smbsentry_test live {{ {net.network_address + 1}-{net.broadcast_address - 1} }}
""")

    def run_in_scanner(self, argv: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        env = {**os.environ, **kwargs.pop("env", {})}
        return subprocess.run(self.command(self.scanner, argv), capture_output=True, text=True, timeout=timeout,
                              env=env, **kwargs)
