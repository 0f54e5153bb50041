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
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..model import SEVERITIES, STATUSES
from ..store import SORTS, Store, StoreError, resolve_url
import smbsentry.web.views as views  # the module itself (`from . import views` would also import the package, which imports this module)
from .auth import ADMIN, MIN_PASSWORD, Auth
from .digest import Digests
from .jobs import Jobs, TargetRefused, check_targets, parse_allowed
from .lang import install as install_lang
from .lang import known_lang
from .login import SetupToken, Throttle, off_loop, shown
from .login import log as login_log
from .plans import Plans
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


def _summary(h: dict) -> dict:
    return {"address": h["address"], "name": views.host_name(h), "os": views.host_os(h),
            "findings": [{"id": f.get("id"), "status": f.get("status"), "severity": f.get("severity")}
                         for f in h.get("findings") or [] if f.get("status") in views.BAD]}


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
                  dependencies=[Depends(bounded_ints), Depends(known_lang)])
    app.state.store, app.state.auth, app.state.jobs, app.state.allowed = store, auth, jobs, allowed
    app.state.throttle, app.state.setup_token = throttle, setup_token
    app.state.hosts = allowed_hosts(listen, public_url, allowed_host or [])
    install_lang(app, env)  # ?lang=zh, remembered in a cookie; request.state.lang
    app.add_middleware(Guard, hosts=app.state.hosts)  # added last, so outermost: a foreign Host or a huge body goes no further
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    digests, plan_index = Digests(store), Plans(store)
    app.state.digests, app.state.plans = digests, plan_index

    # ------------------------------------------------------------------ helpers
    def render(request: Request, template: str, code: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("user", getattr(request.state, "user", None))
        ctx.setdefault("csrf", getattr(request.state, "csrf", ""))
        ctx["request_path"] = request.url.path
        ctx["query"] = list(request.query_params.multi_items())
        ctx["lang"] = getattr(request.state, "lang", "en")
        ctx["t"] = views.i18n.labels("web", ctx["lang"])
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
        for h in store.hosts_at(scan_id, [address]):
            return h
        raise HTTPException(404, f"no host {address} in scan {scan_id}")

    def default_scan() -> int | None:
        """The newest scan of hosts (`detect --store` runs record traffic, not hosts)."""
        return next((s["id"] for s in scan_list() if not views.usage_run(s)), None)

    def scan_list() -> list[dict]:
        return store.scans()

    def host_filters(finding, status, os_, subnet, search, sort, severity=None, state=None, sorts=SORTS) -> dict:
        """Validated filters for store.host_addresses; `status` "bad" means vulnerable or likely."""
        if sort not in sorts:
            raise HTTPException(400, f"bad sort (one of {', '.join(sorts)})")
        if status and status not in views.STATUS_FILTERS:
            raise HTTPException(400, f"bad status (one of {', '.join(views.STATUS_FILTERS)})")
        if severity and severity not in SEVERITIES:
            raise HTTPException(400, f"bad severity (one of {', '.join(SEVERITIES)})")
        if state and state not in views.STATES:
            raise HTTPException(400, f"bad risk (one of {', '.join(views.STATES)})")
        if subnet:
            try:
                ipaddress.ip_network(subnet, strict=False)
            except ValueError:
                raise HTTPException(400, "bad subnet: give a CIDR such as 10.0.0.0/24") from None
        return {"finding": finding or None, "status": views.BAD if status == "bad" else (status or None), "os": os_ or None,
                "subnet": subnet or None, "search": search or None, "severity": severity or None}

    async def digest(scan_id: int, lang: str):
        """The scan's ranked list and per-host risk: planned once per scan and language (digest.py), off the event loop."""
        return await run_in_threadpool(digests.get, scan_id, lang)

    def safe_filename(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "download"

    def download(body: str | bytes, filename: str, media: str = "application/json") -> Response:
        return Response(body, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{safe_filename(filename)}"'})

    def csv_download(header: list[str], rows, filename: str) -> Response:
        return download(views.csv_text(header, rows), filename, "text/csv; charset=utf-8")

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
    def picker() -> list[dict]:
        return [s for s in scan_list() if not views.usage_run(s)][:50]

    def lang_of(request: Request) -> str:
        return getattr(request.state, "lang", "en")

    def pages(total: int) -> int:
        return max(1, -(-total // views.PAGE))

    def page_of(items: list, page: int) -> list:
        return items[(page - 1) * views.PAGE: page * views.PAGE]

    async def csv_response(header: list[str], rows, filename: str) -> Response:
        """The whole list as CSV, built off the event loop (ten thousand hosts take a moment)."""
        body = await run_in_threadpool(lambda: views.csv_text(header, list(rows())))
        return download(body, filename, "text/csv; charset=utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview(request: Request, scan: int | None = None, s: dict = Depends(user)):
        from ..report.scans import _trend

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

    def ranked(d, rank: str) -> list:
        if rank and rank not in views.RANKS:
            raise HTTPException(400, f"bad rank (one of {', '.join(views.RANKS)})")
        return [r for r in d.actions if not rank or r.category == rank]

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

    async def listed(request: Request, sid: int, finding, status, severity, risk, os_, subnet, q, sort):
        lang = lang_of(request)
        filt = host_filters(finding, status, os_, subnet, q, sort, severity, risk, sorts=views.HOST_SORTS + SORTS)
        d = await digest(sid, lang)
        addrs = await run_in_threadpool(views.host_addresses, store, d, sid, filt, risk or None, sort)
        return d, addrs

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
        from ..report.actions import step_html
        from ..report.fixes import plan_fixes
        from ..report.view import _rule_fixes

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
        from ..report.scans import render_report

        get_scan(scan_id)
        return download(render_report(store, scan_id, "json"), f"scan-{scan_id}.json")

    @app.post("/scans/start", include_in_schema=False)
    async def scan_start(request: Request, form: dict = Depends(csrf_form), s: dict = Depends(user)):
        try:
            targets = check_targets(form.get("targets", ""), allowed)
            job = jobs.start(targets, form.get("ports", "445,139").strip() or "445,139", form.get("checks", "default"), s["user"])
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
        from ..report.arsenal import LABELS as AL, for_scan

        lang = lang_of(request)
        sid = scan or default_scan()
        if sid is None:
            return render(request, "arsenal.html", scan=None, arsenal=[], ta=AL[lang])
        meta = get_scan(sid)
        return render(request, "arsenal.html", scan=meta, arsenal=for_scan(store, sid, lang), ta=AL[lang], scans=picker())

    @app.get("/api/scans/{scan_id}/arsenal", tags=["scans"], summary="The 18 Shadow Brokers tools: hosts each applies to, and the fix",
             responses={404: {"description": "unknown scan"}})
    async def api_arsenal(scan_id: int, s: dict = Depends(user)) -> dict:
        from ..report.arsenal import arsenal

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
