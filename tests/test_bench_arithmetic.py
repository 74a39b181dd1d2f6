"""The benchmark's arithmetic count (bench/int8_rate.py), which its share of the int8 GEMM rate rests on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.int8_rate import Seq2SeqShape, dense_operations

MT5_BASE = SimpleNamespace(model_type="mt5", d_model=768, num_heads=12, d_kv=64, d_ff=2048, is_gated_act=True,
                           num_layers=12, num_decoder_layers=12)
OPUS_MT = SimpleNamespace(model_type="marian", d_model=512, encoder_ffn_dim=2048, encoder_layers=6, decoder_layers=6)


def test_encoder_only_counts_projections_ffn_and_attention() -> None:
    shape = Seq2SeqShape.of(MT5_BASE)
    # No steps: the encoder (QKV + output, gated FFN, scores + context) and the cross-attention keys/values.
    encoder = 12 * 512 * (4 * 768 * 768 + 3 * 768 * 2048 + 2 * 512 * 768)
    cross = 12 * 512 * 2 * 768 * 768
    assert shape.operations(512, 0, 4, 64000) == 2 * (encoder + cross)
    assert round(2 * encoder / 1e9, 1) == 96.6 and round(2 * cross / 1e9, 1) == 14.5


def test_each_step_costs_every_beam_one_decoder_pass_and_the_output_layer() -> None:
    shape = Seq2SeqShape.of(OPUS_MT)
    first_step = 6 * (6 * 512 * 512 + 2 * 512 * 2048 + 2 * 1 * 512 + 2 * 96 * 512) + 512 * 54796
    assert shape.operations(96, 1, 4, 54796) - shape.operations(96, 0, 4, 54796) == 2 * 4 * first_step
    # A smaller output vocabulary (trimming) lowers only the output layer's share.
    saved = shape.operations(96, 96, 4, 54796) - shape.operations(96, 96, 4, 30000)
    assert saved == pytest.approx(2 * 4 * 96 * 512 * (54796 - 30000))


def test_dense_rate_model_counts_two_operations_per_multiply_add() -> None:
    assert dense_operations(1) == 2 * 2 * (4 * 2048 * 2048 + 2 * 2048 * 8192)
