"""Fan-out benchmark: N chats follow one tag, one article is stored, `newsbot run` pushes it.

Everything runs as in production, on loopback: the fake Telegram Bot API (tests/fakebotapi.py)
in its own process, the bot as a `newsbot run` process with the default sending limits, the
article stored by this process (like `newsbot ingest`), and, during the fan-out, a summarization
run (`newsbot summarize` over the IndoSum articles in ../shared/data, repeated) in another
process. Meanwhile users send /follow through getUpdates every --follow-interval seconds.

Prints: the achieved send rate as a fraction of SEND_RATE_GLOBAL (target >= 0.95), duplicates and
losses (target 0), and the /follow reply latency (p50/p95/p99/max) during the fan-out.

    .venv/bin/python bench/bench_fanout.py              # 10,000 chats (about 6 minutes)
    .venv/bin/python bench/bench_fanout.py --chats 1000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings

    from fakebotapi import RemoteFakeBotApi

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

SHARED_DATA = REPO.parent / "shared" / "data" / "indosum-dev-100.jsonl"
TAG = "Rusia"
PROBE_USER_BASE = 7_000_000_000  # /follow probes come from users who follow nothing else
ARTICLE = (
    "Menteri Luar Negeri Rusia Sergei Lavrov menyatakan Moskow meminta Barat memberikan garansi "
    "keamanan yang mengikat secara hukum sebelum perundingan dilanjutkan pekan depan di Jenewa. "
    "Menurut Lavrov, janji lisan tidak lagi cukup setelah perluasan NATO ke timur. Para diplomat "
    "Eropa menyebut tuntutan itu sulit diterima, tetapi mengatakan pintu dialog tetap terbuka."
)


def busiest_second(times: list[float]) -> int:
    """Most sends in any 1-second window."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def add_followers(database_url: str, chats: list[int], tag: str) -> None:
    """Migrate, and add chats (odd ids English, even Indonesian) following `tag`."""
    from sqlalchemy import insert

    from bot.config import Settings
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.db.models import Chat, ChatKind, Subscription
    from bot.tags import TagService

    db = Database(database_url)
    upgrade(db.engine)
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option
    with db.session() as session:
        tag_id = TagService(db, settings).get_or_create(session, tag).id
    now = datetime.now(UTC)
    with db.session() as session:
        session.execute(insert(Chat), [{"id": chat, "kind": ChatKind.PRIVATE, "lang": "en" if chat % 2 else "id",
                                        "active": True, "created_at": now, "updated_at": now} for chat in chats])
        session.execute(insert(Subscription), [{"chat_id": chat, "tag_id": tag_id, "created_at": now} for chat in chats])
    db.dispose()


def prepare_database(database_url: str, chats: int) -> list[int]:
    """Migrate and create `chats` chats following TAG (half English, half Indonesian)."""
    ids = list(range(1_000_001, 1_000_001 + chats))
    add_followers(database_url, ids, TAG)
    return ids


def ingest_article(database_url: str) -> int:
    """Store the article from this process, as `newsbot ingest` would."""
    from bot.config import Settings
    from bot.db import Database
    from bot.ingest.service import ArticleInput, IngestService
    from bot.tags import TagService

    db = Database(database_url)
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option
    result = IngestService(db, settings, TagService(db, settings)).ingest(
        ArticleInput(body=ARTICLE, title="Rusia minta garansi keamanan yang mengikat", tags=[TAG], lang="id",
                     url="https://news.example/rusia-garansi")
    )
    db.dispose()
    return result.article_id


def delivery_counts(database_url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.db.models import Delivery

    db = Database(database_url)
    with db.session() as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    db.dispose()
    return {str(status): count for status, count in rows}


class SummarizationRun(threading.Thread):
    """Runs `newsbot summarize` over the IndoSum articles again and again until stopped."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.folder = workdir / "indosum"
        self.env = env
        self.runs = 0
        self.stopped = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None

    def prepare(self) -> bool:
        if not SHARED_DATA.exists():
            return False
        self.folder.mkdir(exist_ok=True)
        for line in SHARED_DATA.read_text("utf-8").splitlines():
            row = json.loads(line)
            (self.folder / f"{row['id']}.txt").write_text(row["text"], "utf-8")
        return True

    def run(self) -> None:
        newsbot = str(Path(sys.executable).with_name("newsbot"))
        while not self.stopped.is_set():
            self.process = subprocess.Popen([newsbot, "summarize", str(self.folder)], env=self.env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder.parent)
            self.process.wait()
            self.runs += 1

    def stop(self) -> None:
        self.stopped.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()


def drive(args: argparse.Namespace, server: RemoteFakeBotApi, workdir: Path, database_url: str,
          followers: list[int], limits: Settings) -> tuple[list[Any], list[Any], dict[int, float], float, int, SummarizationRun]:
    """Start `newsbot run` and the summarization run, store the article, probe /follow, collect."""
    from fakebotapi import DEFAULT_TOKEN

    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(workdir), "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
           "TELEGRAM_BASE_URL": server.base_url, "SUMMARY_MODEL": args.summary_model, "TRANSLATION_MODEL": "none",
           "BROKER_URL": "", "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    bot_log = open(workdir / "bot.log", "wb")  # noqa: SIM115 - the bot process writes to it until the benchmark ends
    bot = subprocess.Popen([str(Path(sys.executable).with_name("newsbot")), "run"], env=env, cwd=workdir,
                           stdout=bot_log, stderr=bot_log)
    summarizer = SummarizationRun(workdir, {**env, "DATABASE_URL": f"sqlite:///{workdir / 'summaries.sqlite3'}"})
    probes: dict[int, float] = {}
    stop_probes = threading.Event()
    try:
        deadline = time.time() + 60
        while not server.calls("getUpdates"):
            if time.time() > deadline or bot.poll() is not None:
                raise SystemExit(f"the bot did not start; see {workdir / 'bot.log'}")
            time.sleep(0.2)
        if not args.no_summarize and summarizer.prepare():
            summarizer.start()

        def probe() -> None:
            index = 0
            while not stop_probes.wait(args.follow_interval):
                user = PROBE_USER_BASE + index
                index += 1
                probes[user] = time.time()
                server.user_command(user, "/follow Ekonomi", lang="en")

        started = time.time()
        article_id = ingest_article(database_url)
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        follower_set = set(followers)
        received: Counter[int] = Counter()
        seen = 0
        limit = args.chats / limits.send_rate_global * 1.6 + 60
        while len(received) < args.chats and time.time() - started < limit:
            time.sleep(1.0)
            batch = server.sent_messages(since=seen)
            seen += len(batch)
            received.update(m.chat_id for m in batch if m.chat_id in follower_set)
            print(f"\r{len(received)}/{args.chats} chats reached, {time.time() - started:.0f} s", end="", flush=True)
        print()
        stop_probes.set()
        prober.join()
        time.sleep(3)  # the last probes' answers and any stray duplicate
    finally:
        stop_probes.set()
        summarizer.stop()
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(30)
        except subprocess.TimeoutExpired:
            bot.kill()
        calls = [c for c in server.calls("sendMessage") if c.status == 200]
        messages = server.sent_messages()
    return calls, messages, probes, started, article_id, summarizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--follow-interval", type=float, default=0.5, help="seconds between /follow probes")
    parser.add_argument("--summary-model", default="none", help="SUMMARY_MODEL of the bot and the summarization run")
    parser.add_argument("--no-summarize", action="store_true", help="skip the parallel summarization run")
    args = parser.parse_args()

    from bot.config import Settings

    from fakebotapi import RemoteFakeBotApi

    limits = Settings(_env_file=None)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option, no field
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    database_url = f"sqlite:///{workdir / 'newsbot.sqlite3'}"
    t = time.perf_counter()
    followers = prepare_database(database_url, args.chats)
    print(f"{args.chats} chats following #{TAG} created in {time.perf_counter() - t:.1f} s ({workdir})")

    server_process = subprocess.Popen([sys.executable, str(REPO / "tests" / "fakebotapi.py"), "--port", "0"],
                                      stdout=subprocess.PIPE, text=True)
    try:
        server = RemoteFakeBotApi(server_process.stdout.readline().strip())  # type: ignore[union-attr]  # stdout=PIPE, so never None
        calls, messages, probes, started, article_id, summarizer = drive(args, server, workdir, database_url,
                                                                        followers, limits)
    finally:
        server_process.terminate()
    follower_set = set(followers)
    pushes = [m for m in messages if m.chat_id in follower_set]
    per_chat = Counter(m.chat_id for m in pushes)
    duplicates = sum(count - 1 for count in per_chat.values())
    losses = args.chats - len(per_chat)
    push_times = sorted(m.time for m in pushes)
    window = (push_times[0], push_times[-1]) if push_times else (0.0, 0.0)
    in_window = [c.time for c in calls if window[0] <= c.time <= window[1]]
    rate = (len(in_window) - 1) / (window[1] - window[0]) if window[1] > window[0] else 0.0
    replies = {}
    for message in messages:
        if message.chat_id in probes and message.chat_id not in replies:
            replies[message.chat_id] = message.time - probes[message.chat_id]
    latencies = list(replies.values())
    unanswered = len(probes) - len(replies)

    print(f"article #{article_id}: first push {window[0] - started:.2f} s after it was stored; "
          f"last push after {window[1] - started:.1f} s")
    print(f"send rate: {rate:.2f} msg/s = {rate / limits.send_rate_global:.3f} of SEND_RATE_GLOBAL="
          f"{limits.send_rate_global:g} (target >= 0.95; all sendMessage calls in the push window, replies included)")
    per_second = Counter(int(c.time) for c in calls if window[0] <= c.time <= window[1])
    over = sum(1 for count in per_second.values() if count > limits.send_rate_global)
    print(f"busiest second: {busiest_second([c.time for c in calls])} sendMessage calls as seen by the fake server "
          f"(limit {limits.send_rate_global:g}); clock seconds above the limit: {over} of {len(per_second)}")
    print(f"duplicates: {duplicates} (target 0); losses: {losses} (target 0); deliveries: {delivery_counts(database_url)}")
    if latencies:
        print(f"/follow during the fan-out: {len(latencies)} answered, {unanswered} unanswered; latency "
              f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    print(f"summarization run: {summarizer.runs} complete passes over {SHARED_DATA.name} "
          f"(SUMMARY_MODEL={args.summary_model}) during the fan-out" if summarizer.is_alive() or summarizer.runs
          else "summarization run: not started")


if __name__ == "__main__":
    main()
