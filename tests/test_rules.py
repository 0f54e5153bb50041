"""`smbsentry rules`: every export format, priorities, deny-overrides, fixes, and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from smbsentry.rules import RulesError, main_rules, read, scan_files

DATA = Path(__file__).parent / "data" / "rules"
FIELDS = ["source", "platform", "container", "rule", "protocol", "port", "exposed_to", "severity", "fix"]


def exp(name: str, ports: str | None = None, threshold: int = 8) -> list[dict]:
    return [e.as_dict() for e in scan_files([str(DATA / name)], ports, threshold)]


def keyset(rows) -> set[tuple]:
    return {(r["protocol"], r["port"], r["exposed_to"]) for r in rows}


def one(rows, proto, port, src) -> dict:
    got = [r for r in rows if (r["protocol"], r["port"], r["exposed_to"]) == (proto, port, src)]
    assert len(got) == 1, got
    return got[0]


@pytest.mark.parametrize("name", ["aws-clean.json", "azure-clean.json", "iptables-clean.txt", "nft-clean.txt"])
def test_clean_configurations_yield_nothing(name):
    assert exp(name) == []


def test_aws_ranges_all_protocol_ipv6_and_exact_revoke():
    rows = exp("aws-sg.json")
    assert all(list(r) == FIELDS for r in rows)
    r = one([x for x in rows if x["container"] == "sg-0a1b2c3d4e5f60718"], "tcp", 445, "0.0.0.0/0")
    assert r == {"source": str(DATA / "aws-sg.json"), "platform": "aws", "container": "sg-0a1b2c3d4e5f60718",
                 "rule": "tcp/445 from 0.0.0.0/0", "protocol": "tcp", "port": 445, "exposed_to": "0.0.0.0/0",
                 "severity": "critical",
                 "fix": "aws ec2 revoke-security-group-ingress --group-id sg-0a1b2c3d4e5f60718 --protocol tcp --port 445 --cidr 0.0.0.0/0"}
    v6 = one([x for x in rows if x["container"] == "sg-0a1b2c3d4e5f60718"], "tcp", 3389, "::/0")
    assert v6["rule"] == "tcp/0-65535 from ::/0" and "Ipv6Ranges=[{CidrIpv6=::/0}]" in v6["fix"]
    legacy = [x for x in rows if x["container"] == "sg-0123456789abcdef0"]
    assert keyset(legacy) == {("tcp", 135, "0.0.0.0/0"), ("tcp", 139, "0.0.0.0/0"), ("tcp", 445, "0.0.0.0/0"),
                              ("tcp", 3389, "0.0.0.0/0"), ("udp", 137, "0.0.0.0/0"), ("udp", 138, "0.0.0.0/0")}
    assert all(x["fix"].endswith("--protocol all --cidr 0.0.0.0/0") for x in legacy)
    # the group-reference rule (UserIdGroupPairs) and port 22 never show up
    assert not any("22" == str(x["port"]) for x in rows)


def test_aliyun_priority_and_drop_wins_ties():
    rows = exp("aliyun-sg.json")
    # Drop 445 and Accept ALL share priority 1: Drop wins, so 445 is closed
    assert not any(r["port"] == 445 for r in rows)
    # Drop 3389 at priority 50 comes after Accept ALL at priority 1: still open
    r = one(rows, "tcp", 3389, "0.0.0.0/0")
    assert r["rule"] == "Accept ALL/-1/-1 from 0.0.0.0/0 priority 1" and r["severity"] == "high"
    assert r["fix"] == ("aliyun ecs RevokeSecurityGroup --RegionId cn-hangzhou --SecurityGroupId sg-bp67acfmxazb4p****"
                        " --IpProtocol ALL --PortRange -1/-1 --SourceCidrIp 0.0.0.0/0 --Policy Accept --Priority 1"
                        " --NicType intranet")
    v6 = one(rows, "tcp", 139, "::/0")
    assert "--Ipv6SourceCidrIp ::/0" in v6["fix"] and "--PortRange 130/140" in v6["fix"]
    assert ("udp", 137, "0.0.0.0/0") in keyset(rows)


def test_azure_priority_order_tags_and_fix_style():
    rows = exp("azure-nsg.json")
    # Deny Internet 445 at 100 beats Allow * 440-450 at 200
    assert not any(r["port"] == 445 for r in rows)
    r = one(rows, "tcp", 139, "*")
    assert r["rule"].startswith("Allow-Any-Wide (priority 200") and r["severity"] == "critical"
    # a broad rule gets a higher-priority Deny rather than a delete
    assert r["fix"].startswith("az network nsg rule create --resource-group rg-files --nsg-name nsg-files")
    assert "--priority 199 --direction Inbound --access Deny --protocol Tcp --destination-port-ranges 139" in r["fix"]
    # a narrow rule is deleted
    v6 = one(rows, "tcp", 3389, "::/0")
    assert v6["fix"] == "az network nsg rule delete --resource-group rg-files --nsg-name nsg-files --name Allow-RDP-v6"
    # 135: the Any-wide rule (200) wins; Deny-RPC (330) hides Allow-RPC-Late (400)
    assert [x["rule"].split()[0] for x in rows if x["port"] == 135] == ["Allow-Any-Wide"]
    # default rules (VirtualNetwork, AzureLoadBalancer) never count as wide
    assert not any("AllowVnetInBound" in x["rule"] for x in rows)


def test_iptables_first_match_jumps_multiport_and_policy():
    rows = exp("iptables-save.txt")
    inp = [r for r in rows if r["container"] == "filter/INPUT"]
    fwd = [r for r in rows if r["container"] == "filter/FORWARD"]
    r = one(inp, "tcp", 445, "0.0.0.0/0")
    assert r["rule"] == "-A SAMBA -p tcp -j ACCEPT" and r["fix"] == "iptables -I INPUT -p tcp --dport 445 -j DROP"
    # 135 is REJECTed in SAMBA before the catch-all accept; 3389 only from a /24
    assert ("tcp", 135, "0.0.0.0/0") not in keyset(inp) and not any(x["port"] == 3389 for x in inp)
    assert one(inp, "tcp", 445, "10.0.0.0/8")["severity"] == "medium"
    assert one(inp, "udp", 138, "0.0.0.0/0")["rule"] == "-A INPUT -p udp -m udp --dport 137:138 -j ACCEPT"
    # FORWARD drops 139/445 explicitly, the ACCEPT policy lets the rest through
    assert keyset(fwd) == {("tcp", 135, "0.0.0.0/0"), ("tcp", 3389, "0.0.0.0/0"),
                           ("udp", 137, "0.0.0.0/0"), ("udp", 138, "0.0.0.0/0")}
    assert fwd[0]["rule"] == ":FORWARD ACCEPT (chain policy)"


def test_ip6tables_family_and_link_local_not_wide():
    rows = exp("ip6tables-save.txt")
    assert [(r["platform"], r["port"], r["exposed_to"], r["fix"]) for r in rows] == [
        ("ip6tables", 3389, "::/0", "ip6tables -I INPUT -p tcp --dport 3389 -j DROP")]


def test_nft_sets_jumps_ranges_and_policies():
    rows = exp("nft-ruleset.txt")
    inp = [r for r in rows if r["container"] == "inet filter input"]
    fwd = [r for r in rows if r["container"] == "inet filter forward"]
    assert one(inp, "tcp", 445, "0.0.0.0/0")["rule"] == "chain input: tcp dport @smb_ports accept"
    assert one(inp, "tcp", 445, "::/0")["fix"] == "nft insert rule inet filter input tcp dport 445 drop"
    # the netbios chain drops IPv6 and accepts the rest
    assert ("udp", 137, "0.0.0.0/0") in keyset(inp) and ("udp", 137, "::/0") not in keyset(inp)
    assert one(inp, "udp", 137, "0.0.0.0/0")["rule"] == "chain netbios: accept"
    assert one(inp, "tcp", 3389, "10.0.0.0/8")["fix"] == \
        "nft insert rule inet filter input ip saddr 10.0.0.0/8 tcp dport 3389 drop"
    # forward: 135 dropped before the 130-140 accept; 445 through the accept policy
    assert ("tcp", 135, "0.0.0.0/0") not in keyset(fwd)
    assert one(fwd, "tcp", 139, "0.0.0.0/0")["rule"] == "chain forward: tcp dport 130-140 accept"
    assert one(fwd, "tcp", 445, "0.0.0.0/0")["rule"] == "chain forward policy accept"
    # output and nat chains are not inbound
    assert {r["container"] for r in rows} == {"inet filter input", "inet filter forward"}


def test_windows_csv_block_overrides_allow():
    rows = exp("winfw.csv")
    r = one(rows, "tcp", 445, "Any")
    assert r["platform"] == "windows" and r["severity"] == "critical"
    assert r["fix"] == ("New-NetFirewallRule -DisplayName 'smbsentry block TCP 445' -Direction Inbound"
                        " -Protocol TCP -LocalPort 445 -Action Block")
    # RDP allow Any is overridden by the Internet block rule; so is the vendor IPv6 /12
    assert not any(x["port"] == 3389 for x in rows)
    # RPC-EPMap means 135; 0.0.0.0-255.255.255.255 is 0.0.0.0/0
    assert one(rows, "tcp", 135, "0.0.0.0/0")["rule"].startswith("RPC Endpoint Mapper")
    # LocalSubnet is not wide, disabled and outbound rules do not count
    assert ("tcp", 139, "Any") not in keyset(rows) and ("udp", 138, "Any") not in keyset(rows)
    assert one(rows, "udp", 137, "Any")["rule"].startswith("File and Printer Sharing (NB-Name-In)")


def test_windows_json_numeric_enums_arrays_and_masks():
    rows = exp("winfw.json")
    assert keyset(rows) == {("tcp", 135, "1.0.0.0/8"), ("tcp", 135, "10.0.0.0/8")}
    assert one(rows, "tcp", 135, "1.0.0.0/8")["severity"] == "high"
    assert one(rows, "tcp", 135, "10.0.0.0/8")["severity"] == "medium"
    assert "-RemoteAddress 1.0.0.0/8" in one(rows, "tcp", 135, "1.0.0.0/8")["fix"]


@pytest.mark.parametrize("name", ["netsh-en.txt", "netsh-zh.gbk.txt", "netsh-zh.utf8.txt"])
def test_netsh_text_english_and_chinese(name):
    rows = exp(name)
    assert keyset(rows) == {("tcp", 445, "Any")}
    assert rows[0]["fix"] == ('netsh advfirewall firewall add rule name="smbsentry block TCP 445" dir=in'
                              ' action=block protocol=TCP localport=445')


def test_netsh_chinese_utf16_and_crlf(tmp_path):
    text = (DATA / "netsh-zh.utf8.txt").read_text(encoding="utf-8").replace("\n", "\r\n")
    p = tmp_path / "fw.txt"
    p.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    assert keyset(exp(str(p))) == {("tcp", 445, "Any")}


def test_ports_option_shadow_brokers_and_single(tmp_path):
    rows = exp("aws-sg.json", "shadowbrokers")
    legacy = {r["port"] for r in rows if r["container"] == "sg-0123456789abcdef0"}
    assert legacy == {25, 80, 88, 143, 1000, 3000, 3264}
    assert {r["port"] for r in exp("aws-sg.json", "445")} == {445}
    assert {r["port"] for r in exp("aws-sg.json", "default,udp/137")} == {135, 139, 445, 3389, 137, 138}


def test_wide_threshold():
    # with /0 only, 10.0.0.0/8 and 1.0.0.0/8 stop counting
    assert exp("winfw.json", threshold=0) == []
    assert keyset(exp("winfw.json", threshold=16)) == keyset(exp("winfw.json"))


def test_main_rules_formats(tmp_path):
    buf = io.StringIO()
    assert main_rules([str(DATA / "aws-sg.json")], "jsonl", buf, None, 8) == 0
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines and all(list(x) == FIELDS for x in lines)
    out = tmp_path / "o.json"
    assert main_rules([str(DATA / "azure-nsg.json")], "json", str(out), None, 8) == 0
    assert isinstance(json.loads(out.read_text()), list)
    buf = io.StringIO()
    assert main_rules([str(DATA / "nft-ruleset.txt")], "table", buf, None, 8) == 0
    assert "SEVERITY" in buf.getvalue() and "fix: nft insert rule" in buf.getvalue()
    buf = io.StringIO()
    assert main_rules([str(DATA / "aws-clean.json")], "table", buf, None, 8) == 0
    assert "No exposed ports" in buf.getvalue()
    # a directory is every file in it
    buf = io.StringIO()
    assert main_rules([str(DATA)], "jsonl", buf, None, 8) == 0
    assert {json.loads(x)["platform"] for x in buf.getvalue().splitlines()} == {
        "aws", "aliyun", "azure", "iptables", "ip6tables", "nft", "windows"}


BAD = [
    ("unknown.txt", b"hello world\n", "unknown.txt:1: unknown rule format"),
    ("unknown.json", b'{"foo": 1}', "unknown.json:$: unknown JSON rule format"),
    ("broken.json", b'{"SecurityGroups": [\n  {"GroupId": "sg-1",\n', "broken.json:3:1: broken JSON"),
    ("badport.json", b'{"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [{"IpProtocol": "tcp", '
                     b'"FromPort": "x", "IpRanges": []}]}]}',
     "badport.json:$.SecurityGroups[0].IpPermissions[0].FromPort: expected int"),
    ("badcidr.json", b'{"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [{"IpProtocol": "tcp", '
                     b'"FromPort": 445, "ToPort": 445, "IpRanges": [{"CidrIp": "300.0.0.0/8"}]}]}]}',
     "badcidr.json:$.SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp: bad CIDR"),
    ("ali.json", b'{"SecurityGroupId": "sg-1", "Permissions": {"Permission": [{"IpProtocol": "TCP", '
                 b'"PortRange": "445-445", "SourceCidrIp": "0.0.0.0/0"}]}}',
     "ali.json:$.Permissions.Permission[0].PortRange: bad PortRange"),
    ("ipt.txt", b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 44x -j ACCEPT\nCOMMIT\n", "ipt.txt:3:"),
    ("nft.txt", b"table inet filter {\n\tchain input {\n\t\ttcp dport @nope accept\n\t}\n}\n",
     "nft.txt:3: unknown set @nope"),
    ("nft2.txt", b"table inet filter {\n\tchain input {\n", "nft2.txt:2: unbalanced braces"),
    ("fw.csv", b'"Name","Enabled","Direction","Action","Protocol","LocalPort","RemoteAddress"\n'
               b'"a","True","Inbound","Allow","TCP","System.Object[]","Any"\n', "fw.csv:2: LocalPort is 'System.Object[]'"),
    ("netsh.txt", "规则名称: x\n已启用: 也许\n方向: 入\n操作: 允许\n".encode("gbk"), "netsh.txt:1: rule 'x'"),
]


@pytest.mark.parametrize("name,data,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_and_position(tmp_path, capsys, name, data, msg):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(RulesError) as ei:
        read(str(p))
    assert str(ei.value).startswith(str(tmp_path / msg.split(":")[0]))
    assert msg.split(":", 1)[1] in str(ei.value)
    assert "\n" not in str(ei.value)
    assert main_rules([str(p)], "jsonl", io.StringIO(), None, 8) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "Traceback" not in err


def test_missing_file_and_bad_ports(tmp_path, capsys):
    assert main_rules([str(tmp_path / "nope.json")], "jsonl", io.StringIO(), None, 8) == 2
    assert "nope.json" in capsys.readouterr().err
    assert main_rules([str(DATA / "aws-sg.json")], "jsonl", io.StringIO(), "tcp/99999", 8) == 2
    assert main_rules([str(DATA / "aws-sg.json")], "xml", io.StringIO(), None, 8) == 2


def test_iptables_negated_source_and_iprange(tmp_path):
    p = tmp_path / "neg.rules"
    p.write_text("*filter\n:INPUT DROP [0:0]\n-A INPUT ! -s 10.0.0.0/8 -p tcp -m tcp --dport 445 -j ACCEPT\n"
                 "-A INPUT -m iprange --src-range 1.0.0.0-1.255.255.255 -p tcp --dport 139 -j ACCEPT\nCOMMIT\n")
    rows = exp(str(p))
    assert ("tcp", 445, "0.0.0.0/0") in keyset(rows)
    assert one(rows, "tcp", 139, "1.0.0.0/8")["fix"] == "iptables -I INPUT -s 1.0.0.0/8 -p tcp --dport 139 -j DROP"
