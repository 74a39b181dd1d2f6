"""Fault runs at full length: 300 followers, Telegram or PostgreSQL away for real durations.

    .venv/bin/python bench/bench_outages.py                 # every scenario (about 10 minutes)
    .venv/bin/python bench/bench_outages.py --followers 60 --only telegram-500-90s

The same harness as tests/test_outages.py (real push loop, PTB bot, rate limiter and HTTP
timeouts, fake Bot API, own PostgreSQL cluster on a spare port), with production settings: probe
backoff 1 s doubling to 15 s, 30 s send timeout, 5 s delivery backoff, 30 messages/s. The fault
starts once 90 of the 300 pushes went out. Prints one Markdown table row per scenario
(docs/reliability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import pgcluster  # noqa: E402
from test_outages import FIRST_CHAT, captured_logs, followers, push_rig  # noqa: E402

from bot.db import Database  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import DeliveryStatus  # noqa: E402

from conftest import make_settings  # noqa: E402
from fakebotapi import FakeBotApi  # noqa: E402
from test_fanout import World  # noqa: E402

PRODUCTION = {"probe_first": 1.0, "probe_max": 15.0, "error_backoff_max": 5.0, "notice_interval": 60.0}


def telegram(kind: str, seconds: float) -> Callable[[FakeBotApi, pgcluster.OwnPostgres, str], None]:
    def fault(server: FakeBotApi, pg: pgcluster.OwnPostgres, name: str) -> None:
        if kind == "500":
            server.server_outage(seconds)
            time.sleep(seconds)
        elif kind == "hang":
            server.stall(seconds)
            time.sleep(seconds)
        else:  # slow
            server.set_latency(seconds)
            time.sleep(20)
            server.set_latency(0.0)

    return fault


def postgres(kind: str, seconds: float) -> Callable[[FakeBotApi, pgcluster.OwnPostgres, str], None]:
    def fault(server: FakeBotApi, pg: pgcluster.OwnPostgres, name: str) -> None:
        if kind == "restart":
            pg.restart()
        elif kind == "crash":
            pg.crash()
            time.sleep(seconds)
            pg.start()
        elif kind == "down":
            pg.stop("fast")
            time.sleep(seconds)
            pg.start()
        else:
            pg.read_only(name, True)
            time.sleep(seconds)
            pg.read_only(name, False)

    return fault


SCENARIOS = {
    "telegram-500-90s": telegram("500", 90),
    "telegram-hang-60s": telegram("hang", 60),
    "telegram-slow-8s": telegram("slow", 8),
    "postgres-restart": postgres("restart", 0),
    "postgres-crash+10s": postgres("crash", 10),
    "postgres-down-60s": postgres("down", 60),
    "postgres-read-only-30s": postgres("read-only", 30),
}


async def run(name: str, fault: Callable[..., None], pg: pgcluster.OwnPostgres, count: int, latency: float) -> str:
    dbname = f"bench_{uuid.uuid4().hex[:8]}"
    url = pg.create_database(dbname)
    db = Database(url)
    upgrade(db.engine)
    tmp = Path(tempfile.mkdtemp(prefix="newsbot-outage-"))
    world = World(db, make_settings(url, tmp))
    chats = followers(world, count)
    with FakeBotApi(latency=latency) as server, captured_logs() as logs:
        async with push_rig(server, url, tmp, rate=30.0, backoff_base=5.0, fast=False, **PRODUCTION) as rig:
            world.ingest(["Rusia"])
            db.dispose()
            await rig.wait_received(min(90, count // 3), 60)
            faulted = time.monotonic()
            before = len(logs.records)
            await asyncio.to_thread(fault, server, pg, dbname)
            back = time.monotonic()
            ok = await rig.wait_received(count, 600)
            done = time.monotonic()
            while rig.statuses().get(DeliveryStatus.SENT, 0) < count and time.monotonic() - done < 120:
                await asyncio.sleep(0.5)
            outage_lines = len(logs.records) - before
            stats = rig.loop.stats
        received = rig.received()
        lost = sum(1 for c in chats if received[c] == 0)
        doubled = sum(n - 1 for c, n in received.items() if c >= FIRST_CHAT and n > 1)
        statuses = dict(rig.statuses())
    db.dispose()
    return (f"| {name} | {count} | {back - faulted:.0f} s | {done - back:.1f} s | {'yes' if ok and not lost else 'no'} | "
            f"{lost} | {doubled} | {statuses.get(DeliveryStatus.PARKED, 0)} | {stats.held} | {stats.recorded_late} | "
            f"{outage_lines} | {logs.tracebacks()} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.05, help="fake Bot API answer time per send")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    print("| fault | followers | fault lasted | all reached after the fault ended | every follower reached | lost | "
          "duplicated | parked | sends held (no attempt spent) | sends recorded late | log lines | tracebacks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with pgcluster.OwnPostgres() as pg:
        pg.wait_ready()
        for name in args.only or list(SCENARIOS):
            print(await run(name, SCENARIOS[name], pg, args.followers, args.latency), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
