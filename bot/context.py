"""The services of one process, built once in main() and passed to adapters."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.db import Database, open_database
from bot.db.migrate import upgrade


@dataclass
class AppContext:
    """Settings and database of a process; services take what they need from here."""

    settings: Settings
    db: Database

    def close(self) -> None:
        self.db.dispose()


def open_context(settings: Settings, *, migrate: bool = True) -> AppContext:
    """Connect to the database (creating the SQLite folder) and apply migrations.

    Raises DatabaseUnavailable (one line naming DATABASE_URL) when it cannot be reached.
    """
    # Without migrating (workers) a database still starting is waited for, not an error.
    db = open_database(settings.database_url, connect=migrate)
    if migrate:
        upgrade(db.engine)
    return AppContext(settings=settings, db=db)
