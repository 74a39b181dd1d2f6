"""`newsbot run` killed (SIGKILL) in the middle of sending pushes and started again: every follower
ends up with exactly one message per article (on SQLite and on PostgreSQL).

Deterministic: the fake Bot API accepts a few messages, then lets every further sendMessage hang
(like an unreachable Telegram). We kill the bot once those first sends are recorded as sent and
others hang in `sending`; a hanging request is dropped with the dead connection, so it was never
delivered. The restarted bot re-sends exactly the deliveries that were not recorded as sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from bot.db import Database
from bot.db.models import Delivery, DeliveryStatus

from conftest import make_settings
from fakebotapi import FakeBotApi
from test_fanout import BODY_EN, BODY_ID, World

FOLLOWERS = list(range(101, 113))
NEWSBOT = Path(sys.executable).with_name("newsbot")


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]  # predicate: any callable
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def by_status(db: Database) -> dict[DeliveryStatus, int]:
    with db.session() as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    return {DeliveryStatus(status): count for status, count in rows}


def start_bot(server: FakeBotApi, database_url: str, workdir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(workdir),
        "TELEGRAM_BOT_TOKEN": server.token,
        "TELEGRAM_BASE_URL": server.base_url,
        "SUMMARY_MODEL": "none",
        "TRANSLATION_MODEL": "none",
        "BROKER_URL": "",
        "LOG_LEVEL": "INFO",
    }
    log = open(workdir / "bot.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([str(NEWSBOT), "run"], cwd=workdir, env=env, stdout=log, stderr=log)


def test_killed_bot_resumes_and_every_follower_gets_exactly_one_message(
    fake_bot_api: FakeBotApi, database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    world = World(db, make_settings(database_url, tmp_path))
    for chat_id in FOLLOWERS:
        world.chat(chat_id, "Rusia", lang="id" if chat_id % 2 else "en")
    articles = [world.ingest(["Rusia"], body=BODY_ID).article_id, world.ingest(["Rusia"], body=BODY_EN, lang="en").article_id]
    expected = len(FOLLOWERS) * len(articles)

    fake_bot_api.hold_sends(after=5)
    first = start_bot(fake_bot_api, database_url, tmp_path)
    try:
        wait_until(
            lambda: by_status(db).get(DeliveryStatus.SENT, 0) == 5 and fake_bot_api.held_requests() >= 3,
            60, "five pushes recorded as sent and more hanging",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    # The dead bot's hanging requests are dropped before we let Telegram answer again.
    wait_until(lambda: fake_bot_api.held_requests() == 0, 10, "hanging requests to be dropped")
    at_kill = by_status(db)
    assert at_kill[DeliveryStatus.SENT] == 5 and at_kill.get(DeliveryStatus.SENDING, 0) >= 3
    assert len(fake_bot_api.sent_messages()) == 5

    fake_bot_api.release_sends()
    second = start_bot(fake_bot_api, database_url, tmp_path)
    try:
        wait_until(lambda: by_status(db).get(DeliveryStatus.SENT, 0) == expected, 60, "every delivery sent")
        time.sleep(0.5)  # room for a stray duplicate to arrive
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        if second.poll() is None:
            second.kill()

    for chat_id in FOLLOWERS:
        texts = [m.text for m in fake_bot_api.sent_messages(chat_id)]
        assert len(texts) == len(articles), (chat_id, texts)
        assert sum("Lavrov" in t for t in texts) == 1 and sum("central bank" in t for t in texts) == 1
    assert len(fake_bot_api.sent_messages()) == expected
    assert by_status(db) == {DeliveryStatus.SENT: expected}
    db.dispose()


def test_bot_killed_inside_the_fan_out_transaction_loses_nothing(
    fake_bot_api: FakeBotApi, postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: another transaction holds an uncommitted delivery for the last follower, so the
    bot's fan-out blocks in the middle of inserting its deliveries; it is killed right there."""
    from sqlalchemy import text

    from bot.db.models import Article

    from conftest import _truncate_all

    db = Database(postgres_url)
    _truncate_all(db)
    world = World(db, make_settings(postgres_url, tmp_path))
    for chat_id in FOLLOWERS:
        world.chat(chat_id, "Rusia")
    article = world.ingest(["Rusia"], body=BODY_EN, lang="en")
    blocker = db.engine.connect()
    transaction = blocker.begin()
    blocker.execute(
        text("INSERT INTO deliveries (article_id, story_id, chat_id, status, attempts, created_at, updated_at) "
             "VALUES (:a, :s, :c, 'pending', 0, now(), now())"),
        {"a": article.article_id, "s": article.story_id, "c": FOLLOWERS[-1]},
    )

    def fan_out_blocked() -> bool:
        with db.engine.connect() as connection:
            waiting = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE 'INSERT INTO deliveries%' AND datname = current_database()"
            )).scalar()
        return bool(waiting)

    first = start_bot(fake_bot_api, postgres_url, tmp_path)
    try:
        wait_until(fan_out_blocked, 60, "the fan-out to block inside its transaction")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        transaction.rollback()
        blocker.close()
    with db.session() as session:
        assert session.get(Article, article.article_id).fanned_out_at is None  # nothing half-done
    assert by_status(db) == {} and fake_bot_api.sent_messages() == []

    second = start_bot(fake_bot_api, postgres_url, tmp_path)
    try:
        wait_until(lambda: by_status(db).get(DeliveryStatus.SENT, 0) == len(FOLLOWERS), 60, "every delivery sent")
        time.sleep(0.5)
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        if second.poll() is None:
            second.kill()
    assert sorted(m.chat_id for m in fake_bot_api.sent_messages()) == FOLLOWERS
    db.dispose()
