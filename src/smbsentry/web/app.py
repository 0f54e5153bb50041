"""The dashboard: FastAPI, server-rendered Jinja2 pages, a JSON API under /api.

    app = create_app(db_url, allowed_ranges=["10.0.0.0/24"])
    main_serve("127.0.0.1", 8080, db=None, allowed_ranges=[])   # what `smbsentry serve` calls

The routes live in routes/ (one module per group: errors, login, pages, scans,
relay, api), the state and helpers they share in context.py; create_app wires them.
Every page and every /api route needs a logged-in session (see auth.py); the first
run asks for the admin password at /setup.  Only /static (the package's own CSS and
JS) and the login/setup pages are served without one.  Forms carry a per-session
CSRF token; /api answers errors as JSON, pages as small HTML error pages.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from ..store import Store, StoreError, resolve_url
from .auth import Auth
from .context import Web, make_env
from .digest import Digests
from .jobs import Jobs, TargetRefused, parse_allowed
from .lang import install as install_lang
from .lang import known_lang
from .login import SetupToken, Throttle
from .plans import Plans
from .routes import register_all
from .security import Guard, allowed_hosts, bounded_ints
from .serve import check_store_file, console_log, startup_notes

HERE = Path(__file__).parent


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
    env = make_env(str(HERE / "templates"))
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

    register_all(app, Web(store=store, auth=auth, jobs=jobs, allowed=allowed, env=env, throttle=throttle,
                          setup_token=setup_token, digests=digests, plans=plan_index, secure_cookies=bool(secure_cookies)))
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
