"""The delivery outbox: claim due deliveries, record what happened to each send.

Life of a delivery: pending -> sending (claimed, committed BEFORE the Telegram call) -> sent
(with the message id). Failures: retry (backoff) ... -> parked after DELIVERY_MAX_ATTEMPTS;
cancelled when the chat is gone. A claim holds a lease (next_attempt_at while `sending`); a
row still `sending` after its lease, or left by a process that died (recovered when the push
loop starts), goes back to pending and is sent again: delivery is at-least-once, and the only
window for a duplicate is between Telegram's answer and the `sent` commit (see docs/pushes.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, case, func, select, update
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, ArticleTag, Chat, ChatKind, Delivery, DeliveryStatus, Follow, Source, Subscription
from bot.db.notify import wake_push_loops_on_commit
from bot.i18n import DEFAULT_LANG, normalize_lang
from bot.services.outlets import also_reported_by

log = logging.getLogger(__name__)

# Kinds of chats Telegram delivers to; the terminal shell delivers to SHELL chats only.
TELEGRAM_CHAT_KINDS: frozenset[ChatKind] = frozenset(
    {ChatKind.PRIVATE, ChatKind.GROUP, ChatKind.SUPERGROUP, ChatKind.CHANNEL}
)
SHELL_CHAT_KINDS: frozenset[ChatKind] = frozenset({ChatKind.SHELL})
DEFAULT_LEASE = timedelta(minutes=5)
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 3600.0
MAX_ERROR_CHARS = 1000


def delivery_views(session: Session, delivery_ids: Collection[int]) -> dict[int, ClaimedDelivery]:
    """Deliveries as the push renders them, by id: chat, language, and what the chat follows now.

    The one place that decides a push's buttons: the article's tags the chat still follows
    (unfollow buttons) and the query follow that matched (its remove button). Used when claiming
    a send and when re-rendering a sent push (story footer edits), so both show the same message.
    """
    ids = list(delivery_ids)
    rows = session.execute(
        select(Delivery.id, Delivery.article_id, Delivery.story_id, Delivery.chat_id, Chat.kind, Chat.lang, Delivery.attempts,
               Chat.silent, Delivery.message_thread_id)
        .join(Chat, Chat.id == Delivery.chat_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()
    followed: dict[int, set[int]] = {}
    for delivery_id, tag_id in session.execute(
        select(Delivery.id, Subscription.tag_id)
        .join(ArticleTag, ArticleTag.article_id == Delivery.article_id)
        .join(Subscription, and_(Subscription.chat_id == Delivery.chat_id, Subscription.tag_id == ArticleTag.tag_id))
        .where(Delivery.id.in_(ids))
    ):
        followed.setdefault(delivery_id, set()).add(tag_id)
    matched: dict[int, tuple[int, str]] = {
        delivery_id: (follow_id, text) for delivery_id, follow_id, text in session.execute(
            select(Delivery.id, Follow.id, Follow.text).join(Follow, Follow.id == Delivery.follow_id)
            .where(Delivery.id.in_(ids)))
    }
    return {
        row[0]: ClaimedDelivery(
            id=row[0],
            article_id=row[1],
            story_id=row[2],
            chat_id=row[3],
            chat_kind=ChatKind(row[4]),
            lang=normalize_lang(row[5]) or DEFAULT_LANG,
            attempts=row[6],
            followed_tag_ids=frozenset(followed.get(row[0], ())),
            matched_follow=matched.get(row[0]),
            silent=bool(row[7]),
            thread_id=row[8],
        )
        for row in rows
    }


def backoff_seconds(attempts: int, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_MAX_SECONDS) -> float:
    """Exponential backoff after `attempts` failed tries: base, 2*base, 4*base ... capped."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def _parked_condition(chat_id: int | None, since: datetime | None) -> Any:
    condition = Delivery.status == DeliveryStatus.PARKED
    if chat_id is not None:
        condition = and_(condition, Delivery.chat_id == chat_id)
    if since is not None:
        condition = and_(condition, Delivery.updated_at >= since)
    return condition


def _ids_and_chats(session: Session, query: Any) -> list[tuple[int, int]]:
    return [(delivery_id, chat_id) for delivery_id, chat_id in session.execute(query)]


def _take_in_turn(lanes: Sequence[Sequence[tuple[int, int]]], limit: int, excluded: set[int]) -> list[int]:
    """Up to `limit` delivery ids, one from each lane in turn (a lane that runs out leaves its
    turns to the others), at most one per chat and none of `excluded`, which grows with each pick."""
    chosen: list[int] = []
    positions = [0] * len(lanes)
    open_lanes = list(range(len(lanes)))
    while open_lanes and len(chosen) < limit:
        for lane in list(open_lanes):
            if len(chosen) >= limit:
                break
            rows = lanes[lane]
            while positions[lane] < len(rows) and rows[positions[lane]][1] in excluded:
                positions[lane] += 1
            if positions[lane] >= len(rows):
                open_lanes.remove(lane)
                continue
            delivery_id, chat_id = rows[positions[lane]]
            positions[lane] += 1
            excluded.add(chat_id)
            chosen.append(delivery_id)
    return chosen


def _first_due_of_their_chat(
    session: Session, rows: Sequence[tuple[int, int]], now: datetime
) -> list[tuple[int, int]]:
    """For each chat of the rows, in the rows' order, the chat's oldest due delivery (pending, or a
    retry whose time has come, not owned by a digest) as (id, chat_id): taking that one keeps each
    chat's pushes in order, and a chat that got a burst of new stories is served from the oldest of
    them (only looking for the candidate itself, the newest lane saw the burst's last stories and
    passed over all of them until the big fan-out before them was sent).

    Reads only the chats' unsent-and-waiting rows (chat_id and status both equal in the
    (chat_id, status) index), never their sent history. The time and digest conditions are
    selected, not filtered on: given them as filters, SQLite's planner walked the status or the
    digest index over every pending row instead."""
    if not rows:
        return []
    # Computed per row, not filtered on: see above.
    waiting_now = and_(
        Delivery.digest_id.is_(None),
        case((Delivery.status == DeliveryStatus.PENDING, True), else_=Delivery.next_attempt_at <= now),
    )
    first_due: dict[int, int] = {}
    for chat_id, delivery_id, due in session.execute(
        select(Delivery.chat_id, Delivery.id, waiting_now)
        .where(Delivery.chat_id.in_({chat_id for _, chat_id in rows}),
               Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRY)))
    ):
        if due and delivery_id < first_due.get(chat_id, delivery_id + 1):
            first_due[chat_id] = delivery_id
    chats = dict.fromkeys(chat_id for _delivery_id, chat_id in rows if chat_id in first_due)  # in the rows' order
    return [(first_due[chat_id], chat_id) for chat_id in chats]


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this process is now sending."""

    id: int
    article_id: int
    story_id: int
    chat_id: int
    chat_kind: ChatKind
    lang: str
    attempts: int  # including this one
    followed_tag_ids: frozenset[int] = frozenset()  # the article's tags the chat follows now
    matched_follow: tuple[int, str] | None = None  # the query follow that matched (id, text), if it still exists
    silent: bool = False  # the chat's /silent: no notification sound
    thread_id: int | None = None  # the forum topic of the follow that brought it


@dataclass(frozen=True)
class ParkedDelivery:
    """A delivery that gave up, for admins."""

    id: int
    article_id: int
    chat_id: int
    attempts: int
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True)
class TagView:
    """A tag as shown under a push."""

    id: int
    name: str


@dataclass(frozen=True)
class ArticleView:
    """What a push shows of an article (loaded once per article by the sender)."""

    id: int
    title: str
    url: str | None
    lang: str | None
    source_name: str | None
    tags: tuple[TagView, ...]  # by name
    also_reported_by: tuple[str, ...] = ()  # the story's other outlets (bot/services/outlets.py)


@dataclass(frozen=True)
class FailureOutcome:
    """What `fail` decided: retry at a time, or parked."""

    parked: bool
    next_attempt_at: datetime | None


class DeliveryService:
    """Every method is one short transaction; sync, call it from a thread."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        lease: timedelta = DEFAULT_LEASE,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._max_attempts = settings.delivery_max_attempts
        self._lease = lease
        self._backoff_base = backoff_base
        self._now = clock

    # --- claiming ---------------------------------------------------------------------------
    def claim_due(
        self,
        limit: int,
        *,
        kinds: Collection[ChatKind] = TELEGRAM_CHAT_KINDS,
        exclude_chats: Collection[int] = (),
    ) -> list[ClaimedDelivery]:
        """Mark up to `limit` due deliveries `sending` (at most one per chat) and return them.

        Due: retries whose time has come first (oldest due first); the rest of the claim is shared
        between two lanes of pending deliveries, taken in turn:

        * the oldest lane (oldest first) guarantees every delivery progresses;
        * the newest lane (newest first) lets the readers of a small new story get it within a
          few claims instead of waiting behind a big fan-out stored before it (30 msg/s for the
          whole bot make a 10,000-chat fan-out last over 5 minutes). For each chat it meets, it
          takes that chat's oldest due delivery, so each chat gets its pushes in the order they
          were created, and a burst of stories for the same readers starts with its first.

        Two lanes rather than a round-robin over stories: every lookup here is bounded by the
        window (walks of the (status, next_attempt_at) index from either end, then one
        (chat_id, status) lookup per candidate of the newest lane), never by the number of
        pending deliveries, which matters because a claim is a write transaction (SQLite's one
        write lock) run several times a second while a fan-out sends. Stories between the
        oldest and the newest get the oldest lane's half of the rate until they are the newest.

        Chats in `exclude_chats` (already being sent to, or cooling down) are skipped.
        """
        if limit <= 0:
            return []
        now = self._now()
        window = limit * 4 + len(exclude_chats)
        # The newest lane takes at most half the claim; a smaller window keeps its per-chat check
        # short (when all of it waits behind older deliveries, the oldest lane fills the claim).
        newest_window = limit + len(exclude_chats)
        kind_values = list(kinds)

        def candidates(condition: Any, order: Any, rows: int = window) -> Any:
            return (
                select(Delivery.id, Delivery.chat_id)
                .join(Chat, Chat.id == Delivery.chat_id)
                # A chat that blocked or removed the bot gets no more send attempts; a story a digest
                # owns goes out inside that digest only (bot/services/digests.py).
                .where(condition, Chat.kind.in_(kind_values), Chat.active.is_(True), Delivery.digest_id.is_(None))
                .order_by(*order)
                .limit(rows)
                .with_for_update(skip_locked=True, of=Delivery)
            )

        retry_due = candidates(
            and_(Delivery.status == DeliveryStatus.RETRY, Delivery.next_attempt_at <= now),
            (Delivery.next_attempt_at, Delivery.id),
        )
        # Pending rows all have next_attempt_at NULL, so index order is id order (no sort), from
        # either end of the index.
        is_pending = Delivery.status == DeliveryStatus.PENDING
        oldest = candidates(is_pending, (Delivery.next_attempt_at, Delivery.id))
        newest = candidates(is_pending, (Delivery.next_attempt_at.desc(), Delivery.id.desc()), newest_window)
        excluded = set(exclude_chats)
        with self._db.session() as session:
            chosen = _take_in_turn([_ids_and_chats(session, retry_due)], limit, excluded)
            if len(chosen) < limit:
                room = limit - len(chosen)
                oldest_rows = _ids_and_chats(session, oldest)
                lanes = [oldest_rows]
                if len(oldest_rows) > room:  # else every due row fits in this claim: no lane to share
                    lanes.append(_first_due_of_their_chat(session, _ids_and_chats(session, newest), now))
                chosen += _take_in_turn(lanes, room, excluded)
            if not chosen:
                return []
            # Only rows still waiting: the newest lane's rows were looked up without a row lock, and
            # on PostgreSQL a row another claim took meanwhile fails this condition once it commits.
            claimed = list(session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(chosen),
                       Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRY)))
                .values(
                    status=DeliveryStatus.SENDING,
                    attempts=Delivery.attempts + 1,
                    next_attempt_at=now + self._lease,
                    updated_at=now,
                )
                .returning(Delivery.id)
            ))
            taken = set(claimed)
            return list(delivery_views(session, [delivery_id for delivery_id in chosen if delivery_id in taken]).values())

    def recover_orphans(self, *, kinds: Collection[ChatKind] = TELEGRAM_CHAT_KINDS, all_sending: bool = False) -> int:
        """Put `sending` rows whose claim lapsed (or all, at start-up) back to pending.

        At start-up no other sender for these chat kinds is alive (one bot process per token),
        so every `sending` row belongs to a process that died mid-send: it is sent again.
        """
        now = self._now()
        condition = Delivery.status == DeliveryStatus.SENDING
        if not all_sending:
            condition = and_(condition, Delivery.next_attempt_at <= now)
        chats = select(Chat.id).where(Chat.kind.in_(list(kinds)))
        with self._db.session() as session:
            result = session.execute(
                update(Delivery)
                .where(condition, Delivery.chat_id.in_(chats))
                .values(status=DeliveryStatus.PENDING, next_attempt_at=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            count = cast("CursorResult[Any]", result).rowcount or 0  # an UPDATE's result is a CursorResult
        if count:
            log.warning("re-queued %d deliveries left `sending` by a stopped sender", count)
        return count

    # --- outcomes ----------------------------------------------------------------------------
    def mark_sent(self, delivery_id: int, message_id: int, *, late: bool = False) -> bool:
        """Record a successful send; False if the row was no longer ours (already re-queued).

        late=True: a send recorded after the fact (the database was away, or the process restarted
        in between, see bot/services/pushes.py SentJournal): the row may have been put back to
        pending or retry meanwhile, and is marked sent all the same so it is not sent again.
        """
        now = self._now()
        statuses = [DeliveryStatus.SENDING]
        if late:
            statuses += [DeliveryStatus.PENDING, DeliveryStatus.RETRY, DeliveryStatus.PARKED]
        with self._db.session() as session:
            result = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status.in_(statuses))
                .values(
                    status=DeliveryStatus.SENT,
                    message_id=message_id,
                    sent_at=now,
                    next_attempt_at=None,
                    last_error=None,
                    updated_at=now,
                )
            )
            return bool(cast("CursorResult[Any]", result).rowcount)  # an UPDATE's result is a CursorResult

    def reschedule(self, delivery_id: int, seconds: float, reason: str) -> None:
        """Telegram said RetryAfter: try again then, without counting it as a failed attempt."""
        now = self._now()
        with self._db.session() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
                .values(
                    status=DeliveryStatus.RETRY,
                    attempts=case((Delivery.attempts > 0, Delivery.attempts - 1), else_=0),
                    next_attempt_at=now + timedelta(seconds=seconds),
                    last_error=reason[:MAX_ERROR_CHARS],
                    updated_at=now,
                )
            )

    def fail(self, delivery_id: int, error: str) -> FailureOutcome:
        """A failed attempt: retry after exponential backoff, or park after the last attempt."""
        now = self._now()
        with self._db.session() as session:
            delivery = session.get(Delivery, delivery_id)
            if delivery is None or delivery.status != DeliveryStatus.SENDING:
                return FailureOutcome(parked=False, next_attempt_at=None)
            delivery.last_error = error[:MAX_ERROR_CHARS]
            delivery.updated_at = now
            if delivery.attempts >= self._max_attempts:
                delivery.status = DeliveryStatus.PARKED
                delivery.next_attempt_at = None
                log.warning("delivery %s parked after %d attempts: %s", delivery_id, delivery.attempts, error)
                return FailureOutcome(parked=True, next_attempt_at=None)
            delivery.status = DeliveryStatus.RETRY
            delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts, self._backoff_base))
            return FailureOutcome(parked=False, next_attempt_at=delivery.next_attempt_at)

    def cancel(self, delivery_id: int, reason: str) -> None:
        """Drop a claimed delivery that must not be sent (the chat unfollowed its tags)."""
        now = self._now()
        with self._db.session() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
                .values(
                    status=DeliveryStatus.CANCELLED, last_error=reason[:MAX_ERROR_CHARS], next_attempt_at=None, updated_at=now
                )
            )

    def requeue_parked(
        self,
        delivery_ids: Sequence[int] | None = None,
        *,
        chat_id: int | None = None,
        since: datetime | None = None,
    ) -> int:
        """Give parked deliveries (some, those of one chat, those parked since a time, or all)
        a fresh set of attempts; how many."""
        now = self._now()
        condition = _parked_condition(chat_id, since)
        if delivery_ids is not None:
            condition = and_(condition, Delivery.id.in_(list(delivery_ids)))
        with self._db.session() as session:
            result = session.execute(
                update(Delivery)
                .where(condition)
                .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None, updated_at=now)
            )
            wake_push_loops_on_commit(session)  # due now: the bot sends them without waiting for its poll
            return cast("CursorResult[Any]", result).rowcount or 0  # an UPDATE's result is a CursorResult

    # --- reading -------------------------------------------------------------------------------
    def counts(self) -> dict[DeliveryStatus, int]:
        """Deliveries by status (every status present, zero included)."""
        with self._db.session() as session:
            rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        counts = {status: 0 for status in DeliveryStatus}
        for status, count in rows:
            counts[DeliveryStatus(status)] = count
        return counts

    def parked(
        self, limit: int = 20, *, chat_id: int | None = None, since: datetime | None = None
    ) -> list[ParkedDelivery]:
        """The most recently parked deliveries (of one chat, parked since a time), for admins."""
        with self._db.session() as session:
            rows = session.scalars(
                select(Delivery)
                .where(_parked_condition(chat_id, since))
                .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
                .limit(limit)
            ).all()
            return [
                ParkedDelivery(
                    id=row.id,
                    article_id=row.article_id,
                    chat_id=row.chat_id,
                    attempts=row.attempts,
                    last_error=row.last_error,
                    updated_at=row.updated_at,
                )
                for row in rows
            ]

    def article_view(self, article_id: int) -> ArticleView | None:
        """Title, link, language, source name and tags of an article."""
        with self._db.read_session() as session:
            article = session.get(Article, article_id)
            if article is None:
                return None
            source = session.get(Source, article.source_id) if article.source_id is not None else None
            return ArticleView(
                id=article.id,
                title=article.title,
                url=article.url,
                lang=article.lang,
                source_name=source.name if source is not None else None,
                tags=tuple(TagView(tag.id, tag.name) for tag in article.tags),
                also_reported_by=also_reported_by(session, article.id),
            )
