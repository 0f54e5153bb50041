"""`smbsentry lab --services` and `smbsentry scan --checks all` end to end.

The service hosts have no SMB: the scan must still probe their services,
write a record for each host that answered, and run the Shadow Brokers
checks on what it learned (the identity from RDP/SMTP NTLM where offered).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "smbsentry.cli"]
SERVICES = "127.77.3.1-9"  # the service profiles in order (lab/services/profiles.json)
SMB = "127.77.4.1"
SMB_PORT = "44445"


def _wait_port(address: str, port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((address, port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the service lab binds the real (privileged) ports")
    proc = subprocess.Popen([*CLI, "lab", SMB, "--port", SMB_PORT, "--bind-mode", "per-address", "--services", SERVICES],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if not _wait_port("127.77.3.6", 3000, time.monotonic() + 20):
            proc.terminate()
            pytest.fail(f"the lab did not come up: {proc.communicate(timeout=10)[1][-2000:]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def hosts(lab):
    out = subprocess.run([*CLI, "scan", SERVICES, "--checks", "all", "--format", "jsonl", "--no-store", "-q",
                          "--timeout", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr
    return {h["address"]: h for h in map(json.loads, out.stdout.splitlines())}


def verdicts(host: dict) -> dict:
    return {f["id"]: f["status"] for f in host["findings"]}


def test_lab_logs_the_service_hosts(lab, hosts):
    assert lab.poll() is None  # still serving


def test_hosts_without_smb_are_reported(hosts):
    # the seven answering profiles; the garbage host answers too (with nonsense), the silent one never
    assert "127.77.3.9" not in hosts
    for address in ("127.77.3.1", "127.77.3.2", "127.77.3.3", "127.77.3.4", "127.77.3.5", "127.77.3.6", "127.77.3.7"):
        h = hosts[address]
        assert all(state != "open" for state in h["ports"].values()), h["ports"]
        assert h["services"], address


def test_shadow_brokers_verdicts_from_services_alone(hosts):
    assert verdicts(hosts["127.77.3.1"])["esteemaudit"] == "likely"  # XP RDP, standard RDP security
    assert verdicts(hosts["127.77.3.2"])["explodingcan"] == "likely"  # IIS 6.0 with WebDAV
    assert verdicts(hosts["127.77.3.4"])["englishmansdentist"] == "likely"  # Exchange 2007 SMTP
    assert verdicts(hosts["127.77.3.5"])["emphasismine"] == "likely"  # Domino 8.5.3 IMAP
    assert verdicts(hosts["127.77.3.6"])["easybee"] == "likely"  # MDaemon 10.1 WorldClient
    # the 2008 R2 DC: no SMB, its OS comes from NTLM over RDP's CredSSP, Kerberos answers
    dc = hosts["127.77.3.3"]
    assert dc["services"]["rdp"]["ntlm"]["os_build"] == 7601
    assert verdicts(dc)["eskimoroll"] == "likely"
    # the SMB modules: SMB is closed there, so not reachable, never likely
    assert verdicts(hosts["127.77.3.2"]).get("eclipsedwing") in (None, "not_vulnerable")
    # SMB checks are not run on hosts without SMB
    assert "ms17-010" not in verdicts(hosts["127.77.3.4"])


def test_modern_host_is_not_exposed(hosts):
    v = verdicts(hosts["127.77.3.7"])
    assert "likely" not in v.values(), v


def test_service_ports_asked_by_number(lab):
    # --ports with a service port probes that service (not SMB on it), and only it
    out = subprocess.run([*CLI, "scan", "127.77.3.4", "127.77.3.1", "--ports", "445,25", "--format", "jsonl", "--no-store",
                          "-q", "--timeout", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = {h["address"]: h for h in map(json.loads, out.stdout.splitlines())}
    exch = got["127.77.3.4"]
    assert set(exch["ports"]) == {"445"} and exch["services"]["smtp"]["exchange"] == "2007+"
    assert exch["services"]["rdp"] is None
    # of the default checks only those that judge without SMB ran: eol-os, on the OS from SMTP's NTLM
    assert {f["id"]: f["status"] for f in exch["findings"]} == {"eol-os": "vulnerable"}
    assert "127.77.3.1" not in got  # its RDP was not asked for, and 25 is closed there


def test_identity_from_service_ntlm(hosts):
    dc, exch = hosts["127.77.3.3"]["identity"], hosts["127.77.3.4"]["identity"]
    assert dc["source"] == "rdp-ntlm" and dc["netbios_name"] == "DC01" and dc["dns_domain"] == "corp.example.com"
    assert dc["os_build"] == 7601 and dc["implementation"] == "windows" and "2008 R2" in dc["os_name"]
    assert exch["source"] == "smtp-ntlm" and exch["netbios_name"] == "EXCH07" and exch["os_build"] == 3790
    assert hosts["127.77.3.2"]["identity"]["source"] is None  # IIS 6.0 alone names no OS
    f = next(f for f in hosts["127.77.3.3"]["findings"] if f["id"] == "eskimoroll")
    assert "NTLM over RDP" in f["evidence"], f["evidence"]
    # the OS learned over RDP/SMTP is judged for end of support too
    assert verdicts(hosts["127.77.3.3"])["eol-os"] == "vulnerable"  # 2008 R2, ended 2020
    assert verdicts(hosts["127.77.3.4"])["eol-os"] == "vulnerable"  # 2003


def test_nmap_xml_service_hosts(lab, tmp_path):
    # an earlier nmap run saw only SMTP on the Exchange host and HTTP on the 2019 one
    xml = tmp_path / "nmap.xml"
    xml.write_text('<?xml version="1.0"?>\n<nmaprun>\n'
                   '<host><address addr="127.77.3.4" addrtype="ipv4"/><ports>'
                   '<port protocol="tcp" portid="25"><state state="open"/></port></ports></host>\n'
                   '<host><address addr="127.77.3.7" addrtype="ipv4"/><ports>'
                   '<port protocol="tcp" portid="80"><state state="open"/></port></ports></host>\n'
                   '</nmaprun>\n')
    out = subprocess.run([*CLI, "scan", "--targets-file", str(xml), "--checks", "all", "--format", "jsonl",
                          "--no-store", "-q", "--timeout", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    got = {h["address"]: h for h in map(json.loads, out.stdout.splitlines())}
    exch, web = got["127.77.3.4"], got["127.77.3.7"]
    assert exch["ports"] == {} and exch["services"]["smtp"]["exchange"] == "2007+"
    # the SMB ports the nmap run did not see open are not probed; the services all are
    assert "refused" in exch["services"]["rdp"]["error"]
    assert verdicts(exch)["englishmansdentist"] == "likely"
    assert web["services"]["http"]["version"] == "10.0" and "error" not in web["services"]["smtp"]


def test_summary_counts_service_only_hosts(lab):
    out = subprocess.run([*CLI, "scan", "127.77.3.4", "127.77.3.6", "--ports", "445,25,3000", "--format", "jsonl",
                          "--no-store", "--timeout", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "2 targets, 0 with SMB open, 2 with other services only" in out.stderr, out.stderr


def test_low_descriptor_limit_loses_no_smb_host(tmp_path):
    """--checks all with few file descriptors: silent service hosts hold sockets for
    the whole timeout, yet every SMB host is still fingerprinted (the engine budgets
    descriptors per host, and SMB sockets close before the service probes open)."""
    import resource

    if os.geteuid() != 0:
        pytest.skip("the service lab binds the real (privileged) ports")
    lab = subprocess.Popen([*CLI, "lab", "127.77.6.1-24", "--port", "44446", "--bind-mode", "per-address",
                            "--mix", "win7-sp1-unpatched", "--services", "127.77.7.1-24", "--services-mix", "svc-silent"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_port("127.77.6.24", 44446, time.monotonic() + 20) and _wait_port("127.77.7.24", 80, time.monotonic() + 20)
        targets = [t for i in range(1, 25) for t in (f"127.77.6.{i}", f"127.77.7.{i}")]

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

        out = subprocess.run([*CLI, "scan", *targets, "--ports", "44446", "--checks", "all", "--concurrency", "64",
                              "--format", "jsonl", "--no-store", "-q", "--timeout", "1"],
                             capture_output=True, text=True, timeout=300, preexec_fn=limit)
        assert out.returncode in (0, 1), out.stderr[-2000:]
        got = {h["address"]: h for h in map(json.loads, out.stdout.splitlines())}
        smb = [got.get(f"127.77.6.{i}") for i in range(1, 25)]
        assert all(h is not None and h["smb2"] and h["identity"]["netbios_name"] for h in smb), \
            [h and h["errors"] for h in smb]
        assert not any("local-error" in e or "internal-error" in e for h in got.values() for e in h["errors"])
    finally:
        lab.terminate()
        lab.wait(10)
