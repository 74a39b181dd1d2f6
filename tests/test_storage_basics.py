"""The schema migrates and round-trips rows on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from bot.db import Database
from bot.db.migrate import current_revision, downgrade, upgrade
from bot.db.models import Article, Chat, ChatKind, Tag


def test_migrated_schema_round_trips_rows(database: Database) -> None:
    with database.session() as session:
        tag = Tag(key="rusia", name="Rusia")
        article = Article(title="Judul", body="Isi.", fingerprint="f" * 64, tags=[tag])
        session.add_all([article, Chat(id=-1001234567890123, kind=ChatKind.CHANNEL)])
    with database.session() as session:
        stored = session.scalars(select(Article)).one()
        assert [t.name for t in stored.tags] == ["Rusia"]
        assert session.get(Chat, -1001234567890123).kind is ChatKind.CHANNEL


def test_downgrade_to_empty_and_upgrade_again(sqlite_database: Database) -> None:
    assert current_revision(sqlite_database.engine) is not None
    downgrade(sqlite_database.engine, "base")
    assert current_revision(sqlite_database.engine) is None
    upgrade(sqlite_database.engine)
    assert current_revision(sqlite_database.engine) is not None
