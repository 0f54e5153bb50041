"""Windows Firewall from PowerShell: Get-NetFirewallRule joined with its port and address filters.

Expected columns/fields (as an admin exports them): Name, DisplayName, Enabled,
Direction, Action, Protocol, LocalPort, RemoteAddress; CSV from Export-Csv or
JSON from ConvertTo-Json (enum fields may be numbers there: Enabled 1=True,
Direction 1=Inbound, Action 2=Allow 4=Block). Windows evaluates block rules
before allow rules, so any enabled inbound block matching the traffic wins;
inbound with no matching rule is blocked (the default profile setting).
The fix adds a block rule, which therefore overrides every allow.
"""

from __future__ import annotations

import csv
import io

from .errors import RulesError
from .model import Container, Rule, parse_ports, parse_source

REQUIRED = ("Enabled", "Direction", "Action", "Protocol", "LocalPort", "RemoteAddress")
ENABLED = {"1": True, "true": True, "yes": True, "2": False, "false": False, "no": False}
DIRECTION = {"1": "in", "inbound": "in", "in": "in", "2": "out", "outbound": "out", "out": "out"}
ACTION = {"2": "allow", "allow": "allow", "4": "block", "block": "block", "0": "none", "notconfigured": "none"}
PROTO = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "any": "any", "256": "any"}


def parse_csv(path: str, text: str) -> list[Container]:
    lines = text.split("\n")
    if lines and lines[0].startswith("#TYPE"):  # Export-Csv without -NoTypeInformation
        lines = lines[1:]
        offset = 2
    else:
        offset = 1
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise RulesError(path, offset, f"CSV lacks column(s) {', '.join(missing)}")
    rules = []
    for n, row in enumerate(reader, offset + 1):
        r = _rule(path, n, row)
        if r:
            rules.append(r)
    return [Container(path, "windows", "Windows Firewall", "block", rules, "deny", "default inbound block",
                      fixer=fix)]


def parse_json(path: str, data) -> list[Container]:
    items = data if isinstance(data, list) else [data]
    rules = []
    for i, obj in enumerate(items):
        where = f"$[{i}]" if isinstance(data, list) else "$"
        if not isinstance(obj, dict):
            raise RulesError(path, where, "expected an object per firewall rule")
        missing = [c for c in REQUIRED if c not in obj]
        if missing:
            raise RulesError(path, where, f"missing field(s) {', '.join(missing)}")
        row = {k: _flat(v) for k, v in obj.items()}
        r = _rule(path, where, row)
        if r:
            rules.append(r)
    return [Container(path, "windows", "Windows Firewall", "block", rules, "deny", "default inbound block",
                      fixer=fix)]


def _flat(v) -> str:
    """ConvertTo-Json gives arrays as lists, or {"value": [...], "Count": n} in Windows PowerShell 5.1."""
    if isinstance(v, dict) and "value" in v:
        v = v["value"]
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _rule(path: str, where, row: dict) -> Rule | None:
    name = row.get("DisplayName") or row.get("Name") or "?"
    for col in ("LocalPort", "RemoteAddress"):
        if "System.Object[]" in (row.get(col) or ""):
            raise RulesError(path, where, f"{col} is 'System.Object[]': export it with -join ','")
    enabled = ENABLED.get((row.get("Enabled") or "").strip().lower())
    direction = DIRECTION.get((row.get("Direction") or "").strip().lower())
    action = ACTION.get((row.get("Action") or "").strip().lower())
    if enabled is None or direction is None or action is None:
        raise RulesError(path, where, f"rule {name!r}: cannot read Enabled/Direction/Action "
                         f"{row.get('Enabled')!r}/{row.get('Direction')!r}/{row.get('Action')!r}")
    return build(path, where, name, row.get("Name") or name, enabled, direction, action,
                 row.get("Protocol") or "Any", row.get("LocalPort") or "Any", row.get("RemoteAddress") or "Any")


def build(path, where, display, name, enabled, direction, action, proto_text, port_text, addr_text) -> Rule | None:
    """Shared with netsh.py: one Windows rule from its already-translated fields."""
    if not enabled or direction != "in" or action not in ("allow", "block"):
        return None
    p = proto_text.strip().lower()
    proto = PROTO.get(p, p)
    try:
        ports = parse_ports(port_text) if proto in ("tcp", "udp") else None
        srcs = tuple(x for a in addr_text.split(",") if a.strip() for x in parse_source(a))
    except ValueError as exc:
        raise RulesError(path, where, f"rule {display!r}: {exc}") from None
    if ports == ():
        return None  # only dynamic RPC/special ports
    label = f"{display} ({action} {proto_text} {port_text} from {addr_text})"
    return Rule(label, "deny" if action == "block" else "allow", proto, ports, srcs or None,
                data={"name": name, "display": display})


def fix(c: Container, r: Rule, proto: str, port: int, exposed: str) -> str:
    remote = "" if exposed.lower() in ("any", "*", "0.0.0.0/0") else f" -RemoteAddress {exposed}"
    return (f"New-NetFirewallRule -DisplayName 'smbsentry block {proto.upper()} {port}' -Direction Inbound"
            f" -Protocol {proto.upper()} -LocalPort {port}{remote} -Action Block")
