"""smbsentry.web: the dashboard behind `smbsentry serve`.

    from smbsentry.web import create_app, main_serve
    main_serve("127.0.0.1", 8080, db=None, allowed_ranges=["10.0.0.0/24"])

Users, sessions and the cookie key live in three web_* tables of the store's
database (see auth.py).  Scans started from the dashboard must lie inside
`allowed_ranges` (see jobs.py).
"""

from .app import create_app, main_serve

__all__ = ["create_app", "main_serve"]
