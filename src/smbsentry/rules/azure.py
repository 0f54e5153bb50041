"""Azure NSG JSON (`az network nsg show`, `az network nsg list`, or ARM `properties` form).

securityRules and defaultSecurityRules are one list ordered by priority
(lower number first), first match decides. Rules naming application security
groups or service tags other than Internet are never wide. The fix deletes a
rule that opens only the target ports, otherwise adds a Deny just above it,
which keeps the rest of a broad rule working.
"""

from __future__ import annotations

from .jsonutil import J
from .model import Container, Rule, parse_ports, parse_source

PROTO = {"*": "any", "tcp": "tcp", "udp": "udp"}


def parse(path: str, data) -> list[Container]:
    items = data if isinstance(data, list) else [data]
    out = []
    for i, obj in enumerate(items):
        j = J(path, obj, f"$[{i}]" if isinstance(data, list) else "$")
        props = j.get("properties", dict, {})
        pj = J(path, {**props, **{k: v for k, v in obj.items() if k != "properties"}}, j.where)
        name = pj.get("name", str, required=True)
        rg = pj.get("resourceGroup", str, "") or _rg(pj.get("id", str, ""))
        ranked = []
        for key in ("securityRules", "defaultSecurityRules"):
            for ri, rule in enumerate(pj.list(key)):
                rj = J(path, rule, pj.at(key, ri))
                r = J(path, {**rj.get("properties", dict, {}), **rule}, rj.where)
                if r.get("direction", str, "").lower() != "inbound":
                    continue
                prio = r.get("priority", int, required=True)
                ranked.append((prio, _rule(path, r, key == "defaultSecurityRules")))
        rules = [x for _, x in sorted(ranked, key=lambda t: t[0])]
        out.append(Container(path, "azure", name, "first", rules, "deny", "implicit deny", fixer=fix,
                             data={"rg": rg, "priorities": {p for p, _ in ranked}}))
    return out


def _rg(rid: str) -> str:
    parts = rid.split("/")
    for k, v in zip(parts, parts[1:]):
        if k.lower() == "resourcegroups":
            return v
    return ""


def _rule(path: str, r: J, default: bool) -> Rule:
    name = r.get("name", str, required=True)
    access = r.get("access", str, required=True)
    raw = r.get("protocol", str, "*")
    proto = PROTO.get(raw.lower(), raw.lower())
    pspecs = r.list("destinationPortRanges") or [r.get("destinationPortRange", str, "*")]
    try:
        ports = None
        if "*" not in pspecs:
            ports = tuple(p for s in pspecs for p in parse_ports(str(s)) or ())
    except ValueError:
        raise r.fail(f"bad destination port {pspecs!r}", "destinationPortRange") from None
    sspecs = r.list("sourceAddressPrefixes") or [r.get("sourceAddressPrefix", str, "")]
    sspecs = [s for s in sspecs if s]
    if not sspecs:  # only application security groups: named groups, never wide
        sspecs = ["ApplicationSecurityGroup"]
    try:
        srcs = tuple(x for s in sspecs for x in parse_source(s))
    except ValueError:
        raise r.fail(f"bad source address {sspecs!r}", "sourceAddressPrefix") from None
    prio = r.get("priority", int)
    label = f"{name} (priority {prio}, {access} {raw} {','.join(map(str, pspecs))} from {','.join(sspecs)})"
    return Rule(label, "deny" if access.lower() == "deny" else "allow", proto, ports, srcs,
                data={"name": name, "priority": prio, "default": default, "narrow": ports is not None and
                      sum(hi - lo + 1 for lo, hi in ports) <= 8})


def fix(c: Container, r: Rule, proto: str, port: int, exposed: str) -> str:
    d = r.data
    rg = c.data.get("rg") or "<resource-group>"
    if d.get("narrow") and not d.get("default"):
        return f"az network nsg rule delete --resource-group {rg} --nsg-name {c.name} --name {d['name']}"
    prio = (d.get("priority") or 4096) - 1
    while prio in c.data["priorities"] and prio > 100:
        prio -= 1
    src = "*" if exposed.lower() in ("*", "any") else exposed
    return (f"az network nsg rule create --resource-group {rg} --nsg-name {c.name} --name Deny-{proto.upper()}-{port}"
            f" --priority {max(prio, 100)} --direction Inbound --access Deny --protocol {proto.capitalize()}"
            f" --destination-port-ranges {port} --source-address-prefixes {src}")
