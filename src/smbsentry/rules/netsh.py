"""`netsh advfirewall firewall show rule name=all` text, English or Chinese (GBK or UTF-8).

Each rule is a block of `Label: value` lines starting at `Rule Name:` /
`规则名称:`; labels are mapped to one vocabulary so both languages share one
reader. Evaluation is Windows Firewall's: block rules override allow rules.
The fix is a netsh block rule, in the tool the admin already used.
"""

from __future__ import annotations

import re

from .errors import RulesError
from .model import Container
from .winfw import build

LABELS = {
    "rule name": "name", "规则名称": "name", "enabled": "enabled", "已启用": "enabled",
    "direction": "direction", "方向": "direction", "protocol": "protocol", "协议": "protocol",
    "localport": "localport", "本地端口": "localport", "remoteip": "remoteip", "远程 ip": "remoteip",
    "action": "action", "操作": "action",
}
YES = {"yes": True, "是": True, "no": False, "否": False}
DIR = {"in": "in", "入": "in", "out": "out", "出": "out"}
ACT = {"allow": "allow", "允许": "allow", "block": "block", "阻止": "block", "bypass": "bypass", "绕过": "bypass"}
ANYWORDS = {"任何": "Any"}
LINE = re.compile(r"^([^:：]+?)\s*[:：]\s*(.*)$")


def parse(path: str, text: str) -> list[Container]:
    blocks: list[tuple[int, dict]] = []
    cur = None
    for ln, raw in enumerate(text.split("\n"), 1):
        s = raw.strip()
        m = LINE.match(s)
        if not m:
            continue
        key = LABELS.get(m[1].strip().lower())
        if key == "name":
            cur = {"name": m[2].strip()}
            blocks.append((ln, cur))
        elif key and cur is not None:
            cur[key] = m[2].strip()
    if not blocks:
        raise RulesError(path, None, "no 'Rule Name:' / '规则名称:' blocks found")
    rules = []
    for ln, b in blocks:
        missing = [k for k in ("enabled", "direction", "action") if k not in b]
        if missing:
            raise RulesError(path, ln, f"rule {b['name']!r} lacks {', '.join(missing)}")
        enabled, direction, action = YES.get(b["enabled"].lower()), DIR.get(b["direction"].lower()), \
            ACT.get(b["action"].lower())
        if enabled is None or direction is None or action is None:
            raise RulesError(path, ln, f"rule {b['name']!r}: cannot read enabled/direction/action "
                                       f"{b['enabled']!r}/{b['direction']!r}/{b['action']!r}")
        r = build(path, ln, b["name"], b["name"], enabled, direction, action,
                  _any(b.get("protocol", "Any")), _any(b.get("localport", "Any")), _any(b.get("remoteip", "Any")))
        if r:
            rules.append(r)
    return [Container(path, "windows", "Windows Firewall (netsh)", "block", rules, "deny", "default inbound block",
                      fixer=fix)]


def _any(v: str) -> str:
    return ANYWORDS.get(v.strip(), v.strip())


def fix(c: Container, r, proto: str, port: int, exposed: str) -> str:
    remote = "" if exposed.lower() in ("any", "*", "0.0.0.0/0") else f" remoteip={exposed}"
    return (f'netsh advfirewall firewall add rule name="smbsentry block {proto.upper()} {port}" dir=in'
            f" action=block protocol={proto.upper()} localport={port}{remote}")
