"""Every migration walks up and down on SQLite and PostgreSQL, and head matches the ORM model.

Each test starts from a truly empty database (a new SQLite file, or a new PostgreSQL database
created for the test), not from the migrated fixtures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, column, inspect, select, table

from bot.db import Database
from bot.db.migrate import alembic_config, current_revision, downgrade, upgrade
from bot.db.models import Article, Base, Tag

from conftest import POSTGRES_ADMIN_URL
from pgscratch import scratch_postgres

REPO = Path(__file__).resolve().parent.parent


def _revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def _previous(revision: str) -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    down = script.get_revision(revision).down_revision
    assert not isinstance(down, tuple), "merge revisions are not expected"
    return down or "base"


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables at all: a new SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
        yield database
        database.dispose()
        return
    with scratch_postgres(POSTGRES_ADMIN_URL, "newsbot_migr", migrate=False) as url:
        database = Database(url)
        try:
            yield database
        finally:
            database.dispose()


def _user_tables(engine: Engine) -> set[str]:
    return {name for name in inspect(engine).get_table_names() if name != "alembic_version" and _not_fts(name, "table", None)}


def _not_fts(name: str | None, type_: str, _parents: object) -> bool:
    return not (name or "").startswith(("articles_fts", "ix_articles_fts", "fts_document"))


def _schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        # The full-text index (bot/services/search.py) lives outside the ORM model: an FTS5
        # table and its shadow tables on SQLite, a generated column and its index on PostgreSQL.
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": _not_fts})
        return list(compare_metadata(context, Base.metadata))


def test_revision_history_is_one_line() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert len(_revisions_oldest_first()) >= 1


def test_upgrade_from_empty_matches_the_orm_model(empty_database: Database) -> None:
    assert _user_tables(empty_database.engine) == set()
    upgrade(empty_database.engine)
    assert current_revision(empty_database.engine) == _revisions_oldest_first()[-1]
    assert _user_tables(empty_database.engine) == set(Base.metadata.tables)
    assert _schema_differences(empty_database.engine) == []


def test_walk_every_revision_up_and_down(empty_database: Database) -> None:
    engine = empty_database.engine
    revisions = _revisions_oldest_first()
    for revision in revisions:
        upgrade(engine, revision)
        assert current_revision(engine) == revision
        tables_here = _user_tables(engine)
        # Each step is reversible on its own: down one and up again gives the same tables.
        downgrade(engine, _previous(revision))
        assert current_revision(engine) == (None if _previous(revision) == "base" else _previous(revision))
        upgrade(engine, revision)
        assert _user_tables(engine) == tables_here
    for revision in reversed(revisions):
        assert current_revision(engine) == revision
        downgrade(engine, _previous(revision))
    assert current_revision(engine) is None
    assert _user_tables(engine) == set()
    upgrade(engine)
    assert _schema_differences(engine) == []


def test_upgrade_from_previous_revision_keeps_rows(empty_database: Database) -> None:
    engine = empty_database.engine
    head = _revisions_oldest_first()[-1]
    previous = _previous(head)
    if previous != "base":
        upgrade(engine, previous)
        # Rows written at the previous revision, with only the columns it had.
        created = datetime(2026, 1, 1, tzinfo=UTC)
        articles = table("articles", column("title"), column("body"), column("fingerprint"), column("created_at"))
        tags = table("tags", column("key"), column("name"), column("created_at"))
        with engine.begin() as connection:
            connection.execute(
                articles.insert().values(title="Judul lama", body="Isi lama.", fingerprint="a" * 64, created_at=created)
            )
            connection.execute(tags.insert().values(key="rusia", name="Rusia", created_at=created))
        upgrade(engine)
        with empty_database.session() as session:
            assert session.scalars(select(Article.title)).all() == ["Judul lama"]
            assert session.scalars(select(Tag.name)).all() == ["Rusia"]
    else:
        # Only one revision so far: "previous" is the empty database.
        upgrade(engine)
        with empty_database.session() as session:
            session.add(Article(title="Baru", body="Isi.", fingerprint="b" * 64))
        with empty_database.session() as session:
            assert session.scalars(select(Article.title)).all() == ["Baru"]
    assert current_revision(engine) == head
    assert _schema_differences(engine) == []


def _count(engine: Engine, name: str) -> int:
    from sqlalchemy import func

    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table(name))).scalar_one())


def test_0002_adds_submitted_by_and_drops_app_state_keeping_child_rows(empty_database: Database) -> None:
    """0002 up and down never copies `articles` (a copy's DROP would cascade to its children)."""
    engine = empty_database.engine
    upgrade(engine, "0001")
    assert "app_state" in _user_tables(engine)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    articles = table("articles", column("id"), column("title"), column("body"), column("fingerprint"), column("created_at"))
    tags = table("tags", column("id"), column("key"), column("name"), column("created_at"))
    links = table("article_tags", column("article_id"), column("tag_id"))
    summaries = table("summaries", column("article_id"), column("lang"), column("kind"), column("model"),
                      column("method"), column("text"), column("created_at"))  # fmt: skip
    with engine.begin() as connection:
        connection.execute(articles.insert().values(id=1, title="Judul", body="Isi.", fingerprint="c" * 64, created_at=created))
        connection.execute(tags.insert().values(id=1, key="rusia", name="Rusia", created_at=created))
        connection.execute(links.insert().values(article_id=1, tag_id=1))
        connection.execute(summaries.insert().values(article_id=1, lang="en", kind="summary", model="m",
                                                     method="extractive", text="S.", created_at=created))  # fmt: skip
    upgrade(engine, "0002")
    assert "app_state" not in _user_tables(engine)
    columns = {c["name"]: c for c in inspect(engine).get_columns("articles")}
    assert columns["submitted_by_chat_id"]["nullable"] is True
    assert "ix_articles_submitted_by_chat_id" in {i["name"] for i in inspect(engine).get_indexes("articles")}
    with empty_database.session() as session:
        assert session.scalars(select(Article.submitted_by_chat_id)).all() == [None]  # old rows are public
    assert (_count(engine, "article_tags"), _count(engine, "summaries")) == (1, 1)
    downgrade(engine, "0001")
    assert "submitted_by_chat_id" not in {c["name"] for c in inspect(engine).get_columns("articles")}
    assert "app_state" in _user_tables(engine)
    assert (_count(engine, "articles"), _count(engine, "article_tags"), _count(engine, "summaries")) == (1, 1, 1)
    upgrade(engine)
    assert (_count(engine, "article_tags"), _count(engine, "summaries")) == (1, 1)
    assert _schema_differences(engine) == []


def test_0003_builds_search_for_stored_articles_and_keeps_tag_follows(empty_database: Database) -> None:
    """Articles stored before 0003 are found by full-text search; tag follows stay as they were."""
    from bot.services.search import FullTextSearch

    engine = empty_database.engine
    upgrade(engine, "0002")
    created = datetime(2026, 1, 1, tzinfo=UTC)
    articles = table("articles", column("id"), column("title"), column("body"), column("fingerprint"), column("created_at"))
    chats = table("chats", column("id"), column("kind"), column("active"), column("created_at"), column("updated_at"))
    tags = table("tags", column("id"), column("key"), column("name"), column("created_at"))
    follows = table("subscriptions", column("chat_id"), column("tag_id"), column("created_at"))
    with engine.begin() as connection:
        connection.execute(articles.insert().values(id=1, title="Harga Beras di Pasar Induk Turun", body="Isi berita.",
                                                    fingerprint="d" * 64, created_at=created))
        connection.execute(chats.insert().values(id=5, kind="private", active=True, created_at=created, updated_at=created))
        connection.execute(tags.insert().values(id=1, key="rusia", name="Rusia", created_at=created))
        connection.execute(follows.insert().values(chat_id=5, tag_id=1, created_at=created))
    upgrade(engine)
    with empty_database.session() as session:
        for query in ("harga-beras", "beras harga", "isi"):
            assert FullTextSearch().search(session, query, 10, None) == [1], query
    assert _count(engine, "subscriptions") == 1 and _count(engine, "follows") == 0
    # Kept current after the migration: a changed title is found by its new words only.
    with engine.begin() as connection:
        connection.execute(articles.update().where(articles.c.id == 1).values(title="Harga Cabai Naik"))
    with empty_database.session() as session:
        assert FullTextSearch().search(session, "cabai", 10, None) == [1]
        assert FullTextSearch().search(session, "beras", 10, None) == []
    downgrade(engine, "0002")
    assert "follows" not in _user_tables(engine) and _count(engine, "subscriptions") == 1
    upgrade(engine)
    assert _schema_differences(engine) == []


def test_app_state_model_is_gone() -> None:
    import bot.db.models as models

    assert not hasattr(models, "AppState") and "app_state" not in Base.metadata.tables


def _upgrade_in_a_new_process(url: str) -> subprocess.CompletedProcess[str]:
    """`upgrade` from a separate interpreter, as two services starting together would."""
    code = "import sys; from bot.db import Database; from bot.db.migrate import upgrade; upgrade(Database(sys.argv[1]).engine)"
    return subprocess.run(
        [sys.executable, "-c", code, url],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_starting_together_on_a_fresh_database_all_migrate(backend: str, tmp_path: Path) -> None:
    # Without a lock two processes both see an empty alembic_version and both insert into it
    # (IntegrityError on PostgreSQL most tries). Several rounds, since a race may not show every time.
    for attempt in range(4):
        with ExitStack() as stack:
            if backend == "sqlite":
                url = f"sqlite:///{tmp_path / f'race{attempt}.sqlite3'}"
            else:
                url = stack.enter_context(scratch_postgres(POSTGRES_ADMIN_URL, "newsbot_race", migrate=False))
            with ThreadPoolExecutor(max_workers=3) as pool:
                results = list(pool.map(_upgrade_in_a_new_process, [url] * 3))
            for result in results:
                assert result.returncode == 0, result.stderr[-2000:]
            database = Database(url)
            try:
                assert current_revision(database.engine) == _revisions_oldest_first()[-1]
                assert _schema_differences(database.engine) == []
            finally:
                database.dispose()
