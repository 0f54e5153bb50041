"""The error pages and JSON errors of the dashboard."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException

from ..context import COOKIE, LoginRequired, Web
from ..security import with_headers


def register(app: FastAPI, w: Web) -> None:
    """Error answers: JSON under /api, small HTML pages elsewhere; a missing login goes to /login (or /setup)."""
    # the shared state and helpers (context.Web) by the short names the routes were written with
    (auth, render, is_api) = (w.auth, w.render, w.is_api)

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
