"""Summaries and translations of stored articles, computed once and cached in the database."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.config import Settings, summarizer_config
from bot.db import Database
from bot.db.models import Article, Summary, SummaryKind, SummaryMethod
from bot.services.contracts import ArticleSummary
from summarizer import Engine, SummaryOutput, TranslationUnavailable

log = logging.getLogger(__name__)

UNKNOWN_LANG = "und"  # ISO 639-2 "undetermined": stored when an article's language is unknown
PREFETCH_WORKERS = 2
# A translation row's model column names both models: "<translation model>|<summary model key>".
TRANSLATION_KEY_SEPARATOR = "|"


class ArticleNotFound(LookupError):
    """No stored article has this id."""


class StoredSummaryRow(Protocol):
    """What choose_summary needs of a stored summary row (a Summary, or the service's _Row)."""

    @property
    def model(self) -> str: ...

    @property
    def method(self) -> SummaryMethod: ...

    @property
    def id(self) -> int: ...


RowT = TypeVar("RowT", bound=StoredSummaryRow)


def choose_summary(rows: Iterable[RowT], wanted: str | None) -> RowT | None:
    """The one policy for which of an article's stored summaries readers see.

    `wanted` is the model key this process would store now: SummaryService passes its engine's
    key; the bot process passes None, since it loads no model and cannot know what workers load.
    - wanted is a model: its row; None when missing (the caller computes it);
    - wanted is the extractive fallback, or unknown: a model's summary beats the fallback's,
      and the newest wins among equals; None when nothing is stored.
    """
    candidates = list(rows)
    if wanted is not None and summary_model_of(wanted) is not None:
        return next((row for row in candidates if row.model == wanted), None)
    ranked = sorted(candidates, key=lambda row: (row.method is not SummaryMethod.SEQ2SEQ, -row.id))
    return ranked[0] if ranked else None


@dataclass(frozen=True)
class _Key:
    article_id: int
    lang: str
    kind: SummaryKind
    model: str


@dataclass(frozen=True)
class _Row:
    """A stored summary or translation, detached from the session."""

    key: _Key
    method: SummaryMethod
    title: str | None
    text: str
    id: int = 0  # the database id once stored (orders rows for choose_summary)

    @property
    def model(self) -> str:
        return self.key.model


@dataclass(frozen=True)
class _ArticleText:
    id: int
    title: str
    body: str
    lang: str


@dataclass(frozen=True)
class _Claims:
    """One batch's keys once claimed: rows already stored, keys this thread computes, keys others do."""

    items: list[tuple[_Key, Any]]
    results: list[_Row | None]
    owned: list[tuple[int, _Key, Future[_Row | None]]]
    waiting: list[tuple[int, Future[_Row | None]]]


def summary_model_of(key: str) -> str | None:
    """The summary model id for ArticleSummary.model (None for the extractive fallback)."""
    return None if key.startswith("extractive:") else key


def translation_model_of(key: str) -> str:
    """The translation model id of a translation row's model key."""
    return key.split(TRANSLATION_KEY_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class StoredTranslation:
    """A stored translation of an article's title and summary."""

    lang: str
    title: str | None
    text: str
    model_key: str


def present_summary(
    *,
    article_id: int,
    lang: str,
    title: str,
    text: str,
    method: SummaryMethod,
    summary_key: str,
    translation: StoredTranslation | None,
) -> ArticleSummary:
    """What a reader sees of stored rows: the translation when there is one, else the original."""
    if translation is None:
        return ArticleSummary(
            article_id=article_id,
            lang=lang,
            title=title,
            text=text,
            method=method,
            model=summary_model_of(summary_key),
            translated_from=None,
            translation_model=None,
        )
    return ArticleSummary(
        article_id=article_id,
        lang=translation.lang,
        title=translation.title or title,
        text=translation.text,
        method=method,
        model=summary_model_of(summary_key),
        translated_from=lang,
        translation_model=translation_model_of(translation.model_key),
    )


class SummaryService:
    """Implements SummaryProvider: each (article, lang, kind, model) is computed once and stored."""

    def __init__(self, db: Database, settings: Settings, engine: Engine | None = None) -> None:
        self._db = db
        self._settings = settings
        self.engine = engine or Engine(summarizer_config(settings))  # lazy: loads no model here
        self._guard = threading.Lock()
        self._inflight: dict[_Key, Future[_Row | None]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.computations = 0  # summaries and translations computed here (not read from the cache)

    # --- public API ------------------------------------------------------------------------

    def summary(self, article_id: int, lang: str) -> ArticleSummary:
        """The article's summary in `lang` (translated when needed and possible); blocking."""
        article = self._article(article_id)
        original = self._once(self._summary_key(article), lambda: self._compute_summaries([article])[0])
        assert original is not None
        key = self._target_key(article, original.key.model, lang)
        if key is None:
            return self._present(article, original, None)
        translated = self._once(key, lambda: self._compute_translations([(article, original)], article.lang, lang)[0])
        return self._present(article, original, translated)

    def summarize_articles(self, article_ids: Sequence[int], lang: str | None = None) -> list[ArticleSummary]:
        """Summaries of many articles using the engine's batch API; translated to `lang` when given."""
        articles = [self._article(article_id) for article_id in article_ids]
        originals, translations = self._summarize(articles, [[lang] if lang else [] for _ in articles])
        results: list[ArticleSummary] = []
        for article, original, translated in zip(articles, originals, translations, strict=True):
            assert original is not None
            results.append(self._present(article, original, translated.get(lang) if lang else None))
        return results

    def prefetch(self, requests: Sequence[tuple[int, Sequence[str]]]) -> None:
        """Start computing these (article, languages) in a small thread pool; returns at once.

        Articles go in batches of the engine's batch size (MODEL_BATCH_SIZE), in the order given
        (the fan-out's: arrival), so a burst is summarized batch by batch rather than one at a time.
        The first reader of a batch waits for the whole batch: batches are never larger than that.
        """
        wanted: dict[int, dict[str, None]] = {}
        for article_id, langs in requests:
            wanted.setdefault(article_id, {}).update(dict.fromkeys(langs))
        ordered = [(article_id, tuple(langs)) for article_id, langs in wanted.items()]
        size = self.engine.config.batch_size
        pool = self._executor()
        for start in range(0, len(ordered), size):
            future = pool.submit(self._prefetch_batch, ordered[start : start + size])
            future.add_done_callback(self._log_prefetch_error)

    def status_line(self) -> str:
        """One line on which models are loaded or why the extractive fallback is used."""
        return self.engine.status_line()

    def close(self) -> None:
        """Stop the prefetch pool, waiting for running jobs."""
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # --- articles and keys -------------------------------------------------------------------

    def _article(self, article_id: int) -> _ArticleText:
        with self._db.read_session() as session:
            row = session.execute(
                select(Article.id, Article.title, Article.body, Article.lang).where(Article.id == article_id)
            ).first()
        if row is None:
            raise ArticleNotFound(f"no article with id {article_id}")
        lang = row.lang or self._detect(row.body) or UNKNOWN_LANG
        return _ArticleText(row.id, row.title, row.body, lang)

    @staticmethod
    def _detect(text: str) -> str | None:
        from summarizer.language import detect_language

        return detect_language(text)

    def _summary_key(self, article: _ArticleText) -> _Key:
        lang = None if article.lang == UNKNOWN_LANG else article.lang
        return _Key(article.id, article.lang, SummaryKind.SUMMARY, self.engine.summary_key(lang))

    def _target_key(self, article: _ArticleText, summary_model: str, lang: str) -> _Key | None:
        """Where the translation into `lang` of a summary by `summary_model` is stored; None when none can be made."""
        if article.lang == UNKNOWN_LANG or lang == article.lang:
            return None
        model = self.engine.translation_key(article.lang, lang)
        if model is None:
            return None
        return _Key(article.id, lang, SummaryKind.TRANSLATION, f"{model}{TRANSLATION_KEY_SEPARATOR}{summary_model}")

    def _actual_target(self, article: _ArticleText, original: _Row | None, lang: str) -> _Key | None:
        return None if original is None else self._target_key(article, original.key.model, lang)

    # --- batches ------------------------------------------------------------------------

    def _prefetch_batch(self, batch: Sequence[tuple[int, Sequence[str]]]) -> None:
        articles: list[_ArticleText] = []
        wanted: list[Sequence[str]] = []
        for article_id, langs in batch:
            try:
                articles.append(self._article(article_id))
            except ArticleNotFound:
                continue  # deleted since the fan-out: nothing to prepare
            wanted.append(langs)
        self._summarize(articles, wanted)

    def _summarize(
        self, articles: Sequence[_ArticleText], wanted: Sequence[Sequence[str]]
    ) -> tuple[list[_Row | None], list[dict[str, _Row | None]]]:
        """The articles' summaries in one batch, then their translations into the languages each
        wants, one batch per language pair; stored rows are read, not computed.

        Every key, translations included, is claimed before anything is computed, so a reader's
        `summary()` of one of these articles waits for the batch instead of computing its article
        alone (a translation claimed only after the summaries would race such a reader). A
        translation is claimed under the summary model expected; when the summary comes from
        another (its model failed), that claim ends empty and the translation is made under its
        real key afterwards.
        """
        summaries = self._claim_all([(self._summary_key(article), article) for article in articles])
        expected = [
            row.key.model if row is not None else key.model
            for row, (key, _article) in zip(summaries.results, summaries.items, strict=True)
        ]
        groups: dict[tuple[str, str], _Claims] = {}
        translations: list[dict[str, _Row | None]] = [{} for _ in articles]
        others: dict[tuple[str, str], list[tuple[int, _Key]]] = {}
        try:
            targets: dict[tuple[str, str], list[tuple[_Key, tuple[int, _Key]]]] = {}
            for index, article in enumerate(articles):
                for lang in dict.fromkeys(wanted[index]):
                    key = self._target_key(article, expected[index], lang)
                    if key is not None:
                        targets.setdefault((article.lang, lang), []).append((key, (index, key)))
            for pair, items in targets.items():
                groups[pair] = self._claim_all(items)
            originals = self._finish(summaries, self._compute_summaries)
            for (src, tgt), claims in groups.items():
                rows = self._finish(
                    claims, functools.partial(self._translate_expected, articles, originals, src=src, tgt=tgt)
                )
                for (_key, (index, claimed)), row in zip(claims.items, rows, strict=True):
                    actual = self._actual_target(articles[index], originals[index], tgt)
                    if actual == claimed:
                        translations[index][tgt] = row
                    elif actual is not None:
                        others.setdefault((src, tgt), []).append((index, actual))
        except BaseException as error:
            # Whatever failed, no claim of this batch may stay unsettled (a no-op for settled ones).
            for claims in (summaries, *groups.values()):
                self._abandon(claims, error)
            raise
        for (src, tgt), entries in others.items():
            rows = self._batch(
                [(key, (articles[index], originals[index])) for index, key in entries],
                functools.partial(self._compute_translations, src=src, tgt=tgt),
            )
            for (index, _key), row in zip(entries, rows, strict=True):
                translations[index][tgt] = row
        return originals, translations

    def _translate_expected(
        self,
        articles: Sequence[_ArticleText],
        originals: Sequence[_Row | None],
        entries: Sequence[tuple[int, _Key]],
        src: str,
        tgt: str,
    ) -> list[_Row | None]:
        """Translations for claims made under the expected summary model; None where it was another."""
        fits = [index for index, claimed in entries if self._actual_target(articles[index], originals[index], tgt) == claimed]
        rows = self._compute_translations([(articles[index], originals[index]) for index in fits], src, tgt) if fits else []
        made = dict(zip(fits, rows, strict=True))
        return [made.get(index) for index, _claimed in entries]

    # --- computing once -------------------------------------------------------------------

    def _read(self, key: _Key) -> _Row | None:
        """The stored row for a key; for a summary, the one choose_summary picks (maybe another model's)."""
        if key.kind is not SummaryKind.SUMMARY:
            return self._read_exact(key)
        with self._db.read_session() as session:
            rows = session.scalars(
                select(Summary).where(
                    Summary.article_id == key.article_id,
                    Summary.lang == key.lang,
                    Summary.kind == SummaryKind.SUMMARY,
                )
            ).all()
            chosen = choose_summary(rows, key.model)
            if chosen is None:
                return None
            return _Row(
                _Key(key.article_id, key.lang, key.kind, chosen.model), chosen.method, chosen.title, chosen.text, chosen.id
            )

    def _read_exact(self, key: _Key) -> _Row | None:
        with self._db.read_session() as session:
            row = session.execute(
                select(Summary).where(
                    Summary.article_id == key.article_id,
                    Summary.lang == key.lang,
                    Summary.kind == key.kind,
                    Summary.model == key.model,
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            return _Row(key, row.method, row.title, row.text, row.id)

    def _store(self, row: _Row) -> _Row:
        """Insert a computed row; when another process stored the same key first, return theirs."""
        key = row.key
        try:
            with self._db.session() as session:
                session.add(
                    Summary(
                        article_id=key.article_id,
                        lang=key.lang,
                        kind=key.kind,
                        model=key.model,
                        method=row.method,
                        title=row.title,
                        text=row.text,
                    )
                )
        except IntegrityError:
            existing = self._read_exact(key)
            if existing is None:
                raise  # not a duplicate key (e.g. the article was deleted)
            return existing
        return row

    def _claim(self, key: _Key) -> tuple[Future[_Row | None], bool]:
        """The in-flight future for a key, and whether this caller owns (must compute) it."""
        with self._guard:
            future = self._inflight.get(key)
            if future is not None:
                return future, False
            future = Future()
            self._inflight[key] = future
            return future, True

    def _release(self, key: _Key, future: Future[_Row | None]) -> None:
        with self._guard:
            if self._inflight.get(key) is future:  # not a newer claim on the key: releasing twice is harmless
                del self._inflight[key]

    def _once(self, key: _Key, compute: Callable[[], _Row | None]) -> _Row | None:
        """Read the row, or compute and store it; concurrent callers wait for one computation."""
        return self._batch([(key, None)], lambda owned: [compute()])[0]

    def _batch(
        self, items: Sequence[tuple[_Key, Any]], compute: Callable[[list[Any]], list[_Row | None]]
    ) -> list[_Row | None]:
        """Rows for keys: cached, computed by another thread, or computed here in one batch."""
        return self._finish(self._claim_all(items), compute)

    def _claim_all(self, items: Sequence[tuple[_Key, Any]]) -> _Claims:
        """Read each key's stored row, else claim it (or find another thread's claim); computes nothing.

        The caller must pass the claims to _finish, or to _abandon if it fails before that.
        """
        claims = _Claims(list(items), [None] * len(items), [], [])
        try:
            for index, (key, _item) in enumerate(items):
                cached = self._read(key)
                if cached is not None:
                    claims.results[index] = cached
                    continue
                future, is_owner = self._claim(key)
                if is_owner:
                    claims.owned.append((index, key, future))
                else:
                    claims.waiting.append((index, future))
        except BaseException as error:
            self._abandon(claims, error)  # a read failed: never leave a claim that nobody computes
            raise
        return claims

    def _finish(self, claims: _Claims, compute: Callable[[list[Any]], list[_Row | None]]) -> list[_Row | None]:
        """Compute the owned keys in one batch and store them, then wait for other threads' keys.

        Owned keys are always settled before waiting on anything, so two batches waiting on each
        other's keys cannot deadlock (nor one batch holding the same key twice).
        """
        results = claims.results
        owned = claims.owned
        if owned:
            try:
                # Re-read under ownership: another thread may have stored it since our first read.
                todo: list[tuple[int, _Key, Future[_Row | None]]] = []
                for index, key, future in owned:
                    cached = self._read(key)
                    if cached is not None:
                        results[index] = cached
                        future.set_result(cached)
                    else:
                        todo.append((index, key, future))
                if todo:
                    computed = compute([claims.items[index][1] for index, _key, _future in todo])
                    with self._guard:
                        self.computations += sum(1 for row in computed if row is not None)
                    for (index, _key, future), row in zip(todo, computed, strict=True):
                        stored = self._store(row) if row is not None else None
                        results[index] = stored
                        future.set_result(stored)
            except BaseException as error:
                self._abandon(claims, error)
                raise
            finally:
                for _index, key, future in owned:
                    self._release(key, future)
        for index, future in claims.waiting:
            results[index] = future.result()
        return results

    def _abandon(self, claims: _Claims, error: BaseException) -> None:
        """Fail the owned keys not settled yet and release them, so their waiters stop waiting."""
        for _index, key, future in claims.owned:
            if not future.done():
                future.set_exception(error)
            self._release(key, future)

    def _compute_summaries(self, articles: Sequence[_ArticleText | None]) -> list[_Row | None]:
        present = [article for article in articles if article is not None]
        outputs = self.engine.summarize_batch(
            [article.body for article in present],
            [None if article.lang == UNKNOWN_LANG else article.lang for article in present],
        )
        rows: list[_Row | None] = []
        for article, output in zip(present, outputs, strict=True):
            rows.append(self._summary_row(article, output))
        return rows

    @staticmethod
    def _summary_row(article: _ArticleText, output: SummaryOutput) -> _Row:
        # Stored under the key of what actually produced it (a model that failed to load -> fallback).
        key = _Key(article.id, article.lang, SummaryKind.SUMMARY, output.model_key)
        return _Row(key, SummaryMethod(output.method.value), article.title, output.text)

    def _compute_translations(
        self, items: Sequence[tuple[_ArticleText, _Row | None]], src: str, tgt: str
    ) -> list[_Row | None]:
        """Title and summary of each item translated in one batch; None each when unavailable."""
        texts: list[str] = []
        for article, original in items:
            assert original is not None
            texts.extend([article.title, original.text])
        try:
            outputs = self.engine.translate_batch(texts, src, tgt)
        except TranslationUnavailable as error:
            log.debug("translation %s->%s unavailable: %s", src, tgt, error)
            return [None] * len(items)
        rows: list[_Row | None] = []
        for position, (article, original) in enumerate(items):
            assert original is not None
            title, text = outputs[2 * position], outputs[2 * position + 1]
            model = f"{text.model}{TRANSLATION_KEY_SEPARATOR}{original.key.model}"
            key = _Key(article.id, tgt, SummaryKind.TRANSLATION, model)
            rows.append(_Row(key, original.method, title.text, text.text))
        return rows

    @staticmethod
    def _present(article: _ArticleText, original: _Row, translated: _Row | None) -> ArticleSummary:
        """What a reader sees: the translation when there is one, else the original summary."""
        return present_summary(
            article_id=article.id,
            lang=article.lang,
            title=article.title,
            text=original.text,
            method=original.method,
            summary_key=original.key.model,
            translation=None
            if translated is None
            else StoredTranslation(translated.key.lang, translated.title, translated.text, translated.key.model),
        )

    def _executor(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=PREFETCH_WORKERS, thread_name_prefix="summaries")
            return self._pool

    @staticmethod
    def _log_prefetch_error(future: Future[None]) -> None:
        error = future.exception()
        if error is not None:
            log.warning("prefetching a summary failed: %s", error)
