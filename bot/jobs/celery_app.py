"""The Celery side of jobs: an app built from settings (never at import), the task, CeleryJobs.

Reliability settings, and why:
- acks_late + reject_on_worker_lost: a job is acknowledged only after it finished, so a worker
  killed mid-job leaves the message to be delivered again (RabbitMQ: when its connection drops;
  Redis: after JOB_VISIBILITY_TIMEOUT). The job is idempotent, so a redelivery is harmless.
- prefetch multiplier 1: a worker holds one job at a time, so no jobs wait behind a busy or dying one.
- autoretry with exponential backoff and jitter on errors (a database restart, a lock timeout).
- the broker going away (a Redis restart): reconnect forever, Redis health checks and keepalive;
  a worker whose consumer did not come back exits to be restarted (bot/jobs/watchdog.py).
- routing: jobs go to JOB_QUEUE, which only `newsbot worker` consumes; the bot only sends (by task
  name) and never imports the models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, Task
from kombu.exceptions import ChannelError

from bot.config import Settings
from bot.db import Database
from bot.jobs import BatchSummarizer, run_summary_job

log = logging.getLogger(__name__)

SUMMARIZE_TASK = "newsbot.summarize"
BROKER_TIMEOUT_S = 5.0
RETRY_BACKOFF_MAX_S = 300


# Redis: notice a dead connection within seconds (a restarted server), not at the next command.
_REDIS_OPTIONS: dict[str, Any] = {"health_check_interval": 10, "socket_keepalive": True, "socket_timeout": 30,
                                  "retry_on_timeout": True}


# RabbitMQ: submit returns once the broker has the job (publisher confirms), not when it is
# merely written to the socket, so a broker crash right after cannot lose it unnoticed.
_AMQP_OPTIONS: dict[str, Any] = {"confirm_publish": True}


def build_celery_app(settings: Settings) -> Celery:
    """A Celery app for BROKER_URL with newsbot's reliability settings; no tasks registered yet."""
    if not settings.broker_url:
        raise ValueError("BROKER_URL is empty: jobs run in-process, no Celery app needed")
    app = Celery("newsbot", broker=settings.broker_url, set_as_current=False)
    restore_every = int(min(10.0, max(1.0, settings.job_visibility_timeout / 10)))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.job_queue,
        task_routes={SUMMARIZE_TASK: {"queue": settings.job_queue}},
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={
            "visibility_timeout": settings.job_visibility_timeout,
            # Redis: sweep for jobs of dead workers often enough that the visibility timeout is
            # what decides (kombu's default sweep runs only about every 100 s).
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1,
            **(_REDIS_OPTIONS if settings.broker_url.startswith(("redis://", "rediss://")) else {}),
            **(_AMQP_OPTIONS if settings.broker_url.startswith(("amqp://", "amqps://", "pyamqp://")) else {}),
        },
        broker_connection_timeout=BROKER_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        # The broker going away is waited out, however long: reconnect forever, and give up the
        # job in hand (acks_late redelivers it) instead of finishing it into a dead connection.
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # Keep newsbot's own logging (JSON option, token redaction) instead of Celery's.
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
    )
    return app


def register_summarize_task(
    app: Celery,
    db: Database,
    summarizer: Callable[[], BatchSummarizer],
    settings: Settings,
    on_done: Callable[[str], None] | None = None,
) -> Task:
    """Register the summary task on a worker's app; `summarizer()` gives the (lazily built) service."""

    @app.task(
        name=SUMMARIZE_TASK,
        bind=True,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(Exception,),
        retry_backoff=True,
        retry_backoff_max=RETRY_BACKOFF_MAX_S,
        retry_jitter=True,
        max_retries=settings.job_max_retries,
    )
    def summarize(self: Task, article_ids: Sequence[int], langs: Sequence[str]) -> list[int]:
        try:
            done = run_summary_job(db, summarizer(), list(article_ids), list(langs))
        except Exception:
            if on_done is not None:
                on_done("retried" if self.request.retries < settings.job_max_retries else "failed")
            log.warning(
                "job for articles %s langs %s failed (try %d)", article_ids, langs, self.request.retries + 1, exc_info=True
            )
            raise
        if on_done is not None:
            on_done("done")
        return done

    return summarize


class CeleryJobs:
    """JobQueue on a Celery broker (Redis or RabbitMQ)."""

    def __init__(self, app: Celery, queue: str) -> None:
        self._app = app
        self._queue = queue

    def submit(self, article_ids: Sequence[int], langs: Sequence[str]) -> None:
        self._app.send_task(SUMMARIZE_TASK, args=[list(article_ids), list(langs)], queue=self._queue)

    def depth(self) -> int:
        with self._app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
            try:
                declared: Any = connection.default_channel.queue_declare(queue=self._queue, passive=True)
            except ChannelError:
                return 0  # no job was ever sent: the queue does not exist yet
            return int(declared.message_count)

    def ping(self) -> str:
        with self._app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
            return f"broker {connection.as_uri()} queue {self._queue!r}"

    def close(self) -> None:
        self._app.close()
