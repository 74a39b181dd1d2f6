"""The scale-out path for real: PostgreSQL, Redis, two `newsbot worker` processes and the bot's push loop.

A burst of articles is ingested; one worker is SIGKILLed in the middle of a job. Every article
must end with exactly one stored summary (and one translation per other reader language),
computed once; every follower gets exactly one push per article; nothing is left pending; the
surviving worker stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import func, select, text

from bot.config import Settings
from bot.db import Database
from bot.db.models import ChatKind, Delivery, DeliveryStatus, Summary, SummaryKind

from conftest import POSTGRES_ADMIN_URL, follow_tags, make_settings
from pgscratch import scratch_postgres

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/14"
ROOT = Path(__file__).resolve().parent.parent
ARTICLES = 8
CHATS = {1001: "en", 1002: "en", 1003: "id", 1004: "id", 1005: "en"}
JOB_DELAY_S = 1.0  # each job holds this long before computing, so a kill lands mid-job
VISIBILITY_S = 5  # a killed worker's job goes to the other worker after this long
DONE = re.compile(r"job done: articles \[([\d, ]*)\] langs (\S+) computed (\d+)")
STARTED = re.compile(r"job started: articles \[([\d, ]*)\] langs (\S+)")


@pytest.fixture
def scaleout_url() -> Iterator[str]:
    """A new, migrated PostgreSQL database shared by the test and the worker processes."""
    with scratch_postgres(POSTGRES_ADMIN_URL, "newsbot_scale") as url:
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """One `newsbot worker` subprocess with its log file and health port."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path, cwd: Path, *, job_delay: float) -> None:
        self.name = name
        self.port = _free_port()
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            # slowjobs.py holds each job `job_delay` seconds before computing, so kills land mid-job.
            [sys.executable, str(ROOT / "tests" / "slowjobs.py"), str(job_delay), "worker", "--hostname", name],
            env={**env, "HEALTH_PORT": str(self.port)},
            cwd=cwd,  # no developer .env here
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def _ids(group: str) -> list[int]:
    return [int(item) for item in group.split(",") if item.strip()]


def _article_of(buttons: list[tuple[str, str]]) -> int:
    """The article id in a push's translate ("tr:<id>:<lang>") or original ("orig:<id>") button."""
    for _label, data in buttons:
        match = re.match(r"(?:tr|orig):(\d+)", data)
        if match:
            return int(match.group(1))
    raise AssertionError(f"no article button in {buttons}")


async def _await(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):  # type: ignore[arg-type]  # predicate: a callable, typed object
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"newsbot-scale-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(name)
    client.close()


async def test_two_workers_one_killed_every_article_once_every_follower_once(
    scaleout_url: str, queue: str, tiny_models: object, fake_bot_api: object, tmp_path: Path
) -> None:
    from telegram.ext import ExtBot

    from bot.context import AppContext
    from bot.i18n import I18n
    from bot.ingest.service import ArticleInput, IngestService
    from bot.jobs import QueuedSummaryProvider, build_summary_provider
    from bot.jobs.celery_app import CeleryJobs, build_celery_app
    from bot.services.chats import ChatService
    from bot.tags import TagService
    from bot.telegram.ratelimit import build_rate_limiter
    from bot.telegram.transport import TelegramTransport
    from bot.wiring import build_push_loop, build_services

    from tinymodels import article as tiny_article

    server = fake_bot_api
    models = tiny_models
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("NEWSBOT_", "TELEGRAM_"))
    } | {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": scaleout_url,
        "BROKER_URL": REDIS_URL,
        "JOB_QUEUE": queue,
        "JOB_VISIBILITY_TIMEOUT": str(VISIBILITY_S),
        "SUMMARY_MODEL": str(models.summary),  # type: ignore[attr-defined]  # the tiny_models fixture is typed object
        "TRANSLATION_MODEL": models.translation_template,  # type: ignore[attr-defined]  # tiny_models is typed object
        "MODEL_LANGUAGES": "id,en",
        "MODEL_PRECISION": "fp32",
        "MODEL_THREADS": "1",
        "SUMMARY_NUM_BEAMS": "1",
        "TRANSLATION_NUM_BEAMS": "1",
        "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "INFO",
    }
    workdir = tmp_path / "workers"
    workdir.mkdir()
    workers = [
        WorkerProcess(name, env, tmp_path / f"{name}.log", workdir, job_delay=JOB_DELAY_S)
        for name in ("worker-a", "worker-b")
    ]
    settings: Settings = make_settings(
        scaleout_url,
        tmp_path,
        broker_url=REDIS_URL,
        job_queue=queue,
        summary_model=str(models.summary),  # type: ignore[attr-defined]  # tiny_models is typed object
        translation_model=models.translation_template,  # type: ignore[attr-defined]  # tiny_models is typed object
        summary_wait=0.5,
        near_duplicate_distance=0,
        telegram_base_url=server.base_url,  # type: ignore[attr-defined]  # fake_bot_api is typed object
    )
    ctx = AppContext(settings=settings, db=Database(scaleout_url))
    stop = asyncio.Event()
    # attr-defined: the fake_bot_api fixture is typed object.
    bot = ExtBot(server.token, base_url=server.base_url, rate_limiter=build_rate_limiter(settings))  # type: ignore[attr-defined]
    try:
        await _await(lambda: all(worker.ready() for worker in workers), 120, "both workers ready")
        provider = build_summary_provider(ctx)
        assert isinstance(provider, QueuedSummaryProvider)

        tags = TagService(ctx.db, settings)
        chats = ChatService(ctx.db)
        for chat_id, lang in CHATS.items():
            chats.ensure(chat_id, ChatKind.PRIVATE, user_lang=lang)
            follow_tags(ctx.db, settings, chat_id, ["Rusia"])
        await bot.initialize()
        services = build_services(ctx, I18n.load(), summaries=provider)
        loop = build_push_loop(services, TelegramTransport(bot), poll_interval=0.2)
        pushing = asyncio.create_task(loop.run(stop))

        ingest = IngestService(ctx.db, settings, tags)
        titles: dict[int, str] = {}
        for number in range(ARTICLES):
            lang = "id" if number % 2 else "en"
            title = f"Berita nomor {number} dari Moskow"
            result = await asyncio.to_thread(
                ingest.ingest,
                ArticleInput(body=tiny_article(seed=100 + number, sentences=5), title=title, tags=["Rusia"], lang=lang),
            )
            assert result.created
            titles[result.article_id] = title

        # Kill a worker in the middle of its first job (it sleeps JOB_DELAY_S before computing): whichever
        # starts one first, as a fan-out round of several articles may be a single job (one per batch).
        await _await(lambda: any(STARTED.search(worker.log()) for worker in workers), 60, "a worker to start a job")
        victim = next(worker for worker in workers if STARTED.search(worker.log()))
        survivor = next(worker for worker in workers if worker is not victim)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        started_a = [(tuple(_ids(m.group(1))), m.group(2)) for m in STARTED.finditer(victim.log())]
        done_a = [(tuple(_ids(m.group(1))), m.group(2)) for m in DONE.finditer(victim.log())]
        cut_short = [job for job in started_a if job not in done_a]
        assert len(cut_short) == 1

        expected = len(titles) * len(CHATS)

        def all_sent() -> bool:
            with ctx.db.session() as session:
                sent = session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.SENT)
                )
            return sent == expected

        await _await(all_sent, 90, "every delivery to be sent")
        stop.set()
        await asyncio.wait_for(pushing, 30)

        # Exactly one stored summary per article, one translation per article and other reader language.
        with ctx.db.session() as session:
            rows = session.execute(
                select(Summary.article_id, Summary.lang, Summary.kind, func.count())
                .group_by(Summary.article_id, Summary.lang, Summary.kind)
            ).all()
            article_langs = dict(session.execute(text("SELECT id, lang FROM articles")).all())
            statuses = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
            attempts = session.scalar(select(func.max(Delivery.attempts)))
        assert all(count == 1 for *_key, count in rows)
        summaries = {(article_id, lang) for article_id, lang, kind, _ in rows if kind is SummaryKind.SUMMARY}
        translations = {(article_id, lang) for article_id, lang, kind, _ in rows if kind is SummaryKind.TRANSLATION}
        assert summaries == {(article_id, article_langs[article_id]) for article_id in titles}
        assert translations == {
            (article_id, lang) for article_id in titles for lang in set(CHATS.values()) if lang != article_langs[article_id]
        }
        # Computed once: the jobs' own counts add up to the rows, though one job was cut short and redone.
        computed = sum(int(m.group(3)) for worker in workers for m in DONE.finditer(worker.log()))
        assert computed == len(rows)
        redone = [(tuple(_ids(m.group(1))), m.group(2)) for m in DONE.finditer(survivor.log())]
        assert cut_short[0] in redone

        # Every follower got exactly one push per article, and nothing is left to send.
        assert statuses == {DeliveryStatus.SENT: expected}
        # Pushes waiting for the workers were deferred (SummaryNotReady), never counted as failed attempts.
        assert attempts == 1
        for chat_id in CHATS:
            received = server.sent_messages(chat_id=chat_id)  # type: ignore[attr-defined]  # fake_bot_api is typed object
            # Titles may be machine-translated; the translate/original buttons name the article.
            pushed = sorted({_article_of(message.buttons()) for message in received})
            assert len(received) == len(titles) and pushed == sorted(titles), (chat_id, pushed)
        jobs = CeleryJobs(build_celery_app(settings), queue)
        assert jobs.depth() == 0

        # SIGTERM is a warm shutdown: the surviving worker exits cleanly.
        survivor.process.send_signal(signal.SIGTERM)
        assert survivor.process.wait(30) == 0
    finally:
        stop.set()
        for worker in workers:
            worker.stop()
        await bot.shutdown()
        ctx.close()


def test_sigterm_lets_the_running_job_finish(scaleout_url: str, queue: str, tmp_path: Path) -> None:
    from test_jobs import add_articles

    from bot.jobs.celery_app import CeleryJobs, build_celery_app

    env = {key: value for key, value in os.environ.items() if not key.startswith(("NEWSBOT_", "TELEGRAM_"))} | {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": scaleout_url,
        "BROKER_URL": REDIS_URL,
        "JOB_QUEUE": queue,
        "SUMMARY_MODEL": "none",
        "TRANSLATION_MODEL": "none",
    }
    workdir = tmp_path / "worker"
    workdir.mkdir()
    worker = WorkerProcess("worker-t", env, tmp_path / "worker-t.log", workdir, job_delay=2.0)
    database = Database(scaleout_url)
    try:
        (article_id,) = add_articles(database, 1)
        settings = make_settings(scaleout_url, tmp_path, broker_url=REDIS_URL, job_queue=queue)
        CeleryJobs(build_celery_app(settings), queue).submit([article_id], ["en"])
        deadline = time.monotonic() + 90
        while STARTED.search(worker.log()) is None:
            assert time.monotonic() < deadline and worker.process.poll() is None, worker.log()
            time.sleep(0.05)
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0
        assert DONE.search(worker.log()) is not None
        with database.session() as session:
            assert session.scalars(select(Summary.article_id)).all() == [article_id]
        assert CeleryJobs(build_celery_app(settings), queue).depth() == 0
    finally:
        worker.stop()
        database.dispose()


class OwnRedis:
    """redis-server on a spare port with an append-only file, which the test stops and starts again."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the append-only file is flushed, queued jobs kept
            self.process.wait(20)


class Supervisor:
    """Restarts a worker that exited, as Docker's `restart: unless-stopped` would."""

    def __init__(self, make: Callable[[int], WorkerProcess], count: int) -> None:
        self._make = make
        self.workers = [make(number) for number in range(count)]
        self.retired: list[WorkerProcess] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for index, worker in enumerate(self.workers):
                if worker.process.poll() is not None:
                    self.retired.append(worker)
                    self.restarts += 1
                    self.workers[index] = self._make(100 + self.restarts)

    def logs(self) -> str:
        return "".join(worker.log() for worker in self.retired + self.workers)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for worker in self.retired + self.workers:
            worker.stop()


async def test_redis_restart_with_jobs_in_flight_loses_and_doubles_nothing(
    scaleout_url: str, fake_bot_api: object, tmp_path: Path
) -> None:
    """Redis restarts (3 s down) while workers hold jobs: every follower still gets each article once,
    without an operator (a worker whose consumer did not come back exits and is restarted)."""
    from telegram.ext import ExtBot

    from bot.context import AppContext
    from bot.i18n import I18n
    from bot.ingest.service import ArticleInput, IngestService
    from bot.jobs import QueuedSummaryProvider, build_summary_provider
    from bot.services.chats import ChatService
    from bot.tags import TagService
    from bot.telegram.ratelimit import build_rate_limiter
    from bot.telegram.transport import TelegramTransport
    from bot.wiring import build_push_loop, build_services

    from tinymodels import article as tiny_article

    # NEWSBOT_OUTAGE_FOLLOWERS=300 for the full-size run of docs/reliability.md.
    followers, articles = int(os.environ.get("NEWSBOT_OUTAGE_FOLLOWERS", "60")), 4
    server = fake_bot_api
    broker = OwnRedis(tmp_path)
    broker.start()
    queue = f"newsbot-redis-{uuid.uuid4().hex[:8]}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("NEWSBOT_", "TELEGRAM_"))} | {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": scaleout_url,
        "BROKER_URL": broker.url,
        "JOB_QUEUE": queue,
        "JOB_VISIBILITY_TIMEOUT": "5",
        "WORKER_STALL_TIMEOUT": "8",
        "SUMMARY_MODEL": "none",
        "TRANSLATION_MODEL": "none",
        "LOG_LEVEL": "INFO",
    }
    workdir = tmp_path / "workers"
    workdir.mkdir()
    supervisor = Supervisor(
        lambda n: WorkerProcess(f"worker-{n}", env, tmp_path / f"worker-{n}.log", workdir, job_delay=2.0), 2)
    settings = make_settings(scaleout_url, tmp_path, broker_url=broker.url, job_queue=queue, summary_wait=0.5,
                             near_duplicate_distance=0, telegram_base_url=server.base_url)  # type: ignore[attr-defined]
    ctx = AppContext(settings=settings, db=Database(scaleout_url))
    stop = asyncio.Event()
    bot = ExtBot(server.token, base_url=server.base_url, rate_limiter=build_rate_limiter(settings))  # type: ignore[attr-defined]
    pushing: asyncio.Task[None] | None = None
    try:
        await _await(lambda: all(worker.ready() for worker in supervisor.workers), 120, "both workers ready")
        provider = build_summary_provider(ctx)
        assert isinstance(provider, QueuedSummaryProvider)
        tags = TagService(ctx.db, settings)
        chats = ChatService(ctx.db)
        for chat_id in range(7000, 7000 + followers):
            chats.ensure(chat_id, ChatKind.PRIVATE, user_lang="en")
            follow_tags(ctx.db, settings, chat_id, ["Rusia"])
        await bot.initialize()
        services = build_services(ctx, I18n.load(), summaries=provider)
        loop = build_push_loop(services, TelegramTransport(bot), poll_interval=0.2)
        pushing = asyncio.create_task(loop.run(stop))
        ingest = IngestService(ctx.db, settings, tags)
        for number in range(articles):
            await asyncio.to_thread(ingest.ingest, ArticleInput(
                body=tiny_article(seed=300 + number, sentences=5), title=f"Kabar {number} dari Moskow",
                tags=["Rusia"], lang="en"))
        # Redis goes away while a job is running (it finishes, and acks, while Redis is down).
        await _await(lambda: STARTED.search(supervisor.logs()) is not None, 60, "a job to start")
        broker.stop()
        await asyncio.sleep(3)
        broker.start()

        def all_sent() -> bool:
            with ctx.db.session() as session:
                return session.scalar(select(func.count()).select_from(Delivery).where(
                    Delivery.status == DeliveryStatus.SENT)) == followers * articles

        faulted = time.monotonic()
        await _await(all_sent, 240, "every delivery to be sent")
        print(f"\nredis restart: {followers} followers x {articles} articles sent {time.monotonic() - faulted:.1f} s "
              f"after Redis came back; worker restarts {supervisor.restarts}")
        received = server.sent_messages()  # type: ignore[attr-defined]
        per_chat: dict[int, int] = {}
        for message in received:
            per_chat[message.chat_id] = per_chat.get(message.chat_id, 0) + 1
        assert set(per_chat.values()) == {articles} and len(per_chat) == followers
        with ctx.db.session() as session:
            rows = session.execute(select(Summary.article_id, func.count()).group_by(Summary.article_id)).all()
        assert len(rows) == articles and all(count == 1 for _, count in rows)
        # Workers left consuming nothing ("Couldn't ack …" while Redis was down) exited through the
        # watchdog and were restarted; no worker exited for another reason.
        logs = supervisor.logs()
        assert supervisor.restarts == logs.count("its broker consumer is gone")
    finally:
        stop.set()
        if pushing is not None:
            await asyncio.wait_for(pushing, 30)
        supervisor.stop()
        broker.stop()
        await bot.shutdown()
        ctx.close()
