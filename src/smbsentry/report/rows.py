"""The report's long tables written as HTML in one pass.

A report of 1,000 hosts has about 8,000 table rows. Written by the template,
every cell costs an escape() that makes a Markup object and a generator step:
about a third of the page's time. Here each row is one f-string whose every
value went through cell(): text escaped exactly as the template's
autoescaping does, Markup (sentences and step texts the i18n layer already
escaped) kept. Nothing reaches the page unescaped; the template still writes
everything else.
"""

from __future__ import annotations

from markupsafe import Markup


def cell(value) -> str:
    """A value as HTML text: escaped like markupsafe.escape (&#34; and &#39; for quotes), Markup as it is."""
    if isinstance(value, Markup):
        return str(value)
    if value is None:
        return ""
    s = value if type(value) is str else str(value)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")


def action_rows(rows: list[dict], badge: str) -> Markup:
    """The ranked action list (report/actions.py action_rows): rank or the isolate badge, host, why, next step."""
    out = []
    for i, a in enumerate(rows, 1):
        rank = f'<span class="badge">{cell(badge)}</span>' if a["isolate"] else cell(a["label"])
        host = f'<span class="h">{cell(a["host"])}</span> ' if a["host"] else ""
        out.append(f'<tr class="rank-{cell(a["rank"])}"><td>{i}</td><td>{rank}</td>\n'
                   f'<td>{host}<span class="a">{cell(a["address"] or "")}</span></td>\n'
                   f'<td class="ev">{cell(a["why"])}</td><td><code>{cell(a["step"])}</code> {cell(a["next"])}</td></tr>\n')
    return Markup("".join(out))


def finding_rows(rows: list[tuple], inferred: str, reason: str) -> Markup:
    """A finding section's hosts: (where, name, status, label, inferred?, evidence, reason)."""
    out = []
    for where, name, st, label, inf, ev, rs in rows:
        out.append(f'<tr><td class="a">{cell(where)}</td><td class="h">{cell(name)}</td>\n'
                   f'<td><span class="s-{cell(st)}">{cell(label)}</span>{f" ({cell(inferred)})" if inf else ""}</td>\n'
                   f'<td class="ev">{cell(ev)}{f"<br>{cell(reason)}: {cell(rs)}" if rs else ""}</td></tr>\n')
    return Markup("".join(out))


def host_rows(rows: list[tuple]) -> Markup:
    """The all-hosts table: (address, name, OS, role, SMBv1, dialects, signing, [(finding, status)], errors, mark)."""
    out = []
    for addr, name, os, role, smb1, dialects, signing, bad, errors, mark in rows:
        marked = f' <span class="mark">{cell(mark)}</span>' if mark else ""
        found = "".join(f'<span class="s-{cell(st)}">{cell(fid)}</span> ' for fid, st in bad)
        out.append(f'<tr><td class="a">{cell(addr)}{marked}</td><td class="h">{cell(name)}</td><td class="os">{cell(os)}</td>'
                   f'<td>{cell(role)}</td><td>{cell(smb1)}</td>\n<td>{cell(dialects)}</td><td>{cell(signing)}</td>\n'
                   f'<td>{found}</td>\n<td class="ev">{cell(errors)}</td></tr>\n')
    return Markup("".join(out))


def relay_rows(rows: list[tuple]) -> Markup:
    """The relay paths: (address, name, protocol, port, status, label, detail, url, text)."""
    out = []
    for addr, name, proto, port, st, label, detail, _url, _text in rows:
        out.append(f'<tr><td class="a">{cell(addr)}</td><td class="h">{cell(name)}</td><td class="v">{cell(proto)} '
                   f'{cell(port)}</td><td><span class="s-{cell(st)}">{cell(label)}</span></td><td class="ev">{cell(detail)}</td></tr>\n')
    return Markup("".join(out))
