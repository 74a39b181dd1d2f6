"""accelerate(): each precision on tiny random-weight T5 and Marian models built here."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import MarianConfig, MarianMTModel, T5Config, T5ForConditionalGeneration

from summarizer.speed import Accelerated, Precision, accelerate, parse_precision

VOCAB = 300


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Tiny models gain nothing from threads; on a busy 2-core box spinning threads slow them down."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def tiny_t5(seed: int = 0) -> T5ForConditionalGeneration:
    """A 2-layer random mT5-like model (gated-gelu, untied head)."""
    torch.manual_seed(seed)
    config = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5ForConditionalGeneration(config).eval()


def tiny_marian(seed: int = 0) -> MarianMTModel:
    """A 2-layer random Marian model whose pad/decoder-start id is the last id, as in opus-mt."""
    torch.manual_seed(seed)
    config = MarianConfig(vocab_size=VOCAB, decoder_vocab_size=VOCAB, d_model=32, encoder_layers=2,
                          decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                          encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                          pad_token_id=VOCAB - 1, decoder_start_token_id=VOCAB - 1, eos_token_id=0,
                          bos_token_id=0, forced_eos_token_id=0)
    return MarianMTModel(config).eval()


def batch(seed: int = 1, rows: int = 3, length: int = 20) -> dict[str, torch.Tensor]:
    """Random input ids with right padding on all rows but the first."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB - 2, (rows, length), generator=generator)
    mask = torch.ones_like(ids)
    for row in range(1, rows):
        mask[row, length - 3 * row:] = 0
    return {"input_ids": ids, "attention_mask": mask}


GREEDY: dict[str, Any] = {"max_new_tokens": 12, "min_new_tokens": 12, "num_beams": 1, "do_sample": False}


def test_parse_precision_rejects_unknown_value() -> None:
    assert parse_precision(" BF16 ") is Precision.BF16
    with pytest.raises(ValueError, match="fp32, bf16, int8"):
        parse_precision("fp8")


@pytest.mark.parametrize("build", [tiny_t5, tiny_marian])
def test_fp32_matches_plain_model(build: Any) -> None:
    plain = build()
    expected = plain.generate(**batch(), **GREEDY)
    fast = accelerate(build(), None, precision="fp32")
    assert isinstance(fast, Accelerated)
    assert fast.config.vocab_size == VOCAB
    assert fast.device.type == "cpu"
    assert torch.equal(fast.generate(**batch(), **GREEDY), expected)


@pytest.mark.parametrize("build", [tiny_t5, tiny_marian])
def test_fp32_beam_search_matches_plain_model(build: Any) -> None:
    # accelerate() skips re-indexing the cross-attention cache between beam steps: must be exact.
    settings = {"max_new_tokens": 12, "min_new_tokens": 12, "num_beams": 4, "do_sample": False,
                "no_repeat_ngram_size": 3, "num_return_sequences": 2, "length_penalty": 0.6}
    expected = build().generate(**batch(rows=4), **settings)
    got = accelerate(build(), None, precision="fp32").generate(**batch(rows=4), **settings)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
@pytest.mark.parametrize("build", [tiny_t5, tiny_marian])
def test_reduced_precision_gives_sane_ids(build: Any, precision: str) -> None:
    plain = build()
    expected = plain.generate(**batch(), **GREEDY)
    fast = accelerate(build(), None, precision=precision)
    got = fast.generate(**batch(), **GREEDY)
    assert got.shape == expected.shape
    assert int(got.min()) >= 0 and int(got.max()) < VOCAB
    # Rounding may flip a near-tie and everything after it; the first steps should mostly agree.
    agreement = (got[:, :4] == expected[:, :4]).float().mean().item()
    assert agreement >= 0.5


# --- vocabulary trimming -------------------------------------------------------------------

CORPUS = [
    "Presiden Rusia mengatakan jaminan keamanan harus mengikat secara hukum.",
    "The president said the security guarantees must be legally binding.",
    "Harga beras naik tajam di pasar tradisional Jakarta minggu ini.",
    "Rice prices rose sharply in Jakarta's traditional markets this week, traders said.",
    "Президент России заявил, что гарантии безопасности должны быть юридически обязывающими.",
    "Цены на рис резко выросли на традиционных рынках Джакарты на этой неделе.",
    "俄罗斯总统表示，安全保障必须具有法律约束力。本周雅加达传统市场的大米价格大幅上涨。",
    "قال الرئيس إن الضمانات الأمنية يجب أن تكون ملزمة قانونا.",
]


def tiny_tokenizer() -> Any:
    """A real SentencePiece unigram tokenizer trained here on Latin, Cyrillic, Han and Arabic text."""
    import io

    import sentencepiece as spm
    from transformers import T5Tokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 30), model_writer=model, vocab_size=VOCAB, model_type="unigram",
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


def sized(build: Any, tokenizer: Any) -> Any:
    """A tiny model whose vocabulary is the tokenizer's."""
    global VOCAB
    saved, VOCAB = VOCAB, len(tokenizer)
    try:
        return build()
    finally:
        VOCAB = saved


def test_kept_ids_are_latin_pieces_and_specials(tokenizer: Any) -> None:
    from summarizer.speed import kept_token_ids

    keep = kept_token_ids(tokenizer, ["id", "en"], len(tokenizer), always=[len(tokenizer) - 1])
    assert keep is not None and keep == sorted(keep)
    pieces = tokenizer.convert_ids_to_tokens(keep)
    dropped = set(range(len(tokenizer))) - set(keep)
    dropped_pieces = tokenizer.convert_ids_to_tokens(sorted(dropped))
    assert {0, 1, 2, len(tokenizer) - 1} <= set(keep)
    assert any("Президент"[:3] in piece or piece == "и" for piece in dropped_pieces)
    assert not any(any("\u0400" <= ch <= "\u04ff" or "\u4e00" <= ch <= "\u9fff" for ch in piece)
                   for piece in pieces if piece not in tokenizer.all_special_tokens)
    latin = tokenizer("Harga beras naik tajam.").input_ids
    assert set(latin) <= set(keep)
    assert kept_token_ids(tokenizer, ["xx"], len(tokenizer)) is None  # unknown language: no trimming
    assert len(kept_token_ids(tokenizer, ["ru"], len(tokenizer)) or []) > 0


def articles(tokenizer: Any) -> dict[str, torch.Tensor]:
    texts = ["Harga beras naik tajam di pasar tradisional Jakarta.", "The president said so.",
             "Президент России заявил."]  # an input in a dropped script: the encoder still reads it
    return tokenizer(texts, return_tensors="pt", padding=True)


@pytest.mark.parametrize("num_beams", [1, 4])
@pytest.mark.parametrize("build", [tiny_t5, tiny_marian])
def test_trimmed_model_equals_full_model_restricted_to_kept_tokens(
    build: Any, num_beams: int, tokenizer: Any
) -> None:
    plain = sized(build, tokenizer)
    fast = accelerate(sized(build, tokenizer), tokenizer, precision="fp32", languages=["id", "en"])
    assert fast.vocab_map is not None
    keep = fast.vocab_map.keep.tolist()
    dropped = sorted(set(range(len(tokenizer))) - set(keep))
    assert dropped and fast.output_vocab_size == len(keep) < len(tokenizer)
    settings = {"max_new_tokens": 10, "min_new_tokens": 10, "num_beams": num_beams, "do_sample": False,
                "no_repeat_ngram_size": 2, "renormalize_logits": num_beams > 1}
    # The full model, forbidden to emit dropped tokens, must choose exactly what the trimmed one does.
    # Beam search ranks by log-probabilities, so the full model's must be renormalized over the tokens
    # left after masking (renormalize_logits) to be the distribution of a model without those tokens.
    expected = plain.generate(**articles(tokenizer), suppress_tokens=dropped, **settings)
    got = fast.generate(**articles(tokenizer), **settings)
    assert torch.equal(got, expected)
    # ...and the restriction matters: unrestricted, this random model picks dropped tokens.
    assert not torch.equal(plain.generate(**articles(tokenizer), **settings), got)
    assert set(got.flatten().tolist()) <= set(keep)  # ids are in the original vocabulary
    # The wrapper still shows original ids to callers.
    assert fast.config.pad_token_id == plain.config.pad_token_id
    assert fast.generation_config.decoder_start_token_id == plain.generation_config.decoder_start_token_id
    assert tokenizer.batch_decode(got, skip_special_tokens=True)


def test_trimmed_generation_remaps_id_arguments(tokenizer: Any) -> None:
    fast = accelerate(sized(tiny_t5, tokenizer), tokenizer, precision="fp32", languages=["en"])
    latin = tokenizer("beras", add_special_tokens=False).input_ids
    settings = {"max_new_tokens": 6, "min_new_tokens": 6, "num_beams": 1, "do_sample": False}
    base = fast.generate(**articles(tokenizer), **settings)
    banned = sorted(set(base.flatten().tolist()) - {0, 1})[:1] + latin[:1]
    got = fast.generate(**articles(tokenizer), bad_words_ids=[[i] for i in banned], **settings)
    assert not set(got.flatten().tolist()) & set(banned)
    with pytest.raises(ValueError, match="not in the trimmed vocabulary"):
        dropped = next(i for i in range(len(tokenizer)) if fast.vocab_map.new_id(i) is None)
        fast.generate(**articles(tokenizer), forced_bos_token_id=dropped, **settings)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_trimmed_reduced_precision_stays_in_kept_vocabulary(precision: str, tokenizer: Any) -> None:
    fast = accelerate(sized(tiny_t5, tokenizer), tokenizer, precision=precision, languages=["id"])
    got = fast.generate(**articles(tokenizer), max_new_tokens=8, min_new_tokens=8, num_beams=2)
    assert got.shape == (3, 9)
    assert set(got.flatten().tolist()) <= set(fast.vocab_map.keep.tolist())


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_tied_weights_stay_tied_after_conversion(precision: str) -> None:
    fast = accelerate(tiny_t5(), None, precision=precision)
    model = fast.model
    assert model.encoder.embed_tokens is model.shared or model.encoder.embed_tokens.weight is model.shared.weight
    assert model.decoder.embed_tokens.weight is model.encoder.embed_tokens.weight


def test_compact_embeddings_store_one_shared_bf16_table() -> None:
    from summarizer.speed import compact_embeddings

    model = tiny_t5()
    expected = model.shared(torch.arange(VOCAB))
    assert compact_embeddings(model, min_rows=100) == 1  # shared, encoder and decoder use one table
    assert model.shared is model.encoder.embed_tokens is model.decoder.embed_tokens
    assert model.shared.weight.dtype == torch.bfloat16
    looked_up = model.shared(torch.arange(VOCAB))
    assert looked_up.dtype == torch.float32
    assert torch.allclose(looked_up, expected, rtol=1e-2, atol=1e-2)
    assert model.generate(**batch(), **GREEDY).shape == (3, 13)
