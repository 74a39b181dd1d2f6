"""Story linking: the same news from many outlets becomes one story (docs/stories.md).

Outlets republish wire copy with another dateline and byline, "Baca juga" lines, reordered or
dropped paragraphs, changed numbers and time phrases, and added sentences. The body is
normalised against all of that (datelines, bylines and boiler lines removed with the helpers
of summarizer/text.py and bot/ingest/rawtext.py; numbers and time words dropped), split into
sentences, and turned into word 3-shingles *within* sentences, so moving sentences or
paragraphs changes nothing.

Candidates come from a MinHash LSH index (datasketch's MinHash; 32 bands of 4 rows, plus one
"band" for the normalised title) kept in the `story_bands` table and looked up by band value
with `IN (...)` inside the time window: an index lookup, never a scan, on SQLite and
PostgreSQL alike, shared by every process. Each candidate is then verified on the exact
shingle sets (Jaccard, containment for drops and additions, title similarity), and two texts
whose explicit dates ("Senin (4/12)") disagree are different events unless nearly identical.
A story older than the window (STORY_WINDOW_DAYS) is never joined.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from datasketch import MinHash
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db.models import Article, StoryBand, StoryEdit
from bot.ingest.fingerprint import words
from bot.ingest.rawtext import BYLINE, DATELINE, INITIALS, INLINE_RELATED, TRAILING_INITIALS
from summarizer.text import split_sentences, strip_datelines

NUM_PERM = 128
BAND_ROWS = 4
BANDS = NUM_PERM // BAND_ROWS
TITLE_BAND = BANDS  # the extra band holding the normalised title's hash
MINHASH_SEED = 1  # fixed: band values must be equal in every process and after restarts
SHINGLE_WORDS = 3
TITLE_BAND_MIN_WORDS = 4
BOILER_MAX_WORDS = 20  # a "Baca juga: <headline>" line is short; a paragraph starting with "Video" is not
OPENING_LINES = 2  # datelines only open the first paragraphs
MAX_CANDIDATES = 20
# Verification thresholds (bench/eval_stories.py measures them; docs/stories.md has the figures).
JACCARD_LINK = 0.5
CONTAINMENT_LINK = 0.75
CONTAINMENT_MIN_SHINGLES = 12  # containment of a tiny text says little
TITLE_LINK = 0.5
JACCARD_WITH_TITLE = 0.25
# Two texts naming different dates are different events unless nearly the same text.
DATES_OVERRIDE_JACCARD = 0.8
# Footer edits wait this long after a new member, so a burst of outlets costs one edit per message.
STORY_EDIT_DELAY = timedelta(seconds=2)
# A published_at this far past the time it was stored is a feed's mistake: the stored time counts.
FUTURE_SLACK = timedelta(days=1)

# Time phrases outlets change freely between copies ("Sabtu (10/2) malam" -> "kemarin malam").
TIME_WORDS = frozenset(
    word
    for line in (
        "senin selasa rabu kamis jumat jum'at sabtu minggu ahad",
        "monday tuesday wednesday thursday friday saturday sunday",
        "januari februari maret april mei juni juli agustus september oktober november desember",
        "january february march may june july august october december",
        "jan feb mar apr jun jul agu agt ags aug sep sept okt oct nov des dec",
        "kemarin hari ini tadi besok lusa pagi siang sore malam dini subuh petang pukul jam wib wita wit",
        "lalu silam mendatang pekan bulan tahun",
        "yesterday today tomorrow morning afternoon evening night tonight am pm gmt utc last week ago",
    )
    for word in line.split()
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("januari", "january", "jan"), ("februari", "february", "feb"), ("maret", "march", "mar"),
            ("april", "apr"), ("mei", "may"), ("juni", "june", "jun"), ("juli", "july", "jul"),
            ("agustus", "august", "agu", "agt", "ags", "aug"), ("september", "sep", "sept"),
            ("oktober", "october", "okt", "oct"), ("november", "nov"), ("desember", "december", "des", "dec"),
        ),
        start=1,
    )
    for name in names
}
# "Senin (4/12)", "(4/12/2026)", "4/12/2026": day/month, as Indonesian outlets write them.
_SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/\d{2,4})?\b")
_NAMED_DATE = re.compile(r"\b(\d{1,2})\s+([A-Za-z]{3,9})\b")


@dataclass(frozen=True)
class StoryText:
    """What linking compares of one article: normalised shingles, title words, dates, bands."""

    shingles: frozenset[str]
    title_words: frozenset[str]
    dates: frozenset[tuple[int, int]]
    bands: tuple[int, ...] = ()


@dataclass(frozen=True)
class Similarity:
    jaccard: float
    containment: float
    title: float
    smaller: int  # shingles of the smaller text


@dataclass(frozen=True)
class StoryMatch:
    """The story a new article joins, and the member it matched best."""

    story_id: int
    article_id: int
    similarity: Similarity


def _ignored(token: str) -> bool:
    return token in TIME_WORDS or any(char.isdigit() for char in token)


def _is_boiler(line: str) -> bool:
    if INITIALS.match(line):
        return True
    short = len(line.split()) <= BOILER_MAX_WORDS
    return short and bool(INLINE_RELATED.match(line) or BYLINE.match(line))


# "Jakarta, CNN Indonesia - - Dua pemuda ...": the shapes strip_datelines leaves (a doubled dash).
_OPENING_DASH = re.compile(r"^(?P<prefix>[^\n–—.!?]{2,60}?)\s+(?:[-–—]\s*){1,2}(?=\S)")
_OPENING_DASH_MAX_WORDS = 6


def _strip_opening_dateline(line: str) -> str:
    match = DATELINE.match(line)
    if match:
        return line[match.end() - 1 :]  # the pattern ends on the text's first character
    match = _OPENING_DASH.match(line)
    if match:
        prefix = match["prefix"]
        marked = "," in prefix or "(" in prefix or ".com" in prefix.casefold() or prefix.isupper()
        if marked and len(prefix.split()) <= _OPENING_DASH_MAX_WORDS:
            return line[match.end() :]
    return line


def normalised_sentences(body: str) -> list[list[str]]:
    """The body's sentences as word lists, without datelines, bylines, boiler lines, numbers and time words."""
    sentences: list[list[str]] = []
    opened = 0
    for raw in strip_datelines(body).split("\n"):
        line = raw.strip()
        if not line or _is_boiler(line):
            continue
        if opened < OPENING_LINES:
            line = _strip_opening_dateline(line)
            opened += 1
        line = TRAILING_INITIALS.sub("", line)
        for sentence in split_sentences(line):
            tokens = [token for token in words(sentence) if not _ignored(token)]
            if tokens:
                sentences.append(tokens)
    return sentences


def shingles_of(sentences: Sequence[Sequence[str]]) -> frozenset[str]:
    """Word 3-shingles inside each sentence (a 2-word sentence is one shingle; single words none)."""
    result: set[str] = set()
    for tokens in sentences:
        if len(tokens) < SHINGLE_WORDS:
            if len(tokens) > 1:
                result.add(" ".join(tokens))
            continue
        result.update(" ".join(tokens[i : i + SHINGLE_WORDS]) for i in range(len(tokens) - SHINGLE_WORDS + 1))
    return frozenset(result)


def dates_in(text: str) -> frozenset[tuple[int, int]]:
    """(day, month) of the explicit dates in a text."""
    found: set[tuple[int, int]] = set()
    for match in _SLASH_DATE.finditer(text):
        day, month = int(match[1]), int(match[2])
        if 1 <= day <= 31 and 1 <= month <= 12:
            found.add((day, month))
    for match in _NAMED_DATE.finditer(text):
        named = _MONTHS.get(match[2].casefold())
        if named is not None and 1 <= int(match[1]) <= 31:
            found.add((int(match[1]), named))
    return frozenset(found)


def _band_hash(band: int, payload: bytes) -> int:
    digest = hashlib.blake2b(band.to_bytes(2, "big") + payload, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)  # fits a signed BIGINT


def band_hashes(shingles: Collection[str], title_words: Sequence[str]) -> tuple[int, ...]:
    """The LSH band values of a text: BANDS MinHash bands, plus the title's hash when long enough."""
    bands: list[int] = []
    if shingles:
        minhash = MinHash(num_perm=NUM_PERM, seed=MINHASH_SEED)
        minhash.update_batch([shingle.encode("utf-8") for shingle in sorted(shingles)])
        values = minhash.hashvalues.astype("<u8")
        bands.extend(
            _band_hash(band, values[band * BAND_ROWS : (band + 1) * BAND_ROWS].tobytes()) for band in range(BANDS)
        )
    if len(title_words) >= TITLE_BAND_MIN_WORDS:
        bands.append(_band_hash(TITLE_BAND, " ".join(title_words).encode("utf-8")))
    return tuple(bands)


def story_text(title: str, body: str, *, with_bands: bool = True) -> StoryText:
    """Normalise an article for linking; `with_bands` also computes its LSH band values."""
    shingles = shingles_of(normalised_sentences(body))
    title_tokens = [token for token in words(title) if not _ignored(token)]
    return StoryText(
        shingles=shingles,
        title_words=frozenset(title_tokens),
        dates=dates_in(f"{title}\n{body}"),
        bands=band_hashes(shingles, title_tokens) if with_bands else (),
    )


def similarity(a: StoryText, b: StoryText) -> Similarity:
    common = len(a.shingles & b.shingles)
    union = len(a.shingles) + len(b.shingles) - common
    smaller = min(len(a.shingles), len(b.shingles))
    title_union = len(a.title_words | b.title_words)
    return Similarity(
        jaccard=common / union if union else 0.0,
        containment=common / smaller if smaller else 0.0,
        title=len(a.title_words & b.title_words) / title_union if title_union else 0.0,
        smaller=smaller,
    )


def same_story(a: StoryText, b: StoryText, score: Similarity | None = None) -> bool:
    """Whether two texts report the same event (see the module docstring)."""
    score = score or similarity(a, b)
    if a.dates and b.dates and not (a.dates & b.dates) and score.jaccard < DATES_OVERRIDE_JACCARD:
        return False  # "Banjir di Bekasi, Senin (4/12)" and "... Senin (11/12)": two floods
    if score.jaccard >= JACCARD_LINK:
        return True
    if score.containment >= CONTAINMENT_LINK and score.smaller >= CONTAINMENT_MIN_SHINGLES:
        return True  # one copy dropped paragraphs or added sentences
    return score.jaccard >= JACCARD_WITH_TITLE and score.title >= TITLE_LINK


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite gives naive UTC


def article_time(published_at: datetime | None, created_at: datetime) -> datetime:
    """When an article appeared, for the story window: its publication time unless implausible."""
    created = _aware(created_at)
    if published_at is None:
        return created
    published = _aware(published_at)
    return published if published <= created + FUTURE_SLACK else created


class StoryLinker:
    """Finds the story a new article belongs to, and indexes articles for later lookups."""

    def __init__(self, window: timedelta, *, max_candidates: int = MAX_CANDIDATES) -> None:
        self.window = window
        self._max_candidates = max_candidates

    def find(
        self,
        session: Session,
        text: StoryText,
        at: datetime,
        submitter: int | None = None,
        *,
        exclude: Collection[int] = (),
    ) -> StoryMatch | None:
        """The best verified story among the LSH candidates the submitter may see, or None.

        Only stories that began within the window before `at` qualify. `exclude`: article ids
        never to match (the article itself, when re-linking).
        """
        if not text.bands:
            return None
        at = _aware(at)
        hits = func.count().label("hits")
        rows = session.execute(
            select(StoryBand.article_id, hits)
            .where(
                StoryBand.band_hash.in_(list(text.bands)),
                StoryBand.created_at >= at - self.window,
                StoryBand.created_at <= at + self.window,
            )
            .group_by(StoryBand.article_id)
            .order_by(hits.desc(), StoryBand.article_id)
            .limit(self._max_candidates + len(exclude))
        ).all()
        ids = [article_id for article_id, _ in rows if article_id not in exclude][: self._max_candidates]
        if not ids:
            return None
        candidates = session.execute(
            select(Article.id, Article.story_id, Article.title, Article.body, Article.submitted_by_chat_id)
            .where(Article.id.in_(ids))
        ).all()
        heads = {candidate.story_id or candidate.id for candidate in candidates}
        started = {
            head_id: article_time(published, created)
            for head_id, published, created in session.execute(
                select(Article.id, Article.published_at, Article.created_at).where(Article.id.in_(heads))
            )
        }
        best: StoryMatch | None = None
        for candidate in candidates:
            # Private submissions: only what the submitter can see (see IngestService._find_story_head).
            if candidate.submitted_by_chat_id is not None and candidate.submitted_by_chat_id != submitter:
                continue
            head = candidate.story_id or candidate.id
            if head not in started or started[head] < at - self.window:
                continue  # the story is older than the window: a new story starts
            other = story_text(candidate.title, candidate.body, with_bands=False)
            score = similarity(text, other)
            if not same_story(text, other, score):
                continue
            if best is None or (score.jaccard, score.containment) > (best.similarity.jaccard, best.similarity.containment):
                best = StoryMatch(story_id=head, article_id=candidate.id, similarity=score)
        return best

    def story_open(self, session: Session, story_id: int, at: datetime) -> bool:
        """Whether the story (its first article) began within the window before `at`."""
        row = session.execute(select(Article.published_at, Article.created_at).where(Article.id == story_id)).first()
        return row is not None and article_time(row[0], row[1]) >= _aware(at) - self.window

    @staticmethod
    def index(session: Session, article_id: int, text: StoryText, at: datetime) -> None:
        """Store the article's band values (in the caller's transaction)."""
        if text.bands:
            at = _aware(at)
            session.execute(
                insert(StoryBand),
                [{"band_hash": value, "article_id": article_id, "created_at": at} for value in dict.fromkeys(text.bands)],
            )


def request_story_edit(session: Session, story_id: int, now: datetime) -> None:
    """Ask for the story's sent pushes to be re-rendered (their footer names the new outlet).

    An existing request keeps its due time (debounce) but moves `requested_at`, so an edit pass
    already running does not consume this request.
    """
    values = {"story_id": story_id, "requested_at": now, "due_at": now + STORY_EDIT_DELAY, "attempts": 0}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(StoryEdit).values(**values)
    session.execute(
        statement.on_conflict_do_update(index_elements=["story_id"], set_={"requested_at": statement.excluded.requested_at})
    )
