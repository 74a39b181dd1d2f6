"""Storage: the ORM model, engine and migrations."""

from bot.db.engine import Database, DatabaseUnavailable, describe_database, is_unavailable, make_engine, open_database

__all__ = ["Database", "DatabaseUnavailable", "describe_database", "is_unavailable", "make_engine", "open_database"]
