"""Discovery against a routed range, only inside network namespaces this test creates.

tests/netns.py builds them: the scanner's namespace routes 10.77.0.0/22 to
the targets' namespace 1 ms away (tc netem, 1% loss each way), where every
address but the live ones drops packets (nftables), the lab serves eight
SMB hosts; a middlebox completes the TCP handshake on every port and never
speaks (it must not count), and a hung host holds 445 open without
answering SMB (it is not an SMB host found, but it is reported all the
same: "could not see" is not "has none").  Nothing is sent to any other
address.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import in_ci
from netns import NetnsUnavailable, RoutedRange

RANGE = "10.77.0.0/22"
LIVE = "10.77.1.1-8"
EXCLUDED = "10.77.1.4"
MIDDLEBOX = "10.77.2.5"
HUNG = "10.77.3.9"
MIX = "win2019=1,win7-sp1-unpatched=1,samba-4.17=1,win10-22h2=1"
EXPECTED = {f"10.77.1.{i}" for i in range(1, 9)} - {EXCLUDED}


@pytest.fixture(scope="module")
def net():
    try:
        routed = RoutedRange(RANGE, delay_ms=1, loss=1.0)
    except NetnsUnavailable as exc:
        if in_ci():
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with routed:
        routed.start_lab(LIVE, mix=MIX)
        routed.listen_silent(MIDDLEBOX, every_port=True)
        routed.listen_silent(HUNG)
        yield routed


def _scan(net: RoutedRange, tmp_path, *extra: str, user: str | None = None,
          env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    if user is not None:  # a folder that user may write (pytest's tmp_path is root's only)
        tmp_path = Path(tempfile.mkdtemp(prefix="smbsentry-discover-"))
        tmp_path.chmod(0o777)
    out = tmp_path / "out.jsonl"
    argv = [sys.executable, "-m", "smbsentry.cli", "scan", RANGE, "--exclude", EXCLUDED, "--no-store",
            "-f", "jsonl", "-o", str(out), "--retries", "2", *extra]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", *argv]
    proc = net.run_in_scanner(argv, timeout=300, env={"HOME": str(tmp_path), **(env or {})})
    hosts = {}
    if out.exists():
        for line in out.read_text().splitlines():
            record = json.loads(line)
            hosts[record["address"]] = record
    if user is not None:
        shutil.rmtree(tmp_path, ignore_errors=True)
    return proc, hosts


def _fingerprinted(record: dict) -> bool:
    return record["ports"].get("445") == "open" and bool(record.get("smb2") or record.get("smb1"))


@pytest.mark.parametrize("sender", ["C sendmmsg", "Python sendto"])
def test_syn_discovery_finds_every_live_host_and_no_middlebox(net, tmp_path, sender):
    from smbsentry.discover.sender import fast_module

    if sender == "C sendmmsg" and fast_module() is None:
        pytest.skip("the C sender is not compiled here (plain-Python install)")
    env = {"SMBSENTRY_PURE_PYTHON": "1"} if sender == "Python sendto" else {}
    proc, hosts = _scan(net, tmp_path, "--discovery", "syn", "--rate", "20000", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"discovery: syn ({sender}, 20,000 packets/s, retries 2" in proc.stderr
    _check(proc, hosts)


def _check(proc: subprocess.CompletedProcess, hosts: dict) -> None:
    # the excluded live host is never probed, the middlebox never counts, the hung host is reported
    assert set(hosts) == EXPECTED | {HUNG}, proc.stderr
    assert all(_fingerprinted(hosts[a]) for a in EXPECTED)
    assert hosts[HUNG]["ports"]["445"] == "open" and not hosts[HUNG]["smb1"] and not hosts[HUNG]["smb2"]
    assert "7 SMB confirmed" in proc.stderr
    assert f"1 answering on every port (middlebox or tarpit, not counted: {MIDDLEBOX})" in proc.stderr
    assert f"1 open without an SMB answer (assessed all the same: {HUNG})" in proc.stderr


def test_connect_discovery_follows_the_rtt(net, tmp_path):
    proc, hosts = _scan(net, tmp_path, "--discovery", "connect")
    assert proc.returncode == 0, proc.stderr
    assert "discovery: connect (adaptive timeouts" in proc.stderr
    _check(proc, hosts)


def test_without_raw_sockets_auto_says_connect_and_syn_is_refused(net, tmp_path):
    proc, hosts = _scan(net, tmp_path, user="nobody")
    assert proc.returncode == 0, proc.stderr
    assert "discovery: connect (" in proc.stderr and "raw sockets not allowed (not root)" in proc.stderr
    _check(proc, hosts)
    refused, _ = _scan(net, tmp_path, "--discovery", "syn", user="nobody")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "smbsentry: --discovery syn: raw sockets not allowed (not root); run as root, grant CAP_NET_RAW, "
        "or use --discovery connect"]


def test_the_lab_serves_other_addresses_only_inside_a_created_namespace(net):
    from smbsentry.lab.mix import LabConfigError, in_initial_netns, parse_range

    assert in_initial_netns()
    with pytest.raises(LabConfigError, match="loopback addresses only"):
        parse_range("10.77.1.1-8")
    inside = net.run_in_scanner([sys.executable, "-c",
                                 "from smbsentry.lab.mix import in_initial_netns, parse_range;"
                                 "print(in_initial_netns(), len(parse_range('10.77.1.1-8')))"])
    assert inside.stdout.split() == ["False", "8"], inside.stderr


def test_hosts_are_assessed_while_discovery_still_runs(net, tmp_path):
    """Pipelining (issue 19 item 2), by the order of events, not by time: the hung host holds the
    connect sweep open for its negotiate timeout (--timeout 5), so the live hosts confirmed before
    must be fingerprinted and checked before discovery is done.  A runner that assessed only after
    the sweep would record every result after "discovery done"."""
    out = tmp_path / "order.jsonl"
    argv = [sys.executable, str(Path(__file__).parent / "pipeorder.py"), "scan", RANGE, "--exclude", EXCLUDED,
            "--no-store", "-q", "-f", "jsonl", "-o", str(out), "--discovery", "connect", "--timeout", "5"]
    proc = net.run_in_scanner(argv, timeout=300, env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    events = [tuple(e) for e in run["events"]]
    assert run["rc"] == 0, proc.stderr
    done = events.index(("discovery done", ""))
    results = [i for i, (kind, address) in enumerate(events) if kind == "result" and address in EXPECTED]
    assert {events[i][1] for i in results} == EXPECTED
    before = [events[i][1] for i in results if i < done]
    assert before, f"every host result came after discovery was done: {events}"
    for address in before:  # each one was found by discovery first, then assessed
        assert events.index(("found", address)) < events.index(("result", address))
