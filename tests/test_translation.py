"""Translation: the {src}-{tgt} template, the English pivot, and translated summaries in the DB."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, Summary, SummaryKind, SummaryMethod
from bot.services.summaries import SummaryService, summarizer_config
from summarizer import Backend, Engine, SummarizerConfig, TranslationUnavailable

from conftest import make_settings
from tinymodels import TinyModels, article


def tiny_settings(database_url: str, tmp_path: Path, tiny_models: TinyModels, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "summary_model": str(tiny_models.summary),
        "translation_model": tiny_models.translation_template,
        "summary_num_beams": 1,
        "translation_num_beams": 1,
        "summary_max_new_tokens": 10,
        "model_precision": "fp32",
        "model_threads": 1,  # tiny models: more threads only add overhead on a busy box
    }
    values.update(overrides)
    return make_settings(database_url, tmp_path, **values)


def test_template_direct_pair(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = Engine(summarizer_config(tiny_settings("sqlite://", tmp_path, tiny_models)))
    outputs = engine.translate_batch(["Rusia minta garansi.", "Harga naik di pasar Jakarta."], "id", "en")
    assert [output.model for output in outputs] == [str(tiny_models.root / "marian-id-en")] * 2
    assert all(output.text and output.pivot is None for output in outputs)
    assert engine.translation_key("id", "en") == str(tiny_models.root / "marian-id-en")
    # Batched equals one by one.
    assert [output.text for output in outputs] == [
        engine.translate(text, "id", "en").text for text in ("Rusia minta garansi.", "Harga naik di pasar Jakarta.")
    ]


def test_pivot_through_english_when_no_direct_pair(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = Engine(summarizer_config(tiny_settings("sqlite://", tmp_path, tiny_models)))
    text = "Presiden Putin menyatakan keamanan Eropa penting."
    pivoted = engine.translate(text, "id", "de")
    root = tiny_models.root
    assert pivoted.model == f"{root / 'marian-id-en'} + {root / 'marian-en-de'}"
    assert pivoted.pivot == "en"
    english = engine.translate(text, "id", "en").text
    assert pivoted.text == engine.translate(english, "en", "de").text
    # The direct id-de folder failed once and is not tried again.
    assert engine.models.failure(str(root / "marian-id-de")) is not None
    assert engine.translation_key("id", "de") == pivoted.model


def test_unavailable_and_disabled(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = Engine(summarizer_config(tiny_settings("sqlite://", tmp_path, tiny_models)))
    with pytest.raises(TranslationUnavailable):
        engine.translate("Guten Tag allerseits.", "de", "id")  # no de-id, no de-en
    assert engine.translation_key("de", "id") is None
    disabled = Engine(SummarizerConfig(translation_model="none"))
    with pytest.raises(TranslationUnavailable, match="disabled"):
        disabled.translate("Halo.", "id", "en")
    assert disabled.translation_key("id", "en") is None


def add_article(db: Database, lang: str, seed: int = 1) -> int:
    with db.session() as session:
        row = Article(title="Rusia minta garansi mengikat", body=article(seed), lang=lang, fingerprint=f"fp{seed}")
        session.add(row)
        session.flush()
        return row.id


def test_service_translates_once_and_stores_both_rows(
    database: Database, tmp_path: Path, tiny_models: TinyModels
) -> None:
    service = SummaryService(database, tiny_settings(database.url, tmp_path, tiny_models))
    article_id = add_article(database, "id")
    barrier = threading.Barrier(5)
    results = []

    def ask() -> None:
        barrier.wait()
        results.append(service.summary(article_id, "en"))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({result for result in results}) == 1
    translated = results[0]
    summary_model = str(tiny_models.summary)
    translation_model = str(tiny_models.root / "marian-id-en")
    assert translated.lang == "en" and translated.translated_from == "id"
    assert translated.method is SummaryMethod.SEQ2SEQ and translated.model == summary_model
    assert translated.translation_model == translation_model
    assert translated.title and translated.text
    assert service.computations == 2  # one summary, one translation
    with database.session() as session:
        rows = [(row.lang, row.kind, row.model) for row in session.scalars(select(Summary).order_by(Summary.id))]
    assert rows == [
        ("id", SummaryKind.SUMMARY, summary_model),
        ("en", SummaryKind.TRANSLATION, f"{translation_model}|{summary_model}"),
    ]
    original = service.summary(article_id, "id")
    assert original.lang == "id" and original.translated_from is None
    assert original.title == "Rusia minta garansi mengikat"
    # No fr model and no pivot: the original summary, in its own language.
    assert service.summary(article_id, "fr") == original
    assert service.computations == 2
    batch = service.summarize_articles([article_id, add_article(database, "id", seed=2)], "en")
    assert batch[0] == translated and batch[1].translated_from == "id"
    assert service.computations == 4


def test_many_to_many_model_gets_language_codes(tmp_path: Path) -> None:
    from tinymodels import build_tiny_m2m100

    folder = build_tiny_m2m100(tmp_path / "m2m")
    engine = Engine(SummarizerConfig(translation_model=str(folder), translation_num_beams=1, threads=1))
    assert engine.translation_key("id", "en") == str(folder)  # one model, no template, no pivot
    to_english = engine.translate("Rusia minta garansi mengikat.", "id", "en")
    to_indonesian = engine.translate("The bank raised rates.", "en", "id")
    # The first generated token is forced to the target language (the tiny tokenizer prints it).
    assert to_english.text.startswith("__en__") and to_english.model == str(folder)
    assert to_indonesian.text.startswith("__id__")
    with pytest.raises(TranslationUnavailable):
        engine.translate("Hello.", "en", "xx")  # a language the model has no token for


@pytest.mark.parametrize("backend", [Backend.CTRANSLATE2, Backend.TRANSFORMERS])
def test_nllb_model_gets_flores_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: Backend) -> None:
    from tinymodels import build_tiny_nllb

    folder = str(build_tiny_nllb(tmp_path / "nllb"))
    engine = Engine(SummarizerConfig(translation_model=folder, translation_num_beams=2, threads=1,
                                     backend=backend, cache_dir=tmp_path / "cache"))
    loaded = engine.models.get(folder)  # what translate() loads: a single model keeps its vocabulary
    assert loaded.backend is backend
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    generate = loaded.runner.generate

    def recording(*args: Any, **kwargs: Any) -> torch.Tensor:
        output = generate(*args, **kwargs)
        calls.append((kwargs["input_ids"], output))
        return output

    monkeypatch.setattr(loaded.runner, "generate", recording)
    code = loaded.tokenizer.convert_tokens_to_ids
    result = engine.translate("Rusia minta garansi mengikat.", "id", "en")
    assert result.model == folder and result.text  # FLORES codes are special tokens: not in the text
    inputs, output = calls[-1]
    assert inputs[0, 0] == code("ind_Latn") and output[0, 1] == code("eng_Latn")
    engine.translate("The bank raised rates.", "en", "id")
    inputs, output = calls[-1]
    assert inputs[0, 0] == code("eng_Latn") and output[0, 1] == code("ind_Latn")
    with pytest.raises(TranslationUnavailable):
        engine.translate("Hello.", "en", "xx")  # no FLORES code known for it
