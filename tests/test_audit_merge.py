"""merge_scan_audit: what an inventory may change in a remote scan result."""

from __future__ import annotations

from smbsentry.audit import AuditResult, HostFacts, Verdict, merge_scan_audit
from smbsentry.model import Finding, HostResult


def finding(fid, status, evidence=None, reason=None):
    return Finding(id=fid, status=status, severity="critical", title=fid, evidence=evidence, reason=reason, inferred=False)


def audit(*verdicts) -> AuditResult:
    return AuditResult("H", "10.0.0.5", "systeminfo.txt", HostFacts(host="H"), list(verdicts))


def merged(findings, *verdicts):
    host = HostResult(address="10.0.0.5", findings=findings)
    out = merge_scan_audit(host, audit(*verdicts))
    assert [f.status for f in host.findings] == [f.status for f in findings]  # input untouched
    return {f["id"]: f for f in out["findings"]}


def test_smbghost_likely_is_settled_by_the_build_revision():
    got = merged([finding("cve-2020-0796", "likely", "3.1.1 + LZNT1 on 18363", "patch level not visible remotely")],
                 Verdict("cve-2020-0796", "missing", "OS build 18363.719 is below 18363.720 (KB4551762)", [{"kb": "KB4551762"}]))
    f = got["cve-2020-0796"]
    assert (f["status"], f["inferred"], f["reason"]) == ("vulnerable", True, None)
    assert f["evidence"] == "missing per inventory: OS build 18363.719 is below 18363.720 (KB4551762)"
    assert f["details"]["audit"] == {"status": "missing", "evidence": "OS build 18363.719 is below 18363.720 (KB4551762)", "source": "systeminfo.txt"}
    ok = merged([finding("cve-2020-0796", "likely")], Verdict("cve-2020-0796", "patched", "OS build 18363.720 is at or above 18363.720 (KB4551762)"))
    assert ok["cve-2020-0796"]["status"] == "not_vulnerable"


def test_ms17_010_unknown_is_settled_but_missing_is_only_likely():
    got = merged([finding("ms17-010", "unknown", reason="SMB1 refused")], Verdict("ms17-010", "patched", "KB4012212 (2017-03 security-only update) is installed and fixes MS17-010"))
    assert (got["ms17-010"]["status"], got["ms17-010"]["reason"]) == ("not_vulnerable", None)
    got = merged([finding("ms17-010", "unknown", reason="SMB1 refused")], Verdict("ms17-010", "missing", "none of the 3 installed updates fixes MS17-010", []))
    f = got["ms17-010"]
    assert (f["status"], f["reason"]) == ("likely", "SMB1 refused")
    assert f["evidence"] == "patch missing per inventory: none of the 3 installed updates fixes MS17-010"


def test_remote_proof_is_never_overridden():
    got = merged([finding("ms17-010", "vulnerable", "PeekNamedPipe answered 0xC0000205")],
                 Verdict("ms17-010", "patched", "KB4012212 (2017-03 security-only update) is installed and fixes MS17-010"))
    f = got["ms17-010"]
    assert f["status"] == "vulnerable" and f["inferred"] is False
    assert f["evidence"].endswith("; inventory disagrees: patched (KB4012212 (2017-03 security-only update) is installed and fixes MS17-010)")


def test_inferred_findings_and_unknown_verdicts():
    got = merged([finding("ms08-067", "likely"), finding("ms10-061", "likely"), finding("ms09-050", "likely")],
                 Verdict("ms08-067", "not_applicable", "Windows Vista SP2 is not affected"), Verdict("ms10-061", "missing", "none", []),
                 Verdict("ms09-050", "unknown", "no updates listed"))
    assert got["ms08-067"]["status"] == "not_vulnerable"
    assert got["ms10-061"]["status"] == "likely" and got["ms10-061"]["evidence"] == "patch missing per inventory: none"
    assert got["ms09-050"]["status"] == "likely" and "details" not in got["ms09-050"]


def test_accepts_a_host_dict():
    host = {"address": "10.0.0.5", "findings": [{"id": "ms17-010", "status": "unknown", "evidence": None, "reason": "x", "inferred": False}]}
    out = merge_scan_audit(host, audit(Verdict("ms17-010", "patched", "KB4012598 ...")))
    assert out["findings"][0]["status"] == "not_vulnerable" and host["findings"][0]["status"] == "unknown"


# --- which scanned host an inventory describes (audit/join.py) ---------------------------------------

from smbsentry.audit.join import match  # noqa: E402


def scanned(address, nb=None, domain=None, dns=None):
    return {"address": address, "identity": {"netbios_name": nb, "netbios_domain": domain, "dns_name": dns,
                                             "dns_domain": dns.split(".", 1)[1] if dns else None}}


def inv(host, address=None, domain=None):
    return {"host": host, "address": address, "facts": {"domain": domain} if domain else {}}


def test_join_by_address_then_dns_then_netbios_with_domain():
    scans = [scanned("127.60.0.1", "WS01", "CORP", "ws01.corp.example"), scanned("127.60.0.2", "WS01", "LAB", "ws01.lab.example"),
             scanned("127.60.0.3", "FS02", "CORP", "fs02.corp.example")]
    audits = [inv("anything", address="127.60.0.3"), inv("ws01.lab.example"), inv("WS01", domain="corp.example"), inv("WS01")]
    assert match(scans, audits) == {0: 2, 1: 1, 2: 0}  # the bare WS01 is shared by two hosts: not joined


def test_bare_name_joins_only_when_unique_on_both_sides():
    scans = [scanned("127.60.0.1", "WS01", "CORP"), scanned("127.60.0.2", "FS02", "CORP")]
    assert match(scans, [inv("ws01")]) == {0: 0}
    assert match(scans, [inv("ws01"), inv("WS01")]) == {}  # two inventories claim the same bare name
