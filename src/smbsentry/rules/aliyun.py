"""Alibaba Cloud ECS `DescribeSecurityGroupAttribute` JSON.

Ingress permissions are decided by Priority (1 is first); at equal priority
Drop wins over Accept, so sorting by (priority, drop-first) turns it into a
first-match list. Nothing matching means deny. The fix revokes the Accept rule
(seed 004: delete the 0.0.0.0/0 entry) using the same fields the rule has.
"""

from __future__ import annotations

from .jsonutil import J
from .model import Container, Rule, parse_ports, parse_source

PROTO = {"all": "any", "tcp": "tcp", "udp": "udp"}


def parse(path: str, data) -> list[Container]:
    items = data if isinstance(data, list) else [data]
    out = []
    for i, obj in enumerate(items):
        j = J(path, obj, f"$[{i}]" if isinstance(data, list) else "$")
        sg = j.get("SecurityGroupId", str, required=True)
        perms = j.get("Permissions", dict, {}).get("Permission", [])
        if not isinstance(perms, list):
            raise j.fail("expected a list", "Permissions", "Permission")
        ranked = []
        for pi, perm in enumerate(perms):
            p = J(path, perm, j.at("Permissions", "Permission", pi))
            if p.get("Direction", str, "ingress").lower() != "ingress":
                continue
            raw = p.get("IpProtocol", str, required=True)
            proto = PROTO.get(raw.lower(), raw.lower())
            pr = p.get("PortRange", str, "-1/-1")
            try:
                ports = None if pr in ("-1/-1", "1/65535") else parse_ports(pr, rng="/")
            except ValueError:
                raise p.fail(f"bad PortRange {pr!r}", "PortRange") from None
            policy = p.get("Policy", str, "Accept")
            prio = int(p.get("Priority", (int, str), 1))
            for field in ("SourceCidrIp", "Ipv6SourceCidrIp"):
                cidr = p.get(field, str, "")
                if not cidr:
                    continue
                try:
                    srcs = tuple(parse_source(cidr))
                except ValueError:
                    raise p.fail(f"bad CIDR {cidr!r}", field) from None
                action = "deny" if policy.lower() == "drop" else "allow"
                label = f"{policy} {raw}/{pr} from {cidr} priority {prio}"
                ranked.append(((prio, action != "deny", pi), Rule(label, action, proto, ports, srcs, data={
                    "proto": raw, "range": pr, "field": field, "cidr": cidr, "policy": policy, "priority": prio,
                    "nic": p.get("NicType", str, ""), "id": p.get("SecurityGroupRuleId", str, "")})))
        rules = [r for _, r in sorted(ranked, key=lambda x: x[0])]
        out.append(Container(path, "aliyun", sg, "first", rules, "deny", "default deny", families=(4, 6), fixer=fix,
                             data={"region": j.get("RegionId", str, "")}))
    return out


def fix(c: Container, r: Rule, proto: str, port: int, exposed: str) -> str:
    d = r.data
    region = f" --RegionId {c.data['region']}" if c.data.get("region") else ""
    cmd = (f"aliyun ecs RevokeSecurityGroup{region} --SecurityGroupId {c.name} --IpProtocol {d['proto']}"
           f" --PortRange {d['range']} --{d['field']} {d['cidr']} --Policy {d['policy']} --Priority {d['priority']}")
    return cmd + (f" --NicType {d['nic']}" if d["nic"] else "")
