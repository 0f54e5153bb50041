"""The scanner under faults (issue 17, item 1): hostile hosts cost bounded
memory and leave no socket open, a slow host is cut at --host-timeout, and a
machine that runs out of file descriptors slows the scan down and retries
instead of recording hosts it never reached, or says how many it lost.

Servers are real sockets on 127.171.0.0/16 (tests/faultkit.py), the lab is
the in-process emulated lab, and file descriptors run out for real: the scan
runs in a subprocess whose RLIMIT_NOFILE is lowered (and whose descriptors
are taken by open files when a test needs them gone).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import textwrap
import time

import pytest

from faultkit import NET, BackgroundServers, client_sockets, late_proxy, run_with_peak_rss, tarpit
from smbsentry.checks.registry import select
from smbsentry.lab.background import BackgroundLab
from smbsentry.scan.fingerprint import RateLimiter, ScanOptions, scan_host

CLI = [sys.executable, "-m", "smbsentry.cli"]
PORT = 44517


def _cli(*args, env=None, limit_fds: int | None = None, timeout=300):
    def lower():
        if limit_fds is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit_fds, limit_fds))

    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=lower,
                          env={**os.environ, **(env or {})})


async def _flood(reader, writer):
    """Answer the first request with an endless stream of 1-byte NetBIOS session messages."""
    await reader.read(65536)
    chunk = b"\x00\x00\x00\x01A" * 20000
    while True:
        writer.write(chunk)
        await writer.drain()


def test_flooding_host_costs_bounded_memory_and_is_a_protocol_error(tmp_path):
    """Before: 2.3 GB after one host and a socket left flooding; now the
    connection is dropped at the queue cap."""
    addr = f"{NET}.0.1"
    out = tmp_path / "flood.jsonl"
    with BackgroundServers() as servers:
        servers.serve([addr], PORT, _flood)
        status, rss_kb = run_with_peak_rss([*CLI, "scan", addr, "--ports", str(PORT), "--no-store", "-f", "jsonl", "-o",
                                            str(out), "-q", "--timeout", "2"], timeout=120)
    assert status == 0
    [host] = [json.loads(x) for x in out.read_text().splitlines()]
    assert any("protocol-error" in e for e in host["errors"]), host["errors"]
    assert rss_kb < 300 * 1024, f"peak RSS {rss_kb // 1024} MB"


def test_late_answers_are_cut_at_the_host_timeout():
    """A host answering every step just inside --timeout holds its slot only
    for --host-timeout; what it said is kept, the undecided checks are unknown."""
    lab_addr, proxy_addr = f"{NET}.1.1", f"{NET}.1.2"
    checks = tuple(select("default"))
    with BackgroundLab(f"{lab_addr}-{lab_addr}", ports=[PORT], mix="win7-sp1-unpatched", bind_mode="per-address"), \
            BackgroundServers() as servers:
        servers.serve([proxy_addr], PORT, late_proxy((lab_addr, PORT), 0.3))

        async def scan(host_timeout):
            start = time.perf_counter()
            r = await scan_host(proxy_addr, ScanOptions(ports=(PORT,), timeout=1.0, checks=checks,
                                                        host_timeout=host_timeout), RateLimiter(None))
            await asyncio.sleep(0.1)  # let the aborted transports close
            return r, time.perf_counter() - start, client_sockets(proxy_addr, PORT)

        full, full_time, _ = asyncio.run(scan(None))
        cut, cut_time, left = asyncio.run(scan(1.2))
    assert full_time > 1.5 and not any("host-timeout" in e for e in full.errors)  # the proxy really is that slow
    assert any("host-timeout: gave up after 1.2s" in e for e in cut.errors), cut.errors
    assert cut_time < 1.2 + 0.8
    assert cut.ports == {str(PORT): "open"}
    assert {f.id for f in cut.findings} == {c.id for c in checks}  # every check has a verdict or says why not
    assert any(f.status == "unknown" and "--host-timeout 1.2s" in (f.reason or "") for f in cut.findings)
    assert left == 0


def test_tarpits_beside_lab_hosts_under_a_low_descriptor_limit(tmp_path):
    """Issue 17's report, scaled down: hosts that accept and never answer used
    to leak one socket each, until every lab host after them failed with
    "Too many open files" and the scan still exited 0."""
    tarpits = [f"{NET}.2.{i}" for i in range(1, 71)]
    lab_first, lab_last = f"{NET}.3.1", f"{NET}.3.20"
    out = tmp_path / "scan.jsonl"
    with BackgroundServers() as servers, BackgroundLab(f"{lab_first}-{lab_last}", ports=[PORT], mix="win10-22h2",
                                                       bind_mode="per-address"):
        servers.serve(tarpits, PORT, tarpit)
        p = _cli("scan", f"{NET}.2.1-70", f"{lab_first}-{lab_last}", "--ports", str(PORT), "--no-store", "-f", "jsonl",
                 "-o", str(out), "--timeout", "0.5", "--checks", "none", limit_fds=96)
    hosts = {h["address"]: h for h in map(json.loads, out.read_text().splitlines())}
    assert not any("local-error" in e for h in hosts.values() for e in h["errors"])
    assert len(hosts) == 90
    for i in range(1, 21):
        lab = hosts[f"{NET}.3.{i}"]
        assert lab["smb2"]["dialects"] and lab["identity"]["netbios_name"], lab
    assert p.returncode == 0, p.stderr
    assert "the limit (ulimit -n) is 96: scanning 10 hosts at once" in p.stderr


_HOG = textwrap.dedent("""
    import os, resource, sys, threading
    import smbsentry.scan.engine as engine
    engine.LOCAL_BACKOFF = (0.1,) * 6  # shorter pauses, the same number of tries
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    run = engine.Engine.run
    give_back = float(sys.argv[1])

    async def starved(self, targets):
        # The fault, once the store, the output and the event loop are open:
        # every free descriptor is taken by an open file.
        hogs = []
        try:
            while True:
                hogs.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        if give_back >= 0:  # given back after a while
            threading.Timer(give_back, lambda: [os.close(fd) for fd in hogs]).start()
        return await run(self, targets)

    engine.Engine.run = starved
    from smbsentry.cli import main
    sys.argv = ["smbsentry", *sys.argv[2:]]
    main()
""")


@pytest.mark.parametrize("give_back", [True, False])
def test_running_out_of_descriptors_retries_or_says_how_many_were_lost(tmp_path, give_back):
    """All but a few descriptors are taken by open files (a real EMFILE from
    the kernel).  Given back after a while: every host is scanned, exit 0.
    Never given back: no host is recorded with a local error, the scan says
    how many it lost, exits 1, and --resume (with descriptors) completes it."""
    first, last = f"{NET}.4.1", f"{NET}.4.6"
    out, db = tmp_path / "scan.jsonl", tmp_path / "store.db"
    with BackgroundLab(f"{first}-{last}", ports=[PORT], mix="win2019", bind_mode="per-address"):
        p = subprocess.run([sys.executable, "-c", _HOG, "0.5" if give_back else "-1", "scan", f"{first}-{last}",
                            "--ports", str(PORT), "-f", "jsonl", "-o", str(out), "--db", str(db), "--checks", "none",
                            "--timeout", "2"], capture_output=True, text=True, timeout=120)
        hosts = [json.loads(x) for x in out.read_text().splitlines()]
        assert not any("local-error" in e for h in hosts for e in h["errors"])
        history = json.loads(_cli("history", "--db", str(db), "-f", "json").stdout)
        if give_back:
            assert p.returncode == 0, p.stderr
            assert len(hosts) == 6 and history[0]["status"] == "finished" and history[0]["hosts"] == 6
            return
        assert p.returncode == 1, p.stderr
        assert "6 host(s) not scanned: this machine ran out of resources" in p.stderr
        assert "Too many open files" in p.stderr and f"resume: smbsentry scan --resume {history[0]['id']}" in p.stderr
        assert "Traceback" not in p.stderr
        assert hosts == [] and history[0]["status"] == "interrupted"
        r = _cli("scan", "--resume", str(history[0]["id"]), "--db", str(db), "-f", "jsonl", "-o", str(tmp_path / "r.jsonl"))
        assert r.returncode == 0, r.stderr
        again = json.loads(_cli("history", "--db", str(db), "-f", "json").stdout)[0]
        assert again["status"] == "finished" and again["hosts"] == 6


def test_waiting_for_the_rate_limiter_does_not_use_up_the_host_timeout():
    """At --rate 2, this host's three connections wait 1 s for their turns:
    longer than its 0.8 s --host-timeout, yet that is the scan's doing."""
    addr = f"{NET}.1.3"
    with BackgroundLab(f"{addr}-{addr}", ports=[PORT], mix="win10-22h2", bind_mode="per-address"):
        async def scan():
            limiter = RateLimiter(2)
            await limiter.acquire()  # the bucket starts in use: every connection of the host waits
            start = time.perf_counter()
            r = await scan_host(addr, ScanOptions(ports=(PORT,), timeout=1.0, host_timeout=0.8), limiter)
            return r, time.perf_counter() - start

        result, elapsed = asyncio.run(scan())
    assert elapsed > 0.8 + 0.4
    assert not any("host-timeout" in e for e in result.errors), result.errors
    assert result.smb2 is not None and result.smb2.dialects
