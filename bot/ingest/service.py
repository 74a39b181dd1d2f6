"""The one ingest call every path ends in: validate, detect language, de-duplicate, store."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, Source, Tag
from bot.db.notify import wake_push_loops_on_commit
from bot.ingest.fingerprint import clean_text, fingerprint, hamming, simhash, words
from bot.ingest.rawtext import word_count
from bot.ingest.stories import StoryLinker, StoryText, article_time, request_story_edit, story_text
from bot.ingest.urls import InvalidUrl, canonical_url
from bot.tags import TagError, TagService

log = logging.getLogger(__name__)

MIN_BODY_CHARS = 80
MIN_BODY_WORDS = 12
MAX_BODY_CHARS = 200_000
MAX_TITLE_CHARS = 300
MAX_GUID_CHARS = 1024
# Pages stuffing dozens of keywords should not subscribe their article to every topic.
MAX_TAGS_PER_ARTICLE = 20
# Near-duplicates are looked for among this many recent articles, this far back.
NEAR_DUPLICATE_WINDOW = timedelta(days=14)
NEAR_DUPLICATE_CANDIDATES = 5000
_LANG = re.compile(r"^[a-z]{2}$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


@dataclass
class ArticleInput:
    """An article as a parser produced it, before validation and de-duplication."""

    body: str
    title: str | None = None
    url: str | None = None
    guid: str | None = None
    tags: list[str] = field(default_factory=list)
    lang: str | None = None
    published_at: datetime | None = None
    source_id: int | None = None
    # The chat a Telegram user submitted this from (/summary of a forwarded post or of their
    # own URL): the article stays visible to that chat only and is never pushed. None = public
    # (admins, feeds, the chat's own channel, the CLI).
    submitted_by_chat_id: int | None = None


@dataclass
class IngestResult:
    """What `ingest` stored, or the stored article the input duplicates."""

    article_id: int
    created: bool
    duplicate_of: int | None
    story_id: int
    title: str
    tags: list[str]
    lang: str | None
    url: str | None
    body: str
    # Who may see it: None when public, else the submitting chat (see ArticleInput).
    submitted_by_chat_id: int | None = None

    @property
    def private(self) -> bool:
        return self.submitted_by_chat_id is not None


class IngestError(Exception):
    """The input cannot be stored; the message says why in one line."""


@dataclass
class _Prepared:
    body: str
    title: str
    url: str | None
    guid: str | None
    lang: str | None
    published_at: datetime | None
    fingerprint: str
    simhash: int
    tag_names: list[str]
    submitted_by_chat_id: int | None
    story: StoryText


class IngestService:
    """Stores articles once, merges tags of duplicates, links near-duplicates as one story."""

    def __init__(self, db: Database, settings: Settings, tags: TagService, stories: StoryLinker | None = None) -> None:
        self._db = db
        self._settings = settings
        self._tags = tags
        self._stories = stories or StoryLinker(timedelta(days=settings.story_window_days))

    def ingest(self, item: ArticleInput) -> IngestResult:
        """Store `item` in one transaction, or report the article it duplicates."""
        prepared = self._prepare(item)
        self._tags.ensure_aliases_loaded()
        for _attempt in range(3):
            try:
                with self._db.session() as session:
                    return self._store(session, item, prepared)
            except IntegrityError:
                # Another process stored the same URL, guid or text between our check and
                # insert; the next attempt finds it and reports a duplicate.
                log.debug("unique conflict while ingesting; retrying", exc_info=True)
        raise IngestError("could not store the article: it kept conflicting with concurrent writes")

    # --- validation ---------------------------------------------------------------------
    def _prepare(self, item: ArticleInput) -> _Prepared:
        body = clean_text(item.body or "")
        if len(body) > MAX_BODY_CHARS:
            raise IngestError(
                f"article body is too long ({len(body)} characters, at most {MAX_BODY_CHARS})"
            )
        tokens = words(body)
        count = word_count(body)  # Chinese and Japanese have no spaces between words
        if len(body) < MIN_BODY_CHARS or count < MIN_BODY_WORDS:
            what = "empty" if not body else f"too short ({count} words)"
            raise IngestError(f"article text is {what}; nothing to store")
        url = None
        if item.url:
            try:
                url = canonical_url(item.url)
            except InvalidUrl as error:
                raise IngestError(str(error)) from None
        guid = item.guid.strip()[:MAX_GUID_CHARS] if item.guid and item.guid.strip() else None
        title = clean_text(item.title or "").replace("\n", " ")
        if not title:
            title = derive_title(body)
        if len(title) > MAX_TITLE_CHARS:
            title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
        lang = (item.lang or "").strip().lower()[:2] or None
        if lang is not None and not _LANG.match(lang):
            lang = None
        if lang is None:
            from summarizer.language import detect_language

            lang = detect_language(f"{title}\n{body}")
        published = item.published_at
        if published is not None and published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        return _Prepared(
            body=body,
            title=title,
            url=url,
            guid=guid,
            lang=lang,
            published_at=published,
            fingerprint=fingerprint(body, tokens),
            simhash=simhash(body, tokens),
            tag_names=list(item.tags),
            submitted_by_chat_id=item.submitted_by_chat_id,
            story=story_text(title, body),  # the MinHash work happens outside the transaction
        )

    # --- storage ------------------------------------------------------------------------
    def _store(self, session: Session, item: ArticleInput, prepared: _Prepared) -> IngestResult:
        tag_names = list(prepared.tag_names)
        source = session.get(Source, item.source_id) if item.source_id is not None else None
        if item.source_id is not None and source is None:
            raise IngestError(f"source {item.source_id} does not exist")
        if source is not None:
            tag_names.extend(source.default_tags or [])
        tags = self._tags_for(session, tag_names)

        existing = self._find_duplicate(session, prepared)
        if existing is not None:
            submitter = prepared.submitted_by_chat_id
            if submitter is None and existing.submitted_by_chat_id is not None:
                # A public source has the same article: it is public now, and pushed now
                # (it was marked fanned out without deliveries while private).
                existing.submitted_by_chat_id = None
                existing.fanned_out_at = None
                wake_push_loops_on_commit(session)
                if existing.story_id not in (None, existing.id):
                    request_story_edit(session, existing.story_id, datetime.now(UTC))  # a new outlet to name
            elif submitter is not None and existing.submitted_by_chat_id != submitter:
                # A user's submission never changes a public article or another chat's
                # private one (no tags added to what others see); it just gets that article.
                return _result(existing, created=False, duplicate_of=existing.id)
            known = {tag.id for tag in existing.tags}
            existing.tags.extend(tag for tag in tags if tag.id not in known)
            session.flush()
            return _result(existing, created=False, duplicate_of=existing.id)

        now = datetime.now(UTC)
        at = article_time(prepared.published_at, now)
        match = self._stories.find(session, prepared.story, at, prepared.submitted_by_chat_id)
        head = match.story_id if match is not None else None
        if head is None:
            head = self._find_story_head(session, prepared.simhash, prepared.submitted_by_chat_id)
            if head is not None and not self._stories.story_open(session, head, at):
                head = None  # the SimHash twin's story is older than the story window
        article = Article(
            source_id=source.id if source is not None else None,
            url=prepared.url,
            guid=prepared.guid,
            title=prepared.title,
            body=prepared.body,
            lang=prepared.lang,
            published_at=prepared.published_at,
            fingerprint=prepared.fingerprint,
            simhash=prepared.simhash,
            story_id=head,
            tags=tags,
            submitted_by_chat_id=prepared.submitted_by_chat_id,
        )
        session.add(article)
        session.flush()
        if article.story_id is None:
            article.story_id = article.id
            session.flush()
        elif article.submitted_by_chat_id is None:
            # Pushes of the story already out get "Also reported by" in their footer (bot/services/stories.py).
            request_story_edit(session, article.story_id, now)
        if article.submitted_by_chat_id is None:  # a private article is never pushed: no hurry
            wake_push_loops_on_commit(session)
        self._stories.index(session, article.id, prepared.story, at)
        return _result(article, created=True, duplicate_of=None)

    def _tags_for(self, session: Session, names: list[str]) -> list[Tag]:
        tags: dict[int, Tag] = {}
        for name in names:
            if len(tags) >= MAX_TAGS_PER_ARTICLE:
                log.debug("article has more than %d tags; ignoring the rest", MAX_TAGS_PER_ARTICLE)
                break
            try:
                tag = self._tags.get_or_create(session, name)
            except TagError as error:
                log.debug("skipping tag: %s", error)
                continue
            tags.setdefault(tag.id, tag)
        return list(tags.values())

    @staticmethod
    def _find_duplicate(session: Session, prepared: _Prepared) -> Article | None:
        conditions = [Article.fingerprint == prepared.fingerprint]
        if prepared.url:
            conditions.append(Article.url == prepared.url)
        if prepared.guid:
            conditions.append(Article.guid == prepared.guid)
        return session.scalars(
            select(Article).where(or_(*conditions)).order_by(Article.id).limit(1)
        ).first()

    def _find_story_head(self, session: Session, value: int, submitter: int | None = None) -> int | None:
        """story_id of the closest recent article within the near-duplicate distance.

        Only articles the submitter can see are candidates: a public article joining a private
        one's story would be hidden from /latest (which lists story heads), so a user could
        otherwise bury a story by submitting a near-copy before the feeds bring it.
        """
        limit = self._settings.near_duplicate_distance
        since = datetime.now(UTC) - min(NEAR_DUPLICATE_WINDOW, self._stories.window)
        visible: ColumnElement[bool] = Article.submitted_by_chat_id.is_(None)
        if submitter is not None:
            visible = or_(visible, Article.submitted_by_chat_id == submitter)
        rows = session.execute(
            select(Article.id, Article.story_id, Article.simhash)
            .where(Article.simhash.is_not(None), Article.created_at >= since, visible)
            .order_by(Article.id.desc())
            .limit(NEAR_DUPLICATE_CANDIDATES)
        ).all()
        best: tuple[int, int] | None = None
        for article_id, story_id, other in rows:
            assert other is not None  # the query leaves NULL simhashes out
            distance = hamming(value, other)
            if distance <= limit and (best is None or distance < best[0]):
                best = (distance, story_id or article_id)
        return best[1] if best else None


def derive_title(body: str) -> str:
    """A title from the first line of the body, cut at its first sentence when long."""
    first = body.split("\n", 1)[0].strip()
    if len(first) > 120:
        sentence = _SENTENCE_END.split(first, 1)[0]
        first = sentence if len(sentence) <= MAX_TITLE_CHARS else first
    return first


def _result(article: Article, *, created: bool, duplicate_of: int | None) -> IngestResult:
    return IngestResult(
        article_id=article.id,
        created=created,
        duplicate_of=duplicate_of,
        story_id=article.story_id or article.id,
        title=article.title,
        tags=[tag.name for tag in sorted(article.tags, key=lambda tag: tag.name.casefold())],
        lang=article.lang,
        url=article.url,
        body=article.body,
        submitted_by_chat_id=article.submitted_by_chat_id,
    )
