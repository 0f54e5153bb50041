#!/usr/bin/env python3
"""`make demo`: scan a throw-away loopback Samba and write the report.

Starts Debian's smbd on 127.77.0.1 (SMBv1 on, a guest share) with its own
temporary configuration, runs `smbsentry scan` against it and a closed
neighbour, prints the table, writes demo-output/scan.json and scan.csv, and
stops the server.  Loopback only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import sambaserver  # noqa: E402  (the test harness doubles as the demo's server)

ADDRESSES = ["127.77.0.1"]
OUT = ROOT / "demo-output"


def main() -> int:
    missing = sambaserver.missing_tools()
    if missing:
        print(f"demo: needs {', '.join(missing)} (apt-get install samba iproute2) and root", file=sys.stderr)
        return 1
    OUT.mkdir(exist_ok=True)
    smbsentry = [sys.executable, "-m", "smbsentry.cli"]
    server = sambaserver.SambaServer(ADDRESSES, config="smb1-guest", netbios_name="DEMO-FS1", adopt_addresses=True)
    server.start()
    try:
        targets = ["127.77.0.1-2"]
        rc = subprocess.call([*smbsentry, "scan", *targets, "--format", "table"])
        subprocess.call([*smbsentry, "scan", *targets, "--format", "json", "-o", str(OUT / "scan.json"), "-q"])
        subprocess.call([*smbsentry, "scan", *targets, "--format", "csv", "-o", str(OUT / "scan.csv"), "-q"])
    finally:
        server.stop()
    print(f"report: {OUT / 'scan.json'} and {OUT / 'scan.csv'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
