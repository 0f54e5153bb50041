"""iptables-save / ip6tables-save output.

Only the filter table's INPUT and FORWARD chains decide inbound exposure;
each is a first-match list ending in the chain policy, and rules jumping to
user chains are followed (RETURN or falling off a user chain resumes the
caller). Matches the tool cannot reason about (-i lo, --state without NEW)
make a rule inert rather than guessed; other unknown matches are ignored,
which errs towards reporting. The fix inserts a DROP at the top of the chain.

Files of hundreds of megabytes (block lists of single addresses) are read as
a stream of lines (rules/detect.py): only rules `keep` accepts are held
(evaluate.relevance: those that can decide an exposure for the ports and
threshold asked), a rule equal to an earlier one of the same chain is dropped
(first match: it can never decide anything the first did not), and past
MAX_RULES held rules the file is refused rather than memory grown.
"""

from __future__ import annotations

import re
import shlex

from .errors import RulesError
from .model import Container, Rule, Source, parse_ports, parse_source

BUILTIN = ("INPUT", "FORWARD")
MAX_RULES = 200_000  # rules held after pruning; real rule sets have a few thousand
MAX_LABEL = 400
PROTO = {"all": "any", "tcp": "tcp", "udp": "udp", "6": "tcp", "17": "udp"}
_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*")+')


def parse(path: str, text: str, keep=None) -> list[Container]:
    return parse_lines(path, text.split("\n"), keep)


def parse_lines(path: str, lines, keep=None) -> list[Container]:
    """Containers from iptables-save lines (any iterable of str, read once)."""
    v6 = False
    table = None
    policies: dict[str, str] = {}
    chains: dict[str, list[Rule]] = {}
    seen: dict[str, set] = {}
    held = 0
    seen_filter = False
    for ln, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            continue
        if s[0] == "#":
            v6 |= ln <= 3 and "ip6tables-save" in s
            continue
        if s[0] == "*":
            table = s[1:]
            seen_filter |= table == "filter"
            continue
        if s == "COMMIT":
            table = None
            continue
        if table is None:
            raise RulesError(path, ln, f"rule outside a *table ... COMMIT block: {s[:60]!r}")
        if table != "filter":
            continue
        if s[0] == ":":
            parts = s[1:].split()
            if len(parts) < 2:
                raise RulesError(path, ln, f"bad chain line {s[:60]!r}")
            chains.setdefault(parts[0], [])
            if parts[1] != "-":
                policies[parts[0]] = parts[1]
            continue
        if s.startswith("-A "):
            chain, rule = _rule(path, ln, s)
            if keep is not None and not keep(rule):
                continue
            key = (rule.action, rule.protocol, rule.ports, rule.sources, rule.negated, rule.target, rule.data["goto"])
            if key in seen.setdefault(chain, set()):
                continue
            seen[chain].add(key)
            held += 1
            if held > MAX_RULES:
                raise RulesError(path, ln, f"more than {MAX_RULES:,} rules that could expose a port; "
                                           "split the export or narrow --ports")
            chains.setdefault(chain, []).append(rule)
            continue
        raise RulesError(path, ln, f"not an iptables-save line: {s[:60]!r}")
    if not seen_filter:
        raise RulesError(path, None, "no *filter table in this iptables-save output")
    cmd = "ip6tables" if v6 else "iptables"
    out = []
    for name in BUILTIN:
        if name not in chains and name not in policies:
            continue
        pol = policies.get(name, "ACCEPT")
        user = {k: v for k, v in chains.items() if k not in ("INPUT", "FORWARD", "OUTPUT")}
        out.append(Container(path, "ip6tables" if v6 else "iptables", f"filter/{name}", "first", chains.get(name, []),
                             "allow" if pol == "ACCEPT" else "deny", f":{name} {pol} (chain policy)",
                             families=(6,) if v6 else (4,), chains=user, fixer=fix, data={"cmd": cmd, "chain": name}))
    return out


def _rule(path: str, ln: int, line: str) -> tuple[str, Rule]:
    if "'" in line or "\\" in line:
        try:
            tok = shlex.split(line)
        except ValueError as exc:
            raise RulesError(path, ln, f"cannot split rule: {exc}") from None
    elif '"' in line:  # iptables-save quotes comments: "..." without escapes splits as shlex does
        if line.count('"') % 2:
            raise RulesError(path, ln, "cannot split rule: No closing quotation")
        tok = [t.replace('"', "") for t in _TOKEN.findall(line)]
    else:
        tok = line.split()  # what shlex gives for a line without quotes or escapes, many times faster
    chain = tok[1] if len(tok) > 1 else ""
    proto, ports, srcs, neg, action, target, goto, inert = "any", None, None, False, "skip", None, False, False
    i, n = 2, len(tok)
    negate_next = False
    try:
        while i < n:
            t = tok[i]
            arg = tok[i + 1] if i + 1 < n else ""
            if t == "!":
                negate_next = True
                i += 1
                continue
            if t in ("-p", "--protocol"):
                proto = "other" if negate_next else PROTO.get(arg.lower(), arg.lower())
            elif t in ("-s", "--source", "--src-range"):
                srcs = tuple(x for a in arg.split(",") for x in parse_source(a))
                neg = negate_next
            elif t in ("--dport", "--destination-port", "--dports", "--destination-ports"):
                ports = parse_ports(arg, rng=":")
                if negate_next:  # "not these ports" covers the rest; treat as every port (errs to reporting)
                    ports = None
            elif t in ("-i", "--in-interface"):
                if arg == "lo" and not negate_next:
                    inert = True
            elif t in ("--state", "--ctstate"):
                if "NEW" not in arg.upper().split(",") and not negate_next:
                    inert = True
            elif t in ("-j", "--jump", "-g", "--goto"):
                target, goto = arg, t in ("-g", "--goto")
            elif t == "--match-set":
                srcs, neg = (Source("tag", f"ipset:{arg}"),), negate_next
                i += 3
                negate_next = False
                continue
            elif not t.startswith("-"):
                i += 1
                negate_next = False
                continue
            i += 2 if (i + 1 < n and not tok[i + 1].startswith("-")) or t in ("-s", "-d") else 1
            negate_next = False
    except ValueError as exc:
        raise RulesError(path, ln, f"{exc}") from None
    if target in ("ACCEPT",):
        action = "allow"
    elif target in ("DROP", "REJECT"):
        action = "deny"
    elif target == "RETURN":
        action = "return"
    elif target and target.isupper() and target in ("LOG", "NFLOG", "MARK", "CONNMARK", "TRACE", "ULOG", "CT", "NOTRACK"):
        action = "skip"
    elif target:
        action = "jump"
    if inert:
        action = "skip"
    label = line if len(line) <= MAX_LABEL else line[:MAX_LABEL - 1] + "…"
    return chain, Rule(label, action, proto, ports, srcs, neg, target, data={"goto": goto})


def fix(c: Container, r: Rule, proto: str, port: int, exposed: str) -> str:
    src = "" if exposed in ("0.0.0.0/0", "::/0") else f" -s {exposed}"
    return f"{c.data['cmd']} -I {c.data['chain']}{src} -p {proto} --dport {port} -j DROP"
