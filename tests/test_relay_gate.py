"""Which hosts the ntlm-relay check probes on HTTP, HTTPS and LDAP (issue 20: at most one more connection).

A relayed NTLM logon is a domain account's: it lands only where that account
is known, so the scan asks 80, 443 and 389 of domain members and of hosts
whose NTLM facts it did not see, and of no workgroup host, whose record then
says "not probed" with the reason (checks.relay.not_probed_reason).  End to
end on the emulated lab, through the scanner's one ScanOptions builder (as
the CLI and the engines build it): Windows workgroup hosts, Windows domain
members, Samba standalone and, built from it here, a Samba AD member, and
hosts without NTLM facts (Samba 3.6, no extended security: in the default
workgroup, and, built here, with a domain's name as its workgroup).  Then the
connections per host the bench counts, the rule's edges, and the report and
dashboard rows in both languages.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources

import pytest

from smbsentry.app.scanprep import scan_options
from smbsentry.checks.registry import select
from smbsentry.checks.relay import WORKGROUP, not_probed_reason, relay_paths
from smbsentry.scan.host import domain_only_ports

LAB_PORT = 44571
RELAY = "default,ntlm-relay,smb-baseline"
WORKGROUP_HOSTS = ("win2019", "win10-22h2", "samba-4.17")
MEMBERS = ("win2022-signing-required", "win7-sp1-unpatched", "win2008r2-locked", "samba-4.17-member")
DEFAULT_WORKGROUP = ("samba-3.6.3",)  # no NTLM facts, but its negotiate names the default workgroup WORKGROUP
UNKNOWN = ("samba-3.6.3-corp",)  # no NTLM facts, its negotiate names another domain: it may be a member
LAB = WORKGROUP_HOSTS + MEMBERS + DEFAULT_WORKGROUP + UNKNOWN
LAB_RANGE = f"127.62.7.1-127.62.7.{len(LAB)}"
GATED = ("http", "https", "ldap")


def samba_member_profile():
    """samba-4.17 joined to a domain: the NTLM challenge names the workgroup, as Samba's does off a standalone
    server (ntlmssp_target_name: TARGET_TYPE_DOMAIN and the workgroup), with the realm as DNS domain."""
    from smbsentry.lab.profiles import parse_profile

    doc = json.loads(resources.files("smbsentry.lab").joinpath("profiles", "samba-4.17.json").read_text("utf-8"))
    doc["name"] = "samba-4.17-member"
    doc["netbios"]["domain"] = "CORP"
    doc["ntlm"].update({"flags": "0xe2898215", "target_name": "CORP", "nb_domain": "CORP", "dns_domain": "corp.example.test",
                        "dns_computer": "filesrv417.corp.example.test"})
    return parse_profile(doc)


def samba_ntdomain_profile():
    """samba-3.6.3 (no extended security: no NTLM challenge) with its workgroup set to a domain's name, CORP, as
    an NT4-style domain member's smb.conf has it: nothing says it is a workgroup host, so it is probed."""
    from smbsentry.lab.profiles import parse_profile

    doc = json.loads(resources.files("smbsentry.lab").joinpath("profiles", "samba-3.6.3.json").read_text("utf-8"))
    doc["name"] = "samba-3.6.3-corp"
    doc["netbios"]["domain"] = doc["smb1"]["primary_domain"] = "CORP"
    return parse_profile(doc)


def scan_all(checks: str, addresses: list[str]) -> dict:
    """{address: record} of one scan, with the ScanOptions the CLI and the engines build."""
    from smbsentry.scan.fingerprint import RateLimiter, scan_host

    options = scan_options(tuple(select(checks)), (LAB_PORT,), timeout=2.0)

    async def go():
        return await asyncio.gather(*(scan_host(a, options, RateLimiter(None)) for a in addresses))

    return {r.address: r.to_dict() for r in asyncio.run(go())}


@pytest.fixture(scope="module")
def scans():
    """{checks: {profile: record}} for the default scan and the scan with the relay and baseline checks."""
    from smbsentry.lab import profiles
    from smbsentry.lab.background import BackgroundLab

    extras = (samba_member_profile(), samba_ntdomain_profile())
    for extra in extras:
        profiles.load_all()[extra.name] = extra  # the lab serves it beside the shipped ones, for this module only
    try:
        try:
            lab = BackgroundLab(LAB_RANGE, ports=[LAB_PORT], mix=",".join(f"{n}=1" for n in LAB),
                                bind_mode="per-address").start()
        except OSError as exc:
            pytest.skip(f"cannot bind the lab on {LAB_RANGE}: {exc}")
        try:
            name = {a: lab.lab.mix.name_at(i) for i, a in enumerate(lab.range)}
            out = {}
            for checks in ("default", RELAY):
                out[checks] = {name[a]: rec for a, rec in scan_all(checks, list(name)).items()}
            return out
        finally:
            lab.stop()
    finally:
        for extra in extras:
            del profiles.load_all()[extra.name]


def probed(rec: dict) -> set[str]:
    return {k for k in GATED if (rec.get("services") or {}).get(k) is not None}


def relay_finding(rec: dict) -> dict:
    return next(f for f in rec["findings"] if f["id"] == "ntlm-relay")


def connections(rec: dict) -> int:
    """As bench/newchecks counts them: SMB, one per service probed, the role's directory probe."""
    services = sum(1 for v in (rec.get("services") or {}).values() if v is not None)
    return rec["connections"] + services + len((rec.get("role") or {}).get("probed_ports") or ())


@pytest.mark.parametrize("profile", WORKGROUP_HOSTS)
def test_a_workgroup_host_gets_no_relay_probe_and_says_not_probed(scans, profile):
    rec = scans[RELAY][profile]
    ident = rec["identity"]
    assert ident["netbios_domain"].upper() == ident["netbios_name"].upper() and ident["source"].endswith("-ntlm")
    assert probed(rec) == set()
    f = relay_finding(rec)
    not_probed = [p for p in f["details"]["paths"] if p["relay"] == "not_probed"]
    assert [(p["protocol"], p["port"]) for p in not_probed] == [("HTTP", 80), ("HTTPS", 443), ("LDAP", 389)]
    assert all(p["reason"] == WORKGROUP for p in not_probed)
    assert f"HTTP 80: not probed ({WORKGROUP})" in f["evidence"]
    # the SMB path stays, read from the negotiate; without one open, the answer is never "safe"
    smb = [p for p in f["details"]["paths"] if p["protocol"].startswith("SMB")]
    assert smb and f["status"] in ("vulnerable", "unknown")
    if f["status"] == "unknown":
        assert f["reason"] == f"HTTP, HTTPS, LDAP: not probed ({WORKGROUP})"
    # the report reads the same paths from the stored record
    rows = [(p["protocol"], p["relay"]) for p in relay_paths(rec)]
    assert ("HTTP", "not_probed") in rows and ("LDAP", "not_probed") in rows


@pytest.mark.parametrize("profile", DEFAULT_WORKGROUP)
def test_a_host_without_ntlm_facts_in_the_default_workgroup_is_not_probed(scans, profile):
    """Samba 3.6 without extended security sends no NTLM challenge; its negotiate names its workgroup, which a
    domain member sets to its domain: the default WORKGROUP (kb services.json default_workgroups) means it
    joined none."""
    rec = scans[RELAY][profile]
    ident = rec["identity"]
    assert not str(ident.get("source") or "").endswith("-ntlm") and ident["netbios_domain"] == "WORKGROUP"
    assert probed(rec) == set()
    f = relay_finding(rec)
    assert [p["reason"] for p in f["details"]["paths"] if p["relay"] == "not_probed"] == [WORKGROUP] * 3


@pytest.mark.parametrize("profile", MEMBERS + UNKNOWN)
def test_domain_members_and_hosts_without_ntlm_facts_are_probed(scans, profile):
    rec = scans[RELAY][profile]
    assert probed(rec) == set(GATED)
    f = relay_finding(rec)
    assert not any(p["relay"] == "not_probed" for p in f["details"]["paths"])
    assert "not probed" not in (f["evidence"] or "") + (f["reason"] or "")


def test_a_probed_domain_member_requiring_signing_is_not_vulnerable(scans):
    """What a workgroup host requiring signing no longer gets (it is `unknown`: not probed): a member whose
    80, 443 and 389 were probed and refused, with SMB signing required, has no relay path."""
    rec = scans[RELAY]["win2022-signing-required"]
    assert all("error" in rec["services"][k] for k in GATED)
    f = relay_finding(rec)
    assert (f["status"], f["evidence"]) == ("not_vulnerable", "SMB2 negotiate: signing required")


def test_the_identities_are_what_the_rule_reads(scans):
    ids = {n: scans[RELAY][n]["identity"] for n in LAB}
    assert ids["samba-4.17-member"]["implementation"] == "samba" and ids["samba-4.17-member"]["netbios_domain"] == "CORP"
    assert ids["win2022-signing-required"]["netbios_domain"] == "CORP"
    assert ids["samba-3.6.3"]["source"] == "smb1-negotiate"  # no NTLM challenge: the workgroup's name decides
    assert (ids["samba-3.6.3-corp"]["source"], ids["samba-3.6.3-corp"]["netbios_domain"]) == ("smb1-negotiate", "CORP")


def test_connections_per_host(scans):
    """The benchmark's goal per host: a workgroup host adds nothing (Samba 3.6 in the default workgroup too), a
    Windows domain member one (80, 443, 389 instead of the default scan's 389 and 88); a host the rule cannot
    read and a Samba member (the default scan's directory probe is Windows members' only) three."""
    extra = {n: connections(scans[RELAY][n]) - connections(scans["default"][n]) for n in LAB}
    assert extra == {"win2019": 0, "win10-22h2": 0, "samba-4.17": 0, "win2022-signing-required": 1,
                     "win7-sp1-unpatched": 1, "win2008r2-locked": 1, "samba-4.17-member": 3, "samba-3.6.3": 0,
                     "samba-3.6.3-corp": 3}
    member = scans["default"]["win2022-signing-required"]
    assert member["role"]["probed_ports"] == [389, 88] and "probed_ports" not in (scans[RELAY]["win2022-signing-required"]["role"])


@pytest.mark.parametrize("identity,reason", [
    ({"source": "smb2-ntlm", "implementation": "windows", "netbios_name": "WS2019", "netbios_domain": "ws2019"}, WORKGROUP),
    ({"source": "smb1-ntlm", "implementation": "samba", "netbios_name": "NAS45", "netbios_domain": "NAS45"}, WORKGROUP),
    ({"source": "smb2-ntlm", "implementation": "windows", "netbios_name": "WS1", "netbios_domain": "CORP"}, None),
    ({"source": "smb1-ntlm", "implementation": "samba", "netbios_name": "NAS45", "netbios_domain": "CORP"}, None),
    # SMB1's negotiate names Samba's workgroup even on a standalone server: only a default name decides
    ({"source": "smb1-negotiate", "implementation": "samba", "netbios_name": None, "netbios_domain": "WORKGROUP"}, WORKGROUP),
    ({"source": "smb1-negotiate", "implementation": "windows", "netbios_name": None, "netbios_domain": "mshome"}, WORKGROUP),
    ({"source": "smb1-negotiate", "implementation": "samba", "netbios_name": None, "netbios_domain": "CORP"}, None),
    ({"source": "smb1-negotiate", "implementation": None, "netbios_name": None, "netbios_domain": "WORKGROUP"}, None),
    ({"source": "smb1-negotiate", "implementation": None, "netbios_name": "XP", "netbios_domain": "XP"}, None),
    ({"source": "smb2-ntlm", "implementation": None, "netbios_name": "NAS", "netbios_domain": "NAS"}, None),  # unknown build
    ({"source": "rdp-ntlm", "implementation": "windows", "netbios_name": "W", "netbios_domain": "W"}, WORKGROUP),
    ({}, None), (None, None),
])
def test_the_rule(identity, reason):
    assert not_probed_reason(identity) == reason


def test_only_the_relay_checks_own_ask_is_gated():
    assert domain_only_ports((445,), tuple(select("default,ntlm-relay"))) == {80, 443, 389}
    assert domain_only_ports((445, 80), tuple(select("ntlm-relay"))) == {443, 389}  # 80 asked by number
    assert domain_only_ports((445,), tuple(select("all"))) == frozenset()  # the Shadow Brokers checks want them all
    assert domain_only_ports((445,), tuple(select("default"))) == frozenset()
    opts = scan_options(tuple(select("ntlm-relay")), (445, 443))
    assert opts.domain_only_ports == {80, 389} and opts.service_ports >= {80, 443, 389}


def workgroup_record(signing: str) -> dict:
    from smbsentry.checks.relay import not_probed_paths, smb_paths

    h = {"address": "127.62.8.1", "hostname": None, "ports": {"445": "open"}, "smb1": {"enabled": False},
         "smb2": {"signing": signing}, "services": {"http": None, "https": None, "ldap": None}, "errors": [],
         "identity": {"netbios_name": "WS1", "netbios_domain": "WS1", "source": "smb2-ntlm", "implementation": "windows"}}
    paths = smb_paths(h) + not_probed_paths(h["services"], WORKGROUP)
    h["findings"] = [{"id": "ntlm-relay", "status": "unknown", "severity": "high", "title": "NTLM relay", "cves": [],
                      "references": [], "evidence": "; ".join(p["text"] for p in paths), "reason": None,
                      "inferred": False, "port": 445}]
    return h


def test_report_rows_say_not_probed_in_both_languages():
    from smbsentry.report.relay import relay_list, relay_section

    rec = workgroup_record("required")
    en = relay_section([rec], "en")
    assert [(r.protocol, r.state, r.label) for r in en["rows"]] == [
        ("SMB2", "not_vulnerable", "relay refused"), ("HTTP", "not_probed", "not probed"),
        ("HTTPS", "not_probed", "not probed"), ("LDAP", "not_probed", "not probed")]
    assert "workgroup host: a relayed domain logon has no account to land on here" in str(en["rows"][1].detail)
    zh = relay_section([rec], "zh")
    assert [r.label for r in zh["rows"][1:]] == ["未探测"] * 3
    detail = str(zh["rows"][1].detail)
    assert "未探测" in detail and "工作组主机" in detail and "not probed" not in detail and "workgroup" not in detail
    assert relay_list([rec]) == ""  # not probed is no target
    # the same record without the check's finding (a scan without ntlm-relay): no such rows
    bare = {**rec, "findings": []}
    assert [r.state for r in relay_section([bare], "en")["rows"]] == ["not_vulnerable"]


def test_the_html_report_in_chinese_has_no_english_for_the_new_state(tmp_path):
    import subprocess
    import sys

    from pagetext import english_found, english_words, visible

    from smbsentry.store import Store

    db = tmp_path / "s.db"
    with Store.open(str(db)) as store:
        sid = store.begin_scan(["127.62.8.1"], {"checks": "default,ntlm-relay", "ports": [445]})
        store.add_host(sid, workgroup_record("required"))
        store.finish_scan(sid)
    out = {}
    for lang in ("en", "zh"):
        p = subprocess.run([sys.executable, "-m", "smbsentry.cli", "report", "--lang", lang, "--db", str(db)],
                           capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stderr
        out[lang] = p.stdout
    assert 'class="s-not_probed">not probed<' in out["en"] and "HTTP 80: not probed (workgroup host" in out["en"]
    assert 'class="s-not_probed">未探测<' in out["zh"] and "工作组主机" in out["zh"]
    text = visible(out["zh"])
    assert not english_found(text, english_words()), english_found(text, english_words())
    assert "not probed" not in text and "workgroup host" not in text
