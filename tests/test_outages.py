"""Fault tests: Telegram and PostgreSQL go away and come back while a fan-out is going on.

Each test pushes one article to FOLLOWERS chats through the real push loop, the real PTB bot and
rate limiter, against the fake Bot API (tests/fakebotapi.py) and, for database faults, an own
PostgreSQL cluster on a spare port (tests/pgcluster.py) that the test stops, crashes, restarts or
makes read-only. The fault starts after about a third of the pushes went out. Every test ends
with every follower reached exactly once, nothing parked, no operator, and few log lines.

Durations are shortened (probe backoff capped at 1 s, a 4 s outage instead of 90 s …);
bench/bench_outages.py runs the full-length versions with 300 followers (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pgcluster
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from telegram.ext import Application, ApplicationBuilder

from bot.config import Settings
from bot.context import AppContext
from bot.db import Database
from bot.db.migrate import upgrade
from bot.db.models import Delivery, DeliveryStatus
from bot.i18n import I18n
from bot.services.deliveries import DeliveryService
from bot.services.pushes import ParkedNotice, PushLoop, SentJournal
from bot.services.summaries import SummaryService
from bot.telegram.ratelimit import build_rate_limiter
from bot.telegram.transport import SEND_TIMEOUT, TelegramTransport
from bot.wiring import build_push_loop, build_services

from conftest import make_settings
from fakebotapi import FakeBotApi
from test_fanout import World

FOLLOWERS = 60
FIRST_CHAT = 5000
MAX_LOG_LINES = 50
FAST = {"probe_first": 0.2, "probe_max": 1.0, "error_backoff_max": 1.0, "notice_interval": 0.0}

needs_own_postgres = pytest.mark.skipif(not pgcluster.available(), reason="initdb/pg_ctl not installed")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.records]

    def tracebacks(self) -> int:
        return sum(1 for r in self.records if r.exc_info)


@contextmanager
def captured_logs() -> Iterator[_Records]:
    handler = _Records()
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    old = root.level, httpx.level
    root.setLevel(logging.INFO)
    httpx.setLevel(logging.WARNING)  # as bot.logs.setup_logging has it (its URLs hold the token)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old[0])
        httpx.setLevel(old[1])


@dataclass
class Rig:
    server: FakeBotApi
    db: Database
    settings: Settings
    world: World
    app: Application
    loop: PushLoop
    stop: asyncio.Event
    task: asyncio.Task[None]
    notices: list[ParkedNotice] = field(default_factory=list)

    def received(self) -> Counter[int]:
        """Pushes per chat (what users saw)."""
        return Counter(m.chat_id for m in self.server.sent_messages() if m.chat_id >= FIRST_CHAT)

    async def wait_received(self, count: int, timeout: float) -> bool:
        return await self.server.async_wait_for(lambda s: sum(self.received().values()) >= count, timeout)

    def statuses(self) -> Counter[DeliveryStatus]:
        with self.db.session() as session:
            return Counter(DeliveryStatus(s) for s in session.scalars(select(Delivery.status)))

    def max_attempts_sent(self) -> int:
        with self.db.session() as session:
            return max(session.scalars(select(Delivery.attempts).where(Delivery.status == DeliveryStatus.SENT)))


def followers(world: World, count: int = FOLLOWERS) -> list[int]:
    chats = [FIRST_CHAT + i for i in range(count)]
    for chat in chats:
        world.chat(chat, "Rusia")
    return chats


@asynccontextmanager
async def push_rig(server: FakeBotApi, database_url: str, tmp_path: Path, *, read_timeout: float = SEND_TIMEOUT,
                   probe_timeout: float = 2.0, rate: float = 10.0, journal: Path | None = None,
                   backoff_base: float = 0.2, fast: bool = True, **options: Any) -> AsyncIterator[Rig]:
    """A push loop over the real PTB bot (limiter, HTTP timeouts) on `database_url`; followers made."""
    settings = make_settings(database_url, tmp_path, send_rate_global=rate, delivery_max_attempts=5)
    db = Database(database_url, pool_size=10)
    world = World(db, settings)
    limiter = build_rate_limiter(settings)
    app = (ApplicationBuilder().token(server.token).base_url(server.base_url).rate_limiter(limiter)
           .read_timeout(read_timeout).write_timeout(read_timeout).connect_timeout(read_timeout).pool_timeout(30)
           .build())
    await app.initialize()
    summaries = SummaryService(db, settings)
    services = build_services(AppContext(settings=settings, db=db), I18n.load(), summaries=summaries)
    services.deliveries = DeliveryService(db, settings, backoff_base=backoff_base)
    notices: list[ParkedNotice] = []

    async def on_parked(batch: Any) -> None:
        notices.extend(batch)

    loop = build_push_loop(services, TelegramTransport(app.bot, probe_timeout=probe_timeout), limiter=limiter,
                           poll_interval=0.1, on_parked=on_parked,
                           journal=SentJournal(journal or tmp_path / "journal.txt"),
                           **{**(FAST if fast else {}), **options})
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    rig = Rig(server, db, settings, world, app, loop, stop, task, notices)
    try:
        yield rig
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await app.shutdown()
        summaries.close()
        db.dispose()


def assert_everyone_once(rig: Rig, chats: list[int]) -> None:
    received = rig.received()
    missing = [c for c in chats if received[c] == 0]
    doubled = {c: n for c, n in received.items() if n > 1}
    assert not missing, f"{len(missing)} followers never got the push"
    assert not doubled, f"duplicates: {doubled}"
    assert rig.statuses() == Counter({DeliveryStatus.SENT: len(chats)})


def assert_quiet(logs: _Records, outages: int = 1) -> None:
    lines = logs.lines()
    assert len(lines) < MAX_LOG_LINES * outages, "\n".join(lines)
    assert logs.tracebacks() == 0, "\n".join(lines)


# --- Telegram -------------------------------------------------------------------------------------
@pytest.mark.parametrize("methods", ["all", "sendMessage"])
async def test_telegram_500s_pause_sends_without_spending_attempts(sqlite_url: str, tmp_path: Path, methods: str) -> None:
    """Telegram answers 500 (the suite's 4 s stand for 90 s): sends pause, getMe probes, nothing parks."""
    with FakeBotApi() as server, captured_logs() as logs:
        world = World(Database(sqlite_url), make_settings(sqlite_url, tmp_path))
        upgrade(world.db.engine)
        chats = followers(world)
        async with push_rig(server, sqlite_url, tmp_path) as rig:
            world.ingest(["Rusia"])
            assert await rig.wait_received(FOLLOWERS // 3, 20)
            server.server_outage(4.0, methods=None if methods == "sendMessage" else ["*"])
            started = time.monotonic()
            assert await rig.wait_received(FOLLOWERS, 40)
            assert time.monotonic() - started >= 3.5  # nothing went out during the outage
            assert rig.loop.stats.telegram_outages == 1 and rig.loop.stats.held > 0
            assert rig.loop.stats.parked == 0
            assert not rig.loop.telegram.active
        assert_everyone_once(rig, chats)
        # No attempt was spent on the outage (a canary may have spent one while getMe answered).
        assert rig.max_attempts_sent() <= (1 if methods == "all" else 2)
        lines = logs.lines()
        assert sum("Telegram Bot API unavailable" in line for line in lines) == 1
        assert sum("Telegram Bot API back after" in line for line in lines) == 1
        assert_quiet(logs)
        world.db.dispose()


async def test_telegram_hanging_is_an_outage_and_nothing_is_sent_twice(sqlite_url: str, tmp_path: Path) -> None:
    """Every request hangs (the suite's 4 s, with a 1 s client timeout, stand for 60 s with 30 s)."""
    with FakeBotApi() as server, captured_logs() as logs:
        world = World(Database(sqlite_url), make_settings(sqlite_url, tmp_path))
        upgrade(world.db.engine)
        chats = followers(world)
        async with push_rig(server, sqlite_url, tmp_path, read_timeout=1.0, probe_timeout=0.5) as rig:
            world.ingest(["Rusia"])
            assert await rig.wait_received(FOLLOWERS // 3, 20)
            server.stall(4.0)
            assert await rig.wait_received(FOLLOWERS, 40)
            assert rig.loop.stats.telegram_outages == 1 and rig.loop.stats.parked == 0
        assert_everyone_once(rig, chats)
        assert rig.max_attempts_sent() == 1
        assert_quiet(logs)
        world.db.dispose()


async def test_slow_telegram_within_the_send_timeout_causes_no_resend(sqlite_url: str, tmp_path: Path) -> None:
    """Telegram answers after 8 s: under the 30 s send timeout, so nothing is sent twice."""
    with FakeBotApi() as server, captured_logs() as logs:
        world = World(Database(sqlite_url), make_settings(sqlite_url, tmp_path))
        upgrade(world.db.engine)
        chats = followers(world)
        async with push_rig(server, sqlite_url, tmp_path, rate=30.0) as rig:
            world.ingest(["Rusia"])
            assert await rig.wait_received(FOLLOWERS // 3, 20)
            server.set_latency(8.0)
            assert await rig.wait_received(FOLLOWERS, 60)
            server.set_latency(0.0)
            assert rig.loop.stats.telegram_outages == 0
        assert_everyone_once(rig, chats)
        assert rig.max_attempts_sent() == 1
        assert_quiet(logs)
        world.db.dispose()


def test_the_bot_sends_with_a_30_s_read_timeout(sqlite_url: str, tmp_path: Path) -> None:
    from bot.telegram.app import build_application

    settings = make_settings(sqlite_url, tmp_path, telegram_bot_token="123:abc")
    db = Database(sqlite_url)
    upgrade(db.engine)
    application = build_application(AppContext(settings=settings, db=db), I18n.load())
    request = application.bot.request
    assert request.read_timeout == SEND_TIMEOUT == 30.0
    db.dispose()


async def test_parked_notices_wait_for_telegram_and_parked_deliveries_can_be_requeued(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A chat that keeps failing while others get theirs is parked; the admins hear of it only once
    Telegram answers; `requeue_parked` sends it after all."""
    with FakeBotApi() as server:
        world = World(Database(sqlite_url), make_settings(sqlite_url, tmp_path))
        upgrade(world.db.engine)
        chats = followers(world, 6)
        broken = chats[0]
        server.fail_server_error(chat_id=broken, times=None)
        async with push_rig(server, sqlite_url, tmp_path, canary_strikes=1) as rig:
            world.ingest(["Rusia"])
            assert await rig.wait_received(5, 20)
            assert await server.async_wait_for(lambda s: rig.statuses()[DeliveryStatus.PARKED] == 1, 30)
            assert await server.async_wait_for(lambda s: len(rig.notices) == 1, 10)
            assert rig.notices[0].chat_id == broken
            server.clear_faults()
            assert rig.loop.deliveries.requeue_parked(chat_id=broken + 1) == 0
            assert rig.loop.deliveries.requeue_parked(chat_id=broken) == 1
            assert await rig.wait_received(6, 20)
        assert_everyone_once(rig, chats)
        world.db.dispose()


# --- the database, simulated (fast, SQLite) ---------------------------------------------------------
class FlakyDeliveries(DeliveryService):
    """mark_sent fails like a database that went away, while `down` is set."""

    down = False

    def mark_sent(self, delivery_id: int, message_id: int, *, late: bool = False) -> bool:
        if self.down:
            raise OperationalError("UPDATE deliveries", {}, ConnectionRefusedError("connection refused"))
        return super().mark_sent(delivery_id, message_id, late=late)


async def test_a_send_the_database_could_not_record_survives_a_restart(sqlite_url: str, tmp_path: Path) -> None:
    """mark_sent fails; the loop stops (journal written); the next start records the sends before
    re-queueing `sending` rows, so nobody gets the push twice."""
    with FakeBotApi() as server:
        world = World(Database(sqlite_url), make_settings(sqlite_url, tmp_path))
        upgrade(world.db.engine)
        chats = followers(world, 10)
        journal = tmp_path / "journal.txt"
        FlakyDeliveries.down = True
        async with push_rig(server, sqlite_url, tmp_path, journal=journal) as rig:
            rig.loop._deliveries = FlakyDeliveries(rig.db, rig.settings, backoff_base=0.2)
            world.ingest(["Rusia"])
            assert await rig.wait_received(10, 20)
            assert await server.async_wait_for(lambda s: len(rig.loop.unrecorded) == 10, 10)
        assert rig.statuses() == Counter({DeliveryStatus.SENDING: 10})
        assert len(SentJournal(journal).entries()) == 10
        FlakyDeliveries.down = False
        async with push_rig(server, sqlite_url, tmp_path, journal=journal) as again:
            assert await server.async_wait_for(lambda s: again.statuses()[DeliveryStatus.SENT] == 10, 10)
            await asyncio.sleep(0.5)
        assert_everyone_once(again, chats)
        assert not journal.exists()
        world.db.dispose()


async def test_a_send_is_recorded_once_the_database_is_back(sqlite_url: str, tmp_path: Path) -> None:
    with FakeBotApi() as server, captured_logs() as logs:
        world = World(Database(sqlite_url), make_settings(sqlite_url, tmp_path))
        upgrade(world.db.engine)
        chats = followers(world, 10)
        FlakyDeliveries.down = True
        async with push_rig(server, sqlite_url, tmp_path) as rig:
            rig.loop._deliveries = FlakyDeliveries(rig.db, rig.settings, backoff_base=0.2)
            world.ingest(["Rusia"])
            assert await server.async_wait_for(lambda s: len(rig.loop.unrecorded) == 10, 20)
            FlakyDeliveries.down = False
            assert await server.async_wait_for(lambda s: rig.statuses()[DeliveryStatus.SENT] == 10, 20)
            assert rig.loop.stats.recorded_late == 10 and not rig.loop.unrecorded
        assert_everyone_once(rig, chats)
        lines = logs.lines()
        assert sum("database unavailable" in line for line in lines) == 1
        assert sum("database back after" in line for line in lines) == 1
        assert_quiet(logs)
        world.db.dispose()


# --- PostgreSQL, for real ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_postgres() -> Iterator[pgcluster.OwnPostgres]:
    if not pgcluster.available():
        pytest.skip("initdb/pg_ctl not installed")
    with pgcluster.OwnPostgres() as server:
        server.wait_ready()
        yield server


def _fresh_database(pg: pgcluster.OwnPostgres) -> tuple[str, str]:
    import uuid

    name = f"newsbot_{uuid.uuid4().hex[:8]}"
    url = pg.create_database(name)
    db = Database(url)
    upgrade(db.engine)
    db.dispose()
    return name, url


def _restart(pg: pgcluster.OwnPostgres, name: str) -> None:
    pg.restart()


def _crash(seconds: float) -> Callable[[pgcluster.OwnPostgres, str], None]:
    def fault(pg: pgcluster.OwnPostgres, name: str) -> None:
        pg.crash()
        time.sleep(seconds)
        pg.start()

    return fault


def _down(seconds: float) -> Callable[[pgcluster.OwnPostgres, str], None]:
    def fault(pg: pgcluster.OwnPostgres, name: str) -> None:
        pg.stop("fast")
        time.sleep(seconds)
        pg.start()

    return fault


def _read_only(seconds: float) -> Callable[[pgcluster.OwnPostgres, str], None]:
    def fault(pg: pgcluster.OwnPostgres, name: str) -> None:
        pg.read_only(name, True)
        time.sleep(seconds)
        pg.read_only(name, False)

    return fault


@needs_own_postgres
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(_restart, id="restart"),
        pytest.param(_crash(2.0), id="crash+2s"),  # bench: crash + 10 s
        pytest.param(_down(6.0), id="down-6s"),  # bench: down 60 s
        pytest.param(_read_only(4.0), id="read-only-4s"),  # bench: read-only 30 s
    ],
)
async def test_postgres_outage_loses_and_doubles_nothing(
    own_postgres: pgcluster.OwnPostgres, tmp_path: Path, fault: Callable[[pgcluster.OwnPostgres, str], None]
) -> None:
    name, url = _fresh_database(own_postgres)
    with FakeBotApi(latency=0.3) as server, captured_logs() as logs:
        world = World(Database(url), make_settings(url, tmp_path))
        chats = followers(world)
        world.ingest(["Rusia"])
        world.db.dispose()
        async with push_rig(server, url, tmp_path) as rig:
            assert await rig.wait_received(FOLLOWERS // 3, 30)
            await asyncio.to_thread(fault, own_postgres, name)
            assert await rig.wait_received(FOLLOWERS, 60)
            assert await server.async_wait_for(lambda s: _sent(rig) == FOLLOWERS, 30), rig.statuses()
            assert not rig.loop.unrecorded and rig.loop.stats.parked == 0
        assert_everyone_once(rig, chats)
        assert_quiet(logs)


def _sent(rig: Rig) -> int:
    try:
        return rig.statuses()[DeliveryStatus.SENT]
    except Exception:
        return -1


@needs_own_postgres
def test_read_only_connections_are_recycled_and_readyz_sees_it(own_postgres: pgcluster.OwnPostgres) -> None:
    """After a read-only period, a pooled connection that was read-only is dropped at its first
    failed write, and the next write works; /readyz says not ready while writes fail."""
    from sqlalchemy import text

    from bot.ops.health import database_check

    name, url = _fresh_database(own_postgres)
    db = Database(url, pool_size=2)
    check = database_check(db)
    assert check.result().ok and "writable" in check.result().detail
    own_postgres.read_only(name, True)
    with db.session() as session:  # a new (read-only) connection into the pool
        session.execute(text("SELECT 1"))
    result = check.result()
    assert not result.ok and "read-only" in result.detail
    own_postgres.read_only(name, False)
    # The read-only connection was invalidated by the failed write: the next write, on a fresh
    # connection, works at once (without that it kept failing until the session was killed).
    with db.session() as session:
        session.execute(text("UPDATE alembic_version SET version_num = version_num"))
    assert check.result().ok
    db.dispose()


# --- pieces -------------------------------------------------------------------------------------------
def test_telegram_errors_are_sorted_into_outages_and_chat_failures() -> None:
    from telegram.error import BadRequest, Forbidden, NetworkError, TimedOut

    from bot.services.sending import ChatGone, ServiceUnavailable, TransientSendError
    from bot.telegram.transport import classify

    assert isinstance(classify(NetworkError("Internal Server Error (500)")), ServiceUnavailable)
    assert isinstance(classify(NetworkError("Bad Gateway")), ServiceUnavailable)
    assert isinstance(classify(TimedOut()), ServiceUnavailable)
    unexpected = classify(BadRequest("message is too long"))
    assert isinstance(unexpected, TransientSendError) and not isinstance(unexpected, ServiceUnavailable)
    assert isinstance(classify(Forbidden("bot was blocked by the user")), ChatGone)


def test_throttle_and_outage_log_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    from bot.logs import Outage, Throttle

    now = [0.0]
    log = logging.getLogger("bot.test")
    throttle = Throttle(60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.test"):
        for _ in range(1000):
            throttle.log(log, logging.WARNING, "db", "cannot write: %s", "refused")
        now[0] = 61
        throttle.log(log, logging.WARNING, "db", "cannot write: %s", "refused")
        outage = Outage(log, "database", clock=lambda: now[0])
        assert outage.begin("refused") and not outage.begin("refused", held=3)
        now[0] = 71.5
        assert outage.end() == pytest.approx(10.5) and outage.end() is None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "cannot write: refused",
        "cannot write: refused (999 more like this in the last 60 s)",
        "database unavailable (refused); waiting for it to come back",
        "database back after 10.5 s (3 held during the outage)",
    ]


def test_the_journal_survives_garbage(tmp_path: Path) -> None:
    journal = SentJournal(tmp_path / "j.txt")
    journal.append(5, 77)
    with open(tmp_path / "j.txt", "a") as handle:
        handle.write("not a line\n6 ")
    journal.append(8, 1)
    assert journal.entries() == {5: 77, 8: 1}
    journal.clear()
    assert journal.entries() == {} and not (tmp_path / "j.txt").exists()


def test_newsbot_deliveries_lists_and_requeues_parked_ones(sqlite_url: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from bot.cli import cli

    settings = make_settings(sqlite_url, tmp_path, delivery_max_attempts=1)
    db = Database(sqlite_url)
    upgrade(db.engine)
    world = World(db, settings)
    followers(world, 3)
    world.ingest(["Rusia"])
    from bot.services.fanout import FanoutService

    FanoutService(db).run_once()
    service = DeliveryService(db, settings)
    for claimed in service.claim_due(3):
        assert service.fail(claimed.id, "Internal Server Error").parked
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    runner = CliRunner()
    listed = runner.invoke(cli, ["deliveries", "list", "--since", "1h"], catch_exceptions=False)
    assert listed.exit_code == 0 and listed.output.count("Internal Server Error") == 3
    assert "chat 5001" in listed.output
    one = runner.invoke(cli, ["deliveries", "requeue", "--chat", "5001"], catch_exceptions=False)
    assert one.output.strip() == "re-queued 1 parked deliveries"
    later = runner.invoke(cli, ["deliveries", "requeue", "--since", "2999-01-01"], catch_exceptions=False)
    assert later.output.strip() == "re-queued 0 parked deliveries"
    rest = runner.invoke(cli, ["deliveries", "requeue"], catch_exceptions=False)
    assert rest.output.strip() == "re-queued 2 parked deliveries"
    assert runner.invoke(cli, ["deliveries", "list"]).output.strip() == "no parked deliveries"
    bad = runner.invoke(cli, ["deliveries", "requeue", "--since", "yesterday"])
    assert bad.exit_code == 2
    db.dispose()


async def test_get_updates_failing_is_one_line_not_a_traceback_each(caplog: pytest.LogCaptureFixture) -> None:
    """run_polling hands getUpdates errors to the error handler (update None): while Telegram is
    away that is one line, then one a minute, and no admin report."""
    from telegram.error import NetworkError

    from bot.telegram import handlers

    class Context:
        error = NetworkError("Bad Gateway")
        bot_data: ClassVar[dict[str, Any]] = {}

    with caplog.at_level(logging.INFO):
        for _ in range(200):
            await handlers.on_error(None, Context())  # type: ignore[arg-type]
    records = [r for r in caplog.records if r.name.startswith("bot.")]
    assert len(records) == 1 and records[0].exc_info is None
    assert "getUpdates failed" in records[0].getMessage()


def test_database_errors_that_mean_wait_are_told_apart_from_bugs() -> None:
    from sqlalchemy.exc import IntegrityError, InternalError, ProgrammingError

    from bot.db import is_unavailable

    refused = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    read_only = InternalError("UPDATE x", {}, Exception("cannot execute UPDATE in a read-only transaction"))
    assert is_unavailable(refused) and is_unavailable(read_only)
    try:
        try:
            raise refused
        except OperationalError as error:
            raise RuntimeError("render failed") from error
    except RuntimeError as wrapped:
        assert is_unavailable(wrapped)
    assert not is_unavailable(ProgrammingError("SELEC", {}, Exception("syntax error")))
    assert not is_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_unavailable(ConnectionError("a feed server went away"))
    assert not is_unavailable(None)


def test_apologies_pick_not_saved_for_changes_during_a_database_outage() -> None:
    from bot.conversation.conversation import apology_key

    down = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    assert apology_key(down, "/follow Rusia") == "error.not_saved"
    assert apology_key(down, "/LANG@newsbot_test_bot id") == "error.not_saved"
    assert apology_key(down, "/unfollow Rusia") == "error.not_saved"
    assert apology_key(down, "/latest") == "error.unavailable"
    assert apology_key(down, "https://example.com/a") == "error.unavailable"
    assert apology_key(down, button="unf:3:12") == "error.not_saved"
    assert apology_key(down, button="tr:12:en") == "error.unavailable"
    assert apology_key(ValueError("bug"), "/follow Rusia") == "error.generic"


async def test_parked_notices_are_held_while_telegram_fails(sqlite_url: str, tmp_path: Path) -> None:
    with FakeBotApi() as server:
        upgrade(Database(sqlite_url).engine)
        async with push_rig(server, sqlite_url, tmp_path) as rig:
            loop = rig.loop
            loop.telegram.begin("500")
            loop._notices.append(ParkedNotice(1, 2, 3, 5, "Internal Server Error"))
            await loop._flush_notices()
            assert rig.notices == []
            loop.telegram.end()
            await loop._flush_notices()
            assert [n.delivery_id for n in rig.notices] == [1]
