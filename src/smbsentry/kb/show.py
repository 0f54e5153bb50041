"""Plain-text answers for `smbsentry kb show ID` and `smbsentry kb which OS FINDING`.

Both raise ValueError with a one-line message for an unknown id or OS, so
the command line can print it and exit 2.
"""

from __future__ import annotations

import re

from . import query
from .model import KIND_LABELS
from .packages import other_languages, packages
from .store import kb


def _sources(ids) -> str:
    """The public documents an entry rests on, one a line, with their address where one is recorded."""
    data = kb()
    lines = []
    for s in ids:
        src = data.sources[s]
        lines.append(f"    - {src['title']}" + (f" <{src['url']}>" if src.get("url") else ""))
    return "\n" + "\n".join(lines)


def _show_vuln(v) -> str:
    lines = [f"{v.id}: {v.title}", f"  {v.title_zh}", f"  severity: {v.severity}" + (f"  CVSS {v.cvss}" if v.cvss else "")]
    if v.module:
        lines.append(f"  Shadow Brokers module: {v.module} ({v.module_zh})")
    for label, value in (("CVEs", ", ".join(v.cves)), ("bulletin", v.bulletin), ("released", v.released), ("ports", ", ".join([*map(str, v.ports), *(f"{p}/udp" for p in v.udp_ports)])),
                         ("affected", v.affected_text), ("fix", v.fix_text), ("note", v.note)):
        if value:
            lines.append(f"  {label}: {value}")
    if not v.affected_text and v.affected:
        lines.append("  affected: " + ", ".join(sorted({query.product(p).name for p in v.affected_products})))
    if v.bulletin:
        fixes = [f.kb for f in kb().by_bulletin.get(v.bulletin, ())]
        lines.append(f"  updates: {', '.join(fixes)} (and the updates that supersede them)")
    if v.workarounds:
        lines.append(f"  actions: {', '.join(v.workarounds)}")
    lines.append(f"  sources:{_sources(v.source)}")
    return "\n".join(lines)


def _show_fix(f) -> str:
    data = kb()
    lines = [f"{f.kb}: {f.title}", f"  kind: {KIND_LABELS[f.kind]}", f"  released: {f.released or 'not recorded'}",
             f"  products: {', '.join(data.products[p].name for p in f.products)}", f"  architectures: {', '.join(f.architectures)}"]
    if f.released_for:
        lines.append("  released for: " + ", ".join(f"{data.products[p].name} {d}" for p, d in f.released_for.items()))
    if f.addresses:
        lines.append(f"  fixes: {', '.join(f.addresses)}")
    if f.supersedes:
        lines.append(f"  supersedes: {', '.join(f.supersedes)} (chain: {', '.join(query.supersedes_chain(f.kb))})")
    newer = data.superseded_by.get(f.kb)
    if newer:
        lines.append(f"  superseded by: {', '.join(newer)}")
    for b, u in f.fixed_builds.items():
        lines.append(f"  OS build: {b}.{u}")
    for fv in f.fixed_versions:
        lines.append(f"  fixed {f.fixed_file}: {fv.text}{' (' + fv.branch + ')' if fv.branch else ''} on {', '.join(fv.products)}")
    for p in f.prerequisites:
        lines.append(f"  prerequisite: {p.kb} {p.name}")
    for fr in f.files:
        where = ", ".join(fr.products) if fr.products else "every product"
        lines.append(f"  file ({fr.architecture}, {fr.language or 'all languages'}; {where}): {fr.name}"
                     + (f"  {fr.url}" if fr.url else "  (no address recorded)"))
    for g in f.gaps:
        lines.append(f"  no file ({g.architecture}{', ' + g.language if g.language else ''}; {', '.join(g.products)}): {g.reason}")
    if f.note:
        lines.append(f"  note: {f.note}")
    lines.append(f"  sources:{_sources(f.source)}")
    return "\n".join(lines)


def _show_product(p) -> str:
    lines = [f"{p.id}: {p.name} ({p.family}, {p.role})"]
    if p.version:
        lines.append(f"  NT version {p.version}, build {'/'.join(map(str, p.builds))}, service pack {p.service_pack or 'none'}")
    for label, value in (("editions", ", ".join(p.editions)), ("architectures", ", ".join(p.architectures)),
                         ("end of support", p.end_of_support), ("this service pack left support", p.service_pack_support_end),
                         ("lifecycle note", p.lifecycle_note), ("aliases", ", ".join(p.aliases))):
        if value:
            lines.append(f"  {label}: {value}")
    if p.next_service_pack:
        lines.append(f"  next service pack: {p.next_service_pack[0]} -> {kb().products[p.next_service_pack[1]].name}")
    lines.append("  build revision proves updates: " + ("yes" if p.ubr_is_proof else "no"))
    lines.append(f"  sources:{_sources(p.source)}")
    return "\n".join(lines)


def _show_action(a) -> str:
    lines = [f"{a.id} ({a.kind}): {a.text_en}", f"  {a.text_zh}", f"  applies to: {', '.join(a.applies_to)}"]
    for plat, cmds in a.commands.items():
        lines += [f"  {plat}: {c}" for c in cmds]
    for plat, cmds in a.rollback.items():
        lines += [f"  rollback {plat}: {c}" for c in cmds]
    if a.reboot:
        lines.append("  restart needed")
    if a.note:
        lines.append(f"  note: {a.note}")
    lines.append(f"  sources:{_sources(a.source)}")
    return "\n".join(lines)


def kb_show(entry_id: str) -> str:
    """A finding id, a KB number, a product id or name, or an action id, printed with its sources."""
    data = kb()
    key = entry_id.strip()
    if key in data.vulns:
        return _show_vuln(data.vulns[key])
    if re.fullmatch(r"(?i)(kb)?\s*\d{6,7}", key) and query.normalize_kb(key) in data.fixes:
        return _show_fix(data.fixes[query.normalize_kb(key)])
    if key in data.products or key in data.names:
        return _show_product(query.product(key))
    if key in data.actions:
        return _show_action(data.actions[key])
    raise ValueError(f"no knowledge-base entry {entry_id!r} (try a finding id like ms17-010, a KB like KB4012212, a product like windows-7-sp1 or an action id)")


def _package_lines(fix, product, arch: str | None, indent: str = "      ", addresses: bool = True) -> list[str]:
    """The package per architecture and language (English and Chinese at least for per-language updates), or why there is none.

    `addresses=False` leaves the download addresses out (the HTML report stays free of links; bundle.csv has them)."""
    out = []
    for a in [arch] if arch else list(product.architectures):
        for c in packages(fix, product, a):
            label = f"{a}, {c.language}" if c.language else a
            if c.file:
                out.append(f"{indent}file ({label}): {c.file.name}")
                if addresses or not c.file.url:
                    out.append(f"{indent}  {c.file.url}" if c.file.url else f"{indent}  no address: {c.reason}")
            else:
                out.append(f"{indent}no file ({label}): {c.reason}")
        more = other_languages(fix, product, a)
        if more:
            out.append(f"{indent}other languages ({a}): {', '.join(more)} (smbsentry kb show {fix.kb})")
    return out


def which_kb(os_text: str, vuln_id: str, addresses: bool = True) -> str:
    """Which updates fix `vuln_id` on the OS described by `os_text`, with prerequisites, file names and (`addresses`) download addresses."""
    v = query.vulnerability(vuln_id)
    m = query.product_from_os_string(os_text)
    p, arch = m.product, m.architecture
    head = f"{p.name}{' ' + arch if arch else ''}: {v.id} ({v.title})"
    lines = [head] + [f"  note: {a}" for a in m.assumed]
    if not query.is_affected(v.id, p, arch):
        if p.id in v.unassessed:
            lines.append(f"  {p.name} was out of support when {v.bulletin} came out and was not assessed: treat it as affected, upgrade it.")
        else:
            lines.append(f"  not affected ({v.affected_text or 'see kb show ' + v.id}).")
        return "\n".join(lines)
    options = query.fixes_for(v.id, p, arch)
    if not options:
        lines.append(f"  no update exists for {p.name}{': ' + v.fix_text if v.fix_text else ''}.")
        acts = query.actions_for(v.id, p)
        if acts:
            lines.append("  instead: " + "; ".join(f"{a.id} ({a.text_en})" for a in acts))
        return "\n".join(lines)
    level = options[0].product
    sps = [pre for pre in options[0].prerequisites if pre.kind == "service-pack"]
    if sps:
        lines.append(f"  {p.name} cannot take these updates (\"update not applicable\"): first install "
                     + ", then ".join(f"{pre.kb} ({pre.name})" for pre in sps) + f", restart, then one of:")
    else:
        lines.append("  install one of:")
    for o in options:
        day = o.fix.released_on(level.id)
        lines.append(f"  - {o.fix.kb}: {day:%Y-%m} {KIND_LABELS[o.fix.kind]}" if day else f"  - {o.fix.kb}: {KIND_LABELS[o.fix.kind]}")
        if o.note:
            later = o.later()
            lines.append(f"      {o.note}" + (f" (e.g. {', '.join(later)})" if later else ""))
        extra = [pre for pre in o.prerequisites if pre.kind != "service-pack"]
        for pre in extra:
            lines.append(f"      needs {pre.kb} ({pre.name}) first")
        lines += _package_lines(o.fix, level, arch, addresses=addresses)
        if o.fix.fixed_builds.get(level.build):
            lines.append(f"      OS build {level.build}.{o.fix.fixed_builds[level.build]} or later shows it is installed")
    for pre in sps:
        sp_from = next((q for q in [p, *(lvl for _, lvl in query.service_pack_path(p))] if pre.kb in (q.next_service_pack or ())), p)
        lines.append(f"  {pre.kb} ({pre.name}):")
        lines += _package_lines(kb().fixes[pre.kb], sp_from, arch, indent="    ", addresses=addresses)
    fvs = [fv for o in options for fv in o.fix.fixed_versions if level.id in fv.products]
    ids = [o.fix.kb for o in options]
    # Alibaba Cloud's WannaCry guide, question 3: Get-HotFix from Vista SP2 / Server 2008 SP2 on; systeminfo / wmic before.
    check = f"Get-HotFix -Id {','.join(ids)}" if level.family != "windows-nt5" else f"wmic qfe get HotFixID | findstr /i \"{' '.join(ids)}\""
    if fvs:
        check += " or " + " / ".join(sorted({f"{options[0].fix.fixed_file} >= {fv.text}" for fv in fvs}))
    lines.append(f"  check after the restart: {check}")
    return "\n".join(lines)


def catalog_info() -> str:
    """`smbsentry kb info`: the update catalog in use, its source and what it holds."""
    data = kb()
    c = data.catalog
    if c is None:
        return "no update catalog (catalog.json) is installed: verdicts rely on fixes.json alone"
    kinds = ", ".join(f"{n} {KIND_LABELS.get(k, k)}{'s' if n != 1 else ''}" for k, n in sorted(c.counts.items(), key=lambda x: -x[1]))
    lines = [f"update catalog of {c.date} ({c.path})",
             f"  {sum(c.counts.values())} updates: {kinds}",
             f"  {c.products} products; newest update KB{c.newest_kb}; {len(data.fixes)} updates known in all with fixes.json",
             f"  source: {c.source['title']}, {c.source['url']} ({c.source['licence']})"]
    if c.source.get("file"):
        lines.append(f"  file: {c.source['file']}" + (f" sha256 {c.source['sha256']}" if c.source.get("sha256") else ""))
    if c.build_source:
        lines.append(f"  build revisions: {c.build_source['title']}, {c.build_source['url']} ({c.build_source['licence']})")
    lines.append("  an installed update newer than this catalog makes a verdict unknown, never missing: `smbsentry kb update FILE` loads a newer one")
    return "\n".join(lines)


def catalog_update(path) -> str:
    """`smbsentry kb update FILE`: validate a newer export and keep it for the next runs."""
    from pathlib import Path

    from . import catalog as _catalog
    from .store import kb as _kb

    data = _kb()
    current = data.catalog.date if data.catalog else None
    base = {k for k, f in data.fixes.items() if _catalog.SOURCE_ID not in f.source}
    try:
        target, new = _catalog.install(Path(path), set(data.products), base, current or __import__("datetime").date.min)
    except _catalog.CatalogError as exc:
        raise ValueError(str(exc)) from None
    _kb.cache_clear()
    return (f"update catalog of {new.date} installed as {target} ({sum(new.counts.values())} updates, {new.products} products); "
            f"it replaces the catalog of {current} from the next run on")
