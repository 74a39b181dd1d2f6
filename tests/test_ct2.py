"""The CTranslate2 backend on tiny models built here: same outputs as transformers, conversion stored once."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from summarizer import Backend, Engine, Method, Precision, SummarizerConfig, ct2
from summarizer.models import LoadedModel, ModelStore, ModelUnavailable

from tinymodels import TinyModels, article


def store(tmp_path: Path, backend: Backend, precision: Precision = Precision.FP32,
          languages: tuple[str, ...] = ("id", "en"), cache: Path | None = None) -> ModelStore:
    return ModelStore(SummarizerConfig(backend=backend, precision=precision, threads=1, languages=languages,
                                       cache_dir=cache or tmp_path / "cache"))


def encoded(loaded: LoadedModel, texts: list[str]) -> dict[str, torch.Tensor]:
    return dict(loaded.tokenizer(texts, return_tensors="pt", padding=True))


TEXTS = [article(seed, sentences=1 + seed) for seed in range(3)]  # different lengths: padding
GREEDY: dict[str, Any] = {"num_beams": 1, "max_new_tokens": 12, "min_new_tokens": 12, "do_sample": False}
# Fixed length: the search itself must match. Where hypotheses end early, length penalties and n-gram
# blocking apply; there CTranslate2 differs in detail (it renormalizes after blocking, and does not
# count the decoder start token as text), so those are checked for their effect only.
BEAM: dict[str, Any] = {"num_beams": 4, "max_new_tokens": 12, "min_new_tokens": 12, "do_sample": False}
BLOCKED: dict[str, Any] = {"num_beams": 4, "max_new_tokens": 12, "no_repeat_ngram_size": 2, "length_penalty": 0.6,
                           "early_stopping": True, "do_sample": False}


def model_folder(tiny_models: TinyModels, which: str) -> str:
    return str(tiny_models.summary if which == "summary" else tiny_models.root / "marian-id-en")


@pytest.mark.parametrize("settings", [GREEDY, BEAM], ids=["greedy", "beam"])
@pytest.mark.parametrize("which", ["summary", "translation"])
def test_fp32_output_equals_transformers(tiny_models: TinyModels, tmp_path: Path, which: str,
                                         settings: dict[str, Any]) -> None:
    fast = store(tmp_path, Backend.CTRANSLATE2).get(model_folder(tiny_models, which), ["id", "en"])
    plain = store(tmp_path, Backend.TRANSFORMERS).get(model_folder(tiny_models, which), ["id", "en"])
    assert fast.backend is Backend.CTRANSLATE2 and plain.backend is Backend.TRANSFORMERS
    batch = encoded(fast, TEXTS)
    assert torch.equal(fast.runner.generate(**batch, **settings), plain.runner.generate(**batch, **settings))


@pytest.mark.parametrize("which", ["summary", "translation"])
def test_converted_model_scores_like_transformers(tiny_models: TinyModels, tmp_path: Path, which: str) -> None:
    # Same log-probabilities token by token: the conversion (trimmed, output scale) is the same model.
    fast = store(tmp_path, Backend.CTRANSLATE2).get(model_folder(tiny_models, which), ["id", "en"])
    plain = store(tmp_path, Backend.TRANSFORMERS).get(model_folder(tiny_models, which), ["id", "en"])
    batch = encoded(fast, TEXTS)
    targets = fast.runner.generate(**batch, **BEAM)
    tokens = fast.tokenizer.convert_ids_to_tokens
    sources = [tokens(row[mask.bool()].tolist()) for row, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)]
    scored = fast.runner.translator.score_batch(sources, [tokens(row[1:].tolist()) for row in targets])
    model, vocab_map = plain.runner.model, plain.runner.vocab_map
    trimmed = torch.tensor([[vocab_map.new_id(i) for i in row] for row in targets.tolist()])
    with torch.no_grad():
        logits = model(**batch, decoder_input_ids=trimmed).logits.float()
    if model.config.model_type == "marian":
        # The converter drops Marian's <pad> from the outputs (it only starts the decoder, and
        # transformers bans it with bad_words_ids): normalize over the same tokens.
        logits[..., vocab_map.new_id(fast.tokenizer.pad_token_id)] = float("-inf")
    eos = vocab_map.new_id(fast.tokenizer.eos_token_id)
    # score_batch also scores the end token after the last target token.
    following = torch.cat([trimmed[:, 1:], torch.full((len(TEXTS), 1), eos)], dim=1)
    expected = logits.log_softmax(-1).gather(-1, following[..., None]).squeeze(-1)
    got = torch.tensor([result.log_probs for result in scored])
    assert torch.allclose(got, expected, atol=1e-3)


@pytest.mark.parametrize("which", ["summary", "translation"])
def test_length_penalty_and_ngram_blocking_take_effect(tiny_models: TinyModels, tmp_path: Path, which: str) -> None:
    fast = store(tmp_path, Backend.CTRANSLATE2).get(model_folder(tiny_models, which), ["id", "en"])
    batch = encoded(fast, TEXTS)
    for row in fast.runner.generate(**batch, **BLOCKED).tolist():
        text = [token for token in row[1:] if token != fast.tokenizer.pad_token_id]
        bigrams = list(itertools.pairwise(text))
        assert text and len(bigrams) == len(set(bigrams))  # no bigram twice
    unblocked = fast.runner.generate(**batch, **{**BLOCKED, "no_repeat_ngram_size": 0}).tolist()
    assert any(len(set(itertools.pairwise(row))) < len(row) - 1 for row in unblocked)  # repeats without it


def test_trimmed_conversion_writes_only_kept_tokens(tiny_models: TinyModels, tmp_path: Path) -> None:
    # The tiny tokenizer has Cyrillic pieces: trimming to id/en drops them, as it would for mT5.
    loaded = store(tmp_path, Backend.CTRANSLATE2).get(str(tiny_models.summary), ["id", "en"])
    assert loaded.runner.vocab_map is not None
    kept = set(loaded.runner.vocab_map.keep.tolist())
    assert len(kept) < len(loaded.tokenizer)
    untrimmed = store(tmp_path, Backend.CTRANSLATE2, languages=()).get(str(tiny_models.summary), None)
    assert untrimmed.runner.vocab_map is None
    batch = encoded(loaded, TEXTS)
    output = loaded.runner.generate(**batch, **BEAM)
    assert set(output[:, 1:].flatten().tolist()) <= kept | {loaded.tokenizer.pad_token_id}
    # The trimmed model picks what the full model picks when its choice is restricted to the kept
    # tokens; the transformers backend's trimming is proven equal to that in test_speed.py.
    plain = store(tmp_path, Backend.TRANSFORMERS).get(str(tiny_models.summary), ["id", "en"])
    assert plain.runner.vocab_map is not None and set(plain.runner.vocab_map.keep.tolist()) == kept
    decode = loaded.tokenizer.batch_decode
    assert decode(output, skip_special_tokens=True) == decode(
        plain.runner.generate(**batch, **BEAM), skip_special_tokens=True)


def test_conversion_is_stored_once_and_reused_without_the_weights(
    tiny_models: TinyModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_id = str(tiny_models.root / "marian-en-id")
    first = store(tmp_path, Backend.CTRANSLATE2).get(model_id, ["id"])
    stored = list((tmp_path / "cache" / "newsbot-ctranslate2").iterdir())
    assert [ct2.is_converted(folder) for folder in stored] == [True]  # no scratch folders left
    assert first.runner.folder == stored[0]

    from transformers import AutoModelForSeq2SeqLM

    def no_weights(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the stored conversion should be used")

    monkeypatch.setattr(AutoModelForSeq2SeqLM, "from_pretrained", no_weights)
    again = store(tmp_path, Backend.CTRANSLATE2).get(model_id, ["id"])  # a new process, same cache
    batch = encoded(first, TEXTS)
    assert torch.equal(again.runner.generate(**batch, **GREEDY), first.runner.generate(**batch, **GREEDY))
    int8 = store(tmp_path, Backend.CTRANSLATE2, Precision.INT8)
    with pytest.raises(ModelUnavailable, match="AssertionError"):
        int8.get(model_id, ["id"])  # another precision is another conversion: it needs the weights


def test_changed_model_files_are_converted_again(tmp_path: Path) -> None:
    from tinymodels import build_tiny_marian

    folder = build_tiny_marian(tmp_path / "marian", seed=3)
    first = store(tmp_path, Backend.CTRANSLATE2).get(str(folder), ["en"])
    (folder / ".cache").mkdir()
    (folder / ".cache" / "download.metadata").write_text("huggingface_hub bookkeeping", encoding="utf-8")
    assert store(tmp_path, Backend.CTRANSLATE2).get(str(folder), ["en"]).runner.folder == first.runner.folder
    build_tiny_marian(tmp_path / "marian", seed=4)  # new weights in the same folder
    second = store(tmp_path, Backend.CTRANSLATE2).get(str(folder), ["en"])
    assert first.runner.folder != second.runner.folder
    assert len(list((tmp_path / "cache" / "newsbot-ctranslate2").iterdir())) == 2


def test_unwritable_cache_converts_for_this_process_only(tiny_models: TinyModels, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be", encoding="utf-8")
    loaded = store(tmp_path, Backend.CTRANSLATE2, cache=blocked).get(str(tiny_models.summary), ["id", "en"])
    assert not loaded.runner.folder.exists()  # loaded into memory, scratch removed
    assert loaded.runner.generate(**encoded(loaded, TEXTS[:1]), **GREEDY).shape == (1, 13)


def test_unconvertible_model_uses_transformers_under_auto_and_fails_clearly_when_forced(tmp_path: Path) -> None:
    from tinymodels import build_tiny_m2m100

    # The tiny M2M100's embedding table is larger than its tokenizer: CTranslate2's checks refuse it.
    folder = str(build_tiny_m2m100(tmp_path / "m2m"))
    assert store(tmp_path, Backend.AUTO).get(folder).backend is Backend.TRANSFORMERS
    with pytest.raises(ModelUnavailable, match=r"CTranslate2 cannot convert.*MODEL_BACKEND=ctranslate2"):
        store(tmp_path, Backend.CTRANSLATE2).get(folder)


def test_thread_layout_gives_each_core_a_replica_unless_threads_are_set() -> None:
    assert ct2.thread_layout(0, 1) == ct2.ThreadLayout(replicas=1, intra=1)
    assert ct2.thread_layout(0, 2) == ct2.ThreadLayout(replicas=2, intra=1)
    assert ct2.thread_layout(0, 16) == ct2.ThreadLayout(replicas=ct2.MAX_REPLICAS, intra=16 // ct2.MAX_REPLICAS)
    assert ct2.thread_layout(1, 1) == ct2.ThreadLayout(replicas=1, intra=1)  # a worker pinned to one core
    assert ct2.thread_layout(2, 2) == ct2.ThreadLayout(replicas=1, intra=2)
    assert ct2.thread_layout(2, 8) == ct2.ThreadLayout(replicas=4, intra=2)
    assert ct2.thread_layout(4, 2) == ct2.ThreadLayout(replicas=1, intra=4)  # asked for: more threads than cores


def test_int8_engine_batches_equal_one_by_one(tiny_models: TinyModels, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Two cores, auto layout: two replicas of one thread, each batch split between them.
    monkeypatch.setattr(ct2, "available_cores", lambda: 2)
    engine = Engine(SummarizerConfig(summary_model=str(tiny_models.summary), precision=Precision.INT8, threads=0,
                                     num_beams=4, max_new_tokens=10, batch_size=3, cache_dir=tmp_path))
    texts = [article(seed, sentences=2 + seed) for seed in range(4)]
    batched = engine.summarize_batch(texts, ["id"] * 4)
    assert [out.text for out in batched] == [engine.summarize(text, "id").text for text in texts]
    assert {out.method for out in batched} == {Method.SEQ2SEQ}
    assert "loaded (ctranslate2, int8)" in engine.status_line()
    assert engine.models.get(str(tiny_models.summary)).runner.layout == ct2.ThreadLayout(replicas=2, intra=1)


def test_resolve_picks_backend_and_precision() -> None:
    assert ct2.resolve(Backend.AUTO, Precision.AUTO) == (Backend.CTRANSLATE2, Precision.INT8)
    assert ct2.resolve(Backend.AUTO, Precision.FP32) == (Backend.CTRANSLATE2, Precision.FP32)
    assert ct2.resolve(Backend.AUTO, Precision.BF16) == (Backend.TRANSFORMERS, Precision.BF16)
    assert ct2.resolve(Backend.CTRANSLATE2, Precision.BF16) == (Backend.CTRANSLATE2, Precision.INT8)
    assert ct2.resolve(Backend.TRANSFORMERS, Precision.AUTO) == (Backend.TRANSFORMERS, Precision.BF16)


def test_auto_without_the_package_uses_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ct2, "installed", lambda: False)
    assert ct2.resolve(Backend.AUTO, Precision.AUTO) == (Backend.TRANSFORMERS, Precision.BF16)


def test_runner_refuses_what_it_cannot_do(tiny_models: TinyModels, tmp_path: Path) -> None:
    loaded = store(tmp_path, Backend.CTRANSLATE2).get(str(tiny_models.summary), ["id", "en"])
    batch = encoded(loaded, TEXTS[:1])
    with pytest.raises(ValueError, match="do_sample"):
        loaded.runner.generate(**batch, do_sample=True)
    with pytest.raises(ValueError, match="prefix_allowed_tokens_fn"):
        loaded.runner.generate(**batch, prefix_allowed_tokens_fn=lambda *_: [0])


def test_avx512_is_enabled_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first, so that monkeypatch removes what import_ctranslate2 writes: a leaked AVX512
    # would make later subprocesses' CTranslate2 fail on a CPU without AVX-512.
    monkeypatch.setenv("CT2_FORCE_CPU_ISA", "")
    monkeypatch.delenv("CT2_FORCE_CPU_ISA")
    monkeypatch.setattr(ct2, "cpu_flags", lambda: {"avx2", "fma"})
    ct2.import_ctranslate2()
    assert "CT2_FORCE_CPU_ISA" not in os.environ
    monkeypatch.setattr(ct2, "cpu_flags", lambda: {"avx2", "avx512f", "avx512bw", "avx512vl"})
    ct2.import_ctranslate2()
    assert os.environ["CT2_FORCE_CPU_ISA"] == "AVX512"
