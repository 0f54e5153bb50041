#!/usr/bin/env python3
"""`make demo`: start the built-in lab and run the main job on it, `smbsentry respond`.

The lab emulates 20 Windows and Samba hosts on 127.77.0.1-20 (unpatched and
patched Windows 7, a DoublePulsar implant, XP, 2003, 2012 R2, Windows 10
1909 with SMBGhost exposure, Server 2019/2022, Server 2025 with SMB over QUIC
on UDP 443 when run as root, Samba 4.5 in the SambaCry range, and broken
hosts that stall, send garbage or reset).  `respond` scans it
with every check, prints the ranked action list and writes demo-output/:
report.html (English), report-zh.html, report.json, hosts.csv, scan.jsonl and
the remediation plan (plan/plan.md with apply and rollback scripts); the lab's
manifest is copied beside them and the scan is compared with it.  Loopback only.

As root the lab also serves the service hosts of the Shadow Brokers checks on
127.77.5.1-9, on their real ports (XP with RDP, IIS 6.0 WebDAV, a 2008 R2
domain controller, Exchange 2007, Domino 8.5, MDaemon 10.1, Server 2019, a
garbage and a silent host): the report's arsenal then shows which of the 18
tools apply to which host, from SMB and from those services.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("SMBSENTRY_DEMO_OUT") or ROOT / "demo-output")
RANGE = "127.77.0.1-20"
FIRST = "127.77.0.1"
SERVICES = "127.77.5.1-9"  # the service lab's profiles, in order


def wait_for(address: str, port: int, proc: subprocess.Popen, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the lab exited with status {proc.returncode}")
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("demo: the lab did not start listening")


def main() -> int:
    py = sys.executable
    if OUT.exists() and not (OUT / "report.json").is_file():
        shutil.rmtree(OUT)  # the demo's own folder, written by an older demo: respond writes it whole now
    # the lab's manifest is the demo's own file beside respond's: taken out, so respond replaces its folder
    # (respond never replaces a folder holding files it did not write) and `make demo` runs again
    (OUT / "manifest.json").unlink(missing_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="smbsentry-demo-"))
    manifest = workdir / "manifest.json"
    root = os.geteuid() == 0
    # Ports below 1024 need root; without it the lab serves 4450 (direct
    # TCP) only and the per-port SMBv1 finding for 139 is not shown.
    lab_ports = ["445", "139"] if root else ["4450"]
    scan_ports = "445,139" if root else "4450"
    if not root:
        print("demo: not root, so the lab serves port 4450 instead of 445/139", file=sys.stderr)
    # With the service hosts, one SMB socket per address: the default device-mode
    # socket would accept (then drop) 445/139 on the service addresses too.
    services = ["--services", SERVICES, "--bind-mode", "per-address"] if root else []
    targets = [RANGE, SERVICES] if root else [RANGE]
    lab = subprocess.Popen(
        [py, "-m", "smbsentry.lab", RANGE, *sum((["--port", p] for p in lab_ports), []), "--manifest", str(manifest),
         *services],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(FIRST, int(lab_ports[0]), lab)
        while not manifest.exists():
            time.sleep(0.05)
        # The main job, as a responder runs it: scan, plan and report in one command.
        rc = subprocess.run([py, "-m", "smbsentry.cli", "respond", *targets, "--ports", scan_ports, "--checks", "all",
                             "--timeout", "2", "-o", str(OUT), "--top", "15"], check=False).returncode
    finally:
        lab.send_signal(signal.SIGINT)
        try:
            lab.wait(timeout=10)
        except subprocess.TimeoutExpired:
            lab.kill()
    if rc not in (0, 3):
        shutil.rmtree(workdir, ignore_errors=True)
        return rc
    shutil.copy(manifest, OUT / "manifest.json")
    shutil.rmtree(workdir, ignore_errors=True)
    sys.path.insert(0, str(ROOT / "src"))
    from smbsentry.lab.verify import score

    hosts = [json.loads(line) for line in (OUT / "scan.jsonl").read_text().splitlines() if line.strip()]
    expected = json.loads((OUT / "manifest.json").read_text())
    if not root:
        for entry in expected.values():
            entry["expected"] = {k: v for k, v in entry["expected"].items() if not k.endswith(":139")}
    right, total, wrong = score(hosts, expected)
    print(f"\nmanifest check: {right}/{total} hosts reported exactly as the lab's manifest says")
    for address, diff in wrong.items():
        print(f"  {address} ({diff['profile']}): {diff['differences']}")
    print(f"report: {OUT / 'report.html'} (and report-zh.html, report.json, hosts.csv, scan.jsonl, manifest.json); "
          f"plan: {OUT / 'plan' / 'plan.md'}")
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
