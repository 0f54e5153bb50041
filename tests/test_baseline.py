"""The Windows 11 24H2 / Server 2025 SMB baseline against the emulated lab:
one finding per gap, each planned with the knowledge base's action (the
exact setting and its rollback), and the Chinese rendering of its evidence."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from smbsentry import i18n
from smbsentry.checks.registry import select
from smbsentry.kb.store import kb
from smbsentry.lab.background import BackgroundLab
from smbsentry.remediate.planner import plan
from smbsentry.scan.fingerprint import RateLimiter, ScanOptions, scan_host

NAMES = ("win2019", "win2022-signing-required", "win7-sp1-unpatched")
RANGE = f"127.50.20.1-127.50.20.{len(NAMES)}"
PORT = 44555
GAPS = ("baseline-signing", "baseline-smb1", "baseline-smb311-aes256", "baseline-encryption", "baseline-guest")


@pytest.fixture(scope="module")
def scanned():
    try:
        lab = BackgroundLab(RANGE, ports=[PORT], mix=",".join(f"{n}=1" for n in NAMES), bind_mode="per-address").start()
    except OSError as exc:
        pytest.skip(f"cannot bind the lab: {exc}")
    try:
        checks = tuple(select("default,smb-baseline"))

        async def go():
            return await asyncio.gather(*(scan_host(a, ScanOptions(ports=(PORT,), timeout=1.0, checks=checks), RateLimiter(None))
                                          for a in lab.range))

        results = asyncio.run(go())
        return {lab.lab.mix.name_at(lab.range.index(int(ipaddress.IPv4Address(r.address)))): r for r in results}
    finally:
        lab.stop()


def status(r, fid):
    return next(f.status for f in r.findings if f.id == fid)


def test_each_gap_is_its_own_finding(scanned):
    w19, w22, w7 = scanned["win2019"], scanned["win2022-signing-required"], scanned["win7-sp1-unpatched"]
    assert [status(w22, g) for g in GAPS] == ["not_vulnerable", "not_vulnerable", "unknown", "not_vulnerable", "not_vulnerable"]
    assert [status(w19, g) for g in GAPS] == ["vulnerable", "not_vulnerable", "vulnerable", "not_vulnerable", "not_vulnerable"]
    assert [status(w7, g) for g in GAPS] == ["vulnerable", "vulnerable", "vulnerable", "vulnerable", "not_vulnerable"]
    assert all(kb().vulns[g].severity in ("low", "medium") for g in GAPS)


def test_the_plan_names_the_setting_and_the_kb_has_its_rollback(scanned):
    p = plan([scanned["win2019"].to_dict()], "en")
    steps = {s.id: s for hp in p.hosts for s in hp.steps}
    assert "baseline-require-signing" in steps and "baseline-smb-aes256" in steps
    assert "Set-SmbServerConfiguration -RequireSecuritySignature $true" in steps["baseline-require-signing"].text
    assert "Digitally sign communications (always)" in steps["baseline-require-signing"].text
    for aid in ("baseline-require-signing", "baseline-smb-aes256", "baseline-smb-encryption", "baseline-refuse-guest"):
        a = kb().actions[aid]
        assert a.commands and a.rollback and set(a.rollback) == set(a.commands), aid
    zh = plan([scanned["win2019"].to_dict()], "zh")
    assert any("组策略" in s.text for hp in zh.hosts for s in hp.steps if s.id == "baseline-require-signing")


def test_every_baseline_sentence_has_a_chinese_rendering(scanned):
    texts = {t for r in scanned.values() for f in r.findings if f.id.startswith("baseline-") for t in (f.evidence, f.reason) if t}
    assert texts and not [t for t in texts if not i18n.translated(t, "zh")]
