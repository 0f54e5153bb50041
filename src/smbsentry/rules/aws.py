"""AWS `aws ec2 describe-security-groups` JSON.

Security groups only allow (no deny, no order): any ingress permission whose
protocol/ports cover a target and whose IpRanges/Ipv6Ranges are wide exposes
it. UserIdGroupPairs and PrefixListIds name other groups or lists, never a
wide range, so they are kept out. The fix is the exact revoke of that permission.
"""

from __future__ import annotations

from .jsonutil import J
from .model import Container, Rule, Source, parse_source

PROTO = {"-1": "any", "all": "any", "6": "tcp", "17": "udp", "tcp": "tcp", "udp": "udp"}


def parse(path: str, data) -> list[Container]:
    groups = data.get("SecurityGroups") if isinstance(data, dict) and "SecurityGroups" in data else data
    where = "$.SecurityGroups" if isinstance(data, dict) and "SecurityGroups" in data else "$"
    if isinstance(groups, dict):
        groups, single = [groups], True
    else:
        single = False
    if not isinstance(groups, list):
        raise J(path, {}, where).fail("expected a list of security groups")
    out = []
    for gi, g in enumerate(groups):
        gw = where if single else f"{where}[{gi}]"
        j = J(path, g, gw)
        gid = j.get("GroupId", str, required=True)
        rules = []
        for pi, perm in enumerate(j.list("IpPermissions")):
            p = J(path, perm, j.at("IpPermissions", pi))
            raw = str(p.get("IpProtocol", (str, int), required=True)).lower()
            proto = PROTO.get(raw, raw)
            lo, hi = p.get("FromPort", int), p.get("ToPort", int)
            ports = None if proto == "any" or lo is None or lo == -1 else ((lo, hi if hi is not None else lo),)
            for key, field in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")):
                for ri, rng in enumerate(p.list(key)):
                    r = J(path, rng, p.at(key, ri))
                    cidr = r.get(field, str, required=True)
                    try:
                        srcs = parse_source(cidr)
                    except ValueError:
                        raise r.fail(f"bad CIDR {cidr!r}", field) from None
                    rules.append(Rule(_label(proto, ports, cidr), "allow", proto, ports, tuple(srcs),
                                      data={"raw_proto": raw, "from": lo, "to": hi, "cidr": cidr, "v6": key == "Ipv6Ranges"}))
        out.append(Container(path, "aws", gid, "union", rules, "deny", "implicit deny", families=(4, 6), fixer=fix,
                             data={"name": j.get("GroupName", str, "")}))
    return out


def _label(proto: str, ports, cidr: str) -> str:
    if proto == "any":
        return f"all traffic from {cidr}"
    pr = "all" if ports is None else (f"{ports[0][0]}" if ports[0][0] == ports[0][1] else f"{ports[0][0]}-{ports[0][1]}")
    return f"{proto}/{pr} from {cidr}"


def fix(c: Container, r: Rule, proto: str, port: int, exposed: str) -> str:
    d = r.data
    base = f"aws ec2 revoke-security-group-ingress --group-id {c.name}"
    if d["v6"]:
        perm = f"IpProtocol={d['raw_proto']}"
        if d["from"] is not None and d["raw_proto"] != "-1":
            perm += f",FromPort={d['from']},ToPort={d['to']}"
        return f"{base} --ip-permissions '{perm},Ipv6Ranges=[{{CidrIpv6={d['cidr']}}}]'"
    if d["raw_proto"] in ("-1", "all"):
        return f"{base} --protocol all --cidr {d['cidr']}"
    pr = "" if d["from"] is None else (f" --port {d['from']}" if d["from"] == d["to"] else f" --port {d['from']}-{d['to']}")
    return f"{base} --protocol {d['raw_proto']}{pr} --cidr {d['cidr']}"
