"""The dashboard: FastAPI, server-rendered Jinja2 pages, a JSON API under /api.

    app = create_app(db_url, allowed_ranges=["10.0.0.0/24"])
    main_serve("127.0.0.1", 8080, db=None, allowed_ranges=[])   # what `smbsentry serve` calls

Every page and every /api route needs a logged-in session (see auth.py); the first
run asks for the admin password at /setup.  Only /static (the package's own CSS and
JS) and the login/setup pages are served without one.  Forms carry a per-session
CSRF token; /api answers errors as JSON, pages as small HTML error pages.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException

from ..model import SEVERITIES, STATUSES
from ..store import SORTS, Store, StoreError, resolve_url
from .auth import ADMIN, MIN_PASSWORD, Auth
from .jobs import Jobs, TargetRefused, check_targets, parse_allowed
from .login import SetupToken, Throttle, off_loop, shown
from .login import log as login_log
from .security import Guard, allowed_hosts, bounded_ints, with_headers
from .serve import check_store_file, console_log, startup_notes

HERE = Path(__file__).parent
COOKIE = "smbsentry_session"
PRE_COOKIE = "smbsentry_login"
PAGE = 50
API_LIMIT = 1000


class LoginRequired(Exception):
    def __init__(self, expired: bool = False) -> None:
        self.expired = expired


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["ts"] = lambda v: (v or "")[:19].replace("T", " ")
    env.globals["SEVERITIES"] = SEVERITIES
    return env


def _host_name(h: dict) -> str:
    ident = h.get("identity") or {}
    return ident.get("netbios_name") or ident.get("dns_name") or h.get("hostname") or ""


def _host_os(h: dict) -> str:
    return (h.get("identity") or {}).get("os_name") or (h.get("smb1") or {}).get("native_os") or ""


def _bad(h: dict) -> list[dict]:
    return [f for f in h.get("findings") or [] if f.get("status") in ("vulnerable", "likely")]


def _summary(h: dict) -> dict:
    return {"address": h["address"], "name": _host_name(h), "os": _host_os(h),
            "findings": [{"id": f.get("id"), "status": f.get("status"), "severity": f.get("severity")} for f in _bad(h)]}


def create_app(db: str | None = None, allowed_ranges: list[str] | None = None, *, secure_cookies: bool | None = None,
               session_ttl: float = 8 * 3600, store: Store | None = None, listen: str | None = None,
               public_url: str | None = None, allowed_host: list[str] | None = None,
               throttle: Throttle | None = None) -> FastAPI:
    """The dashboard app; `listen`, `public_url` and `allowed_host` make the Host allow-list (security.py)."""
    url = resolve_url(db)
    store = store or Store.open(url)
    auth = Auth(store.engine, ttl=session_ttl)
    allowed = parse_allowed(allowed_ranges or [])
    jobs = Jobs(url, store)
    if secure_cookies is None:
        secure_cookies = (os.environ.get("SMBSENTRY_SECURE_COOKIES", "") not in ("", "0", "false", "no")
                          or str(public_url or "").lower().startswith("https://"))
    env = _env()
    throttle = throttle or Throttle()
    setup_token = SetupToken(not auth.has_admin())

    app = FastAPI(title="smbsentry", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None,
                  description="The smbsentry scan store as JSON. Every route needs a logged-in session cookie.",
                  dependencies=[Depends(bounded_ints)])
    app.state.store, app.state.auth, app.state.jobs, app.state.allowed = store, auth, jobs, allowed
    app.state.throttle, app.state.setup_token = throttle, setup_token
    app.state.hosts = allowed_hosts(listen, public_url, allowed_host or [])
    app.add_middleware(Guard, hosts=app.state.hosts)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # ------------------------------------------------------------------ helpers
    def render(request: Request, template: str, code: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("user", getattr(request.state, "user", None))
        ctx.setdefault("csrf", getattr(request.state, "csrf", ""))
        ctx["request_path"] = request.url.path
        return HTMLResponse(env.get_template(template).render(**ctx), status_code=code)

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"

    def secure(request: Request) -> bool:
        return bool(secure_cookies) or request.url.scheme == "https"

    def set_cookie(resp: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
        resp.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=secure(request))

    def user(request: Request) -> dict:
        cookie = request.cookies.get(COOKIE)
        s = auth.session(cookie)
        if s is None:
            raise LoginRequired(expired=bool(cookie))
        request.state.user, request.state.csrf = s["user"], s["csrf"]
        return s

    async def csrf_form(request: Request, s: dict = Depends(user)) -> dict:
        form = await request.form()
        token = str(form.get("csrf") or "")
        if not token or not hmac.compare_digest(token.encode(), s["csrf"].encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return {k: str(v) for k, v in form.items()}

    def get_scan(scan_id: int) -> dict:
        try:
            return store.scan(scan_id)
        except StoreError:
            raise HTTPException(404, f"no scan {scan_id}") from None

    def get_host(scan_id: int, address: str) -> dict:
        get_scan(scan_id)
        for h in store.hosts(scan_id, search=address, limit=None):
            if h["address"] == address:
                return h
        raise HTTPException(404, f"no host {address} in scan {scan_id}")

    def default_scan() -> int | None:
        return store.latest_scan()

    def host_filters(finding, status, os_, subnet, search, sort) -> dict:
        if sort not in SORTS:
            raise HTTPException(400, f"bad sort (one of {', '.join(SORTS)})")
        if status and status not in STATUSES:
            raise HTTPException(400, f"bad status (one of {', '.join(STATUSES)})")
        if subnet:
            try:
                ipaddress.ip_network(subnet, strict=False)
            except ValueError:
                raise HTTPException(400, "bad subnet: give a CIDR such as 10.0.0.0/24") from None
        return {"finding": finding or None, "status": status or None, "os": os_ or None, "subnet": subnet or None,
                "search": search or None}

    def plans_for(h: dict | None = None) -> tuple[list[tuple[int, dict]], list[tuple[int, dict]]]:
        """(plans mentioning this host, every plan), each with its 1-based number."""
        allp = list(enumerate(store.plans(), 1))
        if h is None:
            return [], allp
        keys = {json.dumps(h["address"])} | ({json.dumps(_host_name(h))} if _host_name(h) else set())
        mine = [(i, p) for i, p in allp if any(k in json.dumps(p, ensure_ascii=False) for k in keys)]
        return mine, allp

    def scripts_of(plan: dict) -> list[tuple[str, str]]:
        raw = plan.get("scripts") or {}
        out = []
        if isinstance(raw, dict):
            out = [(str(k), v if isinstance(v, str) else json.dumps(v, indent=2)) for k, v in raw.items()]
        elif isinstance(raw, list):
            for i, s in enumerate(raw, 1):
                if isinstance(s, dict):
                    out.append((str(s.get("name") or s.get("path") or f"script-{i}"), str(s.get("content") or s.get("text") or s.get("body") or "")))
        return out

    def safe_filename(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "download"

    def download(body: str, filename: str, media: str = "application/json") -> Response:
        return Response(body, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{safe_filename(filename)}"'})

    # ------------------------------------------------------------------ errors (headers: security.Guard)
    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        """Starlette answers this outside every middleware: the page carries the security headers itself."""
        if is_api(request):
            return with_headers(JSONResponse({"detail": "internal error"}, status_code=500))
        return with_headers(render(request, "error.html", 500, status=500, detail="internal error (see the server's log)"))

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        if is_api(request):
            return JSONResponse({"detail": "login required" + (" (session expired)" if exc.expired else "")}, status_code=401)
        if not auth.has_admin():
            return RedirectResponse("/setup", status_code=302)
        nxt = request.url.path + (("?" + request.url.query) if request.url.query else "")
        q = {"next": nxt}
        if exc.expired:
            q["expired"] = "1"
        resp = RedirectResponse("/login?" + urlencode(q), status_code=302)
        if exc.expired:
            resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        s = auth.session(request.cookies.get(COOKIE))
        if s:
            request.state.user, request.state.csrf = s["user"], s["csrf"]
        return render(request, "error.html", exc.status_code, status=exc.status_code, detail=exc.detail)

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        detail = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in exc.errors())
        if is_api(request):
            return JSONResponse({"detail": detail}, status_code=422)
        return render(request, "error.html", 422, status=422, detail=detail)

    # ------------------------------------------------------------------ setup / login
    def pre_token(request: Request) -> tuple[str, str | None]:
        """Login-form CSRF: a random token in a signed cookie and in the form (double submit)."""
        old = auth.unsign(request.cookies.get(PRE_COOKIE))
        token = old or secrets.token_urlsafe(24)
        return token, (None if old else auth.sign(token))

    def login_form(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        token, cookie = pre_token(request)
        resp = render(request, name, status, csrf=token, user=None, **ctx)
        if cookie:
            set_cookie(resp, request, PRE_COOKIE, cookie, max_age=3600)
        return resp

    async def check_pre(request: Request) -> dict:
        form = {k: str(v) for k, v in (await request.form()).items()}
        want = auth.unsign(request.cookies.get(PRE_COOKIE))
        got = form.get("csrf", "")
        if not want or not got or not hmac.compare_digest(got.encode(), want.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return form

    def safe_next(nxt: str | None) -> str:
        return nxt if nxt and nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt else "/"

    def client(request: Request) -> str:
        return request.client.host if request.client else "?"

    def throttled(request: Request, name: str, user: str, wait: float, **ctx) -> HTMLResponse:
        login_log.warning("login refused for user %s from %s: too many failures, %.0fs to wait",
                          shown(user), client(request), wait)
        resp = login_form(request, name, 429, error=f"Too many failed attempts: try again in {int(wait) + 1} seconds.", **ctx)
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp

    @app.get("/setup", response_class=HTMLResponse, include_in_schema=False)
    async def setup_page(request: Request):
        if auth.has_admin():
            return RedirectResponse("/login", status_code=302)
        return login_form(request, "setup.html", min_password=MIN_PASSWORD)

    @app.post("/setup", include_in_schema=False)
    async def setup_post(request: Request):
        if auth.has_admin():
            raise HTTPException(403, "the admin password is already set")
        form = await check_pre(request)
        wait = throttle.wait(client(request), "(setup)")
        if wait > 0:
            return throttled(request, "setup.html", "(setup)", wait, min_password=MIN_PASSWORD)
        if not setup_token.check(form.get("token", "")):
            n, _ = throttle.failed(client(request), "(setup)")
            login_log.warning("setup refused from %s: wrong setup token (%d failures)", client(request), n)
            return login_form(request, "setup.html", 403, min_password=MIN_PASSWORD,
                              error="Wrong setup token: copy it from the console where smbsentry serve runs.")
        pw, again = form.get("password", ""), form.get("password2", "")
        error = None
        if len(pw) < MIN_PASSWORD:
            error = f"the password needs at least {MIN_PASSWORD} characters"
        elif pw != again:
            error = "the two passwords differ"
        if error:
            return login_form(request, "setup.html", 400, error=error, min_password=MIN_PASSWORD)
        if not await off_loop(auth.create_admin, pw):
            raise HTTPException(403, "the admin password is already set")
        setup_token.spend()
        login_log.info("admin password set from %s (first run)", client(request))
        return RedirectResponse("/login?setup=1", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request, next: str = "/", expired: str = "", setup: str = ""):  # noqa: A002
        if not auth.has_admin():
            return RedirectResponse("/setup", status_code=302)
        msg = "Your session expired: log in again." if expired else ("Admin password set: log in." if setup else None)
        return login_form(request, "login.html", next=safe_next(next), message=msg)

    @app.post("/login", include_in_schema=False)
    async def login_post(request: Request):
        form = await check_pre(request)
        nxt = safe_next(form.get("next"))
        name, address = form.get("username") or ADMIN, client(request)
        wait = throttle.wait(address, name)
        if wait > 0:
            return throttled(request, "login.html", name, wait, next=nxt)
        if not await off_loop(auth.check, name, form.get("password", "")):
            n, delay = throttle.failed(address, name)
            login_log.warning("login failed for user %s from %s (%d failures%s)", shown(name), address, n,
                              f"; next attempt heard in {delay:.0f}s" if delay else "")
            return login_form(request, "login.html", 401, next=nxt, error="Wrong user name or password.")
        throttle.succeeded(address, name)
        login_log.info("login of user %s from %s", shown(name), address)
        auth.end_session(request.cookies.get(COOKIE))
        cookie, _ = auth.new_session(name)
        resp = RedirectResponse(nxt, status_code=303)
        set_cookie(resp, request, COOKIE, cookie)
        resp.delete_cookie(PRE_COOKIE, path="/")
        return resp

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, form: dict = Depends(csrf_form)):
        auth.end_session(request.cookies.get(COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview(request: Request, scan: int | None = None, s: dict = Depends(user)):
        from ..report.scans import _charts

        sid = scan or default_scan()
        if sid is None:
            return render(request, "overview.html", scan=None, charts=[], stats=None, top=[])
        meta = get_scan(sid)
        st = store.stats(sid)
        top = {}
        for f in store.findings(sid, status=("vulnerable", "likely")):
            t = top.setdefault(f["id"], {"id": f["id"], "severity": f["severity"], "title": f["title"], "hosts": set()})
            t["hosts"].add(f["address"])
        top_list = sorted(({**t, "hosts": len(t["hosts"])} for t in top.values()),
                          key=lambda t: (SEVERITIES.index(t["severity"]) if t["severity"] in SEVERITIES else 9, -t["hosts"]))
        return render(request, "overview.html", scan=meta, stats=st, charts=_charts(store, sid, "en"), top=top_list,
                      scans=store.scans()[:50])

    @app.get("/hosts", response_class=HTMLResponse, include_in_schema=False)
    async def hosts_page(request: Request, scan: int | None = None, finding: str = "", status: str = "", os: str = "",
                         subnet: str = "", q: str = "", sort: str = "address", page: int = Query(1, ge=1),
                         s: dict = Depends(user)):
        sid = scan or default_scan()
        if sid is None:
            return render(request, "hosts.html", scan=None, hosts=[], total=0, f={}, finding_ids=[], pages=0, page=1, base="")
        meta = get_scan(sid)
        filt = host_filters(finding, status, os, subnet, q, sort)
        total = store.count_hosts(sid, **filt)
        rows = store.hosts(sid, sort=sort, limit=PAGE, offset=(page - 1) * PAGE, **filt)
        finding_ids = sorted({f["id"] for f in store.findings(sid)})
        params = {k: v for k, v in {"scan": sid, "finding": finding, "status": status, "os": os, "subnet": subnet, "q": q,
                                    "sort": sort}.items() if v}
        return render(request, "hosts.html", scan=meta, hosts=[{**_summary(h), "raw": h} for h in rows], total=total,
                      f={"finding": finding, "status": status, "os": os, "subnet": subnet, "q": q, "sort": sort},
                      finding_ids=finding_ids, statuses=STATUSES, sorts=SORTS, page=page, pages=max(1, -(-total // PAGE)),
                      base="/hosts?" + urlencode(params), scans=store.scans()[:50])

    @app.get("/hosts/{scan_id}/{address}", response_class=HTMLResponse, include_in_schema=False)
    async def host_page(request: Request, scan_id: int, address: str, s: dict = Depends(user)):
        from ..report.fixes import fix_text

        h = get_host(scan_id, address)
        name, os_name = _host_name(h), _host_os(h)
        audits = [a for a in store.audits() if a.get("address") == address or (name and str(a.get("host") or "").upper() == name.upper())]
        fixes = {}
        for f in _bad(h):
            if f["id"] not in fixes:
                try:
                    fixes[f["id"]] = fix_text(f["id"], [h])  # from the host's plan: its own service pack and build
                except Exception:  # noqa: BLE001 - advice is optional
                    fixes[f["id"]] = []
        from ..report.scans import _rule_fixes  # `smbsentry rules` findings: the exact per-rule fix first

        for fid, para in _rule_fixes([h], "en").items():
            fixes.setdefault(fid, []).insert(0, para)
        mine, allp = plans_for(h)
        order = {"vulnerable": 0, "likely": 1, "unknown": 2, "not_vulnerable": 3}
        findings = sorted(h.get("findings") or [], key=lambda f: (order.get(f.get("status"), 9),
                          SEVERITIES.index(f["severity"]) if f.get("severity") in SEVERITIES else 9))
        return render(request, "host.html", scan=get_scan(scan_id), h=h, name=name, os_name=os_name, findings=findings,
                      audits=audits, fixes=fixes, plans=[(i, p, scripts_of(p)) for i, p in mine],
                      all_plans=[(i, p) for i, p in allp], raw=json.dumps(h, indent=2, ensure_ascii=False))

    @app.get("/hosts/{scan_id}/{address}/download", include_in_schema=False)
    async def host_download(scan_id: int, address: str, s: dict = Depends(user)):
        h = get_host(scan_id, address)
        return download(json.dumps(h, indent=2, ensure_ascii=False) + "\n", f"host-{scan_id}-{address}.json")

    @app.get("/plans/{number}/download", include_in_schema=False)
    async def plan_download(number: int, s: dict = Depends(user)):
        allp = store.plans()
        if not 1 <= number <= len(allp):
            raise HTTPException(404, f"no plan {number}")
        return download(json.dumps(allp[number - 1], indent=2, ensure_ascii=False) + "\n", f"plan-{number}.json")

    @app.get("/plans/{number}/scripts/{index}", include_in_schema=False)
    async def plan_script(number: int, index: int, s: dict = Depends(user)):
        allp = store.plans()
        if not 1 <= number <= len(allp):
            raise HTTPException(404, f"no plan {number}")
        scripts = scripts_of(allp[number - 1])
        if not 1 <= index <= len(scripts):
            raise HTTPException(404, f"no script {index} in plan {number}")
        name, body = scripts[index - 1]
        return download(body, name, "text/plain; charset=utf-8")

    @app.get("/scans", response_class=HTMLResponse, include_in_schema=False)
    async def scans_page(request: Request, s: dict = Depends(user)):
        return render(request, "scans.html", scans=store.scans(), jobs=jobs.all(), allowed=[str(n) for n in allowed])

    @app.get("/scans/{scan_id}/report.json", include_in_schema=False)
    async def scan_download(scan_id: int, s: dict = Depends(user)):
        from ..report.scans import render_report

        get_scan(scan_id)
        return download(render_report(store, scan_id, "json"), f"scan-{scan_id}.json")

    @app.post("/scans/start", include_in_schema=False)
    async def scan_start(request: Request, form: dict = Depends(csrf_form), s: dict = Depends(user)):
        try:
            targets = check_targets(form.get("targets", ""), allowed)
            job = jobs.start(targets, form.get("ports", "445,139").strip() or "445,139", form.get("checks", "default"), s["user"])
        except TargetRefused as exc:
            return render(request, "scans.html", 403, scans=store.scans(), jobs=jobs.all(), allowed=[str(n) for n in allowed],
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
        return render(request, "diff.html", d=store.diff(old, new), old=get_scan(old), new=get_scan(new))

    @app.get("/arsenal", response_class=HTMLResponse, include_in_schema=False)
    async def arsenal_page(request: Request, scan: int | None = None, lang: str = "en", s: dict = Depends(user)):
        from ..report.arsenal import LABELS as AL, for_scan

        if lang not in AL:
            raise HTTPException(400, "bad lang (en or zh)")
        sid = scan or default_scan()
        if sid is None:
            return render(request, "arsenal.html", scan=None, arsenal=[], ta=AL[lang], lang=lang)
        meta = get_scan(sid)
        return render(request, "arsenal.html", scan=meta, arsenal=for_scan(store, sid, lang), ta=AL[lang], lang=lang,
                      scans=store.scans()[:50])

    @app.get("/api/scans/{scan_id}/arsenal", tags=["scans"], summary="The 18 Shadow Brokers tools: hosts each applies to, and the fix",
             responses={404: {"description": "unknown scan"}})
    async def api_arsenal(scan_id: int, s: dict = Depends(user)) -> dict:
        from ..checks.shadowbrokers import arsenal

        get_scan(scan_id)
        return {"scan_id": scan_id, "tools": arsenal(store.hosts(scan_id, limit=None))}

    # ------------------------------------------------------------------ API
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
                        subnet: str | None = None, search: str | None = None, sort: str = "address",
                        limit: int = Query(100, ge=1, le=API_LIMIT), offset: int = Query(0, ge=0),
                        s: dict = Depends(user)) -> dict:
        get_scan(scan_id)
        filt = host_filters(finding, status, os, subnet, search, sort)
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
                               "scan_id": job.scan_id, "hosts": 0, "recent": [], "error": None}
        if job.state == "failed":
            out["error"] = job.stderr.strip().splitlines()[-1] if job.stderr.strip() else f"exit status {job.returncode}"
        if job.scan_id is not None:
            meta = store.scan(job.scan_id)
            out.update(scan_status=meta["status"], hosts=meta["hosts"], exposed=meta["exposed"])
            out["recent"] = [_summary(h) for h in store.hosts(job.scan_id, sort="-added", limit=50)]
            out["hosts"] = store.count_hosts(job.scan_id)
        return out

    return app


def main_serve(host: str, port: int, db: str | None, allowed_ranges: list[str], *, public_url: str | None = None,
               allowed_host: list[str] | None = None) -> int:
    """`smbsentry serve`: run the dashboard with uvicorn until interrupted; 2 on bad input, 1 on failure."""
    import uvicorn

    if public_url and not re.match(r"^https?://[^/\s]+", public_url):
        print(f"smbsentry serve: --public-url {public_url!r} is not an http:// or https:// URL", file=sys.stderr)
        return 2
    try:
        app = create_app(db, allowed_ranges, listen=host, public_url=public_url, allowed_host=allowed_host)
    except (StoreError, TargetRefused) as exc:
        print(f"smbsentry serve: {exc}", file=sys.stderr)
        return 2
    console_log()
    check_store_file(resolve_url(db))
    try:
        if not ipaddress.ip_address(host).is_loopback:
            print(f"smbsentry serve: listening on {host}: put it behind HTTPS (and set SMBSENTRY_SECURE_COOKIES=1)",
                  file=sys.stderr)
    except ValueError:
        pass
    for line in startup_notes(host, port, public_url, allowed_host, app.state.setup_token.value):
        print(f"smbsentry serve: {line}", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
    except (OSError, SystemExit) as exc:
        print(f"smbsentry serve: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    finally:
        app.state.jobs.stop_all()
    return 0
