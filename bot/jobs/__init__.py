"""Summary and translation jobs: run in the bot's threads (embedded) or on Celery workers (scale-out).

A job is (article ids, languages): "make the summaries of these articles readable in these
languages", i.e. the summary in each article's own language plus its translation into each other
language asked for. One job per batch of up to MODEL_BATCH_SIZE articles wanting the same
languages: the worker summarizes them in one model batch, then translates them, instead of two
jobs racing to summarize the same article or the model running one article at a time.
Jobs are idempotent: the summary service stores one row per (article, lang, kind, model) and
re-reads the row when another process won the race, so a job run twice computes nothing twice.

`build_summary_provider(ctx)` is the one place that chooses: without BROKER_URL the bot computes
summaries itself (SummaryService); with BROKER_URL it enqueues jobs for `newsbot worker` processes
and waits a bounded time for the stored row (QueuedSummaryProvider).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select

from bot.db import Database
from bot.db.models import Article
from bot.ops.logctx import log_context
from bot.services.contracts import ArticleSummary, SummaryProvider
from summarizer.config import SummarizerConfig

if TYPE_CHECKING:
    from bot.context import AppContext

log = logging.getLogger(__name__)

# How long a submitted (article, lang) is remembered, so repeated prefetches don't flood the queue.
RESUBMIT_AFTER_S = 60.0
REMEMBERED_SUBMISSIONS = 10_000
POLL_INTERVAL_S = 0.1
# After one full wait for a key ended empty-handed, further asks within this window only look once:
# the push loop's few summary threads then never sit blocked on articles the workers haven't reached.
NOT_READY_WINDOW_S = 30.0
# A summary still not stored this long after it was first asked for: the workers are not draining
# the queue (all down, or consumers lost after a broker restart). The bot computes it itself.
JOB_STALL_S = 300.0
STALLED_RECHECK_S = 30.0


class SummaryNotReady(TimeoutError):
    """The summary is queued but not stored yet: defer the delivery and try again, don't fail it."""

    def __init__(self, article_id: int, lang: str, waited: float) -> None:
        super().__init__(f"summary of article {article_id} in {lang!r} not ready after {waited:.1f}s")
        self.article_id = article_id
        self.lang = lang


class BatchSummarizer(Protocol):
    """What a job needs from the summary service (bot.services.summaries.SummaryService)."""

    def summarize_articles(self, article_ids: Sequence[int], lang: str) -> object:
        """Compute and store (or re-read) the summaries of these articles in `lang`."""
        ...


class JobQueue(Protocol):
    """Where the bot sends summary jobs."""

    def submit(self, article_ids: Sequence[int], langs: Sequence[str]) -> None:
        """Enqueue one job; returns at once."""
        ...

    def depth(self) -> int | None:
        """Jobs waiting (None when unknown)."""
        ...

    def ping(self) -> str:
        """Raise when the queue is unreachable; else a one-line description."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


def run_summary_job(
    db: Database, summarizer: BatchSummarizer, article_ids: Sequence[int], langs: Sequence[str], *, delay: float = 0.0
) -> list[int]:
    """The body of every job, wherever it runs: summarize the articles that still exist; returns their ids."""
    with log_context(job_articles=list(article_ids), job_langs=list(langs)):
        started = time.monotonic()
        with db.session() as session:
            existing = set(session.scalars(select(Article.id).where(Article.id.in_(list(article_ids)))))
        present = [article_id for article_id in article_ids if article_id in existing]
        if len(present) < len(article_ids):
            # A deleted article is not an error: the job is done for it.
            log.info("job skips deleted articles %s", sorted(set(article_ids) - existing))
        log.info("job started: articles %s langs %s", present, ",".join(langs))
        if delay:
            # Before computing, so a worker killed "mid-job" in tests dies before storing anything.
            time.sleep(delay)
        before = getattr(summarizer, "computations", 0)
        if present:
            for lang in dict.fromkeys(langs):
                summarizer.summarize_articles(present, lang)
        computed = getattr(summarizer, "computations", 0) - before
        log.info(
            "job done: articles %s langs %s computed %d in %.2fs",
            present, ",".join(langs), computed, time.monotonic() - started,
        )
        return present


class InProcessJobs:
    """Jobs on a thread pool inside this process: the embedded default, no broker needed."""

    def __init__(self, db: Database, summarizer: BatchSummarizer, *, workers: int = 1, delay: float = 0.0) -> None:
        self._db = db
        self._summarizer = summarizer
        self._delay = delay
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="summary-job")
        self._pending = 0
        self._lock = threading.Lock()

    def submit(self, article_ids: Sequence[int], langs: Sequence[str]) -> None:
        with self._lock:
            self._pending += 1
        future = self._pool.submit(
            run_summary_job, self._db, self._summarizer, list(article_ids), list(langs), delay=self._delay
        )
        future.add_done_callback(self._finished)

    def _finished(self, future: Future[list[int]]) -> None:
        with self._lock:
            self._pending -= 1
        if future.exception() is not None:
            log.error("summary job failed", exc_info=future.exception())

    def depth(self) -> int:
        with self._lock:
            return self._pending

    def ping(self) -> str:
        return "in-process thread pool"

    def close(self) -> None:
        """Finish queued jobs, then stop the threads."""
        self._pool.shutdown(wait=True)


class QueuedSummaryProvider:
    """SummaryProvider for a bot whose summaries are computed elsewhere (workers on a queue).

    `summary` returns the stored row when present; otherwise it enqueues the job and polls the
    database up to SUMMARY_WAIT seconds, then raises SummaryNotReady so the sender defers the push.
    """

    def __init__(
        self,
        jobs: JobQueue,
        lookup: Callable[[int, str], ArticleSummary | None],
        *,
        wait: float,
        description: str = "summaries computed by workers",
        fallback: Callable[[int, str], ArticleSummary] | None = None,
        stall_after: float = JOB_STALL_S,
        batch_size: int = SummarizerConfig.batch_size,  # MODEL_BATCH_SIZE's default
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from bot.logs import Outage, Throttle

        self._jobs = jobs
        self._lookup = lookup
        self._wait = wait
        self._description = description
        self._fallback = fallback
        self._stall_after = stall_after
        self._batch_size = batch_size  # articles per job: the workers' MODEL_BATCH_SIZE
        self._clock = clock
        self._pending_since: OrderedDict[tuple[int, str], float] = OrderedDict()
        self._broker_errors = Throttle(60.0)
        # One line when the bot starts computing summaries itself, one when workers drain again.
        self.workers = Outage(log, "summary workers", clock=clock)
        self._submitted: OrderedDict[tuple[int, str], float] = OrderedDict()
        self._waited_in_vain: OrderedDict[tuple[int, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def _submit_once(self, requests: Sequence[tuple[int, Sequence[str]]]) -> None:
        """Enqueue what this process did not enqueue recently (jobs are idempotent anyway): one job
        per batch of up to `batch_size` articles that want the same languages, in the order given."""
        now = time.monotonic()
        by_langs: dict[tuple[str, ...], list[int]] = {}
        with self._lock:
            for article_id, langs in requests:
                todo: list[str] = []
                for lang in dict.fromkeys(langs):
                    key = (article_id, lang)
                    last = self._submitted.get(key)
                    if last is not None and now - last < RESUBMIT_AFTER_S:
                        continue
                    todo.append(lang)
                    self._submitted[key] = now
                    self._submitted.move_to_end(key)
                if todo:
                    by_langs.setdefault(tuple(todo), []).append(article_id)
            while len(self._submitted) > REMEMBERED_SUBMISSIONS:
                self._submitted.popitem(last=False)
        for langs, article_ids in by_langs.items():
            for start in range(0, len(article_ids), self._batch_size):
                self._submit(article_ids[start : start + self._batch_size], list(langs))

    def _submit(self, article_ids: list[int], langs: list[str]) -> None:
        try:
            self._jobs.submit(article_ids, langs)
        except Exception as error:
            # The broker is away (restarting): not the delivery's fault. Forget the submission,
            # so the next ask sends it again; the push is deferred (SummaryNotReady), no attempt spent.
            with self._lock:
                for article_id in article_ids:
                    for lang in langs:
                        self._submitted.pop((article_id, lang), None)
            self._broker_errors.log(log, logging.WARNING, "submit", "cannot queue a summary job (%s: %s)",
                                    type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")

    def prefetch(self, requests: Sequence[tuple[int, Sequence[str]]]) -> None:
        missing = [(article_id, [lang for lang in dict.fromkeys(langs) if self._lookup(article_id, lang) is None])
                   for article_id, langs in requests]
        self._submit_once([(article_id, langs) for article_id, langs in missing if langs])

    def oldest_pending_age(self) -> float:
        """Seconds the oldest summary asked for and not yet stored has been waiting (0: none)."""
        with self._lock:
            first = next(iter(self._pending_since.values()), None)
        return 0.0 if first is None else self._clock() - first

    def summary(self, article_id: int, lang: str) -> ArticleSummary:
        key = (article_id, lang)
        stored = self._lookup(article_id, lang)
        if stored is not None:
            self._stored(key)
            return stored
        with self._lock:
            since = self._pending_since.setdefault(key, self._clock())
            while len(self._pending_since) > REMEMBERED_SUBMISSIONS:
                self._pending_since.popitem(last=False)
        # Once workers were found not draining, new summaries get a shorter chance before the bot
        # computes them (one delivered by a worker in time ends that mode).
        stall_after = min(self._stall_after, STALLED_RECHECK_S) if self.workers.active else self._stall_after
        if self._fallback is not None and self._clock() - since >= stall_after:
            # Jobs are not being drained: compute it here rather than hold the push for ever.
            self.workers.begin(f"a summary queued {self._clock() - since:.0f} s ago is still not stored; "
                               "the bot computes waiting summaries itself", held=1)
            summary = self._fallback(article_id, lang)
            with self._lock:
                self._pending_since.pop(key, None)
            return summary
        return self._queued(article_id, lang)

    def _stored(self, key: tuple[int, str]) -> None:
        with self._lock:
            waited = self._pending_since.pop(key, None)
        if waited is not None and self.workers.active:
            self.workers.end()

    def _queued(self, article_id: int, lang: str) -> ArticleSummary:
        self._submit_once([(article_id, [lang])])
        key = (article_id, lang)
        started = time.monotonic()
        with self._lock:
            last_wait = self._waited_in_vain.get(key)
        if last_wait is not None and started - last_wait < NOT_READY_WINDOW_S:
            raise SummaryNotReady(article_id, lang, 0.0)
        while time.monotonic() - started < self._wait:
            time.sleep(POLL_INTERVAL_S)
            stored = self._lookup(article_id, lang)
            if stored is not None:
                with self._lock:
                    self._waited_in_vain.pop(key, None)
                self._stored(key)
                return stored
        with self._lock:
            self._waited_in_vain[key] = time.monotonic()
            self._waited_in_vain.move_to_end(key)
            while len(self._waited_in_vain) > REMEMBERED_SUBMISSIONS:
                self._waited_in_vain.popitem(last=False)
        raise SummaryNotReady(article_id, lang, time.monotonic() - started)

    def close(self) -> None:
        """Release the queue's connections (the bot calls this on shutdown)."""
        self._jobs.close()

    def status_line(self) -> str:
        try:
            depth = self._jobs.depth()
        except Exception as error:
            return f"{self._description}; queue unreachable ({type(error).__name__})"
        waiting = "unknown" if depth is None else str(depth)
        age = self.oldest_pending_age()
        oldest = f", oldest pending summary {age:.0f} s" if age >= 1 else ""
        fallback = "; computing summaries in the bot (workers not draining)" if self.workers.active else ""
        return f"{self._description}; {waiting} jobs waiting{oldest}{fallback}"


def build_job_queue(ctx: AppContext, summarizer: BatchSummarizer | None = None) -> JobQueue:
    """CeleryJobs when BROKER_URL is set, else InProcessJobs on the given (or a new) summary service."""
    settings = ctx.settings
    if settings.broker_url:
        from bot.jobs.celery_app import CeleryJobs, build_celery_app

        return CeleryJobs(build_celery_app(settings), settings.job_queue)
    if summarizer is None:
        from bot.services.summaries import SummaryService

        summarizer = SummaryService(ctx.db, settings)
    return InProcessJobs(ctx.db, summarizer)


def build_summary_provider(ctx: AppContext) -> SummaryProvider:
    """The bot's SummaryProvider: computed in-process without BROKER_URL, by workers with it."""
    from bot.jobs.lookup import stored_summary_lookup

    settings = ctx.settings
    if not settings.broker_url:
        from bot.services.summaries import SummaryService

        return SummaryService(ctx.db, settings)
    from bot.jobs.celery_app import CeleryJobs, build_celery_app

    jobs = CeleryJobs(build_celery_app(settings), settings.job_queue)
    return QueuedSummaryProvider(
        jobs,
        stored_summary_lookup(ctx.db, settings),
        wait=settings.summary_wait,
        description=f"summaries computed by `newsbot worker` on queue {settings.job_queue!r}",
        fallback=_LazyLocalSummaries(ctx),
        stall_after=settings.summary_stall_timeout,
        batch_size=settings.model_batch_size,
    )


class _LazyLocalSummaries:
    """The bot's own SummaryService, built (models loaded) only if workers stop draining jobs."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._service: SummaryProvider | None = None
        self._lock = threading.Lock()

    def __call__(self, article_id: int, lang: str) -> ArticleSummary:
        with self._lock:
            if self._service is None:
                from bot.services.summaries import SummaryService

                self._service = SummaryService(self._ctx.db, self._ctx.settings)
        return self._service.summary(article_id, lang)


__all__ = [
    "BatchSummarizer",
    "InProcessJobs",
    "JobQueue",
    "QueuedSummaryProvider",
    "SummaryNotReady",
    "build_job_queue",
    "build_summary_provider",
    "run_summary_job",
]
