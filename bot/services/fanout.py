"""Fan-out: turn each newly stored article into one pending delivery per following chat.

Any process may store articles (the bot, `newsbot ingest`, feeds); whichever process runs the
fan-out claims articles whose `fanned_out_at` is NULL, oldest first: deliveries for every active
chat that follows one of the article's tags are inserted, FANOUT_CHUNK chats per transaction, and
the article is marked fanned out with the last chunk, so a crash leaves it to be claimed again and
completed (chats that already have a delivery of the story are skipped, never doubled). On
PostgreSQL a claim is exclusive while its transaction runs (row locks with SKIP LOCKED); on SQLite
the claim only reads, so that it does not hold the one write lock. Two processes fanning out the
same article both skip what the other inserted.
A chat that already has a delivery for the story (a near-duplicate re-publication) is skipped.
A private article (a user's own submission, `submitted_by_chat_id` set) is marked fanned out
with no deliveries and no summary prefetch; if a public source later brings the same article,
ingest makes it public and clears `fanned_out_at`, so it is pushed then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from bot.db import Database
from bot.db.models import Article, ArticleTag, Chat, Delivery, DeliveryStatus, Subscription
from bot.i18n import DEFAULT_LANG, normalize_lang
from bot.services.contracts import SummaryProvider
from bot.services.digests import route_new
from bot.services.follows import article_text, query_followers
from bot.services.schedule import snoozed_follows, snoozed_tag_followers, topics_for

log = logging.getLogger(__name__)

INSERT_CHUNK = 1000
FANOUT_CHUNK = 1000  # chats per fan-out transaction (see fan_out_next)
CHUNK_PAUSE_SECONDS = 0.005


@dataclass(frozen=True)
class FannedOut:
    """One article's fan-out: how many deliveries were created, in which languages."""

    article_id: int
    story_id: int
    deliveries: int
    langs: tuple[str, ...]
    private: bool = False  # a user's own submission: never pushed
    stale: bool = False  # published longer ago than PUSH_MAX_AGE_HOURS: stored, not pushed


@dataclass
class FanoutResult:
    """What one `run_once` did."""

    articles: list[FannedOut] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return sum(item.deliveries for item in self.articles)


class FanoutService:
    """Creates deliveries for articles not yet fanned out; sync, call it from a thread."""

    def __init__(self, db: Database, summaries: SummaryProvider | None = None, *,
                 max_age: timedelta | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._summaries = summaries
        self._max_age = max_age  # None: push articles however old their publication date
        self._now = clock

    def run_once(self, max_articles: int = 20) -> FanoutResult:
        """Fan out up to `max_articles` waiting articles, each in its own transaction."""
        result = FanoutResult()
        for _ in range(max_articles):
            item = self.fan_out_next()
            if item is None:
                break
            result.articles.append(item)
        # One hint for the whole round, so a burst's summaries are computed in batches.
        wanted = [(item.article_id, list(item.langs)) for item in result.articles if item.langs and not item.private]
        if self._summaries is not None and wanted:
            try:
                self._summaries.prefetch(wanted)
            except Exception:  # a prefetch hint must never stop the fan-out
                log.warning("summary prefetch failed for articles %s", [article_id for article_id, _ in wanted],
                            exc_info=True)
        return result

    def fan_out_next(self) -> FannedOut | None:
        """Claim the oldest waiting article and create its deliveries, FANOUT_CHUNK chats per transaction.

        The article is marked fanned out in the transaction of its last chunk. A crash in between
        leaves it unmarked: the next run claims it again and, as chats that already have a delivery
        of the story are skipped, creates only the missing ones.
        """
        # PostgreSQL: the claim is a row lock (SKIP LOCKED), held while the first chunk is inserted.
        # SQLite: every writing transaction holds the one write lock, so the claim only reads (the
        # 10,000 followers of an article took 0.2 s to find) and every chunk is its own short write;
        # two processes fanning out one article both skip the chats the other inserted.
        first_in_claim = not self._db.is_sqlite
        skipped: FannedOut | None = None
        created: set[int] = set()
        with self._db.session() if first_in_claim else self._db.read_session() as session:
            row = session.execute(
                select(Article.id, Article.story_id, Article.submitted_by_chat_id, Article.published_at)
                .where(Article.fanned_out_at.is_(None))
                .order_by(Article.created_at, Article.id)
                .limit(1)
                # FOR NO KEY UPDATE: exclusive among fan-outs, yet not blocked (skipped) by a
                # transaction that merely references the article (a foreign key's KEY SHARE lock).
                .with_for_update(skip_locked=True, key_share=True, of=Article)
            ).first()
            if row is None:
                return None
            article_id, story_id, private, published = row[0], row[1] or row[0], row[2] is not None, row[3]
            now = self._now()
            followers: list[tuple[int, str | None]] = []
            follow_ids: dict[int, int] = {}
            if private or self._is_stale(published, now):
                # Marked either way (an empty last chunk), so it is not reconsidered every round.
                skipped = FannedOut(article_id=article_id, story_id=story_id, deliveries=0, langs=(),
                                    private=private, stale=not private)
            else:
                followers = list(self._followers(session, article_id, story_id))
                # A chat whose every matching tag follow is snoozed skips the story, unless a running
                # query follow matches it (docs/delivery-modes.md: snoozes skip, they do not collect).
                snoozed = snoozed_tag_followers(session, article_id, [chat_id for chat_id, _ in followers], now)
                followers = [(chat_id, lang) for chat_id, lang in followers if chat_id not in snoozed]
                # Query follows (keywords, exclusions): one delivery per chat all the same, naming the follow.
                matched = self._query_followers(session, article_id, story_id, {chat_id for chat_id, _ in followers}, now)
                followers += [(chat_id, lang) for chat_id, (_, lang) in matched.items()]
                follow_ids = {chat_id: follow_id for chat_id, (follow_id, _) in matched.items()}
            chunks = [followers[start:start + FANOUT_CHUNK] for start in range(0, len(followers), FANOUT_CHUNK)] or [[]]
            if first_in_claim:
                created = self._insert_chunk(session, article_id, story_id, chunks.pop(0), follow_ids, now,
                                             last=len(chunks) == 0)
        # Later chunks in their own short transactions: on SQLite a transaction holds the one write
        # lock, so commands (/follow) and sends waited behind a 10,000-chat fan-out's 0.6 s.
        for number, chunk in enumerate(chunks):
            if first_in_claim or number:
                # The writer lock is not fair: without a pause this thread would take it again
                # before the threads waiting for it (a command's reply) wake up.
                time.sleep(CHUNK_PAUSE_SECONDS)
            with self._db.session() as session:
                created |= self._insert_chunk(session, article_id, story_id, chunk, follow_ids, now,
                                              last=number == len(chunks) - 1)
        if skipped is not None:
            if private:
                log.info("fan-out of article %s: private submission, no deliveries", article_id)
            else:  # a newly added feed's backlog is news from days ago: stored and searchable, not pushed
                log.info("fan-out of article %s: published %s, too old to push", article_id, published)
            return skipped
        langs = tuple(sorted({normalize_lang(lang) or DEFAULT_LANG for chat_id, lang in followers if chat_id in created}))
        log.info("fan-out of article %s: %d deliveries", article_id, len(created))
        return FannedOut(article_id=article_id, story_id=story_id, deliveries=len(created), langs=langs)

    def _insert_chunk(self, session: Session, article_id: int, story_id: int, chunk: list[tuple[int, str | None]],
                      follow_ids: dict[int, int], now: datetime, *, last: bool) -> set[int]:
        """One chunk of chats' deliveries; the last chunk also marks the article fanned out."""
        chat_ids = [chat_id for chat_id, _ in chunk]
        # Digest mode, quiet hours, over the cap: the story joins a digest in this same transaction;
        # a follow made in a forum topic sends it to that topic.
        created = self._insert(session, article_id, story_id, chat_ids, follow_ids, route_new(session, chat_ids, now),
                               topics_for(session, article_id, chat_ids, follow_ids)) if chat_ids else set()
        if last:
            self._mark_fanned_out(session, article_id, now)
        return created

    @staticmethod
    def _mark_fanned_out(session: Session, article_id: int, now: datetime) -> None:
        session.execute(update(Article).where(Article.id == article_id).values(fanned_out_at=now))

    def _is_stale(self, published: datetime | None, now: datetime) -> bool:
        if self._max_age is None or published is None:
            return False
        if published.tzinfo is None:  # SQLite gives naive datetimes back; they are stored in UTC
            published = published.replace(tzinfo=UTC)
        return now - published > self._max_age

    @staticmethod
    def _followers(session: Session, article_id: int, story_id: int) -> Sequence[tuple[int, str | None]]:
        """Active chats following any tag of the article, without a delivery of this story yet."""
        already = exists().where(Delivery.chat_id == Chat.id, Delivery.story_id == story_id)
        query = (
            select(Chat.id, Chat.lang)
            .join(Subscription, Subscription.chat_id == Chat.id)
            .join(ArticleTag, ArticleTag.tag_id == Subscription.tag_id)
            .where(ArticleTag.article_id == article_id, Chat.active.is_(True), ~already)
            .distinct()
            .order_by(Chat.id)
        )
        return [(chat_id, lang) for chat_id, lang in session.execute(query).all()]

    @staticmethod
    def _query_followers(session: Session, article_id: int, story_id: int,
                         taken: set[int], now: datetime) -> dict[int, tuple[int, str | None]]:
        """Chats whose stored query follows match the article (see services/follows.py), without a
        delivery of this story yet and not already among the plain tag followers; snoozed follows match nothing."""
        article = session.scalars(select(Article).options(selectinload(Article.tags)).where(Article.id == article_id)).one()
        matched = query_followers(session, article, article_text(article), taken, snoozed_follows(session, now))
        if matched:
            delivered = set(session.scalars(select(Delivery.chat_id).where(
                Delivery.story_id == story_id, Delivery.chat_id.in_(sorted(matched)))))
            matched = {chat_id: value for chat_id, value in matched.items() if chat_id not in delivered}
        return matched

    def _insert(self, session: Session, article_id: int, story_id: int, chat_ids: list[int],
                follow_ids: dict[int, int] | None = None, digest_ids: dict[int, int] | None = None,
                thread_ids: dict[int, int] | None = None) -> set[int]:
        """Insert pending deliveries; a concurrent fan-out of the same story wins silently.

        Returns the chats whose delivery this call created (not those another fan-out had).
        """
        created: set[int] = set()
        if not chat_ids:
            return created
        now = datetime.now(UTC)
        insert = postgresql.insert if self._db.engine.dialect.name == "postgresql" else sqlite.insert
        for start in range(0, len(chat_ids), INSERT_CHUNK):
            rows = [
                {
                    "article_id": article_id,
                    "story_id": story_id,
                    "chat_id": chat_id,
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "follow_id": (follow_ids or {}).get(chat_id),
                    "digest_id": (digest_ids or {}).get(chat_id),
                    "message_thread_id": (thread_ids or {}).get(chat_id),
                }
                for chat_id in chat_ids[start : start + INSERT_CHUNK]
            ]
            statement = insert(Delivery).on_conflict_do_nothing(index_elements=["chat_id", "story_id"])
            created.update(session.scalars(statement.returning(Delivery.chat_id), rows))
        return created
