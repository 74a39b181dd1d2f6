"""Follow matching and full-text search benchmark, on SQLite and PostgreSQL (not a timed test).

Builds a database with --follows follows spread over --chats chats (half plain tag follows, half
query follows: keywords, phrases, tags with +required words, -exclusions) and --articles stored
articles made of a Zipf-distributed vocabulary, then measures:

- fan-out matching: the time `FanoutService.fan_out_next()` takes for one new article (claim,
  plain tag followers, query-follow candidates from the indexes, the matcher in Python, the
  deliveries inserted), over --rounds new articles: median, p95, max; target < 200 ms on PostgreSQL;
- /search: `ArticleQueries.search` (what /search runs) for --queries queries of 1-3 words,
  some with a phrase or an exclusion: p50, p95; target p95 < 100 ms.

    .venv/bin/python bench/bench_follows.py                       # both databases, 100,000 each
    .venv/bin/python bench/bench_follows.py --backend sqlite --follows 10000 --articles 10000
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

CHUNK = 5000
VOCABULARY = 20_000
TAGS = 2_000
SYLLABLES = ["ka", "ra", "ma", "ta", "sa", "la", "na", "pa", "ba", "da", "ga", "ja", "wa", "ha", "ya",
             "ki", "ri", "mi", "ti", "si", "li", "ni", "pi", "bi", "di", "gu", "ju", "ku", "ru", "mu",
             "te", "se", "le", "ne", "pe", "be", "de", "ge", "ko", "ro", "mo", "to", "so", "lo", "no"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def make_vocabulary(rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        words["".join(rng.choices(SYLLABLES, k=rng.randint(2, 4)))] = None
    return list(words)


class Text:
    """Zipf-like word draws: a few very common words, a long tail (like news text)."""

    def __init__(self, rng: random.Random, vocabulary: list[str]) -> None:
        self.rng = rng
        self.vocabulary = vocabulary
        self.cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocabulary))))

    def words(self, count: int) -> list[str]:
        return self.rng.choices(self.vocabulary, cum_weights=self.cumulative, k=count)

    def rare(self) -> str:
        return self.vocabulary[self.rng.randint(100, len(self.vocabulary) - 1)]


def build(database_url: str, chats: int, follows: int, articles: int, rng: random.Random, text: Text) -> list[int]:
    """Chats, tags, follows and stored (already fanned-out) articles; returns the tag ids."""
    from sqlalchemy import insert

    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.db.models import Article, ArticleTag, Chat, ChatKind, Follow, Subscription, Tag
    from bot.follows.query import FollowQuery, Term

    database = Database(database_url)
    upgrade(database.engine)
    now = datetime.now(UTC)
    tag_names = [f"Topik {text.vocabulary[i]}" for i in range(TAGS)]
    with database.session() as session:
        session.execute(insert(Tag), [{"key": name.lower(), "name": name, "created_at": now} for name in tag_names])
        session.execute(insert(Chat), [{"id": 10_000 + i, "kind": ChatKind.PRIVATE, "lang": "id", "active": True,
                                        "created_at": now, "updated_at": now} for i in range(chats)])
    with database.session() as session:
        tag_ids = [tag_id for (tag_id,) in session.query(Tag.id).order_by(Tag.id)]
    plain, queries = follows // 2, follows - follows // 2
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < plain:
        pairs.add((10_000 + rng.randrange(chats), rng.choice(tag_ids)))
    rows = []
    for index in range(queries):
        kind = index % 4
        if kind == 0:  # a keyword with an exclusion: /follow gandum -iklan
            query = FollowQuery(Term((text.rare(),), ""), (), (Term((text.rare(),), ""),))
        elif kind == 1:  # a phrase: /follow "harga beras"
            query = FollowQuery(Term((text.rare(), text.rare()), ""))
        elif kind == 2:  # a tag with a required word: /follow Rusia +gandum
            query = FollowQuery(Term(("topik",), "", rng.choice(tag_ids)), (Term((text.rare(),), ""),))
        else:  # a keyword
            query = FollowQuery(Term((text.rare(),), ""))
        rows.append({"chat_id": 10_000 + index % chats, "key": f"{query.key}#{index}", "text": query.text,
                     "query": query.to_json(), "tag_id": query.anchor.tag_id, "word": query.candidate_word,
                     "created_at": now})
    with database.session() as session:
        for start in range(0, len(rows), CHUNK):
            session.execute(insert(Follow), rows[start:start + CHUNK])
        pair_rows = [{"chat_id": c, "tag_id": t, "created_at": now} for c, t in pairs]
        for start in range(0, len(pair_rows), CHUNK):
            session.execute(insert(Subscription), pair_rows[start:start + CHUNK])
    started = time.perf_counter()
    for start in range(0, articles, CHUNK):
        with database.session() as session:
            batch = []
            for index in range(start, min(articles, start + CHUNK)):
                title = " ".join(text.words(8)).capitalize()
                batch.append({"title": title, "body": " ".join(text.words(90)) + ".", "lang": "id",
                              "fingerprint": f"bench-{index}", "created_at": now - timedelta(minutes=articles - index),
                              "fanned_out_at": now})
            ids = session.scalars(insert(Article).returning(Article.id), batch).all()
            session.execute(insert(ArticleTag), [{"article_id": article_id, "tag_id": rng.choice(tag_ids)} for article_id in ids])
    print(f"  stored {articles:,} articles in {time.perf_counter() - started:.1f} s (search index kept current on insert)")
    if database.engine.dialect.name == "postgresql":
        with database.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    database.dispose()
    return tag_ids


def measure(database_url: str, args: argparse.Namespace) -> None:
    from bot.config import Settings
    from bot.db import Database
    from bot.ingest.service import ArticleInput, IngestService
    from bot.services.articles import ArticleQueries
    from bot.services.fanout import FanoutService
    from bot.tags import TagService

    rng = random.Random(args.seed)
    text = Text(rng, make_vocabulary(rng))
    tag_ids = build(database_url, args.chats, args.follows, args.articles, rng, text)
    settings = Settings(database_url=database_url, summary_model="none", translation_model="none")
    database = Database(database_url)
    tags = TagService(database, settings)
    ingest = IngestService(database, settings, tags)
    fanout = FanoutService(database)
    timings: list[float] = []
    matching: list[float] = []
    deliveries = 0
    for _ in range(args.rounds):
        tag = f"Topik {text.vocabulary[rng.choice(range(len(tag_ids)))]}"
        stored = ingest.ingest(ArticleInput(title=" ".join(text.words(8)), body=" ".join(text.words(400)) + ".",
                                            tags=[tag], lang="id"))
        # Matching alone (who gets it: plain tag followers, then query follows), in a read transaction.
        with database.session() as session:
            started = time.perf_counter()
            plain = FanoutService._followers(session, stored.article_id, stored.story_id)
            FanoutService._query_followers(session, stored.article_id, stored.story_id, {chat for chat, _ in plain})
            matching.append((time.perf_counter() - started) * 1000)
            session.rollback()
        started = time.perf_counter()
        item = fanout.fan_out_next()
        timings.append((time.perf_counter() - started) * 1000)
        deliveries += item.deliveries if item else 0
    print(f"  matching 1 new article (400 words) against {args.follows:,} follows: median {statistics.median(matching):.1f} ms, "
          f"p95 {percentile(matching, 95):.1f} ms, max {max(matching):.1f} ms")
    print(f"  whole fan-out of it (claim, matching, deliveries inserted, commit): median {statistics.median(timings):.1f} ms, "
          f"p95 {percentile(timings, 95):.1f} ms, max {max(timings):.1f} ms ({deliveries / args.rounds:.1f} deliveries/article)")
    queries = ArticleQueries(database, tags)
    search_times: list[float] = []
    hits = 0
    for index in range(args.queries):
        words = [text.vocabulary[rng.randint(20, 3000)] for _ in range(rng.randint(1, 3))]
        if index % 5 == 3:
            words = [f'"{" ".join(words)}"']
        elif index % 5 == 4:
            words.append(f"-{text.vocabulary[rng.randint(0, 50)]}")
        started = time.perf_counter()
        hits += len(queries.search(" ".join(words), 10))
        search_times.append((time.perf_counter() - started) * 1000)
    print(f"  /search on {args.articles:,} articles ({args.queries} queries, 10 results): "
          f"p50 {percentile(search_times, 50):.1f} ms, "
          f"p95 {percentile(search_times, 95):.1f} ms, max {max(search_times):.1f} ms ({hits / args.queries:.1f} results/query)")
    database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--follows", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=20_000)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            print("SQLite")
            measure(f"sqlite:///{folder}/bench.sqlite3", args)
    if args.backend in ("postgres", "both"):
        from conftest import POSTGRES_ADMIN_URL
        from pgscratch import scratch_postgres

        with scratch_postgres(POSTGRES_ADMIN_URL, "newsbot_bench", migrate=False) as url:
            print("PostgreSQL")
            measure(url, args)


if __name__ == "__main__":
    main()
