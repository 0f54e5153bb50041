"""`nft list ruleset` output.

Every base chain hooked at input or forward is a first-match list ending in
its policy; jump/goto to regular chains in the same table are followed and
named sets (@name) are resolved. Statements the tool does not model are
ignored, except `iif lo` and `ct state` without `new`, which make a rule inert.
The fix inserts a drop at the head of the base chain.
"""

from __future__ import annotations

import re

from .errors import RulesError
from .model import Container, Rule, Source, parse_source

SERVICES = {"microsoft-ds": 445, "netbios-ssn": 139, "netbios-ns": 137, "netbios-dgm": 138, "epmap": 135,
            "loc-srv": 135, "ms-wbt-server": 3389, "ssh": 22, "http": 80, "https": 443, "smtp": 25,
            "kerberos": 88, "imap": 143, "imap2": 143}
CT_STATES = {"new", "established", "related", "invalid", "untracked"}
VERDICT = {"accept": "allow", "drop": "deny", "reject": "deny", "return": "return", "jump": "jump", "goto": "jump"}


def _tokens(line: str) -> list[str]:
    return re.findall(r'"[^"]*"|\{|\}|!=|[^\s{},]+', line)


def parse(path: str, text: str) -> list[Container]:
    lines = text.split("\n")
    tables: list[dict] = []
    table = chain = setname = None
    depth = 0
    elements_open = False
    opened: list[int] = []  # line of each block still open, for the error
    for ln, raw in enumerate(lines, 1):
        s = raw.split("#", 1)[0].strip()
        handle = re.search(r"# handle (\d+)", raw)
        if not s:
            continue
        if elements_open:
            table["sets"][setname] += [x for x in _tokens(s) if x not in ("{", "}")]
            if "}" in s:
                elements_open = False
            continue
        if s.endswith("{") and depth == 0:
            m = re.match(r"table\s+(\w+)\s+(\S+)\s*\{$", s)
            if not m:
                raise RulesError(path, ln, f"expected 'table FAMILY NAME {{', got {s[:60]!r}")
            table = {"family": m[1], "name": m[2], "chains": {}, "sets": {}, "base": {}}
            tables.append(table)
            depth = 1
            opened.append(ln)
            continue
        if depth == 0:
            raise RulesError(path, ln, f"statement outside a table: {s[:60]!r}")
        if s == "}":
            depth -= 1
            opened.pop()
            chain = setname = None
            continue
        if depth == 1:
            m = re.match(r"(chain|set|map|flowtable|counter|quota|limit|ct|secmark|synproxy)\s+(\S+)\s*\{$", s)
            if not m:
                raise RulesError(path, ln, f"expected a chain or set, got {s[:60]!r}")
            depth = 2
            opened.append(ln)
            if m[1] == "chain":
                chain = m[2]
                table["chains"][chain] = []
            elif m[1] == "set":
                setname = m[2]
                table["sets"][setname] = []
            continue
        # depth 2: inside a chain or set
        if setname is not None:
            if s.startswith("elements"):
                body = s.split("=", 1)[1]
                table["sets"][setname] += [x for x in _tokens(body) if x not in ("{", "}")]
                elements_open = "}" not in body
            continue
        if chain is None:
            continue
        if s.startswith("type ") and " hook " in s:
            hook = re.search(r"hook\s+(\w+)", s)[1]
            pol = re.search(r"policy\s+(\w+)", s)
            table["base"][chain] = (hook, pol[1] if pol else "accept")
            continue
        table["chains"][chain].append((ln, s, handle[1] if handle else None))
    if depth != 0:
        raise RulesError(path, opened[-1], "unbalanced braces: this block is never closed")
    if not tables:
        raise RulesError(path, None, "no tables in this nft ruleset")
    out = []
    for t in tables:
        rules = {name: [_rule(path, ln, s, h, t, name) for ln, s, h in body] for name, body in t["chains"].items()}
        fam = {"ip": (4,), "ip6": (6,), "inet": (4, 6), "bridge": (4, 6), "netdev": (4, 6)}.get(t["family"])
        if fam is None:
            continue  # arp: no IP
        for name, (hook, pol) in t["base"].items():
            if hook not in ("input", "forward"):
                continue
            out.append(Container(path, "nft", f"{t['family']} {t['name']} {name}", "first", rules[name],
                                 "allow" if pol == "accept" else "deny", f"chain {name} policy {pol}", families=fam,
                                 chains={k: v for k, v in rules.items() if k not in t["base"]}, fixer=fix,
                                 data={"family": t["family"], "table": t["name"], "chain": name}))
    return out


def _values(path: str, ln: int, tok: list[str], i: int, table: dict) -> tuple[list[str], int]:
    if tok[i] == "{":
        j = tok.index("}", i)
        return tok[i + 1:j], j + 1
    if tok[i].startswith("@"):
        name = tok[i][1:]
        if name not in table["sets"]:
            raise RulesError(path, ln, f"unknown set @{name}")
        return table["sets"][name], i + 1
    return [tok[i]], i + 1


def _port(v: str) -> tuple[int, int]:
    lo, _, hi = v.partition("-")
    a = SERVICES.get(lo, None) if not lo.isdigit() else int(lo)
    b = a if not hi else (SERVICES.get(hi) if not hi.isdigit() else int(hi))
    if a is None or b is None:
        raise ValueError(f"unknown service {v!r}")
    return a, b


def _rule(path: str, ln: int, s: str, handle, table: dict, chain: str) -> Rule:
    tok = _tokens(s)
    proto, ports, srcs, neg, action, target = "any", None, None, False, "skip", None
    i = 0
    try:
        while i < len(tok):
            t = tok[i]
            if t in ("tcp", "udp", "th") and i + 1 < len(tok) and tok[i + 1] in ("dport", "sport"):
                field = tok[i + 1]
                i += 2
                negated = tok[i] == "!="
                i += negated
                vals, i = _values(path, ln, tok, i, table)
                if field == "dport":
                    proto = t if t != "th" else proto
                    ports = None if negated else tuple(_port(v) for v in vals)
                continue
            if t in ("ip", "ip6") and i + 1 < len(tok) and tok[i + 1] == "saddr":
                i += 2
                neg = tok[i] == "!="
                i += neg
                vals, i = _values(path, ln, tok, i, table)
                srcs = tuple(x for v in vals for x in parse_source(v.strip('"')))
                continue
            if t in ("l4proto", "protocol") and i + 1 < len(tok):
                vals, i = _values(path, ln, tok, i + 1, table)
                if len(vals) == 1 and vals[0] in ("tcp", "udp"):
                    proto = vals[0]
                continue
            if t in ("iif", "iifname") and i + 1 < len(tok) and tok[i + 1].strip('"') == "lo":
                action = "inert"
            if t == "ct" and i + 2 < len(tok) and tok[i + 1] == "state":
                i += 2
                negated = tok[i] == "!="
                i += negated
                if tok[i] == "{":
                    vals, i = _values(path, ln, tok, i, table)
                else:
                    vals = []
                    while i < len(tok) and tok[i] in CT_STATES:
                        vals.append(tok[i])
                        i += 1
                if ("new" in vals) == negated:
                    action = "inert"
                continue
            if t in VERDICT and action != "inert":
                action = VERDICT[t]
                if t in ("jump", "goto") and i + 1 < len(tok):
                    target = tok[i + 1]
                    i += 1
            i += 1
    except (ValueError, IndexError) as exc:
        raise RulesError(path, ln, f"cannot read rule {s[:60]!r}: {exc}") from None
    if action == "inert":
        action = "skip"
    return Rule(f"chain {chain}: {s}", action, proto, ports, srcs, neg, target, data={"goto": "goto" in tok, "handle": handle})


def fix(c: Container, r: Rule, proto: str, port: int, exposed: str) -> str:
    d = c.data
    src = ""
    if exposed not in ("0.0.0.0/0", "::/0"):
        src = f"{'ip6' if ':' in exposed else 'ip'} saddr {exposed} "
    return f"nft insert rule {d['family']} {d['table']} {d['chain']} {src}{proto} dport {port} drop"
