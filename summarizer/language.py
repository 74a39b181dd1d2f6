"""Offline language detection of article text (lingua), returning ISO 639-1 codes."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lingua import LanguageDetector

# The languages a news bot for Indonesia and its neighbours meets most. Malay is left out on
# purpose: it is close enough to Indonesian that short Indonesian texts get labelled "ms".
SUPPORTED_LANGUAGES: tuple[str, ...] = (
    "id", "en", "ru", "uk", "ar", "fa", "tr", "zh", "ja", "ko", "hi", "th", "vi",
    "fr", "de", "es", "pt", "it", "nl", "pl", "he", "tl",
)  # fmt: skip

# Fewer letters than this says too little about the language.
MIN_LETTERS = 12
# Detection looks at the start of long texts only; more adds time, not accuracy.
MAX_CHARS = 3000
# A winner this close to the runner-up is a guess, reported as "undetectable".
MIN_RELATIVE_DISTANCE = 0.05


class LanguageIdentifier:
    """Holds one lingua detector, built on first use; safe to share between threads."""

    def __init__(self, languages: tuple[str, ...] = SUPPORTED_LANGUAGES) -> None:
        self._languages = languages
        self._detector: LanguageDetector | None = None
        self._lock = threading.Lock()

    def _get(self) -> LanguageDetector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

                    langs = [
                        Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))
                        for code in self._languages
                    ]
                    self._detector = (
                        LanguageDetectorBuilder.from_languages(*langs)
                        .with_minimum_relative_distance(MIN_RELATIVE_DISTANCE)
                        .build()
                    )
        return self._detector

    def detect(self, text: str) -> str | None:
        """ISO 639-1 code of the text's language, or None when too short or unclear."""
        sample = text[:MAX_CHARS]
        if sum(1 for char in sample if char.isalpha()) < MIN_LETTERS:
            return None
        language = self._get().detect_language_of(sample)
        if language is None:
            return None
        return language.iso_code_639_1.name.lower()


@functools.cache
def default_identifier() -> LanguageIdentifier:
    """The process's shared identifier (the lingua models load once)."""
    return LanguageIdentifier()


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of `text`'s language, or None for too-short or undetectable text."""
    return default_identifier().detect(text)
