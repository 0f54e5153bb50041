"""Relay paths: the scan's NTLM relay targets (a page, filtered by state and paged) and the relay list to download.

Both read report/relay.py, as `smbsentry report` does: the page shows `relay_section`'s rows (the report's
"relay paths" section; the host page shows its own host's), the download is `report.scans.relay_targets`, the
text `report --relay-list FILE` writes, byte for byte.  Nothing here decides whether a path is open.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

import smbsentry.web.views as views  # the module itself (`from .. import views` would import the package, hence app.py)
from ..context import Web

STATES = ("vulnerable", "likely", "unknown", "not_probed", "not_vulnerable")  # relay_section's states, the filter's order


def register(app: FastAPI, w: Web) -> None:
    """The relay paths page and the relay list download."""
    store, render, user, get_scan, default_scan, picker, lang_of, pages, page_of, download = (
        w.store, w.render, w.user, w.get_scan, w.default_scan, w.picker, w.lang_of, w.pages, w.page_of, w.download)

    @app.get("/relay", response_class=HTMLResponse, include_in_schema=False)
    async def relay_page(request: Request, scan: int | None = None, state: str = "", page: int = Query(1, ge=1),
                         s: dict = Depends(user)):
        from ...report.relay import relay_section

        lang = lang_of(request)
        tr = views.i18n.labels("report", lang)
        sid = scan or default_scan()
        if sid is None:
            return render(request, "relay.html", scan=None)
        if state and state not in STATES:
            raise HTTPException(400, f"bad state (one of {', '.join(STATES)})")
        meta = get_scan(sid)
        # every host of the scan is read: off the event loop (ten thousand hosts take a moment)
        section = await run_in_threadpool(lambda: relay_section(store.hosts(sid, limit=None), lang))
        rows = [r for r in section["rows"] if not state or r.state == state]
        params = {k: v for k, v in {"scan": sid, "state": state}.items() if v}
        labels = dict(zip(STATES, (tr["relay_open"], tr["relay_likely"], tr["relay_unknown"], tr["relay_not_probed"],
                                   tr["relay_closed"])))
        return render(request, "relay.html", scan=meta, relay=section, state_labels=labels, rows=page_of(rows, page), total=len(rows),
                      state=state, states=STATES, page=page, pages=pages(len(rows)), base="/relay?" + urlencode(params),
                      scans=picker())

    @app.get("/scans/{scan_id}/relay-list.txt", include_in_schema=False)
    async def relay_download(scan_id: int, s: dict = Depends(user)):
        from ...report.scans import relay_targets

        get_scan(scan_id)
        body = await run_in_threadpool(relay_targets, store, scan_id)
        return download(body.encode("utf-8"), f"relay-targets-{scan_id}.txt", "text/plain; charset=utf-8")
