"""Shadow Brokers exposure checks: verdicts from identity + service facts from the service lab."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from smbsentry.checks import shadowbrokers as sb
from smbsentry.lab.services import load_profiles
from smbsentry.model import HostResult, Identity
from smbsentry.report.arsenal import arsenal

from test_services import scan_all


class FakeHost:
    def __init__(self, win: dict | None, services: dict | None, ports=None, address="127.77.1.1"):
        ident = Identity()
        if win:
            ident = Identity(netbios_name=win["netbios_name"], netbios_domain=win["netbios_domain"], dns_domain=win.get("dns_domain"),
                             os_version=win["os_version"], os_build=win["os_build"], os_name=win["os_name"], implementation="windows")
        self.result = HostResult(address=address, ports=ports if ports is not None else {"445": "open", "139": "open"}, identity=ident)
        self.credentials = None
        self.scan_date = date(2026, 1, 1)
        self.facts = {}
        self.services = services if services is not None else {}  # HostAccess.services: empty when not probed


CHECKS = {c.id: c for c in (cls() for cls in sb.ShadowBrokersCheck.__subclasses__() + sb._WindowsSmb.__subclasses__() + sb._Domino.__subclasses__()) if hasattr(c, "id") and c.id in sb.MODULES}


def run(check_id, host):
    return asyncio.run(CHECKS[check_id].run(host))


@pytest.fixture(scope="module")
def facts():
    return scan_all()


def test_all_modules_have_checks():
    assert set(CHECKS) == set(sb.MODULES) and all(not c.default for c in CHECKS.values())


def test_lab_expectations(facts):
    data = load_profiles()["profiles"]
    for name, prof in data.items():
        host = FakeHost(prof["windows"], facts[name])
        got = {}
        for cid in sb.MODULES:
            for f in run(cid, host):
                got[cid] = f.status
                assert f.inferred and f.details["fix"] and f.details["name_zh"]
        for cid, status in prof["expected"].items():
            assert got.get(cid) == status, (name, cid, got.get(cid))


def test_not_applicable_os_gives_no_finding(facts):
    win = load_profiles()["profiles"]["svc-win2019-modern"]["windows"]
    host = FakeHost(win, facts["svc-win2019-modern"])
    for cid in ("eclipsedwing", "erraticgopher", "esteemaudit", "explodingcan", "eskimoroll", "easypi", "educatedscholar"):
        assert run(cid, host) == []


def test_service_not_probed_is_unknown():
    win = load_profiles()["profiles"]["svc-winxp-rdp"]["windows"]
    host = FakeHost(win, None)
    [f] = run("esteemaudit", host)
    assert f.status == "unknown" and "not probed" in f.reason


def test_refused_is_not_reachable(facts):
    win = load_profiles()["profiles"]["svc-win2003-iis6"]["windows"]
    [f] = run("esteemaudit", FakeHost(win, facts["svc-win2003-iis6"]))
    assert f.status == "not_vulnerable" and "service not reachable" in f.evidence


@pytest.mark.parametrize("name", ["svc-garbage", "svc-silent"])
def test_bad_services_are_unknown(facts, name):
    host = FakeHost(load_profiles()["profiles"]["svc-win2003-iis6"]["windows"], facts[name])
    for cid in ("explodingcan", "esteemaudit", "eskimoroll", "englishmansdentist", "emphasismine", "easybee"):
        [f] = run(cid, host)
        assert f.status == "unknown" and f.reason, (cid, f)


def test_dc_identity_from_smtp_ntlm(facts):
    host = FakeHost(None, facts["svc-exchange2007"])
    [f] = run("englishmansdentist", host)
    assert f.status == "likely" and "Server 2003" in f.evidence


def test_esteemaudit_without_os_uses_rdp_behaviour(facts):
    [f] = run("esteemaudit", FakeHost(None, facts["svc-winxp-rdp"]))
    assert f.status == "likely"
    # without the NTLM facts of CredSSP, judged by RDP behaviour alone (NLA offered)
    dc = dict(facts["svc-win2008r2-dc"])
    dc["rdp"] = {k: v for k, v in dc["rdp"].items() if k != "ntlm"}
    [g] = run("esteemaudit", FakeHost(None, dc))
    assert g.status == "not_vulnerable"
    # with them, the OS (NT 6.1) is learned over RDP and the module does not apply
    assert facts["svc-win2008r2-dc"]["rdp"]["ntlm"]["os_build"] == 7601
    assert run("esteemaudit", FakeHost(None, facts["svc-win2008r2-dc"])) == []


def test_version_matching():
    assert sb.version_matches("8.5.3", ["8.5"]) == "8.5"
    assert sb.version_matches("6.5.3", ["6.5.4", "6.5.5"]) is None
    assert sb.version_matches("7.0.2", ["6.5.4", "7.0.2"]) == "7.0.2"


def test_arsenal(facts):
    results = []
    for name, prof in load_profiles()["profiles"].items():
        host = FakeHost(prof["windows"], facts[name], address=name)
        fs = [f for cid in sb.MODULES for f in run(cid, host)]
        d = host.result.to_dict()
        d["findings"] = [f.to_dict() for f in fs]
        results.append(d)
    results.append({"address": "w7", "identity": {"os_version": "6.1.7601"}, "findings": [{"id": "ms17-010", "status": "vulnerable"}]})
    rows = {r["tool"]: r for r in arsenal(results)}
    assert len(rows) == 18
    assert rows["explodingcan"]["hosts"] == ["svc-win2003-iis6"] and rows["explodingcan"]["name_zh"] == "爆炸之罐"
    assert rows["eternalblue"]["hosts"] == ["w7"] and rows["eternalsynergy"]["count"] == 0
    assert rows["easybee"]["fix"]


def test_zippybeer_needs_a_domain_and_a_workgroup_host_is_not_one():
    """Workgroup hosts put their own name in the NTLM domain fields, the DNS one included."""
    win = {"netbios_name": "W10-22H2", "netbios_domain": "W10-22H2", "dns_domain": "W10-22H2", "os_version": "10.0",
           "os_build": 19041, "os_name": "Windows 10 2004-22H2"}
    assert run("zippybeer", FakeHost(win, {})) == []
    member = dict(win, netbios_name="WS01", netbios_domain="CORP", dns_domain="corp.example.com")
    (f,) = run("zippybeer", FakeHost(member, {}))
    assert f.status == "unknown" and "corp.example.com" in f.evidence
