"""When pushes arrive, end to end: the real PTB adapter against the fake Bot API with the push
loop running, on SQLite and PostgreSQL, with "now" injected (nothing sleeps to pass time).

A chat's time zone (/timezone, its default by language, shown in /settings and /help), silent
pushes (/silent: disable_notification reaches Telegram), "Mute this story" and "Snooze" under
every push, /snooze TAG DURATION and its expiry. "Nothing was pushed" is read from the outbox
once the article is fanned out: the fan-out creates every delivery in the transaction that marks
the article, so no delivery then means no push, ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.db.models import Delivery, DeliveryStatus
from bot.i18n import I18n

from fakebotapi import FakeBotApi, SentMessage
from test_bot_telegram import Bot, deliveries_once_fanned_out, eventually, services, start_bot, stop_bot, store

READER = 3101
INDONESIAN = 3102
START = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # 06:30 the next morning in Jakarta
BODY = (
    "Pemerintah mengumumkan anggaran baru untuk transportasi umum pada hari Selasa malam. "
    "Tarif bus tidak akan naik tahun depan, sementara tiga jalur trem baru direncanakan di utara kota. "
    "Anggota oposisi mengatakan rencana itu kurang rinci dan meminta tinjauan biaya yang independen."
)
OTHER = (
    "Hujan deras sejak pagi membuat beberapa ruas jalan di pusat kota tergenang air setinggi lutut. "
    "Petugas pemadam kebakaran membantu warga memindahkan barang ke tempat yang lebih tinggi. "
    "Badan meteorologi memperkirakan cuaca buruk masih akan berlangsung hingga akhir pekan."
)
THIRD = (
    "Tim nasional sepak bola berlatih keras menjelang pertandingan persahabatan pekan depan. "
    "Pelatih memanggil lima pemain muda dari klub daerah untuk mengikuti pemusatan latihan. "
    "Tiket pertandingan sudah habis terjual dalam dua jam setelah penjualan dibuka secara daring."
)


class Clock:
    """The injected "now": tests move it instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, span: timedelta) -> None:
        self.now += span


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return I18n.load()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def bot(database: Database, tmp_path: Path, i18n: I18n, clock: Clock) -> AsyncIterator[Bot]:
    with FakeBotApi() as server:
        application = await start_bot(server, database, tmp_path, i18n, command_rate_limit=10_000,
                                      send_rate_per_chat=1000.0, clock=clock)
        try:
            yield Bot(server, application, i18n)
        finally:
            await stop_bot(application)


def statuses(bot: Bot, chat_id: int) -> list[DeliveryStatus]:
    with services(bot).db.session() as session:
        return [DeliveryStatus(status) for status in session.scalars(
            select(Delivery.status).where(Delivery.chat_id == chat_id).order_by(Delivery.id))]


async def press(bot: Bot, chat_id: int, message: SentMessage, data: str) -> str:
    """Press a button under `message`; the toast Telegram shows."""
    answered = len(bot.server.calls("answerCallbackQuery"))
    bot.server.callback_query(chat_id, data, message_id=message.message_id)
    assert await bot.server.async_wait_for(lambda s: len(s.calls("answerCallbackQuery")) > answered, 10)
    return str(bot.server.calls("answerCallbackQuery")[answered].params.get("text") or "")


def button(message: SentMessage, prefix: str) -> str:
    return next(data for _, data in message.buttons() if data.startswith(prefix))


async def test_time_zone_per_chat_defaults_by_language_and_shows_in_settings(bot: Bot, i18n: I18n, clock: Clock) -> None:
    # Indonesian chats start in WIB, others in UTC.
    assert await bot.ask(INDONESIAN, "/timezone", lang="id") == i18n.t(
        "id", "timezone.usage", zone="Asia/Jakarta", time="06:30")
    assert await bot.ask(READER, "/timezone") == i18n.t("en", "timezone.usage", zone="UTC", time="23:30")
    # Indonesia's three zones by name, IANA names in any case, fixed offsets.
    assert await bot.ask(READER, "/timezone WITA") == i18n.t("en", "timezone.done", zone="Asia/Makassar", time="07:30")
    assert await bot.ask(READER, "/timezone wit") == i18n.t("en", "timezone.done", zone="Asia/Jayapura", time="08:30")
    assert await bot.ask(READER, "/timezone europe/berlin") == i18n.t("en", "timezone.done", zone="Europe/Berlin",
                                                                      time="00:30")
    assert await bot.ask(READER, "/timezone UTC+7") == i18n.t("en", "timezone.done", zone="UTC+07:00", time="06:30")
    assert await bot.ask(READER, "/timezone Mars/Olympus") == i18n.t("en", "timezone.unknown", zone="Mars/Olympus")
    assert await bot.ask(READER, "/timezone UTC+15") == i18n.t("en", "timezone.unknown", zone="UTC+15")
    clock.advance(timedelta(minutes=45))
    settings = await bot.ask(READER, "/settings")
    assert i18n.t("en", "settings.modes", zone="UTC+07:00", time="07:15", silent=i18n.plain("en", "settings.off")) in settings
    off = i18n.plain("en", "settings.off")
    assert i18n.t("en", "help.modes", zone="UTC+07:00", mode=i18n.plain("en", "digest.instant"), quiet=off, limit=off,
                  silent=off) in await bot.ask(READER, "/help")
    await bot.ask(READER, "/digest daily 07:00,19:00")
    await bot.ask(READER, "/quiet 22:00-06:00")
    await bot.ask(READER, "/limit 20")
    assert i18n.t("en", "help.modes", zone="UTC+07:00", mode=i18n.plain("en", "digest.daily", times="07:00, 19:00",
                                                                        zone="UTC+07:00"),
                  quiet="22:00-06:00", limit=20, silent=off) in await bot.ask(READER, "/help")
    assert i18n.t("en", "settings.delivery", mode=i18n.plain("en", "digest.daily", times="07:00, 19:00", zone="UTC+07:00"),
                  quiet="22:00-06:00", limit=20, waiting=0) in await bot.ask(READER, "/settings")
    # Only a group's admins change its zone.
    group = -100777
    bot.server.register_chat(group, "supergroup", "Group", admins=[READER])
    assert await bot.ask(3999, "/timezone WIB", chat_id=group) == i18n.t("en", "group_admin_only")
    assert await bot.ask(READER, "/timezone WIB", chat_id=group) == i18n.t("en", "timezone.done", zone="Asia/Jakarta",
                                                                           time="07:15")


async def test_silent_pushes_go_without_notification(bot: Bot, i18n: I18n) -> None:
    await bot.ask(READER, "/follow Rusia")
    assert await bot.ask(READER, "/silent") == i18n.t("en", "silent.usage", state=i18n.plain("en", "settings.off"))
    assert await bot.ask(READER, "/silent on") == i18n.t("en", "silent.on")
    await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    [*_, push] = await bot.said(READER, 4)
    assert "Rusia dan anggaran" in push.text and push.disable_notification is True
    assert await bot.ask(READER, "/silent off") == i18n.t("en", "silent.off")
    await store(bot, "Rusia dan hujan", OTHER, ["Rusia"])
    [*_, push] = await bot.said(READER, 6)
    assert "Rusia dan hujan" in push.text and push.disable_notification is False
    # Replies to commands are never silenced: only pushes follow the setting.
    assert all(not m.disable_notification for m in bot.server.sent_messages(READER)[:3])


async def test_mute_this_story_stops_its_near_duplicates_and_is_undone_in_settings(bot: Bot, i18n: I18n) -> None:
    await bot.ask(READER, "/follow Rusia")
    first = await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    [*_, push] = await bot.said(READER, 2)
    labels = dict(push.buttons())
    assert i18n.plain("en", "btn.mute") in labels
    assert i18n.plain("en", "btn.snooze", follow="#Rusia") in labels
    assert await press(bot, READER, push, button(push, "mute:")) == i18n.plain("en", "mute.done")
    # A re-publication of the same story (a near-duplicate) is not pushed.
    await store(bot, "Rusia dan anggaran baru", BODY + " Tambahan kecil.", ["Rusia"])
    assert await deliveries_once_fanned_out(bot, READER) == [first]
    settings = await bot.ask(READER, "/settings")
    assert i18n.t("en", "settings.muted", count=1) in settings
    listing = bot.server.sent_messages(READER)[-1]
    assert await press(bot, READER, listing, button(listing, "unmute:")) == i18n.plain("en", "mute.undone")
    assert i18n.t("en", "settings.muted", count=1) not in await bot.ask(READER, "/settings")


async def test_mute_cancels_a_push_still_queued(bot: Bot) -> None:
    """Muting from another push of the story (or any chat admin's press) drops what is not yet sent."""
    await bot.ask(READER, "/follow Rusia")
    bot.server.fail_server_error(chat_id=READER, times=None)  # every send fails: the push waits for a retry
    await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    assert len(await deliveries_once_fanned_out(bot, READER)) == 1
    assert await eventually(lambda: statuses(bot, READER) == [DeliveryStatus.RETRY])
    with services(bot).db.session() as session:
        story_id = session.scalar(select(Delivery.story_id).where(Delivery.chat_id == READER))
    await asyncio.to_thread(services(bot).schedule.mute_story, READER, story_id)
    assert await eventually(lambda: statuses(bot, READER) == [DeliveryStatus.CANCELLED])


async def test_snooze_skips_stories_until_it_expires(bot: Bot, i18n: I18n, clock: Clock) -> None:
    await bot.ask(READER, "/follow Rusia")
    await bot.ask(READER, "/timezone WIB")
    assert await bot.ask(READER, "/snooze Rusia") == i18n.t("en", "snooze.usage")
    assert await bot.ask(READER, "/snooze Rusia soon") == i18n.t("en", "snooze.usage")
    assert await bot.ask(READER, "/snooze Ukraina 1d") == i18n.t("en", "snooze.not_following", follow="Ukraina")
    # An alias names the same follow; the end is shown in the chat's zone.
    assert await bot.ask(READER, "/snooze Russia 1d") == i18n.t(
        "en", "snooze.done", follow="Rusia", until="2026-12-03 06:30 Asia/Jakarta")
    settings = await bot.ask(READER, "/settings")
    assert i18n.t("en", "settings.snoozed", follow="Rusia", until="2026-12-03 06:30 Asia/Jakarta") in settings
    assert i18n.t("en", "settings.snoozed", follow="Rusia", until="2026-12-03 06:30 Asia/Jakarta") in await bot.ask(
        READER, "/following")
    assert any(data.startswith("wake:") for _, data in bot.server.sent_messages(READER)[-1].buttons())
    await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    assert await deliveries_once_fanned_out(bot, READER) == []  # skipped, not saved for later
    clock.advance(timedelta(days=1, minutes=1))
    later = await store(bot, "Rusia dan hujan", OTHER, ["Rusia"])
    [*_, push] = await bot.said(READER, 9)
    assert "Rusia dan hujan" in push.text
    assert await deliveries_once_fanned_out(bot, READER) == [later]
    assert i18n.t("en", "settings.snoozed", follow="Rusia", until="2026-12-03 06:30 Asia/Jakarta") not in await bot.ask(
        READER, "/settings")


async def test_snooze_button_and_wake_from_settings_and_off(bot: Bot, i18n: I18n, clock: Clock) -> None:
    await bot.ask(READER, "/follow Rusia")
    await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    [*_, push] = await bot.said(READER, 2)
    notice = await press(bot, READER, push, button(push, "snz:"))
    assert notice == i18n.plain("en", "snooze.done", follow="Rusia", until="2026-12-02 23:30 UTC")
    await store(bot, "Rusia dan hujan", OTHER, ["Rusia"])
    assert len(await deliveries_once_fanned_out(bot, READER)) == 1
    await bot.ask(READER, "/settings")
    listing = bot.server.sent_messages(READER)[-1]
    assert await press(bot, READER, listing, button(listing, "wake:")) == i18n.plain("en", "snooze.off", follow="Rusia")
    await store(bot, "Rusia dan sepak bola", THIRD, ["Rusia"])
    [*_, push] = await bot.said(READER, 4)
    assert "Rusia dan sepak bola" in push.text
    # /snooze TAG off ends it too, and says so when nothing was snoozed.
    assert await bot.ask(READER, "/snooze Rusia 8h") == i18n.t("en", "snooze.done", follow="Rusia",
                                                               until="2026-12-02 07:30 UTC")
    assert await bot.ask(READER, "/snooze Rusia off") == i18n.t("en", "snooze.off", follow="Rusia")
    assert await bot.ask(READER, "/snooze Rusia off") == i18n.t("en", "snooze.not_snoozed", follow="Rusia")


async def test_snoozed_keyword_follow_and_another_running_follow(bot: Bot, i18n: I18n) -> None:
    await bot.ask(READER, "/follow gandum")
    await bot.ask(READER, "/follow Rusia")
    assert await bot.ask(READER, "/snooze gandum 1w") == i18n.t("en", "snooze.done", follow="gandum",
                                                                until="2026-12-08 23:30 UTC")
    # Only the snoozed keyword follow matches: skipped.
    await store(bot, "Impor gandum naik", "Impor gandum dari Australia naik. " + BODY, ["Ekonomi"])
    assert await deliveries_once_fanned_out(bot, READER) == []
    # The tag follow (still running) matches too: pushed.
    wheat = await store(bot, "Gandum Rusia", "Ekspor gandum Rusia melonjak. " + OTHER, ["Rusia"])
    assert await deliveries_once_fanned_out(bot, READER) == [wheat]
    # The tag snoozed, the running keyword follow matches: pushed, naming the keyword follow.
    await bot.ask(READER, "/snooze gandum off")
    await bot.ask(READER, "/snooze Rusia 1d")
    bread = await store(bot, "Roti gandum Rusia", "Roti gandum dari Rusia. " + THIRD, ["Rusia"])
    assert await deliveries_once_fanned_out(bot, READER) == [wheat, bread]
    [*_, push] = await bot.said(READER, 7)
    assert "Roti gandum Rusia" in push.text and i18n.plain("en", "push.matched", query="gandum") in push.text


# --- digests, quiet hours, caps ---------------------------------------------------------------

def digest_state(bot: Bot, chat_id: int) -> list[tuple[int, DeliveryStatus, bool]]:
    """(article, status, owned by a digest) of every delivery to the chat."""
    with services(bot).db.session() as session:
        return [(article_id, DeliveryStatus(status), digest_id is not None) for article_id, status, digest_id in session.execute(
            select(Delivery.article_id, Delivery.status, Delivery.digest_id).where(Delivery.chat_id == chat_id)
            .order_by(Delivery.id))]


async def no_message_after(bot: Bot, chat_id: int, count: int) -> None:
    """Nothing more reaches the chat within a few push-loop rounds."""
    await asyncio.sleep(1.2)  # the push loop polls every 0.5 s: two rounds that could have sent
    assert len(bot.server.sent_messages(chat_id)) == count, [m.text for m in bot.server.sent_messages(chat_id)[count:]]


async def test_daily_digest_at_local_time_across_a_zone_change(bot: Bot, i18n: I18n, clock: Clock) -> None:
    await bot.ask(READER, "/follow Rusia, Ekonomi")
    await bot.ask(READER, "/timezone WIT")  # 08:30 there: the next 07:00 is tomorrow
    assert await bot.ask(READER, "/digest daily 07:00") == i18n.t("en", "digest.done", mode=i18n.plain(
        "en", "digest.daily", times="07:00", zone="Asia/Jayapura"))
    first = await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    second = await store(bot, "Harga beras", OTHER, ["Ekonomi"])
    assert await deliveries_once_fanned_out(bot, READER) == [first, second]
    assert [owned for _, _, owned in digest_state(bot, READER)] == [True, True]
    # In WIB it is 06:30: the waiting digest moves to 07:00 WIB, half an hour from now.
    await bot.ask(READER, "/timezone WIB")
    assert "Waiting for the next digest: 2" in await bot.ask(READER, "/settings")
    clock.advance(timedelta(minutes=29))
    await no_message_after(bot, READER, 5)
    clock.advance(timedelta(minutes=2))
    [*_, digest] = await bot.said(READER, 6)
    assert digest.text.startswith(i18n.t("en", "digest.header", count=2))
    assert "Rusia dan anggaran" in digest.text and "Harga beras" in digest.text
    assert "<b>Rusia</b>" in digest.text and "<b>Ekonomi</b>" in digest.text  # grouped by follow
    assert "<blockquote expandable>" in digest.text
    assert [data for _, data in digest.buttons()] == [f"sum:{first}", f"sum:{second}"]
    assert await eventually(lambda: [status for _, status, _ in digest_state(bot, READER)] == [DeliveryStatus.SENT] * 2)
    # The next story waits for tomorrow's 07:00 WIB; nothing new: no message at all.
    third = await store(bot, "Rusia dan sepak bola", THIRD, ["Rusia"])
    assert await deliveries_once_fanned_out(bot, READER) == [first, second, third]
    clock.advance(timedelta(hours=23, minutes=58))
    await no_message_after(bot, READER, 6)
    clock.advance(timedelta(minutes=2))
    [*_, tomorrow] = await bot.said(READER, 7)
    assert tomorrow.text.startswith(i18n.t("en", "digest.header", count=1)) and "Rusia dan sepak bola" in tomorrow.text
    clock.advance(timedelta(days=1))
    await no_message_after(bot, READER, 7)


async def test_quiet_hours_across_midnight_end_in_one_digest(bot: Bot, i18n: I18n, clock: Clock) -> None:
    await bot.ask(READER, "/follow Rusia")
    assert await bot.ask(READER, "/quiet 22:00-06:00") == i18n.t("en", "quiet.done", quiet="22:00-06:00", zone="UTC")
    await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])  # 23:30: quiet
    clock.advance(timedelta(hours=1))  # 00:30, past midnight: still quiet
    await store(bot, "Rusia dan hujan", OTHER, ["Rusia"])
    await deliveries_once_fanned_out(bot, READER)
    clock.advance(timedelta(hours=5, minutes=29))  # 05:59
    await no_message_after(bot, READER, 2)
    clock.advance(timedelta(minutes=2))  # 06:01: quiet hours are over
    [*_, digest] = await bot.said(READER, 3)
    assert digest.text.startswith(i18n.t("en", "digest.header", count=2))
    # Outside quiet hours pushes are instant again.
    await store(bot, "Rusia dan sepak bola", THIRD, ["Rusia"])
    [*_, push] = await bot.said(READER, 4)
    assert "Rusia dan sepak bola" in push.text and not push.text.startswith(i18n.t("en", "digest.header", count=1))
    assert await bot.ask(READER, "/quiet off") == i18n.t("en", "quiet.off")


async def test_cap_rolls_into_the_end_of_day_digest(bot: Bot, i18n: I18n, clock: Clock) -> None:
    await bot.ask(READER, "/follow Rusia")
    assert await bot.ask(READER, "/limit 1") == i18n.t("en", "limit.done", limit=1)
    await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    [*_, push] = await bot.said(READER, 3)
    assert "Rusia dan anggaran" in push.text
    await store(bot, "Rusia dan hujan", OTHER, ["Rusia"])  # past the cap: waits for 23:59
    await deliveries_once_fanned_out(bot, READER)
    await no_message_after(bot, READER, 3)
    clock.advance(timedelta(minutes=30))
    [*_, digest] = await bot.said(READER, 4)
    assert digest.text.startswith(i18n.t("en", "digest.header", count=1)) and "Rusia dan hujan" in digest.text
    # A new local day: the cap starts again.
    await store(bot, "Rusia dan sepak bola", THIRD, ["Rusia"])
    [*_, push] = await bot.said(READER, 5)
    assert "Rusia dan sepak bola" in push.text and not push.text.startswith(i18n.t("en", "digest.header", count=1))


async def test_switching_digest_off_sends_what_waits_as_pushes(bot: Bot, i18n: I18n) -> None:
    await bot.ask(READER, "/follow Rusia")
    assert await bot.ask(READER, "/digest hourly") == i18n.t("en", "digest.done", mode=i18n.plain("en", "digest.hourly"))
    first = await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    await deliveries_once_fanned_out(bot, READER)
    await no_message_after(bot, READER, 2)
    assert await bot.ask(READER, "/digest off") == i18n.t("en", "digest.done", mode=i18n.plain("en", "digest.instant"))
    [*_, push] = await bot.said(READER, 4)
    assert "Rusia dan anggaran" in push.text
    assert await eventually(lambda: digest_state(bot, READER) == [(first, DeliveryStatus.SENT, False)])
    assert await bot.ask(READER, "/digest weekly") == i18n.t("en", "digest.usage", mode=i18n.plain("en", "digest.instant"))
    assert await bot.ask(READER, "/digest daily 25:00") == i18n.t("en", "digest.usage", mode=i18n.plain("en", "digest.instant"))


async def test_a_digest_of_unfollowed_stories_sends_nothing(bot: Bot, clock: Clock) -> None:
    await bot.ask(READER, "/follow Rusia")
    await bot.ask(READER, "/digest hourly")
    await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    await deliveries_once_fanned_out(bot, READER)
    await bot.ask(READER, "/unfollow Rusia")
    clock.advance(timedelta(hours=1))
    await no_message_after(bot, READER, 3)
    assert await eventually(lambda: [status for _, status, _ in digest_state(bot, READER)] == [DeliveryStatus.CANCELLED])


# --- forum topics ------------------------------------------------------------------------------

FORUM = -100888
TOPIC = 42


async def test_forum_topic_routing_and_closed_topic_fallback(bot: Bot, i18n: I18n) -> None:
    bot.server.register_chat(FORUM, "supergroup", "Forum", admins=[READER])
    # A follow made in a topic: answered in that topic, and its pushes go there.
    assert await bot.ask(READER, "/follow Rusia", chat_id=FORUM, thread_id=TOPIC) == i18n.t("en", "follow.added", tags="Rusia")
    assert bot.server.sent_messages(FORUM)[-1].message_thread_id == TOPIC
    # /follow in General works as today.
    assert await bot.ask(READER, "/follow Ekonomi", chat_id=FORUM) == i18n.t("en", "follow.added", tags="Ekonomi")
    assert bot.server.sent_messages(FORUM)[-1].message_thread_id is None
    await store(bot, "Rusia dan anggaran", BODY, ["Rusia"])
    [*_, push] = await bot.said(FORUM, 3)
    assert "Rusia dan anggaran" in push.text and push.message_thread_id == TOPIC
    await store(bot, "Harga beras", OTHER, ["Ekonomi"])
    [*_, push] = await bot.said(FORUM, 4)
    assert "Harga beras" in push.text and push.message_thread_id is None
    # The topic is closed: the follow falls back to General and admins are told there, once.
    bot.server.close_topic(FORUM, TOPIC)
    await store(bot, "Rusia dan sepak bola", THIRD, ["Rusia"])
    [*_, notice, push] = await bot.said(FORUM, 6)
    assert notice.text == i18n.t("en", "topic.closed", topic=TOPIC) and notice.message_thread_id is None
    assert "Rusia dan sepak bola" in push.text and push.message_thread_id is None
    await store(bot, "Rusia dan hujan lagi", "Banjir besar melanda pesisir utara setelah hujan tiga hari. " + THIRD[:80],
                ["Rusia"])
    [*_, push] = await bot.said(FORUM, 7)
    assert "Rusia dan hujan lagi" in push.text and push.message_thread_id is None
    await no_message_after(bot, FORUM, 7)
    assert sum(m.text == notice.text for m in bot.server.sent_messages(FORUM)) == 1
