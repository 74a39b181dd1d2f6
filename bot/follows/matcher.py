"""Word matching shared by follows, /preview and search: folded words on word boundaries.

Text is folded once (NFKC, casefold, accents stripped) and cut into words of letters and digits,
so "Harga-Beras", "harga beras" and "HARGA  BERAS!" are the same two words and no character of
the reader's input is ever an operator. Phrases match consecutive words within one field (a
phrase never spans the title's end and the body's start).

No stemmer: the Indonesian stemmers on PyPI (Sastrawi and its forks) are dictionary based,
unmaintained since 2016-2018 or brand new, and slow per word; a reader who wants both forms
follows both ("/follow impor mengimpor").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+")
_FIELD_BREAK = "\x00"  # between fields in `ArticleText.joined`: no word contains it


def fold(text: str) -> str:
    """Lower-case, compatibility forms unified, accents removed ("Ｃafé" -> "cafe")."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return unicodedata.normalize("NFC", "".join(char for char in decomposed if not unicodedata.combining(char)))


def words(text: str) -> tuple[str, ...]:
    """The folded words of `text`: letters and digits only (punctuation, emoji, '%', '*' are gaps)."""
    return tuple(_WORD.findall(fold(text)))


@dataclass(frozen=True)
class ArticleText:
    """An article prepared once for matching many follows against it."""

    tokens: frozenset[str]
    joined: str  # " w1 w2 \x00 w3 … " for phrase look-ups
    tag_ids: frozenset[int]

    @classmethod
    def of(cls, title: str, body: str, tag_names: Iterable[str] = (), tag_ids: Iterable[int] = ()) -> ArticleText:
        fields = [words(title), words(body), *(words(name) for name in tag_names)]
        joined = f" {_FIELD_BREAK} ".join(" ".join(field) for field in fields)
        return cls(frozenset(word for field in fields for word in field), f" {joined} ", frozenset(tag_ids))

    def has_words(self, phrase: Sequence[str]) -> bool:
        """Whether the words occur here, consecutively and in this order."""
        if not phrase:
            return False
        if len(phrase) == 1:
            return phrase[0] in self.tokens
        if any(word not in self.tokens for word in phrase):
            return False  # the cheap set test first; the substring test only for likely phrases
        return f" {' '.join(phrase)} " in self.joined
