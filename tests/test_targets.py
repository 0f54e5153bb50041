"""Tests for smbsentry.discover.targets: syntax, laziness, excludes, targets files.

Nothing here opens a socket; the one resolution test only asks for 'localhost'.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import pickle
import tracemalloc
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbsentry.discover.targets import (
    Target,
    TargetError,
    TargetSet,
    TargetSpec,
    load_targets_file,
    parse_spec,
    resolve,
)


def addresses(iterable):
    return [t.address for t in iterable]


# --- token syntax ---------------------------------------------------------------

def test_single_ipv4():
    spec = parse_spec("10.0.0.5")
    assert spec.count == 1
    assert list(spec) == [Target("10.0.0.5")]


def test_single_ipv6_is_normalised():
    assert addresses(parse_spec("2001:DB8:0:0::5")) == ["2001:db8::5"]


def test_cidr_drops_network_and_broadcast():
    spec = parse_spec("192.168.1.0/29")
    assert spec.count == 6
    assert addresses(spec) == [f"192.168.1.{i}" for i in range(1, 7)]
    assert addresses(spec) == [str(a) for a in ipaddress.ip_network("192.168.1.0/29").hosts()]


@pytest.mark.parametrize("token, expected", [
    ("10.0.0.0/31", ["10.0.0.0", "10.0.0.1"]),
    ("10.0.0.9/32", ["10.0.0.9"]),
])
def test_cidr_31_and_32_give_every_address(token, expected):
    assert addresses(parse_spec(token)) == expected


def test_cidr_with_host_bits_set_is_accepted():
    assert addresses(parse_spec("10.1.2.3/30")) == ["10.1.2.1", "10.1.2.2"]


def test_cidr_netmask_form():
    assert parse_spec("10.0.0.0/255.255.255.0").count == 254


def test_ipv6_cidr_gives_every_address():
    assert addresses(parse_spec("2001:db8::/126")) == [
        "2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"]


def test_large_ipv6_cidr_is_lazy():
    spec = parse_spec("2001:db8::/104")
    assert spec.count == 2 ** 24
    assert addresses(itertools.islice(spec, 2)) == ["2001:db8::", "2001:db8::1"]


@pytest.mark.parametrize("token", ["2001:db8::/32", "10.0.0.0/0", "10.0.0.0/7", "0.0.0.0-255.255.255.255"])
def test_a_target_larger_than_a_slash_8_is_refused_with_its_size(token):
    """A prefix typo (/0 for /16) must not become a sweep of the Internet."""
    with pytest.raises(TargetError, match=r"covers [\d,]+ addresses; one target may cover at most 16,777,216"):
        parse_spec(token)
    assert parse_spec("10.0.0.0/8").count == 2 ** 24 - 2  # a /8 is still one target


def test_full_range_crosses_octets():
    spec = parse_spec("10.0.0.254-10.0.1.1")
    assert spec.count == 4
    assert addresses(spec) == ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]


def test_short_range():
    spec = parse_spec("10.0.0.1-5")
    assert addresses(spec) == [f"10.0.0.{i}" for i in range(1, 6)]


def test_single_address_range():
    assert addresses(parse_spec("10.0.0.7-7")) == ["10.0.0.7"]


def test_ipv6_range():
    assert addresses(parse_spec("2001:db8::fe-2001:db8::101")) == [
        "2001:db8::fe", "2001:db8::ff", "2001:db8::100", "2001:db8::101"]


@pytest.mark.parametrize("name", ["filesrv1", "FILESRV1.testlab.local", "dc-01.corp.example.",
                                  "my_host.example", "10-20.example.com", "xn--bcher-kva.example"])
def test_host_names_are_kept_for_later_resolution(name):
    spec = parse_spec(name)
    assert spec.version is None and spec.count == 1
    assert list(spec) == [Target(None, hostname=name)]


def test_surrounding_whitespace_is_ignored():
    assert parse_spec("  10.0.0.1 \n").token == "10.0.0.1"


# --- bad tokens -------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    "10.0.0.300",
    "1.2.3",
    "010.0.0.1",
    "x..y",
    "10.0.0.1-300",
    "10.0.0.300-5",
    "10.0.0.5-1",
    "10.0.1.0-10.0.0.255",
    "10.0.0.1-::1",
    "2001:db8::1-10.0.0.1",
    "2001:db8::1-ff",
    "2001:db8::5-2001:db8::1",
    "10.0.0.1-",
    "10.0.0.0/33",
    "10.0.0.0/",
    "2001:db8::/129",
    "host/24",
    "2001:db8::g",
    "fe80::1%eth0",
    "host:445",
    "-leading-hyphen",
    "trailing-.example",
    "sérveur",
    "a" * 64 + ".example",
    "host.123",
    "under score",
    "",
])
def test_bad_tokens_name_the_token(token):
    with pytest.raises(TargetError) as info:
        parse_spec(token)
    message = str(info.value)
    assert message.startswith(f"bad target {token!r}: ")
    assert "\n" not in message
    assert info.value.token == token
    assert isinstance(info.value, ValueError)


def test_bad_octet_reason_is_specific():
    with pytest.raises(TargetError, match=r"^bad target '10\.0\.0\.300': .*300"):
        parse_spec("10.0.0.300")


def test_range_reasons():
    with pytest.raises(TargetError, match="before its start"):
        parse_spec("10.0.0.5-1")
    with pytest.raises(TargetError, match="mixes IPv4 and IPv6"):
        parse_spec("10.0.0.1-::1")


def test_target_error_is_picklable():
    err = pickle.loads(pickle.dumps(TargetError("x..y", "why", "f.txt:3")))
    assert str(err) == "f.txt:3: bad target 'x..y': why"


def test_targetset_validates_every_token_up_front():
    with pytest.raises(TargetError, match="'10.0.0.300'"):
        TargetSet(["10.0.0.0/8", "10.0.0.300"])      # fails before anything is expanded
    with pytest.raises(TargetError, match="'nope..'"):
        TargetSet(["10.0.0.1"], excludes=["nope.."])


def test_host_names_are_refused_as_excludes():
    with pytest.raises(TargetError, match="'filesrv1'.*cannot be excluded"):
        TargetSet(["10.0.0.0/24"], excludes=["filesrv1"])


def test_missing_targets_file_fails_up_front(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(TargetError, match="nope.txt: cannot read targets file"):
        TargetSet(files=[missing])


# --- laziness and memory ----------------------------------------------------------

def test_slash8_starts_at_once_and_holds_no_list():
    spec = parse_spec("10.0.0.0/8")
    assert spec.count == 2 ** 24 - 2
    for value in (getattr(spec, f) for f in spec.__slots__):
        assert not isinstance(value, (list, tuple, set, frozenset, dict))
    it = iter(spec)
    assert isinstance(it, types.GeneratorType)
    assert addresses(itertools.islice(it, 10)) == [f"10.0.0.{i}" for i in range(1, 11)]

    targets = TargetSet(["10.0.0.0/8"], excludes=["10.0.0.0/16"])
    it = iter(targets)
    assert isinstance(it, types.GeneratorType)
    assert addresses(itertools.islice(it, 3)) == ["10.1.0.0", "10.1.0.1", "10.1.0.2"]


def test_slash16_expands_completely():
    got = addresses(TargetSet(["172.16.0.0/16"]))
    assert len(got) == 65534
    assert got[0] == "172.16.0.1" and got[-1] == "172.16.255.254"


def test_expanding_a_slash12_keeps_memory_small():
    targets = TargetSet(["10.16.0.0/12"], excludes=["10.17.0.0/16", "10.20.5.5"])
    tracemalloc.start()
    try:
        count = sum(1 for _ in targets)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 2 ** 20 - 2 - 65536 - 1
    assert peak < 5 * 1024 * 1024


# --- excludes ---------------------------------------------------------------------

def test_exclude_a_slash16_from_a_slash8_is_cheap():
    targets = TargetSet(["10.0.0.0/8"], excludes=["10.0.0.0/16"])
    assert targets.estimated_count == 2 ** 24 - 2 - (2 ** 16 - 1)
    assert addresses(itertools.islice(targets, 1)) == ["10.1.0.0"]


def test_exclude_overlapping_start_and_end():
    targets = TargetSet(["10.0.0.10-20"], excludes=["10.0.0.5-12", "10.0.0.18-10.0.0.30"])
    assert addresses(targets) == [f"10.0.0.{i}" for i in range(13, 18)]
    assert targets.estimated_count == 5


def test_exclude_everything():
    targets = TargetSet(["10.0.0.0/24"], excludes=["10.0.0.0/23"])
    assert list(targets) == []
    assert targets.estimated_count == 0


def test_exclude_inside_and_adjacent_excludes_merge():
    targets = TargetSet(["10.0.0.1-10"],
                        excludes=["10.0.0.3", "10.0.0.4-5", "10.0.0.5-6", "10.0.0.9"])
    assert addresses(targets) == ["10.0.0.1", "10.0.0.2", "10.0.0.7", "10.0.0.8", "10.0.0.10"]
    assert targets.estimated_count == 5


def test_exclude_cidr_covers_network_and_broadcast():
    targets = TargetSet(["10.0.0.0-10.0.2.255"], excludes=["10.0.1.0/24"])
    got = addresses(targets)
    assert "10.0.0.255" in got and "10.0.2.0" in got
    assert not any(a.startswith("10.0.1.") for a in got)


def test_excludes_are_per_family():
    targets = TargetSet(["2001:db8::/126", "10.0.0.1-3"], excludes=["2001:db8::1", "10.0.0.2"])
    assert addresses(targets) == ["2001:db8::", "2001:db8::2", "2001:db8::3",
                                  "10.0.0.1", "10.0.0.3"]


def test_is_excluded_for_resolved_host_names():
    targets = TargetSet(["filesrv1"], excludes=["10.0.0.0/24", "::1"])
    assert list(targets) == [Target(None, "filesrv1")]
    assert targets.is_excluded("10.0.0.77")
    assert targets.is_excluded("0:0::1")
    assert not targets.is_excluded("10.0.1.1")
    assert not targets.is_excluded("not-an-address")


def test_tokens_split_on_commas_and_order_is_kept_each_address_once():
    targets = TargetSet(["10.0.0.2,10.0.0.1", "10.0.0.1-3"], excludes=["10.9.9.9,10.9.9.8"])
    assert addresses(targets) == ["10.0.0.2", "10.0.0.1", "10.0.0.3"]
    assert targets.estimated_count == 3


def test_estimated_count_unknown_with_files(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("10.0.0.1\n")
    assert TargetSet(["10.0.0.0/30"], files=[f]).estimated_count is None
    assert TargetSet(["10.0.0.0/30", "host"]).estimated_count == 3


ipv4_ints = st.integers(min_value=0, max_value=2 ** 32 - 1)


@settings(max_examples=200, deadline=None)
@given(start=ipv4_ints, length=st.integers(0, 600), cut=st.tuples(st.integers(-50, 650),
                                                                  st.integers(0, 300)))
def test_property_range_count_and_exclusion(start, length, cut):
    end = min(start + length, 2 ** 32 - 1)
    a, b = ipaddress.IPv4Address(start), ipaddress.IPv4Address(end)
    spec = parse_spec(f"{a}-{b}")
    got = addresses(spec)
    assert spec.count == len(got) == end - start + 1
    assert got == [str(ipaddress.IPv4Address(n)) for n in range(start, end + 1)]

    lo = min(max(start + cut[0], 0), 2 ** 32 - 1)
    hi = min(lo + cut[1], 2 ** 32 - 1)
    excluded = {str(ipaddress.IPv4Address(n)) for n in range(lo, hi + 1)}
    targets = TargetSet([f"{a}-{b}"],
                        excludes=[f"{ipaddress.IPv4Address(lo)}-{ipaddress.IPv4Address(hi)}"])
    remaining = addresses(targets)
    assert remaining == [x for x in got if x not in excluded]
    assert targets.estimated_count == len(remaining)


@settings(max_examples=100, deadline=None)
@given(prefix=st.integers(20, 32), base=ipv4_ints)
def test_property_cidr_matches_ipaddress_hosts(prefix, base):
    net = ipaddress.IPv4Network((base, prefix), strict=False)
    spec = parse_spec(f"{ipaddress.IPv4Address(base)}/{prefix}")
    expected = [str(h) for h in net.hosts()]
    assert addresses(spec) == expected
    assert spec.count == len(expected)


# --- plain targets files ----------------------------------------------------------

def test_plain_file_with_comments_and_several_tokens_per_line(tmp_path):
    f = tmp_path / "targets.txt"
    f.write_text("# office network\n"
                 "\n"
                 "10.0.0.1 10.0.0.2,10.0.0.3   # three hosts\n"
                 "   \n"
                 "10.0.1.0/30\n"
                 "filesrv1.testlab.local\r\n"
                 "2001:db8::1-2001:db8::2\n"
                 "10.0.2.1-2")                          # no final newline
    assert [t.address or t.hostname for t in load_targets_file(f)] == [
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.1", "10.0.1.2",
        "filesrv1.testlab.local", "2001:db8::1", "2001:db8::2", "10.0.2.1", "10.0.2.2"]


def test_plain_file_error_names_file_and_line(tmp_path):
    f = tmp_path / "targets.txt"
    f.write_text("10.0.0.1\n" * 11 + "x..y\n")
    it = load_targets_file(f)
    assert len(addresses(itertools.islice(it, 11))) == 11    # streams before the bad line
    with pytest.raises(TargetError) as info:
        next(it)
    assert str(info.value).startswith(f"{f}:12: bad target 'x..y': ")


def test_plain_file_with_bom_and_excludes(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"\xef\xbb\xbf10.0.0.0/29\n10.0.0.3\n")
    targets = TargetSet(files=[f], excludes=["10.0.0.2-4"])
    assert addresses(targets) == ["10.0.0.1", "10.0.0.5", "10.0.0.6"]


def test_empty_file(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("\n\n   \n")
    assert list(load_targets_file(f)) == []


# --- nmap XML ---------------------------------------------------------------------

NMAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="file:///usr/bin/../share/nmap/nmap.xsl" type="text/xsl"?>
<!-- Nmap 7.94SVN scan initiated Mon Mar  4 10:12:01 2024 as: nmap -p139,445 -oX scan.xml 10.0.0.0/29 -->
<nmaprun scanner="nmap" args="nmap -p139,445 -oX scan.xml 10.0.0.0/29" start="1709547121" startstr="Mon Mar  4 10:12:01 2024" version="7.94SVN" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="2" services="139,445"/>
<verbose level="0"/>
<debugging level="0"/>
<hosthint><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="10.0.0.5" addrtype="ipv4"/>
<address addr="52:54:00:12:34:56" addrtype="mac" vendor="QEMU virtual NIC"/>
<hostnames>
</hostnames>
</hosthint>
<host starttime="1709547121" endtime="1709547122"><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="10.0.0.5" addrtype="ipv4"/>
<address addr="52:54:00:12:34:56" addrtype="mac" vendor="QEMU virtual NIC"/>
<hostnames>
<hostname name="filesrv1.testlab.local" type="PTR"/>
</hostnames>
<ports><port protocol="tcp" portid="139"><state state="closed" reason="reset" reason_ttl="128"/><service name="netbios-ssn" method="table" conf="3"/></port>
<port protocol="tcp" portid="445"><state state="open" reason="syn-ack" reason_ttl="128"/><service name="microsoft-ds" method="table" conf="3"/></port>
</ports>
<times srtt="312" rttvar="3764" to="100000"/>
</host>
<host starttime="1709547121" endtime="1709547122"><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="10.0.0.6" addrtype="ipv4"/>
<hostnames>
</hostnames>
<ports><port protocol="tcp" portid="139"><state state="closed" reason="reset" reason_ttl="64"/><service name="netbios-ssn" method="table" conf="3"/></port>
<port protocol="tcp" portid="445"><state state="closed" reason="reset" reason_ttl="64"/><service name="microsoft-ds" method="table" conf="3"/></port>
</ports>
<times srtt="220" rttvar="3764" to="100000"/>
</host>
<host starttime="1709547121" endtime="1709547122"><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="10.0.0.7" addrtype="ipv4"/>
<hostnames>
</hostnames>
<ports><port protocol="tcp" portid="139"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="netbios-ssn" method="table" conf="3"/></port>
<port protocol="tcp" portid="445"><state state="filtered" reason="no-response" reason_ttl="0"/><service name="microsoft-ds" method="table" conf="3"/></port>
</ports>
<times srtt="198" rttvar="3764" to="100000"/>
</host>
<host starttime="1709547121" endtime="1709547122"><status state="up" reason="echo-reply" reason_ttl="64"/>
<address addr="2001:db8::10" addrtype="ipv6"/>
<hostnames>
</hostnames>
<ports><port protocol="udp" portid="445"><state state="open" reason="udp-response" reason_ttl="64"/></port>
<port protocol="tcp" portid="4445"><state state="open" reason="syn-ack" reason_ttl="64"/></port>
</ports>
</host>
<runstats><finished time="1709547122" timestr="Mon Mar  4 10:12:02 2024" summary="Nmap done at Mon Mar  4 10:12:02 2024; 8 IP addresses (4 hosts up) scanned in 1.21 seconds" elapsed="1.21" exit="success"/><hosts up="4" down="4" total="8"/>
</runstats>
</nmaprun>
"""


def test_nmap_xml_open_smb_ports_become_targets(tmp_path):
    f = tmp_path / "scan.out"            # the name says nothing: the format is sniffed
    f.write_text(NMAP_XML)
    assert list(load_targets_file(f)) == [
        Target("10.0.0.5", "filesrv1.testlab.local", frozenset({445})),
        Target("10.0.0.7", None, frozenset({139})),
    ]


def test_nmap_xml_respects_excludes(tmp_path):
    f = tmp_path / "scan.xml"
    f.write_text(NMAP_XML)
    targets = TargetSet(files=[f], excludes=["10.0.0.5"])
    assert addresses(targets) == ["10.0.0.7"]


def test_nmap_xml_streams_in_small_chunks(tmp_path, monkeypatch):
    import smbsentry.discover.targets as mod
    monkeypatch.setattr(mod, "_CHUNK", 7)
    f = tmp_path / "scan.xml"
    f.write_text(NMAP_XML)
    assert addresses(load_targets_file(f)) == ["10.0.0.5", "10.0.0.7"]


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE nmaprun [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<nmaprun><host><address addr="&lol3;" addrtype="ipv4"/></host></nmaprun>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE nmaprun SYSTEM "file:///etc/passwd">
<nmaprun><host><address addr="&xxe;" addrtype="ipv4"/></host></nmaprun>
"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_xml_entity_attacks_are_refused(tmp_path, document):
    f = tmp_path / "evil.xml"
    f.write_text(document)
    with pytest.raises(TargetError, match=r"evil\.xml:2: .*refused"):
        list(load_targets_file(f))


def test_xml_undefined_entity_and_bad_xml(tmp_path):
    f = tmp_path / "bad.xml"
    f.write_text('<nmaprun>\n<host>&xxe;</host></nmaprun>')
    with pytest.raises(TargetError, match=r"bad\.xml:2: not well-formed XML"):
        list(load_targets_file(f))
    f.write_text('<nmaprun>\n<host>\n')
    with pytest.raises(TargetError, match=r"bad\.xml:\d+: not well-formed XML"):
        list(load_targets_file(f))


def test_xml_that_is_not_nmap(tmp_path):
    f = tmp_path / "other.xml"
    f.write_text('<?xml version="1.0"?>\n<svg/>')
    with pytest.raises(TargetError, match="not nmap's <nmaprun>"):
        list(load_targets_file(f))


def test_nmap_bad_address_is_reported_with_line(tmp_path):
    f = tmp_path / "scan.xml"
    f.write_text('<nmaprun>\n<host>\n<address addr="10.0.0.300" addrtype="ipv4"/>\n'
                 '<ports><port protocol="tcp" portid="445"><state state="open"/></port></ports>'
                 '</host></nmaprun>')
    with pytest.raises(TargetError, match=r"scan\.xml:3: bad target '10\.0\.0\.300'"):
        list(load_targets_file(f))


# --- masscan JSON -----------------------------------------------------------------

MASSCAN_LIST = """[
{   "ip": "10.0.0.5",   "timestamp": "1709547121", "ports": [ {"port": 445, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 128} ] },
{   "ip": "10.0.0.5",   "timestamp": "1709547121", "ports": [ {"port": 139, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 128} ] },
{   "ip": "10.0.0.6",   "timestamp": "1709547122", "ports": [ {"port": 80, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] },
{   "ip": "10.0.0.7",   "timestamp": "1709547122", "ports": [ {"port": 139, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] },
{   "ip": "2001:db8::10",   "timestamp": "1709547123", "ports": [ {"port": 445, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] }%s
]
"""

EXPECTED_MASSCAN = [
    Target("10.0.0.5", None, frozenset({445, 139})),
    Target("10.0.0.7", None, frozenset({139})),
    Target("2001:db8::10", None, frozenset({445})),
]


@pytest.mark.parametrize("trailer", ["", ",", ",\n{finished: 1}"])
def test_masscan_json_list_with_and_without_trailing_comma(tmp_path, trailer):
    f = tmp_path / "masscan.json"
    f.write_text(MASSCAN_LIST % trailer)
    assert list(load_targets_file(f)) == EXPECTED_MASSCAN


def masscan_record(ip: str, port: int = 445) -> str:
    """One record the way masscan -oJ writes it, as a single line."""
    return (f'{{"ip": "{ip}", "timestamp": "1709547121", "ports": '
            f'[{{"port": {port}, "proto": "tcp", "status": "open"}}]}}')


def test_masscan_line_per_object(tmp_path):
    f = tmp_path / "masscan.ndjson"
    status_record = ('{"ip": "10.0.0.7", "timestamp": "1709547122", "port": 139, '
                     '"proto": "tcp", "rec_type": "status", '
                     '"data": {"status": "open", "reason": "syn-ack", "ttl": 64}}')
    banner_record = ('{"ip": "10.0.0.8", "timestamp": "1709547122", "port": 445, '
                     '"proto": "tcp", "rec_type": "banner", "data": {"service_name": "smb"}}')
    f.write_text("\n".join([masscan_record("10.0.0.5"), masscan_record("10.0.0.5", 139),
                            status_record, banner_record,
                            masscan_record("2001:db8::10")]) + "\n")
    assert list(load_targets_file(f)) == EXPECTED_MASSCAN


def test_masscan_pretty_printed_and_chunked(tmp_path, monkeypatch):
    import json

    import smbsentry.discover.targets as mod
    monkeypatch.setattr(mod, "_CHUNK", 5)
    records = [{"ip": "10.0.0.5", "ports": [{"port": 445, "proto": "tcp", "status": "open"},
                                            {"port": 139, "proto": "tcp", "status": "open"}]},
               {"ip": "10.0.0.7", "ports": [{"port": 139, "proto": "tcp", "status": "open"}]},
               {"ip": "2001:db8::10", "ports": [{"port": 445, "proto": "tcp", "status": "open"}]}]
    f = tmp_path / "m.json"
    f.write_text(json.dumps(records, indent=2))
    assert list(load_targets_file(f)) == EXPECTED_MASSCAN


def test_masscan_errors_carry_line(tmp_path):
    f = tmp_path / "m.json"
    f.write_text("[\n" + ",\n".join(masscan_record(ip) for ip in
                                     ("10.0.0.5", "10.0.0.6", "10.0.0.999")) + ",\n]")
    it = load_targets_file(f)
    assert next(it).address == "10.0.0.5"
    with pytest.raises(TargetError, match=r"m\.json:4: bad target '10\.0\.0\.999': .*999"):
        next(it)
    # Adjacent records of one address are merged, so a target is yielded only once the
    # next address is read: here the bad second line is reported before the first target.
    f.write_text(masscan_record("10.0.0.5") + "\n" + masscan_record("10.0.0.999") + "\n")
    it = load_targets_file(f)
    with pytest.raises(TargetError, match=r"m\.json:2: bad target '10\.0\.0\.999'"):
        next(it)
    f.write_text('[\n{"ip": "10.0.0.5", "ports": [}\n]')
    with pytest.raises(TargetError, match=r"m\.json:2: not valid masscan JSON"):
        list(load_targets_file(f))
    f.write_text('[\n"10.0.0.5"\n]')
    with pytest.raises(TargetError, match=r"m\.json:2: not masscan JSON"):
        list(load_targets_file(f))


def test_masscan_respects_excludes(tmp_path):
    f = tmp_path / "m.json"
    f.write_text(MASSCAN_LIST % "")
    targets = TargetSet(["10.0.0.1"], files=[f], excludes=["10.0.0.0/29"])
    assert addresses(targets) == ["2001:db8::10"]


# --- resolution -------------------------------------------------------------------

def test_resolve_keeps_addressed_targets():
    target = Target("10.0.0.1", open_ports=frozenset({445}))
    assert asyncio.run(resolve(target)) == [target]


def test_resolve_localhost_only():
    resolved = asyncio.run(resolve(Target(None, "localhost")))
    assert resolved
    assert all(t.hostname == "localhost" for t in resolved)
    assert all(ipaddress.ip_address(t.address.split("%")[0]).is_loopback for t in resolved)


def test_spec_is_a_small_value():
    spec = parse_spec("10.0.0.0/30")
    assert spec == TargetSpec("10.0.0.0/30", 4, 0x0A000001, 0x0A000002)
    assert hash(spec) == hash(parse_spec("10.0.0.0/30"))


# --- service ports (--checks all, or asked in --ports) ----------------------------

NMAP_SERVICES = """<?xml version="1.0"?>
<nmaprun>
<host><address addr="10.0.0.1" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="3389"><state state="open"/></port></ports></host>
<host><address addr="10.0.0.2" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="445"><state state="open"/></port>
<port protocol="tcp" portid="80"><state state="open"/></port></ports></host>
<host><address addr="10.0.0.3" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="22"><state state="open"/></port></ports></host>
</nmaprun>
"""


def test_nmap_hosts_with_wanted_service_ports(tmp_path):
    f = tmp_path / "scan.xml"
    f.write_text(NMAP_SERVICES)
    assert list(TargetSet(files=[f])) == [Target("10.0.0.2", None, frozenset({445}))]
    wanted = {445, 139, 3389, 80}
    assert list(TargetSet(files=[f], ports=wanted)) == [
        Target("10.0.0.1", None, frozenset({3389})), Target("10.0.0.2", None, frozenset({445, 80}))]


def test_masscan_hosts_with_wanted_service_ports(tmp_path):
    f = tmp_path / "masscan.json"
    f.write_text(MASSCAN_LIST % "")
    got = list(TargetSet(files=[f], ports={445, 139, 80}))
    assert Target("10.0.0.6", None, frozenset({80})) in got and len(got) == 4


def test_an_address_two_tokens_cover_is_scanned_once():
    """10.0.0.5 10.0.0.0/24: once, in the first token's place; overlapping ranges, a range given twice, excludes
    still honoured; the count for the progress bar agrees with what is yielded."""
    ts = TargetSet(["10.0.0.5", "10.0.0.0/29", "10.0.0.4-10", "10.0.0.5", "10.0.0.200"], excludes=["10.0.0.7"])
    got = [t.address for t in ts]
    # (a /29 leaves out its network and broadcast addresses, .0 and .7)
    assert got == ["10.0.0.5", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6",
                   "10.0.0.8", "10.0.0.9", "10.0.0.10", "10.0.0.200"]
    assert ts.estimated_count == len(got)
    # discovery sweeps the ranges; the other targets skip what a swept range covers
    rest = [t.address for t in ts.without_ipv4_ranges()]
    assert rest == ["10.0.0.200"]


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), min_size=1, max_size=12),
       st.lists(st.integers(0, 70), max_size=4))
def test_each_covered_address_is_yielded_exactly_once(blocks, excluded):
    tokens = [f"10.1.0.{lo}-{lo + n}" if n else f"10.1.0.{lo}" for lo, n in blocks]
    ts = TargetSet(tokens, excludes=[f"10.1.0.{e}" for e in excluded])
    got = [t.address for t in ts]
    want = {f"10.1.0.{a}" for lo, n in blocks for a in range(lo, lo + n + 1)} - {f"10.1.0.{e}" for e in excluded}
    assert len(got) == len(set(got)) and set(got) == want and ts.estimated_count == len(got)
