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
        "mayjen", "no", "nomor", "tgl", "ttg", "sbg",
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
    sentences = drop_repeated_sentences(split_sentences(clean_whitespace(text)))
    return cut_to_sentences(" ".join(sentences))


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
