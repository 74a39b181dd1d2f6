"""RSS/Atom feeds: registration, polling with conditional GET and backoff, and the bot's poller."""

from __future__ import annotations

import asyncio
import calendar
import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, Source, SourceKind, SourceStatus
from bot.ingest.fetch import FEED_TYPES, HTML_TYPES, Fetcher, FetchError
from bot.ingest.fingerprint import clean_text
from bot.ingest.service import ArticleInput, IngestError, IngestService
from bot.ingest.urls import InvalidUrl, canonical_url
from bot.tags import MAX_TAG_LENGTH, TagService, clean_tag_name, normalize_tag

log = logging.getLogger(__name__)

# An entry body shorter than this is a teaser: the full page is fetched.
TEASER_WORDS = 80
MAX_ENTRIES_PER_POLL = 50
MAX_ERROR_CHARS = 500
_TEASER_END = re.compile(r"(\[?(…|\.\.\.)\]?|read more|baca selengkapnya|selengkapnya|continue reading)\W*$", re.IGNORECASE)


class FeedError(Exception):
    """A feed cannot be added, found or read; the message says why in one line."""


@dataclass
class FeedPollResult:
    """What one poll of one feed did."""

    source_id: int
    url: str
    new: int = 0
    duplicates: int = 0
    skipped: int = 0  # entries that could not be stored (each logged with its reason)
    not_modified: bool = False
    error: str | None = None
    status: SourceStatus = SourceStatus.ACTIVE
    entry_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def html_fragment_text(fragment: str) -> str:
    """Plain text of an HTML fragment (feed content), one block per paragraph."""
    if "<" not in fragment:
        return clean_text(html.unescape(fragment))
    import lxml.html
    from lxml import etree

    from bot.ingest.html import html_to_lines

    try:
        tree = lxml.html.document_fromstring(f"<html><body>{fragment}</body></html>")
    except (etree.ParserError, ValueError):
        return ""
    lines = [line.strip() for line in html_to_lines(tree).split("\n")]
    return clean_text("\n\n".join(line for line in lines if line))


def _entry_time(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, TypeError):
                continue
    return None


def _entry_tags(entry: Any) -> list[str]:
    tags: list[str] = []
    for item in entry.get("tags") or []:
        term = (item.get("label") or item.get("term") or "").strip()
        # Some feeds put "Politics/Asia" hierarchies in one category.
        tags.extend(part.strip() for part in re.split(r"\s*[/>»]\s*", term) if part.strip())
    return tags


def _entry_body(entry: Any) -> str:
    contents = [item.get("value", "") for item in entry.get("content") or [] if item.get("value")]
    best = max(contents, key=len) if contents else entry.get("summary", "") or ""
    return html_fragment_text(best)


class FeedService:
    """Registers feeds and polls them; one instance per process, shared by CLI, bot and poller."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        ingest: IngestService | None = None,
        fetcher: Fetcher | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._ingest = ingest or IngestService(db, settings, TagService(db, settings))
        self._fetcher = fetcher
        self._own_fetcher = fetcher is None

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            self._fetcher = Fetcher(self._settings)
        return self._fetcher

    def close(self) -> None:
        if self._own_fetcher and self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    # --- registry ------------------------------------------------------------------------
    def add(self, url: str, tags: Sequence[str] = ()) -> Source:
        """Register a feed (or update an existing one's tags and re-activate it)."""
        try:
            canonical = canonical_url(url)
        except InvalidUrl as error:
            raise FeedError(str(error)) from None
        names: list[str] = []
        for tag in tags:
            if not normalize_tag(tag):
                raise FeedError(f"invalid tag {tag[:80]!r}: use 1-{MAX_TAG_LENGTH} letters, digits and spaces")
            name = clean_tag_name(tag)
            if normalize_tag(name) not in {normalize_tag(known) for known in names}:
                names.append(name)
        with self._db.session() as session:
            source = session.scalars(select(Source).where(Source.url == canonical)).one_or_none()
            if source is None:
                source = Source(
                    kind=SourceKind.FEED,
                    name=urlsplit(canonical).hostname or canonical,
                    url=canonical,
                    default_tags=names,
                    status=SourceStatus.ACTIVE,
                    failure_count=0,
                )
                session.add(source)
            else:
                if source.kind is not SourceKind.FEED:
                    raise FeedError(f"{canonical} is already registered as a {source.kind.value} source")
                merged = list(source.default_tags or [])
                keys = {normalize_tag(name) for name in merged}
                merged.extend(name for name in names if normalize_tag(name) not in keys)
                source.default_tags = merged
                source.status = SourceStatus.ACTIVE
                source.next_poll_at = None
            session.flush()
            return source

    def list(self) -> list[Source]:
        """All registered feeds, oldest first."""
        with self._db.session() as session:
            return list(session.scalars(select(Source).where(Source.kind == SourceKind.FEED).order_by(Source.id)))

    def get(self, target: str | int) -> Source | None:
        """A feed by id or URL."""
        with self._db.session() as session:
            return self._find(session, target)

    @staticmethod
    def _find(session: Any, target: str | int) -> Source | None:
        text = str(target).strip().lstrip("#")
        query = select(Source).where(Source.kind == SourceKind.FEED)
        if text.isdigit():
            return session.scalars(query.where(Source.id == int(text))).one_or_none()
        try:
            url = canonical_url(text)
        except InvalidUrl:
            return None
        return session.scalars(query.where(or_(Source.url == url, Source.url == text))).one_or_none()

    def remove(self, target: str | int) -> bool:
        """Forget a feed (by id or URL); its stored articles stay. False when there is none."""
        with self._db.session() as session:
            source = self._find(session, target)
            if source is None:
                return False
            session.delete(source)
            return True

    # --- polling -------------------------------------------------------------------------
    def poll_due(self, now: datetime | None = None) -> list[FeedPollResult]:
        """Poll every feed whose next poll time has come (failing ones too, on their backoff)."""
        now = now or datetime.now(UTC)
        with self._db.session() as session:
            ids = list(
                session.scalars(
                    select(Source.id)
                    .where(
                        Source.kind == SourceKind.FEED,
                        Source.status != SourceStatus.DISABLED,
                        or_(Source.next_poll_at.is_(None), Source.next_poll_at <= now),
                    )
                    .order_by(Source.next_poll_at.is_(None).desc(), Source.next_poll_at, Source.id)
                )
            )
        return [self.poll_source(source_id) for source_id in ids]

    def poll_all(self) -> list[FeedPollResult]:
        """Poll every feed that is not disabled once, ignoring schedules (`newsbot feeds poll`)."""
        with self._db.session() as session:
            ids = list(
                session.scalars(
                    select(Source.id)
                    .where(Source.kind == SourceKind.FEED, Source.status != SourceStatus.DISABLED)
                    .order_by(Source.id)
                )
            )
        return [self.poll_source(source_id) for source_id in ids]

    def poll_source(self, source_id: int) -> FeedPollResult:
        """Fetch one feed and ingest its new entries; never raises for feed or entry problems."""
        with self._db.session() as session:
            source = session.get(Source, source_id)
            if source is None:
                return FeedPollResult(source_id=source_id, url="", error="feed no longer exists")
            url, etag, modified = source.url or "", source.etag, source.last_modified
        result = FeedPollResult(source_id=source_id, url=url)
        try:
            page = self.fetcher.fetch(url, accept=FEED_TYPES, etag=etag, last_modified=modified)
            if page.not_modified:
                result.not_modified = True
                self._record_success(source_id, result, etag, modified, None)
                return result
            parsed = self._parse(page.content, url)
            title = (parsed.feed.get("title") or "").strip() or None
            self._ingest_entries(source_id, parsed.entries, result)
            if parsed.bozo and result.new + result.duplicates == 0:
                # Broken XML that feedparser salvaged nothing usable from; minor errors in
                # otherwise readable feeds (common in the wild) do not count as failures.
                reason = str(getattr(parsed, "bozo_exception", "") or "parse error")[:200]
                raise FeedError(f"{url[:200]} is not a valid RSS/Atom feed: {reason}")
            self._record_success(source_id, result, page.etag, page.last_modified, title)
        except (FetchError, FeedError) as error:
            self._record_failure(source_id, result, str(error))
        except Exception as error:  # noqa: BLE001 - one bad feed must not stop the others
            log.exception("unexpected error polling feed %s", url)
            self._record_failure(source_id, result, f"unexpected error: {error.__class__.__name__}: {error}")
        return result

    @staticmethod
    def _parse(content: bytes, url: str) -> Any:
        import feedparser

        parsed = feedparser.parse(content)
        if not parsed.entries and (parsed.bozo or not parsed.version):
            reason = getattr(parsed, "bozo_exception", None) or "no RSS or Atom content"
            raise FeedError(f"{url[:200]} is not a valid RSS/Atom feed: {str(reason)[:200]}")
        return parsed

    def _ingest_entries(self, source_id: int, entries: Sequence[Any], result: FeedPollResult) -> None:
        for entry in list(entries)[:MAX_ENTRIES_PER_POLL]:
            link = (entry.get("link") or "").strip() or None
            guid = (entry.get("id") or "").strip() or link
            if self._already_stored(guid, link):
                result.duplicates += 1
                continue
            try:
                item = self._entry_article(entry, link, guid, source_id)
                stored = self._ingest.ingest(item)
            except (IngestError, FetchError) as error:
                result.skipped += 1
                message = f"{(entry.get('title') or link or guid or 'entry')[:120]}: {error}"
                result.entry_errors.append(message)
                log.info("feed %s: skipped entry %s", result.url, message)
                continue
            if stored.created:
                result.new += 1
            else:
                result.duplicates += 1

    def _already_stored(self, guid: str | None, link: str | None) -> bool:
        """Whether the entry is stored already, so teasers are not re-fetched every poll."""
        conditions = []
        if guid:
            conditions.append(Article.guid == guid[:1024])
        if link:
            try:
                conditions.append(Article.url == canonical_url(link))
            except InvalidUrl:
                pass
        if not conditions:
            return False
        # A user's private copy does not count: ingesting the feed's entry makes it public.
        public = Article.submitted_by_chat_id.is_(None)
        with self._db.session() as session:
            return session.scalar(select(Article.id).where(or_(*conditions), public).limit(1)) is not None

    def _entry_article(self, entry: Any, link: str | None, guid: str | None, source_id: int) -> ArticleInput:
        body = _entry_body(entry)
        title = html_fragment_text(entry.get("title") or "") or None
        tags = _entry_tags(entry)
        published = _entry_time(entry)
        words = len(re.findall(r"\w+", body))
        if link and (words < TEASER_WORDS or _TEASER_END.search(body)):
            # Only a teaser in the feed: the article is on its page.
            from bot.ingest.loaders import article_from_bytes

            try:
                page = self.fetcher.fetch(link, accept=HTML_TYPES)
                full = article_from_bytes(
                    page.content, name=page.url, declared_charset=page.charset, url=page.url,
                    content_type=page.content_type,
                )  # fmt: skip
            except (FetchError, IngestError) as error:
                if words < 12:
                    raise IngestError(f"only a teaser in the feed, and the page failed: {error}") from None
                log.info("feed entry %s: page fetch failed (%s); storing the teaser", link, error)
            else:
                if len(full.body) > len(body):
                    body = full.body
                    title = title or full.title
                    tags.extend(full.tags)
                    published = published or full.published_at
        return ArticleInput(body=body, title=title, url=link, guid=guid, tags=tags,
                            published_at=published, source_id=source_id)  # fmt: skip

    def _record_success(
        self, source_id: int, result: FeedPollResult, etag: str | None, modified: str | None, title: str | None
    ) -> None:
        now = datetime.now(UTC)
        with self._db.session() as session:
            source = session.get(Source, source_id)
            if source is None:
                return
            source.etag = etag[:512] if etag else None
            source.last_modified = modified[:128] if modified else None
            source.last_polled_at = now
            source.failure_count = 0
            source.last_error = None
            source.status = SourceStatus.ACTIVE
            source.next_poll_at = now + timedelta(seconds=self._settings.feed_poll_interval)
            if title and source.name == (urlsplit(source.url or "").hostname or source.url):
                source.name = title[:300]
            result.status = source.status

    def _record_failure(self, source_id: int, result: FeedPollResult, message: str) -> None:
        result.error = message
        now = datetime.now(UTC)
        with self._db.session() as session:
            source = session.get(Source, source_id)
            if source is None:
                return
            source.failure_count = (source.failure_count or 0) + 1
            source.last_error = message[:MAX_ERROR_CHARS]
            source.last_polled_at = now
            delay = min(
                self._settings.feed_poll_interval * 2 ** min(source.failure_count, 30),
                self._settings.feed_max_backoff,
            )
            source.next_poll_at = now + timedelta(seconds=delay)
            if source.failure_count >= self._settings.feed_failing_after:
                source.status = SourceStatus.FAILING
            result.status = source.status
        log.warning("feed %s failed (%s)", result.url, message)


async def run_feed_poller(feeds: FeedService, stop: asyncio.Event, interval: float) -> None:
    """Poll due feeds every `interval` seconds in a worker thread until `stop` is set."""
    while not stop.is_set():
        try:
            results = await asyncio.to_thread(feeds.poll_due)
            if results:
                log.info(
                    "feeds polled: %d, new articles: %d, failed: %d",
                    len(results), sum(r.new for r in results), sum(not r.ok for r in results),
                )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the poller must outlive any one bad round
            log.exception("feed poller round failed; trying again in %.0fs", interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
