"""The pages that read a scan: the overview, the ranked action list, hosts, one host, and the plan downloads."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from ...model import SEVERITIES
from ...store import SORTS
import smbsentry.web.views as views  # the module itself (`from .. import views` would import the package, hence app.py)
from ..context import Web


def register_overview(app: FastAPI, w: Web) -> None:
    """The overview and the ranked action list (a page and CSV)."""
    # the shared state and helpers (context.Web) by the short names the routes were written with
    (store, render, user, get_scan, default_scan, digest, picker, lang_of, pages, page_of, csv_response,
        ranked) = (w.store, w.render, w.user, w.get_scan, w.default_scan, w.digest, w.picker, w.lang_of,
        w.pages, w.page_of, w.csv_response, w.ranked)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview(request: Request, scan: int | None = None, s: dict = Depends(user)):
        from ...report.scans import _trend

        lang = lang_of(request)
        sid = scan or default_scan()
        if sid is None:
            return render(request, "overview.html", scan=None)
        meta = get_scan(sid)
        d = await digest(sid, lang)
        st = d.stats
        shown = d.actions[:max(views.TOP_ACTIONS, sum(1 for r in d.actions if r.rank == 1))]
        return render(request, "overview.html", scan=meta, tiles=views.tiles(st, meta, d), plan_error=d.plan_error,
                      actions=views.action_rows(store, sid, shown, lang), actions_total=len(d.actions),
                      charts=views.chart_list(st, sid, lang, _trend(store, sid)), top=views.top_findings(d, lang),
                      scans=picker())


    @app.get("/actions", response_class=HTMLResponse, include_in_schema=False)
    async def actions_page(request: Request, scan: int | None = None, rank: str = "", page: int = Query(1, ge=1),
                           s: dict = Depends(user)):
        lang = lang_of(request)
        sid = scan or default_scan()
        if sid is None:
            return render(request, "actions.html", scan=None)
        meta = get_scan(sid)
        rows = ranked(await digest(sid, lang), rank)
        params = {k: v for k, v in {"scan": sid, "rank": rank}.items() if v}
        return render(request, "actions.html", scan=meta, rows=views.action_rows(store, sid, page_of(rows, page), lang),
                      total=len(rows), rank=rank, ranks=views.RANKS, page=page, pages=pages(len(rows)),
                      first=(page - 1) * views.PAGE, base="/actions?" + urlencode(params), scans=picker())

    @app.get("/actions.csv", include_in_schema=False)
    async def actions_csv(request: Request, scan: int | None = None, rank: str = "", s: dict = Depends(user)):
        lang = lang_of(request)
        sid = scan or default_scan()
        if sid is None:
            raise HTTPException(404, "no scans yet")
        get_scan(sid)
        rows = ranked(await digest(sid, lang), rank)
        t = views.i18n.labels("web", lang)
        header = [t["col_rank"], t["col_name"], t["col_address"], t["col_findings"], t["col_severity"], t["col_why"], t["col_step"],
                  t["col_next"]]
        return await csv_response(header, lambda: views.action_csv_rows(store, sid, rows, lang), f"actions-{sid}.csv")


def register_hosts(app: FastAPI, w: Web) -> None:
    """Hosts by risk (a page and CSV), one host with its fixes and plans, and the downloads."""
    # the shared state and helpers (context.Web) by the short names the routes were written with
    (store, plan_index, render, user, get_scan, get_host, default_scan, digest, download, picker, lang_of,
        pages, page_of, csv_response, listed) = (w.store, w.plan_index, w.render, w.user, w.get_scan,
        w.get_host, w.default_scan, w.digest, w.download, w.picker, w.lang_of, w.pages, w.page_of,
        w.csv_response, w.listed)

    @app.get("/hosts", response_class=HTMLResponse, include_in_schema=False)
    async def hosts_page(request: Request, scan: int | None = None, finding: str = "", status: str = "", severity: str = "",
                         risk: str = "", os: str = "", subnet: str = "", q: str = "", sort: str = "risk",
                         page: int = Query(1, ge=1), s: dict = Depends(user)):
        sid = scan or default_scan()
        if sid is None:
            return render(request, "hosts.html", scan=None)
        meta = get_scan(sid)
        d, addrs = await listed(request, sid, finding, status, severity, risk, os, subnet, q, sort)
        f = {"finding": finding, "status": status, "severity": severity, "risk": risk, "os": os, "subnet": subnet, "q": q,
             "sort": sort}
        params = {"scan": sid, **{k: v for k, v in f.items() if v}}
        return render(request, "hosts.html", scan=meta, f=f, total=len(addrs),
                      hosts=views.host_summaries(store, d, sid, page_of(addrs, page), lang_of(request)),
                      finding_ids=d.finding_ids, statuses=views.STATUS_FILTERS,
                      states=views.STATES, severities=SEVERITIES, sorts=views.HOST_SORTS + SORTS, page=page,
                      pages=pages(len(addrs)), base="/hosts?" + urlencode(params),
                      csv="/hosts.csv?" + urlencode(params), scans=picker())

    @app.get("/hosts.csv", include_in_schema=False)
    async def hosts_csv(request: Request, scan: int | None = None, finding: str = "", status: str = "", severity: str = "",
                        risk: str = "", os: str = "", subnet: str = "", q: str = "", sort: str = "risk", s: dict = Depends(user)):
        lang = lang_of(request)
        sid = scan or default_scan()
        if sid is None:
            raise HTTPException(404, "no scans yet")
        get_scan(sid)
        d, addrs = await listed(request, sid, finding, status, severity, risk, os, subnet, q, sort)
        t = views.i18n.labels("web", lang)
        header = [t["col_address"], t["col_name"], t["col_os"], t["col_role"], t["col_risk"], t["col_untested"], t["col_findings"]]
        return await csv_response(header, lambda: views.host_csv_rows(store, d, sid, addrs, lang), f"hosts-{sid}.csv")

    @app.get("/hosts/{scan_id}/{address}", response_class=HTMLResponse, include_in_schema=False)
    async def host_page(request: Request, scan_id: int, address: str, s: dict = Depends(user)):
        from ...report.actions import step_html
        from ...report.fixes import plan_fixes
        from ...report.relay import relay_section
        from ...report.view import _rule_fixes

        lang = lang_of(request)
        h = get_host(scan_id, address)
        d = await digest(scan_id, lang)
        audits, usage = d.audits.get(address, []), d.usage.get(address, [])
        hp, p, plan_error = views.host_plan(h, audits, usage, lang)
        steps = [{"id": st.id, "text": step_html(st, h, lang), "findings": st.findings} for st in (hp.steps if hp else [])]
        conflicts = [st for st in steps if st["id"] == "resolve-conflict"]
        conflict_ids = {fid for st in conflicts for fid in st["findings"]}
        fixes = plan_fixes(p, [h], lang) if p is not None else {}
        for fid, text in _rule_fixes([h], lang).items():
            fixes.setdefault(fid, []).insert(0, {"text": text, "rule": True})
        names = [n for n in (views.host_name(h), (h.get("identity") or {}).get("dns_name")) if n]
        return render(request, "host.html", scan=get_scan(scan_id), h=h, name=views.host_name(h), os_name=views.host_os(h),
                      risk=d.risk_of(address), role=views.role_of(h, lang), findings=views.findings_rows(h, conflict_ids, lang),
                      steps=steps, conflicts=conflicts, notes=hp.notes if hp else [], plan_error=plan_error, fixes=fixes,
                      audits=views.audit_rows(audits, conflict_ids, lang), smb1=views.smb1_use(usage, d.coverage),
                      plans=plan_index.for_host(address, names), all_plans=plan_index.all(),
                      relay=relay_section([h], lang)["rows"],
                      raw=json.dumps(h, indent=2, ensure_ascii=False))

    @app.get("/hosts/{scan_id}/{address}/download", include_in_schema=False)
    async def host_download(scan_id: int, address: str, s: dict = Depends(user)):
        h = get_host(scan_id, address)
        return download(json.dumps(h, indent=2, ensure_ascii=False) + "\n", f"host-{scan_id}-{address}.json")

    @app.get("/plans/{number}/download", include_in_schema=False)
    async def plan_download(number: int, s: dict = Depends(user)):
        data = store.plan(number)
        if data is None:
            raise HTTPException(404, f"no plan {number}")
        return download(json.dumps(data, indent=2, ensure_ascii=False) + "\n", f"plan-{number}.json")

    @app.get("/plans/{number}/scripts/{filename}", include_in_schema=False)
    async def plan_script(number: int, filename: str, s: dict = Depends(user)):
        if store.plan(number) is None:
            raise HTTPException(404, f"no plan {number}")
        got = plan_index.script(number, filename)
        if got is None:
            raise HTTPException(404, f"no script {filename} in plan {number}")
        return download(got[1], got[0], "application/octet-stream")
