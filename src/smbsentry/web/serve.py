"""What `smbsentry serve` says on its console: login events, a store others can read, the setup token."""

from __future__ import annotations

import logging
import os
import sys


def console_log() -> None:
    """Login events (login.py) on the console, with a time stamp: the admin sees who tried what."""
    logger = logging.getLogger("smbsentry.web")
    if not any(getattr(h, "_smbsentry", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s smbsentry serve: %(message)s"))
        handler._smbsentry = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def check_store_file(url: str) -> None:
    """Say so when the SQLite store is readable by others: it holds every finding and the dashboard's users."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    try:
        mode = os.stat(parsed.database).st_mode & 0o777
    except OSError:
        return
    if mode & 0o077:
        print(f"smbsentry serve: the store {parsed.database} is readable by others (mode {mode:o}): "
              f"chmod 600 {parsed.database}", file=sys.stderr)


def startup_notes(host: str, port: int, public_url: str | None, allowed_host: list[str] | None,
                  token: str | None) -> list[str]:
    """Lines for the console when the server starts."""
    notes = []
    if host in ("0.0.0.0", "::") and not public_url and not allowed_host:
        notes.append("only loopback host names are answered: give --public-url or --allowed-host for the name "
                     "users type")
    if token:
        where = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
        notes.append(f"no admin yet: open {(public_url or f'http://{where}:{port}').rstrip('/')}/setup and give this "
                     f"one-time setup token: {token}")
    return notes
