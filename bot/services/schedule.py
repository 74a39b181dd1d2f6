"""When pushes may arrive: a chat's time zone, follow snoozes and story mutes.

Time zones are IANA zones through the standard library's zoneinfo, plus the names Indonesian
readers use (WIB, WITA, WIT) and fixed offsets (UTC+7, UTC-03:30). A chat without a stored
zone gets the default of its language: Asia/Jakarta for Indonesian, UTC otherwise, so a chat
that switches /lang follows along until it picks a zone itself.

Snoozed follows SKIP stories (they are not collected for later): the fan-out records the
story as cancelled for the chat, so the story is never pushed there, not even when the snooze
ends. Every clock here is injected, so tests move time instead of sleeping.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import and_, delete, select, update
from sqlalchemy.orm import Session

from bot.db import Database
from bot.db.models import ArticleTag, Chat, Delivery, DeliveryStatus, Follow, FollowTopic, Snooze, StoryMute, Subscription
from bot.i18n import normalize_lang

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

UTC_NAME = "UTC"
# The zone a chat gets before it sets one, by the chat's language.
DEFAULT_ZONES: Mapping[str, str] = {"id": "Asia/Jakarta"}
# Indonesia's three zones by the names its readers use.
ZONE_ALIASES: Mapping[str, str] = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura",
                                   "UTC": UTC_NAME, "GMT": UTC_NAME, "Z": UTC_NAME}
_OFFSET = re.compile(r"(?:UTC|GMT)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
MAX_OFFSET = timedelta(hours=14)  # UTC+14 (Kiribati) and UTC-12 are the extremes in use
MAX_ZONE_CHARS = 64

_DURATION = re.compile(r"(\d{1,4})\s*([mhdw])", re.IGNORECASE)
DURATION_UNITS: Mapping[str, timedelta] = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
                                           "w": timedelta(weeks=1)}
MAX_SNOOZE = timedelta(days=365)
CHUNK = 1000  # chat ids per IN (...) list: SQLite takes a limited number of parameters
OFF = "off"
ON = "on"
SNOOZE_REASON = "the follow that matched was snoozed"


def parse_zone(text: str) -> str | None:
    """The canonical name of a zone the reader typed, or None when it is not one.

    'asia/jakarta' -> 'Asia/Jakarta', 'wita' -> 'Asia/Makassar', 'UTC+7' -> 'UTC+07:00'.
    """
    text = text.strip()
    if not text or len(text) > MAX_ZONE_CHARS:
        return None
    alias = ZONE_ALIASES.get(text.upper())
    if alias is not None:
        return alias
    if offset := _OFFSET.fullmatch(text):
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
        delta = timedelta(hours=hours, minutes=minutes)
        if minutes >= 60 or delta > MAX_OFFSET:
            return None
        if not delta:
            return UTC_NAME
        return f"UTC{sign}{hours:02d}:{minutes:02d}"
    # IANA names are case-sensitive on disk; match the reader's spelling against the known set.
    wanted = text.replace(" ", "_").casefold()
    for name in _zone_names():
        if name.casefold() == wanted:
            return name
    return None


def _zone_names() -> Collection[str]:
    return available_timezones()


def zone_of(name: str | None, lang: str | None) -> tzinfo:
    """The tzinfo of a stored zone name (or the language's default when none is stored)."""
    name = name or default_zone_name(lang)
    if offset := _OFFSET.fullmatch(name):
        sign = -1 if offset.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0)), name)
    if name == UTC_NAME:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown stored time zone %r; using UTC", name)
        return UTC


def default_zone_name(lang: str | None) -> str:
    return DEFAULT_ZONES.get(normalize_lang(lang) or "", UTC_NAME)


def local_now(clock: Clock, name: str | None, lang: str | None) -> datetime:
    return clock().astimezone(zone_of(name, lang))


def parse_duration(text: str) -> timedelta | None:
    """'8h', '1d', '1w', '30m', '1d12h' -> the time span; None when not a duration (or over a year)."""
    text = text.strip()
    if not text or not re.fullmatch(rf"(?:{_DURATION.pattern})+", text, re.IGNORECASE):
        return None
    total = sum((int(count) * DURATION_UNITS[unit.lower()] for count, unit in _DURATION.findall(text)), timedelta())
    if not total or total > MAX_SNOOZE:
        return None
    return total


@dataclass(frozen=True)
class SnoozeView:
    """A snoozed follow as /settings and /following list it."""

    key: str
    text: str
    until: datetime


class ScheduleService:
    """Per-chat time zone, silent flag, snoozes and story mutes; each method one short transaction."""

    def __init__(self, db: Database, *, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._now = clock

    # --- time zone and silence ------------------------------------------------------------------
    def set_timezone(self, chat_id: int, name: str) -> None:
        """Store a canonical zone name (from parse_zone)."""
        with self._db.session() as session:
            session.execute(update(Chat).where(Chat.id == chat_id).values(timezone=name))

    def set_silent(self, chat_id: int, silent: bool) -> None:
        with self._db.session() as session:
            session.execute(update(Chat).where(Chat.id == chat_id).values(silent=silent))

    def modes(self, chat_id: int) -> tuple[str, bool]:
        """(the chat's zone name, default included; whether pushes are silent)."""
        with self._db.session() as session:
            row = session.execute(select(Chat.timezone, Chat.lang, Chat.silent).where(Chat.id == chat_id)).first()
        if row is None:
            return UTC_NAME, False
        return row[0] or default_zone_name(row[1]), bool(row[2])

    def local_time(self, chat_id: int) -> datetime:
        """Now, in the chat's zone."""
        name, _ = self.modes(chat_id)
        return self._now().astimezone(zone_of(name, None))

    # --- snoozes --------------------------------------------------------------------------------
    def snooze(self, chat_id: int, key: str, text: str, span: timedelta) -> datetime:
        """Snooze the follow `key` for `span` from now (replacing an earlier snooze); returns the end."""
        until = self._now() + span
        with self._db.session() as session:
            row = session.get(Snooze, (chat_id, key))
            if row is None:
                session.add(Snooze(chat_id=chat_id, key=key, text=text[:1000], until=until))
            else:
                row.until, row.text = until, text[:1000]
        return until

    def unsnooze(self, chat_id: int, key: str) -> bool:
        """End a snooze now; False when the follow was not snoozed."""
        with self._db.session() as session:
            result = session.execute(delete(Snooze).where(Snooze.chat_id == chat_id, Snooze.key == key))
            return bool(getattr(result, "rowcount", 0))

    def snoozes(self, chat_id: int) -> list[SnoozeView]:
        """The chat's snoozes still running, soonest end first."""
        now = self._now()
        with self._db.read_session() as session:
            rows = session.scalars(select(Snooze).where(Snooze.chat_id == chat_id, Snooze.until > now)
                                   .order_by(Snooze.until, Snooze.key)).all()
            return [SnoozeView(row.key, row.text, _aware(row.until)) for row in rows]

    # --- forum topics -------------------------------------------------------------------------
    def route_topic(self, chat_id: int, keys: Collection[str], thread_id: int | None) -> None:
        """Follows made (or made again) in a forum topic push there; made in General, to General."""
        with self._db.session() as session:
            session.execute(delete(FollowTopic).where(FollowTopic.chat_id == chat_id, FollowTopic.key.in_(sorted(keys))))
            if thread_id is not None:
                now = self._now()
                session.add_all(FollowTopic(chat_id=chat_id, key=key, thread_id=thread_id, created_at=now) for key in keys)

    def drop_topic(self, chat_id: int, thread_id: int | None) -> int:
        """The topic is closed or deleted: its follows and unsent pushes fall back to General.
        Returns how many follows were routed there (0 the second time: admins are told once)."""
        if thread_id is None:
            return 0
        with self._db.session() as session:
            result = session.execute(delete(FollowTopic).where(FollowTopic.chat_id == chat_id,
                                                               FollowTopic.thread_id == thread_id))
            session.execute(update(Delivery).where(
                Delivery.chat_id == chat_id, Delivery.message_thread_id == thread_id,
                Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRY, DeliveryStatus.SENDING)))
                .values(message_thread_id=None))
            return int(getattr(result, "rowcount", 0) or 0)

    # --- story mutes ----------------------------------------------------------------------------
    def mute_story(self, chat_id: int, story_id: int) -> None:
        """No more of this story for the chat: recorded (for near-duplicates and later updates)
        and any unsent delivery of it cancelled."""
        now = self._now()
        with self._db.session() as session:
            if session.get(StoryMute, (chat_id, story_id)) is None:
                session.add(StoryMute(chat_id=chat_id, story_id=story_id, created_at=now))
            session.execute(
                update(Delivery)
                .where(Delivery.chat_id == chat_id, Delivery.story_id == story_id,
                       Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRY)))
                .values(status=DeliveryStatus.CANCELLED, last_error="the chat muted the story", next_attempt_at=None,
                        updated_at=now))

    def unmute_story(self, chat_id: int, story_id: int) -> bool:
        with self._db.session() as session:
            result = session.execute(delete(StoryMute).where(StoryMute.chat_id == chat_id, StoryMute.story_id == story_id))
            return bool(getattr(result, "rowcount", 0))

    def muted_stories(self, chat_id: int) -> list[int]:
        with self._db.session() as session:
            return list(session.scalars(select(StoryMute.story_id).where(StoryMute.chat_id == chat_id)
                                        .order_by(StoryMute.created_at.desc(), StoryMute.story_id)))


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they are stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def snoozed_tag_followers(session: Session, article_id: int, chat_ids: Collection[int], now: datetime) -> set[int]:
    """Of these chats (following some tag of the article), those whose EVERY matching tag follow is
    snoozed at `now`; one running follow is enough to push. A plain tag follow's key is "#<tag id>"."""
    if not chat_ids:
        return set()
    result: set[int] = set()
    ordered = sorted(chat_ids)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start:start + CHUNK]
        snoozing = set(session.scalars(select(Snooze.chat_id).where(Snooze.chat_id.in_(chunk), Snooze.until > now)))
        if not snoozing:
            continue  # the common case: one cheap look-up, nothing snoozed
        keys: dict[int, set[str]] = {}
        for chat_id, tag_id in session.execute(
                select(Subscription.chat_id, Subscription.tag_id)
                .join(ArticleTag, ArticleTag.tag_id == Subscription.tag_id)
                .where(ArticleTag.article_id == article_id, Subscription.chat_id.in_(sorted(snoozing)))):
            keys.setdefault(chat_id, set()).add(f"#{tag_id}")
        running: dict[int, set[str]] = {}
        for chat_id, key in session.execute(
                select(Snooze.chat_id, Snooze.key).where(Snooze.chat_id.in_(sorted(snoozing)), Snooze.until > now)):
            running.setdefault(chat_id, set()).add(key)
        result |= {chat_id for chat_id, wanted in keys.items() if wanted <= running.get(chat_id, set())}
    return result


def snoozed_follows(session: Session, now: datetime) -> set[int]:
    """Ids of the query follows snoozed at `now` (few: only what readers snoozed, and only while it runs)."""
    return set(session.scalars(
        select(Follow.id).join(Snooze, and_(Snooze.chat_id == Follow.chat_id, Snooze.key == Follow.key))
        .where(Snooze.until > now)))


def topics_for(session: Session, article_id: int, chat_ids: Collection[int], follow_ids: Mapping[int, int]) -> dict[int, int]:
    """chat -> the forum topic of a follow that brought the article there (chats without topics left out)."""
    if not chat_ids:
        return {}
    routed: dict[int, dict[str, int]] = {}
    ordered = sorted(chat_ids)
    for start in range(0, len(ordered), CHUNK):
        for chat_id, key, thread_id in session.execute(select(FollowTopic.chat_id, FollowTopic.key, FollowTopic.thread_id)
                                                       .where(FollowTopic.chat_id.in_(ordered[start:start + CHUNK]))):
            routed.setdefault(chat_id, {})[key] = thread_id
    if not routed:
        return {}
    tags = [f"#{tag_id}" for tag_id in session.scalars(select(ArticleTag.tag_id).where(ArticleTag.article_id == article_id)
                                                        .order_by(ArticleTag.tag_id))]
    follow_keys = dict(session.execute(select(Follow.id, Follow.key).where(
        Follow.id.in_(sorted({follow_ids[c] for c in routed if c in follow_ids}))))) if follow_ids else {}
    result: dict[int, int] = {}
    for chat_id, keys in routed.items():
        candidates = [follow_keys[follow_ids[chat_id]]] if chat_id in follow_ids and follow_ids[chat_id] in follow_keys else []
        for key in [*candidates, *tags]:
            if key in keys:
                result[chat_id] = keys[key]
                break
    return result
