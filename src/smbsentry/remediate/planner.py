"""Host views -> an ordered remediation plan (the response flow of the WannaCry / Shadow Brokers advisories).

Per host:
1. compromised (DoublePulsar answered on the wire, or WannaCry indicators in
   the facts) -> the isolate-now list, first;
2. the host holds data (shares other than the administrative ones, a domain
   controller, or a role / holds_data flag in the input) -> back up or
   snapshot before any change (seeds 002, 004);
3. a patch exists for this OS and architecture (kb.query.fixes_for) ->
   prerequisites first (service packs), the update, verify (Get-HotFix,
   wmic qfe, or the build revision where it is proof); quick workarounds
   that need no restart (SMBGhost's DisableCompression) come before it;
4. no patch, or the OS is past end of support -> disable SMB1 (the way the
   OS family allows: Set-SmbServerConfiguration, the SMB1 registry value,
   SMBDeviceEnabled=0 on XP / 2003), stop and disable the Server service
   (not on hosts that share data), block 139/445 (host firewall; border),
   isolate the segment, upgrade;
5. configuration findings -> hardening (SMB1 off, signing, anonymous
   access, Guest).
Hosts are then grouped by OS family, architecture and the scripted steps
they need; each group gets one apply and one rollback script.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from ..kb import query
from ..kb.model import Action, Product
from ..kb.packages import packages
from ..kb.store import kb
from .texts import LANGS, t as tr
from .actions import ranked
from .hosts import HostView, collect_hosts
from .plan_model import BundleRow, HostPlan, Plan, ScriptGroup, Step, commands_for
from .scripts import firewall_snippet, render_group

# Which action turns SMB1 off per OS family, the hardening action per configuration finding, the manual
# Samba steps, the steps a finding takes beside its update and how an unknown is settled are knowledge:
# kb/data/remediation.json (kb().remediation), each with its source.

# Phases: the order steps take on one host.
PHASE = {"response": 0, "backup": 1, "immediate": 2, "prerequisite": 3, "patch": 4, "verify": 5, "workaround": 6, "hardening": 7,
         "network": 8, "upgrade": 9, "identify": 10}
SEVERITY = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
# Steps that scripts carry out (the others are done by people: backup, isolation, border rules, upgrades).
PLANNER_SCRIPTED = {"install-update", "install-update-nt5", "install-service-pack", "xp-firewall"}


# --- one host ---------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, view: HostView, lang: str, today: date):
        self.v, self.lang, self.today = view, lang, today
        self.steps: dict[tuple[str, str | None], Step] = {}
        self.notes: list[str] = []

    def t(self, key: str, **kw) -> str:
        return tr(key, self.lang, **kw)

    def action_text(self, a: Action) -> str:
        return a.text_zh if self.lang == "zh" else a.text_en

    def add(self, step: Step) -> Step:
        key = (step.id, step.kb)
        have = self.steps.get(key)
        if have is not None:
            have.findings += [f for f in step.findings if f not in have.findings]
            return have
        self.steps[key] = step
        return step

    def action(self, action_id: str, phase: str, findings: list[str], note: str | None = None) -> Step | None:
        a = kb().actions.get(action_id)
        p = self.v.product
        if a is None or (p is not None and p.family not in a.applies_to):
            return None
        flavour = _flavour(p.family) if p else None
        scripted = bool(flavour and commands_for(a, flavour, p))
        return self.add(Step(action_id, phase, self.action_text(a), list(findings), reboot=a.reboot, scripted=scripted, note=note,
                             disrupts=self.disrupts(a)))

    def disrupts(self, a: Action) -> str | None:
        return (a.disrupts.get(self.lang) or a.disrupts["en"]) if a.disrupts else None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _rem():
    return kb().remediation


def _flavour(family: str | None) -> str | None:
    """The script language of an OS family (cmd | ps1 | sh), None for families no script is written for."""
    fam = _rem().families.get(family) if family else None
    return fam.script if fam else None


def _smb1_action(family: str) -> str:
    return _rem().families[family].smb1_action


def _ordered_needs(v: HostView) -> list[str]:
    ids = [i for i in dict.fromkeys(list(v.scan) + list(v.audit)) if v.need(i)]
    vulns = kb().vulns
    return sorted(ids, key=lambda i: (SEVERITY.get(vulns[i].severity, 5) if i in vulns else 6, list(vulns).index(i) if i in vulns else 999))


def _patch(b: _Builder, vid: str, p: Product, covered: dict[str, Step]) -> bool:
    """Install steps for a vulnerability's update; False when no update exists for this product."""
    v = kb().vulns[vid]
    if v.bulletin in covered:
        covered[v.bulletin].findings.append(vid)
        return True
    arch = b.v.arch
    options = query.fixes_for(vid, p, arch, b.v.installed)
    if not options:
        return False
    first = options[0]
    for pre in first.prerequisites:
        fix = kb().fixes.get(pre.kb)
        if pre.kind == "service-pack":
            level = next((lvl for sp_kb, lvl in query.service_pack_path(p) if sp_kb == pre.kb), None)
            # Windows 7 / 2008 R2 RTM is build 7600 and SP1 7601; XP SP2 and SP3 share 2600: then CSDVersion decides.
            by_build = level is not None and level.build != p.build
            a = kb().actions["install-service-pack"]
            step = b.add(Step("install-service-pack", "prerequisite", b.action_text(a), [vid], kb=pre.kb, title=pre.name, level=p.id,
                              files=_files(fix, arch, p) if fix else {}, urls=_urls(fix, arch, p) if fix else {}, reboot=True,
                              scripted=True, condition_build=tuple(p.builds) if by_build else (),
                              condition_sp=None if by_build or level is None else level.service_pack, disrupts=b.disrupts(a)))
            b.note(b.t("note-service-pack", kb=first.fix.kb, sp=f"{pre.kb} ({pre.name})"))
            step.note = step.note or b.t("note-reboot")
        else:
            b.add(Step("install-update", "prerequisite", b.action_text(kb().actions["install-update"]), [vid], kb=pre.kb, title=pre.name,
                       level=first.product.id, files=_files(fix, arch, first.product) if fix else {}, reboot=True, scripted=True,
                       verify_kbs=[pre.kb], disrupts=b.disrupts(kb().actions["install-update"])))
    action_id = "install-update-nt5" if p.family == "windows-nt5" else "install-update"
    a = kb().actions[action_id]
    covers = query.covering_updates(v.bulletin, first.product.id)
    verify = sorted(covers, key=lambda k: (covers[k].rank, k))
    fb = query.fixed_build(v.bulletin, first.product)
    verify_build = ((fb[0],), fb[1]) if fb and first.product.ubr_is_proof else None
    step = b.add(Step(action_id, "patch", b.action_text(a), [vid], kb=first.fix.kb, title=first.fix.title, level=first.product.id,
                      files=_files(first.fix, arch, first.product), urls=_urls(first.fix, arch, first.product),
                      alternatives=[o.fix.kb for o in options[1:]], verify_kbs=verify, verify_build=verify_build, reboot=True,
                      scripted=True, note=first.note, disrupts=b.disrupts(a)))
    covered[v.bulletin] = step
    if verify_build:
        how = b.t("verify-build", build=fb[0], ubr=fb[1])
        b.add(Step("verify-build", "verify", how, [vid], kb=first.fix.kb, verify_build=verify_build, scripted=True))
    else:
        tool = "wmic qfe / systeminfo" if p.family == "windows-nt5" else "Get-HotFix -Id " + ",".join(verify[:4])
        kbs = " / ".join([first.fix.kb] + step.alternatives)
        b.add(Step("verify-update", "verify", b.t("verify-update", how=f"{kbs} ({tool})"), [vid], kb=first.fix.kb,
                   verify_kbs=verify, scripted=True))
    return True


def _per_arch(fix, arch: str | None, p: Product, attr: str) -> dict[str, str]:
    """{architecture: the first update file's `attr` ("name" or "url")}, for `arch` or every one of p's."""
    out = {}
    for a in [arch] if arch else list(p.architectures):
        got = fix.files_for(a, p.id)
        if len({f.language for f in got}) > 1:
            continue  # one package per language: the script takes whichever of them was staged (see bundle.csv)
        if got and getattr(got[0], attr):
            out[a] = getattr(got[0], attr)
    return out


def _files(fix, arch: str | None, p: Product) -> dict[str, str]:
    return _per_arch(fix, arch, p, "name")


def _urls(fix, arch: str | None, p: Product) -> dict[str, str]:
    return _per_arch(fix, arch, p, "url")


def _smb1_clients_first(b: _Builder, why: list[str], phase: str) -> None:
    """Before SMB1 goes off: who still speaks it to this host, from recorded traffic, or that nobody did."""
    v = b.v
    if v.smb1_clients:
        shown = []
        for c in v.smb1_clients[:12]:
            os_text = f" ({c.get('client_native_os')})" if c.get("client_native_os") else ""
            shown.append(f"{c.get('client')}{os_text}, last {str(c.get('last_seen') or '?')[:10]}")
        more = f" +{len(v.smb1_clients) - 12}" if len(v.smb1_clients) > 12 else ""
        clients = "; ".join(shown) + more
        b.add(Step("upgrade-smb1-clients", phase, b.t("smb1-clients-seen", clients=clients), list(why),
                   text_key="smb1-clients-seen", text_args={"clients": clients}))
    elif v.smb1_coverage:
        spans = ", ".join(f"{c['span'][0] or '?'} - {c['span'][1] or '?'} ({', '.join(c['captures'][:3])})" for c in v.smb1_coverage[:3])
        b.note(b.t("smb1-none-seen", spans=spans))
    else:
        b.note(b.t("note-smb1-clients"))


def _workarounds(b: _Builder, p: Product, why: list[str], extra_actions: list[str]) -> None:
    """Disable SMB1, stop the Server service, block 139/445, isolate, upgrade (seed 001 for hosts without a patch)."""
    v, f = b.v, b.v.facts
    fam = p.family
    if v.smb_closed:
        # Seen only through RDP/SMTP/...: telling to close SMB (or to stop the Server
        # service of, say, a domain controller) would be advice about nothing observed.
        b.note(b.t("note-smb-closed"))
        b.add(Step("isolate-segment", "network", b.t("isolate-segment"), list(why)))
        b.action("upgrade-os", "upgrade", why)
        return
    smb1_off = f.get("smb1_server") is False or v.smb1_enabled is False
    if fam == "windows-nt5":
        if f.get("smb_device_enabled") is not False:
            b.action("disable-smb-device", "workaround", why)
    elif not smb1_off:
        _smb1_clients_first(b, why, "workaround")
        b.action(_smb1_action(fam), "workaround", why)
    if v.is_dc or v.holds_data or not v.shares_visible:
        # Stopping the Server service or closing 445 on the host itself takes a domain
        # controller's SYSVOL/NETLOGON or a file server's data away, and where no share
        # listing succeeded nobody knows what it serves: people choose, with the reason.
        key = "server-choice-dc" if v.is_dc else ("server-choice-data" if v.holds_data else "server-choice-unseen")
        b.add(Step("server-service-choice", "workaround", b.t(key), list(why)))
    else:
        if f.get("server_service") not in ("stopped", "disabled"):
            b.action("stop-server-service", "workaround", why)
        if f.get("firewall_blocks_smb") is not True:
            if fam == "windows-nt5":
                b.add(Step("xp-firewall", "workaround", b.t("xp-firewall"), list(why), scripted=True,
                           disrupts=b.disrupts(kb().actions["block-smb-firewall"])))
            else:
                b.action("block-smb-firewall", "workaround", why)
    smb1_actions = {f.smb1_action for f in _rem().families.values() if f.smb1_action}
    for aid in extra_actions:
        a = kb().actions.get(aid)
        if a is None or aid in ("upgrade-os", "block-smb-border", "stop-server-service", "block-smb-firewall") or aid in smb1_actions:
            continue
        if aid in ("remove-smb1-feature", "audit-smb1-access", "check-wannacry-indicators", "isolate-host"):
            continue
        b.action(aid, "workaround", why)
    b.action("block-smb-border", "network", why)
    b.add(Step("isolate-segment", "network", b.t("isolate-segment"), list(why)))
    b.action("upgrade-os", "upgrade", why)


def plan_host(view: HostView, lang: str = "en", today: date | None = None) -> HostPlan:
    today = today or date.today()
    b = _Builder(view, lang, today)
    p = view.product
    needs = _ordered_needs(view)
    status = {i: (view.status(i)[0] or view.status(i)[1] or "") for i in needs}
    eol = bool(p and p.windows and p.end_of_support and p.end_of_support < today) or view.need("eol-os") is True
    os_name = (view.product_note if view.product_note and " / " in view.product_note else p.name) if p else None
    hp = HostPlan(view.key, view.name, view.address, os_name, p.id if p else None, p.family if p else None, view.arch,
                  p.end_of_support.isoformat() if p and p.end_of_support else None, eol, view.holds_data, view.data_shares, None, status)
    # 1. compromised hosts: isolate now
    if view.implanted:
        hp.isolate = "implant"
        ev = view.evidence("doublepulsar")[:160] or "MID 81"
        b.add(Step("isolate-now", "response", b.t("isolate-implant", evidence=ev), ["doublepulsar"],
                   text_key="isolate-implant", text_args={"evidence": ev}))
    if view.wannacry:
        hp.isolate = hp.isolate or "wannacry"
        ev = ", ".join(view.wannacry[:4])
        b.add(Step("isolate-now", "response", b.t("isolate-wannacry", evidence=ev), ["ms17-010"],
                   text_key="isolate-wannacry", text_args={"evidence": ev}))
        if p is not None:
            b.action("check-wannacry-indicators", "response", ["ms17-010"])
    _verify_steps(b)
    if p is None:
        if needs or hp.isolate:
            names = ", ".join(needs) or "doublepulsar"
            b.add(Step("identify", "identify", b.t("identify", findings=names), list(needs)))
        return _finish(b, hp)
    if view.product_note:
        b.note(b.t("note-os-assumed", os=view.product_note, chosen=p.name) if " / " in view.product_note else view.product_note)
    rem = _rem()
    if p.family == "samba":
        for fid, key in rem.samba_manual.items():
            if view.need(fid):
                b.add(Step(key, "hardening", b.t(key), [fid]))
    if eol:
        b.note(b.t("note-eol", os=p.name, date=p.end_of_support.isoformat() if p.end_of_support else "?"))
    covered: dict[str, Step] = {}
    no_patch: list[str] = []
    extra_actions: list[str] = []
    vulns = kb().vulns
    for vid in needs:
        v = vulns.get(vid)
        if v is None:
            continue
        own = rem.findings.get(vid)  # steps beside the update (remediation.json), for the families it names
        if p.family == "samba":
            if own is not None and "samba" in own.families:
                for st in own.steps:
                    b.action(st.action, st.phase, [vid])
            continue
        if v.kind in ("configuration", "lifecycle") or (own is not None and own.families and p.family not in own.families):
            continue
        if v.affected and not query.is_affected(vid, p, view.arch):
            continue
        if all(not kb().products[x].windows for a in v.affected for x in a.products) and v.affected:
            b.action("upgrade-application", "upgrade", [vid])
            continue
        for st in own.steps if own is not None and not own.families else ():  # quick workarounds before the update
            if st.unless_fact is None or view.facts.get(st.unless_fact) is not True:
                b.action(st.action, st.phase, [vid])
        if v.bulletin and _patch(b, vid, p, covered):
            continue
        no_patch.append(vid)
        extra_actions += [a for a in v.workarounds if a not in extra_actions]
        if v.bulletin:
            b.note(b.t("no-update", finding=vid, os=p.name))
    if p.windows and (no_patch or eol):
        _workarounds(b, p, no_patch or ["eol-os"], extra_actions)
    # 5. configuration findings
    if p.windows:
        if view.need("smbv1-enabled") and view.facts.get("smb1_server") is not False:
            if p.family == "windows-10":
                b.action("audit-smb1-access", "hardening", ["smbv1-enabled"])
            _smb1_clients_first(b, ["smbv1-enabled"], "hardening")
            b.action(_smb1_action(p.family), "hardening", ["smbv1-enabled"])
        for fid, aid in rem.hardening.items():
            if view.need(fid):
                step = b.action(aid, "hardening", [fid])
                if step is not None and fid == "smb-signing-not-required":
                    step.note = b.t("note-signing")
        # the other configuration findings (the Windows 11 24H2 / Server 2025 baseline, ...): their
        # actions, with the exact setting and its rollback, are the knowledge base's `workarounds`
        for vid in needs:
            v = vulns.get(vid)
            if v is not None and v.kind == "configuration" and vid not in rem.hardening and vid != "smbv1-enabled":
                for aid in v.workarounds:
                    b.action(aid, "hardening", [vid])
    return _finish(b, hp)


def _conflict_steps(b: _Builder) -> None:
    """The scan and the audit disagree: never two answers side by side without comment."""
    for fid, scan, audit in b.v.conflicts():
        src = b.v.audit.get(fid) or {}
        args = {"finding": fid, "scan": scan, "audit": audit, "scan_evidence": b.v.evidence(fid)[:200],
                "audit_evidence": str(src.get("evidence") or "")[:200]}
        key = "conflict-scan-bad" if scan == "vulnerable" else "conflict-audit-bad"
        b.add(Step("resolve-conflict", "verify", b.t(key, **args), [fid], kb=fid, text_key=key, text_args=args))


def _verify_steps(b: _Builder) -> None:
    """Unknowns are work, never "nothing to do": a `verify` step per unknown finding, and one for
    a host whose SMB answered but could not be tested at all."""
    v = b.v
    _conflict_steps(b)
    if v.untested:
        errs = "; ".join(v.errors[:3]) or b.t("no-answer")
        b.add(Step("verify", "verify", b.t("verify-untested", errors=errs), [], text_key="verify-untested",
                   text_args={"errors": errs}))
        return
    by_how: dict[str, list[tuple[str, str]]] = {}
    settle = _rem().settle  # how an unknown is settled, per finding (remediation.json); the default is an audit of the host
    for fid, reason in v.unknowns():
        by_how.setdefault(settle.get(fid, "settle-audit"), []).append((fid, reason))
    for key, items in by_how.items():  # one step per way of settling, naming every finding it settles
        fids = [f for f, _ in items]
        reason = "; ".join(dict.fromkeys(r for _, r in items if r))[:400]
        how = b.t(key)
        b.add(Step("verify", "verify", b.t("verify-unknown", finding=", ".join(fids), reason=reason, how=how), fids, kb=key,
                   text_key="verify-unknown", text_args={"finding": ", ".join(fids), "reason": reason, "how": how}))


def _backup_reason(b: _Builder) -> str:
    v = b.v
    if v.data_shares:
        return ", ".join(v.data_shares[:6])
    if v.is_dc:
        return b.t("why-dc")
    if v.holds_data:
        return ", ".join(v.roles) or b.t("why-data")
    return b.t("why-unseen")


def _finish(b: _Builder, hp: HostPlan) -> HostPlan:
    view = b.v
    # 2. data first: before any step that interrupts service, back up, unless the host is
    # proven to hold no data (its shares were listed and none holds data)
    if any(s.disrupts for s in b.steps.values()) and not view.proven_no_data:
        why = _backup_reason(b)
        b.add(Step("backup", "backup", b.t("backup", why=why), [], text_key="backup", text_args={"why": why}))
    hp.steps = sorted(b.steps.values(), key=lambda s: PHASE[s.phase])  # stable: insertion order inside a phase
    hp.notes = b.notes
    vulns = kb().vulns
    sev = [SEVERITY.get(vulns[i].severity, 5) for i in hp.needs if i in vulns]
    hp.priority = -1 if hp.isolate else (min(sev) if sev else (8 if hp.steps else 9))
    return hp


# --- many hosts ------------------------------------------------------------------------------------

def _group_key(hp: HostPlan, steps: list[Step]) -> tuple:
    sig = tuple((s.id, s.kb, tuple(sorted(s.files.items())), s.condition_build) for s in steps)
    return _flavour(hp.family), hp.family, hp.architecture, any(s.id == "backup" for s in hp.steps), hp.isolate, sig


def _groups(hosts: list[HostPlan]) -> list[ScriptGroup]:
    buckets: dict[tuple, list[HostPlan]] = defaultdict(list)
    for hp in hosts:
        if _flavour(hp.family) is None:
            continue
        steps = [s for s in hp.steps if s.scripted]
        if not steps:
            continue
        buckets[_group_key(hp, steps)].append(hp)
    out, used = [], defaultdict(int)
    for (flavour, family, arch, _backup, _isolate, _sig), members in buckets.items():
        base = f"{_rem().families[family].label}-{arch or 'any'}"
        used[base] += 1
        name = base if used[base] == 1 else f"{base}-{used[base]}"
        products = list(dict.fromkeys(h.product for h in members if h.product))
        # the builds a host may show when it runs the script: its own, and the levels its service packs lead to
        levels = {s.level for h in members for s in h.steps if s.level}
        builds = sorted({b for pid in set(products) | levels for b in kb().products[pid].builds})
        steps = list(members[0].steps)  # the others appear in the scripts as comments
        for h in members:
            h.group = name
        out.append(ScriptGroup(name, flavour, family, arch, products, builds, [h.key for h in members], steps))
    return out


def _bundle_note(fix, role: str, choice) -> str | None:
    """Why a row has no file or no address; for rollups, that a later one of the same kind will do."""
    notes = [choice.reason] if choice.reason else []
    if choice.file and choice.file.note and choice.file.url:
        notes.append(choice.file.note)
    if choice.file and fix.kind in ("monthly-rollup", "cumulative") and role != "base":
        notes.append("or any later update of the same kind")
    return "; ".join(notes) or None


def _bundle(hosts: list[HostPlan]) -> list[BundleRow]:
    """One row per update x OS x architecture x language (English and Chinese for per-language packages)."""
    rows: dict[tuple, BundleRow] = {}
    for hp in hosts:
        if hp.product is None:
            continue
        p = query.product(hp.product)
        # architecture unknown (a network scan): the common ones; ia64 / arm64 only when a host says so
        archs = [hp.architecture] if hp.architecture else [a for a in p.architectures if a in ("x86", "x64")] or list(p.architectures)
        for s in hp.steps:
            if s.id not in ("install-update", "install-update-nt5", "install-service-pack") or not s.kb:
                continue
            kbs = [(s.kb, "base" if s.id == "install-service-pack" else "key")] + [(k, "alternative") for k in s.alternatives]
            target = query.product(s.level) if s.level else p
            for kb_id, role in kbs:
                fix = kb().fixes.get(kb_id)
                order = {"base": 0, "key": 1, "alternative": 2}[role]
                for a in archs:
                    choices = packages(fix, target, a) if fix else [None]
                    for c in choices:
                        lang = c.language if c else None
                        key = (target.id, a, kb_id, lang)
                        if key in rows:
                            rows[key].hosts += 1
                            continue
                        if fix is None:
                            rows[key] = BundleRow(target.id, target.name, a, kb_id, "", role, s.title or "", None, None, 1, order,
                                                  f"{kb_id} is not in the knowledge base: search the Microsoft Update Catalog for it")
                            continue
                        f = c.file
                        rows[key] = BundleRow(target.id, target.name, a, kb_id, fix.kind, role, fix.title, f.name if f else None,
                                              f.url if f else None, 1, order, _bundle_note(fix, role, c), lang)
    return sorted(rows.values(), key=lambda r: (r.os, r.architecture, r.order, r.kb, r.language or ""))


def _planned(view: HostView, lang: str, today: date, ready: dict | None) -> tuple[HostPlan, list | None]:
    """The host's plan and action rows made earlier from an equal view on the same day (used once), or the
    plan made now (rows None: ranked() makes them)."""
    got = ready.pop(view.key, None) if ready else None
    if got is not None and got[1] == today and got[0] == view:
        return got[2], got[3]
    return plan_host(view, lang, today), None


def plan(results: list, lang: str = "en", *, as_of: date | None = None, views: list | None = None,
         ready: dict | None = None, scripts: bool = True) -> Plan:
    """The remediation plan for scan results, audit results or merged results (dicts or the result objects), in any mix.

    `views`: collect_hosts() of those results, when the caller made them already (respond plans both languages
    from one set; planning only reads them). `ready`: host key -> (view, day, HostPlan in `lang`) made earlier
    (respond plans each host while the scan runs, app/ahead.py); one is taken only for an equal view and day.
    `scripts` False: the groups' apply and rollback scripts are left empty (a plan made only for a report,
    which shows steps, not scripts: respond's second language)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r} (en or zh)")
    today = as_of or date.today()
    if views is None:
        views = collect_hosts([r.to_dict() if hasattr(r, "to_dict") else r for r in results])
    del results  # the views keep what they need; a caller that passed a temporary list frees it here
    taken = [_planned(v, lang, today, ready) for v in views]
    hosts = [hp for hp, _ in taken]
    actions = ranked(list(zip(views, hosts)), [rows for _, rows in taken])
    order = {h.key: i for i, h in enumerate(hosts)}
    hosts.sort(key=lambda h: (h.priority, {"isolate": 0, "patch": 1, "workaround": 2, "identify": 3, "verify": 4, "clean": 5}[h.category],
                              order[h.key]))
    groups = _groups(hosts)
    by_key = {h.key: h for h in hosts}
    for g in groups if scripts else ():
        g.apply, g.rollback = render_group(g, [by_key[k] for k in g.hosts], lang, today)
    p = Plan(lang, today, hosts, groups, _bundle(hosts), actions=actions)
    p.firewall = firewall_snippet(p)
    return p
