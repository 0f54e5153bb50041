"""The scan store: every scan, host result and finding, in SQLite or PostgreSQL.

    from smbsentry.store import Store
    store = Store.open(url=None)     # --db URL / SMBSENTRY_DB / user data dir SQLite
"""

from .db import BAD, SORTS, Diff, Store, StoreError, default_path, resolve_url, sort_key

__all__ = ["BAD", "SORTS", "Diff", "Store", "StoreError", "default_path", "resolve_url", "sort_key"]
