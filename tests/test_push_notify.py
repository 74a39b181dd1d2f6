"""LISTEN/NOTIFY on PostgreSQL: an article another process stores wakes the bot's push loop at once.

The bot runs as in production (the Application, build_push_loop and its listener) against the fake
Bot API, with a 120 s poll: a push within the 15 s the tests wait can only come from a NOTIFY.
Articles are stored through their own Database (engine and pool), as `newsbot ingest` would.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.db import Database
from bot.db.models import Article
from bot.db.notify import LISTENER_APPLICATION_NAME, PUSHES_CHANNEL, PushListener, listener_for, wake_push_loops_on_commit
from bot.ingest.service import ArticleInput, IngestService
from bot.ingest.stories import StoryLinker, StoryText
from bot.tags import TagService

from conftest import _truncate_all, make_settings
from fakebotapi import FakeBotApi
from test_push_e2e import Bot, follow, pushes_in, running_bot

SLOW_POLL = 120.0  # the push loop's poll: far beyond every wait below
WAIT = 15.0  # generous for a loaded 2-core box, still far below SLOW_POLL

BODIES = [
    "The central bank raised interest rates on Thursday for the third time this year, officials said, "
    "as inflation stayed well above the target and markets fell sharply in response.",
    "Farmers in the northern provinces expect a record rice harvest after steady rains, the agriculture "
    "ministry said, although storage capacity and transport costs remain a worry for many cooperatives.",
    "A new railway line between the two largest ports opened to freight trains this week, cutting the "
    "journey from two days to nine hours, according to the state operator and several shipping firms.",
]


@pytest.fixture
async def bot(fake_bot_api: FakeBotApi, postgres_url: str, tmp_path: Path) -> AsyncIterator[Bot]:
    """The bot on PostgreSQL, polling only every SLOW_POLL, its listener LISTENing already."""
    database = Database(postgres_url)
    _truncate_all(database)
    database.dispose()
    async with running_bot(fake_bot_api, postgres_url, tmp_path, poll_interval=SLOW_POLL) as running:
        await wait_until(lambda: listener(running).connects >= 1)
        yield running


@pytest.fixture
def other_process(postgres_url: str, tmp_path: Path) -> Iterator[IngestService]:
    """Ingest over its own Database, as another process (`newsbot ingest`, a worker) stores articles."""
    database = Database(postgres_url)
    settings = make_settings(postgres_url, tmp_path)
    yield IngestService(database, settings, TagService(database, settings))
    database.dispose()


def listener(bot: Bot) -> PushListener:
    wakeups = bot.pushes.wakeups
    assert isinstance(wakeups, PushListener)  # build_push_loop gives every loop on PostgreSQL one
    return wakeups


async def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def store(service: IngestService, body: str) -> int:
    return service.ingest(ArticleInput(body=body, title=body.split(",")[0], tags=["Ekonomi"], lang="en")).article_id


def listener_backends(db: Database) -> list[int]:
    with db.engine.connect() as connection:
        return list(connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name AND datname = current_database()"),
            {"name": LISTENER_APPLICATION_NAME},
        ).scalars())


class FailingLinker(StoryLinker):
    """Fails at the end of ingest's transaction, after the article row and its NOTIFY."""

    @staticmethod
    def index(session: Session, article_id: int, text: StoryText, at: datetime) -> None:
        raise RuntimeError("the disk is full")


async def test_an_article_stored_by_another_process_is_pushed_at_once(bot: Bot, other_process: IngestService) -> None:
    await follow(bot, 41, "/follow Ekonomi")
    heard = listener(bot).received
    started = time.monotonic()

    await asyncio.to_thread(store, other_process, BODIES[0])

    [push] = await bot.pushes_to(41, 1, timeout=WAIT)
    assert "central bank" in push.text
    assert time.monotonic() - started < SLOW_POLL / 4  # far from the poll: the NOTIFY woke the loop
    assert listener(bot).received == heard + 1


async def test_a_rolled_back_insert_wakes_nothing(bot: Bot, other_process: IngestService, postgres_url: str,
                                                  tmp_path: Path) -> None:
    await follow(bot, 42, "/follow Ekonomi")
    heard = listener(bot).received
    database = Database(postgres_url)
    settings = make_settings(postgres_url, tmp_path)
    failing = IngestService(database, settings, TagService(database, settings),
                            stories=FailingLinker(timedelta(days=settings.story_window_days)))
    with pytest.raises(RuntimeError, match="disk is full"):
        await asyncio.to_thread(store, failing, BODIES[1])
    database.dispose()
    with bot.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Article)) == 0

    # A committed article afterwards: NOTIFYs arrive in commit order, so by the time its push is out
    # a NOTIFY of the rolled-back one would have been counted too.
    await asyncio.to_thread(store, other_process, BODIES[2])
    [push] = await bot.pushes_to(42, 1, timeout=WAIT)
    assert "railway" in push.text
    assert listener(bot).received == heard + 1
    assert len(pushes_in(bot.server, 42)) == 1


async def test_the_listener_reconnects_after_its_connection_is_killed(
    bot: Bot, other_process: IngestService, caplog: pytest.LogCaptureFixture
) -> None:
    await follow(bot, 43, "/follow Ekonomi")
    [backend] = listener_backends(bot.db)
    caplog.set_level(logging.WARNING, logger="bot.db.notify")

    with bot.db.engine.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar()
    await wait_until(lambda: listener(bot).connects >= 2)  # LISTENing again on a new connection
    assert listener_backends(bot.db) not in ([], [backend])
    heard = listener(bot).received

    await asyncio.to_thread(store, other_process, BODIES[0])
    [push] = await bot.pushes_to(43, 1, timeout=WAIT)
    assert "central bank" in push.text
    assert listener(bot).received == heard + 1
    lines = [record.getMessage() for record in caplog.records if record.name == "bot.db.notify"]
    assert len(lines) == 2 and "lost" in lines[0] and "back" in lines[1], lines


async def test_stopping_the_bot_stops_the_listener(fake_bot_api: FakeBotApi, postgres_url: str, tmp_path: Path) -> None:
    async with running_bot(fake_bot_api, postgres_url, tmp_path, poll_interval=SLOW_POLL) as running:
        await wait_until(lambda: listener(running).connects >= 1)
        assert listener(running).running
        assert any(thread.name == "push-listener" for thread in threading.enumerate())
        wakeups = listener(running)
    assert not wakeups.running
    assert not any(thread.name == "push-listener" for thread in threading.enumerate())
    observer = Database(postgres_url)
    try:
        await wait_until(lambda: listener_backends(observer) == [])  # the server saw it go, too
    finally:
        observer.dispose()


def test_an_unreachable_server_is_logged_once_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.db.notify")
    # Port 1 on loopback refuses at once; the listener keeps retrying (capped) until stopped.
    url = make_url("postgresql+psycopg://newsbot:s3cret-pass@127.0.0.1:1/newsbot")
    wakes: list[None] = []
    unreachable = PushListener(url, reconnect_first=0.05, reconnect_max=0.1)
    unreachable.start(lambda: wakes.append(None))
    deadline = time.monotonic() + WAIT
    while not caplog.records and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # several more attempts: still one line
    started = time.monotonic()
    assert unreachable.stop()
    assert time.monotonic() - started < 5
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1 and "lost" in lines[0] and "refused" in lines[0].lower(), lines
    assert "s3cret-pass" not in lines[0]
    assert wakes == [] and unreachable.connects == 0


def test_sqlite_has_no_listener_and_sends_no_notify(sqlite_database: Database) -> None:
    assert listener_for(sqlite_database) is None
    with sqlite_database.session() as session:
        wake_push_loops_on_commit(session)  # nothing to do, nothing fails


def test_the_notify_is_sent_at_commit_only(postgres_url: str) -> None:
    import psycopg

    database = Database(postgres_url)
    url = database.engine.url
    with psycopg.connect(autocommit=True, **url.translate_connect_args(username="user", database="dbname")) as raw:
        raw.execute(f"LISTEN {PUSHES_CHANNEL}")
        with database.session() as session:
            wake_push_loops_on_commit(session)
            assert list(raw.notifies(timeout=0)) == []  # not while the transaction is open
        assert [n.channel for n in raw.notifies(timeout=WAIT, stop_after=1)] == [PUSHES_CHANNEL]

        with pytest.raises(RuntimeError), database.session() as session:
            wake_push_loops_on_commit(session)
            raise RuntimeError("rolled back")
        with database.session() as session:
            wake_push_loops_on_commit(session)
        # In commit order: a NOTIFY of the rolled-back transaction would come before this one.
        heard = list(raw.notifies(timeout=WAIT, stop_after=1)) + list(raw.notifies(timeout=0))
        assert len(heard) == 1
    database.dispose()
