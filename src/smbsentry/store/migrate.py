"""Schema versions: Alembic revisions shipped in smbsentry/store/migrations/versions.

Store.open calls check_and_upgrade: an empty or older database is upgraded to
head; a database stamped with a revision this smbsentry does not know (made by
a newer smbsentry) is refused instead of being touched.

Several processes may open a brand-new store at the same moment (two scans,
a scan and the dashboard): the check and the upgrade run under a lock held
for the whole transaction (PostgreSQL: an advisory transaction lock; SQLite:
BEGIN IMMEDIATE, the database's write lock), so the second process waits,
then finds the schema at head and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from .db import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def script_directory() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    return script_directory().get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


SCHEMA_LOCK = 0x736D6273  # "smbs": the advisory lock id of schema changes (PostgreSQL)


def _lock_schema(conn: Connection) -> None:
    """Hold the schema lock until this transaction ends (see the module doc)."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
    elif name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def check_and_upgrade(engine: Engine, migrate: bool = True) -> str:
    script = script_directory()
    code_head = script.get_current_head()
    with engine.begin() as conn:
        _lock_schema(conn)
        ctx = MigrationContext.configure(conn)
        for rev in ctx.get_current_heads():
            try:
                known = script.get_revision(rev)
            except Exception:  # noqa: BLE001 - alembic raises ResolutionError / CommandError
                known = None
            if known is None:
                raise StoreError(f"database schema {rev} is newer than this smbsentry ({code_head}): upgrade smbsentry")
        if not migrate:
            return ctx.get_current_revision() or ""

        def upgrade(rev, context):
            return script._upgrade_revs(code_head, rev)

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with EnvironmentContext(cfg, script, fn=upgrade, destination_rev=code_head) as env:
            env.configure(connection=conn, target_metadata=None, transaction_per_migration=False)
            with env.begin_transaction():
                env.run_migrations()
    return code_head
