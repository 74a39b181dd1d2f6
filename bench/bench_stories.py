"""Story linking time per new article with 100,000 and 1,000,000 stored articles.

    PYTHONPATH=. .venv/bin/python bench/bench_stories.py [--sizes 100000 1000000] [--backend sqlite|postgres|both]
                                                        [--text-fillers 20000] [--probes 100]

Stored articles: 50 IndoSum dev articles (../shared/data/indosum-dev-100.jsonl) stored through
IngestService, then fillers bulk-inserted (PostgreSQL COPY, SQLite executemany; the band
index is dropped while loading and rebuilt). `--text-fillers` of them are synthetic Indonesian
texts with real MinHash bands (words drawn from the IndoSum vocabulary by frequency, so common
shingles collide as in real news); the rest get random band values (computing 1,000,000
signatures would take the 2-core build machine most of an hour; unrelated articles' bands are
effectively random anyway). Every filler is dated inside the story window: the worst case.

Probes, each timed as one new article: normalise + MinHash (`story_text`), the candidate
lookup and verification (`StoryLinker.find`), and inserting its bands (then rolled back, so
the database stays as built). Half are edited copies of the 50 stored articles (must link),
half the other 50 IndoSum articles (new stories). PostgreSQL is a temporary database created
through NEWSBOT_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@localhost:5432/postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from sqlalchemy import text  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.ingest.fingerprint import words  # noqa: E402
from bot.ingest.service import ArticleInput, IngestService  # noqa: E402
from bot.ingest.stories import BANDS, StoryLinker, story_text  # noqa: E402
from bot.tags import TagService  # noqa: E402

from eval_stories import DEFAULT_DATA, edit_all, load  # noqa: E402
from pgscratch import scratch_postgres  # noqa: E402

BAND_INDEXES = (
    ("ix_story_bands_band_hash_created_at", "band_hash, created_at"),
    ("ix_story_bands_article_id", "article_id"),
)
CHUNK = 20_000
FIRST_FILLER_ID = 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextmanager
def open_backend(backend: str, folder: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder}/bench_stories.sqlite3"
        return
    admin = os.environ.get("NEWSBOT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@localhost:5432/postgres")
    with scratch_postgres(admin, "newsbot_bench_stories", migrate=False) as url:
        yield url


def _sqlite_time(value: object) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite (naive ISO text)."""
    assert isinstance(value, datetime)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Builder:
    """Grows one database to the requested number of stored articles."""

    def __init__(self, db: Database, rng: random.Random, vocabulary: list[str], weights: list[int], text_fillers: int) -> None:
        self.db = db
        self.rng = rng
        self.vocabulary = vocabulary
        self.weights = weights
        self.text_fillers = text_fillers
        self.stored = 0
        self.next_id = FIRST_FILLER_ID
        self.now = datetime.now(UTC)

    def synthetic_body(self) -> str:
        paragraphs = []
        for _ in range(self.rng.randint(4, 9)):
            sentences = [" ".join(self.rng.choices(self.vocabulary, self.weights, k=self.rng.randint(8, 22))).capitalize() + "."
                         for _ in range(self.rng.randint(1, 3))]
            paragraphs.append(" ".join(sentences))
        return "\n\n".join(paragraphs)

    def grow(self, target: int) -> None:
        count = target - self.stored
        if count <= 0:
            return
        self._drop_indexes()
        started = time.perf_counter()
        done = 0
        while done < count:
            size = min(CHUNK, count - done)
            articles, bands = [], []
            for _ in range(size):
                article_id = self.next_id
                self.next_id += 1
                at = self.now - timedelta(seconds=self.rng.uniform(60, 2.9 * 86400))  # inside the window
                if article_id - FIRST_FILLER_ID < self.text_fillers:
                    body = self.synthetic_body()
                    values = story_text(f"Filler {article_id}", body).bands
                else:
                    body = "filler"
                    values = tuple(self.rng.getrandbits(64) - 2**63 for _ in range(BANDS))
                articles.append((article_id, f"Filler {article_id}", body, "id", f"{article_id:064x}", article_id, at, at, at))
                bands.extend((value, article_id, at) for value in values)
            self._copy(articles, bands)
            done += size
            print(f"  loaded {self.stored + done:,} articles ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        self.stored = target
        started_index = time.perf_counter()
        self._create_indexes()
        print(f"  band index rebuilt in {time.perf_counter() - started_index:.0f} s", file=sys.stderr)

    def _copy(self, articles: list[tuple[object, ...]], bands: list[tuple[object, ...]]) -> None:
        columns_a = "id, title, body, lang, fingerprint, story_id, created_at, published_at, fanned_out_at"
        raw = self.db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if self.db.is_sqlite:
                cursor.executemany(f"INSERT INTO articles ({columns_a}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   [(*row[:6], *(_sqlite_time(value) for value in row[6:])) for row in articles])
                cursor.executemany("INSERT INTO story_bands (band_hash, article_id, created_at) VALUES (?, ?, ?)",
                                   [(value, article_id, _sqlite_time(at)) for value, article_id, at in bands])
            else:
                with cursor.copy(f"COPY articles ({columns_a}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in articles:
                        copy.write_row(row)
                with cursor.copy("COPY story_bands (band_hash, article_id, created_at) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in bands:
                        copy.write_row(row)
            raw.commit()
        finally:
            raw.close()

    def _drop_indexes(self) -> None:
        with self.db.engine.begin() as connection:
            for name, _ in BAND_INDEXES:
                connection.execute(text(f"DROP INDEX IF EXISTS {name}"))

    def _create_indexes(self) -> None:
        with self.db.engine.begin() as connection:
            for name, columns in BAND_INDEXES:
                connection.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON story_bands ({columns})"))
            connection.execute(text("ANALYZE"))


def measure(db: Database, linker: StoryLinker, probes: list[tuple[str, str, bool]]) -> dict[str, object]:
    """Time each probe as a new article: signature, lookup + verification, inserting its bands (rolled back)."""
    signature, lookup, insert, total = [], [], [], []
    linked_right = 0
    at = datetime.now(UTC)
    for title, body, should_link in probes:
        with db.sessionmaker() as session:
            started = time.perf_counter()
            story = story_text(title, body)
            signed = time.perf_counter()
            match = linker.find(session, story, at)
            found = time.perf_counter()
            # Ingest inserts the new article's bands in its transaction; here under a stored
            # article's id, then rolled back so the database stays as built.
            linker.index(session, FIRST_FILLER_ID, story, at)
            session.flush()
            ended = time.perf_counter()
            session.rollback()
        signature.append((signed - started) * 1000)
        lookup.append((found - signed) * 1000)
        insert.append((ended - found) * 1000)
        total.append((ended - started) * 1000)
        linked_right += (match is not None) == should_link
    return {
        "total_p50": statistics.median(total), "total_p95": percentile(total, 0.95), "total_p99": percentile(total, 0.99),
        "signature_p50": statistics.median(signature), "lookup_p50": statistics.median(lookup),
        "lookup_p95": percentile(lookup, 0.95), "insert_p50": statistics.median(insert),
        "correct": f"{linked_right}/{len(probes)}",
    }


def run_backend(backend: str, sizes: list[int], text_fillers: int, probe_count: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    originals = load(DEFAULT_DATA)
    vocabulary_counts = Counter(token for original in originals for token in words(original.body) if not token.isdigit())
    vocabulary = list(vocabulary_counts)
    weights = [vocabulary_counts[token] for token in vocabulary]
    stored, fresh = originals[:50], originals[50:]
    results = []
    with tempfile.TemporaryDirectory() as folder, open_backend(backend, folder) as url:
        settings = Settings(_env_file=None, database_url=url, data_dir=Path(folder),  # type: ignore[call-arg]
                            summary_model="none", translation_model="none")
        db = Database(url)
        upgrade(db.engine)
        ingest = IngestService(db, settings, TagService(db, settings))
        for original in stored:
            ingest.ingest(ArticleInput(body=original.body, title=original.title, lang="id",
                                       published_at=datetime.now(UTC) - timedelta(hours=6)))
        probes = [(o.title, edit_all(o.body, 2, rng), True) for o in stored]
        probes += [(o.title, o.body, False) for o in fresh]
        probes = (probes * (1 + probe_count // len(probes)))[:probe_count]
        builder = Builder(db, rng, vocabulary, weights, text_fillers)
        builder.stored = len(stored)
        linker = StoryLinker(timedelta(days=settings.story_window_days))
        for size in sizes:
            print(f"{backend}: building {size:,} stored articles", file=sys.stderr)
            builder.grow(size)
            measure(db, linker, probes[:10])  # warm the caches the way a running bot has them
            result = {"backend": backend, "stored": size, **measure(db, linker, probes)}
            print(json.dumps(result), file=sys.stderr)
            results.append(result)
        db.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--text-fillers", type=int, default=20_000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    rows = [row for backend in backends
            for row in run_backend(backend, sorted(args.sizes), args.text_fillers, args.probes, args.seed)]
    print(f"{'database':<11} {'stored':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  {'MinHash':>8} {'lookup p50/p95':>15} "
          f"{'bands insert':>12}  correct")
    for row in rows:
        print(f"{row['backend']:<11} {row['stored']:>10,} {row['total_p50']:>8.2f} {row['total_p95']:>8.2f}"
              f" {row['total_p99']:>8.2f}"
              f"  {row['signature_p50']:>8.2f} {row['lookup_p50']:>7.2f}/{row['lookup_p95']:<7.2f} {row['insert_p50']:>12.2f}"
              f"  {row['correct']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
