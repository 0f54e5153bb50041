"""Host role without credentials (scan/role.py) and the LDAP rootDSE read it rests on.

The rules on constructed results; the LDAP parser on real-shaped replies and
on hostile bytes; end to end, `scan --checks all` against the service lab's
2008 R2 domain controller (Kerberos, LDAP rootDSE, NBNS <1C>), and the
directory probe of a default scan.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbsentry.model import Finding, HostResult, Identity
from smbsentry.scan import role
from smbsentry.services import ldap
from smbsentry.services.common import ServiceError

CLI = [sys.executable, "-m", "smbsentry.cli"]


def host(shares=None, *, domain="CORP", name="SRV1", services=None) -> HostResult:
    r = HostResult("127.0.0.9", ports={"445": "open"})
    r.identity = Identity(netbios_name=name, netbios_domain=domain, implementation="windows", os_build=7601, os_version="6.1.7601")
    details = {"shares": shares} if shares is not None else {}
    r.findings = [Finding("smb-null-session", "vulnerable" if shares is not None else "not_vulnerable", "high", "t", details=details)]
    r.services = services or {}
    return r


def test_sysvol_and_netlogon_make_a_domain_controller():
    got = role.decide(host(["IPC$", "NETLOGON", "SYSVOL", "ADMIN$"]))
    assert got["value"] == "domain-controller" and got["shares_visible"]
    assert "SYSVOL and NETLOGON" in got["evidence"][0]
    assert got["data_shares"] == []  # a DC's SYSVOL/NETLOGON are not "data shares"


def test_data_shares_make_a_file_server():
    got = role.decide(host(["IPC$", "Finance", "print$", "Public"]))
    assert got == {"value": "file-server", "evidence": ["data shares listed: Finance, Public"],
                   "shares_visible": True, "data_shares": ["Finance", "Public"]}


def test_no_listing_is_could_not_see_not_has_none():
    got = role.decide(host(None))
    assert got["value"] == "unknown" and got["shares_visible"] is False
    assert "not known" in got["evidence"][0]


def test_workgroup_host_is_not_a_dc():
    got = role.decide(host(["IPC$", "ADMIN$"], domain="W10", name="W10"))
    assert got["value"] == "unknown" and got["shares_visible"] is True
    assert any("workgroup host" in e for e in got["evidence"])


@pytest.mark.parametrize("services,needle", [
    ({"kerberos": {"kdc": True, "port": 88}}, "Kerberos KDC"),
    ({"nbns": {"domain_controller": True, "names": []}}, "<1C>"),
    ({"ldap": {"domain_controller": True, "dc_functionality": "Windows Server 2016"}}, "Windows Server 2016 functional level"),
])
def test_service_facts_make_a_domain_controller(services, needle):
    got = role.decide(host(None, services=services))
    assert got["value"] == "domain-controller" and needle in " ".join(got["evidence"])
    assert got["shares_visible"] is False  # still: nothing says which shares it holds


def test_a_failed_kerberos_probe_is_not_evidence():
    assert role.decide(host(None, services={"kerberos": {"error": "88: connection refused"}}))["value"] == "unknown"


def test_ad_lds_is_not_a_domain_controller():
    attrs = {"supportedCapabilities": [ldap.AD_LDS], "domainControllerFunctionality": ["7"]}
    assert ldap.role_facts(attrs)["domain_controller"] is False


# -- the LDAP messages ------------------------------------------------------------------------------

ROOTDSE = {"defaultNamingContext": ["DC=corp,DC=example,DC=com"], "domainControllerFunctionality": ["7"],
           "supportedCapabilities": [ldap.AD_DS, "1.2.840.113556.1.4.1670"], "isGlobalCatalogReady": ["TRUE"],
           "dnsHostName": ["dc1.corp.example.com"]}


def test_request_is_a_base_search_of_the_empty_dn():
    mid, base, attrs = ldap.parse_request(ldap.rootdse_request(7))
    assert (mid, base) == (7, "") and "domainControllerFunctionality" in attrs


def test_reply_parsed_into_role_facts():
    buf = ldap.search_entry(1, ROOTDSE) + ldap.search_done(1)
    assert ldap.complete(buf) and not ldap.complete(buf[:-3])
    got = ldap.parse_messages(buf)
    facts = ldap.role_facts(got["attributes"])
    assert got["result_code"] == 0
    assert facts["domain_controller"] and facts["dc_functionality"] == "Windows Server 2016"
    assert facts["naming_context"] == "DC=corp,DC=example,DC=com" and facts["global_catalog"] is True


def test_values_from_the_network_are_capped_and_cleaned():
    attrs = {"dnsHostName": ["x" * 5000 + "\x00\x1b[31m"], "vendorName": ["v"] * 500}
    got = ldap.parse_messages(ldap.search_entry(1, attrs) + ldap.search_done(1))["attributes"]
    assert len(got["dnsHostName"][0]) == ldap.MAX_VALUE and len(got["vendorName"]) == ldap.MAX_VALUES
    clean = ldap.parse_messages(ldap.search_entry(1, {"dnsHostName": ["a\x00\x1bb"]}) + ldap.search_done(1))
    assert clean["attributes"]["dnsHostName"] == ["a\ufffd\ufffdb"]


@pytest.mark.parametrize("data,why", [
    (b"", "no search result"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not an LDAP message"),
    (ldap.search_entry(1, ROOTDSE)[:-5], "truncated"),
    (ldap.search_entry(1, ROOTDSE), "no search result"),
    (b"\x30\x84\xff\xff\xff\xff", "truncated"),
    (b"\x30\x03\x02\x01\x01", "malformed message"),
])
def test_hostile_replies_are_one_line_errors(data, why):
    with pytest.raises(ServiceError, match=why):
        ldap.parse_messages(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 400))
def test_random_and_damaged_replies_never_raise_anything_else(noise, cut):
    good = ldap.search_entry(1, ROOTDSE) + ldap.search_done(1)
    for data in (noise, good[:cut], good[:cut] + noise):
        ldap.complete(data)
        try:
            ldap.parse_messages(data)
        except ServiceError:
            pass


# -- end to end --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def service_lab():
    if os.geteuid() != 0:
        pytest.skip("the service lab binds the real (privileged) ports")
    from smbsentry.lab.services.server import ServiceLab

    loop = asyncio.new_event_loop()
    lab = ServiceLab("127.77.6.1-9")
    loop.run_until_complete(lab.start())
    import threading

    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        yield lab
    finally:
        asyncio.run_coroutine_threadsafe(lab.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)


def test_scan_reports_the_domain_controller_role(service_lab):
    out = subprocess.run([*CLI, "scan", "127.77.6.3", "127.77.6.7", "--checks", "all", "--format", "jsonl",
                          "--no-store", "-q", "--timeout", "2"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = {h["address"]: h for h in map(json.loads, out.stdout.splitlines())}
    dc = got["127.77.6.3"]
    assert dc["services"]["ldap"]["domain_controller"] is True
    assert dc["role"]["value"] == "domain-controller"
    ev = " ".join(dc["role"]["evidence"])
    assert "LDAP rootDSE" in ev and "Kerberos KDC" in ev and "<1C>" in ev
    assert got["127.77.6.7"]["role"]["value"] == "unknown"  # Server 2019 member: no DC service answers


def test_directory_probe_of_a_domain_member(service_lab):
    """What a default scan does for an SMB host of a domain: the rootDSE read and a connect to 88."""
    got = asyncio.run(role.directory_probe("127.77.6.3", 2))
    assert got["kerberos_port"] is True and got["ldap"]["domain_controller"] is True
    other = asyncio.run(role.directory_probe("127.77.6.7", 2))
    assert other["kerberos_port"] is False and "refused" in other["ldap"]["error"]
