"""accelerate(): each precision on tiny random-weight T5 and Marian models built here."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import MarianConfig, MarianMTModel, T5Config, T5ForConditionalGeneration

from summarizer.speed import Accelerated, Precision, accelerate, parse_precision

VOCAB = 300


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
