"""Reading summaries that workers stored, in the bot process, without loading any model.

The worker decides which model key a row is stored under (a model that fails to load on the
worker means an extractive row, a missing direct translation pair means a pivot), so the bot
does not predict keys: it reads whatever summary row the article has, and the translation made
from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, Summary, SummaryKind
from bot.services.contracts import ArticleSummary
from bot.services.summaries import TRANSLATION_KEY_SEPARATOR, StoredTranslation, choose_summary, present_summary
from summarizer import is_disabled

log = logging.getLogger(__name__)

MIN_TRANSLATION_GRACE_S = 30.0


class ArticleGone(LookupError):
    """The article was deleted: nothing to summarize or push."""


class StoredSummaries:
    """Callable (article_id, lang) -> the stored ArticleSummary, or None while it is being computed.

    When the original summary is stored but its translation does not appear within the grace
    period (the workers could not load a translation model), the original is returned, as the
    in-process service does when translation is unavailable.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        translation_grace: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._translation_off = is_disabled(settings.translation_model)
        self._grace = (
            translation_grace
            if translation_grace is not None
            else max(MIN_TRANSLATION_GRACE_S, 3 * settings.summary_wait)
        )
        self._clock = clock
        self._missing_since: dict[tuple[int, str], float] = {}
        self._lock = threading.Lock()

    def __call__(self, article_id: int, lang: str) -> ArticleSummary | None:
        with self._db.session() as session:
            article = session.execute(select(Article.id, Article.title).where(Article.id == article_id)).first()
            if article is None:
                raise ArticleGone(f"no article with id {article_id}")
            rows = session.scalars(select(Summary).where(Summary.article_id == article_id)).all()
        # No preferred key: this process loads no model, so it cannot know what the workers load.
        original = choose_summary((row for row in rows if row.kind is SummaryKind.SUMMARY), None)
        if original is None:
            return None
        if lang == original.lang or self._translation_off:
            return _present(article.title, original, None)
        suffix = f"{TRANSLATION_KEY_SEPARATOR}{original.model}"
        for row in rows:
            if row.kind is SummaryKind.TRANSLATION and row.lang == lang and row.model.endswith(suffix):
                self._forget(article_id, lang)
                return _present(article.title, original, row)
        return self._original_after_grace(article.title, original, lang)

    def _original_after_grace(self, title: str, original: Summary, lang: str) -> ArticleSummary | None:
        key = (original.article_id, lang)
        now = self._clock()
        with self._lock:
            first = self._missing_since.setdefault(key, now)
        if now - first < self._grace:
            return None
        log.warning(
            "no %s translation of article %d after %.0fs: sending the %s summary (check the workers' translation model)",
            lang, original.article_id, now - first, original.lang,
        )
        self._forget(*key)
        return _present(title, original, None)

    def _forget(self, article_id: int, lang: str) -> None:
        with self._lock:
            self._missing_since.pop((article_id, lang), None)


def _present(title: str, original: Summary, translated: Summary | None) -> ArticleSummary:
    """The same ArticleSummary the in-process service builds from these rows."""
    return present_summary(
        article_id=original.article_id,
        lang=original.lang,
        title=original.title or title,
        text=original.text,
        method=original.method,
        summary_key=original.model,
        translation=None
        if translated is None
        else StoredTranslation(translated.lang, translated.title, translated.text, translated.model),
    )


def stored_summary_lookup(db: Database, settings: Settings) -> StoredSummaries:
    """The lookup the bot's QueuedSummaryProvider polls."""
    return StoredSummaries(db, settings)
