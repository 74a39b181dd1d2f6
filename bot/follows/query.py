"""The follow query: what `/follow`, `/unfollow` and `/preview` take, parsed once.

Forms (any mix, in any language):
- `Korea Selatan Rusia`: known tags and their aliases are recognised as whole phrases, longest
  first (two tags here); words that are no known tag are keywords.
- `"harga beras"`: a quoted phrase is always a keyword.
- `-word`, `-"a phrase"`, `-Tag`: exclusions; `+word`: required in addition.
- Commas separate explicitly: `Rusia -iklan, Ekonomi` is two follows, the exclusion belongs to the
  first. Every tag or keyword of a comma group is one follow, with the group's + and - terms.

Parsing never raises on input: whatever cannot be used is returned in `dropped`, with a reason,
so the reply can name it. Operator characters of SQL, FTS or regular expressions are no
operators here: only letters and digits make words (see `matcher.words`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.follows.matcher import ArticleText, words
from bot.services.subscriptions import TagRef
from bot.tags import normalize_tag

MAX_WORD_CHARS = 64  # longer "words" are junk (a pasted hash, a 10,000-letter line)
MAX_TAG_WORDS = 6  # longest tag name, in words, that recognition tries
SHOWN_CHARS = 60  # a dropped piece is named at most this long

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "＂": '"'})
_MINUS = r"\-\u2212\u2013\u2014"  # phones turn "-" into a dash at times
_TOKEN = re.compile(rf'(,)|([+{_MINUS}]?)"([^"]*)"?|([+{_MINUS}]?)([^\s,"]+)')


class Sign(enum.Enum):
    NONE = ""
    REQUIRE = "+"
    EXCLUDE = "-"


class DropReason(enum.StrEnum):
    """Why a piece of a query was not used (each has a `follow.dropped.<reason>` message)."""

    EMPTY = "empty"  # "" or a sign alone
    INVALID = "invalid"  # no letters or digits (emoji, punctuation), or an over-long word
    TOO_LONG = "too_long"  # past the query length limit
    TOO_MANY = "too_many"  # past the terms-per-follow limit
    ONLY_EXCLUDED = "only_excluded"  # a group with exclusions and nothing to follow


@dataclass(frozen=True)
class Dropped:
    text: str
    reason: DropReason


@dataclass(frozen=True)
class Term:
    """A tag, or words that must occur consecutively (folded, see `matcher.words`)."""

    words: tuple[str, ...]
    display: str
    tag_id: int | None = None

    @property
    def shown(self) -> str:
        """How the reader sees the term: a tag's name, a keyword, or a "quoted phrase"."""
        if self.tag_id is not None or len(self.words) == 1:
            return self.display
        return f'"{self.display}"'

    @property
    def key(self) -> str:
        return f"#{self.tag_id}" if self.tag_id is not None else " ".join(self.words)

    def found_in(self, article: ArticleText) -> bool:
        """A tag term: the article has the tag, or its name in the text; a keyword: the words."""
        return (self.tag_id is not None and self.tag_id in article.tag_ids) or article.has_words(self.words)

    def to_json(self) -> dict[str, Any]:
        return {"w": list(self.words), "d": self.display, "t": self.tag_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Term:
        return cls(tuple(str(word) for word in data["w"]), str(data["d"]), data.get("t"))


@dataclass(frozen=True)
class FollowQuery:
    """One follow: an anchor (a tag or a keyword), words also required, and exclusions."""

    anchor: Term
    require: tuple[Term, ...] = ()
    exclude: tuple[Term, ...] = ()

    @property
    def is_plain_tag(self) -> bool:
        """A tag and nothing else: stored as a plain subscription (the indexed fast path)."""
        return self.anchor.tag_id is not None and not self.require and not self.exclude

    @property
    def text(self) -> str:
        """The normal form shown to readers: `Rusia +gandum -"iklan baris"`."""
        return " ".join([self.anchor.shown, *(f"+{t.shown}" for t in self.require), *(f"-{t.shown}" for t in self.exclude)])

    @property
    def key(self) -> str:
        """Equal for queries that mean the same (order of + and - terms does not matter)."""
        return " ".join([self.anchor.key, *sorted(f"+{t.key}" for t in self.require),
                         *sorted(f"-{t.key}" for t in self.exclude)])

    @property
    def candidate_word(self) -> str | None:
        """For a keyword anchor, the word an article must contain to be worth checking."""
        return None if self.anchor.tag_id is not None else self.anchor.words[0]

    def matches(self, article: ArticleText) -> bool:
        # A tag anchor matches by the article's tags only, as plain tag follows always did.
        if self.anchor.tag_id is not None:
            if self.anchor.tag_id not in article.tag_ids:
                return False
        elif not article.has_words(self.anchor.words):
            return False
        return all(term.found_in(article) for term in self.require) and not any(
            term.found_in(article) for term in self.exclude)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.anchor.to_json(), "r": [t.to_json() for t in self.require],
                "x": [t.to_json() for t in self.exclude]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FollowQuery:
        return cls(Term.from_json(data["a"]), tuple(Term.from_json(t) for t in data.get("r", ())),
                   tuple(Term.from_json(t) for t in data.get("x", ())))


@dataclass(frozen=True)
class QueryLimits:
    max_chars: int = 300
    max_terms: int = 10  # tags and keywords in one follow, + and - terms included


@dataclass
class ParsedQuery:
    follows: list[FollowQuery] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    unknown_words: list[str] = field(default_factory=list)  # bare words that are no tag (for suggestions)
    quoted: bool = False  # the reader used quotes (asked for keywords explicitly)


# normalized tag keys -> the tags they name (directly or as aliases); unknown keys are absent
TagLookup = Callable[[Collection[str]], Mapping[str, TagRef]]


@dataclass(frozen=True)
class _Token:
    sign: Sign
    text: str
    quoted: bool


def _shorten(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _tokens(text: str) -> list[list[_Token]]:
    """Comma groups of tokens."""
    groups: list[list[_Token]] = [[]]
    for match in _TOKEN.finditer(text.translate(_QUOTES)):
        comma, qsign, quoted, wsign, word = match.groups()
        if comma:
            groups.append([])
            continue
        raw_sign = qsign if quoted is not None else wsign
        sign = Sign.REQUIRE if raw_sign == "+" else Sign.EXCLUDE if raw_sign else Sign.NONE
        groups[-1].append(_Token(sign, quoted if quoted is not None else word, quoted is not None))
    return [group for group in groups if group]


def _cut(text: str, limit: int) -> tuple[str, str]:
    """`text` cut at a space or comma before `limit` characters, and the rest."""
    if len(text) <= limit:
        return text, ""
    head = text[:limit]
    cut = max(head.rfind(" "), head.rfind(","))
    if cut > 0:
        head = head[:cut]
    return head, text[len(head):].strip()


def _keyword(text: str) -> Term | None:
    found = words(text)
    if not found or any(len(word) > MAX_WORD_CHARS for word in found):
        return None
    return Term(found, " ".join(found))


def parse_query(text: str, lookup: TagLookup, limits: QueryLimits = QueryLimits()) -> ParsedQuery:
    """Parse a follow query; see the module docstring for the forms."""
    result = ParsedQuery()
    text, rest = _cut(" ".join(text.split()), limits.max_chars)
    if rest:
        result.dropped.append(Dropped(_shorten(rest), DropReason.TOO_LONG))
    groups = _tokens(text)
    # Every name that could be a tag, looked up at once: n-grams of bare-word runs, signed terms.
    candidates: set[str] = set()
    for group in groups:
        bare: list[str] = []
        for token in [*group, None]:
            if token is not None and token.sign is Sign.NONE and not token.quoted:
                bare.append(token.text)
                continue
            for start in range(len(bare)):
                for end in range(start + 1, min(start + MAX_TAG_WORDS, len(bare)) + 1):
                    candidates.add(normalize_tag(" ".join(bare[start:end])))
            bare = []
            if token is not None and token.sign is not Sign.NONE:
                candidates.add(normalize_tag(token.text))
    candidates.discard("")
    tags = lookup(candidates) if candidates else {}

    def tag_term(name: str) -> Term | None:
        tag = tags.get(normalize_tag(name))
        return Term(words(tag.name), tag.name, tag.id) if tag is not None else None

    seen: set[str] = set()
    for group in groups:
        positives: list[Term] = []
        require: list[Term] = []
        exclude: list[Term] = []
        run: list[str] = []

        for token in group:
            if token.sign is Sign.NONE and not token.quoted:
                run.append(token.text)
                continue
            positives += _split_run(run, tag_term, result)
            run = []
            shown = f'{token.sign.value}"{token.text}"' if token.quoted else f"{token.sign.value}{token.text}"
            if not token.text.strip():
                result.dropped.append(Dropped(_shorten(shown) or '""', DropReason.EMPTY))
                continue
            result.quoted = result.quoted or token.quoted
            term = (tag_term(token.text) if token.sign is not Sign.NONE else None) or _keyword(token.text)
            if term is None:
                result.dropped.append(Dropped(_shorten(shown), DropReason.INVALID))
                continue
            {Sign.NONE: positives, Sign.REQUIRE: require, Sign.EXCLUDE: exclude}[token.sign].append(term)
        positives += _split_run(run, tag_term, result)
        if not positives and require:
            positives.append(require.pop(0))  # "+gandum" alone: follow gandum
        if not positives:
            if exclude:
                result.dropped.append(Dropped(_shorten(" ".join(f"-{t.shown}" for t in exclude)), DropReason.ONLY_EXCLUDED))
            continue
        require, exclude = _unique(require), _unique(exclude)
        room = max(0, limits.max_terms - 1)
        extra = [f"+{t.shown}" for t in require[room:]] + [f"-{t.shown}" for t in exclude[max(0, room - len(require)):]]
        require = require[:room]
        exclude = exclude[: max(0, room - len(require))]
        if extra:
            result.dropped.append(Dropped(_shorten(" ".join(extra)), DropReason.TOO_MANY))
        for anchor in _unique(positives):
            query = FollowQuery(anchor, tuple(t for t in require if t.key != anchor.key), tuple(exclude))
            if query.key not in seen:
                seen.add(query.key)
                result.follows.append(query)
    return result


def _split_run(run: list[str], tag_term: Callable[[str], Term | None], result: ParsedQuery) -> list[Term]:
    """Bare words as tags, longest known name first ("Korea Selatan Rusia": two tags); the rest keywords."""
    terms: list[Term] = []
    start = 0
    while start < len(run):
        for end in range(min(start + MAX_TAG_WORDS, len(run)), start, -1):
            term = tag_term(" ".join(run[start:end]))
            if term is not None:
                terms.append(term)
                start = end
                break
        else:
            keyword = _keyword(run[start])
            if keyword is None:
                result.dropped.append(Dropped(_shorten(run[start]), DropReason.INVALID))
            else:
                terms.append(keyword)
                if run[start] not in result.unknown_words:
                    result.unknown_words.append(run[start])
            start += 1
    return terms


def _unique(terms: list[Term]) -> list[Term]:
    seen: set[str] = set()
    kept = []
    for term in terms:
        if term.key not in seen:
            seen.add(term.key)
            kept.append(term)
    return kept
