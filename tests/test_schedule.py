"""Time zones and durations as readers type them (bot/services/schedule.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.services.schedule import default_zone_name, parse_duration, parse_zone, zone_of


@pytest.mark.parametrize(("typed", "zone"), [
    ("Asia/Jakarta", "Asia/Jakarta"), ("asia/jakarta", "Asia/Jakarta"), ("WIB", "Asia/Jakarta"), ("wita", "Asia/Makassar"),
    ("WIT", "Asia/Jayapura"), ("UTC", "UTC"), ("utc", "UTC"), ("UTC+7", "UTC+07:00"), ("UTC-3:30", "UTC-03:30"),
    ("GMT+0530", "UTC+05:30"), ("UTC+0", "UTC"), ("america/new york", "America/New_York"),
    ("Mars/Olympus", None), ("UTC+15", None), ("UTC+7:75", None), ("", None), ("x" * 100, None), ("../etc/passwd", None),
])
def test_zones_as_readers_type_them(typed: str, zone: str | None) -> None:
    assert parse_zone(typed) == zone


def test_zone_of_stored_names_and_defaults() -> None:
    moment = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    assert moment.astimezone(zone_of(None, "id")).strftime("%H:%M") == "06:30"
    assert moment.astimezone(zone_of(None, "en")).strftime("%H:%M") == "23:30"
    assert moment.astimezone(zone_of("UTC-03:30", "id")).strftime("%H:%M") == "20:00"
    assert moment.astimezone(zone_of("Asia/Jayapura", "en")).strftime("%H:%M") == "08:30"
    assert moment.astimezone(zone_of("No/Such_Zone", "en")) == moment  # a stale stored name falls back to UTC
    assert default_zone_name("id") == "Asia/Jakarta" and default_zone_name(None) == "UTC"


@pytest.mark.parametrize(("typed", "span"), [
    ("8h", timedelta(hours=8)), ("1d", timedelta(days=1)), ("1w", timedelta(weeks=1)), ("30m", timedelta(minutes=30)),
    ("1d12h", timedelta(days=1, hours=12)), ("1D", timedelta(days=1)),
    ("0h", None), ("soon", None), ("1y", None), ("60w", None), ("", None), ("-1d", None), ("1d x", None),
])
def test_durations(typed: str, span: timedelta | None) -> None:
    assert parse_duration(typed) == span
