"""The JSON API under /api (and /openapi.json), every route behind a login."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Query
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

import smbsentry.web.views as views  # the module itself (`from .. import views` would import the package, hence app.py)
from ..context import Web

API_LIMIT = 1000  # hosts one /api page may hold


def _summary(h: dict) -> dict:
    return {"address": h["address"], "name": views.host_name(h), "os": views.host_os(h),
            "findings": [{"id": f.get("id"), "status": f.get("status"), "severity": f.get("severity")}
                         for f in h.get("findings") or [] if f.get("status") in views.BAD]}


def register(app: FastAPI, w: Web) -> None:
    """The API routes."""
    # the shared state and helpers (context.Web) by the short names the routes were written with
    (store, jobs, user, get_scan, get_host, host_filters) = (w.store, w.jobs, w.user, w.get_scan, w.get_host,
        w.host_filters)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(s: dict = Depends(user)):
        return JSONResponse(app.openapi())

    @app.get("/api/scans", tags=["scans"], summary="Every scan, newest first")
    async def api_scans(s: dict = Depends(user)) -> list[dict]:
        return store.scans()

    @app.get("/api/scans/{scan_id}", tags=["scans"], summary="One scan with its statistics",
             responses={404: {"description": "unknown scan"}})
    async def api_scan(scan_id: int, s: dict = Depends(user)) -> dict:
        meta = get_scan(scan_id)
        st = store.stats(scan_id)
        return {**meta, "stats": {**st, "by_os": [list(x) for x in st["by_os"]], "by_severity": [list(x) for x in st["by_severity"]]}}

    @app.get("/api/scans/{scan_id}/hosts", tags=["hosts"], summary="Host results of a scan, filtered, sorted, paginated",
             responses={404: {"description": "unknown scan"}, 400: {"description": "bad filter"}})
    async def api_hosts(scan_id: int, finding: str | None = None, status: str | None = None, os: str | None = None,
                        subnet: str | None = None, search: str | None = None, sort: str = "address", severity: str | None = None,
                        limit: int = Query(100, ge=1, le=API_LIMIT), offset: int = Query(0, ge=0),
                        s: dict = Depends(user)) -> dict:
        get_scan(scan_id)
        filt = host_filters(finding, status, os, subnet, search, sort, severity)
        return {"scan_id": scan_id, "total": store.count_hosts(scan_id, **filt), "limit": limit, "offset": offset,
                "hosts": store.hosts(scan_id, sort=sort, limit=limit, offset=offset, **filt)}

    @app.get("/api/hosts/{scan_id}/{address}", tags=["hosts"], summary="One host result (the contract's host JSON)",
             responses={404: {"description": "unknown scan or host"}})
    async def api_host(scan_id: int, address: str, s: dict = Depends(user)) -> dict:
        return get_host(scan_id, address)

    @app.get("/api/diff", tags=["scans"], summary="What changed between two scans",
             responses={404: {"description": "unknown scan"}})
    async def api_diff(old: int, new: int, s: dict = Depends(user)) -> dict:
        get_scan(old), get_scan(new)
        return store.diff(old, new).to_dict()

    @app.get("/api/jobs/{job_id}", tags=["scans"], summary="Progress of a scan started from the dashboard",
             responses={404: {"description": "unknown job"}})
    async def api_job(job_id: int, s: dict = Depends(user)) -> dict:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no scan job {job_id}")
        out: dict[str, Any] = {"id": job.id, "state": job.state, "targets": job.targets, "returncode": job.returncode,
                               "scan_id": job.scan_id, "hosts": 0, "recent": [], "error": job.error}
        if job.scan_id is not None:
            meta = store.scan(job.scan_id)
            out.update(scan_status=meta["status"], hosts=meta["hosts"], exposed=meta["exposed"])
            out["recent"] = [_summary(h) for h in store.hosts(job.scan_id, sort="-added", limit=50)]
            out["hosts"] = store.count_hosts(job.scan_id)
        return out
