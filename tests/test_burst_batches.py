"""A burst's summaries in batches: the fan-out hands a round's articles over at once, the summary
service summarizes and translates them in batches of MODEL_BATCH_SIZE, and readers asking for those
articles meanwhile wait for the batch; on SQLite and PostgreSQL, with tiny real models."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import Settings, summarizer_config
from bot.db import Database
from bot.db.models import Summary, SummaryKind
from bot.services.fanout import FanoutService
from bot.services.summaries import SummaryService
from summarizer import Engine, SummarizerConfig, SummaryOutput, TranslationOutput
from summarizer.models import LoadedModel

from test_fanout import World
from test_translation import tiny_settings
from tinymodels import TinyModels, article


class CountingEngine(Engine):
    """The real engine, recording the size of each batch call the service makes.

    `gate` holds summary batches at the door (after recording them); `failures` summary batches
    raise before reaching the model.
    """

    def __init__(self, config: SummarizerConfig, *, failures: int = 0) -> None:
        super().__init__(config)
        self.summary_batches: list[int] = []
        self.translation_batches: list[int] = []
        self.entered = threading.Semaphore(0)
        self.gate = threading.Event()
        self.gate.set()
        self._failures = failures
        self._lock = threading.Lock()

    def summarize_batch(self, texts: Sequence[str], langs: Sequence[str | None]) -> list[SummaryOutput]:
        with self._lock:
            self.summary_batches.append(len(texts))
            fail, self._failures = self._failures > 0, max(0, self._failures - 1)
        self.entered.release()
        assert self.gate.wait(60)
        if fail:
            raise RuntimeError("the model crashed")
        return super().summarize_batch(texts, langs)

    def translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[TranslationOutput]:
        with self._lock:
            self.translation_batches.append(len(texts))
        return super().translate_batch(texts, src, tgt)


def stored_keys(db: Database) -> list[tuple[int, str, SummaryKind]]:
    with db.session() as session:
        return [(row.article_id, row.lang, row.kind) for row in session.scalars(select(Summary).order_by(Summary.id))]


def test_a_burst_is_summarized_in_batches_while_readers_wait_for_them(
    database: Database, tmp_path: Path, tiny_models: TinyModels
) -> None:
    settings = tiny_settings(database.url, tmp_path, tiny_models, model_batch_size=4)
    world = World(database, settings)
    world.chat(1, "Rusia", lang="id")
    world.chat(2, "Rusia", lang="en")
    ingested = [world.ingest(["Rusia"], body=article(seed), lang="id", url=f"https://e.example/{seed}")
                for seed in range(10)]
    assert all(item.created and item.story_id == item.article_id for item in ingested)
    ids = [item.article_id for item in ingested]
    engine = CountingEngine(summarizer_config(settings))
    service = SummaryService(database, settings, engine)
    engine.gate.clear()
    result = FanoutService(database, service).run_once()
    assert [(item.article_id, item.langs) for item in result.articles] == [(a, ("en", "id")) for a in ids]
    # Both prefetch threads are inside the engine with their batch of 4: all their keys are claimed,
    # the translations' too.
    assert engine.entered.acquire(timeout=30) and engine.entered.acquire(timeout=30)
    # The push loop asks for those 8 articles in both languages meanwhile, several threads at once.
    asked = [(article_id, lang) for article_id in ids[:8] for lang in ("id", "en")]
    with ThreadPoolExecutor(max_workers=6) as readers:
        futures = [readers.submit(service.summary, article_id, lang) for article_id, lang in asked]
        time.sleep(0.3)  # most of them are waiting for a batch by now (the checks hold either way)
        engine.gate.set()
        got = [future.result(timeout=120) for future in futures]
    service.close()  # the third batch (2 articles) too
    # Three summary batches (4, 4, 2 articles) and, per batch, one id->en batch of titles and
    # summaries: nobody summarized or translated an article alone.
    assert sorted(engine.summary_batches) == [2, 4, 4]
    assert sorted(engine.translation_batches) == [4, 8, 8]
    assert all((summary.lang, summary.translated_from) == (lang, "id" if lang == "en" else None)
               for summary, (_article_id, lang) in zip(got, asked, strict=True))
    # Each (article, language) computed and stored exactly once.
    assert service.computations == 20
    expected = [(a, "id", SummaryKind.SUMMARY) for a in ids] + [(a, "en", SummaryKind.TRANSLATION) for a in ids]
    assert sorted(stored_keys(database)) == sorted(expected)
    assert [service.summary(article_id, "en") for article_id in ids[:8]] == got[1::2]
    assert service.computations == 20 and len(engine.summary_batches) == 3


def test_a_translation_claimed_under_a_model_that_then_failed_is_made_under_the_fallback(
    database: Database, tmp_path: Path, tiny_models: TinyModels
) -> None:
    class FailingModel(CountingEngine):
        def _generate_summaries(self, loaded: LoadedModel, texts: Sequence[str]) -> list[str]:
            raise RuntimeError("out of memory")

    settings = tiny_settings(database.url, tmp_path, tiny_models)
    world = World(database, settings)
    ids = [world.ingest(["Rusia"], body=article(seed), lang="id", url=f"https://e.example/{seed}").article_id
           for seed in range(2)]
    service = SummaryService(database, settings, FailingModel(summarizer_config(settings)))
    results = service.summarize_articles(ids, "en")
    assert [(result.translated_from, result.model) for result in results] == [("id", None), ("id", None)]
    with database.session() as session:
        models = [row.model for row in session.scalars(select(Summary).where(Summary.kind == SummaryKind.TRANSLATION))]
    assert len(models) == 2 and all(model.endswith("|extractive:lead") for model in models)
    assert service.computations == 4
    # No claim was left behind: asking again does not hang. (The summary model is tried again, a
    # batch's failure is not remembered; its fallback summary then finds the stored translation.)
    assert [service.summary(article_id, "en") for article_id in ids] == results
    assert service.computations == 6


def test_a_failing_batch_stops_no_fan_out_and_the_summaries_come_on_demand(
    database: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(database, settings)  # SUMMARY_MODEL=none: the extractive fallback, quick
    world.chat(1, "Rusia", lang="en")
    ids = [world.ingest(["Rusia"], body=article(seed), lang="en", url=f"https://e.example/{seed}").article_id
           for seed in range(3)]
    engine = CountingEngine(summarizer_config(settings), failures=1)
    service = SummaryService(database, settings, engine)
    with caplog.at_level(logging.WARNING, logger="bot.services.summaries"):
        result = FanoutService(database, service).run_once()
        service.close()
    assert [(item.article_id, item.deliveries) for item in result.articles] == [(a, 1) for a in ids]
    assert engine.summary_batches == [3]
    assert any(record.getMessage().startswith("prefetching a summary failed") for record in caplog.records)
    assert stored_keys(database) == []
    # The failed batch released its claims: each reader's summary is computed when asked.
    assert [service.summary(article_id, "en").article_id for article_id in ids] == ids
    assert engine.summary_batches == [3, 1, 1, 1] and service.computations == 3

    class BrokenQueue:
        def prefetch(self, requests: Sequence[tuple[int, Sequence[str]]]) -> None:
            raise ConnectionError("broker away")

    more = world.ingest(["Rusia"], body=article(3), lang="en", url="https://e.example/3").article_id
    with caplog.at_level(logging.WARNING, logger="bot.services.fanout"):
        later = FanoutService(database, BrokenQueue()).run_once()  # type: ignore[arg-type]  # a failing test double
    assert [(item.article_id, item.deliveries) for item in later.articles] == [(more, 1)]
    assert any(record.getMessage().startswith("summary prefetch failed") for record in caplog.records)
