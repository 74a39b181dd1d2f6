"""Precision and recall of story linking on a labelled set built from the IndoSum dev subset.

Usage: PYTHONPATH=. .venv/bin/python bench/eval_stories.py [--data ../shared/data/indosum-dev-100.jsonl]
                                                          [--seed 14] [--database sqlite:///x.sqlite3]

Positives: for every article, copies as other outlets publish them, by edit type and strength
(another dateline and byline; "Baca juga"/"Simak video"/byline boiler lines; time phrases and
dates rewritten; numbers changed; paragraphs reordered; paragraphs dropped; sentences added;
all of these at once), half of them under another outlet's headline. Negatives: every other
article of the same category (the issue's "same category and week" pairs are a subset and are
reported on their own), compared with the original and with each of its copies.

Linking runs through the real code: the originals are stored with IngestService in a fresh
database (SQLite unless --database), all published inside one story window so every original is
a candidate for every copy, and each copy is looked up with StoryLinker.find (the index lookup
plus verification) without being stored, so copies cannot help each other.
Prints recall per edit type and strength, false merges, and the lookup time per copy.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import Settings
from bot.db import Database
from bot.db.migrate import upgrade
from bot.ingest.service import ArticleInput, IngestService
from bot.ingest.stories import StoryLinker, same_story, story_text
from bot.tags import TagService
from summarizer.text import split_sentences

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "indosum-dev-100.jsonl"
WEEK = 7 * 86400
BASE_TIME = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
DATELINES = ("KOMPAS.com –", "JAKARTA, KOMPAS.com -", "Jakarta (ANTARA) -", "POROS PERLAWANAN –",
             "Liputan6.com, Jakarta -", "TEMPO.CO, Jakarta -", "Jakarta, CNN Indonesia --", "")
BYLINES = ("Penulis: Rina Agustina | Editor: Bayu Galih", "Pewarta: Fauzi Lamboka", "Reporter: Ahmad Romadoni")
BOILER = ("Baca juga: Harga cabai di pasar induk kembali naik", "Simak video pilihan berikut ini:",
          "Baca Juga: Ini Daftar Lengkap Pemenang Penghargaan Tahun Ini", "ADVERTISEMENT",
          "Dapatkan update berita pilihan setiap hari dari kami di Telegram.", "(ant/rd)")
DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
TIME_SWAPS = ("kemarin", "hari ini", "pada pagi hari", "malam tadi", "akhir pekan lalu", "pekan ini")
ADDED = ("Hingga berita ini diturunkan, belum ada keterangan resmi dari pihak terkait.",
         "Redaksi telah berupaya menghubungi yang bersangkutan namun belum mendapat tanggapan.",
         "Informasi ini dihimpun dari berbagai sumber di lapangan.",
         "Kejadian tersebut sempat viral di media sosial dan menjadi perbincangan warganet.",
         "Pihak berwenang berjanji akan menindaklanjuti laporan tersebut dalam waktu dekat.")
_OPENING = re.compile(r"^[^\n.!?]{2,60}?\s+(?:[-–—]\s*){1,2}(?=\S)")
_DAY_DATE = re.compile(r"\b(Senin|Selasa|Rabu|Kamis|Jumat|Sabtu|Minggu)\s*(\(\d{1,2}/\d{1,2}(?:/\d{2,4})?\))?")
_CLOCK = re.compile(r"\bpukul\s+\d{1,2}[.:]\d{2}(\s+WI[BT]A?)?", re.IGNORECASE)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")


@dataclass(frozen=True)
class Original:
    index: int
    title: str
    body: str
    category: str
    week: int


@dataclass(frozen=True)
class Copy:
    source: int  # index of the original
    kind: str
    strength: int
    title: str
    body: str


def paragraphs(body: str) -> list[str]:
    """The body's paragraphs; a one-paragraph text is cut into pairs of sentences."""
    parts = [line.strip() for line in body.split("\n") if line.strip()]
    if len(parts) >= 3:
        return parts
    sentences = split_sentences(body)
    return [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)] or parts


def title_of(row: dict[str, str]) -> str:
    """IndoSum has no title field: its id ends with the headline's slug."""
    slug = row["id"].split("-", 1)[1] if "-" in row["id"] else row["id"]
    return slug.replace("-", " ").strip().capitalize()


def _dateline(body: str, rng: random.Random) -> str:
    paras = paragraphs(body)
    first = _OPENING.sub("", paras[0], count=1)
    paras[0] = f"{rng.choice(DATELINES)} {first}".strip()
    return "\n\n".join(paras)


def edit_dateline(body: str, strength: int, rng: random.Random) -> str:
    text = _dateline(body, rng)
    if strength >= 2:
        text = f"{text}\n\n{rng.choice(BYLINES)}"
    if strength >= 3:
        text = f"{rng.choice(BYLINES)}\n\n{text}"
    return text


def edit_boiler(body: str, strength: int, rng: random.Random) -> str:
    paras = paragraphs(body)
    for _ in range(strength):
        paras.insert(rng.randrange(1, len(paras) + 1), rng.choice(BOILER))
    return "\n\n".join(paras)


def edit_time(body: str, strength: int, rng: random.Random) -> str:
    text = _DAY_DATE.sub(lambda m: rng.choice(TIME_SWAPS) if strength >= 2 or rng.random() < 0.5 else rng.choice(DAYS), body)
    text = _CLOCK.sub(lambda m: rng.choice(("pagi tadi", "siang", "sore hari")), text)
    if strength >= 3:
        text = _dateline(text, rng)
    return text


def edit_numbers(body: str, strength: int, rng: random.Random) -> str:
    share = (0.3, 0.6, 1.0)[strength - 1]

    def change(match: re.Match[str]) -> str:
        return str(int(float(match[0].replace(",", "."))) + rng.randint(1, 9)) if rng.random() < share else match[0]

    return _NUMBER.sub(change, body)


def edit_reorder(body: str, strength: int, rng: random.Random) -> str:
    paras = paragraphs(body)
    if strength == 1 and len(paras) >= 3:
        i = rng.randrange(1, len(paras) - 1)
        paras[i], paras[i + 1] = paras[i + 1], paras[i]
    elif strength == 2:
        rest = paras[1:]
        rng.shuffle(rest)
        paras = [paras[0], *rest]
    else:
        rng.shuffle(paras)
    return "\n\n".join(paras)


def edit_drop(body: str, strength: int, rng: random.Random) -> str:
    paras = paragraphs(body)
    share = (0.15, 0.3, 0.45)[strength - 1]
    drop = max(1, round(len(paras) * share))
    keep = sorted(rng.sample(range(len(paras)), max(1, len(paras) - drop)))
    return "\n\n".join(paras[i] for i in keep)


def edit_added(body: str, strength: int, rng: random.Random) -> str:
    paras = paragraphs(body)
    for sentence in rng.sample(ADDED, (1, 2, 4)[strength - 1]):
        paras.insert(rng.randrange(1, len(paras) + 1), sentence)
    return "\n\n".join(paras)


def edit_all(body: str, strength: int, rng: random.Random) -> str:
    text = edit_time(edit_boiler(edit_dateline(body, strength, rng), strength, rng), strength, rng)
    return edit_numbers(edit_reorder(text, strength, rng), strength, rng)


EDITS: dict[str, Callable[[str, int, random.Random], str]] = {
    "dateline/byline": edit_dateline,
    "boiler lines": edit_boiler,
    "time phrases": edit_time,
    "numbers": edit_numbers,
    "paragraph reorder": edit_reorder,
    "paragraph drop": edit_drop,
    "added sentences": edit_added,
    "all of the above": edit_all,
}
STRENGTHS = (1, 2, 3)


def build_copies(originals: list[Original], rng: random.Random) -> list[Copy]:
    copies = []
    for original in originals:
        for kind, edit in EDITS.items():
            for strength in STRENGTHS:
                body = edit(original.body, strength, rng)
                # Half the copies carry another outlet's headline (nothing in common with the original's).
                title = original.title if rng.random() < 0.5 else f"Berita terkini {original.index} {kind}"
                copies.append(Copy(original.index, kind, strength, title, body))
    return copies


def load(path: Path) -> list[Original]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [
        Original(index, title_of(row), "\n\n".join(line for line in row["text"].split("\n") if line.strip()),
                 row["category"], int(row["id"].split("-")[0]) // WEEK)
        for index, row in enumerate(rows)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--database", default="", help="SQLAlchemy URL of an EMPTY database (default: a temporary SQLite file)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    originals = load(args.data)
    copies = build_copies(originals, rng)

    with tempfile.TemporaryDirectory() as folder:
        url = args.database or f"sqlite:///{folder}/eval.sqlite3"
        settings = Settings(_env_file=None, database_url=url, data_dir=Path(folder),  # type: ignore[call-arg]
                            summary_model="none", translation_model="none")
        db = Database(url)
        upgrade(db.engine)
        ingest = IngestService(db, settings, TagService(db, settings))
        linker = StoryLinker(timedelta(days=settings.story_window_days))
        # Every original inside one window: each is a candidate for every copy (the hard case).
        story_of: dict[int, int] = {}
        merged_originals = 0
        for original in originals:
            at = BASE_TIME + timedelta(minutes=20 * original.index)
            result = ingest.ingest(ArticleInput(body=original.body, title=original.title, lang="id", published_at=at,
                                                url=f"https://outlet.example/{original.index}"))
            merged_originals += result.story_id != result.article_id
            story_of[original.index] = result.story_id

        found: dict[tuple[str, int], list[int]] = defaultdict(list)
        wrong_links = 0
        lookups: list[float] = []
        with db.session() as session:
            for copy in copies:
                text = story_text(copy.title, copy.body)
                at = BASE_TIME + timedelta(minutes=20 * copy.source, hours=rng.uniform(0, 48))
                started = time.perf_counter()
                match = linker.find(session, text, at)
                lookups.append((time.perf_counter() - started) * 1000)
                found[(copy.kind, copy.strength)].append(int(match is not None and match.story_id == story_of[copy.source]))
                wrong_links += match is not None and match.story_id != story_of[copy.source]
        db.dispose()

    # Negatives by content alone (no window, no index): same category, original vs original and copy vs original.
    texts = {o.index: story_text(o.title, o.body, with_bands=False) for o in originals}
    same_week_pairs = same_week_merged = category_pairs = category_merged = copy_pairs = copy_merged = 0
    for a in originals:
        for b in originals:
            if b.index <= a.index or a.category != b.category:
                continue
            merged = same_story(texts[a.index], texts[b.index])
            category_pairs += 1
            category_merged += merged
            if a.week == b.week:
                same_week_pairs += 1
                same_week_merged += merged
    by_category: dict[str, list[int]] = defaultdict(list)
    for original in originals:
        by_category[original.category].append(original.index)
    for copy in copies:
        text = story_text(copy.title, copy.body, with_bands=False)
        for other in by_category[originals[copy.source].category]:
            if other != copy.source:
                copy_pairs += 1
                copy_merged += same_story(text, texts[other])

    print(f"data: {args.data.name}, {len(originals)} articles, {len(copies)} copies (seed {args.seed})")
    print(f"database: {'PostgreSQL' if args.database.startswith('postgres') else 'SQLite'}; "
          "all originals published within one story window")
    print()
    print(f"{'edit type':<20} " + " ".join(f"{'strength ' + str(s):>11}" for s in STRENGTHS) + f" {'all':>8}")
    total_hits = total = 0
    for kind in EDITS:
        cells = []
        hits_kind = count_kind = 0
        for strength in STRENGTHS:
            values = found[(kind, strength)]
            cells.append(f"{sum(values) / len(values):>11.3f}")
            hits_kind += sum(values)
            count_kind += len(values)
        total_hits += hits_kind
        total += count_kind
        print(f"{kind:<20} " + " ".join(cells) + f" {hits_kind / count_kind:>8.3f}")
    print(f"{'recall, all copies':<20} {total_hits / total:.4f} ({total_hits}/{total})")
    print()
    linked = total_hits + wrong_links
    print(f"precision of linking (copies linked to the right story / linked): {total_hits / linked if linked else 1:.4f}")
    print(f"false merges, copies linked to another article's story (index + verification): {wrong_links}/{len(copies)}"
          f" = {100 * wrong_links / len(copies):.3f}%")
    print(f"false merges among originals stored (any two of the 100 joined): {merged_originals}")
    print(f"false merges, same category and week, original vs original: {same_week_merged}/{same_week_pairs}")
    print(f"false merges, same category, original vs original: {category_merged}/{category_pairs}"
          f" = {100 * category_merged / max(1, category_pairs):.3f}%")
    print(f"false merges, same category, copy vs other original: {copy_merged}/{copy_pairs}"
          f" = {100 * copy_merged / max(1, copy_pairs):.3f}%")
    lookups.sort()
    print(f"lookup per copy (index query + verification, {len(originals)} stored): median {statistics.median(lookups):.2f} ms,"
          f" p95 {lookups[int(0.95 * len(lookups))]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
