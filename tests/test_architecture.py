"""The module import graph of src/smbsentry: no cycles, and arrows that point one way (issue 18, item 6).

How the graph is built (read from the source with `ast`, nothing is imported):
* every `import` and `from ... import` statement counts, wherever it stands: at
  module level, inside a function, under `if TYPE_CHECKING:` or in a `try:`.  A
  lazy import only hides a dependency, it does not remove it.
* `import a.b.c` is an arrow to a.b.c.
* `from a.b import x` is an arrow to a.b (its namespace is read), and also to
  a.b.x when x is a submodule.  So `from . import sibling` inside a package
  whose __init__ imports that sibling back is a cycle, as Python sees it.
* relative imports are resolved; imports of anything outside smbsentry are ignored.

Layers, top to bottom (a module may import its own package or a lower layer;
the packages that share a layer are peers and may not import each other):
    cli -> web | engines -> app -> report -> remediate -> resultfile
        -> scan | audit | detect | rules | lab -> store
        -> checks | services | i18n -> kb | model | textio -> protocol
The root package (smbsentry/__init__: the version string) imports nothing and
may be read by anyone.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "smbsentry"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    # The dashboard and the scan engines are front ends of the application layer, as the
    # command line is: they start scans through app/ (one request, one run), never the CLI.
    ("web", "engines"),
    ("app",),
    ("report",),
    ("remediate",),
    ("resultfile",),
    ("scan", "audit", "detect", "rules", "lab"),
    ("store",),
    ("checks", "services", "i18n", "discover"),
    ("kb", "model", "textio"),
    ("protocol",),
)

# Arrows that are known to be wrong and are fixed in someone else's part of
# issue 18; each names who removes it.  The test fails when one of these
# disappears (delete the line then), so the list cannot go stale.
KNOWN_CYCLES: dict[frozenset[str], str] = {
    # store/db.py lazily imports store/migrate.py, which takes StoreError from db;
    # store/__init__ re-exports db, which reads `from . import diff, liveness`.
    # store/db.py belongs to the web-dashboard work of issue 18, which breaks it.
    frozenset({"smbsentry.store", "smbsentry.store.db", "smbsentry.store.migrate"}): "web dashboard (store/db.py)",
}
KNOWN_WRONG_WAY: dict[tuple[str, str], str] = {
    # detect/ stores through the store; detect/ is being split into rooms in parallel.
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in (SRC / ROOT).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        out[".".join(parts)] = (path, is_pkg)
    return out


def _owner(name: str, modules) -> str | None:
    """The module a dotted name lives in (a.b.func -> a.b)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, (path, is_pkg) in modules.items():
        package = name if is_pkg else name.rpartition(".")[0]
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets.append(source)
                targets += [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in modules]
        for t in targets:
            if t == ROOT or t.startswith(ROOT + "."):
                owner = _owner(t, modules)
                if owner and owner != name:
                    edges[name].add(owner)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(frozenset(comp))
    return found


def layer_of(module: str) -> int | None:
    top = module.split(".")[1] if "." in module else None
    for rank, layer in enumerate(LAYERS):
        if top in layer:
            return rank
    return None


def wrong_way(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Arrows from a module to one in a higher layer, or to a peer package of its own layer."""
    out = set()
    for a, targets in edges.items():
        for b in targets:
            if b == ROOT or a.split(".")[:2] == b.split(".")[:2]:
                continue
            la, lb = layer_of(a), layer_of(b)
            if la is not None and lb is not None and lb <= la:
                out.add((a, b))
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_graph_is_read(graph):
    """The reader sees real arrows, lazy and TYPE_CHECKING ones included (the test could not pass on an empty graph)."""
    assert "smbsentry.protocol.smb1" in graph["smbsentry.lab.smb1_server"]
    assert "smbsentry.checks.registry" in graph["smbsentry.store.diff"]  # an import inside a function
    assert "smbsentry.services.der" in graph["smbsentry.services.kerberos"]
    # a planted cycle is found
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_every_top_level_part_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in (SRC / ROOT).iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    unplaced = sorted(t for t in tops if layer_of(f"{ROOT}.{t}") is None)
    assert not unplaced, f"place these in LAYERS: {unplaced}"


def test_the_root_package_imports_nothing(graph):
    assert not graph.get(ROOT)


def test_no_import_cycles(graph):
    found = set(cycles(graph))
    unknown = sorted(sorted(c) for c in found if c not in KNOWN_CYCLES)
    assert not unknown, f"import cycles: {unknown}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"fixed: remove from KNOWN_CYCLES: {gone}"


def test_arrows_point_down(graph):
    found = wrong_way(graph)
    unknown = sorted(found - set(KNOWN_WRONG_WAY))
    assert not unknown, "imports against the layer order (cli -> web|engines -> app -> ... -> protocol): " + "; ".join(f"{a} -> {b}" for a, b in unknown)
    gone = sorted(set(KNOWN_WRONG_WAY) - found)
    assert not gone, f"fixed: remove from KNOWN_WRONG_WAY: {gone}"


# The SMB ports as a list, spelled in any of the ways the code once spelled them.
_SMB_PORT_LISTS = re.compile(r"\(\s*445\s*,\s*139\s*\)|\{\s*(?:445\s*,\s*139|139\s*,\s*445)\s*\}|[\"']445\s*,\s*139[\"']"
                             r"|\(\s*[\"']445[\"']\s*,\s*[\"']139[\"']\s*\)")


def test_the_smb_ports_are_declared_once():
    """445 and 139 as SMB's ports are protocol/transport.py's; everyone else imports them.  The detector's
    compiled hot loops compare against the literals (C integer comparisons, no global read per packet):
    those literals must be the declared ports."""
    from smbsentry.protocol.transport import SMB_PORTS, SMB_PORTS_TEXT

    assert SMB_PORTS == (445, 139) and SMB_PORTS_TEXT == "445,139"
    home = SRC / ROOT / "protocol" / "transport.py"
    again = sorted(str(p.relative_to(SRC)) for p in (SRC / ROOT).rglob("*.py")
                   if p != home and _SMB_PORT_LISTS.search(p.read_text("utf-8")))
    assert not again, f"the SMB ports spelled out again (import them from protocol/transport.py): {again}"
    assert _SMB_PORT_LISTS.search('ports=(445, 139)') and _SMB_PORT_LISTS.search('default="445,139"')
    for hot in ("detect/engine.py", "detect/pcap.py"):
        compared = {c.value for n in ast.walk(ast.parse((SRC / ROOT / hot).read_text("utf-8")))
                    if isinstance(n, ast.Compare) and isinstance(n.left, ast.Name) and n.left.id in ("sport", "dport")
                    for c in n.comparators if isinstance(c, ast.Constant) and isinstance(c.value, int)}
        assert compared == set(SMB_PORTS), hot
