"""Digests, quiet hours and daily caps: which stories wait, until when, and the digest outbox.

Routing happens in the fan-out's transaction (`route_new`): a story for a chat in digest mode,
inside its quiet hours, or past its daily cap gets a delivery row that a digest OWNS
(deliveries.digest_id) instead of an instant one. Instant claims never take owned rows
(DeliveryService.claim_due), so a story goes out either as a push or inside exactly one digest.

A digest is one row per chat and due moment, sent through the same states as a delivery:
pending -> sending (claimed with a lease, committed before the send; its stories are marked
`sending` in that same transaction) -> sent (digest and stories together). A process killed
mid-digest leaves the row `sending`; at the next start it is pending again and sent again: the
only possible double is that one in-flight digest, never a story pushed instantly as well.

Mode changes apply to what is not yet sent: /digest off and the end of quiet hours release
nothing early, /digest off hands every waiting story back to instant pushes, and a new zone or
new times move the waiting digests to the new next time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.orm import Session

from bot.db import Database
from bot.db.models import Article, ArticleTag, Chat, ChatKind, Delivery, DeliveryStatus, Digest, Follow, Subscription, Tag
from bot.i18n import DEFAULT_LANG, normalize_lang
from bot.services.deliveries import DEFAULT_LEASE, TELEGRAM_CHAT_KINDS, backoff_seconds
from bot.services.schedule import zone_of

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

HOURLY = "hourly"
DAILY = "daily"
MAX_DIGEST_TIMES = 24
_CLOCK = re.compile(r"([01]?\d|2[0-3])[:.]([0-5]\d)")
END_OF_DAY = time(23, 59)  # an instant chat past its cap gets the rest of the day in one digest then
CHUNK = 1000
MAX_ATTEMPTS = 8


def parse_clock(text: str) -> time | None:
    """'07:00', '7.30' -> a time of day; None otherwise."""
    match = _CLOCK.fullmatch(text.strip())
    return time(int(match.group(1)), int(match.group(2))) if match else None


def parse_digest_times(text: str) -> tuple[time, ...] | None:
    """'07:00,19:00' -> the sorted distinct times; None when any part is not a time."""
    parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
    times = [parse_clock(part) for part in parts]
    if not parts or any(t is None for t in times) or len(parts) > MAX_DIGEST_TIMES:
        return None
    return tuple(sorted({t for t in times if t is not None}))


def format_times(times: Sequence[time]) -> str:
    return ",".join(t.strftime("%H:%M") for t in times)


def parse_quiet(text: str) -> tuple[time, time] | None:
    """'22:00-06:00' -> (start, end); the span may cross midnight; equal ends are no span."""
    start, sep, end = text.strip().partition("-")
    first, last = parse_clock(start), parse_clock(end)
    if not sep or first is None or last is None or first == last:
        return None
    return first, last


def _at(day: datetime, moment: time, zone: tzinfo) -> datetime:
    """The UTC instant of local `moment` on local `day`'s date."""
    return datetime.combine(day.date(), moment, tzinfo=zone).astimezone(UTC)


def next_digest_at(now: datetime, zone: tzinfo, plan: str) -> datetime:
    """The next digest moment strictly after `now`: the next full hour, or the next listed local time."""
    if plan == HOURLY:
        return (now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).astimezone(UTC)
    times = parse_digest_times(plan) or (time(7, 0),)
    local = now.astimezone(zone)
    for days in range(3):
        day = local + timedelta(days=days)
        for moment in times:
            candidate = _at(day, moment, zone)
            if candidate > now:
                return candidate
    raise AssertionError("a digest time always comes within two days")  # pragma: no cover


def quiet_end(now: datetime, zone: tzinfo, quiet: str | None) -> datetime | None:
    """When the quiet hours `now` falls in end (UTC); None outside them."""
    span = parse_quiet(quiet) if quiet else None
    if span is None:
        return None
    start, end = span
    local = now.astimezone(zone)
    current = local.time()
    inside = start <= current < end if start < end else (current >= start or current < end)
    if not inside:
        return None
    day = local if (start < end or current < end) else local + timedelta(days=1)
    return _at(day, end, zone)


def local_midnight(now: datetime, zone: tzinfo) -> datetime:
    return _at(now.astimezone(zone), time(0, 0), zone)


@dataclass(frozen=True)
class ChatModes:
    """What routing needs of a chat."""

    chat_id: int
    zone: tzinfo
    digest: str | None
    quiet: str | None
    daily_limit: int | None


def route(now: datetime, modes: ChatModes, sent_today: int) -> datetime | None:
    """When a story arriving now reaches the chat: None = an instant push; else the due moment of
    the digest that takes it (digest mode; quiet hours' end; past the cap, the next digest or 23:59)."""
    if modes.digest:
        return next_digest_at(now, modes.zone, modes.digest)
    end = quiet_end(now, modes.zone, modes.quiet)
    if end is not None:
        return end
    if modes.daily_limit is not None and sent_today >= modes.daily_limit:
        later = _at(now.astimezone(modes.zone), END_OF_DAY, modes.zone)
        return later if later > now else now + timedelta(minutes=1)
    return None


def chat_modes(session: Session, chat_ids: Collection[int]) -> dict[int, ChatModes]:
    """Modes of the chats that have any (most chats have none: they are left out)."""
    result: dict[int, ChatModes] = {}
    ordered = sorted(chat_ids)
    for start in range(0, len(ordered), CHUNK):
        rows = session.execute(
            select(Chat.id, Chat.timezone, Chat.lang, Chat.digest, Chat.quiet, Chat.daily_limit)
            .where(Chat.id.in_(ordered[start:start + CHUNK]),
                   or_(Chat.digest.is_not(None), Chat.quiet.is_not(None), Chat.daily_limit.is_not(None))))
        for chat_id, zone, lang, digest, quiet, limit in rows:
            result[chat_id] = ChatModes(chat_id, zone_of(zone, lang), digest, quiet, limit)
    return result


def instant_today(session: Session, modes: ChatModes, now: datetime) -> int:
    """Stories pushed (or queued) instantly to the chat since its local midnight: the cap's count."""
    return session.scalar(
        select(func.count()).select_from(Delivery).where(
            Delivery.chat_id == modes.chat_id, Delivery.digest_id.is_(None),
            Delivery.status != DeliveryStatus.CANCELLED, Delivery.created_at >= local_midnight(now, modes.zone))) or 0


def digest_for(session: Session, chat_id: int, due_at: datetime, now: datetime) -> int:
    """The chat's pending digest due at `due_at`, created when there is none.

    The row is locked (FOR UPDATE) until the caller commits, so a sender cannot claim it between
    this look-up and the stories joining it: a claim skips locked digests and takes it next round.
    """
    found = session.scalar(
        select(Digest.id).where(Digest.chat_id == chat_id, Digest.due_at == due_at, Digest.status == DeliveryStatus.PENDING)
        .order_by(Digest.id).limit(1).with_for_update())
    if found is not None:
        return int(found)
    digest = Digest(chat_id=chat_id, due_at=due_at, status=DeliveryStatus.PENDING, attempts=0, message_ids=[],
                    created_at=now, updated_at=now)
    session.add(digest)
    session.flush()
    return digest.id


def route_new(session: Session, chat_ids: Collection[int], now: datetime) -> dict[int, int]:
    """For the fan-out, in its transaction: chat -> the digest that owns its new story (chats
    with an instant push are left out)."""
    owned: dict[int, int] = {}
    for chat_id, modes in chat_modes(session, chat_ids).items():
        count = instant_today(session, modes, now) if modes.daily_limit is not None and not modes.digest else 0
        due = route(now, modes, count)
        if due is not None:
            owned[chat_id] = digest_for(session, chat_id, due, now)
    return owned


@dataclass(frozen=True)
class DigestStory:
    """One story inside a digest, with the follow that brought it (for grouping)."""

    delivery_id: int
    article_id: int
    follow: str  # the follow's text, or the followed tag names


@dataclass(frozen=True)
class ClaimedDigest:
    """A digest this process is now sending."""

    id: int
    chat_id: int
    lang: str
    silent: bool
    due_at: datetime
    attempts: int
    stories: tuple[DigestStory, ...]


class DigestService:
    """The digest outbox and the chat settings that route into it; each method one short transaction."""

    def __init__(self, db: Database, *, clock: Clock = lambda: datetime.now(UTC), lease: timedelta = DEFAULT_LEASE) -> None:
        self._db = db
        self._now = clock
        self._lease = lease

    # --- settings -------------------------------------------------------------------------------
    def modes(self, chat_id: int) -> tuple[str | None, str | None, int | None]:
        with self._db.session() as session:
            row = session.execute(select(Chat.digest, Chat.quiet, Chat.daily_limit).where(Chat.id == chat_id)).first()
        return (row[0], row[1], row[2]) if row is not None else (None, None, None)

    def set_modes(self, chat_id: int, **values: Any) -> None:
        """Store digest/quiet/daily_limit, then move what waits: released to instant pushes when the
        chat has no reason left to hold it, else to the next due moment under the new settings."""
        with self._db.session() as session:
            session.execute(update(Chat).where(Chat.id == chat_id).values(**values))
            self._reschedule(session, chat_id)

    def rescheduled(self, chat_id: int) -> None:
        """The chat's zone changed: waiting digests move to the new local times."""
        with self._db.session() as session:
            self._reschedule(session, chat_id)

    def _reschedule(self, session: Session, chat_id: int) -> None:
        now = self._now()
        waiting = session.scalars(select(Digest).where(Digest.chat_id == chat_id, Digest.status == DeliveryStatus.PENDING)
                                  .with_for_update()).all()
        if not waiting:
            return
        modes = chat_modes(session, [chat_id]).get(chat_id)
        due = None
        if modes is not None:
            due = next_digest_at(now, modes.zone, modes.digest) if modes.digest else quiet_end(now, modes.zone, modes.quiet)
            if due is None and modes.daily_limit is not None:
                due = route(now, modes, instant_today(session, modes, now))
        ids = [digest.id for digest in waiting]
        if due is None:
            # Nothing holds these stories any more: they become instant pushes (nothing is lost).
            session.execute(update(Delivery).where(Delivery.digest_id.in_(ids), Delivery.status == DeliveryStatus.PENDING)
                            .values(digest_id=None, updated_at=now))
            session.execute(update(Digest).where(Digest.id.in_(ids)).values(status=DeliveryStatus.CANCELLED, updated_at=now,
                                                                          last_error="released to instant pushes"))
            return
        keep = waiting[0]
        keep.due_at, keep.updated_at = due, now
        others = ids[1:]
        if others:  # one digest at the new time takes every waiting story
            session.execute(update(Delivery).where(Delivery.digest_id.in_(others)).values(digest_id=keep.id, updated_at=now))
            session.execute(update(Digest).where(Digest.id.in_(others)).values(status=DeliveryStatus.CANCELLED, updated_at=now,
                                                                             last_error=f"merged into digest {keep.id}"))

    # --- the outbox -----------------------------------------------------------------------------
    def claim_due(self, limit: int, *, kinds: Collection[ChatKind] = TELEGRAM_CHAT_KINDS,
                  exclude_chats: Collection[int] = ()) -> list[ClaimedDigest]:
        """Mark up to `limit` due digests `sending`, oldest due first (one per chat), with their stories."""
        if limit <= 0:
            return []
        now = self._now()
        due = or_(and_(Digest.status == DeliveryStatus.PENDING, Digest.due_at <= now),
                  and_(Digest.status == DeliveryStatus.RETRY, Digest.next_attempt_at <= now))
        excluded = set(exclude_chats)
        with self._db.session() as session:
            rows = session.execute(
                select(Digest.id, Digest.chat_id).join(Chat, Chat.id == Digest.chat_id)
                .where(due, Chat.kind.in_(list(kinds)), Chat.active.is_(True))
                .order_by(Digest.due_at, Digest.id).limit(limit * 4 + len(excluded))
                .with_for_update(skip_locked=True, of=Digest)).all()
            chosen: list[int] = []
            for digest_id, chat_id in rows:
                if len(chosen) >= limit or chat_id in excluded:
                    continue
                excluded.add(chat_id)
                chosen.append(digest_id)
            if not chosen:
                return []
            session.execute(update(Digest).where(Digest.id.in_(chosen)).values(
                status=DeliveryStatus.SENDING, attempts=Digest.attempts + 1, next_attempt_at=now + self._lease, updated_at=now))
            # Its stories are the digest's now: marked in the claim's transaction (never also pushed).
            session.execute(update(Delivery).where(Delivery.digest_id.in_(chosen),
                                                   Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRY)))
                            .values(status=DeliveryStatus.SENDING, updated_at=now))
            return [self._load(session, digest_id) for digest_id in chosen]

    @staticmethod
    def _load(session: Session, digest_id: int) -> ClaimedDigest:
        """The claimed digest with its stories; a story whose follow is gone is cancelled, as an
        instant push of it would be."""
        digest = session.get_one(Digest, digest_id)
        chat = session.get_one(Chat, digest.chat_id)
        rows = session.execute(select(Delivery.id, Delivery.article_id, Delivery.follow_id)
                               .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.SENDING)
                               .order_by(Delivery.id)).all()
        stories = []
        dropped: list[int] = []
        for delivery_id, article_id, follow_id in rows:
            follow = session.scalar(select(Follow.text).where(Follow.id == follow_id)) if follow_id is not None else None
            if follow is None:
                names = session.scalars(select(Tag.name).join(ArticleTag, ArticleTag.tag_id == Tag.id)
                                        .join(Subscription, and_(Subscription.tag_id == Tag.id,
                                                                 Subscription.chat_id == digest.chat_id))
                                        .where(ArticleTag.article_id == article_id).order_by(Tag.name)).all()
                follow = ", ".join(names)
            if not follow:
                dropped.append(delivery_id)
                continue
            stories.append(DigestStory(delivery_id, article_id, follow))
        if dropped:
            session.execute(update(Delivery).where(Delivery.id.in_(dropped)).values(
                status=DeliveryStatus.CANCELLED, last_error="the chat no longer follows the article's tags"))
        return ClaimedDigest(id=digest.id, chat_id=digest.chat_id, lang=normalize_lang(chat.lang) or DEFAULT_LANG,
                             silent=chat.silent, due_at=digest.due_at, attempts=digest.attempts, stories=tuple(stories))

    def mark_sent(self, digest_id: int, message_ids: Sequence[int]) -> bool:
        """The digest and every story it owns are sent, in one commit."""
        now = self._now()
        with self._db.session() as session:
            result = session.execute(update(Digest).where(Digest.id == digest_id, Digest.status == DeliveryStatus.SENDING)
                                     .values(status=DeliveryStatus.SENT, message_ids=list(message_ids), sent_at=now,
                                             next_attempt_at=None, last_error=None, updated_at=now))
            if not cast("CursorResult[Any]", result).rowcount:
                return False
            session.execute(update(Delivery).where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.SENDING)
                            .values(status=DeliveryStatus.SENT, sent_at=now, updated_at=now))
            return True

    def parts_sent(self, digest_id: int) -> list[int]:
        """Message ids of the parts of this digest already sent (a resumed digest skips them)."""
        with self._db.session() as session:
            return list(session.scalar(select(Digest.message_ids).where(Digest.id == digest_id)) or [])

    def record_part(self, digest_id: int, message_ids: Sequence[int]) -> None:
        """Commit the parts sent so far, right after each send."""
        with self._db.session() as session:
            session.execute(update(Digest).where(Digest.id == digest_id, Digest.status == DeliveryStatus.SENDING)
                            .values(message_ids=list(message_ids), updated_at=self._now()))

    def cancel_stories(self, delivery_ids: Collection[int], reason: str) -> None:
        """Stories a claimed digest leaves out (the chat unfollowed what brought them)."""
        if not delivery_ids:
            return
        with self._db.session() as session:
            session.execute(update(Delivery).where(Delivery.id.in_(sorted(delivery_ids)))
                            .values(status=DeliveryStatus.CANCELLED, last_error=reason, updated_at=self._now()))

    def fail(self, digest_id: int, error: str, *, retry_after: float | None = None) -> None:
        """A failed send: retry later (its stories stay owned and wait with it), parked at the end."""
        now = self._now()
        with self._db.session() as session:
            digest = session.get(Digest, digest_id)
            if digest is None or digest.status != DeliveryStatus.SENDING:
                return
            digest.last_error, digest.updated_at = error[:1000], now
            parked = retry_after is None and digest.attempts >= MAX_ATTEMPTS
            digest.status = DeliveryStatus.PARKED if parked else DeliveryStatus.RETRY
            seconds = retry_after if retry_after is not None else backoff_seconds(digest.attempts)
            digest.next_attempt_at = None if parked else now + timedelta(seconds=seconds)
            session.execute(update(Delivery).where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.SENDING)
                            .values(status=DeliveryStatus.PARKED if parked else DeliveryStatus.PENDING, updated_at=now))

    def recover_orphans(self, *, kinds: Collection[ChatKind] = TELEGRAM_CHAT_KINDS, all_sending: bool = False) -> int:
        """Digests left `sending` (by a process that died, or whose lease lapsed) are pending again;
        their stories stay theirs."""
        now = self._now()
        condition = Digest.status == DeliveryStatus.SENDING
        if not all_sending:
            condition = and_(condition, Digest.next_attempt_at <= now)
        chats = select(Chat.id).where(Chat.kind.in_(list(kinds)))
        with self._db.session() as session:
            ids = list(session.scalars(select(Digest.id).where(condition, Digest.chat_id.in_(chats)).with_for_update()))
            if not ids:
                return 0
            session.execute(update(Digest).where(Digest.id.in_(ids))
                            .values(status=DeliveryStatus.PENDING, next_attempt_at=None, updated_at=now))
            session.execute(update(Delivery).where(Delivery.digest_id.in_(ids), Delivery.status == DeliveryStatus.SENDING)
                            .values(status=DeliveryStatus.PENDING, updated_at=now))
        log.warning("re-queued %d digests left `sending` by a stopped sender", len(ids))
        return len(ids)

    def pending_count(self, chat_id: int) -> int:
        """Stories waiting in the chat's digests."""
        with self._db.session() as session:
            return session.scalar(select(func.count()).select_from(Delivery).join(Digest, Digest.id == Delivery.digest_id)
                                  .where(Digest.chat_id == chat_id, Digest.status == DeliveryStatus.PENDING,
                                         Delivery.status == DeliveryStatus.PENDING)) or 0

    def article_titles(self, article_ids: Collection[int]) -> Mapping[int, tuple[str, str | None]]:
        with self._db.session() as session:
            return {row[0]: (row[1], row[2]) for row in session.execute(
                select(Article.id, Article.title, Article.url).where(Article.id.in_(sorted(article_ids))))}
