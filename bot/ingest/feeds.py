"""RSS/Atom feeds: registration, polling with conditional GET and backoff, and the bot's poller.

Parsing is defensive: the document is cleaned before feedparser sees it (no DOCTYPE, so no
entity declarations and no external entities; HTML named entities made numeric; undefined
entities dropped; character references to invalid code points made U+FFFD), every entry is read
on its own (one bad entry never loses the others), and entries are ingested newest first, at
most MAX_ENTRIES_PER_POLL per poll; the rest is a backlog the next poll continues.
"""

from __future__ import annotations

import asyncio
import builtins
import calendar
import html
import html.entities
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

from sqlalchemy import or_, select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, Source, SourceKind, SourceStatus
from bot.ingest.fetch import FEED_TYPES, HTML_TYPES, FetchedPage, Fetcher, FetchError
from bot.ingest.fingerprint import clean_text
from bot.ingest.service import MAX_GUID_CHARS, ArticleInput, IngestError, IngestService
from bot.ingest.urls import InvalidUrl, canonical_url
from bot.tags import MAX_TAG_LENGTH, TagService, clean_tag_name, normalize_tag

log = logging.getLogger(__name__)

# An entry body shorter than this is a teaser: the full page is fetched.
TEASER_WORDS = 80
# New entries ingested per poll of one feed (newest first); the rest waits for the next poll.
MAX_ENTRIES_PER_POLL = 200
# Stop taking new entries of one feed after this many seconds (teaser pages are fetched one by
# one); what is left is backlog too.
POLL_TIME_BUDGET_SECONDS = 120.0
# A feed with backlog is due again this soon, not a whole poll interval later.
BACKLOG_POLL_DELAY = timedelta(seconds=0)
# Feeds polled at once; each is bounded by the fetch timeout, so a slow feed holds one worker.
POLL_WORKERS = 4
# Entry errors kept in a poll result (a 2,000-entry broken feed would otherwise list 2,000).
MAX_ENTRY_ERRORS = 20
MAX_ERROR_CHARS = 500
# Entries whose stored state is looked up per query (bound parameters stay well under limits).
LOOKUP_CHUNK = 500
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
    skipped: int = 0  # entries that could not be read or stored (each logged with its reason)
    backlog: int = 0  # new entries left for the next poll (over MAX_ENTRIES_PER_POLL or the time budget)
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


_XML_PREDEFINED = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})
_ENTITY_REF = re.compile(rb"&([A-Za-z_][A-Za-z0-9._-]{0,40});")
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
_DOCTYPE_START = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!DOCTYPE(?:[^\[>]|\[[^\]]*\])*>", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")  # a DOCTYPE comes before the root element
_SURROGATES = re.compile("[\ud800-\udfff]")
_FEED_MEDIA_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml",
                               "application/xml", "application/x-rss+xml"})  # fmt: skip


def _is_xml_char(code: int) -> bool:
    """XML 1.0's Char production."""
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _char_ref(match: re.Match[bytes]) -> bytes:
    hex_digits, decimal = match.group(1), match.group(2)
    digits = (hex_digits or decimal).lstrip(b"0") or b"0"
    if len(digits) > 8:  # beyond any code point (and int() of huge digit strings is slow)
        return b"&#xFFFD;"
    code = int(digits, 16) if hex_digits else int(digits)
    # "&#xD800;" and the like are not characters: feedparser would raise on them and lose the
    # whole feed, and a lone surrogate cannot be stored as UTF-8.
    return match.group(0) if _is_xml_char(code) else b"&#xFFFD;"


def _entity_ref(match: re.Match[bytes]) -> bytes:
    name = match.group(1)
    if name in _XML_PREDEFINED:
        return match.group(0)
    code = html.entities.name2codepoint.get(name.decode("ascii"))
    # HTML names (RSS 0.91's DTD declared them) become numeric; anything else is undefined
    # (or was declared in the DOCTYPE we removed): dropped, never stored as "&xxe;".
    return b"&#%d;" % code if code is not None else b""


_WIDE_ENCODINGS = (  # byte-order marks and "<?" patterns of UTF-32 and UTF-16 documents
    (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"), (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
)  # fmt: skip
_DECLARED_ENCODING = re.compile(rb"""^(\s*<\?xml[^>]*?encoding\s*=\s*["'])[^"']*(["'])""")


def _wide_to_utf8(content: bytes) -> bytes | None:
    """A UTF-16/32 document re-encoded as UTF-8 (declaration adjusted), else None."""
    for mark, codec in _WIDE_ENCODINGS:
        if content.startswith(mark):
            text = content.decode(codec, "replace").encode("utf-8")
            return _DECLARED_ENCODING.sub(rb"\1utf-8\2", text, count=1)
    return None


def clean_feed_bytes(content: bytes) -> bytes:
    """The document with its DOCTYPE removed and entity/character references made safe.

    Works on ASCII-compatible bytes (UTF-8, windows-125x, ISO-8859-x, KOI8...); UTF-16/32 is
    re-encoded as UTF-8 first (see parse_feed).
    """
    wide = _wide_to_utf8(content)
    if wide is not None:
        content = wide
    root = _FIRST_ELEMENT.search(content)
    start = _DOCTYPE_START.search(content, 0, root.start() if root else len(content))
    if start is not None:
        match = _DOCTYPE.match(content, start.start())
        # An unterminated DOCTYPE swallows the document: what is left fails to parse, clearly.
        end = match.end() if match is not None else len(content)
        content = content[: start.start()] + content[end:]
    content = _CHAR_REF.sub(_char_ref, content)
    return _ENTITY_REF.sub(_entity_ref, content)


def _text(value: Any) -> str:
    """A feedparser string made storable: no lone surrogates, no NUL."""
    if not isinstance(value, str):
        return ""
    return _SURROGATES.sub("\ufffd", value).replace("\x00", "")


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


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
        term = _text(item.get("label") or item.get("term") or "").strip()
        # Some feeds put "Politics/Asia" hierarchies in one category.
        tags.extend(part.strip() for part in re.split(r"\s*[/>»]\s*", term) if part.strip())
    return tags


def _entry_body(entry: Any) -> str:
    contents = [_text(item.get("value", "")) for item in entry.get("content") or [] if item.get("value")]
    best = max(contents, key=len) if contents else _text(entry.get("summary", ""))
    return html_fragment_text(best)


@dataclass
class FeedEntry:
    """One entry as read from the feed, before any page fetch or ingest."""

    link: str | None  # absolute http(s) URL of the article, or None
    guid: str | None  # the entry's id (any string), else its link
    title: str | None
    body: str
    tags: list[str]
    published_at: datetime | None
    error: str | None = None  # the entry could not be read; the others still are

    @property
    def label(self) -> str:
        return (self.title or self.link or self.guid or "entry")[:120]


@dataclass
class ParsedFeed:
    """A parsed feed: its title and entries, newest first."""

    title: str | None
    entries: list[FeedEntry]
    bozo_reason: str | None  # feedparser's complaint about the XML, when it had one


def _feed_headers(content_type: str, charset: str | None) -> dict[str, str]:
    """Response headers for feedparser, so an HTTP charset (RFC 3023) wins over guessing.

    text/* media types are passed as application/xml: for text/xml without a charset,
    RFC 3023 means US-ASCII, which would override the XML declaration of most real feeds.
    """
    if not charset:
        return {}
    media = content_type if content_type in _FEED_MEDIA_TYPES else "application/xml"
    return {"content-type": f"{media}; charset={charset}"}


def _entry_link(entry: Any, base: str) -> str | None:
    """The entry's article URL, absolute; None when it has none (a non-URL guid is not a link)."""
    explicit = [link for link in entry.get("links") or [] if link.get("rel", "alternate") == "alternate"]
    if explicit or not entry.get("guidislink"):
        raw = _text(entry.get("link")).strip()
    else:
        # feedparser copies a <guid> into link when there is no <link>: only a URL guid is one.
        raw = _text(entry.get("id")).strip()
        if not _http_url(raw):
            return None
    if not raw:
        return None
    # feedparser already applied xml:base; a still-relative link joins the feed's base.
    absolute = urljoin(base, raw)
    return absolute if _http_url(absolute) else None


def _read_entry(entry: Any, base: str) -> FeedEntry:
    link = _entry_link(entry, base)
    guid = _text(entry.get("id")).strip() or link
    title = html_fragment_text(_text(entry.get("title"))) or None
    return FeedEntry(link=link, guid=guid, title=title, body=_entry_body(entry), tags=_entry_tags(entry),
                     published_at=_entry_time(entry))  # fmt: skip


def _newest_first(entries: list[FeedEntry]) -> list[FeedEntry]:
    """Dated entries newest first, then undated ones in document order (feeds list newest first)."""
    order = sorted(
        range(len(entries)),
        key=lambda i: (0, -when.timestamp(), i) if (when := entries[i].published_at) else (1, 0.0, i),
    )
    return [entries[i] for i in order]


def parse_feed(content: bytes, url: str, content_type: str = "", charset: str | None = None) -> ParsedFeed:
    """Parse a feed document fetched from `url`; raises FeedError only.

    Relative entry links are resolved against xml:base (feedparser), else the feed's own
    <link>, else `url`. An entry that cannot be read is returned with its `error` set.
    """
    import feedparser

    if _wide_to_utf8(content[:8]) is not None:
        charset = None  # clean_feed_bytes re-encodes it as UTF-8, whatever the header said
    try:
        parsed = feedparser.parse(
            clean_feed_bytes(content), response_headers=_feed_headers(content_type, charset), sanitize_html=True
        )
    except Exception as error:
        raise FeedError(f"{url[:200]} is not a valid RSS/Atom feed: {error.__class__.__name__}") from None
    entries_raw = parsed.get("entries") or []
    if not entries_raw and (parsed.get("bozo") or not parsed.get("version")):  # empty input has no version
        reason = getattr(parsed, "bozo_exception", None) or "no RSS or Atom content"
        raise FeedError(f"{url[:200]} is not a valid RSS/Atom feed: {str(reason)[:200]}")
    feed = parsed.get("feed") or {}
    feed_link = _text(feed.get("link")).strip()
    base = urljoin(url, feed_link) if feed_link else url
    if not _http_url(base):
        base = url
    entries: list[FeedEntry] = []
    for index, raw in enumerate(entries_raw):
        try:
            entries.append(_read_entry(raw, base))
        except Exception as error:
            log.info("feed %s: cannot read entry %d", url, index, exc_info=True)
            entries.append(FeedEntry(link=None, guid=None, title=f"entry {index + 1}", body="", tags=[], published_at=None,
                                     error=f"unreadable entry: {error.__class__.__name__}: {error}"))  # fmt: skip
    title = _text(feed.get("title")).strip() or None
    bozo = str(parsed.get("bozo_exception") or "parse error")[:200] if parsed.get("bozo") else None
    return ParsedFeed(title=title, entries=_newest_first(entries), bozo_reason=bozo)


class FeedService:
    """Registers feeds and polls them; one instance per process, shared by CLI, bot and poller."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        ingest: IngestService | None = None,
        fetcher: Fetcher | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        workers: int = POLL_WORKERS,
    ) -> None:
        self._db = db
        self._settings = settings
        self._ingest = ingest or IngestService(db, settings, TagService(db, settings))
        self._fetcher = fetcher
        self._own_fetcher = fetcher is None
        self._fetcher_lock = threading.Lock()
        self._clock = clock  # seconds, for the per-poll time budget (tests inject one)
        self._workers = max(1, workers)

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            with self._fetcher_lock:  # feeds are polled from several threads
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
    def poll_due(self, now: datetime | None = None) -> builtins.list[FeedPollResult]:
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
        return self._poll_many(ids)

    def poll_all(self) -> builtins.list[FeedPollResult]:
        """Poll every feed that is not disabled once, ignoring schedules (`newsbot feeds poll`)."""
        with self._db.session() as session:
            ids = list(
                session.scalars(
                    select(Source.id)
                    .where(Source.kind == SourceKind.FEED, Source.status != SourceStatus.DISABLED)
                    .order_by(Source.id)
                )
            )
        return self._poll_many(ids)

    def _poll_many(self, ids: Sequence[int]) -> builtins.list[FeedPollResult]:
        """Poll feeds concurrently (at most `workers` at once); results in the order of `ids`.

        A slow feed holds one worker for at most its own fetch timeout; the others go on.
        """
        if len(ids) <= 1 or self._workers == 1:
            return [self.poll_source(source_id) for source_id in ids]
        with ThreadPoolExecutor(max_workers=min(self._workers, len(ids)), thread_name_prefix="feed-poll") as pool:
            return list(pool.map(self.poll_source, ids))

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
            parsed = self._parse_page(page, url)
            self._ingest_entries(source_id, parsed.entries, result)
            if result.new + result.duplicates == 0 and (parsed.bozo_reason or result.skipped):
                if parsed.bozo_reason:
                    # Broken XML that feedparser salvaged nothing usable from; minor errors in
                    # otherwise readable feeds (common in the wild) do not count as failures.
                    raise FeedError(f"{url[:200]} is not a valid RSS/Atom feed: {parsed.bozo_reason}")
                # Entries, yet none could be stored: the feed is not healthy, say why.
                first = result.entry_errors[0] if result.entry_errors else "unknown reason"
                raise FeedError(f"none of the {result.skipped} entries tried could be stored; first: {first}"[:MAX_ERROR_CHARS])
            if result.backlog:
                # The next poll must see the whole document again (no 304) to go on.
                self._record_success(source_id, result, None, None, parsed.title, backlog=True)
            else:
                self._record_success(source_id, result, page.etag, page.last_modified, parsed.title)
        except (FetchError, FeedError) as error:
            self._record_failure(source_id, result, str(error))
        except Exception as error:
            log.exception("unexpected error polling feed %s", url)
            self._record_failure(source_id, result, f"unexpected error: {error.__class__.__name__}: {error}")
        return result

    @staticmethod
    def _parse_page(page: FetchedPage, url: str) -> ParsedFeed:
        return parse_feed(page.content, page.url or url, page.content_type, page.charset)

    def _ingest_entries(self, source_id: int, entries: Sequence[FeedEntry], result: FeedPollResult) -> None:
        """Ingest new entries, newest first, each on its own: one failing never stops the rest."""
        stored_guids, stored_urls = self._stored_keys(entries)
        deadline = self._clock() + POLL_TIME_BUDGET_SECONDS
        tried = 0
        for entry in entries:
            if entry.error:
                self._entry_failed(result, entry, entry.error)
                continue
            if (entry.guid and entry.guid[:MAX_GUID_CHARS] in stored_guids) or _canonical(entry.link) in stored_urls:
                result.duplicates += 1  # known already: no page fetch, no ingest
                continue
            if tried >= MAX_ENTRIES_PER_POLL or self._clock() > deadline:
                result.backlog += 1
                continue
            tried += 1
            try:
                stored = self._ingest.ingest(self._entry_article(entry, source_id))
            except (IngestError, FetchError) as error:
                self._entry_failed(result, entry, str(error))
                continue
            except Exception as error:
                log.exception("feed %s: unexpected error ingesting entry %s", result.url, entry.label)
                self._entry_failed(result, entry, f"unexpected error: {error.__class__.__name__}: {error}")
                continue
            if stored.created:
                result.new += 1
            else:
                result.duplicates += 1
        if result.backlog:
            log.info("feed %s: %d new entries left for the next poll", result.url, result.backlog)

    @staticmethod
    def _entry_failed(result: FeedPollResult, entry: FeedEntry, reason: str) -> None:
        result.skipped += 1
        message = f"{entry.label}: {reason}"
        if len(result.entry_errors) < MAX_ENTRY_ERRORS:
            result.entry_errors.append(message)
        log.info("feed %s: skipped entry %s", result.url, message)

    def _stored_keys(self, entries: Sequence[FeedEntry]) -> tuple[set[str], set[str]]:
        """Guids and URLs of these entries already stored as public articles, in a few queries.

        A user's private copy does not count: ingesting the feed's entry makes it public.
        """
        guids = sorted({entry.guid[:MAX_GUID_CHARS] for entry in entries if entry.guid})
        urls = sorted({url for url in (_canonical(entry.link) for entry in entries) if url})
        public = Article.submitted_by_chat_id.is_(None)
        found_guids: set[str] = set()
        found_urls: set[str] = set()
        with self._db.session() as session:
            for chunk in _chunks(guids):
                found_guids.update(session.scalars(select(Article.guid).where(Article.guid.in_(chunk), public)))
            for chunk in _chunks(urls):
                found_urls.update(session.scalars(select(Article.url).where(Article.url.in_(chunk), public)))
        return found_guids, found_urls

    def _entry_article(self, entry: FeedEntry, source_id: int) -> ArticleInput:
        link, guid = entry.link, entry.guid
        body = entry.body
        title = entry.title
        tags = list(entry.tags)
        published = entry.published_at
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
        self,
        source_id: int,
        result: FeedPollResult,
        etag: str | None,
        modified: str | None,
        title: str | None,
        *,
        backlog: bool = False,
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
            interval = timedelta(seconds=self._settings.feed_poll_interval)
            source.next_poll_at = now + (min(BACKLOG_POLL_DELAY, interval) if backlog else interval)
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


def _canonical(link: str | None) -> str | None:
    if not link:
        return None
    try:
        return canonical_url(link)
    except InvalidUrl:
        return None


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start : start + LOOKUP_CHUNK]


async def run_feed_poller(feeds: FeedService, stop: asyncio.Event, interval: float) -> None:
    """Poll due feeds every `interval` seconds in a worker thread until `stop` is set.

    A database outage is one line when it starts and one when a round works again; other
    failures are rate-limited (one line a minute, with the count of those held back).
    """
    from bot.db.engine import is_unavailable
    from bot.logs import Outage, Throttle

    database = Outage(log, "database (feed poller)")
    throttle = Throttle(60.0)
    while not stop.is_set():
        try:
            results = await asyncio.to_thread(feeds.poll_due)
            database.end()
            if results:
                log.info(
                    "feeds polled: %d, new articles: %d, failed: %d",
                    len(results), sum(r.new for r in results), sum(not r.ok for r in results),
                )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if is_unavailable(error):
                database.begin(f"{type(error).__name__}: {error}")
            else:
                throttle.log(log, logging.ERROR, type(error).__name__, "feed poller round failed (%s: %s); trying again in %.0fs",
                             type(error).__name__, error, interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
