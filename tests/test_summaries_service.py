"""SummaryService on SQLite and PostgreSQL with the extractive fallback (SUMMARY_MODEL=none)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.db.models import Article, Summary, SummaryKind, SummaryMethod
from bot.services.contracts import SummaryProvider
from bot.services.summaries import ArticleNotFound, SummaryService

from conftest import make_settings

SAMPLE = Path(__file__).parent / "fixtures" / "rusia-garansi-mengikat.txt"
ENGLISH = (
    "The central bank raised interest rates by half a point on Thursday. "
    "Officials said inflation had stayed above target for a year. "
    "Markets fell after the announcement. Analysts expect another rise in June."
)


def add_article(db: Database, body: str, lang: str | None, title: str = "Judul", key: str = "a") -> int:
    with db.session() as session:
        article = Article(title=title, body=body, lang=lang, fingerprint=f"fp-{key}")
        session.add(article)
        session.flush()
        return article.id


def summary_rows(db: Database) -> list[Summary]:
    with db.session() as session:
        return list(session.scalars(select(Summary).order_by(Summary.id)))


def test_extractive_summary_is_stored_once(database: Database, tmp_path: Path) -> None:
    service = SummaryService(database, make_settings(database.url, tmp_path))
    provider: SummaryProvider = service  # the contract the bot's other parts use
    article_id = add_article(database, SAMPLE.read_text(encoding="utf-8"), "id")
    first = provider.summary(article_id, "id")
    assert first.lang == "id" and first.method is SummaryMethod.EXTRACTIVE and first.model is None
    # The stored body keeps its dateline ("POROS PERLAWANAN – "); the summary does not open with it.
    assert first.text.startswith("Menlu Rusia, Sergey Lavrov") and first.translated_from is None
    # Another language with translation off: the original summary, marked with its own language.
    other = service.summary(article_id, "en")
    assert other == first
    assert service.computations == 1
    rows = summary_rows(database)
    assert [(row.lang, row.kind, row.model) for row in rows] == [("id", SummaryKind.SUMMARY, "extractive:lead")]
    # A second service (another process) reads the row instead of computing.
    again = SummaryService(database, make_settings(database.url, tmp_path))
    assert again.summary(article_id, "id") == first and again.computations == 0
    assert "extractive:lead" in service.status_line()


def test_concurrent_callers_share_one_computation(database: Database, tmp_path: Path) -> None:
    service = SummaryService(database, make_settings(database.url, tmp_path))
    article_id = add_article(database, ENGLISH, "en")
    barrier = threading.Barrier(8)
    results = []

    def ask() -> None:
        barrier.wait()
        results.append(service.summary(article_id, "en"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len({result.text for result in results}) == 1
    assert service.computations == 1
    assert service.engine.stats.extractive_summaries == 1
    assert len(summary_rows(database)) == 1


def test_two_services_racing_end_with_one_row(database: Database, tmp_path: Path) -> None:
    # Two services stand for two processes: each computes, the unique key keeps one row.
    article_id = add_article(database, ENGLISH, "en")
    services = [SummaryService(database, make_settings(database.url, tmp_path)) for _ in range(2)]
    barrier = threading.Barrier(2)
    results = []

    def ask(service: SummaryService) -> None:
        barrier.wait()
        results.append(service.summary(article_id, "en"))

    threads = [threading.Thread(target=ask, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Summary)) == 1


def test_batch_and_unknown_language(database: Database, tmp_path: Path) -> None:
    service = SummaryService(database, make_settings(database.url, tmp_path, summary_sentences=2))
    english = add_article(database, ENGLISH, "en", key="en")
    detected = add_article(database, ENGLISH, None, key="detected")
    results = service.summarize_articles([english, detected], "id")
    assert [result.article_id for result in results] == [english, detected]
    assert results[0].text == (
        "The central bank raised interest rates by half a point on Thursday. "
        "Officials said inflation had stayed above target for a year."
    )
    assert results[1].lang == "en"  # detected from the text
    assert service.computations == 2
    assert service.summarize_articles([english], None)[0] == results[0]
    assert service.computations == 2
    with pytest.raises(ArticleNotFound):
        service.summary(10_000, "en")


def test_prefetch_computes_in_background(database: Database, tmp_path: Path) -> None:
    service = SummaryService(database, make_settings(database.url, tmp_path))
    article_id = add_article(database, ENGLISH, "en")
    service.prefetch([(article_id, ["en", "id", "en"])])
    service.close()  # waits for the pool
    assert len(summary_rows(database)) == 1
    assert service.computations == 1


def test_the_bot_and_the_service_show_the_same_stored_summary(database: Database, tmp_path: Path) -> None:
    from bot.jobs.lookup import StoredSummaries

    settings = make_settings(database.url, tmp_path)  # SUMMARY_MODEL=none: this process makes extractive ones
    article_id = add_article(database, ENGLISH, "en")
    with database.session() as session:
        # A worker that had a model stored its summary; later one without it stored the fallback.
        session.add(Summary(article_id=article_id, lang="en", kind=SummaryKind.SUMMARY, model="org/model",
                            method=SummaryMethod.SEQ2SEQ, title="Judul", text="What the model wrote."))
        session.flush()
        session.add(Summary(article_id=article_id, lang="en", kind=SummaryKind.SUMMARY, model="extractive:lead",
                            method=SummaryMethod.EXTRACTIVE, title="Judul", text="The lead sentences."))
    service = SummaryService(database, settings)
    from_service = service.summary(article_id, "en")
    from_lookup = StoredSummaries(database, settings)(article_id, "en")
    assert from_service == from_lookup
    assert (from_service.text, from_service.model) == ("What the model wrote.", "org/model")
    assert service.computations == 0


def test_a_configured_model_makes_its_own_summary_despite_older_ones(database: Database, tmp_path: Path) -> None:
    from bot.services.summaries import choose_summary

    rows = [
        Summary(id=1, model="old/model", method=SummaryMethod.SEQ2SEQ),
        Summary(id=2, model="extractive:lead", method=SummaryMethod.EXTRACTIVE),
        Summary(id=3, model="new/model", method=SummaryMethod.SEQ2SEQ),
    ]
    assert choose_summary(rows, "old/model") is rows[0]
    assert choose_summary(rows[:2], "new/model") is None  # the caller computes it
    assert choose_summary(rows, "extractive:lead") is rows[2]  # a model's summary beats the fallback
    assert choose_summary(rows, None) is rows[2]
    assert choose_summary(rows[1:2], None) is rows[1]
    assert choose_summary([], None) is None
