"""Fuzzing the feed parser path: arbitrary bytes never raise anything but FeedError, and a poll
of them never half-stores an article."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from bot.db import Database
from bot.db.migrate import upgrade
from bot.db.models import Article, ArticleTag, Source, SourceKind
from bot.ingest.feeds import FeedError, FeedService, parse_feed
from bot.ingest.fetch import FetchedPage

from conftest import make_settings
from feedgen import body_words

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_DB = settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)  # fmt: skip

NASTY = st.sampled_from([
    "&#xD800;", "&#0;", "&#x110000;", "&#99999999999999999999;", "&xxe;", "&amp;", "&nbsp;", "&eacute;", "&#",
    "<![CDATA[", "]]>", "<!DOCTYPE rss [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>", "<!ENTITY a 'b'>", "&a;",
    "<item>", "</item>", "<entry>", "</entry>", "<title>", "</title>", "<link>", "</link>", "<guid>", "</guid>",
    "<description>", "</description>", "<category>", "</category>", "<pubDate>", "</pubDate>",
    "<link href='/x'/>", "xml:base='http://b.test/'", "javascript:alert(1)", "http://e.test/1", "/rel/2",
    "\x00", "\ufeff", "\u202e", "<", ">", "&", "'", '"', "<?xml version='1.0' encoding='utf-16'?>",
    "Mon, 99 Foo 2024 99:99:99 +9999", "2024-13-45T25:61:00Z", body_words(3),
])  # fmt: skip
ENCODINGS = st.sampled_from(["utf-8", "cp1251", "latin-1", "utf-16", "utf-16-be", "utf-32"])


def _skeleton(fragments: list[str], kind: str) -> str:
    middle = "".join(fragments)
    if kind == "rss":
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item><title>{middle}</title><description>{body_words(1)}{middle}</description><link>http://e.test/{len(middle)}</link></item>{middle}</channel></rss>'
    if kind == "atom":
        return (
            f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry><id>{middle}</id><link href="{middle}"/>'
            f'<content type="html">{middle}{body_words(2)}</content></entry></feed>'
        )
    return middle


@st.composite
def feed_documents(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=3000))
    fragments = draw(st.lists(st.one_of(NASTY, st.text(max_size=30)), max_size=25))
    document = _skeleton(fragments, draw(st.sampled_from(["rss", "atom", "raw"])))
    encoding = draw(ENCODINGS)
    # surrogatepass writes lone surrogates as (invalid) UTF bytes; other codecs replace them.
    errors = "surrogatepass" if encoding.startswith("utf") and draw(st.booleans()) else "replace"
    return document.encode(encoding, errors)


@FUZZ
@given(content=feed_documents(), content_type=st.sampled_from(["", "application/rss+xml", "text/xml", "text/html"]),
       charset=st.sampled_from([None, "utf-8", "windows-1251", "bogus-charset", "utf-16"]))  # fmt: skip
def test_parse_feed_raises_only_feed_error(content: bytes, content_type: str, charset: str | None) -> None:
    try:
        parsed = parse_feed(content, "http://fuzz.test/feed", content_type, charset)
    except FeedError:
        return
    for entry in parsed.entries:
        for value in (entry.link, entry.guid, entry.title, entry.body, *entry.tags):
            if value is not None:
                value.encode("utf-8")  # storable: no lone surrogates
        assert entry.link is None or entry.link.startswith(("http://", "https://"))


class BytesFetcher:
    """Serves the document under test (the real Fetcher is covered by the server tests)."""

    def __init__(self) -> None:
        self.content = b""

    def fetch(self, url: str, **_kwargs: object) -> FetchedPage:
        return FetchedPage(url=url, content=self.content, content_type="application/rss+xml", charset=None, status=200)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite3"
    database = Database(f"sqlite:///{path}")
    upgrade(database.engine)
    return database


@FUZZ_DB
@given(content=feed_documents())
def test_poll_of_arbitrary_bytes_never_half_stores(fuzz_db: Database, tmp_path: Path, content: bytes) -> None:
    with fuzz_db.engine.begin() as connection:
        for table in ("article_tags", "articles", "sources"):
            connection.execute(text(f"DELETE FROM {table}"))
    fetcher = BytesFetcher()
    fetcher.content = content
    service = FeedService(fuzz_db, make_settings(fuzz_db.url, tmp_path), fetcher=fetcher)  # type: ignore[arg-type]  # BytesFetcher is a test double
    with fuzz_db.session() as session:
        source = Source(kind=SourceKind.FEED, name="f", url="http://fuzz.test/feed", default_tags=["Fuzz"], failure_count=0)
        session.add(source)
        session.flush()
        source_id = source.id
    result = service.poll_source(source_id)  # never raises
    assert result.ok or result.error
    with fuzz_db.session() as session:
        stored = list(session.scalars(select(Article)))
        tagged = set(session.scalars(select(ArticleTag.article_id).distinct()))
        assert session.scalar(select(func.count()).select_from(Source)) == 1
    assert len(stored) == result.new  # every stored article was counted as new, nothing else
    for article in stored:
        # Whole articles only: text, fingerprint, story and the feed's default tag, in one go.
        assert article.body and article.title and article.fingerprint and article.story_id
        assert article.source_id == source_id and article.id in tagged
