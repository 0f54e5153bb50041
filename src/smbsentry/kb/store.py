"""Load, validate and index the knowledge-base data files.

Every file is checked against its JSON Schema (schema.py) and then for
references a schema cannot see (a KB that supersedes an unknown KB, an
action id nobody defined, a source that is not listed).  A broken file must
stop the program with a message naming the file and the place in it, not
produce a wrong verdict three modules later.

The packaged files are sealed: `data/sealed.json` holds, per file, the
SHA-256 of its bytes and of its schema as they were when
scripts/seal_kb_data.py validated them.  A packaged file whose digest still
matches skips the schema check (importing jsonschema and walking the
schemas is most of the start-up time); any edit to a file or a schema
changes the digest, so such a file is checked in full as before.  The
reference checks always run, and every other directory (tests, a copy, the
user's catalog from `kb update`) is always checked in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from . import catalog as _catalog
from .model import (Action, Affected, FamilyPlan, FileGap, FileRef, FileVersion, FindingPlan, Fix, InstallerExit, PlanStep,
                    Prerequisite, Product, Remediation, Rule, Vulnerability, as_tuple, parse_date, version_tuple)
from .schema import SCHEMAS, digest


class KbDataError(ValueError):
    """A data file is malformed: str() names the file and the JSON path."""

    def __init__(self, file: str, where: str, message: str):
        self.file, self.where, self.message = file, where, message
        super().__init__(f"{file}: {where}: {message}")


@dataclass
class Kb:
    sources: dict[str, dict]
    products: dict[str, Product]
    names: dict[str, Product]
    lines: dict[str, list[Product]]
    fixes: dict[str, Fix]
    superseded_by: dict[str, tuple[str, ...]]
    rules: list[Rule]
    vulns: dict[str, Vulnerability]
    findings: dict[str, dict]  # raw entries: kb.findings.meta() returns these
    actions: dict[str, Action]
    builds: dict
    by_bulletin: dict[str, list[Fix]] = field(default_factory=dict)
    catalog: _catalog.CatalogInfo | None = None
    remediation: Remediation | None = None
    service_ports: dict[str, tuple[int, ...]] = field(default_factory=dict)  # service -> its ports, in probe order
    dc_levels: dict[int, str] = field(default_factory=dict)  # domainControllerFunctionality -> name
    osnames: dict = field(default_factory=dict)  # osnames.json as validated: read by kb/osname.py
    default_workgroups: frozenset[str] = frozenset()  # upper case: the workgroup of a host that joined no domain


def _path(parts) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


SEALS = "sealed.json"


def seals(directory: Path) -> dict[str, str]:
    """The packaged files' seals (file name -> digest); none when the seal file is missing or unreadable."""
    try:
        doc = json.loads((directory / SEALS).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in doc.get("files", {}).items() if isinstance(v, str)} if isinstance(doc, dict) else {}


def read(directory: Path, name: str, sealed: dict[str, str] | None = None) -> dict:
    """Parse and schema-check one file (not when `sealed` holds its digest); errors name the file and the path."""
    where = directory / name
    try:
        raw = where.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise KbDataError(name, "$", "file is missing") from None
    except UnicodeDecodeError as exc:
        raise KbDataError(name, "$", f"not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KbDataError(name, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    if sealed and sealed.get(name) == digest(raw, SCHEMAS[name]):
        return data
    import jsonschema  # only here: its import alone costs more start-up time than loading every sealed file

    validator = jsonschema.Draft202012Validator(SCHEMAS[name])
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        raise KbDataError(name, _path(err.absolute_path), err.message)
    return data


class _Refs:
    """Collects reference checks so each failure names file and path."""

    def __init__(self, sources: dict):
        self.sources = sources

    def need(self, ok: bool, file: str, parts, message: str) -> None:
        if not ok:
            raise KbDataError(file, _path(parts), message)

    def src(self, value, file: str, parts, local: dict | None = None) -> tuple[str, ...]:
        ids = as_tuple(value)
        for i, s in enumerate(ids):
            self.need(s in self.sources or (local is not None and s in local), file, parts + ([i] if isinstance(value, list) else []),
                      f"unknown source {s!r} (add it to sources.json)")
        return ids


def _products(raw: list, refs: _Refs) -> dict[str, Product]:
    out: dict[str, Product] = {}
    for i, p in enumerate(raw):
        refs.need(p["id"] not in out, "products.json", ["products", i, "id"], f"duplicate product id {p['id']!r}")
        nsp = p.get("next_service_pack")
        out[p["id"]] = Product(
            id=p["id"], name=p["name"], line=p["line"], family=p["family"], role=p["role"], version=p["version"], build=p["build"],
            service_pack=p["service_pack"], editions=tuple(p["editions"]), architectures=tuple(p["architectures"]),
            end_of_support=parse_date(p["end_of_support"]), ubr_is_proof=p["ubr_is_proof"],
            source=refs.src(p["source"], "products.json", ["products", i, "source"]), aliases=tuple(p.get("aliases", ())),
            other_builds=tuple(p.get("other_builds", ())), next_service_pack=(nsp["kb"], nsp["product"]) if nsp else None,
            service_pack_support_end=parse_date(p.get("service_pack_support_end")), lifecycle_note=p.get("lifecycle_note"))
    return out


def _update_files(raw: dict, refs: _Refs, fixes_raw: list) -> dict[str, tuple[list[FileRef], list[FileGap]]]:
    """update_files.json -> {kb: (files, gaps)}; each entry must name a known update, its products and architectures, and a source."""
    known = {e["kb"]: e for e in fixes_raw}
    out: dict[str, tuple[list[FileRef], list[FileGap]]] = {}
    for key in ("files", "gaps"):
        for i, f in enumerate(raw[key]):
            at = [key, i]
            fix = known.get(f["kb"])
            refs.need(fix is not None, "update_files.json", at + ["kb"], f"no update {f['kb']} in fixes.json")
            for j, pid in enumerate(f["products"]):
                refs.need(pid in fix["products"], "update_files.json", at + ["products", j], f"{pid!r} is not one of {f['kb']}'s products")
            refs.need(f["architecture"] in fix["architectures"], "update_files.json", at + ["architecture"],
                      f"{f['kb']} is not listed for {f['architecture']} in fixes.json")
            src = refs.src(f["source"], "update_files.json", at + ["source"])
            files, gaps = out.setdefault(f["kb"], ([], []))
            if key == "files":
                files.append(FileRef(f["name"], f["architecture"], f["url"], f["language"], src, tuple(f["products"]), f.get("note")))
            else:
                gaps.append(FileGap(tuple(f["products"]), f["architecture"], f["language"], f["reason"], src))
    return out


def _fix(e: dict, i: int, refs: _Refs, products: dict, files: tuple[list, list] = ([], [])) -> Fix:
    at = ["fixes", i]
    for j, pid in enumerate(e["products"]):
        refs.need(pid in products, "fixes.json", at + ["products", j], f"unknown product {pid!r}")
    for pid in e.get("released_for", {}):
        refs.need(pid in e["products"], "fixes.json", at + ["released_for", pid], f"{pid!r} is not one of this fix's products")
    versions = []
    ff = e.get("fixed_file")
    for j, v in enumerate(ff["versions"] if ff else ()):
        for pid in v["products"]:
            refs.need(pid in e["products"], "fixes.json", at + ["fixed_file", "versions", j], f"{pid!r} is not one of this fix's products")
        versions.append(FileVersion(tuple(v["products"]), v["version"], version_tuple(v["version"]), v.get("branch"),
                                    tuple(v["revisions"]) if "revisions" in v else None))
    prereqs = []
    for j, p in enumerate(e.get("prerequisites", ())):
        for pid in [*p.get("provides", ()), *p.get("products", ())]:
            refs.need(pid in products, "fixes.json", at + ["prerequisites", j], f"unknown product {pid!r}")
        prereqs.append(Prerequisite(p["kb"], p["name"], p["kind"], tuple(p.get("provides", ())), tuple(p.get("products", ()))))
    return Fix(kb=e["kb"], title=e["title"], kind=e["kind"], products=tuple(e["products"]), architectures=tuple(e["architectures"]),
               released=parse_date(e["released"]), addresses=tuple(e["addresses"]), supersedes=tuple(e["supersedes"]),
               source=refs.src(e["source"], "fixes.json", at + ["source"]),
               released_for={k: parse_date(v) for k, v in e.get("released_for", {}).items()},
               fixed_builds={b["build"]: b["ubr"] for b in e.get("fixed_builds", ())}, fixed_file=ff["name"] if ff else None,
               fixed_versions=tuple(versions), prerequisites=tuple(prereqs), files=tuple(files[0]), note=e.get("note"),
               gaps=tuple(files[1]))


def _fixes(raw: dict, refs: _Refs, products: dict, files: dict) -> tuple[dict[str, Fix], list[Rule]]:
    fixes: dict[str, Fix] = {}
    for i, e in enumerate(raw["fixes"]):
        refs.need(e["kb"] not in fixes, "fixes.json", ["fixes", i, "kb"], f"duplicate update {e['kb']}")
        fixes[e["kb"]] = _fix(e, i, refs, products, files.get(e["kb"], ([], [])))
    for i, f in enumerate(fixes.values()):
        for j, old in enumerate(f.supersedes):
            refs.need(old in fixes, "fixes.json", ["fixes", i, "supersedes", j], f"supersedes unknown update {old}")
        for j, p in enumerate(f.prerequisites):
            refs.need(p.kb in fixes, "fixes.json", ["fixes", i, "prerequisites", j, "kb"], f"prerequisite {p.kb} has no entry")
    for i, p in enumerate(products.values()):
        if p.next_service_pack:
            refs.need(p.next_service_pack[0] in fixes and p.next_service_pack[1] in products, "products.json",
                      ["products", i, "next_service_pack"], f"unknown service pack {p.next_service_pack}")
    rules = []
    for i, r in enumerate(raw.get("rules", ())):
        for j, pid in enumerate(r["products"]):
            refs.need(pid in products, "fixes.json", ["rules", i, "products", j], f"unknown product {pid!r}")
        rules.append(Rule(r["id"], r["bulletin"], tuple(r["kinds"]), tuple(r["products"]), parse_date(r["released_from"]), r["text"],
                          refs.src(r["source"], "fixes.json", ["rules", i, "source"])))
    return fixes, rules


def _vulns(raw: dict, refs: _Refs, products: dict, actions: dict, fixes: dict) -> dict[str, Vulnerability]:
    bulletins = {b for f in fixes.values() for b in f.addresses}
    out = {}
    for vid, e in raw.items():
        at = ["findings", vid]
        affected = []
        for i, a in enumerate(e.get("affected", ())):
            for j, pid in enumerate(a["products"]):
                refs.need(pid in products, "vulnerabilities.json", at + ["affected", i, "products", j], f"unknown product {pid!r}")
            affected.append(Affected(frozenset(a["products"]), frozenset(a["architectures"]) if "architectures" in a else None, a.get("role"),
                                     a.get("component"), as_tuple(a.get("versions", ())), a.get("fixed_version"), tuple(a.get("platforms", ()))))
        for j, act in enumerate(e.get("workarounds", ())):
            refs.need(act in actions, "vulnerabilities.json", at + ["workarounds", j], f"unknown action {act!r}")
        for j, pid in enumerate(e.get("unassessed", ())):
            refs.need(pid in products, "vulnerabilities.json", at + ["unassessed", j], f"unknown product {pid!r}")
        if "bulletin" in e:
            refs.need(e["bulletin"] in bulletins, "vulnerabilities.json", at + ["bulletin"], f"no update addresses {e['bulletin']}")
        module = e.get("module") or {}
        out[vid] = Vulnerability(
            id=vid, title=e["title"], title_zh=e["title_zh"], kind=e["kind"], severity=e["severity"], cves=tuple(e["cves"]),
            references=tuple(e["references"]), source=refs.src(e["source"], "vulnerabilities.json", at + ["source"]), cvss=e.get("cvss"),
            bulletin=e.get("bulletin"), released=parse_date(e.get("released")), ports=tuple(e.get("ports", ())), udp_ports=tuple(e.get("udp_ports", ())), component=e.get("component"),
            fixed_file=e.get("fixed_file"), affected=tuple(affected), workarounds=tuple(e.get("workarounds", ())), module=module.get("name"),
            module_zh=module.get("name_zh"), affected_text=e.get("affected_text"), fix_text=e.get("fix_text"), note=e.get("note"),
            unassessed=frozenset(e.get("unassessed", ())))
    return out


def _actions(raw: list, refs: _Refs) -> dict[str, Action]:
    out = {}
    for i, a in enumerate(raw):
        refs.need(a["id"] not in out, "actions.json", ["actions", i, "id"], f"duplicate action {a['id']!r}")
        out[a["id"]] = Action(a["id"], a["kind"], a["text"]["en"], a["text"]["zh"], tuple(a["applies_to"]),
                              {k: tuple(v) for k, v in a["commands"].items()}, {k: tuple(v) for k, v in a["rollback"].items()},
                              a["reboot"], refs.src(a["source"], "actions.json", ["actions", i, "source"]), a.get("note"),
                              a.get("disrupts"), a.get("verify"))
    return out


def _remediation(raw: dict, refs: _Refs, actions: dict, vulns: dict) -> Remediation:
    """remediation.json: every action, finding and family it names must exist, every entry has a known source."""
    f = "remediation.json"

    def known(parts, action: str | None = None, finding: str | None = None) -> None:
        if action is not None:
            refs.need(action in actions, f, parts, f"unknown action {action!r}")
        if finding is not None:
            refs.need(finding in vulns, f, parts, f"unknown finding {finding!r}")

    families = {}
    for fam, e in raw["families"].items():
        known(["families", fam, "smb1_action"], action=e.get("smb1_action"))
        families[fam] = FamilyPlan(e["label"], e["script"], e.get("smb1_action"), refs.src(e["source"], f, ["families", fam, "source"]))
    findings = {}
    for fid, e in raw["findings"].items():
        known(["findings", fid], finding=fid)
        for i, st in enumerate(e["steps"]):
            known(["findings", fid, "steps", i, "action"], action=st["action"])
        findings[fid] = FindingPlan(tuple(e.get("families", ())), tuple(PlanStep(st["action"], st["phase"], st.get("unless_fact"))
                                                                         for st in e["steps"]), refs.src(e["source"], f, ["findings", fid, "source"]))
    maps = {}
    for key, field_ in (("hardening", "action"), ("samba_manual", "step"), ("settle", "how")):
        maps[key] = {}
        for fid, e in raw[key].items():
            known([key, fid], finding=fid, action=e[field_] if field_ == "action" else None)
            refs.src(e["source"], f, [key, fid, "source"])
            maps[key][fid] = e[field_]
    exits = tuple(InstallerExit(e["code"], e["name"], e["outcome"], e["meaning"],
                                refs.src(e["source"], f, ["installer_exit_codes", i, "source"]))
                  for i, e in enumerate(raw["installer_exit_codes"]))
    refs.need(len({e.code for e in exits}) == len(exits), f, ["installer_exit_codes"], "an exit code is listed twice")
    return Remediation(families, maps["hardening"], maps["samba_manual"], findings, maps["settle"], exits)


def _services(raw: dict, refs: _Refs) -> tuple[dict[str, tuple[int, ...]], dict[int, str], frozenset[str]]:
    """services.json: each service's ports (a port belongs to one service), the AD functional level names and the
    default workgroup names."""
    ports: dict[str, tuple[int, ...]] = {}
    owner: dict[int, str] = {}
    for name, e in raw["services"].items():
        refs.src(e["source"], "services.json", ["services", name, "source"])
        for i, p in enumerate(e["ports"]):
            refs.need(p not in owner, "services.json", ["services", name, "ports", i], f"port {p} is already listed under {owner.get(p)!r}")
            owner[p] = name
        ports[name] = tuple(e["ports"])
    dc = raw["dc_functionality"]
    refs.src(dc["source"], "services.json", ["dc_functionality", "source"])
    wg = raw["default_workgroups"]
    refs.src(wg["source"], "services.json", ["default_workgroups", "source"])
    return ports, {int(k): v for k, v in dc["levels"].items()}, frozenset(n.upper() for n in wg["names"])


def _osnames(raw: dict, refs: _Refs, lines: dict) -> dict:
    """osnames.json: every pattern compiles, every line it names is a product line (or the start of some: "Windows 10")."""
    import re

    f = "osnames.json"
    for key in ("editions", "architectures", "releases", "lines"):
        refs.src(raw[key]["source"], f, [key, "source"])
    for key, list_key in (("architectures", "words"), ("lines", "patterns")):
        for i, (pattern, _) in enumerate(raw[key][list_key]):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise KbDataError(f, _path([key, list_key, i, 0]), f"not a regular expression: {exc}") from None
    for i, (_, line) in enumerate(raw["lines"]["patterns"]):
        refs.need(line in lines or any(known.startswith(line + " ") for known in lines), f, ["lines", "patterns", i, 1],
                  f"no product line {line!r} in products.json")
    return raw


def _samba_native_lm(samba: dict, refs: _Refs, local: dict) -> None:
    """builds.json's Samba NativeLanMan pattern: a regex with a group for the version, and its source."""
    import re

    if "native_lm" not in samba:
        return
    try:
        groups = re.compile(samba["native_lm"]).groups
    except re.error as exc:
        raise KbDataError("builds.json", "$.samba.native_lm", f"not a regular expression: {exc}") from None
    refs.need(groups >= 1, "builds.json", ["samba", "native_lm"], "the pattern needs a group for the version")
    refs.src(samba.get("native_lm_source", ""), "builds.json", ["samba", "native_lm_source"], local)


def _index_names(products: dict[str, Product]) -> tuple[dict, dict]:
    names: dict[str, Product] = {}
    lines: dict[str, list[Product]] = {}
    for p in products.values():
        for n in (p.name,) + p.aliases:
            if n in names:
                raise KbDataError("products.json", f"$.products[{p.id}]", f"name {n!r} is used twice")
            names[n] = p
        lines.setdefault(p.line, []).append(p)
    for line, members in lines.items():
        if len({m.end_of_support for m in members}) > 1:
            raise KbDataError("products.json", f"$.products[line={line}]", "products of one line disagree on end_of_support")
    return names, lines


def _with_catalog(base: Path, fixes: dict[str, Fix], products: dict, user: bool,
                  sealed: dict[str, str]) -> tuple[dict[str, Fix], _catalog.CatalogInfo | None]:
    """fixes.json completed by the update catalog (the user's newer export when `user`)."""
    path = _catalog.choose(base / _catalog.FILE) if user else base / _catalog.FILE
    if not path.is_file():
        return fixes, None
    try:
        doc = _catalog.read(path, sealed.get(_catalog.FILE) if path == base / _catalog.FILE else None)
        _catalog.check(doc, path, set(products), set(fixes))
    except _catalog.CatalogError as exc:
        raise KbDataError(_catalog.FILE if path.parent == base else str(path), "$", str(exc).split(": ", 1)[-1]) from None
    return _catalog.merge(doc, fixes), _catalog.info(doc, path)


def load(directory: Path | str | None = None) -> Kb:
    """Read every data file (from `directory`, default the packaged data and the user's newer catalog) and cross-check them."""
    base = Path(directory) if directory else Path(str(resources.files("smbsentry.kb").joinpath("data")))
    sealed = seals(base) if directory is None else {}
    sources = read(base, "sources.json", sealed)["sources"]
    refs = _Refs(sources)
    products = _products(read(base, "products.json", sealed)["products"], refs)
    names, lines = _index_names(products)
    raw_fixes = read(base, "fixes.json", sealed)
    files = _update_files(read(base, "update_files.json", sealed), refs, raw_fixes["fixes"])
    fixes, rules = _fixes(raw_fixes, refs, products, files)
    fixes, catalog_info = _with_catalog(base, fixes, products, directory is None, sealed)
    families = {p.family for p in products.values()}
    actions = _actions(read(base, "actions.json", sealed)["actions"], refs)
    for i, a in enumerate(actions.values()):
        for fam in a.applies_to:
            refs.need(fam in families, "actions.json", ["actions", i, "applies_to"], f"no product of family {fam!r}")
    raw_vulns = read(base, "vulnerabilities.json", sealed)["findings"]
    vulns = _vulns(raw_vulns, refs, products, actions, fixes)
    builds = read(base, "builds.json", sealed)
    for i, b in enumerate(builds["builds"]):
        refs.src(b["source"], "builds.json", ["builds", i, "source"], builds["sources"])
        for j, n in enumerate(b["products"]):
            refs.need(n in names or n in lines, "builds.json", ["builds", i, "products", j], f"product {n!r} is not in products.json")
        for base_name, later in b.get("enablement", {}).items():
            refs.need(base_name in b["products"], "builds.json", ["builds", i, "enablement", base_name],
                      f"{base_name!r} is not one of this build's products")
            for n in later:
                refs.need(n in names, "builds.json", ["builds", i, "enablement", base_name], f"product {n!r} is not in products.json")
        if b.get("enablement"):
            refs.src(b.get("enablement_source", ""), "builds.json", ["builds", i, "enablement_source"], builds["sources"])
    _samba_native_lm(builds["samba"], refs, builds["sources"])
    for i, v in enumerate(builds.get("nt_versions", ())):
        refs.src(v["source"], "builds.json", ["nt_versions", i, "source"], builds["sources"])
    remediation = _remediation(read(base, "remediation.json", sealed), refs, actions, vulns)
    service_ports, dc_levels, default_workgroups = _services(read(base, "services.json", sealed), refs)
    osnames = _osnames(read(base, "osnames.json", sealed), refs, lines)
    superseded_by: dict[str, list[str]] = {}
    for f in fixes.values():
        for old in f.supersedes:
            superseded_by.setdefault(old, []).append(f.kb)
    by_bulletin: dict[str, list[Fix]] = {}
    for f in fixes.values():
        for b in f.addresses:
            by_bulletin.setdefault(b, []).append(f)
    return Kb(sources, products, names, lines, fixes, {k: tuple(v) for k, v in superseded_by.items()}, rules, vulns, raw_vulns,
              actions, builds, by_bulletin, catalog_info, remediation, service_ports, dc_levels, osnames,
              default_workgroups)


@lru_cache(maxsize=1)
def kb() -> Kb:
    """The packaged knowledge base, loaded and validated once per process."""
    return load()
