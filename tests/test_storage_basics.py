"""The schema migrates and round-trips rows on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

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


def test_read_sessions_see_the_last_commit_and_refuse_writes(database: Database) -> None:
    with database.session() as session:
        session.add(Chat(id=7, kind=ChatKind.PRIVATE))
    with database.read_session() as session:
        assert session.get(Chat, 7) is not None
    if database.is_sqlite:  # PostgreSQL's read sessions are ordinary ones
        with pytest.raises(OperationalError, match="readonly"), database.read_session() as session:
            session.add(Chat(id=8, kind=ChatKind.PRIVATE))
            session.flush()
    # A write session after a refused read-only one writes again on the same pooled connection.
    with database.session() as session:
        session.add(Chat(id=9, kind=ChatKind.PRIVATE))
    with database.read_session() as session:
        assert sorted(session.scalars(select(Chat.id))) == [7, 9]


def test_sqlite_reads_do_not_wait_for_the_write_lock(sqlite_database: Database) -> None:
    """A fan-out's chunk holding SQLite's one write lock does not hold up a command's reads."""
    with sqlite_database.session() as session:
        session.add(Chat(id=7, kind=ChatKind.PRIVATE))
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with sqlite_database.session() as session:
            session.add(Chat(id=8, kind=ChatKind.PRIVATE))
            session.flush()
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        with sqlite_database.read_session() as session:  # would wait 30 s behind the writer if it queued
            assert sorted(session.scalars(select(Chat.id))) == [7]  # the uncommitted row is not seen
        assert thread.is_alive()  # the writer still held its transaction while we read
    finally:
        release.set()
        thread.join()
    with sqlite_database.read_session() as session:
        assert sorted(session.scalars(select(Chat.id))) == [7, 8]
