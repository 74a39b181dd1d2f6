"""The engine with tiny local models, loaded through Settings like users' models."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from bot.services.summaries import summarizer_config
from summarizer import Engine, Method, SummarizerConfig
from summarizer.text import split_sentences

from conftest import make_settings
from tinymodels import TinyModels, article


def tiny_engine(tiny_models: TinyModels, tmp_path: Path, **overrides: object) -> Engine:
    """An engine built from Settings, as the bot builds it (greedy, short fixed outputs)."""
    values: dict[str, object] = {
        "summary_model": str(tiny_models.summary),
        "translation_model": tiny_models.translation_template,
        "summary_num_beams": 1,
        "translation_num_beams": 1,
        "summary_max_new_tokens": 10,
        "model_precision": "fp32",
        "model_batch_size": 3,
        "model_threads": 1,  # tiny models: more threads only add overhead on a busy box
    }
    values.update(overrides)
    return Engine(summarizer_config(make_settings("sqlite://", tmp_path, **values)))


def test_batched_output_equals_one_by_one(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = tiny_engine(tiny_models, tmp_path)
    texts = [article(seed, sentences=2 + seed) for seed in range(5)]  # different lengths -> padding
    batched = engine.summarize_batch(texts, ["id"] * 5)
    single = [engine.summarize(text, "id") for text in texts]
    assert [output.text for output in batched] == [output.text for output in single]
    assert all(output.text for output in batched)
    assert {output.method for output in batched} == {Method.SEQ2SEQ}
    assert {output.model for output in batched} == {str(tiny_models.summary)}
    assert engine.models.loads == 1
    assert engine.stats.generate_calls == 2 + 5  # two batches of at most 3, then five singles


def test_long_input_is_cut_at_a_sentence_boundary(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = tiny_engine(tiny_models, tmp_path, summary_max_input_tokens=40)
    tokenizer = engine.models.get(str(tiny_models.summary)).tokenizer
    text = article(7, sentences=30)
    prepared = engine.prepare_input(tokenizer, text)
    assert text.startswith(prepared)
    assert prepared.endswith((".", "!", "?"))
    assert len(tokenizer(prepared)["input_ids"]) <= 40
    assert len(split_sentences(prepared)) >= 1
    assert engine.summarize(text, "id").method is Method.SEQ2SEQ


def test_missing_model_falls_back_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(SummarizerConfig(summary_model=str(tmp_path / "no-such-model"), sentences=1))
    text = "Banjir melanda Jakarta pada hari Senin pagi. Ribuan warga mengungsi ke tempat aman."
    with caplog.at_level(logging.WARNING):
        first = engine.summarize(text, "id")
        second = engine.summarize_batch([text, text], ["id", "en"])
    assert first.method is Method.EXTRACTIVE and first.model is None
    assert first.text == "Banjir melanda Jakarta pada hari Senin pagi."
    assert first.fallback_reason and "does not exist" in first.fallback_reason
    assert [output.method for output in second] == [Method.EXTRACTIVE, Method.EXTRACTIVE]
    warnings = [record for record in caplog.records if "unavailable" in record.getMessage()]
    assert len(warnings) == 1
    assert "newsbot models fetch" in warnings[0].getMessage()
    assert engine.summary_key("id") == "extractive:lead"
    assert "unavailable, using extractive:lead" in engine.status_line()


def test_broken_model_folder_and_uncached_hub_id_fall_back(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    engine = Engine(
        SummarizerConfig(
            summary_model=str(broken),
            summary_model_overrides={"en": "example-org/not-in-cache"},
            cache_dir=tmp_path / "hf-cache",
            offline=True,
        )
    )
    text = "The central bank raised interest rates on Thursday. Markets fell after the news."
    by_folder, by_hub_id = engine.summarize_batch([text, text], ["id", "en"])
    assert by_folder.method is Method.EXTRACTIVE and "cannot load" in (by_folder.fallback_reason or "")
    assert by_hub_id.method is Method.EXTRACTIVE
    assert "HF_HUB_OFFLINE" in (by_hub_id.fallback_reason or "")
    assert engine.models.loads == 0


def test_per_language_override_and_none(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = tiny_engine(tiny_models, tmp_path, summary_model_overrides="en=none")
    text = article(3)
    indonesian, english = engine.summarize_batch([text, text], ["id", "en"])
    assert indonesian.method is Method.SEQ2SEQ
    assert english.method is Method.EXTRACTIVE and english.fallback_reason is None
    assert engine.summary_key("en") == "extractive:lead"
    assert engine.summary_key("id") == str(tiny_models.summary)


def test_concurrent_first_calls_load_the_model_once(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = tiny_engine(tiny_models, tmp_path)
    barrier = threading.Barrier(6)
    outputs = []

    def call(seed: int) -> None:
        barrier.wait()
        outputs.append(engine.summarize(article(seed), "id"))

    threads = [threading.Thread(target=call, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outputs) == 6 and {output.method for output in outputs} == {Method.SEQ2SEQ}
    assert engine.models.loads == 1
    assert "loaded (ctranslate2, fp32)" in engine.status_line()


def test_hub_id_loads_from_the_cache_offline(tiny_models: TinyModels, tmp_path: Path) -> None:
    # What an offline server sees after `newsbot models fetch`: the model in MODEL_CACHE_DIR.
    from tinymodels import install_in_hub_cache

    cache = tmp_path / "hf-cache"
    install_in_hub_cache(tiny_models.summary, cache, "example-org/tiny-summarizer")
    engine = tiny_engine(
        tiny_models,
        tmp_path,
        summary_model="example-org/tiny-summarizer",
        model_cache_dir=cache,
        hf_hub_offline=True,
    )
    output = engine.summarize(article(1), "id")
    assert output.method is Method.SEQ2SEQ and output.model == "example-org/tiny-summarizer"
    assert output.text == tiny_engine(tiny_models, tmp_path).summarize(article(1), "id").text


def test_unreachable_hub_fails_fast_to_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connections are refused
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    engine = Engine(SummarizerConfig(summary_model="example-org/not-cached", cache_dir=tmp_path / "hf"))
    output = engine.summarize("Banjir melanda Jakarta pada hari Senin pagi. Warga mengungsi ke masjid.", "id")
    assert output.method is Method.EXTRACTIVE
    assert "not in the local cache and the Hugging Face Hub is unreachable" in (output.fallback_reason or "")


def test_preload_loads_every_configured_model(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = tiny_engine(tiny_models, tmp_path, model_languages=["id", "en", "fr"])
    failed = engine.preload()
    root = tiny_models.root
    assert sorted(failed) == sorted(str(root / f"marian-{pair}") for pair in ("id-fr", "en-fr", "fr-id", "fr-en"))
    loaded = {str(tiny_models.summary), str(root / "marian-id-en"), str(root / "marian-en-id")}
    assert set(engine.models.loaded_ids()) == loaded


def test_generation_failure_falls_back_for_that_batch(tmp_path: Path) -> None:
    # A model whose context is shorter than the input it gets fails inside generate().
    from tinymodels import build_tiny_marian

    short = build_tiny_marian(tmp_path / "short-context", max_positions=8)
    engine = Engine(SummarizerConfig(summary_model=str(short), num_beams=1, max_new_tokens=4, threads=1))
    text = article(4, sentences=4)
    output = engine.summarize(text, "id")
    assert output.method is Method.EXTRACTIVE and "failed" in (output.fallback_reason or "")
    assert engine.models.failure(str(short)) is None  # loaded fine; a later, shorter text may work
    assert engine.stats.extractive_summaries == 1


def test_languages_outside_the_trimmed_vocabulary_use_the_fallback(tiny_models: TinyModels, tmp_path: Path) -> None:
    russian = "Президент России заявил в Москве о новых гарантиях безопасности. Москва ждёт ответа от НАТО."
    engine = tiny_engine(tiny_models, tmp_path, model_languages=["id", "en"])
    indonesian, in_russian = engine.summarize_batch([article(2), russian], ["id", "ru"])
    runner = engine.models.get(str(tiny_models.summary)).runner
    assert getattr(runner, "vocab_map", None) is not None  # Cyrillic pieces were dropped
    assert indonesian.method is Method.SEQ2SEQ
    assert in_russian.method is Method.EXTRACTIVE and "cannot write ru" in (in_russian.fallback_reason or "")
    assert in_russian.text.startswith("Президент России заявил")
    assert engine.summary_key("ru") == "extractive:lead" and engine.summary_key("id") == str(tiny_models.summary)
    with_russian = tiny_engine(tiny_models, tmp_path, model_languages=["id", "en", "ru"])
    assert with_russian.summarize(russian, "ru").method is Method.SEQ2SEQ
