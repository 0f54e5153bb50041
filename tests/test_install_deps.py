"""scripts/install-system-deps on a machine with nothing installed.

CI runs on a machine where the packages were installed long ago, so the
install path itself would never run there: these tests run it on a PATH of
stubs (apt-get, systemctl, service, pgrep, id) with nothing else on it, the
way a fresh container looks (no init system, no daemon started by the
packages). The stubbed apt-get records what it is asked for and "installs" by
creating the commands and files the script checks for.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-system-deps"
BASH = "/bin/bash"

# Every Debian package the tests and the demo need (README "Tests"; each is
# used by a test module or by scripts/demo.py), written out here on purpose:
# the test must fail if the script stops asking for one of them.
NEEDED = {
    "samba",            # smbd, the real server under test
    "smbclient",        # sambaserver.py checks its shares with it
    "nmap",             # the peer tool
    "tshark",           # dumpcap for the live detector test, connection counts in bench
    "iproute2",         # ip: loopback addresses and network namespaces
    "nftables",         # discovery's routed test range: silent addresses, loss
    "iptables",         # NFQUEUE delay where the kernel has no netem (tests/nfqdelay.py)
    "openssl",          # the engines' TLS broker test makes its certificates
    "slapd",            # OpenLDAP: the LDAP signing / LDAPS channel binding probes (test_relay_ldap.py)
    "chromium",         # dashboard browser tests
    "chromium-driver",
    "postgresql",       # the store on PostgreSQL
    "redis-server",     # the engines' broker
    "rabbitmq-server",  # the engines over AMQP
    "gcc",              # the detector is compiled at install (setup.py)
    "python3-dev",
    "python3-venv",     # make creates .venv with python3 -m venv
}

# What each package provides, as the script looks for it.
PROVIDES = {
    "samba": ["root/usr/sbin/smbd"],  # Debian's paths: /usr/sbin is not on the stubs' PATH, nor on every user's
    "smbclient": ["bin/smbclient"],
    "nmap": ["bin/nmap"],
    "tshark": ["bin/tshark"],
    "iproute2": ["bin/ip"],
    "nftables": ["root/usr/sbin/nft"],
    "iptables": ["root/sbin/iptables"],
    "openssl": ["bin/openssl"],
    "slapd": ["root/usr/sbin/slapd"],
    "chromium": ["bin/chromium"],
    "chromium-driver": ["bin/chromedriver"],
    "postgresql": ["root/usr/lib/postgresql/15/bin/initdb"],
    "redis-server": ["bin/redis-server"],
    "rabbitmq-server": ["root/usr/lib/rabbitmq/bin/rabbitmq-server"],
    "gcc": ["bin/gcc"],
    "python3-dev": ["bin/python3", "root/usr/include/python3.11/Python.h"],
    "python3-venv": ["bin/python3"],
}


def _stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def machine(tmp_path: Path) -> dict:
    """A fresh machine: only the stubs on PATH, an empty sysroot."""
    if not Path(BASH).is_file():
        pytest.skip("needs /bin/bash")
    bin_dir = tmp_path / "bin"
    root = tmp_path / "root"
    log = tmp_path / "apt.log"
    root.mkdir()
    # No init system: systemctl and service fail, pgrep finds nothing (exit 1).
    _stub(bin_dir / "systemctl", 'echo "System has not been booted with systemd" >&2; exit 1')
    _stub(bin_dir / "service", 'echo "$1: unrecognized service" >&2; exit 1')
    _stub(bin_dir / "pgrep", "exit 1")
    _stub(bin_dir / "id", 'echo "${FAKE_UID:-0}"')
    cases = "\n".join(f"    {pkg}) files=({' '.join(PROVIDES[pkg])}) ;;" for pkg in PROVIDES)
    # The stub may use real tools by absolute path: it stands for apt-get, not
    # for the fresh PATH the script sees.
    _stub(bin_dir / "apt-get", f"""echo "$*" >> {log}
[ -n "${{APT_FAILS:-}}" ] && [ "$1" = "$APT_FAILS" ] && {{ echo "E: $1 failed" >&2; exit 100; }}
[ "$1" = install ] || exit 0
[ -n "${{APT_INSTALLS_NOTHING:-}}" ] && exit 0
for pkg in "$@"; do
  case "$pkg" in
{cases}
    *) continue ;;
  esac
  for f in "${{files[@]}}"; do
    target={tmp_path}/$f
    /bin/mkdir -p "${{target%/*}}"
    if [ "$f" = bin/python3 ]; then
      printf '#!{BASH}\\necho {root}/usr/include/python3.11\\n' > "$target"
    else
      printf '#!{BASH}\\nexit 0\\n' > "$target"
    fi
    /bin/chmod +x "$target"
  done
done""")
    env = {
        "PATH": str(bin_dir),
        "SMBSENTRY_SYSROOT": str(root),
        "PYTHON": "python3",
        "HOME": str(tmp_path),
    }
    return {"bin": bin_dir, "root": root, "log": log, "env": env}


def _run(machine: dict, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, str(SCRIPT)], env={**machine["env"], **extra},
        capture_output=True, text=True, timeout=60,
    )


def _asked(machine: dict) -> list[list[str]]:
    log: Path = machine["log"]
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_fresh_machine_installs_everything_and_exits_zero(machine):
    result = _run(machine)
    assert result.returncode == 0, result.stderr
    calls = _asked(machine)
    assert calls[0][0] == "update"
    installs = [c for c in calls if c[0] == "install"]
    assert len(installs) == 1
    packages = {a for a in installs[0][1:] if not a.startswith("-")}
    assert packages == NEEDED


def test_second_run_on_the_installed_machine_asks_for_nothing(machine):
    assert _run(machine).returncode == 0
    machine["log"].unlink()
    again = _run(machine)
    assert again.returncode == 0, again.stderr
    assert _asked(machine) == []


def test_apt_get_that_installs_nothing_is_a_failure_naming_what_is_missing(machine):
    result = _run(machine, APT_INSTALLS_NOTHING="1")
    assert result.returncode == 1
    assert "still missing" in result.stderr
    for pkg in ("samba", "nmap", "postgresql", "python3-dev"):
        assert pkg in result.stderr


@pytest.mark.parametrize("step", ["update", "install"])
def test_apt_get_failing_is_exit_1_with_one_line_not_its_own_status(machine, step):
    """A fresh machine's first apt-get can fail (no network, stale sources): the script says so and exits 1, the
    status its header promises, not apt-get's 100 under set -e."""
    result = _run(machine, APT_FAILS=step)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert f"install-system-deps: apt-get {step} failed" in result.stderr and "samba" in result.stderr


def test_not_root_names_the_packages_and_installs_nothing(machine):
    result = _run(machine, FAKE_UID="1000")
    assert result.returncode == 0
    assert "run as root" in result.stderr and "samba" in result.stderr
    assert _asked(machine) == []


def test_no_pipeline_depends_on_a_process_existing():
    """The failure this guards against: `pgrep ... | while` under pipefail."""
    text = SCRIPT.read_text()
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("pgrep" in line for line in code)
    assert os.access(SCRIPT, os.X_OK)
