"""Digest benchmark: N chats with a daily digest due the same minute, plus a stream of breaking news.

Everything runs as in production, on loopback: the fake Telegram Bot API (tests/fakebotapi.py)
in its own process and the bot as a `newsbot run` process with the default sending limits.
N chats in Asia/Jakarta follow #Rusia with `/digest daily HH:MM` set to the same minute (about
a minute and a half from the start, "07:00 WIB" for all of them); a few stories are stored before
it, so every chat's digest holds them. A handful of other chats follow #Breaking instantly, and
a breaking story is stored every --breaking-interval seconds while the digests go out.

Prints: the time to send all digests against Telegram's 30 msg/s floor (messages / 30; target:
within 5 %), duplicates and losses (target 0), and the instant-push delay (store -> message)
p50/p99/max while the digests go out. Not a timed test: run it by hand.

    .venv/bin/python bench/bench_digests.py              # 10,000 chats (about 6 minutes)
    .venv/bin/python bench/bench_digests.py --chats 1000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from fakebotapi import RemoteFakeBotApi

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from bench_fanout import busiest_second, percentile  # noqa: E402 - after the path set-up above

TAG = "Rusia"
BREAKING = "Breaking"
ZONE = "Asia/Jakarta"
BASE_ID = 2_000_001
BREAKING_BASE = 9_000_001
STORIES = (
    ("Rusia minta garansi keamanan", "Menteri Luar Negeri Rusia meminta garansi keamanan yang mengikat secara hukum "
     "sebelum perundingan dilanjutkan pekan depan di Jenewa. Para diplomat Eropa menyebut tuntutan itu sulit diterima."),
    ("Harga gandum naik tajam", "Harga gandum dunia naik tajam setelah ekspor dari pelabuhan Laut Hitam terhenti. "
     "Importir di Asia Tenggara mencari pemasok baru dari Australia dan Kanada untuk musim depan."),
    ("Sanksi baru untuk bank", "Uni Eropa menyiapkan paket sanksi baru yang menyasar tiga bank besar. "
     "Para analis memperkirakan rubel melemah dan inflasi naik dalam beberapa bulan mendatang."),
)


def prepare_database(database_url: str, chats: int, breaking: int, due_local: str) -> tuple[list[int], list[int]]:
    """Digest chats (all due at `due_local` in Jakarta) and instant chats, with their follows."""
    from sqlalchemy import insert

    from bot.config import Settings
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.db.models import Chat, ChatKind, Subscription
    from bot.tags import TagService

    db = Database(database_url)
    upgrade(db.engine)
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option
    tags = TagService(db, settings)
    with db.session() as session:
        tag_id = tags.get_or_create(session, TAG).id
        breaking_id = tags.get_or_create(session, BREAKING).id
    digest_ids = list(range(BASE_ID, BASE_ID + chats))
    instant_ids = list(range(BREAKING_BASE, BREAKING_BASE + breaking))
    now = datetime.now(UTC)
    with db.session() as session:
        session.execute(insert(Chat), [
            {"id": i, "kind": ChatKind.PRIVATE, "lang": "id", "active": True, "created_at": now, "updated_at": now,
             "timezone": ZONE, "digest": due_local} for i in digest_ids])
        session.execute(insert(Chat), [
            {"id": i, "kind": ChatKind.PRIVATE, "lang": "en", "active": True, "created_at": now, "updated_at": now}
            for i in instant_ids])
        session.execute(insert(Subscription), [{"chat_id": i, "tag_id": tag_id, "created_at": now} for i in digest_ids])
        session.execute(insert(Subscription), [{"chat_id": i, "tag_id": breaking_id, "created_at": now} for i in instant_ids])
    db.dispose()
    return digest_ids, instant_ids


class Ingester:
    """Stores articles from this process, as `newsbot ingest` would."""

    def __init__(self, database_url: str) -> None:
        from bot.config import Settings
        from bot.db import Database
        from bot.ingest.service import IngestService
        from bot.tags import TagService

        self.db = Database(database_url)
        settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option
        self.service = IngestService(self.db, settings, TagService(self.db, settings))

    def store(self, title: str, body: str, tag: str) -> int:
        from bot.ingest.service import ArticleInput

        return int(self.service.ingest(ArticleInput(body=body, title=title, tags=[tag], lang="id")).article_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--breaking-chats", type=int, default=5)
    parser.add_argument("--breaking-interval", type=float, default=2.0, help="seconds between breaking stories")
    parser.add_argument("--lead", type=float, default=90.0, help="at least this many seconds until the digests are due")
    args = parser.parse_args()

    from bot.config import Settings

    from fakebotapi import DEFAULT_TOKEN, RemoteFakeBotApi

    limits = Settings(_env_file=None)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option, no field
    workdir = Path(tempfile.mkdtemp(prefix="bench-digests-"))
    database_url = f"sqlite:///{workdir / 'newsbot.sqlite3'}"
    due = (datetime.now(UTC) + timedelta(seconds=args.lead + 60)).replace(second=0, microsecond=0)
    due_local = due.astimezone(ZoneInfo(ZONE)).strftime("%H:%M")
    t = time.perf_counter()
    digest_chats, instant_chats = prepare_database(database_url, args.chats, args.breaking_chats, due_local)
    print(f"{args.chats} chats with /digest daily {due_local} ({ZONE}, {due:%H:%M} UTC) and "
          f"{args.breaking_chats} instant chats created in {time.perf_counter() - t:.1f} s ({workdir})")
    ingester = Ingester(database_url)
    for title, body in STORIES:
        ingester.store(title, body, TAG)

    server_process = subprocess.Popen([sys.executable, str(REPO / "tests" / "fakebotapi.py"), "--port", "0"],
                                      stdout=subprocess.PIPE, text=True)
    server: RemoteFakeBotApi = RemoteFakeBotApi(server_process.stdout.readline().strip())  # type: ignore[union-attr]  # stdout=PIPE
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(workdir), "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
           "TELEGRAM_BASE_URL": server.base_url, "SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none", "BROKER_URL": "",
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO)}
    bot_log = open(workdir / "bot.log", "wb")  # noqa: SIM115 - the bot process writes to it until the benchmark ends
    bot = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=workdir, stdout=bot_log, stderr=bot_log)
    stored: dict[str, float] = {}
    stop = threading.Event()
    digest_set, instant_set = set(digest_chats), set(instant_chats)
    try:
        while datetime.now(UTC) < due - timedelta(seconds=10):
            if bot.poll() is not None:
                raise SystemExit(f"the bot stopped; see {workdir / 'bot.log'}")
            time.sleep(0.5)

        def breaking() -> None:
            index = 0
            while not stop.wait(args.breaking_interval):
                title = f"Breaking {index}: gempa di lepas pantai nomor {index}"
                stored[title] = time.time()
                ingester.store(title, f"Gempa bermagnitudo {index % 7 + 3} terjadi di lepas pantai pada pukul {index}. "
                               f"Badan geofisika mencatat kejadian nomor {index} tanpa peringatan tsunami.", BREAKING)
                index += 1

        stream = threading.Thread(target=breaking, daemon=True)
        stream.start()
        received: Counter[int] = Counter()
        seen = 0
        deadline = time.time() + 10 + args.chats * 1.2 / limits.send_rate_global * 2 + 120
        while len(received) < args.chats and time.time() < deadline:
            time.sleep(1.0)
            batch = server.sent_messages(since=seen)
            seen += len(batch)
            received.update(m.chat_id for m in batch if m.chat_id in digest_set)
            print(f"\r{len(received)}/{args.chats} digests, {time.time() - due.timestamp():.0f} s after due", end="", flush=True)
        print()
        stop.set()
        stream.join()
        time.sleep(3)  # the last breaking pushes and any stray duplicate
    finally:
        stop.set()
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(30)
        except subprocess.TimeoutExpired:
            bot.kill()
        messages: list[Any] = server.sent_messages()
        calls = [c for c in server.calls("sendMessage") if c.status == 200]
        server_process.terminate()

    digests = [m for m in messages if m.chat_id in digest_set]
    per_chat = Counter(m.chat_id for m in digests)
    stories_per_chat = Counter()
    for m in digests:
        stories_per_chat[m.chat_id] += sum(title in m.text for title, _ in STORIES)
    doubled = sum(1 for count in stories_per_chat.values() if count > len(STORIES))
    lost = args.chats - sum(1 for count in stories_per_chat.values() if count == len(STORIES))
    times = sorted(m.time for m in digests)
    span = times[-1] - times[0] if times else 0.0
    window_calls = [c for c in calls if times and times[0] <= c.time <= times[-1]]
    floor = (len(window_calls) - 1) / limits.send_rate_global
    delays = [m.time - stored[title] for m in messages if m.chat_id in instant_set
              for title in stored if m.text and title in m.text]
    print(f"digests: {len(digests)} messages to {len(per_chat)} chats; first {times[0] - due.timestamp():.2f} s after due, "
          f"all sent in {span:.1f} s" if times else "digests: none sent")
    if times:
        print(f"Telegram floor for the {len(window_calls)} messages sent meanwhile (digests and breaking pushes) at "
              f"{limits.send_rate_global:g} msg/s: {floor:.1f} s; achieved {floor / span:.3f} of the floor (target >= 0.95)")
    print(f"busiest second: {busiest_second([c.time for c in calls])} sendMessage calls (limit {limits.send_rate_global:g})")
    print(f"stories doubled in a chat: {doubled} (target 0); chats missing a story: {lost} (target 0)")
    if delays:
        print(f"breaking pushes while digests went out: {len(delays)}; store -> message delay p50 "
              f"{percentile(delays, 50):.2f} s, p99 {percentile(delays, 99):.2f} s, max {max(delays):.2f} s")


if __name__ == "__main__":
    main()
