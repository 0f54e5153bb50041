"""What every route of the dashboard shares: the store, the login, the scan jobs, the templates, and the
helpers the routes call (render a page, the logged-in user, a scan or host or 404, downloads, filters).

One `Web` is made by create_app (app.py) and handed to each group of routes (routes/*.py), which
register themselves on the FastAPI app; nothing here knows a URL.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..model import SEVERITIES
from ..store import SORTS, StoreError
import smbsentry.web.views as views  # the module itself (`from . import views` would also import the package, which imports app.py)
from .login import log as login_log
from .login import shown

COOKIE = "smbsentry_session"
PRE_COOKIE = "smbsentry_login"


class LoginRequired(Exception):
    def __init__(self, expired: bool = False) -> None:
        self.expired = expired


def make_env(templates: str) -> Environment:
    env = Environment(loader=FileSystemLoader(templates), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["ts"] = lambda v: (v or "")[:19].replace("T", " ")
    env.globals["SEVERITIES"] = SEVERITIES
    return env


def _dependencies(w: "Web"):
    """The two request dependencies: the logged-in session (or LoginRequired), and a form with its CSRF token checked."""

    def user(request: Request) -> dict:
        cookie = request.cookies.get(COOKIE)
        s = w.auth.session(cookie)
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

    return user, csrf_form


class Web:
    """The dashboard's shared state and helpers (see the module's docstring)."""

    def __init__(self, *, store, auth, jobs, allowed, env: Environment, throttle, setup_token, digests, plans,
                 secure_cookies: bool) -> None:
        self.store, self.auth, self.jobs, self.allowed, self.env = store, auth, jobs, allowed, env
        self.throttle, self.setup_token, self.digests, self.plan_index = throttle, setup_token, digests, plans
        self.secure_cookies = secure_cookies
        self.user, self.csrf_form = _dependencies(self)

    # ---------------------------------------------------------------- pages and cookies
    def render(self, request: Request, template: str, code: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("user", getattr(request.state, "user", None))
        ctx.setdefault("csrf", getattr(request.state, "csrf", ""))
        ctx["request_path"] = request.url.path
        ctx["query"] = list(request.query_params.multi_items())
        ctx["lang"] = getattr(request.state, "lang", "en")
        ctx["t"] = views.i18n.labels("web", ctx["lang"])
        return HTMLResponse(self.env.get_template(template).render(**ctx), status_code=code)

    @staticmethod
    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"

    def secure(self, request: Request) -> bool:
        return bool(self.secure_cookies) or request.url.scheme == "https"

    def set_cookie(self, resp: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
        resp.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=self.secure(request))

    @staticmethod
    def lang_of(request: Request) -> str:
        return getattr(request.state, "lang", "en")

    # ---------------------------------------------------------------- the store
    def get_scan(self, scan_id: int) -> dict:
        try:
            return self.store.scan(scan_id)
        except StoreError:
            raise HTTPException(404, f"no scan {scan_id}") from None

    def get_host(self, scan_id: int, address: str) -> dict:
        self.get_scan(scan_id)
        for h in self.store.hosts_at(scan_id, [address]):
            return h
        raise HTTPException(404, f"no host {address} in scan {scan_id}")

    def scan_list(self) -> list[dict]:
        return self.store.scans()

    def default_scan(self) -> int | None:
        """The newest scan of hosts (`detect --store` runs record traffic, not hosts)."""
        return next((s["id"] for s in self.scan_list() if not views.usage_run(s)), None)

    def picker(self) -> list[dict]:
        return [s for s in self.scan_list() if not views.usage_run(s)][:50]

    async def digest(self, scan_id: int, lang: str):
        """The scan's ranked list and per-host risk: planned once per scan and language (digest.py), off the event loop."""
        return await run_in_threadpool(self.digests.get, scan_id, lang)

    @staticmethod
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

    async def listed(self, request: Request, sid: int, finding, status, severity, risk, os_, subnet, q, sort):
        """The digest of a scan and the addresses of its hosts the filters keep, in the order asked."""
        lang = self.lang_of(request)
        filt = self.host_filters(finding, status, os_, subnet, q, sort, severity, risk, sorts=views.HOST_SORTS + SORTS)
        d = await self.digest(sid, lang)
        addrs = await run_in_threadpool(views.host_addresses, self.store, d, sid, filt, risk or None, sort)
        return d, addrs

    @staticmethod
    def ranked(d, rank: str) -> list:
        if rank and rank not in views.RANKS:
            raise HTTPException(400, f"bad rank (one of {', '.join(views.RANKS)})")
        return [r for r in d.actions if not rank or r.category == rank]

    @staticmethod
    def pages(total: int) -> int:
        return max(1, -(-total // views.PAGE))

    @staticmethod
    def page_of(items: list, page: int) -> list:
        return items[(page - 1) * views.PAGE: page * views.PAGE]

    # ---------------------------------------------------------------- downloads
    @staticmethod
    def safe_filename(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "download"

    def download(self, body: str | bytes, filename: str, media: str = "application/json") -> Response:
        return Response(body, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{self.safe_filename(filename)}"'})

    def csv_download(self, header: list[str], rows, filename: str) -> Response:
        return self.download(views.csv_text(header, rows), filename, "text/csv; charset=utf-8")

    async def csv_response(self, header: list[str], rows, filename: str) -> Response:
        """The whole list as CSV, built off the event loop (ten thousand hosts take a moment)."""
        body = await run_in_threadpool(lambda: views.csv_text(header, list(rows())))
        return self.download(body, filename, "text/csv; charset=utf-8")

    # ---------------------------------------------------------------- the login and setup forms
    def pre_token(self, request: Request) -> tuple[str, str | None]:
        """Login-form CSRF: a random token in a signed cookie and in the form (double submit)."""
        old = self.auth.unsign(request.cookies.get(PRE_COOKIE))
        token = old or secrets.token_urlsafe(24)
        return token, (None if old else self.auth.sign(token))

    def login_form(self, request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        token, cookie = self.pre_token(request)
        resp = self.render(request, name, status, csrf=token, user=None, **ctx)
        if cookie:
            self.set_cookie(resp, request, PRE_COOKIE, cookie, max_age=3600)
        return resp

    async def check_pre(self, request: Request) -> dict:
        form = {k: str(v) for k, v in (await request.form()).items()}
        want = self.auth.unsign(request.cookies.get(PRE_COOKIE))
        got = form.get("csrf", "")
        if not want or not got or not hmac.compare_digest(got.encode(), want.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return form

    @staticmethod
    def safe_next(nxt: str | None) -> str:
        return nxt if nxt and nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt else "/"

    @staticmethod
    def client(request: Request) -> str:
        return request.client.host if request.client else "?"

    def throttled(self, request: Request, name: str, user: str, wait: float, **ctx) -> HTMLResponse:
        login_log.warning("login refused for user %s from %s: too many failures, %.0fs to wait",
                          shown(user), self.client(request), wait)
        resp = self.login_form(request, name, 429, error=f"Too many failed attempts: try again in {int(wait) + 1} seconds.", **ctx)
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp
