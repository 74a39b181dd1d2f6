"""Summary jobs: idempotent, deferred-not-failed when not ready, in-process and on a real Celery broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from sqlalchemy import delete, func, select

from bot.config import Settings
from bot.context import AppContext
from bot.db import Database
from bot.db.models import Article, Summary, SummaryKind, SummaryMethod
from bot.jobs import (
    InProcessJobs,
    QueuedSummaryProvider,
    SummaryNotReady,
    build_job_queue,
    build_summary_provider,
    run_summary_job,
)
from bot.jobs.celery_app import CeleryJobs, build_celery_app, register_summarize_task
from bot.jobs.lookup import ArticleGone, StoredSummaries
from bot.services.summaries import SummaryService

from conftest import make_settings

REDIS_URL = "redis://127.0.0.1:6379/15"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
ENGLISH = (
    "The central bank raised interest rates by half a point on Thursday. "
    "Officials said inflation had stayed above target for a year. "
    "Markets fell after the announcement. Analysts expect another rise in June."
)
INDONESIAN = (
    "Bank sentral menaikkan suku bunga sebesar setengah poin pada hari Kamis. "
    "Para pejabat mengatakan inflasi bertahan di atas target selama setahun. "
    "Pasar saham turun setelah pengumuman itu. Analis memperkirakan kenaikan lagi pada bulan Juni."
)


def add_articles(db: Database, count: int, lang: str = "en") -> list[int]:
    body = ENGLISH if lang == "en" else INDONESIAN
    with db.session() as session:
        articles = [
            Article(title=f"Title {i}", body=f"{body} Item {i}.", lang=lang, fingerprint=f"fp-{uuid.uuid4().hex}")
            for i in range(count)
        ]
        session.add_all(articles)
        session.flush()
        return [article.id for article in articles]


def summary_keys(db: Database) -> list[tuple[int, str, str, str]]:
    with db.session() as session:
        rows = session.scalars(select(Summary).order_by(Summary.article_id, Summary.kind))
        return [(row.article_id, row.lang, str(row.kind), row.model) for row in rows]


def test_a_job_run_twice_or_by_racing_workers_stores_one_row_each(database: Database, tmp_path: Path) -> None:
    settings = make_settings(database.url, tmp_path)
    ids = add_articles(database, 3)
    # Two "workers": separate services, as in two processes, on the same article ids at once.
    services = [SummaryService(database, settings), SummaryService(database, settings)]
    barrier = threading.Barrier(2)

    def work(service: SummaryService) -> None:
        barrier.wait()
        run_summary_job(database, service, ids, ["en"])

    threads = [threading.Thread(target=work, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert summary_keys(database) == [(i, "en", "summary", "extractive:lead") for i in ids]
    # Run again: nothing new is computed or stored.
    before = sum(service.computations for service in services)
    assert run_summary_job(database, services[0], ids, ["en"]) == ids
    assert sum(service.computations for service in services) == before
    assert len(summary_keys(database)) == 3


def test_a_job_for_a_deleted_article_completes(database: Database, tmp_path: Path) -> None:
    service = SummaryService(database, make_settings(database.url, tmp_path))
    keep, gone = add_articles(database, 2)
    with database.session() as session:
        session.execute(delete(Article).where(Article.id == gone))
    assert run_summary_job(database, service, [gone, keep], ["en"]) == [keep]
    assert [key[0] for key in summary_keys(database)] == [keep]


def test_queued_provider_defers_then_serves_what_the_jobs_stored(database: Database, tmp_path: Path) -> None:
    settings = make_settings(database.url, tmp_path)
    service = SummaryService(database, settings)
    # One slow job thread: the second article's job waits behind the first.
    jobs = InProcessJobs(database, service, workers=1, delay=1.5)
    provider = QueuedSummaryProvider(jobs, StoredSummaries(database, settings), wait=1.0)
    first, second = add_articles(database, 2)
    provider.prefetch([(first, ["en"])])
    with pytest.raises(SummaryNotReady) as raised:
        provider.summary(second, "en")
    assert (raised.value.article_id, raised.value.lang) == (second, "en")
    # Asking again soon neither enqueues the job twice nor blocks a thread for another full wait.
    asked = time.monotonic()
    with pytest.raises(SummaryNotReady):
        provider.summary(second, "en")
    assert time.monotonic() - asked < 0.5  # well under the 1 s wait
    jobs.close()  # waits for the queued jobs
    got = provider.summary(second, "en")
    assert got == SummaryService(database, settings).summary(second, "en")
    assert got.method is SummaryMethod.EXTRACTIVE and got.model is None
    assert service.computations == 2
    assert len(summary_keys(database)) == 2
    with database.session() as session:
        session.execute(delete(Article).where(Article.id == first))
    with pytest.raises(ArticleGone):
        provider.summary(first, "en")


def test_stored_lookup_falls_back_to_the_original_when_no_translation_comes(database: Database, tmp_path: Path) -> None:
    settings = make_settings(database.url, tmp_path, translation_model="Helsinki-NLP/opus-mt-{src}-{tgt}")
    (article_id,) = add_articles(database, 1, lang="id")
    now = [100.0]
    lookup = StoredSummaries(database, settings, translation_grace=30.0, clock=lambda: now[0])
    assert lookup(article_id, "en") is None  # nothing stored yet
    with database.session() as session:
        session.add(Summary(article_id=article_id, lang="id", kind=SummaryKind.SUMMARY, model="extractive:lead",
                            method=SummaryMethod.EXTRACTIVE, title="Title 0", text="Ringkasan."))
    assert lookup(article_id, "id").text == "Ringkasan."  # type: ignore[union-attr]  # the summary was just added
    assert lookup(article_id, "en") is None  # the translation may still come
    now[0] += 29.0
    assert lookup(article_id, "en") is None
    now[0] += 2.0
    fallback = lookup(article_id, "en")
    assert fallback is not None and (fallback.lang, fallback.translated_from) == ("id", None)
    # A translation stored later is found.
    with database.session() as session:
        session.add(Summary(article_id=article_id, lang="en", kind=SummaryKind.TRANSLATION,
                            model="Helsinki-NLP/opus-mt-id-en|extractive:lead", method=SummaryMethod.EXTRACTIVE,
                            title="Title zero", text="Summary."))
    translated = lookup(article_id, "en")
    assert translated is not None
    assert (translated.lang, translated.text, translated.translated_from) == ("en", "Summary.", "id")
    assert translated.translation_model == "Helsinki-NLP/opus-mt-id-en"


def test_queued_prefetch_submits_one_job_per_batch_of_articles_wanting_the_same_languages(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(database.url, tmp_path)
    submitted: list[tuple[list[int], list[str]]] = []

    class RecordingJobs:
        def submit(self, article_ids: Sequence[int], langs: Sequence[str]) -> None:
            submitted.append((list(article_ids), list(langs)))

        def depth(self) -> int:
            return len(submitted)

        def ping(self) -> str:
            return "recording"

        def close(self) -> None:
            pass

    provider = QueuedSummaryProvider(RecordingJobs(), StoredSummaries(database, settings), wait=0.0, batch_size=3)
    ids = add_articles(database, 9)
    SummaryService(database, settings).summary(ids[0], "en")  # already stored: skipped
    burst = [(article_id, ["en", "id"]) for article_id in ids[:7]] + [(article_id, ["en"]) for article_id in ids[7:]]
    provider.prefetch(burst)
    # Arrival order, at most 3 articles a job, one job per language set; the stored one is not asked for.
    assert submitted == [(ids[1:4], ["en", "id"]), (ids[4:7], ["en", "id"]), (ids[7:9], ["en"])]
    provider.prefetch(burst)  # asked again soon: nothing is queued twice
    assert len(submitted) == 3


def test_factory_picks_in_process_without_a_broker(sqlite_url: str, tmp_path: Path) -> None:
    from bot.context import open_context

    ctx = open_context(make_settings(sqlite_url, tmp_path))
    try:
        assert isinstance(build_summary_provider(ctx), SummaryService)
        jobs = build_job_queue(ctx)
        assert isinstance(jobs, InProcessJobs)
        jobs.close()
    finally:
        ctx.close()


# --- a real Celery broker (Redis) ---------------------------------------------------------------


@pytest.fixture
def broker_settings(database_url: str, tmp_path: Path) -> Iterator[Settings]:
    queue = f"newsbot-test-{uuid.uuid4().hex[:8]}"
    yield make_settings(database_url, tmp_path, broker_url=REDIS_URL, job_queue=queue, job_visibility_timeout=30)
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(queue)
    client.close()


def test_celery_jobs_run_on_a_worker_and_the_bot_reads_them(broker_settings: Settings) -> None:
    broker_settings = broker_settings.model_copy(update={"model_batch_size": 2})
    ctx = AppContext(settings=broker_settings, db=Database(broker_settings.database_url))
    try:
        provider = build_summary_provider(ctx)
        assert isinstance(provider, QueuedSummaryProvider)
        ids = add_articles(ctx.db, 5)
        provider.prefetch([(article_id, ["en", "id"]) for article_id in ids])  # a burst, as the fan-out hands it over
        # Nothing consumes yet: one job per batch of MODEL_BATCH_SIZE (2) articles waits in the broker.
        sender = CeleryJobs(build_celery_app(broker_settings), broker_settings.job_queue)
        assert sender.depth() == 3
        assert "3 jobs waiting" in provider.status_line()
        assert "queue" in sender.ping()

        worker_app = build_celery_app(broker_settings)
        service = SummaryService(ctx.db, broker_settings)
        outcomes: list[str] = []
        register_summarize_task(worker_app, ctx.db, lambda: service, broker_settings, on_done=outcomes.append)
        with start_worker(worker_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            deadline = time.monotonic() + 20
            while len(outcomes) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            results = [provider.summary(article_id, "en") for article_id in ids]
        assert outcomes == ["done"] * 3
        assert [result.article_id for result in results] == ids
        assert all(result.method is SummaryMethod.EXTRACTIVE for result in results)
        assert service.computations == 5  # "id" found the row "en" made (translation is off)
        assert sender.depth() == 0
        with ctx.db.session() as session:
            assert session.scalar(select(func.count()).select_from(Summary)) == 5
    finally:
        ctx.close()


def test_rabbitmq_works_as_the_broker_too(sqlite_url: str, tmp_path: Path) -> None:
    queue = f"newsbot-test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(sqlite_url, tmp_path, broker_url=AMQP_URL, job_queue=queue)
    db = Database(sqlite_url)
    sender_app = build_celery_app(settings)
    sender = CeleryJobs(sender_app, queue)
    try:
        from bot.db.migrate import upgrade

        upgrade(db.engine)
        ids = add_articles(db, 2)
        assert sender.depth() == 0  # the queue does not exist yet
        for article_id in ids:
            sender.submit([article_id], ["en"])
        assert sender.depth() == 2
        worker_app = build_celery_app(settings)
        service = SummaryService(db, settings)
        outcomes: list[str] = []
        register_summarize_task(worker_app, db, lambda: service, settings, on_done=outcomes.append)
        with start_worker(worker_app, pool="solo", perform_ping_check=False, shutdown_timeout=60):
            deadline = time.monotonic() + 20
            while len(outcomes) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert outcomes == ["done", "done"]
        assert sorted(key[0] for key in summary_keys(db)) == ids
        assert sender.depth() == 0
    finally:
        with sender_app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
        sender.close()
        db.dispose()


def test_an_unreachable_broker_is_reported(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, tmp_path, broker_url="redis://127.0.0.1:1/0")
    jobs = CeleryJobs(build_celery_app(settings), settings.job_queue)
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - kombu raises OperationalError subclasses
        jobs.ping()
    assert time.monotonic() - started < 15


def test_a_worker_whose_consumer_is_gone_exits_and_an_idle_one_stays() -> None:
    from bot.jobs.watchdog import EXIT_STALLED, ConsumerWatchdog

    now = [0.0]
    depth: list[int | None] = [0]
    exits: list[int] = []
    watchdog = ConsumerWatchdog(lambda: depth[0], stall_after=120, clock=lambda: now[0], exit=exits.append)
    now[0] = 500
    assert not watchdog.check() and exits == []  # idle because nothing waits
    watchdog.started()
    depth[0] = 3
    now[0] = 1000
    assert not watchdog.check()  # a long job is running: not stalled
    watchdog.finished()
    now[0] = 1100
    assert not watchdog.check()  # took a job 100 s ago
    now[0] = 1121
    assert watchdog.check() and exits == [EXIT_STALLED]

    def unreachable() -> int:
        raise ConnectionError("broker restarting")

    quiet = ConsumerWatchdog(unreachable, stall_after=1, clock=lambda: now[0], exit=exits.append)
    now[0] = 5000
    assert not quiet.check() and exits == [EXIT_STALLED]  # the broker is away: Celery reconnects


def test_the_bot_computes_summaries_itself_when_workers_do_not_drain_the_queue(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from bot.jobs import QueuedSummaryProvider, SummaryNotReady
    from bot.services.contracts import ArticleSummary

    now = [0.0]
    stored: dict[tuple[int, str], ArticleSummary] = {}
    submitted: list[tuple[list[int], list[str]]] = []

    class Jobs:
        def submit(self, article_ids: list[int], langs: list[str]) -> None:
            submitted.append((list(article_ids), list(langs)))

        def depth(self) -> int:
            return len(submitted)

        def ping(self) -> str:
            return "ok"

        def close(self) -> None:
            pass

    from bot.db.models import SummaryMethod

    local = ArticleSummary(article_id=1, lang="en", title="t", text="computed by the bot",
                           method=next(iter(SummaryMethod)), model=None, translated_from=None, translation_model=None)
    provider = QueuedSummaryProvider(Jobs(), lambda a, lang: stored.get((a, lang)), wait=0.0,
                                     fallback=lambda a, lang: local, stall_after=300, clock=lambda: now[0])
    with pytest.raises(SummaryNotReady):
        provider.summary(1, "en")
    now[0] = 299
    with pytest.raises(SummaryNotReady):
        provider.summary(1, "en")
    assert provider.oldest_pending_age() == 299 and "oldest pending summary 299 s" in provider.status_line()
    now[0] = 301
    with caplog.at_level(logging.WARNING, logger="bot.jobs"):
        assert provider.summary(1, "en") is local
        with pytest.raises(SummaryNotReady):
            provider.summary(2, "en")  # a new one gets STALLED_RECHECK_S first
        stored[(2, "en")] = local
        now[0] = 310
        assert provider.summary(2, "en") is local  # a worker stored it: workers drain again
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("summary workers unavailable") and messages[1].startswith("summary workers back")
