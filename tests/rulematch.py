"""A small evaluator for the rule options smbsentry's exported rules use.

Suricata is not on every machine (Debian 12 has it in bookworm-backports
only, Snort not at all), so the cross-check of the exported rules against the
corpus also runs their payload options here, everywhere: content (offset, depth, distance,
within, nocase), byte_test (with byte_extract variables), byte_extract,
flowbits (set, isset, noalert) and the flow direction, on one SMB message
at a time (the NetBIOS header put back in front, as on the wire).  flags and
threshold/detection_filter are not evaluated: the worm-scan rule is checked
by its own test.  Rules come parsed by idstools, the same parser the format
test uses, so what is evaluated is what a sensor would read.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

_HEX = re.compile(r"\|([0-9A-Fa-f ]*)\|")


def content_bytes(text: str) -> bytes:
    """The bytes of a content string ("|FF|SMB|25|")."""
    text = text.strip().strip('"')
    out = bytearray()
    pos = 0
    for m in _HEX.finditer(text):
        out += text[pos:m.start()].encode("latin-1")
        out += bytes.fromhex(m.group(1))
        pos = m.end()
    out += text[pos:].encode("latin-1")
    return bytes(out)


_OPS = {"<": operator.lt, ">": operator.gt, "=": operator.eq, "<=": operator.le, ">=": operator.ge,
        "&": lambda a, b: bool(a & b), "^": lambda a, b: bool(a ^ b)}


@dataclass
class Compiled:
    sid: int
    signature: str
    direction: str  # to_server | to_client | either
    steps: list = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    noalert: bool = False
    stateless: bool = True


def compile_rule(rule) -> Compiled:
    """An idstools rule -> the steps this evaluator runs."""
    meta = dict(m.split(" ", 1) for m in rule.metadata)
    direction = "either" if rule.direction == "<>" else "to_client" if "[139,445] ->" in rule.raw else "to_server"
    c = Compiled(rule.sid, meta["smbsentry_signature"], direction)
    for opt in rule.options:
        name, value = opt["name"], opt["value"]
        if name == "content":
            c.steps.append(["content", content_bytes(value), {}])
        elif name in ("offset", "depth", "distance", "within"):
            c.steps[-1][2][name] = int(value)
        elif name == "nocase":
            c.steps[-1][2]["nocase"] = True
        elif name == "byte_test":
            c.steps.append(["byte_test", [v.strip() for v in value.split(",")], {}])
        elif name == "byte_extract":
            c.steps.append(["byte_extract", [v.strip() for v in value.split(",")], {}])
        elif name == "flowbits":
            verb, _, bit = value.partition(",")
            if verb == "set":
                c.sets.append(bit)
            elif verb == "isset":
                c.needs.append(bit)
                c.stateless = False
            elif verb == "noalert":
                c.noalert = True
        elif name in ("flags", "threshold", "detection_filter"):
            c.stateless = False
    return c


def _int(text: str, variables: dict[str, int]) -> int:
    return variables[text] if text in variables else int(text, 0)


def payload_matches(c: Compiled, data: bytes) -> bool:
    """The content/byte_* steps of `c` against one payload."""
    cursor = 0
    variables: dict[str, int] = {}
    for kind, arg, mods in c.steps:
        if kind == "content":
            hay, needle = (data.lower(), arg.lower()) if mods.get("nocase") else (data, arg)
            if "distance" in mods or "within" in mods:
                start = cursor + mods.get("distance", 0)
                end = start + mods["within"] if "within" in mods else len(hay)
            else:
                start = mods.get("offset", 0)
                end = start + mods["depth"] if "depth" in mods else len(hay)
            at = hay.find(needle, start, end)
            if at < 0 or at + len(needle) > end:
                return False
            cursor = at + len(needle)
        elif kind in ("byte_test", "byte_extract"):
            nbytes = int(arg[0])
            little = "little" in arg
            if kind == "byte_test":
                op, value, off = arg[1], arg[2], int(arg[3])
            else:
                op, value, off = None, None, int(arg[1])
            if off + nbytes > len(data):
                return False
            number = int.from_bytes(data[off:off + nbytes], "little" if little else "big")
            if kind == "byte_extract":
                variables[arg[2]] = number
                continue
            negate = op.startswith("!")
            result = _OPS[op.lstrip("!")](number, _int(value, variables))
            if result == negate:
                return False
    return True


def run_rules(compiled: list[Compiled], messages) -> dict[int, list[int]]:
    """{sid: [frame of each message it alerts on]} over corpus messages in
    capture order, flowbits kept per TCP connection."""
    bits: dict[frozenset, set[str]] = {}
    hits: dict[int, list[int]] = {c.sid: [] for c in compiled}
    for m in messages:
        wire = b"\x00" + len(m.data).to_bytes(3, "big") + m.data
        flow = frozenset({(m.src, m.sport), (m.dst, m.dport)})
        state = bits.setdefault(flow, set())
        direction = "to_client" if m.is_server_reply else "to_server"
        for c in compiled:
            if c.direction not in ("either", direction) or not set(c.needs) <= state:
                continue
            if payload_matches(c, wire):
                state.update(c.sets)
                if not c.noalert:
                    hits[c.sid].append(m.last_frame)
    return hits
