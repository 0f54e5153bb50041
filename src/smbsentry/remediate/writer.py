"""Write a plan to a folder, and the `smbsentry plan` entry point.

    out_dir/plan.md                      the plan for people (English or Chinese)
    out_dir/plan.json                    the same, for tools
    out_dir/bundle.csv                   the offline patch bundle: which files to stage for which OS / architecture
    out_dir/scripts/<group>-apply.cmd|ps1|sh and <group>-rollback.*
    out_dir/scripts/firewall-snippet.txt
    out_dir/bundle/                      (empty) where the scripts look for the packages

Files are written with the encodings their readers expect: .cmd in the
console code page family (ASCII for English, GBK for Chinese, CRLF),
.ps1 as UTF-8 with a BOM (Windows PowerShell 5.1 reads BOM-less files as
ANSI), the rest UTF-8.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from ..audit.errors import InventoryError
from ..resultfile import load_results, load_stored_scan, plannable, slim
from ..kb.store import kb
from ..textio import replace_folder
from .texts import LANGS, t as tr
from .plan_model import HostPlan, Plan
from .planner import plan
from .scripts import host_label, safe_address

MD_ACTIONS = 1000  # rows of the ranked list in plan.md; plan.json has them all
MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md_text(text: str | None, limit: int = 200) -> str:
    """A string from the network or an inventory (names, shares, evidence) as inert Markdown: one line, escaped, capped."""
    s = (text or "")[:limit]
    if not s.isprintable():
        s = "".join(ch if ch.isprintable() else " " for ch in s)
    return s.translate(MD_SPECIAL)


def md_plain(text: str | None) -> str:
    """Trusted text (knowledge base, planner): one line, HTML-inert, its own Markdown (`code`) kept."""
    s = text or ""
    if not s.isprintable():
        s = "".join(ch if ch.isprintable() else " " for ch in s)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_code(text: str | None, limit: int = 200) -> str:
    """A code span; backticks cannot occur in file names from the knowledge base but are dropped anyway."""
    return "`" + "".join(ch for ch in (text or "")[:limit] if ch.isprintable() and ch != "`") + "`"


def _step_text(s, lang: str) -> str:
    return _fill_escaped(s, lang) if s.text_key else md_plain(s.text)


def _fill_escaped(s, lang: str) -> str:
    """A planner step's (or action row's) text with the host data in it escaped (the template itself is trusted)."""
    key = getattr(s, "text_key", None) or getattr(s, "step_text_key", None)
    args = s.text_args if hasattr(s, "text_args") else s.step_text_args
    marks = {k: f"@@smbsentry-arg-{i}@@" for i, k in enumerate(args)}
    fallback = s.text if hasattr(s, "text") else s.next
    text = md_plain(tr(key, lang, **marks)) if marks else md_plain(fallback)
    for k, mark in marks.items():
        text = text.replace(mark, md_text(args[k], 300))
    return text


def _host_title(h: HostPlan, lang: str) -> str:
    name = md_text(h.name) if h.name else None
    addr = safe_address(h.address)
    who = " ".join(x for x in (f"**{name}**" if name else None, f"({addr})" if addr and name else addr) if x) or md_text(h.key)
    os_text = h.os or tr("os-unknown", lang)
    arch = f" {h.architecture}" if h.architecture else ""
    return f"{who} - {md_plain(os_text)}{arch}"


def markdown_lines(p: Plan):
    """plan.md, line by line (a plan of 10,000 hosts is written as it is produced)."""
    lang = p.lang
    t = lambda key, **kw: tr(key, lang, **kw)  # noqa: E731
    vulns = kb().vulns
    cats = [h.category for h in p.hosts]
    yield from [f"# {t('title')}", "", f"{p.as_of.isoformat()}", "",
         t("summary", hosts=len(p.hosts), isolate=cats.count("isolate"), backup=len(p.backup_first), patch=cats.count("patch"),
           workaround=cats.count("workaround"), identify=cats.count("identify"), verify=cats.count("verify"),
           clean=cats.count("clean")), "", t("flow"), ""]
    yield from render_actions(p)
    yield from [f"## 1. {t('h-isolate')}", ""]
    if p.isolate_now:
        for h in p.isolate_now:
            step = next(s for s in h.steps if s.id == "isolate-now")
            yield f"- {_host_title(h, lang)}: {_step_text(step, lang)}"
    else:
        yield f"- {t('none')}"
    yield from ["", f"## 2. {t('h-backup')}", ""]
    if p.backup_first:
        for h in p.backup_first:
            shares = ", ".join(md_text(s, 60) for s in h.data_shares[:12]) or "-"
            yield f"- {_host_title(h, lang)}: {shares}"
    else:
        yield f"- {t('none')}"
    yield from ["", f"## 3. {t('h-hosts')}", ""]
    n = 0
    for h in p.hosts:
        if h.category == "clean":
            continue
        n += 1
        yield from [f"### 3.{n} {_host_title(h, lang)}", ""]
        needs = []
        for fid, status in h.needs.items():
            v = vulns.get(fid)
            title = (v.title_zh if lang == "zh" else v.title) if v else fid
            needs.append(f"`{fid}` {md_plain(title)} ({status})")
        if needs:
            yield (f"{t('findings')}: " + "; ".join(needs))
            yield ""
        for i, s in enumerate(h.steps, 1):
            how = t("script") if s.scripted else t("manual")
            kb_part = f" **{s.kb}**" if s.kb else ""
            extra = []
            if s.title:
                extra.append(md_plain(s.title))
            if s.files:
                extra.append(", ".join(f"{a}: {md_code(f)}" for a, f in sorted(s.files.items())))
            if s.alternatives:
                extra.append(("或 " if lang == "zh" else "or ") + ", ".join(s.alternatives))
            if s.note:
                extra.append(md_plain(s.note))
            if s.reboot:
                extra.append(t("note-reboot"))
            if s.disrupts:
                extra.append(t("interrupts", what=md_plain(s.disrupts)))
            tail = f" ({'; '.join(extra)})" if extra else ""
            yield f"{i}. [{how}]{kb_part} {_step_text(s, lang)}{tail}"
        for note in h.notes:
            yield f"   - {md_plain(note)}"
        if h.group:
            yield f"   - {t('group')}: `{h.group}`"
        yield ""
    yield from [f"## 4. {t('h-groups')}", "", t("groups-help"), ""]
    if p.groups:
        yield from ["| group | OS | arch | hosts | scripts |", "|---|---|---|---|---|"]
        by_key = {h.key: h for h in p.hosts}
        for g in p.groups:
            hosts = ", ".join(md_text(host_label(by_key[k]), 60) for k in g.hosts[:8]) + (" ..." if len(g.hosts) > 8 else "")
            os_names = ", ".join(dict.fromkeys(by_key[k].os or "?" for k in g.hosts))
            yield (f"| `{g.name}` | {md_plain(os_names)} | {g.architecture or 'any'} | {len(g.hosts)}: {hosts} | "
                     f"`scripts/{g.name}-apply{g.extension}`, `scripts/{g.name}-rollback{g.extension}` |")
    else:
        yield f"- {t('none')}"
    yield from ["", f"{t('h-firewall')}: `scripts/firewall-snippet.txt`", "", f"## 5. {t('h-bundle')}", "", t("bundle-help"), ""]
    if p.bundle:
        yield from ["| OS | arch | language | role | KB | file | hosts |", "|---|---|---|---|---|---|---|"]
        for r in p.bundle:
            yield (f"| {md_plain(r.os)} | {r.architecture} | {r.language or '-'} | {r.role} | {r.kb} | "
                     f"{md_code(r.file) if r.file else md_plain(r.note)} | {r.hosts} |")
    else:
        yield f"- {t('none')}"
    clean = [h for h in p.hosts if h.category == "clean"]
    yield from ["", f"## 6. {t('h-clean')}", ""]
    yield from [f"- {_host_title(h, lang)}" for h in clean] or [f"- {t('none')}"]


def render_markdown(p: Plan) -> str:
    return "\n".join(markdown_lines(p)) + "\n"


def render_actions(p: Plan) -> list[str]:
    """Section 0 of plan.md: the ranked action list (remediate/actions.py)."""
    lang = p.lang
    L = [f"## 0. {tr('h-actions', lang)}", "", tr("actions-help", lang), ""]
    if not p.actions:
        return L + [f"- {tr('none', lang)}", ""]
    L += [f"| # | {tr('col-rank', lang)} | {tr('col-host', lang)} | {tr('col-why', lang)} | "
          f"{tr('col-next', lang)} |", "|---|---|---|---|---|"]
    for i, r in enumerate(p.actions[:MD_ACTIONS], 1):
        who = " ".join(x for x in (md_text(r.host, 60) if r.host else None, safe_address(r.address)) if x) or md_text(r.key, 60)
        nxt = _fill_escaped(r, lang) if r.step_text_key else md_plain(r.next)
        L.append(f"| {i} | {tr('rank-' + r.category, lang)} | {who} | {md_text(r.why, 240)} | `{r.step}`: {nxt} |")
    if len(p.actions) > MD_ACTIONS:
        L.append(tr("actions-more", lang, n=len(p.actions) - MD_ACTIONS))
    return L + [""]


def bundle_csv(p: Plan) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["order", "role", "kb", "kind", "os", "product", "architecture", "language", "file", "url", "hosts", "title", "note"])
    for i, r in enumerate(p.bundle, 1):
        w.writerow([i, r.role, r.kb, r.kind, r.os, r.product, r.architecture, r.language or "", r.file or "", r.url or "", r.hosts,
                    r.title, r.note or ""])
    return buf.getvalue()


def plan_json(p: Plan):
    """plan.json in pieces: indented for people up to a few hundred hosts; past that one host per
    line, each written as it is produced (10,000 hosts never make one large string)."""
    if len(p.hosts) <= 500:
        yield json.dumps(p.to_dict(), ensure_ascii=False, indent=2) + "\n"
        return
    head = p.to_dict(hosts=False)
    yield "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in head.items()) + ', "hosts": ['
    for i, h in enumerate(p.hosts):
        yield ("," if i else "") + "\n" + json.dumps(h.to_dict(), ensure_ascii=False)
    yield "\n]}\n"


def write_plan(p: Plan, out_dir: str | Path) -> list[Path]:
    """Write plan.md, plan.json, bundle.csv and the scripts into out_dir, all or nothing.

    Everything goes to a temporary folder beside out_dir first, which then takes
    its place: a failure (a full disk) leaves no half-written plan.  An existing
    out_dir is replaced only when it holds a plan (plan.json) or nothing."""
    final = Path(out_dir)
    if final.exists() and (not final.is_dir() or (any(final.iterdir()) and not (final / "plan.json").is_file())):
        raise FileExistsError(f"{final} exists and is not a plan folder: give a new or empty folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        written = _write_files(p, tmp)
        replace_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [final / w.relative_to(tmp) for w in written]


def _write_files(p: Plan, out: Path) -> list[Path]:
    scripts = out / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (out / "bundle").mkdir(exist_ok=True)
    written: list[Path] = []

    def put(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> None:
        data = text if newline == "\n" else text.replace("\r\n", "\n").replace("\n", newline)
        path.write_bytes(data.encode(encoding, errors="replace"))
        written.append(path)

    def stream(path: Path, chunks) -> None:
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(chunks)
        written.append(path)

    stream(out / "plan.md", (line + "\n" for line in markdown_lines(p)))
    stream(out / "plan.json", plan_json(p))
    put(out / "bundle.csv", "\ufeff" + bundle_csv(p), newline="\r\n")  # a BOM so spreadsheet programs read it as UTF-8
    for g in p.groups:
        encoding, newline, bom = script_encoding(g.flavour, p.lang)
        for kind, text in (("apply", g.apply), ("rollback", g.rollback)):
            put(scripts / f"{g.name}-{kind}{g.extension}", bom + text, encoding, newline)
    put(scripts / "firewall-snippet.txt", p.firewall)
    return written


def script_encoding(flavour: str, lang: str) -> tuple[str, str, str]:
    """(encoding, line end, BOM) a script of this flavour is written with (see the module's docstring)."""
    if flavour == "cmd":
        return ("gbk" if lang == "zh" else "ascii"), "\r\n", ""
    if flavour == "ps1":
        return "utf-8", "\r\n", "\ufeff"
    return "utf-8", "\n", ""


def stored_plan(out_dir: str | Path) -> dict:
    """plan.json of a written plan with its scripts, as the store keeps it: `script_files` maps each
    path of groups[].files (and the firewall snippet) to {"text", "encoding"}, the file exactly as
    written (text.encode(encoding) gives its bytes back), so the dashboard offers the same scripts."""
    out = Path(out_dir)
    data = json.loads((out / "plan.json").read_text("utf-8"))
    files: dict[str, dict] = {}
    flavours = {".cmd": "cmd", ".ps1": "ps1", ".sh": "sh"}
    paths = [f for g in data.get("groups") or [] for f in g.get("files") or []] + ["scripts/firewall-snippet.txt"]
    for rel in paths:
        path = out / rel
        if not rel.startswith("scripts/") or "/" in rel[len("scripts/"):] or not path.is_file():
            continue
        encoding = script_encoding(flavours.get(path.suffix, "txt"), data.get("lang") or "en")[0]
        files[rel] = {"encoding": encoding, "text": path.read_bytes().decode(encoding, errors="replace")}
    data["script_files"] = files
    return data


def load_inputs(results_paths, scan_id: int | None = None, db: str | None = None) -> list[dict]:
    """Records from files and/or a stored scan; InventoryError when there is nothing a plan can act on."""
    records = load_results(results_paths, slim)
    if scan_id is not None:
        records += load_stored_scan(db, scan_id, slim)
    if not records:
        raise InventoryError("input", None, "no host records: give result files or --scan N")
    if not plannable(records):
        where = f"scan {scan_id}" if scan_id is not None and not results_paths else "input"
        raise InventoryError(where, None, "no host with SMB or another service open, and no audit facts: nothing to plan")
    return records


def main_plan(results_paths, out_dir, lang: str = "en", *, as_of: date | None = None, scan_id: int | None = None,
              db: str | None = None) -> int:
    """`smbsentry plan [RESULTS...] [--scan N] -o DIR [--lang en|zh]`: 0 written, 2 bad input (one line on stderr), 1 cannot write."""
    if lang not in LANGS:
        print(f"smbsentry: unknown language {lang!r} (en or zh)", file=sys.stderr)
        return 2
    try:
        result = plan(load_inputs(results_paths, scan_id, db), lang, as_of=as_of)  # no name keeps the records alive
    except (InventoryError, ValueError) as exc:
        print(f"smbsentry: {exc}", file=sys.stderr)
        return 2
    try:
        write_plan(result, out_dir)
    except FileExistsError as exc:
        print(f"smbsentry: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"smbsentry: cannot write the plan to {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    cats = [h.category for h in result.hosts]
    print(f"plan: {len(result.hosts)} hosts ({cats.count('isolate')} to isolate now, {len(result.backup_first)} to back up first, "
          f"{cats.count('patch')} to patch), {len(result.groups)} script groups, {len(result.bundle)} bundle files -> "
          f"{Path(out_dir) / 'plan.md'}")
    return 0
