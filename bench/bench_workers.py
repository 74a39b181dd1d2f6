"""Scale-out benchmark: `newsbot worker` throughput with 1 and 2 workers, and ingest-to-last-push time.

Real-size random-weight models (bench/models.py builds them from ../shared/model-configs:
mT5 XLSum for summaries, opus-mt-id-en for translation) are loaded by real `newsbot worker`
processes through the same settings users set, each worker pinned to its own CPU core
(`newsbot worker --cpu N`, MODEL_THREADS=1). Jobs go through Redis, results into a temporary
PostgreSQL database. Random weights never emit EOS in practice, so every summary runs to
SUMMARY_MAX_NEW_TOKENS and timings are not distorted by early stops.

Tokenizers: the real ones can't be downloaded here, so each model folder gets a word-level
tokenizer with the model's full vocabulary size; like bench_summarizer.py, `--keep` of mT5's
ids are Latin-script pieces (what vocabulary trimming keeps for id/en), the rest Cyrillic.

    .venv/bin/python bench/bench_workers.py            # 24 articles per run; 50 articles x 1,000 followers
    .venv/bin/python bench/bench_workers.py --quick    # 4 articles per run; 10 articles x 100 followers

The end-to-end part runs the bot's push loop in this process against tests/fakebotapi.py with
the default sending limits (SEND_RATE_GLOBAL=30/s), so 50 x 1,000 pushes take at least 28 minutes:
that is Telegram's limit, not the workers'. `--send-rate` raises the limit to see the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from models import tokenizer_folders  # noqa: E402 - after the sys.path set-up above

REDIS_URL = os.environ.get("NEWSBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
ARTICLE_TOKENS = 512
SENTENCE_WORDS = 20
SUMMARY_TOKENS = 64
SOURCE_LANG, TARGET_LANG = "id", "en"


# --- models with word-level tokenizers (bench/models.py) ---------------------------------------


def prepare_models(cache: Path, keep: int) -> tuple[Path, str, list[str]]:
    """(SUMMARY_MODEL folder, TRANSLATION_MODEL template, words an article may use)."""
    folders = tokenizer_folders(cache, keep, SOURCE_LANG, TARGET_LANG)
    return folders.summary, str(cache / "workers" / "opus-mt-{src}-{tgt}"), folders.words


def article_text(words: Sequence[str], seed: int) -> str:
    """About ARTICLE_TOKENS tokens of sentences of SENTENCE_WORDS words."""
    rng = random.Random(seed)
    sentences = [
        " ".join(rng.choice(words) for _ in range(SENTENCE_WORDS)) + " ." for _ in range(ARTICLE_TOKENS // (SENTENCE_WORDS + 1))
    ]
    return " ".join(sentences)


# --- services ------------------------------------------------------------------------------------


@contextmanager
def temporary_postgres() -> Iterator[str]:
    """A new migrated PostgreSQL database, dropped afterwards."""
    from pgscratch import admin_url, scratch_postgres

    with scratch_postgres(admin_url(), "newsbot_bench") as url:
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    cpu: int

    def ready(self) -> bool:
        import httpx

        if self.process.poll() is not None:
            raise RuntimeError(f"worker on cpu {self.cpu} exited: see {self.log}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def start_workers(count: int, env: dict[str, str], logs: Path) -> list[Worker]:
    """`count` workers, worker i pinned to core i; returns when all answer /readyz."""
    workers = []
    cores = sorted(os.sched_getaffinity(0))
    for index in range(count):
        port = _free_port()
        cpu = cores[index % len(cores)]
        log = logs / f"worker-{count}-{index}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker", "--cpu", str(cpu), "--hostname", f"bench-{count}-{index}"],
            env={**env, "HEALTH_PORT": str(port)},
            cwd=logs,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        workers.append(Worker(process, port, log, cpu))
    deadline = time.monotonic() + 900
    while not all(worker.ready() for worker in workers):
        if time.monotonic() > deadline:
            raise RuntimeError("workers not ready after 15 minutes")
        time.sleep(0.5)
    return workers


def stop_workers(workers: Sequence[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.process.wait(60)
        except subprocess.TimeoutExpired:
            worker.process.kill()


def add_articles(db: Any, texts: Sequence[str], lang: str) -> list[int]:
    from bot.db.models import Article

    with db.session() as session:
        rows = [
            Article(title=f"Judul {uuid.uuid4().hex[:8]} .", body=body, lang=lang, fingerprint=uuid.uuid4().hex)
            for body in texts
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def count_rows(db: Any, article_ids: Sequence[int], kind: Any) -> int:
    from sqlalchemy import func, select

    from bot.db.models import Summary

    with db.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Summary).where(Summary.article_id.in_(list(article_ids)), Summary.kind == kind)
            )
            or 0
        )


def _article_of(buttons: list[tuple[str, str]]) -> int | None:
    """The article id in a push's translate ("tr:<id>:<lang>") or original ("orig:<id>") button."""
    for _label, data in buttons:
        if data.startswith(("tr:", "orig:")):
            return int(data.split(":")[1])
    return None


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


# --- the two measurements --------------------------------------------------------------------------


def throughput(
    worker_count: int, articles: int, env: dict[str, str], settings: Any, words: list[str], logs: Path
) -> dict[str, float]:
    """Articles per minute summarized (id) and translated (id->en) by `worker_count` pinned workers."""
    from bot.db import Database
    from bot.db.models import SummaryKind
    from bot.jobs.celery_app import CeleryJobs, build_celery_app

    db = Database(settings.database_url)
    workers = start_workers(worker_count, env, logs)
    try:
        ids = add_articles(db, [article_text(words, seed=worker_count * 1000 + i) for i in range(articles)], SOURCE_LANG)
        jobs = CeleryJobs(build_celery_app(settings), settings.job_queue)
        started = time.monotonic()
        for article_id in ids:
            jobs.submit([article_id], [SOURCE_LANG, TARGET_LANG])
        wait_until(lambda: count_rows(db, ids, SummaryKind.TRANSLATION) == len(ids), 7200, "all translations")
        elapsed = time.monotonic() - started
        jobs.close()
    finally:
        stop_workers(workers)
        db.dispose()
    return {"workers": worker_count, "articles": articles, "seconds": elapsed, "per_minute": articles / elapsed * 60}


async def end_to_end(
    articles: int, followers: int, worker_count: int, env: dict[str, str], settings: Any, words: list[str], logs: Path
) -> dict[str, float]:
    """Ingest a burst of articles followed by `followers` chats; time until the last push arrives."""
    from sqlalchemy import func, insert, select
    from telegram.ext import ExtBot

    from bot.context import AppContext
    from bot.db import Database
    from bot.db.models import Chat, ChatKind, Subscription, Summary
    from bot.i18n import I18n
    from bot.ingest.service import ArticleInput, IngestService
    from bot.jobs import build_summary_provider
    from bot.tags import TagService
    from bot.telegram.ratelimit import build_rate_limiter
    from bot.telegram.transport import TelegramTransport
    from bot.wiring import build_push_loop, build_services

    from fakebotapi import FakeBotApi

    db = Database(settings.database_url)
    ctx = AppContext(settings=settings, db=db)
    tags = TagService(db, settings)
    workers = await asyncio.to_thread(start_workers, worker_count, env, logs)
    server = FakeBotApi().start()
    settings = settings.model_copy(update={"telegram_base_url": server.base_url})
    stop = asyncio.Event()
    bot = ExtBot(server.token, base_url=server.base_url, rate_limiter=build_rate_limiter(settings))
    try:
        with db.session() as session:
            langs = [TARGET_LANG if i % 2 else SOURCE_LANG for i in range(followers)]
            session.execute(
                insert(Chat),
                [{"id": 10_000 + i, "kind": ChatKind.PRIVATE, "lang": lang, "active": True} for i, lang in enumerate(langs)],
            )
        ingest = IngestService(db, settings, tags)
        # One article makes the tag exist; the followers follow it before the burst.
        probe = ingest.ingest(ArticleInput(body=article_text(words, seed=-1), title="Probe .", tags=["Rusia"], lang=SOURCE_LANG))
        with db.session() as session:
            from bot.db.models import Article, ArticleTag

            tag_id = session.scalar(select(ArticleTag.tag_id).where(ArticleTag.article_id == probe.article_id))
            session.execute(insert(Subscription), [{"chat_id": 10_000 + i, "tag_id": tag_id} for i in range(followers)])
            session.execute(Article.__table__.update().values(fanned_out_at=Article.created_at))
        await bot.initialize()
        provider = build_summary_provider(ctx)
        services = build_services(ctx, I18n.load(), summaries=provider)
        loop = build_push_loop(services, TelegramTransport(bot), limiter=bot.rate_limiter)
        pushing = asyncio.create_task(loop.run(stop))
        started = time.monotonic()
        started_wall = time.time()
        ids = []
        for number in range(articles):
            result = await asyncio.to_thread(
                ingest.ingest,
                ArticleInput(
                    body=article_text(words, seed=50_000 + number), title=f"Berita {number} .", tags=["Rusia"], lang=SOURCE_LANG
                ),
            )
            ids.append(result.article_id)
        ingested = time.monotonic() - started
        expected = articles * followers
        deadline = time.monotonic() + 4 * 3600
        while len(server.sent_messages()) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError("pushes did not finish in 4 hours")
            await asyncio.sleep(0.5)
        messages = server.sent_messages()
        last_push = max(message.time for message in messages) - started_wall
        with db.session() as session:
            last_summary = session.scalar(select(func.max(Summary.created_at)).where(Summary.article_id.in_(ids)))
        summaries_done = last_summary.timestamp() - started_wall
        stop.set()
        await asyncio.wait_for(pushing, 60)
        pairs = [(message.chat_id, _article_of(message.buttons())) for message in messages]
        send_window = [message.time for message in messages]
        rate = len(messages) / max(1e-9, max(send_window) - min(send_window))
    finally:
        stop.set()
        await bot.shutdown()
        server.stop()
        await asyncio.to_thread(stop_workers, workers)
        db.dispose()
    return {
        "articles": articles,
        "followers": followers,
        "workers": worker_count,
        "ingest_seconds": ingested,
        "summaries_ready_seconds": summaries_done,
        "last_push_seconds": last_push,
        "messages": len(messages),
        "expected": expected,
        "duplicates": len(pairs) - len(set(pairs)),
        "send_rate": rate,
        "send_rate_limit": settings.send_rate_global,
    }


# --- main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=24, help="articles per throughput run")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    parser.add_argument("--e2e-articles", type=int, default=50)
    parser.add_argument("--e2e-followers", type=int, default=1000)
    parser.add_argument("--e2e-workers", type=int, default=2)
    parser.add_argument("--send-rate", type=float, default=None, help="SEND_RATE_GLOBAL for the end-to-end run")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--quick", action="store_true", help="4 articles per run; 10 articles x 100 followers")
    parser.add_argument("--precision", default=None, help="MODEL_PRECISION for the workers (default: the setting's)")
    parser.add_argument("--keep", type=int, default=64000, help="Latin-script pieces of mT5's vocabulary")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "newsbot-bench-models")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = parser.parse_args(argv)
    if args.quick:
        args.articles, args.e2e_articles, args.e2e_followers = 4, 10, 100
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: workers stopped, temporary database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import redis

    from bot.config import Settings

    summary_dir, translation_template, words = prepare_models(args.cache_dir, args.keep)
    logs = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    queue = f"newsbot-bench-{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {"throughput": [], "e2e": None, "logs": str(logs)}
    with temporary_postgres() as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")} | {
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": database_url,
            "BROKER_URL": REDIS_URL,
            "JOB_QUEUE": queue,
            "SUMMARY_MODEL": str(summary_dir),
            "TRANSLATION_MODEL": translation_template,
            "MODEL_LANGUAGES": f"{SOURCE_LANG},{TARGET_LANG}",
            "MODEL_THREADS": "1",
            "SUMMARY_MAX_NEW_TOKENS": str(SUMMARY_TOKENS),
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "INFO",
        }
        if args.precision:
            env["MODEL_PRECISION"] = args.precision
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]  # a pydantic-settings option, no field
            database_url=database_url,
            broker_url=REDIS_URL,
            job_queue=queue,
            summary_model=str(summary_dir),
            translation_model=translation_template,
            near_duplicate_distance=0,
            **({"send_rate_global": args.send_rate} if args.send_rate else {}),
        )
        print(f"models: {summary_dir} and {translation_template}; logs in {logs}", flush=True)
        try:
            if not args.skip_throughput:
                for count in [int(c) for c in args.workers.split(",") if c.strip()]:
                    result = throughput(count, args.articles, env, settings, words, logs)
                    results["throughput"].append(result)
                    print(
                        f"throughput: {count} worker(s), one core each: {result['articles']} articles "
                        f"(summary + id->en translation) in {result['seconds']:.1f}s = "
                        f"{result['per_minute']:.2f} articles/min",
                        flush=True,
                    )
                if len(results["throughput"]) >= 2:
                    first, last = results["throughput"][0], results["throughput"][-1]
                    speedup = last["per_minute"] / first["per_minute"]
                    print(f"scaling {first['workers']} -> {last['workers']} workers: x{speedup:.2f}")
            if not args.skip_e2e:
                e2e = asyncio.run(
                    end_to_end(args.e2e_articles, args.e2e_followers, args.e2e_workers, env, settings, words, logs)
                )
                results["e2e"] = e2e
                print(
                    f"end-to-end: {e2e['articles']} articles x {e2e['followers']} followers, {e2e['workers']} workers: "
                    f"ingest {e2e['ingest_seconds']:.1f}s, all summaries ready {e2e['summaries_ready_seconds']:.1f}s, "
                    f"last push {e2e['last_push_seconds']:.1f}s after the first ingest; "
                    f"{e2e['messages']}/{e2e['expected']} messages, {e2e['duplicates']} duplicates, "
                    f"send rate {e2e['send_rate']:.1f}/s of {e2e['send_rate_limit']:.0f}/s limit",
                    flush=True,
                )
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            client.delete(queue)
            client.close()
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
