"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, and settings for it.

PostgreSQL is the server these machines run (NEWSBOT_TEST_POSTGRES_URL points at a database
we may create others from). Each test session creates its own database and drops it after.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.db import Database
from bot.db.migrate import upgrade
from bot.db.models import Base
from bot.i18n import I18n
from bot.ingest.feeds import FeedService
from bot.logs import RedactingFilter

from fixtures.local_http import LocalServer
from pgscratch import admin_url, scratch_postgres

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    """Give the session its own Hugging Face home and DATA_DIR, so tests never write to the user's."""
    import tempfile

    if "NEWSBOT_TEST_HF_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="newsbot-test-hf-")
        os.environ["NEWSBOT_TEST_HF_HOME"] = os.environ["HF_HOME"] = home
    if "NEWSBOT_TEST_DATA_DIR" not in os.environ:
        # Commands started by tests (and their subprocesses) keep their SQLite file and logs here.
        data = tempfile.mkdtemp(prefix="newsbot-test-data-")
        os.environ["NEWSBOT_TEST_DATA_DIR"] = os.environ["DATA_DIR"] = data


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    for marker, variable in (("NEWSBOT_TEST_HF_HOME", "HF_HOME"), ("NEWSBOT_TEST_DATA_DIR", "DATA_DIR")):
        folder = os.environ.pop(marker, None)
        if folder and os.environ.get(variable) == folder:
            os.environ.pop(variable)
            shutil.rmtree(folder, ignore_errors=True)
POSTGRES_ADMIN_URL = admin_url()


@pytest.fixture(autouse=True)
def _isolate_logging() -> Iterator[None]:
    """In-process CLI runs call setup_logging and set logger levels; undo that after each test."""
    manager = logging.root.manager
    levels = {name: lg.level for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    root_level = logging.root.level
    yield
    for handler in list(logging.root.handlers):
        if any(isinstance(f, RedactingFilter) for f in handler.filters):
            logging.root.removeHandler(handler)
    logging.root.setLevel(root_level)
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with scratch_postgres(POSTGRES_ADMIN_URL, "newsbot_test") as url:
        yield url


def _truncate_all(database: Database) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as connection:
        if database.is_sqlite:
            for table in tables:
                connection.execute(text(f'DELETE FROM "{table}"'))
        else:
            quoted = ", ".join(f'"{table}"' for table in tables)
            connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'newsbot.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated database: SQLite and PostgreSQL in turn."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'newsbot.sqlite3'}"
        database = Database(url)
        upgrade(database.engine)
        database.dispose()
        yield url
    else:
        url = request.getfixturevalue("postgres_url")
        database = Database(url)
        _truncate_all(database)
        database.dispose()
        yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated, empty Database on SQLite and on PostgreSQL in turn."""
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def sqlite_database(sqlite_url: str) -> Iterator[Database]:
    """A migrated, empty SQLite Database (for tests that need no PostgreSQL run)."""
    db = Database(sqlite_url)
    upgrade(db.engine)
    yield db
    db.dispose()


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    """Settings isolated from the developer's .env and environment."""
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": tmp_path,
        "summary_model": "none",
        "translation_model": "none",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option, no field


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Tiny random-weight mT5 and Marian models saved to folders (tests/tinymodels.py), built once."""
    from tinymodels import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def fake_bot_api() -> Iterator[object]:
    """A fake Telegram Bot API server on loopback (tests/fakebotapi.py); base_url for PTB."""
    from fakebotapi import FakeBotApi

    with FakeBotApi() as server:
        yield server


def help_text(i18n: Any, lang: str, zone: str = "UTC", silent: bool = False) -> str:
    """/help's answer: the commands, then this chat's delivery modes."""
    off = i18n.plain(lang, "settings.off")
    state = i18n.plain(lang, "settings.on") if silent else off
    return i18n.t(lang, "help") + "\n\n" + i18n.t(lang, "help.modes", zone=zone, mode=i18n.plain(lang, "digest.instant"),
                                                    quiet=off, limit=off, silent=state)


def following_text(i18n: Any, lang: str, items: list[tuple[str, int]]) -> str:
    """The /following answer for follows shown as (normal form, stories of the last 7 days)."""
    lines = [i18n.t(lang, "following.header", count=len(items))]
    lines += [i18n.t(lang, "following.item", query=query, count=count) for query, count in items]
    lines.append(i18n.t(lang, "following.remove_hint"))
    return "\n".join(lines)


def follow_tags(db: Database, settings: Settings, chat_id: int, names: Sequence[str]) -> list[int]:
    """Test set-up: the chat follows these tags (created when new, aliases resolved), as /follow of
    known tags does through FollowService; returns the tag ids."""
    from sqlalchemy import select

    from bot.db.models import Subscription
    from bot.tags import TagService

    tags = TagService(db, settings)
    ids: list[int] = []
    with db.session() as session:
        present = set(session.scalars(select(Subscription.tag_id).where(Subscription.chat_id == chat_id)))
        for name in names:
            tag = tags.get_or_create(session, name)
            session.flush()
            if tag.id not in present:
                session.add(Subscription(chat_id=chat_id, tag_id=tag.id))
                present.add(tag.id)
            ids.append(tag.id)
    return ids


@pytest.fixture(scope="module")
def i18n() -> I18n:
    """The locales as shipped."""
    return I18n.load()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local HTTP server on 127.0.0.1 for pages and feeds (tests/fixtures/local_http.py)."""
    with LocalServer() as running:
        yield running


@pytest.fixture
def feeds(database: Database, feed_settings: Settings) -> Iterator[FeedService]:
    """A FeedService over the test module's own `feed_settings` fixture."""
    service = FeedService(database, feed_settings)
    yield service
    service.close()
