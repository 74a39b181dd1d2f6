"""Alembic migrations, applied at start and by `newsbot db upgrade`."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Key of the PostgreSQL advisory lock held while migrating (any constant unique to newsbot).
MIGRATION_LOCK_KEY = 0x6E657773626F74  # "newsbot"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _lock_migrations(connection: Connection) -> None:
    """One process migrates at a time; the others wait, then find the schema current.

    PostgreSQL: a transaction-level advisory lock, released at commit or rollback (processes
    starting together on a fresh database otherwise both insert into alembic_version).
    SQLite needs none: bot.db.engine begins every transaction with BEGIN IMMEDIATE, which
    already holds the database's write lock until commit.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def _revision_of(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to `revision` using the given engine's connection."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        _lock_migrations(connection)
        before = _revision_of(connection)  # read under the lock: another process may just have migrated
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = _revision_of(connection)
    if after != before:
        log.info("database schema upgraded from %s to %s", before or "empty", after)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        _lock_migrations(connection)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _revision_of(connection)
