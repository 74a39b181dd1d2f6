"""Digest times, quiet hours and caps in the reader's zone, and the digest as messages (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from bot.conversation.digest_render import DigestItem, render_digest
from bot.conversation.messages import MAX_MESSAGE_CHARS, telegram_length
from bot.i18n import I18n
from bot.services.digests import ChatModes, next_digest_at, parse_digest_times, parse_quiet, quiet_end, route

from test_bot_telegram import html_errors

JAKARTA = ZoneInfo("Asia/Jakarta")


def utc(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_daily_times_are_local() -> None:
    # 23:30 UTC is 06:30 in Jakarta: 07:00 WIB is 00:00 UTC the next day.
    assert next_digest_at(utc(23, 30), JAKARTA, "07:00") == utc(0, 0, day=2)
    assert next_digest_at(utc(0, 0, day=2), JAKARTA, "07:00,19:00") == utc(12, 0, day=2)  # strictly after now
    assert next_digest_at(utc(13, 0), JAKARTA, "07:00,19:00") == utc(0, 0, day=2)
    assert next_digest_at(utc(10, 15), UTC, "hourly") == utc(11, 0)


def test_quiet_hours_across_midnight() -> None:
    assert quiet_end(utc(23, 30), UTC, "22:00-06:00") == utc(6, 0, day=2)
    assert quiet_end(utc(0, 30, day=2), UTC, "22:00-06:00") == utc(6, 0, day=2)
    assert quiet_end(utc(6, 0, day=2), UTC, "22:00-06:00") is None
    assert quiet_end(utc(21, 59), UTC, "22:00-06:00") is None
    assert quiet_end(utc(13, 0), UTC, "12:00-14:00") == utc(14, 0)
    # In Jakarta 15:30 UTC is 22:30 local: quiet until 06:00 WIB = 23:00 UTC.
    assert quiet_end(utc(15, 30), JAKARTA, "22:00-06:00") == utc(23, 0)


def test_route_by_mode() -> None:
    instant = ChatModes(1, UTC, None, None, None)
    assert route(utc(12), instant, 1000) is None
    assert route(utc(12), ChatModes(1, UTC, "hourly", None, None), 0) == utc(13)
    capped = ChatModes(1, UTC, None, None, 2)
    assert route(utc(12), capped, 1) is None
    assert route(utc(12), capped, 2) == datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    assert route(utc(23, 30), ChatModes(1, UTC, None, "22:00-06:00", 2), 0) == utc(6, day=2)


@pytest.mark.parametrize(("typed", "times"), [
    ("07:00", (time(7),)), ("19:00,07:00", (time(7), time(19))), ("7.30", (time(7, 30),)), ("07:00, 07:00", (time(7),)),
    ("25:00", None), ("07:00,x", None), ("", None),
])
def test_digest_times(typed: str, times: tuple[time, ...] | None) -> None:
    assert parse_digest_times(typed) == times


def test_quiet_spans() -> None:
    assert parse_quiet("22:00-06:00") == (time(22), time(6))
    assert parse_quiet("22:00-22:00") is None and parse_quiet("22:00") is None and parse_quiet("x-y") is None


def test_a_long_digest_is_split_into_valid_messages_grouped_by_follow() -> None:
    i18n = I18n.load()
    items = [DigestItem(i, "Rusia" if i % 2 else "gandum -iklan", f"Judul <{i}> & berita", f"https://x.example/{i}?a=1&b=2",
                        "Kalimat panjang tentang berita ini. " * 40) for i in range(1, 41)]
    messages = render_digest(items, "en", i18n, silent=True)
    assert len(messages) > 1
    assert messages[0].text.startswith(i18n.t("en", "digest.header", count=40))
    for message in messages:
        assert telegram_length(message.text) <= MAX_MESSAGE_CHARS and html_errors(message.text) == []
        assert message.silent and message.bulk
        assert "<blockquote expandable>" in message.text
    text = "\n".join(m.text for m in messages)
    for i in range(1, 41):
        assert text.count(f"Judul &lt;{i}&gt; &amp; berita") == 1
    # Grouped by follow (in the order follows first appear), one summary button per story.
    assert [data for m in messages for data in m.callback_data()] == [f"sum:{i}" for i in [*range(1, 41, 2), *range(2, 41, 2)]]
    assert render_digest([], "en", i18n) == []  # nothing new: no message
