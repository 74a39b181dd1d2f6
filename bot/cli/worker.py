"""`newsbot worker`: a Celery worker that loads the models and takes summary and translation jobs.

Run any number of them, on any number of machines, against the same DATABASE_URL (PostgreSQL)
and BROKER_URL. SIGTERM (or Ctrl-C) is a warm shutdown: the running job finishes, then the
worker exits; a job cut short by SIGKILL is delivered again to another worker (acks_late).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

import click

from bot.cli.common import announce_database, cli_settings
from bot.config import EXIT_USAGE, Settings
from bot.context import AppContext, open_context

if TYPE_CHECKING:
    from bot.services.summaries import SummaryService

log = logging.getLogger(__name__)

SCHEMA_WAIT_S = 120.0
WARM_UP_TEXT = "Newsbot is starting. This sentence loads the models."


def wait_for_schema(ctx: AppContext, timeout: float) -> None:
    """Workers never migrate (the bot or `newsbot db upgrade` does): wait until the schema is current."""
    from alembic.script import ScriptDirectory

    from bot.db.migrate import alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    deadline = time.monotonic() + timeout
    while True:
        try:
            current = current_revision(ctx.db.engine)
        except Exception as error:
            current = f"unreachable ({type(error).__name__})"
        if current == head:
            return
        if time.monotonic() > deadline:
            raise click.ClickException(
                f"database schema is at {current}, newest is {head}: run `newsbot db upgrade` (or start the bot) first"
            )
        time.sleep(1.0)


class LazySummaryService:
    """Builds the summary service once, on first use or at warm-up, in whichever thread comes first."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._service: SummaryService | None = None
        self._lock = threading.Lock()

    def get(self) -> SummaryService:
        with self._lock:
            if self._service is None:
                from bot.services.summaries import SummaryService

                self._service = SummaryService(self._ctx.db, self._ctx.settings)
            return self._service

    def warm_up(self) -> None:
        """Load the models now (one tiny generation each), so readiness tells the truth and the first job is fast."""
        from summarizer import TranslationUnavailable

        engine = self.get().engine
        langs = list(dict.fromkeys(self._ctx.settings.model_languages))
        try:
            for lang in langs:
                engine.summarize_batch([WARM_UP_TEXT], [lang])
            for src in langs:
                for tgt in langs:
                    if src != tgt:
                        # Unavailable pairs are reported by the engine once; jobs send the original then.
                        with contextlib.suppress(TranslationUnavailable):
                            engine.translate_batch([WARM_UP_TEXT], src, tgt)
        except Exception:
            log.warning("model warm-up failed", exc_info=True)

    def status_line(self) -> str:
        service = self.get()
        return str(service.status_line())


def _pin_cpus(cpus: tuple[int, ...]) -> None:
    os.sched_setaffinity(0, set(cpus))
    log.info("worker pinned to CPU cores %s", sorted(cpus))


def start_worker(settings: Settings, *, concurrency: int, cpus: tuple[int, ...], hostname: str | None) -> None:
    """Build everything from settings, load the models, then consume jobs until shut down."""
    from bot.jobs.celery_app import build_celery_app, register_summarize_task
    from bot.ops.health import HealthServer, process_checks
    from bot.ops.logctx import install_context_filter, log_context
    from bot.ops.metrics import build_metrics

    announce_database(settings)
    if cpus:
        _pin_cpus(cpus)
    install_context_filter()
    logging.captureWarnings(True)  # Celery's warnings become log records (JSON with LOG_FORMAT=json)
    ctx = open_context(settings, migrate=False)
    name = hostname or f"newsbot-worker-{os.getpid()}@{socket.gethostname()}"
    with log_context(worker=name):
        wait_for_schema(ctx, SCHEMA_WAIT_S)
        service = LazySummaryService(ctx)
        service.warm_up()
        log.info("worker %s ready: %s", name, service.status_line())

    app = build_celery_app(settings)
    checks, depth = process_checks(settings, ctx.db, service.status_line)
    metrics = build_metrics(ctx.db, queue_depth=depth)
    metrics.count_logged_errors()
    register_summarize_task(
        app, ctx.db, service.get, settings,
        on_done=lambda outcome: metrics.jobs.labels(outcome=outcome).inc(),
    )
    # A worker whose broker consumer died (Redis restarted while a job finished) exits to be restarted.
    from celery import signals

    from bot.jobs.celery_app import CeleryJobs
    from bot.jobs.watchdog import ConsumerWatchdog

    watchdog = ConsumerWatchdog(CeleryJobs(app, settings.job_queue).depth, stall_after=settings.worker_stall_timeout,
                                interval=min(15.0, settings.worker_stall_timeout / 4)).start()
    signals.task_prerun.connect(watchdog.started, weak=False)
    signals.task_postrun.connect(watchdog.finished, weak=False)
    health: HealthServer | None = None
    if settings.health_port:
        health = HealthServer(settings.health_listen, settings.health_port, checks, metrics).start()
    # JSON logs stay pure JSON: no startup banner on stdout.
    argv = ["--quiet"] if settings.log_format == "json" else []
    argv += [
        "worker",
        f"--queues={settings.job_queue}",
        # solo: one job at a time in this process, models loaded once; threads share them.
        f"--pool={'solo' if concurrency == 1 else 'threads'}",
        f"--concurrency={concurrency}",
        f"--loglevel={settings.log_level.upper()}",
        f"--hostname={name}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    try:
        app.worker_main(argv)
    finally:
        watchdog.stop()
        if health is not None:
            health.stop()
        ctx.close()
        log.info("worker %s stopped", name)


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Jobs at once (threads sharing one copy of the models).")
@click.option("--cpu", "cpus", type=click.IntRange(0), multiple=True,
              help="Pin the worker to this CPU core (repeat for several).")
@click.option("--hostname", "-n", default=None, help="Worker name shown in logs (default: pid@host).")
def worker(concurrency: int, cpus: tuple[int, ...], hostname: str | None) -> None:
    """Take summary and translation jobs from BROKER_URL (run as many as you like)."""
    settings = cli_settings(answers_users=False)
    if not settings.broker_url:
        click.echo(
            "newsbot: `newsbot worker` needs BROKER_URL (e.g. redis://localhost:6379/0); "
            "without it the bot computes summaries itself",
            err=True,
        )
        raise SystemExit(EXIT_USAGE)
    available = os.sched_getaffinity(0)
    missing = sorted(set(cpus) - available)
    if missing:
        click.echo(f"newsbot: --cpu {missing[0]} is not available here (cores: {sorted(available)})", err=True)
        raise SystemExit(EXIT_USAGE)
    start_worker(settings, concurrency=concurrency, cpus=cpus, hostname=hostname)
