"""Scans: the list, starting one (inside the allowed ranges), its job page, diffs and the arsenal view."""

from __future__ import annotations


from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException

import smbsentry.web.views as views  # the module itself (`from .. import views` would import the package, hence app.py)
from ...protocol.transport import SMB_PORTS_TEXT
from ..context import Web
from ..jobs import TargetRefused, check_targets


def register(app: FastAPI, w: Web) -> None:
    """Scans, scan jobs, diffs and the arsenal."""
    # the shared state and helpers (context.Web) by the short names the routes were written with
    (store, jobs, allowed, render, user, csrf_form, get_scan, default_scan, scan_list, download, picker,
        lang_of, csv_response) = (w.store, w.jobs, w.allowed, w.render, w.user, w.csrf_form, w.get_scan,
        w.default_scan, w.scan_list, w.download, w.picker, w.lang_of, w.csv_response)

    @app.get("/scans", response_class=HTMLResponse, include_in_schema=False)
    async def scans_page(request: Request, s: dict = Depends(user)):
        return render(request, "scans.html", scans=scan_list(), jobs=jobs.all(), allowed=[str(n) for n in allowed])

    @app.get("/scans.csv", include_in_schema=False)
    async def scans_csv(request: Request, s: dict = Depends(user)):
        t = views.i18n.labels("web", lang_of(request))
        header = [t["col_id"], t["col_started"], t["col_status"], t["col_hosts"], t["col_exposed"], t["col_findings"], t["col_targets"]]
        return await csv_response(header, lambda: ([x["id"], x["started"], x["status"], x["hosts"], x["exposed"], x["findings"],
                                                    " ".join(x["targets"])] for x in scan_list()), "scans.csv")

    @app.get("/scans/{scan_id}/report.json", include_in_schema=False)
    async def scan_download(scan_id: int, s: dict = Depends(user)):
        from ...report.scans import render_report

        get_scan(scan_id)
        return download(render_report(store, scan_id, "json"), f"scan-{scan_id}.json")

    @app.post("/scans/start", include_in_schema=False)
    async def scan_start(request: Request, form: dict = Depends(csrf_form), s: dict = Depends(user)):
        try:
            targets = check_targets(form.get("targets", ""), allowed)
            job = jobs.start(targets, form.get("ports", SMB_PORTS_TEXT).strip() or SMB_PORTS_TEXT, form.get("checks", "default"), s["user"])
        except TargetRefused as exc:
            return render(request, "scans.html", 403, scans=scan_list(), jobs=jobs.all(), allowed=[str(n) for n in allowed],
                          error=str(exc), form=form)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    @app.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    async def job_page(request: Request, job_id: int, s: dict = Depends(user)):
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no scan job {job_id}")
        return render(request, "job.html", job=job)

    @app.get("/diff", response_class=HTMLResponse, include_in_schema=False)
    async def diff_page(request: Request, old: int, new: int, s: dict = Depends(user)):
        get_scan(old), get_scan(new)
        view = views.diff_view(store.diff(old, new), lang_of(request))
        return render(request, "diff.html", v=view, old=get_scan(old), new=get_scan(new))

    @app.get("/diff.csv", include_in_schema=False)
    async def diff_csv(request: Request, old: int, new: int, s: dict = Depends(user)):
        get_scan(old), get_scan(new)
        lang = lang_of(request)
        view = views.diff_view(store.diff(old, new), lang)
        t = views.i18n.labels("web", lang)
        header = [t["col_change"], t["col_address"], t["col_port"], t["col_finding"], t["col_severity"], t["col_before"],
                  t["col_after"], t["col_why"]]
        return await csv_response(header, lambda: views.diff_csv_rows(view), f"diff-{old}-{new}.csv")

    @app.get("/arsenal", response_class=HTMLResponse, include_in_schema=False)
    async def arsenal_page(request: Request, scan: int | None = None, s: dict = Depends(user)):
        from ...report.arsenal import LABELS as AL, for_scan

        lang = lang_of(request)
        sid = scan or default_scan()
        if sid is None:
            return render(request, "arsenal.html", scan=None, arsenal=[], ta=AL[lang])
        meta = get_scan(sid)
        return render(request, "arsenal.html", scan=meta, arsenal=for_scan(store, sid, lang), ta=AL[lang], scans=picker())

    @app.get("/api/scans/{scan_id}/arsenal", tags=["scans"], summary="The 18 Shadow Brokers tools: hosts each applies to, and the fix",
             responses={404: {"description": "unknown scan"}})
    async def api_arsenal(scan_id: int, s: dict = Depends(user)) -> dict:
        from ...report.arsenal import arsenal

        get_scan(scan_id)
        return {"scan_id": scan_id, "tools": arsenal(store.hosts(scan_id, limit=None))}
