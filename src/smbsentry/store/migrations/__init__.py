"""Alembic revisions of the store, applied by Store.open (no env.py needed)."""
