"""Feeds on a local HTTP server: registry, conditional GET, backoff, failing status, teasers, poller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, SourceStatus
from bot.ingest.feeds import FeedError, FeedService, run_feed_poller

from conftest import make_settings
from fixtures.local_http import LocalServer, Response

LONG = (
    "Pemerintah provinsi mengumumkan rencana pembangunan jalur kereta ringan baru yang akan menghubungkan "
    "pusat kota dengan bandara dalam tiga tahun ke depan. "
)


def rss(items: str, title: str = "Warta Contoh") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://example.test/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def item(guid: str, title: str, body: str, link: str = "", categories: tuple[str, ...] = ()) -> str:
    cats = "".join(f"<category>{c}</category>" for c in categories)
    return (
        f"<item><guid>{guid}</guid><title>{title}</title><link>{link or 'http://example.test/' + guid}</link>"
        f"<pubDate>Tue, 05 Mar 2024 10:00:00 +0700</pubDate>{cats}<description><![CDATA[{body}]]></description></item>"
    )


@pytest.fixture
def feed_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url, tmp_path, fetch_allowed_hosts=["127.0.0.1"], fetch_timeout=1.0,
        feed_poll_interval=60.0, feed_max_backoff=600.0, feed_failing_after=3,
    )  # fmt: skip


def stored(database: Database) -> list[Article]:
    with database.session() as session:
        articles = list(session.scalars(select(Article).order_by(Article.id)))
        for article in articles:
            _ = article.tags
        return articles


def test_add_list_remove(feeds: FeedService) -> None:
    source = feeds.add("HTTPS://News.Example.com/rss?utm_source=x", ["#Ekonomi", "ekonomi", "Asia"])
    assert source.url == "https://news.example.com/rss"
    assert source.default_tags == ["Ekonomi", "Asia"]
    again = feeds.add("https://news.example.com/rss", ["Energi"])
    assert again.id == source.id and again.default_tags == ["Ekonomi", "Asia", "Energi"]
    assert [s.id for s in feeds.list()] == [source.id]
    with pytest.raises(FeedError):
        feeds.add("ftp://news.example.com/rss")
    with pytest.raises(FeedError, match="invalid tag"):
        feeds.add("https://other.example.com/rss", ["#"])
    assert feeds.remove(str(source.id)) is True
    assert feeds.remove("https://news.example.com/rss") is False
    assert feeds.list() == []


def test_poll_stores_entries_with_categories_and_default_tags(
    server: LocalServer, feeds: FeedService, database: Database
) -> None:
    body = rss(item("a1", "Kereta Ringan ke Bandara", LONG * 8, categories=("Transportasi", "Jakarta")))
    server.add("/rss", Response(body=body, headers={"Content-Type": "application/rss+xml", "ETag": '"v1"'}))
    source = feeds.add(server.url("/rss"), ["Infrastruktur"])
    results = feeds.poll_all()
    assert [(r.new, r.duplicates, r.error) for r in results] == [(1, 0, None)]
    [article] = stored(database)
    assert article.title == "Kereta Ringan ke Bandara"
    assert article.guid == "a1" and article.source_id == source.id
    assert sorted(t.name for t in article.tags) == ["Infrastruktur", "Jakarta", "Transportasi"]
    assert article.published_at is not None and article.published_at.replace(tzinfo=UTC) == datetime(2024, 3, 5, 3, tzinfo=UTC)
    refreshed = feeds.get(source.id)
    assert refreshed is not None and refreshed.etag == '"v1"' and refreshed.name == "Warta Contoh"
    assert refreshed.next_poll_at is not None


def test_conditional_get_sends_etag_and_handles_304(server: LocalServer, feeds: FeedService) -> None:
    def route(handler):  # type: ignore[no-untyped-def]  # a LocalServer route: request handler in, Response out
        if handler.headers.get("If-None-Match") == '"v1"':
            return Response(304)
        headers = {"Content-Type": "application/rss+xml", "ETag": '"v1"', "Last-Modified": "Tue, 05 Mar 2024 03:00:00 GMT"}
        return Response(body=rss(item("b1", "Judul", LONG * 8)), headers=headers)

    server.add("/rss", route)
    feeds.add(server.url("/rss"))
    first = feeds.poll_all()[0]
    second = feeds.poll_all()[0]
    assert first.new == 1 and not first.not_modified
    assert second.not_modified and second.new == 0 and second.ok
    headers = server.requests[-1][1]
    assert headers["if-none-match"] == '"v1"'
    assert headers["if-modified-since"] == "Tue, 05 Mar 2024 03:00:00 GMT"


def test_teaser_entry_fetches_the_full_page(server: LocalServer, feeds: FeedService, database: Database) -> None:
    page = (
        "<html><head><title>Kereta Ringan</title><meta property='article:tag' content='Bandara'></head><body><article>"
        "<h1>Kereta Ringan ke Bandara Mulai Dibangun</h1>" + "".join(f"<p>{LONG} Paragraf {i}.</p>" for i in range(4))
        + "</article></body></html>"
    )
    server.add("/page", Response(body=page.encode(), headers={"Content-Type": "text/html"}))
    teaser = item("t1", "Kereta Ringan", "Pembangunan dimulai… [Baca selengkapnya]", link=server.url("/page"))
    server.add("/rss", Response(body=rss(teaser), headers={"Content-Type": "application/rss+xml"}))
    feeds.add(server.url("/rss"))
    assert feeds.poll_all()[0].new == 1
    [article] = stored(database)
    assert article.body.count("\n\n") == 3 and "Paragraf 3." in article.body
    assert "Bandara" in [t.name for t in article.tags]
    # The next poll recognizes the entry without fetching the page again.
    pages_before = sum(path == "/page" for path, _ in server.requests)
    assert feeds.poll_all()[0].duplicates == 1
    assert sum(path == "/page" for path, _ in server.requests) == pages_before


def test_failures_back_off_and_mark_feed_failing_then_recover(
    server: LocalServer, feeds: FeedService, database: Database
) -> None:
    state = {"ok": False}

    def route(_handler):  # type: ignore[no-untyped-def]  # a LocalServer route: request handler in, Response out
        if state["ok"]:
            return Response(body=rss(item("r1", "Pulih", LONG * 8)), headers={"Content-Type": "application/rss+xml"})
        return Response(500, b"boom")

    server.add("/rss", route)
    source = feeds.add(server.url("/rss"))
    delays = []
    for _ in range(3):
        before = datetime.now(UTC)
        result = feeds.poll_all()[0]
        assert "HTTP 500" in (result.error or "")
        refreshed = feeds.get(source.id)
        assert refreshed is not None
        delays.append((refreshed.next_poll_at.replace(tzinfo=UTC) - before).total_seconds())  # type: ignore[union-attr]  # set by the poll
    assert delays == [pytest.approx(120, abs=5), pytest.approx(240, abs=5), pytest.approx(480, abs=5)]
    assert refreshed.status is SourceStatus.FAILING and refreshed.failure_count == 3
    assert "HTTP 500" in (refreshed.last_error or "")
    # Not due yet: poll_due skips it; later it is polled again and recovers.
    assert feeds.poll_due() == []
    state["ok"] = True
    results = feeds.poll_due(now=datetime.now(UTC) + timedelta(seconds=600))
    assert results[0].ok and results[0].new == 1
    recovered = feeds.get(source.id)
    assert recovered is not None and recovered.status is SourceStatus.ACTIVE
    assert recovered.failure_count == 0 and recovered.last_error is None


def test_backoff_is_capped(server: LocalServer, database: Database, tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        database_url, tmp_path, fetch_allowed_hosts=["127.0.0.1"], feed_poll_interval=60.0, feed_max_backoff=150.0
    )
    server.add("/rss", Response(503))
    service = FeedService(database, settings)
    source = service.add(server.url("/rss"))
    for _ in range(4):
        service.poll_all()
    refreshed = service.get(source.id)
    assert refreshed is not None and refreshed.next_poll_at is not None and refreshed.last_polled_at is not None
    delay = (refreshed.next_poll_at.replace(tzinfo=UTC) - refreshed.last_polled_at.replace(tzinfo=UTC)).total_seconds()
    assert delay == pytest.approx(150, abs=1)
    service.close()


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            Response(body=b"<html><body>not a feed at all</body></html>", headers={"Content-Type": "text/html"}),
            "not a valid RSS/Atom feed",
        ),
        (
            Response(body=b"<rss><channel><item><title>broken", headers={"Content-Type": "application/rss+xml"}),
            "not a valid RSS/Atom feed",
        ),
        (Response(body=b"late", delay=2.5, headers={"Content-Type": "application/rss+xml"}), "timed out"),
        (Response(body=b"\x89PNG\r\n", headers={"Content-Type": "image/png"}), "image/png"),
    ],
)
def test_bad_feeds_fail_clearly_and_others_still_poll(
    server: LocalServer, feeds: FeedService, database: Database, response: Response, message: str
) -> None:
    server.add("/bad", response)
    server.add("/good", Response(body=rss(item("g1", "Baik", LONG * 8)), headers={"Content-Type": "application/rss+xml"}))
    feeds.add(server.url("/bad"))
    feeds.add(server.url("/good"))
    bad, good = feeds.poll_all()
    assert message in (bad.error or "")
    assert good.ok and good.new == 1
    assert len(stored(database)) == 1


def test_bad_entries_are_skipped_with_reason(server: LocalServer, feeds: FeedService, database: Database) -> None:
    items = item("e1", "Kosong", "", link="ftp://example.test/x") + item("e2", "Isi", LONG * 8)
    server.add("/rss", Response(body=rss(items), headers={"Content-Type": "application/rss+xml"}))
    feeds.add(server.url("/rss"))
    result = feeds.poll_all()[0]
    assert result.ok and result.new == 1 and result.skipped == 1
    assert "Kosong" in result.entry_errors[0]


class ExplodingFeeds(FeedService):
    """A FeedService whose rounds fail, to show the poller survives them."""

    calls = 0

    def poll_due(self, now=None):  # type: ignore[no-untyped-def]  # overrides FeedService.poll_due
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("database went away")
        return super().poll_due(now)


async def test_poller_survives_errors_and_stops_on_event(
    server: LocalServer, database: Database, feed_settings: Settings
) -> None:
    server.add("/rss", Response(body=rss(item("p1", "Poller", LONG * 8)), headers={"Content-Type": "application/rss+xml"}))
    service = ExplodingFeeds(database, feed_settings)
    service.add(server.url("/rss"))
    stop = asyncio.Event()
    task = asyncio.create_task(run_feed_poller(service, stop, interval=0.05))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if stored(database):
            break
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert service.calls >= 2
    assert [a.title for a in stored(database)] == ["Poller"]
    service.close()


def test_atom_feed_with_html_content(server: LocalServer, feeds: FeedService, database: Database) -> None:
    paragraphs = "".join(f"<p>{LONG} Bagian {i}.</p>" for i in range(3))
    atom = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Contoh</title>'
        '<id>urn:x</id><updated>2024-03-05T03:00:00Z</updated><entry><title>Kereta Ringan</title><id>urn:entry:1</id>'
        '<link href="http://example.test/atom-1"/><updated>2024-03-05T03:00:00Z</updated><category term="Transportasi"/>'
        f'<content type="html"><![CDATA[<script>alert(1)</script>{paragraphs}]]></content></entry></feed>'
    )
    server.add("/atom", Response(body=atom.encode(), headers={"Content-Type": "application/atom+xml"}))
    feeds.add(server.url("/atom"))
    assert feeds.poll_all()[0].new == 1
    [article] = stored(database)
    assert article.guid == "urn:entry:1" and article.url == "http://example.test/atom-1"
    assert article.body.count("\n\n") == 2 and "alert" not in article.body
    assert [t.name for t in article.tags] == ["Transportasi"]
