"""Throwaway PostgreSQL databases for tests and benchmarks (a test helper, not shipped): created, used, dropped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.db.engine import Database
from bot.db.migrate import upgrade

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@localhost:5432/postgres"


def admin_url() -> str:
    """The server to create databases on: NEWSBOT_TEST_POSTGRES_URL, else the local one."""
    return os.environ.get("NEWSBOT_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)


@contextmanager
def scratch_postgres(admin_url: str, prefix: str = "newsbot_tmp", *, migrate: bool = True) -> Iterator[str]:
    """Create a new database through `admin_url` (migrated unless told not to), yield its URL, drop it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        if migrate:
            database = Database(url)
            upgrade(database.engine)
            database.dispose()
        try:
            yield url
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
