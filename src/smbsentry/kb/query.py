"""Questions other packages ask the knowledge base.

The audit evaluator asks "which installed update proves this fix, and how";
the remediation planner (later) asks "what do I install on this product, in
which order, with which files and commands".  Answers are built from the
data files only, and the expensive ones (supersedence closures) are cached
per (bulletin, product) because an audit asks them for thousands of hosts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from .model import Action, Fix, Prerequisite, Product, Vulnerability, version_tuple
from .osname import ProductMatch, product_from_os_string
from .store import kb

__all__ = [
    "Cover", "FixOption", "ProductMatch", "product", "vulnerability", "fix", "action", "normalize_kb", "supersedes_chain",
    "superseded_by", "supersedence_path", "covering_updates", "fixed_build", "file_verdict", "fixes_for", "actions_for",
    "is_affected", "later_rule", "product_from_os_string", "service_pack_path", "chain_of", "first_fix", "chain_text",
    "affected_summary",
]


def normalize_kb(text: str) -> str:
    """'4012212', 'kb4012212', 'KB 4012212' -> 'KB4012212'."""
    t = text.strip().upper().replace(" ", "")
    return t if t.startswith("KB") else "KB" + t


def product(ref: str | Product) -> Product:
    if isinstance(ref, Product):
        return ref
    data = kb()
    found = data.products.get(ref) or data.names.get(ref)
    if found is None:
        raise ValueError(f"unknown product {ref!r}")
    return found


def vulnerability(vuln_id: str) -> Vulnerability:
    try:
        return kb().vulns[vuln_id]
    except KeyError:
        raise ValueError(f"unknown finding id {vuln_id!r}") from None


def fix(kb_id: str) -> Fix:
    try:
        return kb().fixes[normalize_kb(kb_id)]
    except KeyError:
        raise ValueError(f"unknown update {kb_id!r}") from None


def action(action_id: str) -> Action:
    try:
        return kb().actions[action_id]
    except KeyError:
        raise ValueError(f"unknown action {action_id!r}") from None


def _walk(start: str, edges: dict[str, tuple[str, ...]]) -> list[str]:
    seen, out, queue = {start}, [], deque([start])
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                out.append(nxt)
                queue.append(nxt)
    return out


def supersedes_chain(kb_id: str) -> list[str]:
    """Every update `kb_id` replaces, directly or through others, nearest first."""
    data = kb()
    return _walk(fix(kb_id).kb, {k: f.supersedes for k, f in data.fixes.items()})


def superseded_by(kb_id: str) -> list[str]:
    """Every update that replaces `kb_id`, directly or through others, nearest first."""
    return _walk(fix(kb_id).kb, kb().superseded_by)


def supersedence_path(newer: str, older: str) -> list[str] | None:
    """[newer, ..., older] following supersedes links, or None."""
    data = kb()
    newer, older = normalize_kb(newer), normalize_kb(older)
    prev: dict[str, str | None] = {newer: None}
    queue = deque([newer])
    while queue:
        cur = queue.popleft()
        if cur == older:
            path = [cur]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return path[::-1]
        for nxt in data.fixes[cur].supersedes if cur in data.fixes else ():
            if nxt not in prev:
                prev[nxt] = cur
                queue.append(nxt)
    return None


@dataclass(frozen=True, slots=True)
class Cover:
    """How one update proves a fix on one product: `how` is direct, supersedes, rule or build."""

    kb: str
    how: str
    chain: tuple[str, ...]  # (this kb, ..., the fixing kb) for supersedes
    evidence: str
    rank: int  # smaller is more direct


def _chain_text(chain: tuple[str, ...], fixes: dict[str, Fix], pid: str) -> str:
    head = f"{chain[0]} ({fixes[chain[0]].label(pid)}) supersedes {chain[1]}"
    rest = chain[2:]
    if len(rest) <= 2:
        return head + "".join(f", which supersedes {k}" for k in rest)
    return head + f", which supersedes {rest[0]}, and so on through {len(rest) - 2} more updates to {rest[-1]}"


def later_rule(bulletin: str, product_id: str):
    return next((r for r in kb().rules if r.bulletin == bulletin and product_id in r.products), None)


@lru_cache(maxsize=4096)
def covering_updates(bulletin: str, product_id: str) -> dict[str, Cover]:
    """Every known update that is, supersedes, or (by a rule or its build) carries the fix of `bulletin` on a product."""
    data = kb()
    p = data.products[product_id]
    out: dict[str, Cover] = {}
    queue: deque[str] = deque()
    for f in data.by_bulletin.get(bulletin, ()):
        if product_id in f.products:
            out[f.kb] = Cover(f.kb, "direct", (f.kb,), f"{f.kb} ({f.label(product_id)}) is installed and fixes {bulletin}", 0)
            queue.append(f.kb)

    def close() -> None:
        while queue:
            cur = queue.popleft()
            for newer in data.superseded_by.get(cur, ()):
                nf = data.fixes[newer]
                # a security-only update carries its own month only, whatever its supersedence says
                if newer in out or product_id not in nf.products or nf.kind == "security-only":
                    continue
                chain = (newer,) + out[cur].chain
                out[newer] = Cover(newer, "supersedes", chain, _chain_text(chain, data.fixes, product_id), len(chain) - 1)
                queue.append(newer)

    close()
    _later_in_chain(bulletin, product_id, out)
    close()
    fixed = fixed_build(bulletin, product_id)
    if fixed and p.ubr_is_proof:
        build, ubr, fixing = fixed
        for f in data.fixes.values():
            got = f.fixed_builds.get(build)
            if f.kb not in out and product_id in f.products and got is not None and got >= ubr:
                out[f.kb] = Cover(f.kb, "build", (f.kb,), f"{f.kb} ({f.label(product_id)}) brings OS build {build}.{got}, at or above {build}.{ubr} ({fixing})", 40)
    rule = later_rule(bulletin, product_id)
    if rule:
        for f in data.fixes.values():
            day = f.released_on(product_id)
            if f.kb not in out and product_id in f.products and f.kind in rule.kinds and day and day >= rule.released_from:
                out[f.kb] = Cover(f.kb, "rule", (f.kb,), f"{f.kb} ({f.label(product_id)} of {p.name}) carries {bulletin}: {rule.text}", 50)
                queue.append(f.kb)
        close()
    return out


CHAIN_KINDS = ("cumulative", "monthly-rollup", "preview-rollup")


@lru_cache(maxsize=1024)
def chain_of(product_id: str) -> tuple[Fix, ...]:
    """The product's cumulative updates or monthly rollups, oldest first: each carries every earlier one's fixes."""
    data = kb()
    members = [f for f in data.fixes.values() if product_id in f.products and f.kind in CHAIN_KINDS and f.released_on(product_id)]
    return tuple(sorted(members, key=lambda f: (f.released_on(product_id), f.number)))


def first_fix(bulletin: str, product_id: str) -> Fix | None:
    """The earliest update that fixes `bulletin` on the product directly."""
    direct = [f for f in kb().by_bulletin.get(bulletin, ()) if product_id in f.products and f.released_on(product_id)]
    return min(direct, key=lambda f: (f.released_on(product_id), f.kind not in CHAIN_KINDS, f.number), default=None)


def chain_text(product_id: str, newer: Fix, fixing: Fix) -> str:
    """'KB5013945 (2022-05 cumulative update) -> KB5012599 -> ... 24 more ... -> KB4551762': the updates in between, by date."""
    chain = [f for f in chain_of(product_id) if fixing.released_on(product_id) <= f.released_on(product_id) <= newer.released_on(product_id)]
    names = [f.kb for f in reversed(chain)]
    if fixing.kb not in names:
        names.append(fixing.kb)
    if len(names) > 5:
        names = names[:2] + [f"... {len(names) - 3} more ..."] + names[-1:]
    return " -> ".join(names)


def _later_in_chain(bulletin: str, product_id: str, out: dict[str, Cover]) -> None:
    """Any later cumulative update or rollup of the release carries the fix, when the fix itself came in the chain's era."""
    data = kb()
    chain, fixing = chain_of(product_id), first_fix(bulletin, product_id)
    if not chain or fixing is None:
        return
    day = fixing.released_on(product_id)
    if day < chain[0].released_on(product_id):
        return  # the fix predates the rollups: whether they carry it is not in the data (evaluate says unknown)
    p = data.products[product_id]
    for f in chain:
        if f.kb in out or f.released_on(product_id) < day:
            continue
        kind = "cumulative update" if f.kind == "cumulative" else "monthly rollup"
        out[f.kb] = Cover(f.kb, "chain", (f.kb, fixing.kb), (
            f"{f.kb} ({f.label(product_id)}) is a later {kind} of {p.name} than {fixing.kb} ({fixing.label(product_id)}), which fixed {bulletin}, "
            f"and each {kind} carries the fixes of the earlier ones: {chain_text(product_id, f, fixing)}"), 45)


def fixed_build(bulletin_or_vuln: str, product_ref: str | Product) -> tuple[int, int, str] | None:
    """(build, lowest fixed UBR, the update) for a product whose build revision can prove the fix."""
    data = kb()
    bulletin = data.vulns[bulletin_or_vuln].bulletin if bulletin_or_vuln in data.vulns else bulletin_or_vuln
    p = product(product_ref)
    best = None
    for f in data.by_bulletin.get(bulletin, ()):
        if p.id in f.products and p.build in f.fixed_builds:
            cand = (p.build, f.fixed_builds[p.build], f.kb)
            best = cand if best is None or cand[1] < best[1] else best
    return best


def file_verdict(bulletin: str, product_ref: str | Product, name: str, version: str) -> tuple[bool, str] | None:
    """(fixed?, 'threshold (KB)') for a host file version, or None when no threshold applies."""
    p = product(product_ref)
    host = version_tuple(version)
    for f in kb().by_bulletin.get(bulletin, ()):
        if f.fixed_file and f.fixed_file.lower() == name.lower():
            for fv in f.fixed_versions:
                if p.id in fv.products and fv.covers(host):
                    label = f"{fv.text} ({fv.branch})" if fv.branch else fv.text
                    return host >= fv.version, f"{label} ({f.kb})"
    return None


def service_pack_path(product_ref: str | Product) -> list[tuple[str, Product]]:
    """[(service-pack KB, the level it leads to), ...] from a product upward."""
    data, p, out = kb(), product(product_ref), []
    while p.next_service_pack:
        sp_kb, nxt = p.next_service_pack
        p = data.products[nxt]
        out.append((sp_kb, p))
    return out


@dataclass(frozen=True, slots=True)
class FixOption:
    """One update that fixes a vulnerability on a product, with what must come first."""

    fix: Fix
    product: Product  # the service-pack level the update installs on
    prerequisites: tuple[Prerequisite, ...]
    architecture: str | None
    later_updates: bool  # any later update of the same kind and product also fixes it
    superseded_by: tuple[str, ...] = ()

    @property
    def files(self):
        """Package files for the host's architecture, or for every architecture the product has."""
        files = self.fix.files_for(self.architecture, self.product.id)
        return tuple(f for f in files if f.architecture in self.product.architectures)

    def later(self, limit: int = 3) -> list[str]:
        """A few later updates in the data that also carry the fix (the rule's examples)."""
        if not self.later_updates:
            return []
        covers = covering_updates(self.fix.addresses[0], self.product.id) if self.fix.addresses else {}
        newer = [kb().fixes[k] for k, c in covers.items() if c.how in ("supersedes", "rule", "build") and kb().fixes[k].kind == self.fix.kind]
        newer.sort(key=lambda f: f.released_on(self.product.id) or date.min)
        return [f.kb for f in newer[:limit]]

    def to_dict(self) -> dict:
        files = self.files
        return {
            "kb": self.fix.kb, "kind": self.fix.kind, "title": self.fix.title,
            "released": (d.isoformat() if (d := self.fix.released_on(self.product.id)) else None),
            "prerequisites": [p.to_dict() for p in self.prerequisites], "files": [f.name for f in files],
            "note": self.note,
        }

    @property
    def note(self) -> str | None:
        notes = []
        if self.later_updates:
            kind = "cumulative update" if self.fix.kind == "cumulative" else "monthly rollup"
            notes.append(f"or any later {kind} of {self.product.name}")
        if self.superseded_by:
            notes.append("superseded on this system by " + ", ".join(self.superseded_by))
        return "; ".join(notes) or None


KIND_ORDER = {"security-only": 0, "standalone": 0, "monthly-rollup": 1, "cumulative": 1, "preview-rollup": 2}


def fixes_for(vuln_id: str, product_ref: str | Product, arch: str | None = None, installed: frozenset[str] | set[str] = frozenset()) -> list[FixOption]:
    """The updates to install for a vulnerability: on the product's own level, else on the first service-pack level that has one.

    Each option lists the prerequisites still needed: the service packs on the way up, then
    updates like KB2919355 unless `installed` shows them.  Previews of rollups are not offered.
    """
    options = _options(vuln_id, product(product_ref).id, arch)
    if not installed:
        return list(options)
    return [FixOption(o.fix, o.product, tuple(p for p in o.prerequisites if p.kind == "service-pack" or p.kb not in installed),
                      o.architecture, o.later_updates, o.superseded_by) for o in options]


@lru_cache(maxsize=4096)
def _options(vuln_id: str, product_id: str, arch: str | None) -> tuple[FixOption, ...]:
    v = vulnerability(vuln_id)
    if not v.bulletin:
        return ()
    data = kb()
    p = data.products[product_id]
    path = service_pack_path(p)
    for depth, level in enumerate([p] + [lvl for _, lvl in path]):
        found = [f for f in data.by_bulletin.get(v.bulletin, ())
                 if level.id in f.products and f.kind != "preview-rollup" and (arch is None or arch in f.architectures)]
        if not found:
            continue
        steps = [Prerequisite(sp_kb, data.fixes[sp_kb].title, "service-pack", (lv.id,)) for sp_kb, lv in path[:depth]]
        rule = later_rule(v.bulletin, level.id)
        out = []
        for f in sorted(found, key=lambda f: (KIND_ORDER.get(f.kind, 3), f.released_on(level.id) or date.min, f.kb)):
            needs = steps + [pre for pre in f.prerequisites if pre.kind == "update" and level.id in pre.products]
            newer = tuple(k for k in superseded_by(f.kb) if level.id in data.fixes[k].products and data.fixes[k].kind == "standalone")
            out.append(FixOption(f, level, tuple(needs), arch, bool(rule and f.kind in rule.kinds), newer))
        return tuple(out)
    return ()


def affected_summary(v: Vulnerability) -> str:
    """The systems a finding affects, as evidence names them: its affected_text, else its products' lines."""
    return v.affected_text or ", ".join(sorted({product(x).line for x in v.affected_products}))


def is_affected(vuln_id: str, product_ref: str | Product, arch: str | None = None) -> bool:
    v, p = vulnerability(vuln_id), product(product_ref)
    return any(p.id in a.products and (a.architectures is None or arch is None or arch in a.architectures) for a in v.affected)


def actions_for(vuln_id: str, product_ref: str | Product | None = None) -> list[Action]:
    """The vulnerability's workaround actions that apply to the product's family (all of them without a product)."""
    v, data = vulnerability(vuln_id), kb()
    fam = product(product_ref).family if product_ref else None
    return [data.actions[a] for a in v.workarounds if fam is None or fam in data.actions[a].applies_to]
