"""The dashboard's routes, one module per group; `register_all` adds them in the order the URLs were always
served (the order /openapi.json lists them in)."""

from __future__ import annotations

from fastapi import FastAPI

from ..context import Web


def register_all(app: FastAPI, w: Web) -> None:
    from . import api, errors, login, pages, relay, scans

    errors.register(app, w)
    login.register(app, w)
    pages.register_overview(app, w)
    pages.register_hosts(app, w)
    scans.register(app, w)
    relay.register(app, w)
    api.register(app, w)
