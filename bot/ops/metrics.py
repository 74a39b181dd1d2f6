"""Prometheus metrics: counts read from the shared database at scrape time, plus process counters.

Everything lives in a CollectorRegistry built by `build_metrics`, never in prometheus_client's
global registry, so two processes (or two tests) never share or pollute each other's metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bot.db import Database
from bot.db.models import Article, Delivery, DeliveryStatus, Summary, utcnow

log = logging.getLogger(__name__)

SEND_RATE_WINDOW = timedelta(seconds=60)


class DatabaseCollector(Collector):
    """Reads cluster-wide counts from the database at scrape time (any process may have written)."""

    def __init__(self, db: Database, queue_depth: Callable[[], int | None] | None = None) -> None:
        self._db = db
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("newsbot_database_up", "1 when the last scrape could read the database")
        try:
            yield from self._from_database()
            up.add_metric([], 1)
        except Exception:
            log.warning("metrics: database unreadable", exc_info=True)
            up.add_metric([], 0)
        yield up
        if self._queue_depth is not None:
            depth = GaugeMetricFamily("newsbot_queue_depth", "jobs waiting in the broker queue (-1: unreachable)")
            try:
                value = self._queue_depth()
            except Exception:
                log.warning("metrics: broker unreachable", exc_info=True)
                value = -1
            depth.add_metric([], -1 if value is None else value)
            yield depth

    def _from_database(self) -> Iterator[Metric]:
        with self._db.session() as session:
            articles = session.scalar(select(func.count()).select_from(Article)) or 0
            summaries = session.execute(
                select(Summary.method, Summary.kind, func.count()).group_by(Summary.method, Summary.kind)
            ).all()
            deliveries = dict(
                session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
            )
            recent = session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status == DeliveryStatus.SENT, Delivery.sent_at >= utcnow() - SEND_RATE_WINDOW)
            ) or 0
        ingested = CounterMetricFamily("newsbot_articles_ingested", "articles stored")
        ingested.add_metric([], articles)
        yield ingested
        by_method = CounterMetricFamily(
            "newsbot_summaries", "stored summaries and translations", labels=["method", "kind"]
        )
        for method, kind, count in summaries:
            by_method.add_metric([str(method), str(kind)], count)
        yield by_method
        by_status = GaugeMetricFamily("newsbot_deliveries", "deliveries by status", labels=["status"])
        for status in DeliveryStatus:
            by_status.add_metric([status.value], deliveries.get(status, 0))
        yield by_status
        sent = CounterMetricFamily("newsbot_deliveries_sent", "pushes sent")
        sent.add_metric([], deliveries.get(DeliveryStatus.SENT, 0))
        yield sent
        rate = GaugeMetricFamily("newsbot_send_rate", "messages per second sent over the last minute")
        rate.add_metric([], recent / SEND_RATE_WINDOW.total_seconds())
        yield rate


class ErrorCountingHandler(logging.Handler):
    """Counts ERROR and CRITICAL log records by logger, so every logged failure shows in metrics."""

    def __init__(self, counter: Counter) -> None:
        super().__init__(level=logging.ERROR)
        self._counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        self._counter.labels(logger=record.name.split(".")[0]).inc()


@dataclass
class Metrics:
    """One process's registry and the counters its parts increment."""

    registry: CollectorRegistry
    errors: Counter
    jobs: Counter

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def count_logged_errors(self, logger: logging.Logger | None = None) -> ErrorCountingHandler:
        """Attach a handler to `logger` (root by default) that counts its error records."""
        handler = ErrorCountingHandler(self.errors)
        (logger or logging.getLogger()).addHandler(handler)
        return handler


def build_metrics(db: Database | None = None, queue_depth: Callable[[], int | None] | None = None) -> Metrics:
    """A fresh registry with the database collector (when db is given) and process counters."""
    registry = CollectorRegistry()
    if db is not None:
        registry.register(DatabaseCollector(db, queue_depth))
    errors = Counter("newsbot_errors", "error log records", ["logger"], registry=registry)
    jobs = Counter("newsbot_jobs", "summary jobs run by this process", ["outcome"], registry=registry)
    return Metrics(registry=registry, errors=errors, jobs=jobs)
