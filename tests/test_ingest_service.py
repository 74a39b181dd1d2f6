"""IngestService: validation, duplicates, near-duplicate stories and concurrency, on both databases."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, ArticleTag, Source, SourceKind
from bot.ingest.fingerprint import fingerprint, hamming, simhash
from bot.ingest.service import ArticleInput, IngestError, IngestService
from bot.tags import TagService

FIXTURES = Path(__file__).parent / "fixtures"

BODY = (
    "The city council approved a new budget for public transport on Tuesday evening after a long debate.\n\n"
    "Bus fares will stay the same next year, while three new tram lines are planned for the northern districts.\n\n"
    "Opposition members said the plan lacked funding details and asked for an independent review of the costs."
)


def make_service(database: Database, settings: Settings) -> IngestService:
    return IngestService(database, settings, TagService(database, settings))


def count_articles(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Article)) or 0


def test_ingest_stores_article_with_tags_language_and_story(database: Database, settings: Settings) -> None:
    service = make_service(database, settings)
    result = service.ingest(
        ArticleInput(
            body=BODY, title="Council approves budget", url="HTTPS://Example.com/a?utm_source=x#top", tags=["#Commuting", "city"]
        )
    )
    assert result.created and result.duplicate_of is None
    assert result.story_id == result.article_id
    assert result.lang == "en"
    assert result.url == "https://example.com/a"
    assert result.tags == ["city", "Commuting"]
    with database.session() as session:
        article = session.get(Article, result.article_id)
        assert article.story_id == article.id
        assert article.fanned_out_at is None
        assert article.fingerprint == fingerprint(BODY)
        assert -(2**63) <= article.simhash < 2**63


def test_sample_article_language_is_indonesian(database: Database, settings: Settings) -> None:
    body = (FIXTURES / "rusia-garansi-mengikat.txt").read_text("utf-8")
    result = make_service(database, settings).ingest(ArticleInput(body=body, title="Judul"))
    assert result.lang == "id"


@pytest.mark.parametrize(
    "change",
    [
        {"url": "https://example.com/a?utm_campaign=y"},
        {"guid": "guid-1"},
        {"body": BODY.replace(". ", ".  ").upper()},
    ],
)
def test_exact_duplicate_is_stored_once_and_tags_merged(database: Database, settings: Settings, change: dict[str, str]) -> None:
    service = make_service(database, settings)
    first = service.ingest(ArticleInput(body=BODY, url="https://example.com/a", guid="guid-1", tags=["Transport"]))
    other = {"body": "Completely different text about football results and the league table, " * 3}
    other.update(change)
    second = service.ingest(ArticleInput(tags=["Russia"], **other))
    assert not second.created
    assert second.duplicate_of == first.article_id == second.article_id
    assert second.tags == ["Rusia", "Transportasi"]
    assert count_articles(database) == 1


def test_near_duplicate_joins_the_first_articles_story(database: Database, settings: Settings) -> None:
    service = make_service(database, settings)
    sample = (FIXTURES / "rusia-garansi-mengikat.txt").read_text("utf-8")
    first = service.ingest(ArticleInput(body=sample, url="https://one.example/a"))
    edited = sample.replace("Lavrov menyatakan", "Lavrov mengatakan").replace("Jumat pekan lalu", "Jumat lalu")
    edited += "\n\nBerita ini telah diperbarui."
    assert hamming(simhash(sample), simhash(edited)) <= settings.near_duplicate_distance
    second = service.ingest(ArticleInput(body=edited, url="https://two.example/b"))
    assert second.created and second.duplicate_of is None
    assert second.article_id != first.article_id
    assert second.story_id == first.article_id
    third = service.ingest(ArticleInput(body=edited + "\n\nSatu paragraf lagi.", url="https://three.example/c"))
    assert third.story_id == first.article_id
    unrelated = service.ingest(ArticleInput(body=BODY))
    assert unrelated.story_id == unrelated.article_id


@pytest.mark.parametrize("body", ["", "   \n\n ", "Too short.", "word " * 5])
def test_empty_or_short_body_is_refused_and_nothing_stored(database: Database, settings: Settings, body: str) -> None:
    with pytest.raises(IngestError, match="nothing to store"):
        make_service(database, settings).ingest(ArticleInput(body=body, tags=["Rusia"]))
    assert count_articles(database) == 0


def test_bad_url_and_unknown_source_are_refused(database: Database, settings: Settings) -> None:
    service = make_service(database, settings)
    with pytest.raises(IngestError, match="http"):
        service.ingest(ArticleInput(body=BODY, url="ftp://example.com/x"))
    with pytest.raises(IngestError, match="source 999"):
        service.ingest(ArticleInput(body=BODY, source_id=999, tags=["Brand New Tag"]))
    assert count_articles(database) == 0
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ArticleTag)) == 0


def test_source_default_tags_and_given_language(database: Database, settings: Settings) -> None:
    with database.session() as session:
        source = Source(kind=SourceKind.FEED, name="Feed", url="https://feed.example/rss", default_tags=["Ekonomi"])
        session.add(source)
        session.flush()
        source_id = source.id
    result = make_service(database, settings).ingest(
        ArticleInput(body=BODY, source_id=source_id, lang="EN-us", tags=["Economy", "#"], published_at=datetime(2024, 1, 2, 3, 4))
    )
    assert result.tags == ["Ekonomi"]
    assert result.lang == "en"
    with database.session() as session:
        assert session.get(Article, result.article_id).source_id == source_id


class RacyIngestService(IngestService):
    """Misses the duplicate once, as a process does when another commits between check and insert."""

    missed = False

    def _find_duplicate(self, session, prepared):  # type: ignore[no-untyped-def]  # overrides IngestService._find_duplicate
        if not self.missed:
            self.missed = True
            return None
        return super()._find_duplicate(session, prepared)


def test_unique_conflict_is_reported_as_duplicate(database: Database, settings: Settings) -> None:
    first = make_service(database, settings).ingest(ArticleInput(body=BODY, url="https://example.com/a"))
    racy = RacyIngestService(database, settings, TagService(database, settings))
    second = racy.ingest(ArticleInput(body=BODY, url="https://example.com/a", tags=["Late"]))
    assert racy.missed
    assert not second.created and second.duplicate_of == first.article_id
    assert second.tags == ["Late"]
    assert count_articles(database) == 1


def test_concurrent_ingest_of_same_article_keeps_one_row(database_url: str, settings: Settings) -> None:
    databases = [Database(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(databases))
    results: list[object] = []

    def work(db: Database) -> None:
        service = IngestService(db, settings, TagService(db, settings))
        service._tags.ensure_aliases_loaded()
        barrier.wait()
        try:
            results.append(service.ingest(ArticleInput(body=BODY, url="https://example.com/race", tags=["Race"])))
        except Exception as error:
            results.append(error)

    threads = [threading.Thread(target=work, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert all(not isinstance(result, Exception) for result in results), results
        assert sum(result.created for result in results) == 1  # type: ignore[attr-defined]  # no Exception in results (asserted above)
        assert len({result.article_id for result in results}) == 1  # type: ignore[attr-defined]  # no Exception in results (asserted above)
        assert count_articles(databases[0]) == 1
    finally:
        for db in databases:
            db.dispose()


def test_tags_per_article_are_capped(database: Database, settings: Settings) -> None:
    from bot.ingest.service import MAX_TAGS_PER_ARTICLE

    result = make_service(database, settings).ingest(ArticleInput(body=BODY, tags=[f"topik {i}" for i in range(50)]))
    assert len(result.tags) == MAX_TAGS_PER_ARTICLE
