"""The `smbsentry` command as a user runs it: exit codes, formats, Ctrl-C."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "smbsentry.cli"]


def run(*args, timeout=60, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def test_help_shows_examples():
    out = run("scan", "--help").stdout
    assert "--targets-file" in out and "--exclude" in out and "Examples" in out


def test_version():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("smbsentry ")


@pytest.mark.parametrize(
    "token", ["10.0.0.300", "10.0.0.5-2", "127.0.0.1/33", "bad!name", "::1-10.0.0.1"]
)
def test_bad_target_exits_2_naming_the_token(token):
    p = run("scan", token)
    assert p.returncode == 2
    assert token.split()[0] in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_bad_line_in_targets_file_exits_2_naming_file_and_line(tmp_path):
    f = tmp_path / "targets.txt"
    f.write_text("# lab\n127.23.0.1\n127.23.0.300\n")
    p = run("scan", "--targets-file", str(f), "--timeout", "0.3", "-q")
    assert p.returncode == 2
    assert "targets.txt:3" in p.stderr and "127.23.0.300" in p.stderr
    assert "Traceback" not in p.stderr


def test_missing_targets_file_exits_2(tmp_path):
    p = run("scan", "--targets-file", str(tmp_path / "nope.txt"))
    assert p.returncode == 2 and "nope.txt" in p.stderr


def test_unknown_format_exits_2():
    p = run("scan", "127.0.0.1", "--format", "xml")
    assert p.returncode == 2 and "xml" in p.stderr


def test_password_never_from_argv():
    p = run("scan", "127.23.0.1", "--user", "u", stdin=subprocess.DEVNULL, env={**os.environ, "SMBSENTRY_PASSWORD": ""})
    # an empty password is allowed (set), the scan just runs
    assert p.returncode == 0
    p = run("scan", "127.23.0.1", "--user", "u", stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k != "SMBSENTRY_PASSWORD"})
    assert p.returncode == 2 and "SMBSENTRY_PASSWORD" in p.stderr


@pytest.mark.samba
def test_jsonl_csv_json_against_samba(samba_smb1_guest, tmp_path):
    addr = samba_smb1_guest.address
    # one closed neighbour: hosts without SMB are not written
    p = run("scan", addr, "127.23.0.9", "--format", "jsonl", "-q")
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [x["address"] for x in lines] == [addr]
    host = lines[0]
    for key in ("address", "ports", "smb1", "smb2", "identity", "findings", "errors", "duration_ms"):
        assert key in host
    assert host["smb1"]["enabled"] is True

    out = tmp_path / "hosts.csv"
    p = run("scan", addr, "--format", "csv", "-o", str(out), "-q")
    assert p.returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[0]["address"] == addr and rows[0]["smb1"] == "yes"

    p = run("scan", addr, "--format", "json", "-q")
    data = json.loads(p.stdout)
    assert isinstance(data, list) and data[0]["identity"]["netbios_name"] == samba_smb1_guest.netbios_name


@pytest.mark.samba
def test_table_is_printed_with_summary(samba_smb1_guest):
    p = run("scan", samba_smb1_guest.address)
    assert p.returncode == 0
    assert samba_smb1_guest.netbios_name in p.stdout
    assert "1 with SMB open" in p.stderr


def test_ctrl_c_writes_what_is_done_and_exits_130(tmp_path):
    out = tmp_path / "partial.jsonl"
    # a slow scan of nothing: the rate limit keeps it running until we interrupt
    proc = subprocess.Popen(
        [*CLI, "scan", "127.24.0.0/16", "--rate", "50", "--format", "jsonl", "-o", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # interrupted once the scan has opened its output (a loaded machine can take seconds to start the interpreter)
    deadline = time.monotonic() + 60
    while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert out.exists()
    for line in out.read_text().splitlines():
        json.loads(line)


RESOLVER = """
import runpy, socket, sys
real = socket.getaddrinfo
def fake(host, *a, **k):
    if host == "gone.example":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    if host == "flaky.example":
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    return real(host, *a, **k)
socket.getaddrinfo = fake
sys.modules["uvloop"] = None  # plain asyncio resolves through socket.getaddrinfo (uvloop has its own resolver)
sys.argv = ["smbsentry"] + sys.argv[1:]
runpy.run_module("smbsentry.cli", run_name="__main__")
"""


@pytest.mark.parametrize("name, code, why", [("gone.example", 2, "no such name"),
                                             ("flaky.example", 1, "the resolver failed or timed out")])
def test_a_host_name_that_does_not_resolve_is_named_and_the_exit_says_so_even_with_q(tmp_path, name, code, why):
    """An exit status of 0 means nothing was lost: a target name that did not resolve is not in the results, so
    the run says which and exits 2 (no such name: bad input) or 1 (the resolver failed: a run-time failure);
    the other targets are still scanned."""
    out = tmp_path / "r.jsonl"
    p = subprocess.run([sys.executable, "-c", RESOLVER, "scan", name, "127.0.0.1", "--ports", "4999", "--no-store",
                        "-q", "--format", "jsonl", "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert p.returncode == code, p.stderr
    assert f"1 host name(s) did not resolve ({why}: {name})" in p.stderr and "Traceback" not in p.stderr
    assert out.exists()  # the rest was scanned and written (nothing answered on the closed port)
