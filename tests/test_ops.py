"""Health endpoint, readiness checks, Prometheus metrics and log context, over real HTTP and databases."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.db import Database
from bot.db.models import (
    Article,
    Chat,
    ChatKind,
    Delivery,
    DeliveryStatus,
    Summary,
    SummaryKind,
    SummaryMethod,
    utcnow,
)
from bot.logs import JsonFormatter
from bot.ops.health import Check, HealthServer, database_check, readiness, status_check
from bot.ops.logctx import ContextFilter, log_context
from bot.ops.metrics import build_metrics


def _samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _seed(database: Database) -> None:
    """3 articles, summaries by two methods, deliveries in three states (2 sent just now)."""
    now = utcnow()
    with database.session() as session:
        articles = [Article(title=f"t{i}", body="b.", fingerprint=f"{i:064d}") for i in range(3)]
        chats = [Chat(id=100 + i, kind=ChatKind.PRIVATE) for i in range(4)]
        session.add_all(articles + chats)
        session.flush()
        session.add_all(
            [
                Summary(article_id=articles[0].id, lang="id", kind=SummaryKind.SUMMARY, model="m",
                        method=SummaryMethod.SEQ2SEQ, text="s"),
                Summary(article_id=articles[0].id, lang="en", kind=SummaryKind.TRANSLATION, model="t",
                        method=SummaryMethod.SEQ2SEQ, text="s"),
                Summary(article_id=articles[1].id, lang="id", kind=SummaryKind.SUMMARY,
                        model="extractive:lead", method=SummaryMethod.EXTRACTIVE, text="s"),
            ]
        )
        statuses = [DeliveryStatus.SENT, DeliveryStatus.SENT, DeliveryStatus.PENDING, DeliveryStatus.PARKED]
        for chat, status in zip(chats, statuses, strict=True):
            sent_at = now - timedelta(seconds=5) if status is DeliveryStatus.SENT else None
            session.add(Delivery(article_id=articles[0].id, story_id=articles[0].id, chat_id=chat.id,
                                 status=status, sent_at=sent_at))


def test_metrics_count_what_the_database_holds(database: Database) -> None:
    _seed(database)
    metrics = build_metrics(database, queue_depth=lambda: 7)
    samples = _samples(metrics.exposition())
    assert samples[("newsbot_articles_ingested_total", ())] == 3
    assert samples[("newsbot_summaries_total", (("kind", "summary"), ("method", "seq2seq")))] == 1
    assert samples[("newsbot_summaries_total", (("kind", "translation"), ("method", "seq2seq")))] == 1
    assert samples[("newsbot_summaries_total", (("kind", "summary"), ("method", "extractive")))] == 1
    assert samples[("newsbot_deliveries", (("status", "sent"),))] == 2
    assert samples[("newsbot_deliveries", (("status", "pending"),))] == 1
    assert samples[("newsbot_deliveries", (("status", "parked"),))] == 1
    assert samples[("newsbot_deliveries", (("status", "retry"),))] == 0
    assert samples[("newsbot_deliveries_sent_total", ())] == 2
    assert samples[("newsbot_send_rate", ())] == pytest.approx(2 / 60)
    assert samples[("newsbot_queue_depth", ())] == 7
    assert samples[("newsbot_database_up", ())] == 1


def test_metrics_survive_a_broken_database_and_broker(tmp_path: Path) -> None:
    # A SQLite file with no tables: every query fails, the scrape still answers.
    database = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")

    def broker_down() -> int:
        raise ConnectionError("broker down")

    samples = _samples(build_metrics(database, queue_depth=broker_down).exposition())
    database.dispose()
    assert samples[("newsbot_database_up", ())] == 0
    assert samples[("newsbot_queue_depth", ())] == -1
    assert ("newsbot_articles_ingested_total", ()) not in samples


def test_registries_are_independent_and_count_logged_errors() -> None:
    first, second = build_metrics(), build_metrics()
    logger = logging.getLogger("newsbot_test_ops_errors")
    handler = first.count_logged_errors(logger)
    try:
        logger.error("boom")
        logger.warning("not an error")
        logger.critical("worse")
    finally:
        logger.removeHandler(handler)
    assert _samples(first.exposition())[("newsbot_errors_total", (("logger", "newsbot_test_ops_errors"),))] == 2
    assert ("newsbot_errors_total", (("logger", "newsbot_test_ops_errors"),)) not in _samples(second.exposition())


@pytest.fixture
def health(sqlite_database: Database) -> Iterator[tuple[HealthServer, dict[str, bool]]]:
    switches = {"queue_up": True}

    def queue() -> str:
        if not switches["queue_up"]:
            raise ConnectionError("connection refused")
        return "broker ok"

    checks = [
        database_check(sqlite_database),
        status_check("models", lambda: "extractive fallback (SUMMARY_MODEL=none)"),
        Check("queue", queue),
    ]
    server = HealthServer("127.0.0.1", 0, checks, build_metrics(sqlite_database)).start()
    yield server, switches
    server.stop()


def test_health_endpoint_answers_liveness_readiness_and_metrics(
    health: tuple[HealthServer, dict[str, bool]],
) -> None:
    server, switches = health
    base = f"http://127.0.0.1:{server.port}"
    live = httpx.get(f"{base}/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})

    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["models"] == {"ok": True, "detail": "extractive fallback (SUMMARY_MODEL=none)"}

    switches["queue_up"] = False
    not_ready = httpx.get(f"{base}/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["status"] == "not ready"
    assert not_ready.json()["checks"]["queue"] == {"ok": False, "detail": "ConnectionError: connection refused"}

    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert _samples(metrics.content)[("newsbot_articles_ingested_total", ())] == 0
    assert httpx.get(f"{base}/nothing").status_code == 404


def test_readiness_fails_on_an_unmigrated_database(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    ready, body = readiness([database_check(database)])
    database.dispose()
    assert ready is False
    detail = body["checks"]["database"]["detail"]  # type: ignore[index]  # nested JSON values are typed object
    assert "newsbot db upgrade" in detail


def test_log_context_appears_in_json_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("newsbot_test_ops_ctx")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with log_context(job_articles=[1, 2], job_lang="en"), log_context(worker="w1"):
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "inside"
    assert (inside["job_articles"], inside["job_lang"], inside["worker"]) == ([1, 2], "en", "w1")
    assert "job_lang" not in outside


async def test_health_task_serves_until_stopped(sqlite_url: str, tmp_path: Path) -> None:
    import asyncio
    import socket

    from bot.context import open_context
    from bot.ops.health import health_task

    from conftest import make_settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert health_task(make_settings(sqlite_url, tmp_path), None, lambda: "") is None  # type: ignore[arg-type]  # no database is needed when HEALTH_PORT is off
    ctx = open_context(make_settings(sqlite_url, tmp_path, health_port=port))
    stop = asyncio.Event()
    task = health_task(ctx.settings, ctx.db, lambda: "extractive:lead")
    assert task is not None
    serving = asyncio.create_task(task(stop))
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    ready = await client.get(f"http://127.0.0.1:{port}/readyz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert ready.status_code == 200
            assert ready.json()["checks"]["models"]["detail"] == "extractive:lead"
            assert "queue" not in ready.json()["checks"]  # no BROKER_URL, no queue check
            stop.set()
            await asyncio.wait_for(serving, 10)
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        stop.set()
        ctx.close()
