"""How many articles per second `IngestService.ingest` stores from raw page text.

Runs on a temporary SQLite file and on a temporary PostgreSQL database (created from
NEWSBOT_BENCH_POSTGRES_URL, default postgresql+psycopg://postgres@localhost:5432/postgres,
and dropped afterwards). Articles are distinct synthetic raw pages (site chrome included), so
every call parses, detects the language, fingerprints, checks duplicates and stores.

    .venv/bin/python bench/bench_ingest.py [--count 300] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

# The throwaway-PostgreSQL helper is a test helper (tests/pgscratch.py), not part of the package.
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bot.config import Settings  # noqa: E402 - after the sys.path set-up above
from bot.db import Database  # noqa: E402 - after the sys.path set-up above
from bot.db.migrate import upgrade  # noqa: E402 - after the sys.path set-up above
from bot.ingest.loaders import article_from_document  # noqa: E402 - after the sys.path set-up above
from bot.ingest.service import IngestService  # noqa: E402 - after the sys.path set-up above
from bot.tags import TagService  # noqa: E402 - after the sys.path set-up above

from pgscratch import scratch_postgres  # noqa: E402 - after the sys.path set-up above

WORDS = [
    "pemerintah", "menyatakan", "bahwa", "rencana", "pembangunan", "jalan", "baru", "akan", "dimulai", "tahun",
    "depan", "setelah", "anggaran", "disetujui", "oleh", "dewan", "perwakilan", "rakyat", "daerah", "warga",
    "menyambut", "baik", "keputusan", "itu", "namun", "meminta", "agar", "proses", "pembebasan", "lahan", "dilakukan",
    "secara", "adil", "dan", "terbuka", "menteri", "keuangan", "mengatakan", "pertumbuhan", "ekonomi", "kuartal",
    "ketiga", "lebih", "tinggi", "dari", "perkiraan", "para", "analis", "pasar", "harga", "bahan", "pokok", "di",
    "sejumlah", "pasar", "tradisional", "terpantau", "stabil", "menjelang", "akhir", "pekan", "petani", "mengeluhkan",
    "biaya", "pupuk", "yang", "terus", "naik", "sementara", "harga", "gabah", "di", "tingkat", "petani", "tidak",
    "berubah",
]
TOPICS = ["Ekonomi", "Politik", "Rusia", "Pendidikan", "Kesehatan", "Olahraga", "Teknologi", "Jakarta"]


def synthetic_page(rng: random.Random, index: int) -> str:
    """A raw page like the shared sample: chrome, category, headline twice, paragraphs, comment form."""
    def sentence() -> str:
        words = rng.choices(WORDS, k=rng.randint(12, 24))
        return " ".join(words).capitalize() + "."

    headline = " ".join(word.capitalize() for word in rng.choices(WORDS, k=8)) + f" {index}"
    paragraphs = [" ".join(sentence() for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(5, 9))]
    topic = rng.choice(TOPICS)
    return "\n\n".join(
        ["Loading", "Ketik untuk mencari", topic, headline, headline, *paragraphs,
         "Tags:", "Tinggalkan Komentar", "Your email address will not be published. Required fields are marked *"]
    )  # fmt: skip


def run(database_url: str, pages: list[str], tmp: Path) -> float:
    """Articles per second for ingesting `pages` into a fresh migrated database."""
    database = Database(database_url)
    upgrade(database.engine)
    settings = Settings(_env_file=None, database_url=database_url, data_dir=tmp)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option
    tags = TagService(database, settings)
    service = IngestService(database, settings, tags)
    tags.ensure_aliases_loaded()
    service.ingest(article_from_document(pages[0]))  # warm-up: language models, first queries
    started = time.perf_counter()
    created = 0
    for page in pages[1:]:
        created += service.ingest(article_from_document(page)).created
    elapsed = time.perf_counter() - started
    database.dispose()
    if created != len(pages) - 1:
        raise SystemExit(f"expected {len(pages) - 1} new articles, got {created}")
    return (len(pages) - 1) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    rng = random.Random(42)
    pages = [synthetic_page(rng, index) for index in range(args.count + 1)]
    started = time.perf_counter()
    for page in pages:
        article_from_document(page)
    parse_rate = len(pages) / (time.perf_counter() - started)
    print(f"raw-text parsing alone: {parse_rate:.0f} pages/s ({args.count} synthetic pages, cpus={os.cpu_count()})")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if args.backend in ("sqlite", "both"):
            rate = run(f"sqlite:///{tmp / 'bench.sqlite3'}", pages, tmp)
            print(f"sqlite:     {rate:.1f} articles/s stored by ingest (WAL, one process)")
        if args.backend in ("postgres", "both"):
            admin_url = os.environ.get("NEWSBOT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@localhost:5432/postgres")
            with scratch_postgres(admin_url, "newsbot_bench", migrate=False) as url:
                rate = run(url, pages, tmp)
                print(f"postgresql: {rate:.1f} articles/s stored by ingest (one process)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
