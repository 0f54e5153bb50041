"""`make demo` (scripts/demo.py) as a new user runs it: twice in a row, the second run as good as the first.

The demo keeps the lab's manifest beside the files respond writes; respond never replaces a folder holding files
it did not write, so a demo that left its manifest there refused to run a second time (exit 2). Runs the real
script on its own loopback lab (127.77.0.1-20, and the service hosts 127.77.5.1-9 as root) into a temporary
folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_twice_and_reports_every_host_as_its_manifest_says(tmp_path):
    out = tmp_path / "demo-output"
    env = {**os.environ, "SMBSENTRY_DEMO_OUT": str(out)}
    for run in (1, 2):
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True,
                           timeout=300, env=env, cwd=ROOT)
        assert r.returncode == 0, (run, r.stdout[-2000:], r.stderr[-2000:])
        got = re.search(r"manifest check: (\d+)/(\d+) hosts", r.stdout)
        assert got and got.group(1) == got.group(2) and int(got.group(2)) >= 19, r.stdout[-2000:]
        for name in ("report.html", "report-zh.html", "report.json", "manifest.json", "plan/plan.md"):
            assert (out / name).is_file(), (run, name)
    assert not [p for p in tmp_path.iterdir() if p.name != "demo-output"]  # no temporary folder left beside it
