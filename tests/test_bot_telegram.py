"""End to end: the real PTB Application, polling the fake Bot API server on loopback."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from telegram.ext import Application

from bot.context import AppContext
from bot.db import Database
from bot.db.models import Article, Delivery
from bot.i18n import I18n
from bot.ingest.service import ArticleInput
from bot.logs import REDACTED, setup_logging
from bot.shell import html_to_text
from bot.telegram.app import build_application
from bot.wiring import build_services

from conftest import following_text, help_text, make_settings
from fakebotapi import DEFAULT_TOKEN, FakeBotApi, SentMessage
from test_i18n import html_errors

ADMIN = 900
USER = 1001
BODY = (
    "Russia said on Monday it would demand binding security guarantees before any ceasefire talks. "
    "Officials in Moscow repeated that the proposal must be written into a treaty signed by all sides. "
    "Diplomats in Europe said the demand would make an agreement harder to reach this year."
)


class Bot:
    """A running Application against the fake server, with helpers to talk to it."""

    def __init__(self, server: FakeBotApi, application: Application, i18n: I18n) -> None:
        self.server = server
        self.application = application
        self.i18n = i18n

    async def said(self, chat_id: int, count: int, timeout: float = 15.0) -> list[SentMessage]:
        """Wait until the bot sent `count` messages to the chat; every one is valid HTML."""
        messages = await self.server.async_wait_for_messages(count, chat_id, timeout)
        assert len(messages) >= count, [m.text for m in messages]
        for message in messages:
            assert message.parse_mode == "HTML"
            assert html_errors(message.text) == [], message.text
        return messages

    async def ask(self, user_id: int, text: str, *, chat_id: int | None = None, **kwargs: Any) -> str:
        """Send a command and return the text of the one reply it gets."""
        target = user_id if chat_id is None else chat_id
        before = len(self.server.sent_messages(target))
        self.server.user_message(user_id, text, chat_id=chat_id, **kwargs)
        messages = await self.said(target, before + 1)
        return messages[before].text


async def eventually(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll a blocking predicate (a database read) in a thread until it holds or time runs out."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(predicate):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def start_bot(server: FakeBotApi, database: Database, tmp_path: Path, i18n: I18n, **overrides: Any) -> Application:
    clock = overrides.pop("clock", None)  # an injected "now" (time zones, snoozes), else the real one
    settings = make_settings(database.url, tmp_path, telegram_bot_token=DEFAULT_TOKEN,
                             telegram_base_url=server.base_url, admin_ids=[ADMIN], **overrides)
    context = AppContext(settings=settings, db=database)
    application = build_application(context, i18n, services=build_services(context, i18n, clock=clock))
    await application.initialize()
    assert application.post_init is not None
    await application.post_init(application)
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0.0, timeout=1)
    return application


async def stop_bot(application: Application) -> None:
    assert application.updater is not None
    await application.updater.stop()
    await application.stop()
    assert application.post_shutdown is not None
    await application.post_shutdown(application)
    await application.shutdown()


@pytest.fixture
async def bot(sqlite_database: Database, tmp_path: Path, i18n: I18n) -> AsyncIterator[Bot]:
    with FakeBotApi() as server:
        application = await start_bot(server, sqlite_database, tmp_path, i18n)
        try:
            yield Bot(server, application, i18n)
        finally:
            await stop_bot(application)


async def test_menus_are_set_in_english_and_indonesian(bot: Bot, i18n: I18n) -> None:
    commands = bot.server.my_commands()
    by_lang = {key: {c["command"]: c["description"] for c in value} for key, value in commands.items()}
    english = next(v for k, v in by_lang.items() if not k.endswith("/id"))
    indonesian = next(v for k, v in by_lang.items() if k.endswith("/id"))
    assert english["follow"] == i18n.plain("en", "cmd.follow")
    assert indonesian["follow"] == i18n.plain("id", "cmd.follow")
    assert set(english) == set(indonesian) == {"start", "help", "follow", "unfollow", "following", "preview", "tags", "latest",
                                               "search", "summary", "lang", "settings", "timezone", "silent", "snooze",
                                               "digest", "quiet", "limit"}


async def test_private_conversation(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(USER, "/start") == i18n.t("en", "start")
    assert await bot.ask(USER, "/follow Rusia") == i18n.t("en", "follow.added", tags="Rusia")
    assert await bot.ask(USER, "/follow Russia") == i18n.t("en", "follow.already", tags="Rusia")
    assert await bot.ask(USER, "/following") == following_text(i18n, "en", [("Rusia", 0)])
    assert await bot.ask(USER, "/lang id") == i18n.t("id", "lang.done")
    assert await bot.ask(USER, "/unfollow Russia") == i18n.t("id", "unfollow.removed", tags="Rusia")
    assert await bot.ask(USER, "/whatever") == i18n.t("id", "unknown", help=i18n.t("id", "help"))
    assert await bot.ask(USER, "/latest") == i18n.t("id", "latest.none")
    assert await bot.ask(USER, "/search perang") == i18n.t("id", "search.none", query="perang")
    assert await bot.ask(USER, "/tags") == i18n.t("id", "tags.none")
    # A new user whose Telegram language is Indonesian is answered in Indonesian from the start.
    assert await bot.ask(2002, "/start", lang="id") == i18n.t("id", "start")


async def test_group_follows_need_a_group_admin(bot: Bot, i18n: I18n) -> None:
    group = -100777
    bot.server.register_chat(group, "supergroup", "Readers", admins=[41])
    assert await bot.ask(42, "/follow Rusia", chat_id=group) == i18n.t("en", "group_admin_only")
    assert await bot.ask(41, "/follow Rusia", chat_id=group) == i18n.t("en", "follow.added", tags="Rusia")
    assert await bot.ask(42, "/following", chat_id=group) == following_text(i18n, "en", [("Rusia", 0)])
    assert any(call.params.get("user_id") == 42 for call in bot.server.calls("getChatMember"))


async def test_admin_commands_and_refusals(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(USER, "/addfeed https://example.com/feed.xml") == i18n.t("en", "admin_only", command="/addfeed")
    assert await bot.ask(USER, "/stats") == i18n.t("en", "admin_only", command="/stats")
    assert await bot.ask(ADMIN, "/stats") == i18n.t(
        "en", "stats", articles=0, chats=2, active_chats=2, subscriptions=0, summaries=0,
        deliveries=i18n.plain("en", "stats.none"))


async def test_rate_limit_answers_once_then_ignores(sqlite_database: Database, tmp_path: Path, i18n: I18n) -> None:
    with FakeBotApi() as server:
        application = await start_bot(server, sqlite_database, tmp_path, i18n, command_rate_limit=2)
        try:
            bot = Bot(server, application, i18n)
            assert await bot.ask(USER, "/start") == i18n.t("en", "start")
            assert await bot.ask(USER, "/help") == help_text(i18n, "en")
            assert await bot.ask(USER, "/start") == i18n.t("en", "slow_down", limit=2)
            server.user_message(USER, "/start")
            server.user_message(USER, "/start")
            assert await server.async_wait_for(lambda s: s.pending_updates() == 0, 10)
            await asyncio.sleep(0.5)
            assert len(server.sent_messages(USER)) == 3
        finally:
            await stop_bot(application)


async def test_push_summary_and_buttons(bot: Bot, i18n: I18n) -> None:
    services = bot.application.bot_data["newsbot"].services

    assert await bot.ask(USER, "/follow Russia") == i18n.t("en", "follow.added", tags="Rusia")
    result = await asyncio.to_thread(services.ingest.ingest, ArticleInput(
        body=BODY, title="Russia demands guarantees", tags=["Rusia"], lang="en", url="https://example.com/r"))
    # The push loop started in post_init delivers the new article once.
    [_, push] = await bot.said(USER, 2)
    assert push.text.startswith('<b><a href="https://example.com/r">Russia demands guarantees</a></b>')
    text = await bot.ask(USER, f"/summary {result.article_id}")
    assert text == push.text
    message = bot.server.sent_messages(USER)[-1]
    data = [d for _, d in message.buttons()]
    # Translation is off in these tests: no translate button (it would only show the same text).
    assert not any(d.startswith("tr:") for d in data) and any(d.startswith("unf:") for d in data)
    # /summary as a reply to the bot's own push: that article, not a new one made of the push's text.
    replied = {"message_id": push.message_id, "date": 0, "chat": {"id": USER, "type": "private"},
               "from": {"id": 123456789, "is_bot": True, "first_name": "newsbot"}, "text": html_to_text(push.text),
               "reply_markup": push.reply_markup}
    assert await bot.ask(USER, "/summary", reply_to=replied) == push.text
    assert len(await asyncio.to_thread(services.articles.latest, 10)) == 1
    # A translate button of an older message says translation is unavailable and edits nothing.
    bot.server.callback_query(USER, f"tr:{result.article_id}:id", message_id=message.message_id)
    await bot.server.async_wait_for(lambda s: len(s.calls("answerCallbackQuery")) == 1, 10)
    assert bot.server.calls("answerCallbackQuery")[0].params.get("text") == i18n.plain(
        "en", "translate.unavailable", lang=i18n.plain("en", "push.lang.id"))
    assert bot.server.calls("editMessageText") == []
    unf = next(d for d in data if d.startswith("unf:"))
    bot.server.callback_query(USER, unf, message_id=message.message_id)
    messages = await bot.said(USER, 5)
    assert messages[-1].text == i18n.t("en", "unfollow.button_done", tag="Rusia")
    assert await bot.ask(USER, "/following") == i18n.t("en", "following.none")
    assert len(bot.server.calls("answerCallbackQuery")) == 2


async def test_token_never_in_logs(sqlite_database: Database, tmp_path: Path, i18n: I18n) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("DEBUG", "text", secrets=[DEFAULT_TOKEN])
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    # httpx logs request URLs, which hold the token: let it, and check the filter removes it.
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    try:
        with FakeBotApi() as server:
            application = await start_bot(server, sqlite_database, tmp_path, i18n)
            try:
                bot = Bot(server, application, i18n)
                server.fail_server_error(chat_id=USER, times=1)
                server.user_message(USER, "/start")  # the reply fails: an error is logged
                # The failed reply is logged and the user gets an apology instead.
                [apology] = await bot.said(USER, 1)
                assert apology.text == i18n.t("en", "error.generic")
                assert any(c.status == 500 for c in server.calls("sendMessage"))
                assert await bot.ask(USER, "/help") == help_text(i18n, "en")
                # Admins hear about the error once, briefly, without the token.
                [report] = await bot.said(ADMIN, 1)
                assert report.text.startswith(i18n.t("en", "error.admin_report", error="NetworkError"))
                assert DEFAULT_TOKEN not in report.text
            finally:
                await stop_bot(application)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(logging.WARNING)
    logs = stream.getvalue()
    assert "getUpdates" in logs and REDACTED in logs
    assert DEFAULT_TOKEN not in logs
    assert DEFAULT_TOKEN.split(":")[1] not in logs


def _hashtag_entities(text: str) -> list[dict[str, Any]]:
    """hashtag entities as Telegram sends them (UTF-16 offsets)."""
    entities = []
    for word in text.split():
        if word.startswith("#"):
            prefix = text[: text.index(word)]
            entities.append({"type": "hashtag", "offset": len(prefix.encode("utf-16-le")) // 2,
                             "length": len(word.encode("utf-16-le")) // 2})
    return entities


async def test_channel_post_becomes_an_article_and_is_pushed(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(USER, "/follow Russia") == i18n.t("en", "follow.added", tags="Rusia")
    text = "Moscow demands guarantees 🇷🇺\n\n" + BODY + "\n\n#Rusia #Diplomasi"
    bot.server.channel_post(-1001234, text, title="Kabar Dunia", username="kabardunia",
                            entities=_hashtag_entities(text))
    [_, push] = await bot.said(USER, 2)
    assert "Russia said on Monday" in push.text
    assert "Kabar Dunia" in push.text  # the channel is the article's source
    services = bot.application.bot_data["newsbot"].services
    [article] = await asyncio.to_thread(services.articles.latest, 5)
    assert article.url == "https://t.me/kabardunia/" + article.url.rsplit("/", 1)[-1]
    assert {tag.name for tag in article.tags} >= {"Rusia", "Diplomasi"}
    # Nothing is said in the channel about stored posts; commands posted there are answered there.
    assert bot.server.sent_messages(-1001234) == []
    bot.server.channel_post(-1001234, "/follow Diplomasi", title="Kabar Dunia")
    [answer] = await bot.said(-1001234, 1)
    assert answer.text == i18n.t("en", "follow.added", tags="Diplomasi")


async def test_admin_forward_becomes_an_article_with_confirmation(bot: Bot, i18n: I18n) -> None:
    channel = {"id": -1005555, "type": "channel", "title": "Berita", "username": "berita", "message_id": 77}
    text = BODY + " #Rusia"
    bot.server.user_message(ADMIN, text, forward_from_chat=channel, entities=_hashtag_entities(text))
    [confirmation] = await bot.said(ADMIN, 1)
    services = bot.application.bot_data["newsbot"].services
    [article] = await asyncio.to_thread(services.articles.latest, 5)
    assert confirmation.text == i18n.t("en", "ingest.stored", id=article.id, title=article.title, tags="Rusia")
    assert article.url == "https://t.me/berita/77"
    # The same forward again is a duplicate.
    bot.server.user_message(ADMIN, text, forward_from_chat=channel, entities=_hashtag_entities(text))
    messages = await bot.said(ADMIN, 2)
    assert messages[1].text == i18n.t("en", "ingest.duplicate", id=article.id, title=article.title)
    # A non-admin's forward of another post is summarized for them alone, never stored for everyone.
    other = "Moscow and Kyiv exchanged prisoners on Tuesday, officials said. " + BODY.replace("Monday", "Sunday")
    reply = await bot.ask(USER, other + " #Rusia", forward_from_chat={**channel, "message_id": 78},
                          entities=_hashtag_entities(other + " #Rusia"))
    assert "Moscow and Kyiv exchanged prisoners" in reply
    assert len(await asyncio.to_thread(services.articles.latest, 5)) == 1


async def test_admin_feeds_and_bad_links(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(ADMIN, "/addfeed https://example.com/feed.xml Rusia, Ekonomi") == i18n.t(
        "en", "addfeed.done", id=1, url="https://example.com/feed.xml", tags="Rusia, Ekonomi")
    assert await bot.ask(ADMIN, "/feeds") == "\n".join([
        i18n.t("en", "feeds.header"),
        i18n.t("en", "feeds.item", id=1, url="https://example.com/feed.xml", status="active", tags="Rusia, Ekonomi"),
    ])
    assert await bot.ask(ADMIN, "/removefeed 1") == i18n.t("en", "removefeed.done", feed="1")
    assert await bot.ask(ADMIN, "/removefeed 1") == i18n.t("en", "removefeed.not_found", feed="1")
    assert await bot.ask(ADMIN, "/feeds") == i18n.t("en", "feeds.none")
    assert await bot.ask(USER, "/removefeed 1") == i18n.t("en", "admin_only", command="/removefeed")
    # A link to a private address is refused with one clear line, nothing is fetched.
    reply = await bot.ask(USER, "/summary http://127.0.0.1:9/secret")
    assert reply.startswith(i18n.t("en", "summary.bad_url", reason="")), reply


async def test_webhook_mode_checks_the_secret_token(sqlite_database: Database, tmp_path: Path, i18n: I18n) -> None:
    import json
    import socket

    import httpx

    from bot.telegram.app import webhook_options

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FakeBotApi() as server:
        settings = make_settings(sqlite_database.url, tmp_path, telegram_bot_token=DEFAULT_TOKEN,
                                 telegram_base_url=server.base_url, webhook_url="https://bot.example.com/tg/hook",
                                 webhook_secret="s3cret-Token_1", webhook_port=port)
        context = AppContext(settings=settings, db=sqlite_database)
        application = build_application(context, i18n, services=build_services(context, i18n), background=[])
        await application.initialize()
        await application.start()
        assert application.updater is not None
        options = webhook_options(settings)
        assert options["url_path"] == "tg/hook"
        await application.updater.start_webhook(**options)
        try:
            update = {"update_id": 1, "message": {
                "message_id": 5, "date": 0, "chat": {"id": USER, "type": "private", "first_name": "U"},
                "from": {"id": USER, "is_bot": False, "first_name": "U", "language_code": "en"},
                "text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{port}/tg/hook"
                wrong = await client.post(url, content=json.dumps(update), headers={
                    "content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "wrong"})
                assert wrong.status_code == 403
                right = await client.post(url, content=json.dumps(update), headers={
                    "content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"})
                assert right.status_code == 200
            [reply] = await server.async_wait_for_messages(1, USER)
            assert reply.text == i18n.t("en", "start")
            assert server.calls("setWebhook")[0].params["secret_token"] == "s3cret-Token_1"
        finally:
            await application.updater.stop()
            await application.stop()
            await application.shutdown()


async def test_groups_ignore_other_bots_commands_and_replies_keep_order(bot: Bot, i18n: I18n) -> None:
    group = -100888
    bot.server.register_chat(group, "supergroup", "Readers", admins=[41])
    bot.server.group_message(group, 42, "/frobnicate@some_other_bot")
    bot.server.group_message(group, 42, "/frobnicate")
    assert await bot.ask(42, "/frobnicate@newsbot_test_bot", chat_id=group) == i18n.t(
        "en", "unknown", help=i18n.t("en", "help"))
    assert len(bot.server.sent_messages(group)) == 1
    # Commands sent back to back are answered in order.
    for command in ("/follow A1", "/follow B2", "/following"):
        bot.server.user_message(USER, command)
    messages = await bot.said(USER, 3)
    assert [m.text for m in messages] == [
        i18n.t("en", "follow.added_rules", rules="a1"), i18n.t("en", "follow.added_rules", rules="b2"),
        following_text(i18n, "en", [("a1", 0), ("b2", 0)])]


async def test_parked_delivery_is_reported_to_admins(sqlite_database: Database, tmp_path: Path, i18n: I18n) -> None:
    with FakeBotApi() as server:
        application = await start_bot(server, sqlite_database, tmp_path, i18n, delivery_max_attempts=1)
        try:
            bot = Bot(server, application, i18n)
            assert await bot.ask(USER, "/follow Rusia") == i18n.t("en", "follow.added", tags="Rusia")
            server.fail_server_error(chat_id=USER, times=None)
            services = application.bot_data["newsbot"].services

            await asyncio.to_thread(services.ingest.ingest, ArticleInput(
                body=BODY, title="Russia demands guarantees", tags=["Rusia"], lang="en"))
            [notice] = await bot.said(ADMIN, 1)
            assert notice.text.startswith(i18n.t("en", "error.parked", delivery_id=1, article_id=1, chat_id=USER,
                                                 attempts=1, error=""))
            assert DEFAULT_TOKEN not in notice.text
        finally:
            await stop_bot(application)


async def test_blocked_removed_and_migrated_chats(bot: Bot, i18n: I18n) -> None:
    import time

    services = bot.application.bot_data["newsbot"].services
    assert await bot.ask(USER, "/follow Rusia") == i18n.t("en", "follow.added", tags="Rusia")

    def member_update(chat: dict[str, Any], old: str, new: str) -> dict[str, Any]:
        bot_user = {"id": 123456789, "is_bot": True, "first_name": "newsbot", "username": "newsbot_test_bot"}
        return {"my_chat_member": {"chat": chat, "from": {"id": USER, "is_bot": False, "first_name": "U"},
                                   "date": int(time.time()),
                                   "old_chat_member": {"status": old, "user": bot_user},
                                   "new_chat_member": {"status": new, "user": bot_user,
                                                       **({"until_date": 0} if new == "kicked" else {})}}}

    # The user blocks the bot: the chat is deactivated at once (no failed pushes needed).
    bot.server.push_update(member_update({"id": USER, "type": "private", "first_name": "U"}, "member", "kicked"))
    assert await eventually(lambda: not services.chats.get(USER).active)
    # Writing again (after unblocking) makes it active again.
    assert await bot.ask(USER, "/following") == following_text(i18n, "en", [("Rusia", 0)])
    assert (await asyncio.to_thread(services.chats.get, USER)).active is True

    # A group that follows Rusia becomes a supergroup: follows and language move to the new id.
    group, supergroup = -4242, -1004242
    bot.server.register_chat(group, "group", "Readers", admins=[41])
    assert await bot.ask(41, "/follow Rusia", chat_id=group) == i18n.t("en", "follow.added", tags="Rusia")
    assert await bot.ask(41, "/lang id", chat_id=group) == i18n.t("id", "lang.done")
    bot.server.push_update({"message": {"message_id": 9, "date": int(time.time()),
                                        "chat": {"id": group, "type": "group", "title": "Readers"},
                                        "from": {"id": 41, "is_bot": False, "first_name": "A"},
                                        "migrate_to_chat_id": supergroup}})
    assert await eventually(lambda: not services.chats.get(group).active)
    assert await bot.ask(42, "/following", chat_id=supergroup) == following_text(i18n, "id", [("Rusia", 0)])


async def test_commands_during_a_database_outage_are_answered_without_the_database(
    bot: Bot, i18n: I18n, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is away: every command still gets an answer in the user's Telegram language,
    and those that would have saved something say it was not saved; admins are not flooded."""
    from sqlalchemy.exc import OperationalError

    services = bot.application.bot_data["newsbot"].services

    def away() -> Any:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(services.db, "session", away)
    assert await bot.ask(USER, "/follow Rusia", lang="id") == i18n.t("id", "error.not_saved")
    assert await bot.ask(USER, "/lang en", lang="id") == i18n.t("id", "error.not_saved")
    assert await bot.ask(USER + 1, "/unfollow Rusia") == i18n.t("en", "error.not_saved")
    assert await bot.ask(USER + 1, "/tags") == i18n.t("en", "error.unavailable")
    assert bot.server.sent_messages(ADMIN) == []
    monkeypatch.undo()
    assert await bot.ask(USER, "/follow Rusia", lang="id") == i18n.t("id", "follow.added", tags="Rusia")


async def test_admins_requeue_parked_deliveries(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(USER, "/requeue") == i18n.t("en", "admin_only", command="/requeue")
    assert await bot.ask(ADMIN, "/requeue") == i18n.t("en", "requeue.done", count=0)
    assert await bot.ask(ADMIN, "/requeue 1001") == i18n.t("en", "requeue.done", count=0)
    assert await bot.ask(ADMIN, "/requeue everyone") == i18n.t("en", "requeue.usage")


# --- helpers shared by the end-to-end test files ------------------------------------------------
def services(bot: Bot) -> Any:
    return bot.application.bot_data["newsbot"].services


async def store(bot: Bot, title: str, body: str, tags: list[str]) -> int:
    result = await asyncio.to_thread(services(bot).ingest.ingest, ArticleInput(body=body, title=title, tags=tags, lang="id"))
    return int(result.article_id)


async def deliveries_once_fanned_out(bot: Bot, chat_id: int) -> list[int]:
    """The article ids pushed (or to be pushed) to a chat, once every stored article is fanned out."""
    def done() -> bool:
        with services(bot).db.session() as session:
            return session.scalar(select(Article.id).where(Article.fanned_out_at.is_(None)).limit(1)) is None

    assert await eventually(done)
    with services(bot).db.session() as session:
        return list(session.scalars(select(Delivery.article_id).where(Delivery.chat_id == chat_id).order_by(Delivery.id)))


async def test_reading_commands_answer_while_another_transaction_holds_the_write_lock(
        bot: Bot, sqlite_database: Database, i18n: I18n) -> None:
    """SQLite has one write lock (a fan-out's chunk, the sends' bookkeeping hold it): /latest,
    /summary of a stored summary and /following only read, so they do not wait for it."""
    services = bot.application.bot_data["newsbot"].services
    assert await bot.ask(USER, "/start") == i18n.t("en", "start")
    result = await asyncio.to_thread(services.ingest.ingest, ArticleInput(
        body=BODY, title="Russia demands guarantees", tags=["Rusia"], lang="en", url="https://example.com/r"))
    before = [await bot.ask(USER, command) for command in ("/latest", f"/summary {result.article_id}", "/following")]
    holding, release = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    def hold_the_write_lock() -> None:
        with sqlite_database.session() as session:
            session.execute(text("UPDATE chats SET title = title"))
            loop.call_soon_threadsafe(holding.set)
            release.wait(60)

    holder = asyncio.ensure_future(asyncio.to_thread(hold_the_write_lock))
    try:
        await asyncio.wait_for(holding.wait(), 30)
        during = [await bot.ask(USER, command) for command in ("/latest", f"/summary {result.article_id}", "/following")]
        assert not holder.done()  # answered while the lock was still held
    finally:
        release.set()
        await holder
    assert during == before
