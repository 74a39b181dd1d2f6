"""Full-text search over stored articles: SQLite FTS5 or PostgreSQL text search, one interface.

The reader's words are cut with `bot.follows.matcher.words` (letters and digits only), so
"harga-beras", "Harga beras" and "beras harga" are the same two words, and nothing the reader
types (`%`, `*`, `"`, `(`, `NEAR`, `\\`) is ever an operator: every word goes into the engine's
query as a quoted literal. Forms: words (all required, any order), `"a phrase"`, `-word`,
`-"a phrase"`.

SQLite: `articles_fts` (FTS5, unicode61 with diacritics removed), kept current by triggers on
`articles` and built for existing rows by migration 0003; ranked by bm25. PostgreSQL: the
generated column `articles.fts_document` with a GIN index ('simple' configuration: no stemming,
so Indonesian and English words match as written), ranked by ts_rank. No `unaccent`: it needs a superuser to
install and is not immutable (so cannot be indexed); accented Indonesian words are rare.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from bot.follows.matcher import words

# PostgreSQL: the generated tsvector column (and GIN index) migration 0003 adds; not in the ORM
# model, so `select(Article)` never loads it.
PG_DOCUMENT = "articles.fts_document"
MAX_TERMS = 8
MAX_WORD_CHARS = 64
_RAW_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'([+\-\u2212\u2013\u2014]?)"([^"]*)"?|([+\-\u2212\u2013\u2014]?)(\S+)')
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "＂": '"'})


# A word as its spellings to look for: folded ("strasse", "uber") and lower-cased ("straße", "über"),
# since PostgreSQL's 'simple' configuration keeps accents and ß, and FTS5 keeps ß.
Word = tuple[str, ...]
Phrase = tuple[Word, ...]


@dataclass
class SearchQuery:
    """Phrases all required (a word is a one-word phrase) and phrases excluded."""

    include: list[Phrase] = field(default_factory=list)
    exclude: list[Phrase] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.include)  # exclusions alone would list the whole archive


def _phrase(text: str) -> Phrase:
    spellings: list[Word] = []
    for token in _RAW_WORD.findall(unicodedata.normalize("NFC", text)):
        variants = dict.fromkeys([*words(token), token.lower()])  # ordered, unique; folded first
        kept = tuple(v for v in variants if v and len(v) <= MAX_WORD_CHARS and _RAW_WORD.fullmatch(v))
        if kept:
            spellings.append(kept)
    return tuple(spellings)


def parse_search(query: str) -> SearchQuery:
    """The search forms; unusable pieces (emoji, punctuation, empty quotes) are left out."""
    parsed = SearchQuery()
    for match in _TOKEN.finditer(query.translate(_QUOTES)):
        qsign, quoted, wsign, word = match.groups()
        sign = qsign if quoted is not None else wsign
        found = _phrase(quoted if quoted is not None else word)
        if not found or len(parsed.include) + len(parsed.exclude) >= MAX_TERMS:
            continue
        if sign and sign != "+":
            parsed.exclude.append(found)
        elif quoted is not None:
            parsed.include.append(found)
        else:  # "harga-beras" unquoted: both words, in any order and place
            parsed.include += [(w,) for w in found if (w,) not in parsed.include]
    parsed.include = parsed.include[:MAX_TERMS]
    return parsed


def _fts5(query: SearchQuery) -> str:
    def phrase(words_: Phrase) -> str:
        if len(words_) == 1:
            return "(" + " OR ".join(f'"{w}"' for w in words_[0]) + ")"  # words hold no '"': literals
        return '"' + " ".join(w[0] for w in words_) + '"'  # FTS5 phrases hold no OR: the folded spelling

    expression = " AND ".join(phrase(p) for p in query.include)
    for excluded in query.exclude:
        expression = f"({expression}) NOT {phrase(excluded)}"
    return expression


def _tsquery(query: SearchQuery) -> str:
    def phrase(words_: Phrase) -> str:
        # Words hold no "'": literal lexemes.
        return "(" + " <-> ".join("(" + " | ".join(f"'{v}'" for v in w) + ")" for w in words_) + ")"

    return " & ".join([*(phrase(p) for p in query.include), *(f"!{phrase(p)}" for p in query.exclude)])


class FullTextSearch:
    """Ranked article ids for a query, public articles plus the viewer's own private ones."""

    def search(self, session: Session, query: str, limit: int, viewer_chat_id: int | None) -> list[int]:
        parsed = parse_search(query)
        if not parsed:
            return []
        params: dict[str, object] = {"viewer": viewer_chat_id, "limit": limit}
        visible = "(articles.submitted_by_chat_id IS NULL OR articles.submitted_by_chat_id = :viewer)"
        if session.get_bind().dialect.name == "sqlite":
            sql = ("SELECT articles.id FROM articles_fts JOIN articles ON articles.id = articles_fts.rowid "
                   f"WHERE articles_fts MATCH :q AND {visible} "
                   "ORDER BY bm25(articles_fts), articles.created_at DESC, articles.id DESC LIMIT :limit")
            params["q"] = _fts5(parsed)
        else:
            # The tsquery inline (not a FROM item), so the planner sees a constant and uses the GIN index.
            tsquery = "to_tsquery('simple'::regconfig, :q)"
            sql = (f"SELECT articles.id FROM articles WHERE {PG_DOCUMENT} @@ {tsquery} AND {visible} "
                   f"ORDER BY ts_rank({PG_DOCUMENT}, {tsquery}) DESC, articles.created_at DESC, articles.id DESC LIMIT :limit")
            params["q"] = _tsquery(parsed)
        return [row[0] for row in session.execute(text(sql), params)]
