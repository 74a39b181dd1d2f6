"""Pushes end to end: the real Application (handlers, shared limiter, push loop) against the fake
Bot API on loopback. Scripted users follow tags with /follow, articles are ingested in this process
and in another one, and we check exactly who gets which message, in which language, as valid HTML;
429 and 403 answers are simulated."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from telegram.ext import Application

from bot.config import Settings
from bot.context import AppContext
from bot.db import Database
from bot.db.migrate import upgrade
from bot.db.models import Article, Chat, Delivery, DeliveryStatus
from bot.i18n import I18n
from bot.ingest.service import ArticleInput, IngestService
from bot.services.deliveries import DeliveryService
from bot.services.pushes import PushLoop
from bot.tags import TagService
from bot.telegram.app import build_application
from bot.telegram.transport import TelegramTransport
from bot.wiring import build_push_loop, build_services

from conftest import make_settings
from fakebotapi import FakeBotApi, SentMessage
from test_fanout import BODY_EN, BODY_ID
from test_render_push import check_html

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Bot:
    """A running bot: its Application, push loop, and the database it shares with other processes."""

    app: Application
    pushes: PushLoop
    db: Database
    settings: Settings
    server: FakeBotApi

    def ingest(self, tags: list[str], *, body: str = BODY_ID, lang: str = "id", url: str | None = None) -> int:
        service = IngestService(self.db, self.settings, TagService(self.db, self.settings))
        return service.ingest(ArticleInput(body=body, tags=tags, lang=lang, url=url, title=None)).article_id

    async def pushes_to(self, chat_id: int, count: int, timeout: float = 15.0) -> list[SentMessage]:
        """Wait for `count` pushes (messages with an unfollow button) in a chat."""
        await self.server.async_wait_for(lambda s: len(pushes_in(s, chat_id)) >= count, timeout)
        return pushes_in(self.server, chat_id)

    def delivery_status(self) -> dict[int, DeliveryStatus]:
        with self.db.session() as session:
            return {c: DeliveryStatus(s) for c, s in session.execute(select(Delivery.chat_id, Delivery.status))}


def pushes_in(server: FakeBotApi, chat_id: int | None = None) -> list[SentMessage]:
    """Messages about an article that came from a follow: an unfollow button naming the article."""
    return [m for m in server.sent_messages(chat_id) if any(_is_push_button(data) for _, data in m.buttons())]


def _is_push_button(data: str) -> bool:
    kind, *parts = data.split(":")
    return kind == "unf" or (kind == "unq" and len(parts) == 2)  # a keyword follow's button names the article


@asynccontextmanager
async def running_bot(server: FakeBotApi, database_url: str, tmp_path: Path, *, poll_interval: float = 0.2,
                      **overrides: object) -> AsyncIterator[Bot]:
    """The production Application (handlers, limiter, push loop polling every `poll_interval`) against the fake Bot API."""
    settings = make_settings(
        database_url, tmp_path, telegram_bot_token=server.token, telegram_base_url=server.base_url,
        admin_ids=[900], **overrides,
    )
    db = Database(database_url)
    upgrade(db.engine)
    i18n = I18n.load()
    services = build_services(AppContext(settings=settings, db=db), i18n)
    holder: dict[str, PushLoop] = {}
    # Fast retries for the test; everything else is the production set-up.
    services.deliveries = DeliveryService(db, settings, backoff_base=0.2)

    async def push_task(stop: asyncio.Event) -> None:
        bot = application.bot
        loop = build_push_loop(services, TelegramTransport(bot), limiter=bot.rate_limiter, poll_interval=poll_interval)
        holder["loop"] = loop
        await loop.run(stop)

    application = build_application(AppContext(settings=settings, db=db), i18n, services=services, background=[push_task])
    await application.initialize()
    await application.post_init(application)  # type: ignore[misc]  # Optional in PTB; build_application sets it
    await application.start()
    await application.updater.start_polling(poll_interval=0.0, timeout=1)  # type: ignore[union-attr]  # built with a token, so it has an updater
    while "loop" not in holder:
        await asyncio.sleep(0.01)
    try:
        yield Bot(app=application, pushes=holder["loop"], db=db, settings=settings, server=server)
    finally:
        await application.updater.stop()  # type: ignore[union-attr]  # built with a token, so it has an updater
        await application.stop()
        await application.post_shutdown(application)  # type: ignore[misc]  # Optional in PTB; build_application sets it
        await application.shutdown()
        db.dispose()


@pytest.fixture
async def bot(fake_bot_api: FakeBotApi, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(fake_bot_api, sqlite_url, tmp_path) as running:
        yield running


async def follow(bot: Bot, user_id: int, text: str, *, chat_id: int | None = None, lang: str = "en") -> None:
    """Send a /follow and wait for the bot's answer in that chat."""
    target = chat_id if chat_id is not None else user_id
    before = len(bot.server.sent_messages(target))
    if chat_id is None:
        bot.server.user_command(user_id, text, lang=lang)
    else:
        bot.server.group_message(chat_id, user_id, text, lang=lang)
    assert await bot.server.async_wait_for(lambda s: len(s.sent_messages(target)) > before, 10)
    assert "✅" in bot.server.sent_messages(target)[-1].text


async def test_followers_get_one_push_each_in_their_language_as_valid_html(bot: Bot) -> None:
    bot.server.set_admins(-100777, [13])
    await follow(bot, 11, "/follow Rusia", lang="en")
    await follow(bot, 12, "/follow Russia", lang="id")  # an alias of Rusia
    await follow(bot, 13, "/follow Ukraina", chat_id=-100777, lang="id")
    await follow(bot, 14, "/follow Ekonomi", lang="en")

    article = bot.ingest(["Rusia", "Ukraina"], url="https://news.example/rusia?a=1&b=<2>")
    english = (await bot.pushes_to(11, 1))[0]
    indonesian = (await bot.pushes_to(12, 1))[0]
    group = (await bot.pushes_to(-100777, 1))[0]
    await asyncio.sleep(0.6)  # time for any stray duplicate to show up
    assert {m.chat_id for m in pushes_in(bot.server)} == {11, 12, -100777}
    assert [len(pushes_in(bot.server, chat)) for chat in (11, 12, -100777, 14)] == [1, 1, 1, 0]

    with bot.db.session() as session:
        url = session.get(Article, article).url
    assert url and "&" in url
    for message in (english, indonesian, group):
        parsed = check_html(message.text)
        assert message.parse_mode == "HTML" and message.disable_preview
        assert ("a", {"href": url}) in parsed.tags
        assert "Lavrov" in parsed.text  # the (extractive) summary of the article
        assert "#Rusia #Ukraina" in parsed.text
    # Extractive summaries are labelled as key sentences, in each chat's language; with no
    # translation model the English chat is told why it reads Indonesian, and offered no
    # translate button.
    assert "Key sentences from the article. No translation into English is available" in english.text
    assert "Kalimat kunci dari artikel." in indonesian.text and "Kalimat kunci dari artikel." in group.text
    assert "Terjemahan" not in indonesian.text
    rusia = bot_tag(bot, 'Rusia')
    with bot.db.session() as session:
        story = session.get(Article, article).story_id
    # Feedback under every push: mute the story, snooze the follow that brought it.
    assert english.buttons() == [("🔕 Unfollow #Rusia", f"unf:{rusia}:{article}"),
                                 ("🔇 Mute this story", f"mute:{story}:{article}"),
                                 ("💤 Snooze #Rusia 1 day", f"snz:t{rusia}:{article}")]
    ukraina = bot_tag(bot, 'Ukraina')
    assert [data for _, data in group.buttons()] == [f"unf:{ukraina}:{article}", f"mute:{story}:{article}",
                                                     f"snz:t{ukraina}:{article}"]
    assert set(bot.delivery_status().values()) == {DeliveryStatus.SENT}


def bot_tag(bot: Bot, name: str) -> int:
    from bot.db.models import Tag

    with bot.db.session() as session:
        return session.scalars(select(Tag.id).where(Tag.name == name)).one()


async def test_an_article_stored_by_newsbot_ingest_in_another_process_is_pushed(bot: Bot, tmp_path: Path) -> None:
    await follow(bot, 21, "/follow Ekonomi")
    source = tmp_path / "rates.txt"
    source.write_text(f"Rates up again\n\n{BODY_EN}\n", "utf-8")
    env = {**os.environ, "DATABASE_URL": bot.settings.database_url, "DATA_DIR": str(tmp_path),
           "SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none"}
    done = subprocess.run([str(Path(sys.executable).with_name("newsbot")), "ingest", "--tag", "Ekonomi", "--json", str(source)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [push] = await bot.pushes_to(21, 1)
    assert "Rates up again" in push.text and "central bank" in push.text
    assert "#Ekonomi" in push.text


async def test_rate_limited_chat_is_retried_and_blocked_chat_is_deactivated(bot: Bot) -> None:
    for user in (31, 32, 33):
        await follow(bot, user, "/follow Rusia")
    bot.server.fail_retry_after(1, chat_id=31, times=2)  # the limiter retries once, the loop reschedules
    bot.server.block_chat(32)
    bot.ingest(["Rusia"])
    assert len(await bot.pushes_to(33, 1)) == 1
    assert len(await bot.pushes_to(31, 1, timeout=20)) == 1
    await asyncio.sleep(0.5)
    assert pushes_in(bot.server, 32) == []
    assert [c.status for c in bot.server.calls("sendMessage") if c.chat_id == 31][-3:] == [429, 429, 200]
    assert bot.delivery_status() == {31: DeliveryStatus.SENT, 32: DeliveryStatus.CANCELLED, 33: DeliveryStatus.SENT}
    with bot.db.session() as session:
        chat = session.get(Chat, 32)
        assert not chat.active and "blocked" in (chat.deactivated_reason or "")
    assert bot.pushes.stats.chats_gone == 1 and bot.pushes.stats.rate_limited == 1


async def test_server_errors_are_retried_with_backoff_then_parked(bot: Bot) -> None:
    await follow(bot, 41, "/follow Rusia")
    await follow(bot, 42, "/follow Rusia")
    bot.server.fail_server_error(chat_id=41, times=2)  # recovers on the third try
    bot.server.fail_server_error(chat_id=42, times=None)  # never recovers
    bot.ingest(["Rusia"])
    assert len(await bot.pushes_to(41, 1, timeout=20)) == 1
    assert await bot.server.async_wait_for(lambda s: bot.delivery_status().get(42) == DeliveryStatus.PARKED, 30)
    calls = [c for c in bot.server.calls("sendMessage") if c.chat_id == 42 and c.status == 500]
    # A 500 for one chat while getMe answers (and other chats get theirs) is that chat's problem:
    # every CANARY_STRIKES such failures spend one attempt; never faster than 1 message/s.
    assert bot.settings.delivery_max_attempts <= len(calls) <= 2 * bot.settings.delivery_max_attempts
    gaps = [b.time - a.time for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.95
    [parked] = bot.pushes.deliveries.parked(5)
    assert parked.chat_id == 42 and "Internal Server Error" in (parked.last_error or "")
    assert parked.attempts == bot.settings.delivery_max_attempts


async def test_lost_chat_is_deactivated_and_a_migrated_group_keeps_its_follows(bot: Bot) -> None:
    bot.server.set_admins(-55, [51])
    await follow(bot, 51, "/follow Rusia", chat_id=-55)
    await follow(bot, 52, "/follow Rusia")
    bot.server.migrate_chat(-55, -100555)  # the group became a supergroup
    bot.server.lose_chat(52)  # 400 chat not found
    article = bot.ingest(["Rusia"])
    [push] = await bot.pushes_to(-100555, 1)
    assert f"unf:{bot_tag(bot, 'Rusia')}:{article}" in [data for _, data in push.buttons()]
    await asyncio.sleep(0.5)
    assert pushes_in(bot.server, -55) == [] and pushes_in(bot.server, 52) == []
    with bot.db.session() as session:
        old, new, lost = session.get(Chat, -55), session.get(Chat, -100555), session.get(Chat, 52)
        assert (old.active, new.active, lost.active) == (False, True, False)
        assert "chat not found" in (lost.deactivated_reason or "").lower()
    assert bot.delivery_status() == {-100555: DeliveryStatus.SENT, 52: DeliveryStatus.CANCELLED}
    # The follows moved with the group: the next article goes to the new id only.
    bot.ingest(["Rusia"], body=BODY_EN, lang="en")
    assert len(await bot.pushes_to(-100555, 2)) == 2


async def test_push_loop_survives_failures_and_drains_on_stop(fake_bot_api: FakeBotApi, sqlite_url: str, tmp_path: Path) -> None:
    from telegram.ext import ApplicationBuilder

    from bot.services.fanout import FanoutService
    from bot.services.summaries import SummaryService
    from bot.telegram.ratelimit import build_rate_limiter
    from bot.telegram.transport import TelegramTransport

    from test_fanout import World

    class FlakyFanout(FanoutService):
        """The real fan-out, after two failures (a database hiccup)."""

        failures = 2

        def run_once(self, max_articles: int = 20):  # type: ignore[no-untyped-def]  # returns whatever the parent returns
            if self.failures:
                self.failures -= 1
                raise RuntimeError("database is locked")
            return super().run_once(max_articles)

    settings = make_settings(sqlite_url, tmp_path)
    db = Database(sqlite_url)
    upgrade(db.engine)
    world = World(db, settings)
    world.chat(61, "Rusia")
    world.ingest(["Rusia"])
    limiter = build_rate_limiter(settings)
    app = ApplicationBuilder().token(fake_bot_api.token).base_url(fake_bot_api.base_url).rate_limiter(limiter).build()
    await app.initialize()
    summaries = SummaryService(db, settings)
    services = build_services(AppContext(settings=settings, db=db), I18n.load(), summaries=summaries)
    services.fanout = FlakyFanout(db, summaries)
    loop = build_push_loop(services, TelegramTransport(app.bot), limiter=limiter, poll_interval=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        assert len(await fake_bot_api.async_wait_for_messages(1, 61, timeout=20)) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await app.shutdown()
        summaries.close()
        db.dispose()
    assert loop.stats.loop_errors == 2 and loop.stats.sent == 1 and loop.stats.articles_fanned_out == 1


@pytest.fixture(scope="module")
def tiny_en_id(tmp_path_factory: pytest.TempPathFactory) -> str:
    """TRANSLATION_MODEL template over a tiny random Marian en-id model (built here, no download)."""
    from tinymodels import build_tiny_marian

    root = tmp_path_factory.mktemp("marian")
    build_tiny_marian(root / "marian-en-id", seed=1)
    return str(root / "marian-{src}-{tgt}")


async def test_chats_get_the_summary_translated_into_their_language(
    fake_bot_api: FakeBotApi, sqlite_url: str, tmp_path: Path, tiny_en_id: str
) -> None:
    overrides = {"translation_model": tiny_en_id, "translation_num_beams": 1, "model_precision": "fp32", "model_threads": 1}
    async with running_bot(fake_bot_api, sqlite_url, tmp_path, **overrides) as bot:
        await follow(bot, 71, "/follow Ekonomi", lang="en")
        await follow(bot, 72, "/follow Ekonomi", lang="id")
        article = bot.ingest(["Ekonomi"], body=BODY_EN, lang="en")
        [english] = await bot.pushes_to(71, 1)
        [indonesian] = await bot.pushes_to(72, 1, timeout=30)
    assert "central bank" in english.text and "Key sentences from the article." in english.text
    assert english.buttons()[0] == ("🌐 Bahasa Indonesia", f"tr:{article}:id")
    # The tiny model's words are random, but the Indonesian chat gets a machine translation, saying so.
    check_html(indonesian.text)
    assert "central bank raised" not in indonesian.text
    assert "Diterjemahkan mesin dari Inggris." in indonesian.text
    assert indonesian.buttons()[0] == ("↩️ Asli", f"orig:{article}")


async def test_the_whole_bot_rides_out_a_telegram_outage(bot: Bot) -> None:
    """The production Application (polling, handlers, limiter, push loop): every Bot API method
    answers 500 for 3 s right as an article is stored; every follower gets it once, nothing parked,
    no attempt spent, and commands work again afterwards."""
    followers = list(range(71, 81))
    for user_id in followers:
        await follow(bot, user_id, "/follow Rusia")
    bot.server.server_outage(3.0)
    bot.ingest(["Rusia"])
    for user_id in followers:
        assert len(await bot.pushes_to(user_id, 1, timeout=40)) == 1
    await asyncio.sleep(0.5)
    assert all(len(pushes_in(bot.server, user_id)) == 1 for user_id in followers)
    assert set(bot.delivery_status().values()) == {DeliveryStatus.SENT}
    with bot.db.session() as session:
        assert set(session.scalars(select(Delivery.attempts))) == {1}
    assert bot.pushes.stats.telegram_outages == 1 and bot.pushes.stats.parked == 0
    await follow(bot, 99, "/follow Ekonomi")


async def test_a_small_story_is_pushed_before_an_older_big_fan_out_has_finished(
    fake_bot_api: FakeBotApi, database_url: str, tmp_path: Path
) -> None:
    """Fairness between fan-outs (issue 12): readers of a new story stored while a 200-chat fan-out
    is sending (about 7 s at the default 30 msg/s) get it long before that fan-out ends."""
    from test_delivery_service import FLOODS_EN

    from test_fanout import World

    big_chats = range(20_001, 20_201)
    small_chats = (30_001, 30_002, 30_003)
    setup_db = Database(database_url)
    world = World(setup_db, make_settings(database_url, tmp_path))
    for chat_id in big_chats:
        world.chat(chat_id, "Rusia")
    for chat_id in small_chats:
        world.chat(chat_id, "Banjir")
    setup_db.dispose()
    async with running_bot(fake_bot_api, database_url, tmp_path) as bot:
        bot.ingest(["Rusia"], body=BODY_EN, lang="en")
        assert await bot.server.async_wait_for(lambda s: len(pushes_in(s)) >= 20, 20)  # the big fan-out is sending
        bot.ingest(["Banjir"], body=FLOODS_EN, lang="en")
        assert await bot.server.async_wait_for(lambda s: all(pushes_in(s, chat) for chat in small_chats), 20)
        everyone = len(big_chats) + len(small_chats)
        assert await bot.server.async_wait_for(lambda s: len(pushes_in(s)) >= everyone, 30)
    order = [message.chat_id for message in pushes_in(fake_bot_api)]
    assert sorted(order) == sorted([*big_chats, *small_chats])  # one push each, none lost or doubled
    last_small = max(order.index(chat) for chat in small_chats)
    big_after_the_small_ones = len(order) - 1 - last_small
    # Oldest first, all 200 would have gone before them; at least a sizeable part of it follows.
    assert big_after_the_small_ones >= 20, order
