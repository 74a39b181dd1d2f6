"""Interfaces shared between the bot's parts, so each side can be built and tested alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.db.models import SummaryMethod


@dataclass(frozen=True)
class ArticleSummary:
    """What a reader sees of an article in one language."""

    article_id: int
    lang: str  # language of title and text below
    title: str
    text: str
    method: SummaryMethod  # how the summary (before any translation) was made
    model: str | None  # summary model id, None for extractive
    translated_from: str | None  # source language when machine-translated, else None
    translation_model: str | None


class SummaryProvider(Protocol):
    """Gives the summary of a stored article in a language, computing and caching it once."""

    def summary(self, article_id: int, lang: str) -> ArticleSummary:
        """Blocking: call from a worker thread, never on the event loop."""
        ...

    def prefetch(self, requests: Sequence[tuple[int, Sequence[str]]]) -> None:
        """Non-blocking hint: start computing the summaries of these (article id, languages) now
        (a thread pool or a queue), in batches of up to MODEL_BATCH_SIZE articles, in the order given."""
        ...

    def status_line(self) -> str:
        """One line on which models are loaded or why the extractive fallback is used."""
        ...
