"""Cost of one `DeliveryService.claim_due` with a big fan-out waiting (SQLite or PostgreSQL).

N chats each have one pending delivery of a big story and HISTORY sent deliveries of older stories
(a chat's history is what a per-chat lookup has to step over); SMALL other chats, with the same
history, have a pending delivery of a newer story. The loop claims like the push loop does while
sending at the limit: up to --limit deliveries, with the chats already in flight excluded, then
marks the claimed ones sent (not timed). Prints the median, p95 and max time of a claim, and how
many claims it took until every newer-story delivery was claimed. Not a timed test: run it by hand.

    .venv/bin/python bench/bench_claims.py --pending 10000
    .venv/bin/python bench/bench_claims.py --pending 100000 --claims 100
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHAT_BASE = 1_000_000


def prepare(database_url: str, pending: int, small: int, history: int) -> None:
    """Chats, articles and deliveries inserted in bulk (the fan-out itself is not measured here)."""
    from sqlalchemy import insert

    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.db.models import Article, Chat, ChatKind, Delivery, DeliveryStatus

    db = Database(database_url)
    upgrade(db.engine)
    now = datetime.now(UTC)
    stories = history + 2  # the history's stories, then the big one, then the small one
    chats = list(range(CHAT_BASE, CHAT_BASE + pending + small))
    with db.session() as session:
        session.execute(insert(Article), [
            {"id": i, "title": f"story {i}", "body": "body", "fingerprint": f"fp{i}", "story_id": i,
             "created_at": now, "fanned_out_at": now}
            for i in range(1, stories + 1)
        ])
        session.execute(insert(Chat), [
            {"id": chat, "kind": ChatKind.PRIVATE, "lang": "en", "active": True, "created_at": now, "updated_at": now}
            for chat in chats
        ])

    def rows(story: int, chat_ids: list[int], status: DeliveryStatus) -> list[dict[str, object]]:
        return [{"article_id": story, "story_id": story, "chat_id": chat, "status": status, "attempts": 0,
                 "created_at": now, "updated_at": now} for chat in chat_ids]

    for story in range(1, history + 1):  # the history first: older ids, as in a real outbox
        with db.session() as session:
            session.execute(insert(Delivery), rows(story, chats, DeliveryStatus.SENT))
    with db.session() as session:
        session.execute(insert(Delivery), rows(history + 1, chats[:pending], DeliveryStatus.PENDING))
    with db.session() as session:
        session.execute(insert(Delivery), rows(history + 2, chats[pending:], DeliveryStatus.PENDING))
    db.engine.dispose()


def measure(database_url: str, limit: int, claims: int, small: int, pending: int) -> None:
    from bot.config import Settings
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.services.deliveries import DeliveryService

    db = Database(database_url)
    upgrade(db.engine)  # a template written before a schema change (not timed)
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option
    service = DeliveryService(db, settings)
    small_chats = set(range(CHAT_BASE + pending, CHAT_BASE + pending + small))
    in_flight: list[int] = []  # chats of the previous claim: still sending, as in the push loop
    timings: list[float] = []
    small_done_after: int | None = None
    small_seen = 0
    for number in range(1, claims + 1):
        started = time.perf_counter()
        claimed = service.claim_due(limit, exclude_chats=set(in_flight))
        timings.append(time.perf_counter() - started)
        small_seen += sum(1 for delivery in claimed if delivery.chat_id in small_chats)
        if small_done_after is None and small_seen >= small:
            small_done_after = number
        for delivery in claimed:
            service.mark_sent(delivery.id, 1)
        in_flight = [delivery.chat_id for delivery in claimed]
    timings.sort()
    print(f"pending {pending + small:,}: {claims} claims of up to {limit}: median {statistics.median(timings) * 1000:.2f} ms, "
          f"p95 {timings[int(len(timings) * 0.95) - 1] * 1000:.2f} ms, max {timings[-1] * 1000:.2f} ms; "
          f"all {small} newer-story deliveries claimed after {small_done_after or 'more than ' + str(claims)} claims")
    db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pending", type=int, default=10_000, help="pending deliveries of the big story")
    parser.add_argument("--small", type=int, default=10, help="pending deliveries of the newer story")
    parser.add_argument("--history", type=int, default=20, help="sent deliveries per chat before these")
    parser.add_argument("--limit", type=int, default=60, help="claim size (the push loop's free slots: 2 x 30)")
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--database-url", help="default: a new SQLite file in a temporary folder")
    parser.add_argument("--template", type=Path,
                        help="SQLite: copy this file (prepared with the same options) instead of preparing; "
                             "written first if absent, so runs before and after a change measure the same rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/claims.db"
        started = time.perf_counter()
        if args.template is not None and args.template.exists():
            shutil.copyfile(args.template, f"{folder}/claims.db")
        else:
            prepare(url, args.pending, args.small, args.history)
            if args.template is not None:
                shutil.copyfile(f"{folder}/claims.db", args.template)
        print(f"prepared in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        measure(url, args.limit, args.claims, args.small, args.pending)


if __name__ == "__main__":
    main()
