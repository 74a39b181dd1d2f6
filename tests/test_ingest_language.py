"""Language detection: ISO 639-1 codes, None for too little text."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from summarizer.language import LanguageIdentifier, default_identifier, detect_language

SAMPLE = Path(__file__).parent / "fixtures" / "rusia-garansi-mengikat.txt"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (SAMPLE.read_text("utf-8"), "id"),
        ("The central bank kept interest rates unchanged on Thursday, citing slowing inflation.", "en"),
        ("Министр иностранных дел заявил, что переговоры продолжатся на следующей неделе.", "ru"),
        ("政府は来週、新しい経済対策を発表する予定です。", "ja"),
    ],
)
def test_detects_language(text: str, code: str) -> None:
    assert detect_language(text) == code


@pytest.mark.parametrize("text", ["", "   ", "OK", "12345 67890 !!!", "#tag"])
def test_too_short_or_no_letters_is_none(text: str) -> None:
    assert detect_language(text) is None


def test_identifier_is_built_once_and_shared_between_threads() -> None:
    assert default_identifier() is default_identifier()
    identifier = LanguageIdentifier(("en", "id"))
    results: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(identifier.detect("Pemerintah mengumumkan kebijakan baru hari ini.")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["id"] * 4
