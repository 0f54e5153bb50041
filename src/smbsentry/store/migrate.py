"""Schema versions: Alembic revisions shipped in smbsentry/store/migrations/versions.

Store.open calls check_and_upgrade: an empty or older database is upgraded to
head; a database stamped with a revision this smbsentry does not know (made by
a newer smbsentry) is refused instead of being touched.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from .db import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def script_directory() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    return script_directory().get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_and_upgrade(engine: Engine, migrate: bool = True) -> str:
    script = script_directory()
    code_head = script.get_current_head()
    with engine.begin() as conn:
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
