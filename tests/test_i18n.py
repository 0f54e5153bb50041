"""The translation layer: catalogs, sentence patterns, remote strings kept and escaped."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from smbsentry import i18n
from smbsentry.i18n import sentences

EVIL = "<script>alert(1)</script>"
CJK = re.compile(r"[\u4e00-\u9fff]")


def entries() -> list[dict]:
    text = resources.files("smbsentry.i18n").joinpath("data", "sentences.json").read_text("utf-8")
    return json.loads(text)["sentences"]


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e["en"][:60])
def test_every_pattern_takes_its_example_and_says_it_in_chinese(entry):
    got = i18n.translate(entry["example"], "zh")
    assert got is not None, entry["example"]
    text = sentences.plain(got)
    assert CJK.search(text) or entry["zh"] == entry["en"], text  # something was translated
    for kind, part in got:  # every value and remote string of the English is still there, as it was
        if kind in ("v", "r"):
            assert part in entry["example"]


def test_every_pattern_of_every_catalog_compiles():
    """Patterns are compiled on first use (the Chinese report reaches a fraction of them): a broken one must
    still fail here, not in a user's report."""
    patterns = i18n.translator().patterns
    assert len(patterns) > 100
    for p in patterns:
        assert isinstance(p.regex, re.Pattern), p.en
        assert p.regex is p.regex  # compiled once


def test_a_pattern_that_drops_a_value_is_refused():
    bad = [{"en": "build {build:n} answers {dialect}", "zh": "构建号 {build}", "example": "build 1 answers 3.1.1"}]
    with pytest.raises(ValueError, match="drops dialect"):
        sentences.Translator(bad, {}, ("zh",))
    with pytest.raises(ValueError, match="unknown placeholder type"):
        sentences.Translator([{"en": "x {a:zz}", "zh": "{a}"}], {}, ("zh",))


def test_english_is_never_rewritten():
    text = "SMB1 anonymous logon reached IPC$; NetShareEnum listed 2 share(s): IPC$, MP3; writable: MP3"
    assert i18n.sentence(text, "en") == text
    assert str(i18n.sentence_html(text, "en")) == text.replace("&", "&amp;")


def test_parts_joined_by_semicolons_are_translated_one_by_one():
    text = ("probe could not run: anonymous logon refused with 0xC0000022 (STATUS_ACCESS_DENIED); guest logon refused "
            "with 0xC000006D (STATUS_LOGON_FAILURE); no credentials given; to settle it: scan again with an account that "
            "can open IPC$ (--user), or audit the host's installed updates (smbsentry audit)")
    zh = i18n.sentence(text, "zh")
    assert zh.startswith("探测无法进行：匿名登录被拒绝") and "未提供凭据" in zh and "判定方法" in zh
    assert "refused" not in zh and "settle" not in zh


def test_a_remote_string_at_the_end_does_not_swallow_the_next_part():
    text = ("KDC on 88 answered KDC_ERR_WRONG_REALM for realm CORP.EXAMPLE.COM; Windows 7 SP1 / Server 2008 R2 SP1 "
            "(NT 6.1, from NTLM over RDP) domain controller")
    got = i18n.translate(text, "zh")
    remote = [p for k, p in got if k == "r"]
    assert remote == ["CORP.EXAMPLE.COM"]
    assert "域控制器" in sentences.plain(got)


def test_remote_strings_are_kept_and_escaped():
    text = f"SMB1 anonymous logon reached IPC$; NetShareEnum listed 2 share(s): IPC$, {EVIL}; writable: {EVIL}"
    html = str(i18n.sentence_html(text, "zh"))
    assert EVIL not in html and '<span class="r">IPC$, &lt;script&gt;alert(1)&lt;/script&gt;</span>' in html
    assert "可写" in html
    # a remote string holding "; " itself: the longer span is taken when the short one fails
    shares = "a; b, c"
    got = i18n.translate(f"NetShareEnum listed 3 share(s): {shares}; writable: b", "zh")
    assert got is not None and ("r", shares) in got


def test_banner_quotes_with_colons_stay_one_remote_string():
    banner = "'mail: ESMTP; Microsoft Exchange Server 2003: ready'"
    got = i18n.translate(f"banner {banner}: banner names the release", "zh")
    assert ("r", banner) in got and "欢迎信息中写明了版本" in sentences.plain(got)


def test_unknown_sentences_fall_back_to_the_english_text():
    text = f"a sentence no check writes {EVIL}"
    assert i18n.sentence(text, "zh") == text
    assert not i18n.translated(text, "zh")
    assert EVIL not in str(i18n.sentence_html(text, "zh"))


def test_hostile_input_is_bounded():
    many = "; ".join(["writable: x"] * 200)  # more parts than any check writes
    assert i18n.translate(many, "zh") is None
    assert i18n.translate("x" * 10_000, "zh") is None
    semis = "NetShareEnum listed 9 share(s): " + "; ".join("s%d" % i for i in range(20))
    assert i18n.translate(semis, "zh") is not None  # 20 parts: the remote list takes them all


def test_labels_have_both_languages():
    for group in ("status", "severity", "role", "rank", "report", "chart", "arsenal", "diff", "term"):
        en, zh = i18n.labels(group, "en"), i18n.labels(group, "zh")
        assert en.keys() == zh.keys()
        for key in ("vulnerable", "likely", "not_vulnerable", "unknown"):
            if group == "status":
                assert en[key] == key and CJK.search(zh[key])
    assert i18n.label("status", "patched", "zh") == "已修补"
    assert i18n.label("status", "some-new-status", "zh") == "some-new-status"
    with pytest.raises(ValueError):
        i18n.labels("report", "fr")


def test_jinja_filters():
    import jinja2

    env = jinja2.Environment(autoescape=True)
    i18n.install(env)
    out = env.from_string("{{ s|status(l) }} {{ v|severity(l) }} {{ e|sentence(l) }}").render(
        s="likely", v="critical", e=f"writable: {EVIL}", l="zh")
    assert out.startswith("疑似存在漏洞 严重 可写：") and EVIL not in out
