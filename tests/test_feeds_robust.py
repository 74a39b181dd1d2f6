"""Feed robustness on a local HTTP server: formats and encodings, links and guids, hostile XML,
per-entry isolation, newest-first with a per-poll cap and backlog, failing feeds, concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from test_feeds import stored as articles

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, SourceStatus
from bot.ingest import feeds as feeds_module
from bot.ingest.feeds import FeedService, clean_feed_bytes, parse_feed
from bot.ingest.service import ArticleInput, IngestResult, IngestService
from bot.tags import TagService

from conftest import make_settings
from feedgen import (
    atom_xml_base,
    big_rss,
    body_words,
    cp1251_without_declaration,
    entry_time,
    rdf_rss10,
    rss091_latin1,
    rss20,
    rss20_items,
    rss20_relative_and_enclosures,
)
from fixtures.local_http import LocalServer, Response

RSS = {"Content-Type": "application/rss+xml"}


@pytest.fixture
def feed_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url, tmp_path, fetch_allowed_hosts=["127.0.0.1"], fetch_timeout=1.0,
        feed_poll_interval=60.0, feed_max_backoff=600.0, feed_failing_after=2,
    )  # fmt: skip


def by_title(database: Database) -> dict[str, Article]:
    return {article.title: article for article in articles(database)}


# --- formats, encodings, links ------------------------------------------------------------
def test_rss091_latin1_with_netscape_doctype_and_html_entities(
    server: LocalServer, feeds: FeedService, database: Database
) -> None:
    server.add("/rss091", Response(body=rss091_latin1(), headers={"Content-Type": "text/xml"}))
    feeds.add(server.url("/rss091"))
    result = feeds.poll_all()[0]
    assert (result.new, result.error) == (1, None)
    [article] = articles(database)
    assert article.title == "Réforme des retraites & grève"
    assert "Café crème à la gare – fin." in article.body
    assert article.url == "http://fr.test/art/1"
    assert feeds.get(result.source_id).name == "Café Nouvelles"  # type: ignore[union-attr]  # the feed exists


def test_rss20_relative_links_non_url_guids_enclosures_and_cdata_html(
    server: LocalServer, feeds: FeedService, database: Database
) -> None:
    server.add("/rss", Response(body=rss20_relative_and_enclosures(), headers=RSS))
    feeds.add(server.url("/rss"))
    result = feeds.poll_all()[0]
    assert (result.new, result.skipped, result.error) == (3, 0, None), result.entry_errors
    stored = by_title(database)
    relative = stored["Relatif"]
    assert relative.url == "http://news.test/berita/relatif-1"  # against the channel <link>
    assert relative.guid == "abc-123"
    assert "alert" not in relative.body and "Akhir tebal." in relative.body and relative.body.startswith("Sub")
    no_link = stored["Tanpa tautan"]
    assert no_link.url is None and no_link.guid == "urn:uuid:5e1f-77"
    assert "<p>" not in no_link.body and no_link.body.startswith("Laporan nomor 202.")
    guid_url = stored["Guid URL"]
    assert guid_url.url == "http://news.test/g/3" and guid_url.guid == "http://news.test/g/3"
    # Newest first: the entry dated latest was stored first.
    assert [a.title for a in articles(database)] == ["Relatif", "Tanpa tautan", "Guid URL"]


def test_relative_link_without_channel_link_joins_the_feed_url(
    server: LocalServer, feeds: FeedService, database: Database
) -> None:
    items = f"<item><title>Rel</title><link>artikel/7</link><description>{body_words(7)}</description></item>"
    server.add("/kanal/rss.xml", Response(body=rss20(items, link=""), headers=RSS))
    feeds.add(server.url("/kanal/rss.xml"))
    assert feeds.poll_all()[0].new == 1
    [article] = articles(database)
    assert article.url == server.url("/kanal/artikel/7")


def test_atom_xml_base_resolves_entry_links(server: LocalServer, feeds: FeedService, database: Database) -> None:
    server.add("/atom", Response(body=atom_xml_base(), headers={"Content-Type": "application/atom+xml"}))
    feeds.add(server.url("/atom"))
    result = feeds.poll_all()[0]
    assert (result.new, result.error) == (2, None)
    stored = {a.guid: a for a in articles(database)}
    assert stored["urn:entry:1"].url == "http://atom.test/root/bagian/satu.html"
    assert stored["urn:entry:1"].title == "Judul satu"
    assert [t.name for t in stored["urn:entry:1"].tags] == ["Ekonomi"]
    assert stored["urn:entry:2"].url == "http://atom.test/mutlak/dua"


def test_rdf_rss10(server: LocalServer, feeds: FeedService, database: Database) -> None:
    server.add("/rdf", Response(body=rdf_rss10(), headers={"Content-Type": "application/rdf+xml"}))
    feeds.add(server.url("/rdf"))
    assert feeds.poll_all()[0].new == 1
    [article] = articles(database)
    assert article.url == "http://rdf.test/r/1" and [t.name for t in article.tags] == ["Lingkungan"]
    assert article.published_at is not None and article.published_at.replace(tzinfo=UTC) == datetime(2024, 3, 5, 10, tzinfo=UTC)


@pytest.mark.parametrize("content_type", ["application/rss+xml; charset=windows-1251", "text/xml; charset=windows-1251"])
def test_http_charset_is_honoured(server: LocalServer, feeds: FeedService, database: Database, content_type: str) -> None:
    server.add("/ru", Response(body=cp1251_without_declaration(), headers={"Content-Type": content_type}))
    feeds.add(server.url("/ru"))
    result = feeds.poll_all()[0]
    assert (result.new, result.error) == (1, None)
    [article] = articles(database)
    assert article.title == "Россия и экономика"
    assert article.body.startswith("Правительство объявило") and [t.name for t in article.tags] == ["Экономика"]
    assert feeds.get(result.source_id).name == "Новости"  # type: ignore[union-attr]  # the feed exists


def test_declared_latin1_without_http_charset(server: LocalServer, feeds: FeedService, database: Database) -> None:
    text = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>Noticias</title>'
        f"<link>http://es.test/</link><item><title>Año nuevo en España</title><link>http://es.test/1</link>"
        f"<description>{body_words(55)} Señal de añoranza.</description></item></channel></rss>"
    )
    server.add("/es", Response(body=text.encode("latin-1"), headers={"Content-Type": "application/xml"}))
    feeds.add(server.url("/es"))
    assert feeds.poll_all()[0].new == 1
    [article] = articles(database)
    assert article.title == "Año nuevo en España" and "Señal de añoranza." in article.body


# --- hostile XML --------------------------------------------------------------------------
def test_invalid_character_reference_in_one_entry_loses_no_other(
    server: LocalServer, feeds: FeedService, database: Database
) -> None:
    items = (
        f"<item><title>Satu</title><link>http://news.test/1</link><description>{body_words(1)}</description></item>"
        "<item><title>Rusak &#xD800; &#1114112; &#x0;</title><link>http://news.test/2</link>"
        f"<description>{body_words(2)} &#xDFFF;</description></item>"
        f"<item><title>Tiga</title><link>http://news.test/3</link><description>{body_words(3)}</description></item>"
    )
    server.add("/rss", Response(body=rss20(items), headers=RSS))
    feeds.add(server.url("/rss"))
    result = feeds.poll_all()[0]
    assert result.ok and result.new == 3, (result.error, result.entry_errors)
    stored = {a.url: a for a in articles(database)}
    assert stored["http://news.test/2"].title == "Rusak \ufffd \ufffd \ufffd"  # unknown characters, storable
    assert "\ufffd" in stored["http://news.test/2"].body


def test_undefined_entities_are_dropped_and_nothing_is_expanded(
    server: LocalServer, feeds: FeedService, database: Database, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", "utf-8")
    laughs = "".join(f'<!ENTITY l{i} "&l{i - 1};&l{i - 1};&l{i - 1};&l{i - 1};&l{i - 1};">' for i in range(1, 8))
    document = (
        f'<?xml version="1.0" encoding="utf-8"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">'
        f'<!ENTITY inner "INNER-EXPANDED"><!ENTITY l0 "ha">{laughs}]>'
        '<rss version="2.0"><channel><title>Jahat</title><link>http://evil.test/</link>'
        f"<item><title>Judul &xxe;&inner; &undefined; &l7; &amp; &nbsp;selesai</title><link>http://evil.test/1</link>"
        f"<description>{body_words(11)} &xxe; &inner; &bogus; &l7; &eacute;t&eacute;</description></item>"
        "</channel></rss>"
    ).encode()
    server.add("/evil", Response(body=document, headers=RSS))
    feeds.add(server.url("/evil"))
    result = feeds.poll_all()[0]
    assert (result.new, result.error) == (1, None)
    [article] = articles(database)
    for text in (article.title, article.body):
        assert "TOP-SECRET" not in text and "INNER" not in text and "haha" not in text
        assert "&xxe" not in text and "&undefined" not in text and "&bogus" not in text and "&l7" not in text
    assert article.title == "Judul & selesai"
    assert article.body.endswith("été")


def test_clean_feed_bytes_keeps_valid_references() -> None:
    cleaned = clean_feed_bytes(b"<a>&amp;&lt;&#233;&#xE9;&eacute;&nope;&#xD800;&#99999999999;</a>")
    assert cleaned == b"<a>&amp;&lt;&#233;&#xE9;&#233;&#xFFFD;&#xFFFD;</a>"
    # Only the prolog's DOCTYPE goes; one quoted in an entry's HTML stays.
    document = b'<?xml version="1.0"?><!-- c --><!DOCTYPE rss [<!ENTITY a "b">]><rss><x><![CDATA[<!DOCTYPE html>]]></x></rss>'
    assert clean_feed_bytes(document) == b'<?xml version="1.0"?><!-- c --><rss><x><![CDATA[<!DOCTYPE html>]]></x></rss>'
    # UTF-16 is cleaned as UTF-8.
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><rss>&#xD800;Ж</rss>'.encode("utf-16")
    assert clean_feed_bytes(utf16) == '<?xml version="1.0" encoding="utf-8"?><rss>&#xFFFD;Ж</rss>'.encode()


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_wide_encodings_are_read(codec: str) -> None:
    document = (
        f'<?xml version="1.0" encoding="{codec}"?><rss version="2.0"><channel><title>Широкий</title>'
        f"<item><title>Юникод &#xD800;</title><link>http://w.test/1</link><description>{body_words(9)}</description></item></channel></rss>"
    )
    parsed = parse_feed(document.encode(codec), "http://w.test/rss", "application/rss+xml", codec)
    assert parsed.title == "Широкий"
    assert [(e.title, e.link) for e in parsed.entries] == [("Юникод \ufffd", "http://w.test/1")]


# --- isolation and failing feeds ----------------------------------------------------------
class ExplodingIngest(IngestService):
    """Raises an unexpected error for one entry, as a bug or a database hiccup would."""

    def ingest(self, item: ArticleInput) -> IngestResult:
        if item.guid == "id-1":
            raise RuntimeError("boom in ingest")
        return super().ingest(item)


def test_an_entry_raising_during_ingest_loses_no_other(server: LocalServer, database: Database, feed_settings: Settings) -> None:
    server.add("/rss", Response(body=rss20(rss20_items([0, 1, 2])), headers=RSS))
    service = FeedService(database, feed_settings, ExplodingIngest(database, feed_settings, TagService(database, feed_settings)))
    service.add(server.url("/rss"))
    result = service.poll_all()[0]
    service.close()
    assert result.ok and (result.new, result.skipped) == (2, 1)
    assert "boom in ingest" in result.entry_errors[0] and "Berita 1" in result.entry_errors[0]
    assert sorted(a.guid for a in articles(database)) == ["id-0", "id-2"]


def test_a_feed_whose_entries_all_fail_is_reported_failing(
    server: LocalServer, feeds: FeedService, database: Database
) -> None:
    items = "".join(
        f"<item><title>Pendek {i}</title><guid>p{i}</guid><description>Terlalu pendek.</description></item>" for i in range(3)
    )
    server.add("/rss", Response(body=rss20(items), headers=RSS))
    source = feeds.add(server.url("/rss"))
    first = feeds.poll_all()[0]
    assert not first.ok and first.skipped == 3
    assert "none of the 3 entries" in (first.error or "") and "nothing to store" in (first.error or "")
    second = feeds.poll_all()[0]
    refreshed = feeds.get(source.id)
    assert refreshed is not None and refreshed.status is SourceStatus.FAILING and refreshed.failure_count == 2
    assert second.status is SourceStatus.FAILING and "none of the 3 entries" in (refreshed.last_error or "")
    assert articles(database) == []


# --- every entry, newest first, capped, with backlog --------------------------------------
def test_2000_entries_newest_first_capped_per_poll_with_backlog(
    server: LocalServer, feeds: FeedService, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = big_rss(2000)
    conditional: list[str | None] = []

    def route(handler):  # type: ignore[no-untyped-def]  # a LocalServer route: request handler in, Response out
        conditional.append(handler.headers.get("If-None-Match"))
        if handler.headers.get("If-None-Match") == '"big"':
            return Response(304)
        return Response(body=document, headers={**RSS, "ETag": '"big"'})

    server.add("/big", route)
    source = feeds.add(server.url("/big"))
    cap = feeds_module.MAX_ENTRIES_PER_POLL
    first = feeds.poll_all()[0]
    assert (first.new, first.backlog, first.duplicates, first.error) == (cap, 2000 - cap, 0, None)
    assert {a.guid for a in articles(database)} == {f"id-{i}" for i in range(2000 - cap, 2000)}  # the newest
    refreshed = feeds.get(source.id)
    assert refreshed is not None and refreshed.etag is None  # no 304 until the backlog is done
    assert refreshed.next_poll_at is not None and refreshed.next_poll_at.replace(tzinfo=UTC) <= datetime.now(UTC)
    # The next poll skips what is stored and goes on with the next-newest entries.
    [second] = feeds.poll_due(now=datetime.now(UTC) + timedelta(seconds=1))
    assert (second.new, second.duplicates, second.backlog) == (cap, cap, 2000 - 2 * cap)
    assert {a.guid for a in articles(database)} == {f"id-{i}" for i in range(2000 - 2 * cap, 2000)}
    # Known entries are skipped cheaply: a poll that takes nothing new costs a few queries, not one each.
    monkeypatch.setattr(feeds_module, "MAX_ENTRIES_PER_POLL", 0)
    statements: list[object] = []

    def count(*args: object) -> None:
        statements.append(args[2])

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        [third] = feeds.poll_due(now=datetime.now(UTC) + timedelta(seconds=1))
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert (third.new, third.duplicates, third.backlog) == (0, 2 * cap, 2000 - 2 * cap)
    assert len(statements) <= 20, statements  # 4 + 4 chunked look-ups, sessions, the source row
    monkeypatch.undo()
    if not database.is_sqlite:
        return  # draining all 2,000 once (on SQLite) is enough
    polls = 3
    while True:
        [result] = feeds.poll_due(now=datetime.now(UTC) + timedelta(seconds=1))
        polls += 1
        assert result.ok and result.new <= cap
        if result.backlog == 0:
            break
        assert polls < 20
    assert polls == 3 + -(-(2000 - 2 * cap) // cap)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Article)) == 2000
    assert conditional == [None] * polls
    assert feeds.get(source.id).etag == '"big"'  # type: ignore[union-attr]  # the feed exists
    assert feeds.poll_all()[0].not_modified  # done: conditional GET again


def test_time_budget_leaves_the_rest_as_backlog(server: LocalServer, database: Database, feed_settings: Settings) -> None:
    ticks = iter(range(0, 10_000, 50))  # each look at the clock is 50 seconds later
    service = FeedService(database, feed_settings, clock=lambda: float(next(ticks)))
    server.add("/rss", Response(body=rss20(rss20_items(list(range(6)))), headers=RSS))
    service.add(server.url("/rss"))
    result = service.poll_all()[0]
    service.close()
    # Deadline 0+120 s: entries checked at 50 and 100 are taken, the rest waits.
    assert (result.new, result.backlog) == (2, 4)
    assert {a.guid for a in articles(database)} == {"id-5", "id-4"}


# --- concurrency --------------------------------------------------------------------------
def test_a_slow_feed_does_not_hold_up_the_others(server: LocalServer, feeds: FeedService, database: Database) -> None:
    fast_seen = threading.Event()

    def slow(_handler):  # type: ignore[no-untyped-def]  # a LocalServer route
        # Answers only once the other feed was requested: polled one after the other, this
        # would wait past the 1 s fetch timeout and fail.
        fast_seen.wait(timeout=3)
        return Response(body=rss20(rss20_items([10])), headers=RSS)

    def fast(_handler):  # type: ignore[no-untyped-def]  # a LocalServer route
        fast_seen.set()
        return Response(body=rss20(rss20_items([20])), headers=RSS)

    server.add("/slow", slow)
    server.add("/fast", fast)
    feeds.add(server.url("/slow"))
    feeds.add(server.url("/fast"))
    slow_result, fast_result = feeds.poll_all()  # results in feed order
    assert slow_result.url.endswith("/slow") and fast_result.url.endswith("/fast")
    assert slow_result.ok and fast_result.ok, (slow_result.error, fast_result.error)
    assert {a.guid for a in articles(database)} == {"id-10", "id-20"}


# --- private copies -----------------------------------------------------------------------
def test_a_users_private_copy_does_not_stop_the_feed_making_it_public(
    server: LocalServer, feeds: FeedService, database: Database, feed_settings: Settings
) -> None:
    server.add("/rss", Response(body=rss20(rss20_items([5])), headers=RSS))
    ingest = IngestService(database, feed_settings, TagService(database, feed_settings))
    private = ingest.ingest(ArticleInput(body=body_words(5), url="http://news.test/a/5", submitted_by_chat_id=42))
    with database.session() as session:
        session.get(Article, private.article_id).fanned_out_at = entry_time(0)  # type: ignore[union-attr]  # just stored
    feeds.add(server.url("/rss"))
    result = feeds.poll_all()[0]
    assert (result.new, result.duplicates) == (0, 1)
    [article] = articles(database)
    assert article.id == private.article_id
    assert article.submitted_by_chat_id is None and article.fanned_out_at is None and article.guid is None
    assert [t.name for t in article.tags] == ["Topik 2"]


def test_parse_feed_reads_every_entry_newest_first() -> None:
    parsed = parse_feed(big_rss(2000), "http://news.test/rss")
    assert len(parsed.entries) == 2000
    assert [e.guid for e in parsed.entries[:3]] == ["id-1999", "id-1998", "id-1997"]
    assert parsed.entries[-1].guid == "id-0"
