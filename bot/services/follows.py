"""Follows as queries: parse with the tag table, store, list, remove, suggest, and match articles.

A plain tag follow is a `Subscription` row (SubscriptionService, the fan-out's indexed join);
anything with keywords, required words or exclusions is a `Follow` row holding the parsed query.
Both count against MAX_FOLLOWS_PER_CHAT. Matching (fan-out, /preview, backfill offers, the
7-day counts) is one function, `FollowQuery.matches`, over `ArticleText`.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, or_, select
from sqlalchemy.orm import Session, selectinload

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, ArticleTag, Chat, Follow, Subscription, Tag, TagAlias
from bot.follows.matcher import ArticleText, words
from bot.follows.query import Dropped, FollowQuery, ParsedQuery, QueryLimits, Term, parse_query
from bot.services.subscriptions import SubscriptionService, TagRef
from bot.tags import TagService, normalize_tag

SUGGESTIONS = 3
SUGGEST_MIN_CHARS = 4  # shorter words are too close to too many tags ("AS", "RI")
SUGGEST_CUTOFF = 0.8  # difflib ratio: "rusai" ~ "rusia" is 0.8, "rusai" ~ "usa" 0.75
SCAN_BATCH = 200
WORDS_PER_QUERY = 5000  # article words per candidate query (SQLite allows 32,766 parameters)
PREVIEW_SCAN = 3000  # newest articles /preview and backfill offers look through
COUNT_DAYS = 7
COUNT_SCAN = 2000  # most stories of the last week /following matches query follows against


@dataclass(frozen=True)
class FollowRef:
    """One follow of a chat as listed: a plain tag (`follow_id` None) or a stored query."""

    query: FollowQuery
    follow_id: int | None = None

    @property
    def text(self) -> str:
        return self.query.text


@dataclass
class FollowOutcome:
    added: list[FollowQuery] = field(default_factory=list)
    already: list[FollowQuery] = field(default_factory=list)
    over_limit: list[FollowQuery] = field(default_factory=list)


@dataclass
class UnfollowOutcome:
    removed: list[FollowQuery] = field(default_factory=list)
    not_following: list[FollowQuery] = field(default_factory=list)


def tag_query(tag: TagRef) -> FollowQuery:
    """The query of a plain tag follow."""
    return FollowQuery(Term(words(tag.name), tag.name, tag.id))


def article_text(article: Article) -> ArticleText:
    return ArticleText.of(article.title, article.body, [tag.name for tag in article.tags], [tag.id for tag in article.tags])


def query_followers(session: Session, article: Article, text: ArticleText,
                    exclude_chats: Collection[int] = (), skip_follows: Collection[int] = ()) -> dict[int, tuple[int, str | None]]:
    """Active chats with a stored query follow matching the article: chat -> (follow id, chat language).

    Candidates come from the indexes (the anchor tag, or the anchor keyword's first word among the
    article's words); the query decides in Python. A chat's first matching follow (lowest id) is named;
    follows in `skip_follows` (snoozed) match nothing.
    """
    tokens = sorted(text.tokens)
    # In chunks: a very long article has more distinct words than SQLite takes parameters.
    chunks = [tokens[start:start + WORDS_PER_QUERY] for start in range(0, len(tokens), WORDS_PER_QUERY)] or [[]]
    candidates: dict[int, Any] = {}
    for index, chunk in enumerate(chunks):
        conditions = [Follow.word.in_(chunk)] if chunk else []
        if index == 0 and text.tag_ids:
            conditions.append(Follow.tag_id.in_(sorted(text.tag_ids)))
        if conditions:
            for row in session.execute(select(Follow.id, Follow.chat_id, Follow.query, Chat.lang)
                                       .join(Chat, Chat.id == Follow.chat_id)
                                       .where(or_(*conditions), Chat.active.is_(True))):
                candidates[row[0]] = row
    rows = [candidates[follow_id] for follow_id in sorted(candidates)]
    found: dict[int, tuple[int, str | None]] = {}
    for follow_id, chat_id, query, lang in rows:
        if chat_id in found or chat_id in exclude_chats or follow_id in skip_follows:
            continue
        if FollowQuery.from_json(query).matches(text):
            found[chat_id] = (follow_id, lang)
    return found


class FollowService:
    """The reader's follows: /follow, /unfollow, /following, /preview and typo suggestions."""

    def __init__(self, db: Database, settings: Settings, tags: TagService, subscriptions: SubscriptionService) -> None:
        self._db = db
        self._settings = settings
        self._tags = tags
        self._subscriptions = subscriptions

    @property
    def limits(self) -> QueryLimits:
        return QueryLimits(max_chars=self._settings.max_follow_query_chars,
                           max_terms=self._settings.max_keywords_per_follow)

    @property
    def max_follows(self) -> int:
        return self._settings.max_follows_per_chat

    # --- parsing --------------------------------------------------------------------------
    def parse(self, text: str) -> ParsedQuery:
        """The query, with tags and aliases recognised from the tag table."""
        return parse_query(text, self._lookup, self.limits)

    def _lookup(self, keys: Collection[str]) -> Mapping[str, TagRef]:
        with self._db.read_session() as session:
            self._tags.ensure_aliases_loaded()
            found = {key: TagRef(id_, name) for key, id_, name in
                     session.execute(select(Tag.key, Tag.id, Tag.name).where(Tag.key.in_(sorted(keys))))}
            for key, id_, name in session.execute(
                select(TagAlias.key, Tag.id, Tag.name).join(Tag, Tag.id == TagAlias.tag_id).where(TagAlias.key.in_(sorted(keys)))
            ):
                found.setdefault(key, TagRef(id_, name))
        return found

    def suggest(self, word: str) -> list[TagRef]:
        """Known tags close to a word that is none ("Rusai" -> Rusia): by spelling (names and
        aliases), then by how many stored articles carry them."""
        key = normalize_tag(word)
        if len(key) < SUGGEST_MIN_CHARS:
            return []
        with self._db.read_session() as session:
            near = (len(key) - 2, len(key) + 2)  # edit distance <= 2 needs length within 2
            names: dict[str, int] = dict(session.execute(
                select(Tag.key, Tag.id).where(func.length(Tag.key).between(*near))).all())
            for alias_key, tag_id in session.execute(
                    select(TagAlias.key, TagAlias.tag_id).where(func.length(TagAlias.key).between(*near))):
                names.setdefault(alias_key, tag_id)
            close = difflib.get_close_matches(key, list(names), n=20, cutoff=SUGGEST_CUTOFF)
            ratio: dict[int, float] = {}
            for name in close:
                tag_id = names[name]
                ratio[tag_id] = max(ratio.get(tag_id, 0.0), difflib.SequenceMatcher(None, key, name).ratio())
            if not ratio:
                return []
            counts = dict(session.execute(
                select(ArticleTag.tag_id, func.count()).where(ArticleTag.tag_id.in_(ratio)).group_by(ArticleTag.tag_id)).all())
            tags = {tag.id: tag for tag in session.scalars(select(Tag).where(Tag.id.in_(ratio)))}
            ranked = sorted(ratio, key=lambda tag_id: (-round(ratio[tag_id], 2), -counts.get(tag_id, 0), tags[tag_id].name))
            return [TagRef(tag_id, tags[tag_id].name) for tag_id in ranked[:SUGGESTIONS]]

    def tag(self, tag_id: int) -> TagRef | None:
        with self._db.read_session() as session:
            tag = session.get(Tag, tag_id)
            return TagRef(tag.id, tag.name) if tag is not None else None

    # --- changes ----------------------------------------------------------------------------
    def follow(self, chat_id: int, queries: Sequence[FollowQuery]) -> FollowOutcome:
        """Store each query (the chat row must exist); over MAX_FOLLOWS_PER_CHAT they are refused."""
        outcome = FollowOutcome()
        with self._db.session() as session:
            tags = set(session.scalars(select(Subscription.tag_id).where(Subscription.chat_id == chat_id)))
            keys = set(session.scalars(select(Follow.key).where(Follow.chat_id == chat_id)))
            for query in queries:
                anchor_tag = query.anchor.tag_id
                if (query.is_plain_tag and anchor_tag in tags) or (not query.is_plain_tag and query.key in keys):
                    outcome.already.append(query)
                    continue
                if len(tags) + len(keys) >= self.max_follows:
                    outcome.over_limit.append(query)
                    continue
                if query.is_plain_tag and anchor_tag is not None:
                    session.add(Subscription(chat_id=chat_id, tag_id=anchor_tag))
                    tags.add(anchor_tag)
                else:
                    session.add(Follow(chat_id=chat_id, key=query.key, text=query.text, query=query.to_json(),
                                       tag_id=anchor_tag, word=query.candidate_word))
                    keys.add(query.key)
                outcome.added.append(query)
        return outcome

    def unfollow(self, chat_id: int, queries: Sequence[FollowQuery]) -> UnfollowOutcome:
        outcome = UnfollowOutcome()
        with self._db.session() as session:
            for query in queries:
                if query.is_plain_tag:
                    statement = delete(Subscription).where(Subscription.chat_id == chat_id,
                                                           Subscription.tag_id == query.anchor.tag_id)
                else:
                    statement = delete(Follow).where(Follow.chat_id == chat_id, Follow.key == query.key)
                removed = cast(CursorResult[Any], session.execute(statement)).rowcount
                (outcome.removed if removed else outcome.not_following).append(query)
        return outcome

    def remove(self, chat_id: int, follow_id: int) -> str | None:
        """Remove a stored query follow by id (its button); its text, or None when it is gone."""
        with self._db.session() as session:
            follow = session.scalars(select(Follow).where(Follow.id == follow_id, Follow.chat_id == chat_id)).one_or_none()
            if follow is None:
                return None
            session.delete(follow)
            return follow.text

    # --- reading ----------------------------------------------------------------------------
    def of_chat(self, chat_id: int) -> list[FollowRef]:
        """The chat's follows: plain tags by name, then queries in the order they were added."""
        refs = [FollowRef(tag_query(tag)) for tag in self._subscriptions.following(chat_id)]
        with self._db.read_session() as session:
            for follow_id, query in session.execute(
                    select(Follow.id, Follow.query).where(Follow.chat_id == chat_id).order_by(Follow.id)):
                refs.append(FollowRef(FollowQuery.from_json(query), follow_id))
        return refs

    def count(self, chat_id: int) -> int:
        with self._db.read_session() as session:
            follows = session.scalar(select(func.count()).select_from(Follow).where(Follow.chat_id == chat_id)) or 0
        return self._subscriptions.count(chat_id) + follows

    def follow_text(self, follow_id: int) -> str | None:
        with self._db.read_session() as session:
            return session.scalar(select(Follow.text).where(Follow.id == follow_id))

    def _public_articles(self, session: Session, *, since: datetime | None, scan: int,
                         tag_ids: Collection[int] | None = None) -> Iterator[Article]:
        """Newest public story heads first (what pushes are made of), in batches."""
        query = (select(Article).options(selectinload(Article.tags))
                 .where(Article.submitted_by_chat_id.is_(None), or_(Article.story_id.is_(None), Article.story_id == Article.id)))
        if since is not None:
            query = query.where(Article.created_at >= since)
        if tag_ids is not None:
            query = query.where(Article.id.in_(select(ArticleTag.article_id).where(ArticleTag.tag_id.in_(sorted(tag_ids)))))
        query = query.order_by(Article.created_at.desc(), Article.id.desc())
        for offset in range(0, scan, SCAN_BATCH):
            batch = session.scalars(query.offset(offset).limit(min(SCAN_BATCH, scan - offset))).all()
            yield from batch
            if len(batch) < SCAN_BATCH:
                return

    def preview(self, queries: Sequence[FollowQuery], limit: int) -> list[int]:
        """Ids of the newest stored public articles any of the queries would have pushed."""
        if not queries:
            return []
        # Only tag-anchored queries: the tag index narrows the scan to the tags' articles.
        tag_ids = {q.anchor.tag_id for q in queries if q.anchor.tag_id is not None}
        narrowed = tag_ids if len(tag_ids) == len(queries) else None
        found: list[int] = []
        with self._db.read_session() as session:
            for article in self._public_articles(session, since=None, scan=PREVIEW_SCAN, tag_ids=narrowed):
                text = article_text(article)
                if any(query.matches(text) for query in queries):
                    found.append(article.id)
                    if len(found) >= limit:
                        break
        return found

    def week_counts(self, refs: Iterable[FollowRef]) -> dict[str, int]:
        """How many public stories of the last 7 days each follow would have pushed, by query key.

        Plain tags are counted in SQL; query follows by the matcher over the week's newest
        COUNT_SCAN stories (only when the chat has any).
        """
        refs = list(refs)
        counts = {ref.query.key: 0 for ref in refs}
        since = datetime.now(UTC) - timedelta(days=COUNT_DAYS)
        plain = {ref.query.anchor.tag_id: ref.query.key for ref in refs if ref.follow_id is None}
        queries = [ref for ref in refs if ref.follow_id is not None]
        with self._db.read_session() as session:
            if plain:
                rows = session.execute(
                    select(ArticleTag.tag_id, func.count())
                    .join(Article, Article.id == ArticleTag.article_id)
                    .where(ArticleTag.tag_id.in_(sorted(tag_id for tag_id in plain if tag_id is not None)),
                           Article.created_at >= since, Article.submitted_by_chat_id.is_(None),
                           or_(Article.story_id.is_(None), Article.story_id == Article.id))
                    .group_by(ArticleTag.tag_id))
                for tag_id, count in rows:
                    counts[plain[tag_id]] = int(count)
            if queries:
                for article in self._public_articles(session, since=since, scan=COUNT_SCAN):
                    text = article_text(article)
                    for ref in queries:
                        if ref.query.matches(text):
                            counts[ref.query.key] += 1
        return counts


__all__ = ["Dropped", "FollowOutcome", "FollowQuery", "FollowRef", "FollowService", "ParsedQuery", "UnfollowOutcome",
           "query_followers", "tag_query"]
