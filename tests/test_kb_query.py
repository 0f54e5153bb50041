"""Queries the audit and the remediation planner ask, and the two CLI texts."""

from __future__ import annotations

import pytest

from smbsentry.kb import query
from smbsentry.kb.show import kb_show, which_kb


@pytest.mark.parametrize("text, kw, pid, edition, arch", [
    ("Microsoft Windows 7 Professional", {"sp": 1, "arch": "x64"}, "windows-7-sp1", "Professional", "x64"),
    ("Microsoft Windows 7 旗舰版 ", {"sp": 1}, "windows-7-sp1", "Ultimate", None),
    ("Windows 7 SP1 x64", {}, "windows-7-sp1", None, "x64"),
    ("Windows Server 2008 R2", {}, "windows-server-2008-r2-rtm", None, None),
    ("Microsoft Windows Server 2008 R2 Standard ", {"build": 7600}, "windows-server-2008-r2-rtm", "Standard", None),
    ("Microsoft® Windows Server® 2008 Standard", {"sp": 1}, "windows-server-2008-sp1", "Standard", None),
    ("Microsoft(R) Windows(R) Server 2003 R2 Enterprise x64 Edition", {"sp": 2}, "windows-server-2003-r2-sp2", "Enterprise", "x64"),
    ("Microsoft Windows XP Professional x64 Edition", {"sp": 2}, "windows-xp-x64-sp2", "Professional", "x64"),
    ("Microsoft Windows 10 Pro", {"build": 18363}, "windows-10-1909", "Pro", None),
    ("Windows 10 version 1909", {}, "windows-10-1909", None, None),
    ("Microsoft Windows 10 Enterprise 2016 LTSB", {"build": 14393}, "windows-10-1607", "Enterprise", None),
    ("Microsoft Windows Server 2016 Datacenter", {}, "windows-server-2016", "Datacenter", None),
    ("Microsoft Windows Server Datacenter", {"build": 18362}, "windows-server-1903", "Datacenter", None),
    ("Microsoft Windows 11 Pro", {"build": 22631}, "windows-11-23h2", "Pro", None),
    ("Microsoft Windows 8.1 Pro", {}, "windows-8.1", "Pro", None),
    # systeminfo of Vista / 2008 in cmd's code page 437 (WES-NG's validation files have these names)
    ("Microsoftr Windows VistaT Enterprise ", {"sp": 2}, "windows-vista-sp2", "Enterprise", None),
    ("Microsoftr Windows Serverr 2008 Standard ", {"sp": 1}, "windows-server-2008-sp1", "Standard", None),
])
def test_product_from_os_string(text, kw, pid, edition, arch):
    m = query.product_from_os_string(text, **kw)
    assert (m.product.id, m.edition, m.architecture) == (pid, edition, arch)


def test_product_from_os_string_says_what_it_assumed_and_refuses_nonsense():
    assert query.product_from_os_string("Windows XP").assumed == ("service pack not given: assumed SP3",)
    for bad, msg in [("Linux 6.1", "unknown OS"), ("Windows 10", "say which release"), ("Windows 7 ia64", "has no ia64 edition"),
                     ("Windows 7 SP3", "service pack 3 is not in the knowledge base")]:
        with pytest.raises(ValueError, match=msg):
            query.product_from_os_string(bad)


def test_supersedence_queries():
    assert query.supersedes_chain("KB4019264")[:3] == ["KB4015549", "KB4015552", "KB4012215"]
    assert query.supersedence_path("KB4019264", "KB4012215") == ["KB4019264", "KB4015549", "KB4012215"]
    assert query.supersedence_path("KB4012215", "KB4019264") is None
    assert query.superseded_by("KB4012212") == []  # security-only: superseded by nothing
    assert "KB4512506" in query.superseded_by("KB4012215")
    assert query.superseded_by("KB958644") == ["KB2705219"]


def test_covering_updates_say_how():
    c = query.covering_updates("MS17-010", "windows-7-sp1")
    assert c["KB4012212"].how == "direct" and c["KB4019264"].how == "supersedes"
    assert "KB4015546" not in c  # April 2017 security-only: not cumulative
    ghost = query.covering_updates("ADV200005", "windows-10-1909")
    assert ghost["KB4549951"].how == "chain"  # a later cumulative update of the release
    assert ghost["KB4549951"].evidence.startswith("KB4549951 (2020-04 cumulative update) is a later cumulative update of Windows 10 1909 than "
                                                  "KB4551762 (2020-03 cumulative update)")
    assert query.covering_updates("MS08-067", "windows-server-2003-sp2")["KB2705219"].how == "supersedes"
    assert "KB2705219" not in query.covering_updates("MS08-067", "windows-xp-sp3")  # superseded on 2003 only


def test_fixes_for_lists_options_with_prerequisites():
    opts = query.fixes_for("ms17-010", "windows-server-2008-r2-rtm", "x64")
    assert [o.fix.kb for o in opts] == ["KB4012212", "KB4012215"]
    assert all([p.kb for p in o.prerequisites] == ["KB976932"] for o in opts)
    assert opts[1].later_updates and not opts[0].later_updates
    assert opts[0].to_dict()["files"] == ["windows6.1-kb4012212-x64_2decefaa02e2058dcd965702509a992d8c4e92b3.msu"]
    r2 = query.fixes_for("ms17-010", "windows-server-2012-r2", "x64")
    assert [p.kb for p in r2[0].prerequisites] == ["KB2919355"]
    assert query.fixes_for("ms17-010", "windows-server-2012-r2", "x64", installed={"KB2919355"})[0].prerequisites == ()
    vista = query.fixes_for("ms17-010", "windows-vista-rtm")
    assert [p.kb for p in vista[0].prerequisites] == ["KB936330", "KB948465"]
    assert query.fixes_for("ms08-067", "windows-server-2003-sp2")[0].superseded_by == ("KB2705219",)
    assert query.fixes_for("erraticgopher", "windows-xp-sp3") == []


def test_file_versions_follow_the_branch():
    assert query.file_verdict("MS17-010", "windows-vista-sp2", "srv.sys", "6.0.6002.19743") == (True, "6.0.6002.19743 (GDR) (KB4012598)")
    assert query.file_verdict("MS17-010", "windows-vista-sp2", "srv.sys", "6.0.6002.23000")[0] is False  # LDR below 24067
    assert query.file_verdict("MS17-010", "windows-7-sp1", "srv.sys", "6.1.7601.23688")[0] is False
    assert query.file_verdict("MS17-010", "windows-xp-sp3", "srv.sys", "5.1.2600.7208")[0] is True


def test_actions_per_family_with_rollback():
    ids = [a.id for a in query.actions_for("ms17-010", "windows-7-sp1")]
    assert "disable-smb1-registry" in ids and "disable-smb1-server" not in ids and "disable-smb-device" not in ids
    assert [a.id for a in query.actions_for("ms17-010", "windows-xp-sp3")][:1] == ["disable-smb-device"]
    act = query.action("disable-smb-compression")
    assert act.rollback["cmd"] and act.text_zh and not act.reboot
    assert query.action("install-update").render(query.fix("KB4012212"), "x64")["cmd"][0] == (
        'wusa.exe "windows6.1-kb4012212-x64_2decefaa02e2058dcd965702509a992d8c4e92b3.msu" /quiet /norestart')


def test_which_kb_windows_7_sp1():
    text = which_kb("Windows 7 SP1 x64", "ms17-010")
    assert "KB4012212: 2017-03 security-only update" in text
    assert "KB4012215: 2017-03 monthly rollup" in text
    assert "or any later monthly rollup of Windows 7 SP1 (e.g. KB4015549, KB4019264, KB4022719)" in text
    assert "windows6.1-kb4012212-x64_2decefaa02e2058dcd965702509a992d8c4e92b3.msu" in text
    assert "srv.sys >= 6.1.7601.23689" in text


def test_which_kb_2008_r2_without_sp1_says_install_sp1_first():
    text = which_kb("Windows Server 2008 R2", "ms17-010")
    assert 'cannot take these updates ("update not applicable"): first install KB976932' in text
    assert "windows6.1-KB976932-X64.exe" in text and "X86.exe" not in text


def test_which_kb_other_answers():
    assert "OS build 18363.720 or later" in which_kb("Windows 10 1909 x64", "cve-2020-0796")
    assert "not affected" in which_kb("Windows 10 1809", "ms17-010")
    assert "no update exists for Windows XP SP3" in which_kb("Windows XP SP3", "erraticgopher")
    w2k3 = which_kb("Windows Server 2003 SP2 x86", "ms17-010")
    assert "file (x86, en-us): windowsserver2003-kb4012598-x86-custom-enu_" in w2k3 and "file (x86, zh-cn): " in w2k3
    xp = which_kb("Windows XP SP2", "ms17-010")  # the Server 2003 package must not be offered for XP
    assert "first install KB936929" in xp and "windowsserver2003" not in xp.lower() and "windowsxp-kb4012598-x86-custom-enu_" in xp
    assert "wmic qfe" in which_kb("Windows Server 2003 SP2 x86", "ms17-010")
    for args in [("BeOS", "ms17-010"), ("Windows 7 SP1", "ms99-999")]:
        with pytest.raises(ValueError) as exc:
            which_kb(*args)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize("entry, expect", [
    ("ms17-010", "bulletin: MS17-010"), ("KB4012215", "superseded by: KB4012218, KB4015549"), ("4012212", "fixed srv.sys: 6.1.7601.23689"),
    ("windows-7-sp1", "end of support: 2020-01-14"), ("Windows Server 2008", "next service pack: KB948465"),
    ("eternalblue", "Shadow Brokers module: Eternalblue (永恒之蓝)"), ("disable-smb-device", "rollback cmd: reg add"),
])
def test_kb_show(entry, expect):
    text = kb_show(entry)
    assert expect in text and "  sources:\n    - " in text
    assert "seed" not in text.lower() and "knowledge.md" not in text and "../shared" not in text


def test_kb_show_unknown_is_one_line():
    with pytest.raises(ValueError) as exc:
        kb_show("KB0000001")
    assert "\n" not in str(exc.value) and "no knowledge-base entry" in str(exc.value)


INTERNAL = ("seed", "knowledge.md", "checks.md", "contract.md", "../shared")


def test_user_facing_text_cites_public_documents_only():
    """kb show of every entry, the sources' titles and plan --help name no project-internal document."""
    from typer.testing import CliRunner

    from smbsentry.cli import app
    from smbsentry.kb.store import kb

    data = kb()
    for src in data.sources.values():
        assert not any(word in src["title"].lower() for word in INTERNAL), src["title"]
    entries = list(data.vulns) + list(data.fixes) + list(data.products) + list(data.actions)
    for entry in entries:
        text = kb_show(entry).lower()
        assert not any(word in text for word in INTERNAL), (entry, text)
    for name in ("seed-001", "seed-002", "seed-004"):
        assert data.sources[name]["title"].split(" ")[0] in ("Antiy", "360", "Alibaba")
    for args in (["plan", "--help"], ["kb", "show", "--help"], ["diff", "--help"], ["report", "--help"]):
        out = CliRunner().invoke(app, args).output.lower()
        assert not any(word in out for word in INTERNAL), args
