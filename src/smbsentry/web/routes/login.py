"""First-run setup, login and logout."""

from __future__ import annotations


from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException

from ..auth import ADMIN, MIN_PASSWORD
from ..context import COOKIE, PRE_COOKIE, Web
from ..login import log as login_log
from ..login import off_loop, shown


def register(app: FastAPI, w: Web) -> None:
    """The admin password at /setup (with the console's one-time token), /login with throttling, /logout."""
    # the shared state and helpers (context.Web) by the short names the routes were written with
    (auth, throttle, setup_token, set_cookie, csrf_form, login_form, check_pre, safe_next, client,
        throttled) = (w.auth, w.throttle, w.setup_token, w.set_cookie, w.csrf_form, w.login_form, w.check_pre,
        w.safe_next, w.client, w.throttled)

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
