"""The newer SMB vulnerabilities (SMBleed, CVE-2022-24500, CVE-2025-33073):
the NTLM build says `likely` only when every release sharing it is
affected, the build revision decides `vulnerable` / `not_vulnerable`, and
the credentialed audit reads the same fixed revisions from the knowledge
base.  Constructed host facts here; the lab manifest test (test_lab.py)
scans the emulated hosts and tests/test_checks_samba.py the real Samba."""

from __future__ import annotations

import pytest
from test_checks_unit import FakeHost, one, run_check, windows

from smbsentry.audit import HostFacts, evaluate
from smbsentry.kb.findings import fixed_revision
from test_audit_eval import AS_OF


@pytest.mark.parametrize(("ubr", "status"), [(None, "likely"), (899, "vulnerable"), (900, "not_vulnerable")])
def test_smbleed_on_the_smbghost_builds_by_revision(ubr, status):
    # revision 720 fixes SMBGhost but not SMBleed: a March 2020 patch leaves the leak open
    f = one("cve-2020-1206", FakeHost(windows(18363), facts={} if ubr is None else {"ubr": ubr}))
    assert f.status == status, f
    if ubr is not None:
        assert f.evidence.startswith(f"OS build 18363.{ubr} is") and f.evidence.endswith("18363.900 (KB4560960)")
    assert one("cve-2020-0796", FakeHost(windows(18363), facts={"ubr": 720})).status == "not_vulnerable"


def test_smbleed_closed_by_the_negotiate_and_other_builds():
    assert one("cve-2020-1206", FakeHost(windows(18363, compression=()))).status == "not_vulnerable"
    f = one("cve-2020-1206", FakeHost(windows(17763)))
    assert (f.status, f.inferred) == ("not_vulnerable", True) and "not a release CVE-2020-1206 affected" in f.evidence


def test_reflected_relay_signing_required_is_the_workaround_on_the_wire():
    r = windows(17763)
    assert one("cve-2025-33073", FakeHost(r)).status == "likely"
    r.smb2.signing = "required"
    f = one("cve-2025-33073", FakeHost(r))
    assert f.status == "not_vulnerable" and "signing required" in f.evidence and "not visible remotely" in f.reason


@pytest.mark.parametrize(("build", "ubr", "fixed"), [(17763, 7434, "KB5060531"), (26100, 4349, "KB5060842"), (20348, 3807, "KB5060526")])
def test_reflected_relay_by_revision_from_the_catalog(build, ubr, fixed):
    # the fixed revisions of June 2025 come from the update catalog's build data, merged into the curated fixes
    assert fixed_revision("cve-2025-33073", build) == (ubr, (fixed,))
    assert one("cve-2025-33073", FakeHost(windows(build), facts={"ubr": ubr - 1})).status == "vulnerable"
    assert one("cve-2025-33073", FakeHost(windows(build), facts={"ubr": ubr})).status == "not_vulnerable"


def test_a_build_shared_with_an_unassessed_release_is_not_likely():
    # 7601 is Windows 7 SP1 (out of support in 2025, not assessed) and Server 2008 R2 SP1 (affected)
    f = one("cve-2025-33073", FakeHost(windows(7601, version="6.1", dialects=("2.0.2", "2.1"), compression=())))
    assert f.status == "unknown" and "build revision would decide" in f.reason
    # a release from after the fix is not affected
    assert one("cve-2025-33073", FakeHost(windows(26200))).status == "not_vulnerable"


def test_client_side_rce_is_not_default_and_decides_by_revision():
    from smbsentry.checks.registry import select

    assert "cve-2022-24500" not in {c.id for c in select("default")}
    assert one("cve-2022-24500", FakeHost(windows(17763))).status == "likely"
    assert one("cve-2022-24500", FakeHost(windows(17763), facts={"ubr": 2803})).status == "not_vulnerable"
    assert one("cve-2022-24500", FakeHost(windows(17763), facts={"ubr": 2802})).status == "vulnerable"


def test_not_windows_says_nothing():
    r = windows(17763)
    r.identity.implementation = "samba"
    for fid in ("cve-2020-1206", "cve-2022-24500", "cve-2025-33073"):
        assert run_check(fid, FakeHost(r)) == []


def test_the_audit_decides_the_same_by_revision_and_by_later_updates():
    def verdict(fid, **kw):
        return next(iter(evaluate(HostFacts(**kw), as_of=AS_OF, ids=[fid])))

    v = verdict("cve-2020-1206", os_name="Microsoft Windows 10 Pro", build=18363, ubr=899)
    assert v.status == "missing" and "below 18363.900 (KB4560960)" in v.evidence
    assert verdict("cve-2020-1206", os_name="Microsoft Windows 10 Pro", build=18363, ubr=1016).status == "patched"
    assert verdict("cve-2025-33073", os_name="Microsoft Windows Server 2019 Standard", build=17763, ubr=7434).status == "patched"
    # a later cumulative update in the catalog carries the April 2022 fix
    f = HostFacts(os_name="Microsoft Windows Server 2022 Standard", build=20348)
    f.add_kbs(["KB5014678"])
    v = next(iter(evaluate(f, as_of=AS_OF, ids=["cve-2022-24500"])))
    assert v.status == "patched" and "KB5012604" in v.evidence
