"""The patch audit's verdicts and the scan/audit merge in Chinese (i18n/data/sentences_audit.json).

`smbsentry audit` runs on every file of tests/data/inventories, tests/data/remote and
tests/data/systeminfo (the registry recordings of tests/data/remote, which are no
inventory, go through the remote audit's fact reader), the audits are merged into scan
results, and an evaluator sweep over every product of the knowledge base reaches the
shapes those files do not: every sentence must have a Chinese rendering.  A few
renderings are checked word for word.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from importlib import resources
from pathlib import Path

import pytest

from smbsentry import i18n
from smbsentry.audit import AuditResult, HostFacts, evaluate, merge_scan_audit
from smbsentry.audit.remote import facts_from_registry, load_recording
from smbsentry.i18n import sentences
from smbsentry.kb import query
from smbsentry.kb.store import kb
from smbsentry.kb.texts import glossary
from smbsentry.report import html as report_html

DATA = Path(__file__).parent / "data"
DIRS = [DATA / "inventories", DATA / "remote", DATA / "systeminfo"]
CLI = [sys.executable, "-m", "smbsentry.cli"]
CJK = re.compile(r"[\u4e00-\u9fff]")
EVIL = "<script>alert(1)</script>"
# files in those folders that are not inventories, and the one broken host: the audit names them and goes on
NOT_INVENTORIES = ("broken.json", "unknown-format.txt", "registry-win10-1909-18363-720.json", "registry-win7-sp1-x64-kb4012212.json",
                   "README.md", "hosts.csv:5", "systeminfo-batch-cp437.txt:49")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def entries() -> list[dict]:
    return sentences.catalog("sentences_audit.json")["sentences"]


def untranslated(texts) -> list[str]:
    return sorted(t for t in set(texts) if t and not i18n.translated(t, "zh"))


def audited(*paths: Path) -> list[dict]:
    """`smbsentry audit ... --format jsonl`: the hosts, after checking that only the known non-inventories were refused."""
    p = run("audit", *map(str, paths), "--format", "jsonl", "--no-store")
    assert p.returncode in (0, 2), p.stderr
    for line in p.stderr.splitlines():
        assert any(name in line for name in NOT_INVENTORIES), line
    return [json.loads(x) for x in p.stdout.splitlines()]


def recorded() -> list[AuditResult]:
    """The registry recordings of tests/data/remote, read as the credentialed remote audit reads a host."""
    out = []
    for path in sorted((DATA / "remote").glob("registry-*.json")):
        reg, meta = load_recording(path)
        facts, _notes = facts_from_registry(reg, address=meta["address"])
        out.append(AuditResult(facts.host, facts.address, path.name, facts, evaluate(facts)))
    return out


@pytest.fixture(scope="module")
def hosts() -> list[dict]:
    return audited(*DIRS) + [r.to_dict() for r in recorded()]


# --- the catalog itself ------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", entries(), ids=lambda e: e["en"][:60])
def test_every_audit_pattern_takes_its_example_and_says_it_in_chinese(entry):
    got = i18n.translate(entry["example"], "zh")
    assert got is not None, entry["example"]
    same_words = sentences.PLACEHOLDER.sub(r"{\1}", entry["en"]) == entry["zh"]  # a KB list, a chain of KBs: nothing to translate
    assert CJK.search(sentences.plain(got)) or same_words
    for kind, part in got:  # every value and remote string of the English is still there, as it was
        if kind in ("v", "r"):
            assert part in entry["example"]


def test_the_audit_catalog_leaves_the_checks_catalog_alone():
    checks = {e["en"] for e in sentences.catalog("sentences.json")["sentences"]}
    assert not checks & {e["en"] for e in entries()}  # one shape, one place
    for e in sentences.catalog("sentences.json")["sentences"]:  # the checks' examples still read as before
        assert i18n.translated(e["example"], "zh"), e["example"]


# --- every verdict of the test data ------------------------------------------------------------------------

def test_every_verdict_of_the_test_inventories_has_a_chinese_rendering(hosts):
    texts = {v["evidence"] for h in hosts for v in h["verdicts"]}
    inventories = {v["evidence"] for h in audited(DATA / "inventories") for v in h["verdicts"]}
    assert len(hosts) >= 15 and len(inventories) >= 140 and len(texts) >= 230  # the files as they are today
    assert untranslated(texts) == []
    for text in texts:
        zh = i18n.sentence(text, "zh")
        assert CJK.search(zh) and zh != text, text


def scan_records(hosts: list[dict]) -> list[dict]:
    """One scan result per audited host, joined by NetBIOS name: every finding id in every remote status, with the checks' own evidence."""
    remote = [("vulnerable", "PeekNamedPipe on FID 0 over an anonymous IPC$ session answered 0xC0000205 (STATUS_INSUFF_SERVER_RESOURCES)", None),
              ("not_vulnerable", "PeekNamedPipe on FID 0 over an anonymous IPC$ session answered 0xC0000022 (STATUS_ACCESS_DENIED)", None),
              ("likely", "inferred from the OS version: the patch level is not visible remotely and the bug is not probed", None),
              ("unknown", None, "probe could not run: no SMB1 session (the SMB1 negotiate did not complete)"),
              ("vulnerable", None, None)]
    out = []
    for i, h in enumerate(x for x in hosts if x["host"]):
        findings = []
        for j, fid in enumerate(kb().vulns):
            status, evidence, reason = remote[(i + j) % len(remote)]
            findings.append({"id": fid, "status": status, "severity": "critical", "title": fid, "cves": [], "references": [],
                             "evidence": evidence, "reason": reason, "inferred": False, "port": 445})
        out.append({"address": f"127.60.0.{i + 1}", "ports": {"445": "open"}, "errors": [],
                    "identity": {"netbios_name": h["host"]}, "findings": findings})
    return out


@pytest.fixture(scope="module")
def merged(hosts, tmp_path_factory) -> list[dict]:
    """`smbsentry audit DIRS --merge scan.json`, and the recordings merged the way --merge does it (the CLI reads no recording)."""
    scans = scan_records(hosts)
    path = tmp_path_factory.mktemp("merge") / "scan.json"
    path.write_text(json.dumps(scans), encoding="utf-8")
    p = run("audit", *map(str, DIRS), "--merge", str(path), "--format", "jsonl", "--no-store")
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(out) == len(scans), p.stderr
    by_name = {s["identity"]["netbios_name"]: s for s in scans}
    return out + [merge_scan_audit(by_name[r.host], r) for r in recorded()]


def test_scan_results_merged_with_the_audits_have_chinese_renderings(merged):
    changed = [f["evidence"] for h in merged for f in h["findings"] if "audit" in (f.get("details") or {})]
    assert len(changed) > 100
    for marker in ("inventory disagrees: patched (", "inventory disagrees: missing (", "patched per inventory: ",
                   "not applicable per inventory: ", "missing per inventory: ", "patch missing per inventory: "):
        assert any(marker in t for t in changed), marker
    assert untranslated(changed) == []


def test_the_chinese_report_of_merged_results_shows_the_audit_evidence_in_chinese(merged):
    html = report_html.render(merged, lang="zh")
    assert "根据清单缺少补丁：" in html and "清单的结论与此不同：已修补" in html and "月度汇总更新" in html
    for english in ("per inventory", "inventory disagrees", "is installed and fixes", "supersedes", "installed updates fixes"):
        assert english not in html, english


# --- what the test files do not reach: every product, every kind of fact --------------------------------------

def swept_facts():
    """Facts for every product of the knowledge base: nothing known, updates from each way a fix is proven, newer
    than the catalog, cut lists, build revisions, file versions, hardening on and off, applications, unknown systems."""
    for p in kb().products.values():
        base = {"os_name": p.name, "build": p.builds[0] if p.builds else None}
        yield HostFacts(**base)
        yield HostFacts(installed_kbs=[], **base)
        yield HostFacts(installed_kbs=["KB9999999"], **base)
        yield HostFacts(installed_kbs=["KB9999998", "KB9999999"], **base)
        yield HostFacts(installed_kbs=["KB2000000"], hotfixes_declared=300, sources=["systeminfo.txt"], **base)
        yield HostFacts(installed_kbs=["KB2000000"], hotfixes_declared=300, sources=["computerinfo.json"], **base)
        yield HostFacts(ubr=1, file_versions={"srv.sys": "1.0.0.0"}, **base)
        yield HostFacts(ubr=99999, file_versions={"srv.sys": "99.0.0.0"}, **base)
        yield HostFacts(smb1_server=True, smb_signing_required=False, restrict_null_sessions=False, guest_enabled=True, domain_controller=True,
                        rdp_enabled=True, iis_webdav=True, wannacry_indicators=["file C:\\WINDOWS\\mssecsvc.exe"],
                        software={"MDaemon WorldClient": "9.6.0", "IBM Lotus Notes": "", "Microsoft Exchange Server": "8.3", "IBM Lotus Domino": "9.0.1"},
                        **base)
        yield HostFacts(smb1_server=False, smb_signing_required=True, restrict_null_sessions=True, guest_enabled=False, domain_controller=False,
                        rdp_enabled=False, iis_webdav=False, smb_device_enabled=False, software={}, **base)
        yield HostFacts(server_service="stopped", listening={"445": False, "3389": False}, **base)
        yield HostFacts(server_service="disabled", **base)
        yield HostFacts(firewall_blocks_smb=True, **base)
        yield HostFacts(os_name=p.line, build=base["build"])  # no service pack given
        for bulletin in {v.bulletin for v in kb().vulns.values() if v.bulletin}:
            ways = {}
            for c in query.covering_updates(bulletin, p.id).values():
                ways.setdefault((c.how, len(c.chain) if c.how == "supersedes" else 0), c.kb)
            chain = query.chain_of(p.id)
            for kb_id in list(ways.values()) + ([chain[0].kb, chain[len(chain) // 2].kb] if chain else []):
                yield HostFacts(installed_kbs=[kb_id], **base)
    for name in (None, "Microsoft Windows 95", "Windows 10 Pro", "Windows 7 SP3", "Windows XP Professional x64 SP1"):
        yield HostFacts(os_name=name)
    yield HostFacts(samba_version="4.5.9")
    yield HostFacts(samba_version="4.17.0")


def test_every_sentence_the_evaluator_writes_has_a_chinese_rendering():
    texts = {v.evidence for facts in swept_facts() for v in evaluate(facts, as_of=date(2026, 1, 1))}
    assert len(texts) > 1000
    for shape in ("is newer than the update catalog", "or more installed hotfixes", "Microsoft's supersedence data does not say",
                  "is a later monthly rollup of", "which supersedes", "and so on through", "predates the fix", "(\"update not applicable\")",
                  "left support on", "(service pack not given: assumed SP", "OS not recognised: unknown OS", "say which release",
                  "(domain-controller role not in the inventory", "is not proof on", "the workaround is in place: Server service stopped",
                  "(version unknown)", "Samba 4.5.0 <= 4.5.9 < 4.5.10", "WannaCry indicators present"):
        assert any(shape in t for t in texts), shape
    assert untranslated(texts) == []


# --- renderings checked by hand ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("en, zh", [
    ("KB4019264 (2017-05 monthly rollup) supersedes KB4015549, which supersedes KB4012215",
     "KB4019264（2017-05 月度汇总更新）取代了 KB4015549，KB4015549 又取代了 KB4012215"),
    ("none of the 2 installed updates fixes MS17-010 on Windows Server 2008 R2; Windows Server 2008 R2 has no update for MS17-010 "
     "(\"update not applicable\"): install SP1 (KB976932) first, then KB4012212 or KB4012215",
     "已安装的 2 个更新都不修复 Windows Server 2008 R2 上的 MS17-010；Windows Server 2008 R2 没有 MS17-010 的更新（安装程序会提示“此更新不适用”）："
     "请先安装 SP1（KB976932），再安装 KB4012212 或 KB4012215"),
    ("the inventory lists 245 of 294 installed hotfixes (systeminfo, like PowerShell's console list, cuts a long list): none of the listed fixes "
     "MS17-010, and the fix could be among the 49 unlisted; export the whole list with `wmic qfe list full /format:csv`, `Get-HotFix | Export-Csv` "
     "or `smbsentry collector` and audit it with this file, or check the srv.sys version",
     "清单只列出了 294 个已安装补丁中的 245 个（systeminfo 和 PowerShell 的控制台输出一样会截断长列表）：列出的补丁都不修复 MS17-010，"
     "但修复补丁可能在未列出的 49 个之中；请用 `wmic qfe list full /format:csv`、`Get-HotFix | Export-Csv` 或 `smbsentry collector` 导出完整列表，"
     "与此文件一起审计；或检查 srv.sys 的版本"),
    ("Windows 10 1607 is not affected by Eternalblue (affected: Windows XP (32-bit), Server 2008 R2, Windows 7 (SMBv1))",
     "Windows 10 1607 不受永恒之蓝（Eternalblue）影响（受影响的系统：Windows XP（32 位）、Server 2008 R2、Windows 7（SMBv1））"),
    ("Windows 10 1607 is not affected by MS09-050 (affected: Windows Vista and Server 2008)",
     "Windows 10 1607 不受 MS09-050 影响（受影响的系统：Windows Vista and Server 2008）"),  # no Chinese form in the kb: kept
    ("no known MS17-010 update among 3 installed updates, but KB5099999 is newer than the update catalog (2026-11-10) and may carry it: "
     "load a newer catalog (smbsentry kb update) or check the srv.sys version or the build revision",
     "已安装的 3 个更新中没有已知的 MS17-010 修复更新，但 KB5099999 比更新目录（2026-11-10）更新，可能包含该修复："
     "请加载更新的目录（smbsentry kb update），或检查 srv.sys 版本或系统修订号"),
    ("PeekNamedPipe on FID 0 over an anonymous IPC$ session answered 0xC0000205 (STATUS_INSUFF_SERVER_RESOURCES); inventory disagrees: patched "
     "(KB4012212 (2017-03 security-only update) is installed and fixes MS17-010)",
     "在匿名 IPC$ 会话上对 FID 0 执行 PeekNamedPipe，返回 0xC0000205 (STATUS_INSUFF_SERVER_RESOURCES)；清单的结论与此不同：已修补"
     "（已安装 KB4012212（2017-03 仅安全更新），它修复了 MS17-010）"),
    ("patch missing per inventory: srv.sys 6.1.7601.23642 is below 6.1.7601.23689 (KB4012212)",
     "根据清单缺少补丁：srv.sys 6.1.7601.23642 低于 6.1.7601.23689 (KB4012212)"),
])
def test_renderings_checked_by_hand(en, zh):
    assert i18n.sentence(en, "zh") == zh


def test_knowledge_base_texts_take_their_chinese_form_from_the_knowledge_base():
    g = glossary()
    assert g["Eternalblue"] == {"zh": "永恒之蓝（Eternalblue）"}
    assert g["Windows XP (32-bit), Server 2008 R2, Windows 7 (SMBv1)"] == {"zh": "Windows XP（32 位）、Server 2008 R2、Windows 7（SMBv1）"}
    assert g["upgrade MDaemon to 17.0.1"] == {"zh": "将 MDaemon 升级到最新版本 17.0.1"}
    assert g["MS17-010"] == {} and any(r.text in g for r in kb().rules)  # known, no Chinese form: kept as they are
    # a text the knowledge base does not hold fails the pattern instead of being taken for one
    assert not i18n.translated("Windows 10 1607 is not affected by Eternalpurple (affected: everything)", "zh")
    assert not i18n.translated("MDaemon 9.6: some advice nobody wrote", "zh")


def test_remote_strings_in_audit_sentences_are_kept_and_escaped():
    facts = HostFacts(os_name="Windows XP Professional SP3", software={f"MDaemon {EVIL}": "9.6"}, wannacry_indicators=[f"file C:\\{EVIL}.exe"],
                      file_versions={"srv.sys": "5.1.2600.5923"})
    texts = {v.id: v.evidence for v in evaluate(facts, as_of=date(2026, 1, 1))}
    for fid in ("easybee", "ms17-010"):
        html = str(i18n.sentence_html(texts[fid], "zh"))
        assert CJK.search(html) and EVIL not in html and "&lt;script&gt;" in html, html


# --- the audit table in Chinese ------------------------------------------------------------------------------------------

def test_audit_table_in_chinese_and_json_in_english():
    files = [str(DATA / "inventories" / "systeminfo-win7-zh-gbk.txt"), str(DATA / "remote" / "collector-cw-xp-lab3-ps2.json")]
    zh = run("audit", *files, "--format", "table", "--lang", "zh", "--no-store")
    assert zh.returncode == 0, zh.stderr
    head, rule, *rows = zh.stdout.splitlines()
    assert head.split() == ["主机", "发现项", "状态", "证据"]
    assert "项不适用" in rows[0] and "缺少补丁" in zh.stdout and "已修补" in zh.stdout and "无法判定" in zh.stdout
    for word in ("patched", "missing", "unknown", "not applicable", "per the inventory", "is installed and fixes", "supersedes"):
        assert word not in zh.stdout, word
    assert "KB4103718（2018-05 月度汇总更新）取代了 KB4093118" in zh.stdout
    assert "srv.sys 5.1.2600.5923 低于 5.1.2600.7208 (KB4012598)；发现 WannaCry 感染迹象" in zh.stdout
    # the status column lines up in terminal columns (a Chinese character takes two)
    status_at = {len(r[:r.index(s)].encode("gbk")) for r in rows for s in ("缺少补丁", "已修补", "无法判定") if s in r}
    assert len(status_at) == 1
    en = run("audit", *files, "--format", "table", "--no-store")
    assert run("audit", *files, "--format", "table", "--lang", "en", "--no-store").stdout == en.stdout
    assert "is installed and fixes MS08-067" in en.stdout and not CJK.search(en.stdout.replace("张伟", "").replace("桌面", ""))
    for fmt in ("json", "jsonl"):  # the contract stays English
        assert run("audit", *files, "--format", fmt, "--lang", "zh", "--no-store").stdout == run("audit", *files, "--format", fmt, "--no-store").stdout


def test_audit_refuses_an_unknown_language():
    p = run("audit", str(DATA / "inventories" / "hosts.csv"), "--lang", "fr", "--no-store")
    assert p.returncode == 2 and "unknown --lang 'fr' (en or zh)" in p.stderr and "Traceback" not in p.stderr
