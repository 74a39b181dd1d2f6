"""Plain-text helpers: whitespace clean-up, sentence splitting, repetition guard."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# Abbreviations (lowercase, without the final dot) after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    {
        # English
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "inc", "ltd", "co", "corp",
        "gen", "gov", "sen", "rep", "col", "lt", "capt", "sgt", "u.s", "u.k", "e.g", "i.e", "no",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "fig",
        "approx", "est", "dept", "univ",
        # Indonesian
        "bpk", "ibu", "sdr", "dll", "dsb", "dst", "tsb", "yth", "hlm", "kab", "kec", "kel", "jl",
        "jln", "prov", "pt", "tbk", "h", "hj", "ir", "drs", "dra", "kh", "a.n", "u.p", "s.h", "s.e",
        "m.si", "s.pd", "akbp", "kompol", "ipda", "aiptu", "brigjen", "irjen", "kombes", "letjen",
        "mayjen", "nomor", "tgl", "ttg", "sbg",
    }
)

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
# A candidate boundary: end punctuation, optional closing quotes/brackets, whitespace.
_BOUNDARY = re.compile(r"([.!?…]+)([\"'”’)\]]*)(\s+)")
_OPENERS = "\"'“‘([-–—"


def clean_whitespace(text: str) -> str:
    """Collapse runs of spaces, trim lines and keep at most one blank line between paragraphs."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    joined = "\n".join(lines)
    return _BLANK_LINES.sub("\n\n", joined).strip()


def _is_abbreviation(before: str) -> bool:
    """True when the word ending right before a period is a known abbreviation or an initial."""
    word = before.rsplit(None, 1)[-1] if before.strip() else ""
    word = word.lstrip(_OPENERS).lower()
    if not word:
        return False
    if len(word) == 1 and word.isalpha():  # initials: "J. Smith"
        return True
    return word in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split text into sentences; paragraph breaks always end a sentence."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n+", clean_whitespace(text)):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        start = 0
        for match in _BOUNDARY.finditer(paragraph):
            end = match.end(2)
            nxt = paragraph[match.end() : match.end() + 1]
            if not nxt:
                continue
            # The next sentence starts with an upper-case letter, a digit or an opening quote.
            if not (nxt.isupper() or nxt.isdigit() or nxt in _OPENERS):
                continue
            if match.group(1) == "." and _is_abbreviation(paragraph[start : match.start()]):
                continue
            piece = paragraph[start:end].strip()
            if piece:
                sentences.append(piece)
            start = match.end()
        rest = paragraph[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits), for similarity and overlap checks."""
    return re.findall(r"\w+", text.lower())


def ends_sentence(text: str) -> bool:
    """True when text ends with sentence-final punctuation (possibly followed by quotes)."""
    return bool(re.search(r"[.!?…][\"'”’)\]]*$", text.strip()))


def cut_to_sentences(text: str) -> str:
    """Drop a trailing unfinished sentence; keep text as is when it has no complete sentence."""
    text = clean_whitespace(text).replace("\n", " ")
    if ends_sentence(text):
        return text
    sentences = split_sentences(text)
    complete = [sentence for sentence in sentences if ends_sentence(sentence)]
    if complete and len(complete) < len(sentences):
        return " ".join(complete)
    return text


def drop_repeated_sentences(sentences: Sequence[str], threshold: float = 0.8) -> list[str]:
    """Remove sentences whose words mostly repeat an earlier sentence (a generation loop guard)."""
    kept: list[str] = []
    seen: list[set[str]] = []
    for sentence in sentences:
        tokens = set(words(sentence))
        if not tokens:
            continue
        if any(len(tokens & other) / len(tokens) >= threshold for other in seen):
            continue
        kept.append(sentence)
        seen.append(tokens)
    return kept


def tidy_generated(text: str) -> str:
    """Clean a generated summary: whitespace, repeated sentences, unfinished last sentence."""
    current = clean_whitespace(text)
    # Joining sentences can merge two that a line break had split, which changes what counts as
    # a repeat: clean again until nothing changes (twice at most in practice).
    for _ in range(5):
        tidy = cut_to_sentences(" ".join(drop_repeated_sentences(split_sentences(current))))
        if tidy == current:
            break
        current = tidy
    return current


def truncate_to_budget(
    sentences: Sequence[str], count_tokens: Callable[[str], int], budget: int
) -> str:
    """Leading sentences that fit the token budget (at least the first one, which the model cuts)."""
    chosen: list[str] = []
    used = 0
    for sentence in sentences:
        cost = count_tokens(sentence)
        if chosen and used + cost > budget:
            break
        chosen.append(sentence)
        used += cost
    return " ".join(chosen)


# --- datelines and bylines ------------------------------------------------------------------
# News sites open the first paragraph with a dateline ("JAKARTA, KOMPAS.com -", "Jakarta (ANTARA) -",
# "WASHINGTON (Reuters) -", "POROS PERLAWANAN –") and put bylines ("Reporter: X | Editor: Y") and
# "Baca juga: ..." links among the paragraphs. A summary should not open with them, so they are cut
# from the text that is summarized; the stored article keeps them.

# The dateline and the dash after it; the text after the dash starts a sentence (capital or quote).
_DATELINE = re.compile(r"^(?P<prefix>[^\n–—]{2,60}?)\s+(?:–|—|-{1,2})\s+(?=[A-Z0-9\"'“‘])")
_DATELINE_TOKEN = re.compile(r"^(?:[A-Z0-9][\w.'’&/-]*,?|\([^)]{1,30}\),?)$")
_DOMAIN = re.compile(r"\.(?:com|co|id|net|org|news)\b", re.IGNORECASE)
_DASH_PAIR = re.compile(r"\s(?:–|—|-{1,2})\s")
_BYLINE_LINE = re.compile(
    r"^\W*(?:reporter|wartawan|pewarta|penulis|editor|redaktur|penyunting|kontributor|fotografer|"
    r"writer|author|written by|reporting by|editing by|laporan wartawan|by|oleh)\b\s*:?\s*\S",
    re.IGNORECASE,
)
_RELATED_LINE = re.compile(
    r"^\W*(?:baca juga|baca pula|lihat juga|simak juga|read also|also read|see also|read more)\b", re.IGNORECASE
)
_BYLINE_MAX_WORDS = 15
_OPENING_PARAGRAPHS = 2  # a standfirst may come before the dateline paragraph


def _is_dateline(prefix: str) -> bool:
    """True for a short run of capitalised tokens marked as a dateline (caps, comma, source, site)."""
    tokens = re.findall(r"\([^)]*\),?|\S+", prefix.strip())
    if not tokens or len(tokens) > 7 or not all(_DATELINE_TOKEN.match(token) for token in tokens):
        return False
    first_letters = [char for char in tokens[0] if char.isalpha()]
    all_caps_first = len(first_letters) >= 2 and all(char.isupper() for char in first_letters)
    # "Semarang - Banjir ...": a bare place name of one or two words (detik.com's style).
    bare_place = len(tokens) <= 2 and all(token[:1].isupper() for token in tokens)
    return all_caps_first or bare_place or "," in prefix or "(" in prefix or bool(_DOMAIN.search(prefix))


def _strip_dateline(paragraph: str) -> str:
    match = _DATELINE.match(paragraph)
    if match is None or not _is_dateline(match["prefix"]):
        return paragraph
    rest = paragraph[match.end() :]
    first_sentence = (split_sentences(rest) or [""])[0]
    if _DASH_PAIR.search(first_sentence):
        return paragraph  # "BI – Bank Indonesia – menaikkan ...": a dash pair around an aside, not a dateline
    return rest


def _is_byline(line: str) -> bool:
    words_in_line = line.split()
    if not words_in_line or len(words_in_line) > _BYLINE_MAX_WORDS:
        return False
    if _RELATED_LINE.match(line):
        return True
    if line.rstrip().endswith((".", "!", "?", "”", '"')) and "|" not in line:
        return False  # a sentence that happens to start with "By ..." or "Oleh ..."
    return bool(_BYLINE_LINE.match(line))


def strip_datelines(text: str) -> str:
    """The text without its dateline, bylines and "read also" lines (what the summarizer reads).

    Only the opening paragraphs lose a dateline; a first sentence that merely contains a dash is
    kept. Returns the text unchanged when stripping would leave nothing.
    """
    kept: list[str] = []
    opened = 0  # paragraphs of running text seen (headlines and page chrome above them don't count)
    for line in clean_whitespace(text).split("\n"):
        if line and _is_byline(line):
            continue
        if line and opened < _OPENING_PARAGRAPHS:
            line = _strip_dateline(line)
            opened += ends_sentence(line)
        kept.append(line)
    stripped = clean_whitespace("\n".join(kept))
    return stripped or text
