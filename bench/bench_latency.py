"""Command latency while the bot is busy, and ingest-to-push latency, on the embedded default.

The bot runs as `newsbot run` with its default settings (SQLite, no workers, models in the bot
process: real-size random-weight mT5-XLSum and opus-mt-id-en through CTranslate2, bench/models.py)
against the fake Telegram Bot API (tests/fakebotapi.py) in its own process. Meanwhile new users
send, every --probe-interval seconds and in turn, `/follow Olahraga`, `/latest` and
`/summary ID` of an article whose summary is cached; the latency is the time from the update being
queued at the fake server to the reply arriving there.

Scenarios, interleaved over --rounds rounds (each in a fresh bot process and database):
- idle: nothing else runs; then one article is ingested (ingest-to-push for one article);
- fanout: one article reaches 10,000 chats following its tag (Telegram's 30 msg/s: probes cover
  the first --window seconds of the fan-out, delivery creation included);
- summaries: 20 articles for 10 followers (half English, half Indonesian) are ingested at once, so
  20 summaries and 20 translations are computed in the bot process (ingest-to-push for a burst);
- both: the two at once;
- no model: SUMMARY_MODEL=none and TRANSLATION_MODEL=none, one article then a burst of 20
  (ingest-to-push without a seq2seq model).
Ingest-to-push is the time from `newsbot ingest` (a separate process, as users run it) returning
to each follower's push arriving at the fake server. `--database postgresql` runs every scenario on
a new PostgreSQL database instead of a SQLite file (NEWSBOT_TEST_POSTGRES_URL names the server, as
for the tests), where the bot hears `ingest`'s NOTIFY instead of polling (bot/db/notify.py).

    .venv/bin/python bench/bench_latency.py                 # 2 rounds (about 50 minutes on 2 cores)
    .venv/bin/python bench/bench_latency.py --rounds 1 --scenarios idle,summaries
    .venv/bin/python bench/bench_latency.py --rounds 3 --scenarios nomodel --database postgresql
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from bench_fanout import add_followers, percentile, prepare_database  # noqa: E402 - after the sys.path set-up above

if TYPE_CHECKING:
    from fakebotapi import RemoteFakeBotApi, SentMessage

SHARED_DATA = REPO.parent / "shared" / "data" / "indosum-dev-100.jsonl"
FANOUT_TAG = "Rusia"  # bench_fanout.prepare_database's tag
BURST_TAG = "Ekonomi"
BURST_FOLLOWERS = 10
FOLLOWER_BASE = 5_000_000
PROBE_BASE = 8_000_000_000
SCENARIOS = ("idle", "fanout", "summaries", "both", "nomodel")
COMMANDS = ("follow", "latest", "summary")
DATABASES = ("sqlite", "postgresql")
NEWSBOT = str(Path(sys.executable).with_name("newsbot"))


@dataclass
class Outcome:
    """What one scenario measured."""

    scenario: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # command -> seconds
    unanswered: int = 0
    timeline: list[tuple[str, float, float]] = field(default_factory=list)  # (command, queued after start, latency)
    ingest_to_push: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # "1"/"20" -> seconds
    first_push: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # per article, its first push

    def add_delays(self, key: str, stored: dict[int, float], pushes: Pushes, chats: list[int]) -> None:
        """Seconds from each article being stored to each chat's push of it, and to its first push."""
        for article, at in stored.items():
            arrivals = [pushes.first[(chat, article)] - at for chat in chats if (chat, article) in pushes.first]
            self.ingest_to_push[key] += arrivals
            if arrivals:
                self.first_push[key].append(min(arrivals))


def article_files(folder: Path, count: int, offset: int) -> list[Path]:
    """`count` IndoSum articles of at least 520 words (two joined), written as raw page text."""
    rows = [json.loads(line) for line in SHARED_DATA.read_text("utf-8").splitlines()]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(count):
        first, second = rows[(offset + 2 * number) % len(rows)], rows[(offset + 2 * number + 1) % len(rows)]
        title = re.sub(r"^\d+-", "", first["id"]).replace("-", " ").capitalize()
        body = f"{first['text']}\n\n{second['text']}"
        path = folder / f"article-{offset}-{number}.txt"
        # A page prints its headline twice: the raw-text parser takes it as the title.
        path.write_text(f"{title}\n\n{title}\n\n{body}\n", "utf-8")
        files.append(path)
    return files


def ingest(files: list[Path], tag: str, env: dict[str, str]) -> tuple[dict[int, float], list[int]]:
    """Run `newsbot ingest --json`: when each article was stored (its line printed), and their ids."""
    process = subprocess.Popen([NEWSBOT, "ingest", "--json", "--tag", tag, *map(str, files)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    stored: dict[int, float] = {}
    for line in process.stdout:
        if line.startswith("{"):
            stored[json.loads(line)["id"]] = time.time()
    errors = process.stderr.read()
    if process.wait() != 0 or len(stored) != len(files):
        raise SystemExit(f"newsbot ingest stored {len(stored)} of {len(files)} articles: {errors}")
    return stored, list(stored)


def article_of(message: SentMessage) -> int | None:
    """The article a push is about, from its mute button ("mute:<story>:<article>"); None for replies."""
    for _label, data in message.buttons():
        if data.startswith("mute:"):
            return int(data.split(":")[2])
    return None


class Prober(threading.Thread):
    """New users send the probe commands in turn; remembers when each was queued."""

    def __init__(self, server: RemoteFakeBotApi, interval: float, summary_id: int, first_user: int) -> None:
        super().__init__(daemon=True)
        self.server, self.interval, self.summary_id = server, interval, summary_id
        self.next_user = first_user
        self.sent: dict[int, tuple[str, float]] = {}  # user -> (command, queued at)
        self.stopped = threading.Event()

    def run(self) -> None:
        turn = 0
        while not self.stopped.wait(self.interval):
            command = COMMANDS[turn % len(COMMANDS)]
            text = {"follow": "/follow Olahraga", "latest": "/latest", "summary": f"/summary {self.summary_id}"}[command]
            user = self.next_user
            self.next_user += 1
            turn += 1
            self.sent[user] = (command, time.time())
            self.server.user_command(user, text, lang="en")


class Bot:
    """A `newsbot run` process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("wb")
        self.process = subprocess.Popen([NEWSBOT, "run"], env=env, stdout=self.log, stderr=self.log, cwd=log.parent)

    def wait_started(self, server: RemoteFakeBotApi) -> None:
        deadline = time.time() + 120
        while not server.calls("getUpdates"):
            if time.time() > deadline or self.process.poll() is not None:
                raise SystemExit(f"the bot did not start; see {self.log.name}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Pushes:
    """Follows the fake server's sent messages incrementally (never re-reading the whole list)."""

    def __init__(self, server: RemoteFakeBotApi) -> None:
        self.server = server
        self.seen = 0
        self.first: dict[tuple[int, int | None], float] = {}  # (chat, article) -> first message time
        self.first_reply: dict[int, float] = {}  # chat -> first message time

    def poll(self) -> None:
        batch = self.server.sent_messages(since=self.seen)
        self.seen += len(batch)
        for message in batch:
            self.first_reply.setdefault(message.chat_id, message.time)
            self.first.setdefault((message.chat_id, article_of(message)), message.time)

    def wait(self, wanted: list[tuple[int, int]], timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.poll()
            if all(key in self.first for key in wanted):
                return True
            time.sleep(0.1)
        return False


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of a new database of `kind`: a SQLite file in workdir, or a PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'newsbot.sqlite3'}"
        return
    from pgscratch import admin_url, scratch_postgres

    with scratch_postgres(admin_url(), "newsbot_bench_latency") as url:
        yield url


def run_scenario(name: str, args: argparse.Namespace, server: RemoteFakeBotApi, probe_user: int) -> Outcome:
    """One scenario in a fresh database and bot process."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-latency-{name}-"))
    with fresh_database(args.database, workdir) as database_url:
        return _run_scenario(name, args, server, probe_user, workdir, database_url)


def _run_scenario(name: str, args: argparse.Namespace, server: RemoteFakeBotApi, probe_user: int,
                  workdir: Path, database_url: str) -> Outcome:
    if name in {"fanout", "both"}:
        prepare_database(database_url, args.chats)
    followers = list(range(FOLLOWER_BASE, FOLLOWER_BASE + BURST_FOLLOWERS))
    add_followers(database_url, followers, BURST_TAG)
    server.reset()
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(workdir), "TELEGRAM_BASE_URL": server.base_url,
           "TELEGRAM_BOT_TOKEN": server.token, "BROKER_URL": "", "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
           "MODEL_CACHE_DIR": str(args.cache_dir / "converted")}
    if name == "nomodel":
        env |= {"SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none"}
    else:
        env |= {"SUMMARY_MODEL": str(args.summary_model), "TRANSLATION_MODEL": args.translation_model}
    env.update(args.env)
    outcome = Outcome(name)
    pushes = Pushes(server)
    bot = Bot(env, workdir / "bot.log")
    try:
        bot.wait_started(server)
        # Warm-up: models loaded, and an article whose summary (id and en) is cached for /summary ID.
        _, (warm,) = ingest(article_files(workdir / "warm", 1, 90), BURST_TAG, env)
        if not pushes.wait([(chat, warm) for chat in followers], 600):
            raise SystemExit(f"{name}: the warm-up article was not pushed; see {workdir / 'bot.log'}")
        if name == "nomodel":
            for count, offset in ((1, 10), (args.burst, 20)):
                stored, ids = ingest(article_files(workdir / f"n{count}", count, offset), BURST_TAG, env)
                pushes.wait([(chat, article) for article in ids for chat in followers], 120)
                outcome.add_delays(str(count), stored, pushes, followers)
            return outcome
        prober = Prober(server, args.probe_interval, 1, probe_user)  # the warm-up article: the database's first
        prober.start()
        started = time.time()
        wanted: list[tuple[int, int]] = []
        stored: dict[int, float] = {}
        if name in {"fanout", "both"}:
            ingest(article_files(workdir / "fanout", 1, 60), FANOUT_TAG, env)
        if name in {"summaries", "both"}:
            stored, ids = ingest(article_files(workdir / "burst", args.burst, 0), BURST_TAG, env)
            wanted = [(chat, article) for article in ids for chat in followers]
        # Probes run for the window, and on until the burst's pushes are all out.
        while time.time() - started < args.window or (wanted and not all(k in pushes.first for k in wanted)):
            if time.time() - started > args.window + 600:
                break
            time.sleep(0.5)
            pushes.poll()
        prober.stopped.set()
        prober.join()
        time.sleep(3)  # the last probes' replies
        pushes.poll()
        if wanted:
            outcome.add_delays(str(args.burst), stored, pushes, followers)
        for user, (command, queued) in prober.sent.items():
            if user in pushes.first_reply:
                outcome.latencies[command].append(pushes.first_reply[user] - queued)
                outcome.timeline.append((command, queued - started, pushes.first_reply[user] - queued))
            else:
                outcome.unanswered += 1
        if name == "idle":  # one article on a quiet bot
            stored, ids = ingest(article_files(workdir / "one", 1, 40), BURST_TAG, env)
            pushes.wait([(chat, ids[0]) for chat in followers], 300)
            outcome.add_delays("1", stored, pushes, followers)
        outcome.scenario = name
        return outcome
    finally:
        bot.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--chats", type=int, default=10_000, help="followers of the fan-out article")
    parser.add_argument("--burst", type=int, default=20, help="articles summarized at once")
    parser.add_argument("--window", type=float, default=45.0, help="seconds of probing (at least)")
    parser.add_argument("--probe-interval", type=float, default=0.25)
    parser.add_argument("--keep", type=int, default=64000, help="Latin-script pieces of mT5's vocabulary")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "newsbot-bench-models")
    parser.add_argument("--database", choices=DATABASES, default="sqlite",
                        help="a new SQLite file per scenario (the embedded default) or a new PostgreSQL database")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the bot process (repeatable), e.g. MODEL_NICENESS=0")
    parser.add_argument("--json", type=Path, help="also write every measurement to this file")
    args = parser.parse_args(argv)
    args.env = dict(item.split("=", 1) for item in args.env)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not SHARED_DATA.exists():
        raise SystemExit(f"{SHARED_DATA} is missing (IndoSum articles)")
    from models import tokenizer_folders

    folders = tokenizer_folders(args.cache_dir, args.keep)
    args.summary_model = folders.summary
    args.translation_model = str(folders.summary.parent / "opus-mt-{src}-{tgt}")
    from fakebotapi import RemoteFakeBotApi

    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    server_process = subprocess.Popen([sys.executable, str(REPO / "tests" / "fakebotapi.py"), "--port", "0"],
                                      stdout=subprocess.PIPE, text=True)
    outcomes: dict[str, list[Outcome]] = defaultdict(list)
    try:
        server = RemoteFakeBotApi(server_process.stdout.readline().strip())  # type: ignore[union-attr]  # stdout=PIPE
        probe_user = PROBE_BASE
        for round_number in range(args.rounds):
            for name in scenarios:
                outcome = run_scenario(name, args, server, probe_user)
                probe_user += 100_000
                outcomes[name].append(outcome)
                every = [value for values in outcome.latencies.values() for value in values]
                summary = (f"p50 {percentile(every, 50) * 1000:.0f} ms, p99 {percentile(every, 99) * 1000:.0f} ms"
                           if every else "no probes")
                print(f"  round {round_number + 1} {name}: commands {summary}; ingest-to-push "
                      + ", ".join(f"{k}: p50 {statistics.median(v):.2f} s" for k, v in outcome.ingest_to_push.items() if v),
                      file=sys.stderr, flush=True)
    finally:
        server_process.terminate()
    report(outcomes, args)


def report(outcomes: dict[str, list[Outcome]], args: argparse.Namespace) -> None:
    """Per scenario: medians over rounds of each round's percentiles."""
    def median_of(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    print(f"{args.database}; {args.rounds} round(s); probes every {args.probe_interval:g} s for at least {args.window:g} s; "
          f"fan-out to {args.chats} chats; burst of {args.burst} articles to {BURST_FOLLOWERS} followers; "
          f"medians over rounds of each round's figure; ms")
    print(f"{'scenario':<11}{'probes':>7}{'p50':>7}{'p95':>7}{'p99':>7}{'max':>7}"
          + "".join(f"{command + ' p99':>13}" for command in COMMANDS) + f"{'unanswered':>12}")
    for name, runs in outcomes.items():
        if name == "nomodel":
            continue
        rows = [[v for values in run.latencies.values() for v in values] for run in runs]
        line = f"{name:<11}{median_of([len(r) for r in rows]):>7.0f}"
        for q in (50, 95, 99):
            line += f"{median_of([percentile(r, q) * 1000 for r in rows if r]):>7.0f}"
        line += f"{median_of([max(r) * 1000 for r in rows if r]):>7.0f}"
        for command in COMMANDS:
            p99s = [percentile(run.latencies[command], 99) * 1000 for run in runs if run.latencies[command]]
            line += f"{median_of(p99s):>13.0f}"
        print(line + f"{median_of([run.unanswered for run in runs]):>12.0f}")
    print("\ningest-to-push: from `newsbot ingest` storing the article (its --json line) to each follower's "
          "push, and to the article's first push; seconds")
    print(f"{'case':<34}{'pushes':>7}{'p50':>7}{'p95':>7}{'first p50':>11}{'first p95':>11}")
    cases = [("idle", "1", "1 article, seq2seq"), ("summaries", str(args.burst), f"{args.burst} articles, seq2seq"),
             ("nomodel", "1", "1 article, no model"), ("nomodel", str(args.burst), f"{args.burst} articles, no model")]
    for scenario, key, label in cases:
        runs = [run for run in outcomes.get(scenario, []) if run.ingest_to_push.get(key)]
        if runs:
            every, first = [run.ingest_to_push[key] for run in runs], [run.first_push[key] for run in runs]
            print(f"{label:<34}{median_of([len(s) for s in every]):>7.0f}"
                  f"{median_of([percentile(s, 50) for s in every]):>7.2f}{median_of([percentile(s, 95) for s in every]):>7.2f}"
                  f"{median_of([percentile(s, 50) for s in first]):>11.2f}{median_of([percentile(s, 95) for s in first]):>11.2f}")
    if args.json:
        args.json.write_text(json.dumps({name: [{"latencies": run.latencies, "unanswered": run.unanswered,
                                                 "ingest_to_push": run.ingest_to_push, "first_push": run.first_push,
                                                 "timeline": run.timeline}
                                                for run in runs]
                                         for name, runs in outcomes.items()}), "utf-8")


if __name__ == "__main__":
    main()
