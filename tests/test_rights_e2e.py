"""Who can make what reach whom, end to end: the real PTB adapter against the fake Bot API,
with the push loop running, on SQLite and PostgreSQL.

- What an ordinary user asks a summary of (a reply, a link, a forward) is for that user only:
  a follower of the article's tag receives nothing; an admin's request publishes it.
- Buttons that change a chat check the presser's rights in channels too.
- Chat lifecycle: blocked, migrated and re-added chats, with their unsent deliveries.
- A slow page fetched for one user never delays another user's answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.db.models import Article, Chat, Delivery, DeliveryStatus
from bot.i18n import I18n

from fakebotapi import FakeBotApi
from fixtures.local_http import LocalServer, Response
from test_bot_telegram import ADMIN, BODY, Bot, eventually, start_bot, stop_bot

FOLLOWER = 2001
STRANGER = 2002
PAGE = (
    "<html><head><title>Rusia tuntut jaminan</title><meta charset='utf-8'>"
    "<meta property='article:tag' content='Rusia'></head><body><article><h1>Rusia tuntut jaminan keamanan</h1>"
    "<p>Rusia menyatakan pada hari Senin bahwa mereka menuntut jaminan keamanan yang mengikat sebelum perundingan.</p>"
    "<p>Para pejabat di Moskow mengulangi bahwa usulan itu harus dituangkan dalam perjanjian yang ditandatangani.</p>"
    "<p>Diplomat di Eropa mengatakan tuntutan itu akan membuat kesepakatan lebih sulit dicapai tahun ini.</p>"
    "</article></body></html>"
)


@pytest.fixture
async def bot(database: Database, tmp_path: Path, i18n: I18n) -> AsyncIterator[Bot]:
    """The bot with its push loop, on SQLite and on PostgreSQL; server may come from 127.0.0.1."""
    with FakeBotApi() as server:
        application = await start_bot(server, database, tmp_path, i18n, fetch_allowed_hosts=["127.0.0.1"],
                                      fetch_timeout=3.0)
        try:
            yield Bot(server, application, i18n)
        finally:
            await stop_bot(application)


def services_of(bot: Bot) -> Any:
    return bot.application.bot_data["newsbot"].services


def fanned_out(bot: Bot) -> bool:
    """Every stored article has been through the fan-out (so any push would have been created)."""
    with services_of(bot).db.session() as session:
        return session.scalar(select(Article.id).where(Article.fanned_out_at.is_(None)).limit(1)) is None


async def follower_is_ready(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(FOLLOWER, "/follow Rusia") == i18n.t("en", "follow.added", tags="Rusia")


async def no_push_for_follower(bot: Bot) -> None:
    assert await eventually(lambda: fanned_out(bot))
    await asyncio.sleep(0.8)  # several push-loop polls: time for a wrong push to show up
    assert len(bot.server.sent_messages(FOLLOWER)) == 1  # only the answer to /follow


def hashtag(text: str) -> list[dict[str, Any]]:
    return [{"type": "hashtag", "offset": len(text) - len("#Rusia"), "length": 6}]


async def test_a_users_reply_summary_is_private_and_an_admins_is_published(bot: Bot, i18n: I18n) -> None:
    await follower_is_ready(bot, i18n)
    text = "Moscow demands guarantees\n\n" + BODY + " #Rusia"
    message = {"message_id": 5, "date": int(time.time()), "chat": {"id": STRANGER, "type": "private"},
               "from": {"id": 77, "is_bot": False, "first_name": "Someone"}, "text": text, "entities": hashtag(text)}
    reply = await bot.ask(STRANGER, "/summary", reply_to=message)
    assert "Russia said on Monday" in reply
    await no_push_for_follower(bot)
    # Not listed or found by anyone else, and not reachable by its id.
    latest = await bot.ask(FOLLOWER, "/latest")
    assert latest == i18n.t("en", "latest.none")
    [article_id] = [a.id for a in await asyncio.to_thread(services_of(bot).articles.latest, 5, None, viewer_chat_id=STRANGER)]
    assert await bot.ask(FOLLOWER, f"/summary {article_id}") == i18n.t("en", "summary.not_found", id=article_id)
    assert "Russia said on Monday" in await bot.ask(STRANGER, f"/summary {article_id}")
    # The same message summarized at an admin's request is published: the follower gets it now.
    admin_view = {**message, "chat": {"id": ADMIN, "type": "private"}}
    assert "Russia said on Monday" in await bot.ask(ADMIN, "/summary", reply_to=admin_view)
    # (the follower has had three answers so far: /follow, /latest, /summary)
    messages = await bot.server.async_wait_for_messages(4, FOLLOWER, timeout=15)
    assert "Russia said on Monday" in messages[3].text


async def test_a_users_link_summary_is_private_and_an_admins_is_published(
    bot: Bot, i18n: I18n, server: LocalServer
) -> None:
    server.add("/rusia", Response(body=PAGE.encode(), headers={"Content-Type": "text/html; charset=utf-8"}))
    await follower_is_ready(bot, i18n)
    reply = await bot.ask(STRANGER, f"/summary {server.url('/rusia')}")
    assert "Rusia menyatakan pada hari Senin" in reply
    await no_push_for_follower(bot)
    # A link pasted as plain text is the same request, and stays private too.
    assert "Rusia menyatakan pada hari Senin" in await bot.ask(STRANGER + 1, server.url("/rusia"))
    await no_push_for_follower(bot)
    assert "Rusia menyatakan pada hari Senin" in await bot.ask(ADMIN, f"/summary {server.url('/rusia')}")
    messages = await bot.server.async_wait_for_messages(2, FOLLOWER, timeout=15)
    assert "Rusia menyatakan pada hari Senin" in messages[1].text


async def test_a_users_forward_is_summarized_for_them_only(bot: Bot, i18n: I18n) -> None:
    await follower_is_ready(bot, i18n)
    channel = {"id": -1007777, "type": "channel", "title": "Berita", "username": "berita", "message_id": 12}
    text = BODY + " #Rusia"
    reply = await bot.ask(STRANGER, text, forward_from_chat=channel, entities=hashtag(text))
    assert "Russia said on Monday" in reply
    await no_push_for_follower(bot)


async def test_only_a_channels_admins_can_press_its_unfollow_button(bot: Bot, i18n: I18n) -> None:
    channel, admin, reader = -1004444, 31, 32
    bot.server.register_chat(channel, "channel", "Kanal", admins=[admin])
    bot.server.channel_post(channel, "/follow Rusia", title="Kanal")
    [answer] = await bot.said(channel, 1)
    assert answer.text == i18n.t("en", "follow.added", tags="Rusia")
    await asyncio.to_thread(services_of(bot).ingest.ingest, _article(["Rusia"]))
    [_, push] = await bot.said(channel, 2)
    unfollow = next(data for _, data in push.buttons() if data.startswith("unf:"))
    # A subscriber presses it: refused, with a toast only; the channel keeps following.
    bot.server.callback_query(reader, unfollow, message_id=push.message_id, chat_id=channel, chat_type="channel")
    await bot.server.async_wait_for(lambda s: len(s.calls("answerCallbackQuery")) == 1, 10)
    assert bot.server.calls("answerCallbackQuery")[0].params.get("text") == i18n.plain("en", "group_admin_only")
    assert [t.name for t in await asyncio.to_thread(services_of(bot).subscriptions.following, channel)] == ["Rusia"]
    # The channel's admin presses it: unfollowed, told in a toast, nothing posted in the channel.
    bot.server.callback_query(admin, unfollow, message_id=push.message_id, chat_id=channel, chat_type="channel")
    await bot.server.async_wait_for(lambda s: len(s.calls("answerCallbackQuery")) == 2, 10)
    assert bot.server.calls("answerCallbackQuery")[1].params.get("text") == i18n.plain(
        "en", "unfollow.button_done", tag="Rusia")
    assert await asyncio.to_thread(services_of(bot).subscriptions.following, channel) == []
    await asyncio.sleep(0.3)
    assert len(bot.server.sent_messages(channel)) == 2


# Other stories (a copy of BODY with a sentence added, or another weekday, joins BODY's story).
OTHER_STORY = ("Russian and Ukrainian officials exchanged two hundred prisoners of war at the Belarusian border, "
               "the defence ministry said, the largest such swap since the spring talks collapsed.")
THIRD_STORY = ("Gas deliveries through the pipeline resumed after a week of repairs, the operator announced, "
               "and prices on European exchanges dropped by almost a tenth in early trading.")


def _article(tags: list[str], body: str = BODY) -> Any:
    from bot.ingest.service import ArticleInput

    return ArticleInput(body=body, title="Russia demands guarantees", tags=tags, lang="en")


def _member_update(chat: dict[str, Any], new: str) -> dict[str, Any]:
    bot_user = {"id": 123456789, "is_bot": True, "first_name": "newsbot", "username": "newsbot_test_bot"}
    old = "member" if new in ("kicked", "left") else "left"
    return {"my_chat_member": {"chat": chat, "from": {"id": FOLLOWER, "is_bot": False, "first_name": "U"},
                               "date": int(time.time()),
                               "old_chat_member": {"status": old, "user": bot_user},
                               "new_chat_member": {"status": new, "user": bot_user,
                                                   **({"until_date": 0} if new == "kicked" else {})}}}


def _deliveries(bot: Bot) -> dict[int, list[DeliveryStatus]]:
    with services_of(bot).db.session() as session:
        rows = session.execute(select(Delivery.chat_id, Delivery.status).order_by(Delivery.id)).all()
    found: dict[int, list[DeliveryStatus]] = {}
    for chat_id, status in rows:
        found.setdefault(chat_id, []).append(DeliveryStatus(status))
    return found


@pytest.fixture
async def quiet_bot(database: Database, tmp_path: Path, i18n: I18n) -> AsyncIterator[Bot]:
    """The bot without its push loop, so deliveries stay unsent while chats change."""
    from bot.context import AppContext
    from bot.telegram.app import build_application
    from bot.wiring import build_services

    from conftest import make_settings
    from fakebotapi import DEFAULT_TOKEN

    with FakeBotApi() as server:
        settings = make_settings(database.url, tmp_path, telegram_bot_token=DEFAULT_TOKEN,
                                 telegram_base_url=server.base_url, admin_ids=[ADMIN])
        context = AppContext(settings=settings, db=database)
        application = build_application(context, i18n, services=build_services(context, i18n), background=[])
        await application.initialize()
        assert application.post_init is not None
        await application.post_init(application)
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0.0, timeout=1)
        try:
            yield Bot(server, application, i18n)
        finally:
            await stop_bot(application)


async def test_blocked_chat_loses_its_unsent_deliveries_and_comes_back(quiet_bot: Bot, i18n: I18n) -> None:
    bot, services = quiet_bot, services_of(quiet_bot)
    await follower_is_ready(bot, i18n)
    await asyncio.to_thread(services.ingest.ingest, _article(["Rusia"]))
    await asyncio.to_thread(services.fanout.run_once)
    assert _deliveries(bot) == {FOLLOWER: [DeliveryStatus.PENDING]}
    # The reader blocks the bot: the chat is inactive and its pending push cancelled at once.
    bot.server.push_update(_member_update({"id": FOLLOWER, "type": "private", "first_name": "U"}, "kicked"))
    assert await eventually(lambda: _deliveries(bot) == {FOLLOWER: [DeliveryStatus.CANCELLED]})
    assert not (await asyncio.to_thread(services.chats.get, FOLLOWER)).active
    # An inactive chat gets nothing new, and no send is ever attempted for it.
    await asyncio.to_thread(services.ingest.ingest, _article(["Rusia"], body=OTHER_STORY))
    await asyncio.to_thread(services.fanout.run_once)
    assert await asyncio.to_thread(services.deliveries.claim_due, 10) == []
    # Unblocking (Telegram says "member" again) reactivates the chat; the next article reaches it.
    bot.server.push_update(_member_update({"id": FOLLOWER, "type": "private", "first_name": "U"}, "member"))
    assert await eventually(lambda: services.chats.get(FOLLOWER).active)
    await asyncio.to_thread(services.ingest.ingest, _article(["Rusia"], body=THIRD_STORY))
    await asyncio.to_thread(services.fanout.run_once)
    [claimed] = await asyncio.to_thread(services.deliveries.claim_due, 10)
    assert claimed.chat_id == FOLLOWER


async def test_migrated_group_takes_its_unsent_deliveries_along(quiet_bot: Bot, i18n: I18n) -> None:
    bot, services = quiet_bot, services_of(quiet_bot)
    group, supergroup = -4343, -1004343
    bot.server.register_chat(group, "group", "Readers", admins=[41])
    assert await bot.ask(41, "/follow Rusia", chat_id=group) == i18n.t("en", "follow.added", tags="Rusia")
    await asyncio.to_thread(services.ingest.ingest, _article(["Rusia"]))
    await asyncio.to_thread(services.fanout.run_once)
    bot.server.push_update({"message": {"message_id": 9, "date": int(time.time()),
                                        "chat": {"id": group, "type": "group", "title": "Readers"},
                                        "from": {"id": 41, "is_bot": False, "first_name": "A"},
                                        "migrate_to_chat_id": supergroup}})
    assert await eventually(lambda: _deliveries(bot) == {supergroup: [DeliveryStatus.PENDING]})
    with services.db.session() as session:
        assert session.get(Chat, group).active is False and session.get(Chat, supergroup).active is True
    # Removed from the supergroup, then added back: inactive, then active again.
    chat = {"id": supergroup, "type": "supergroup", "title": "Readers"}
    bot.server.push_update(_member_update(chat, "left"))
    assert await eventually(lambda: not services.chats.get(supergroup).active)
    assert _deliveries(bot) == {supergroup: [DeliveryStatus.CANCELLED]}
    bot.server.push_update(_member_update(chat, "member"))
    assert await eventually(lambda: services.chats.get(supergroup).active)


async def test_a_slow_page_for_two_users_never_delays_a_third(bot: Bot, i18n: I18n, server: LocalServer) -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(30):
            time.sleep(1)
            yield b" "

    server.add("/slow", Response(body=drip(), headers={"Content-Type": "text/html"}))
    server.add("/slow2", Response(body=drip(), headers={"Content-Type": "text/html"}))
    article = await asyncio.to_thread(services_of(bot).ingest.ingest, _article(["Rusia"]))
    bot.server.user_message(3001, f"/summary {server.url('/slow')}")
    bot.server.user_message(3002, f"/summary {server.url('/slow2')}")
    await bot.server.async_wait_for(lambda _s: len(server.requests) == 2, 10)
    started = time.monotonic()
    answer = await bot.ask(3003, f"/summary {article.article_id}")
    waited = time.monotonic() - started
    assert "Russia said on Monday" in answer
    assert waited < 1.0, f"/summary of a stored article waited {waited:.1f} s behind slow downloads"
    # The slow ones end with a clear, localized refusal once FETCH_TIMEOUT (3 s) is spent.
    for user in (3001, 3002):
        [refusal] = await bot.server.async_wait_for_messages(1, user, timeout=15)
        assert refusal.text == i18n.t("en", "summary.bad_url", reason=i18n.t("en", "error.fetch"))
