"""Text normalization, exact-duplicate fingerprints and SimHash for near-duplicates."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200c-\u200f\u2028\u2029\ufeff]")
_BLANK_LINES = re.compile(r"\n{3,}")
SIMHASH_BITS = 64
SHINGLE_SIZE = 3


def clean_text(text: str, *, join_wrapped: bool = True) -> str:
    """Tidy whitespace: NFC, no control characters, single spaces, paragraphs split by one blank line.

    With join_wrapped, hard-wrapped prose lines inside a paragraph are joined back together.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current) if join_wrapped and _is_wrapped(current) else "\n".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current) if join_wrapped and _is_wrapped(current) else "\n".join(current))
    return _BLANK_LINES.sub("\n\n", "\n\n".join(paragraphs)).strip()


def _is_wrapped(lines: list[str]) -> bool:
    # Hard-wrapped prose: long lines that don't end a sentence, continued on the next line.
    return len(lines) > 1 and all(
        len(line) >= 40 and not line.endswith((".", "!", "?", ":", "\u201d", '"')) for line in lines[:-1]
    )


def words(text: str) -> list[str]:
    """Casefolded, accent-free words of a text."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _WORD.findall(plain)


def fingerprint(text: str, tokens: list[str] | None = None) -> str:
    """sha256 of the text's words: the same article with other spacing or punctuation matches."""
    tokens = words(text) if tokens is None else tokens
    return hashlib.sha256(" ".join(tokens).encode("utf-8")).hexdigest()


def simhash(text: str, tokens: list[str] | None = None) -> int:
    """64-bit SimHash over word 3-shingles, as a signed int (fits PostgreSQL BIGINT)."""
    tokens = words(text) if tokens is None else tokens
    if len(tokens) >= SHINGLE_SIZE:
        shingles = [" ".join(tokens[i : i + SHINGLE_SIZE]) for i in range(len(tokens) - SHINGLE_SIZE + 1)]
    else:
        shingles = tokens
    # Per-bit counts of set bits, kept bit-sliced: counters[j] holds bit j of all 64 counts at
    # once, so adding a hash is a few big-int operations instead of a 64-step loop.
    counters: list[int] = []
    for shingle in shingles:
        carry = int.from_bytes(hashlib.blake2b(shingle.encode("utf-8"), digest_size=8).digest(), "big")
        level = 0
        while carry:
            if level == len(counters):
                counters.append(0)
            current = counters[level]
            counters[level] = current ^ carry
            carry = current & carry
            level += 1
    total = len(shingles)
    unsigned = 0
    for bit in range(SIMHASH_BITS):
        ones = sum(((counter >> bit) & 1) << level for level, counter in enumerate(counters))
        if 2 * ones > total:  # more shingles set this bit than not
            unsigned |= 1 << bit
    return unsigned - (1 << SIMHASH_BITS) if unsigned >= 1 << (SIMHASH_BITS - 1) else unsigned


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two signed 64-bit SimHashes."""
    mask = (1 << SIMHASH_BITS) - 1
    return ((a & mask) ^ (b & mask)).bit_count()
