"""The int8 matrix-product rate of CTranslate2 on this machine, measured through its own GEMM backend.

CTranslate2 exposes no GEMM in Python, so this builds an encoder-only CTranslate2 model made almost
entirely of big int8 Dense layers (d_model 2048, FFN 8192, 128-token inputs: attention, norms and
activation quantization are ~2% of the arithmetic) and times `Encoder.forward_batch`. The model goes
through the same path as newsbot's layers (int8 weights, activations quantized per row, the backend
CTranslate2 picks for this CPU: oneMKL on Intel, oneDNN elsewhere), so the rate is what those
layers could reach; torch's int8 matmul would measure another library.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WIDTH = 2048
FFN = 8192
LAYERS = 2
TOKENS = 128
VOCAB = ["<unk>", "<s>", "</s>", *(f"t{i}" for i in range(61))]


@dataclass(frozen=True)
class GemmRate:
    """Measured int8 matrix-product rate (2 * M * N * K operations per second of the Dense layers)."""

    gops: float
    seconds: float
    operations: float
    shape: str


def dense_operations(rows: int) -> float:
    """Operations of the Dense layers for `rows` tokens: fused QKV, output, two FFN projections."""
    per_token_macs = LAYERS * (3 * WIDTH * WIDTH + WIDTH * WIDTH + 2 * WIDTH * FFN)
    return 2.0 * rows * per_token_macs


def build_dense_model(folder: Path, seed: int = 0) -> Path:
    """Save the encoder-only int8 model of big Dense layers (random weights) into folder, once."""
    if (folder / "model.bin").exists():
        return folder
    import numpy as np
    from ctranslate2.specs import TransformerEncoderModelSpec, TransformerEncoderSpec

    rng = np.random.default_rng(seed)

    def weight(rows: int, cols: int) -> Any:
        return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float32)

    def norm(part: Any) -> None:
        part.gamma = np.ones(WIDTH, dtype=np.float32)
        part.beta = np.zeros(WIDTH, dtype=np.float32)

    encoder = TransformerEncoderSpec(LAYERS, WIDTH // 64)
    encoder.embeddings[0].weight = weight(len(VOCAB), WIDTH)
    encoder.position_encodings.encodings = weight(TOKENS + 2, WIDTH)
    norm(encoder.layer_norm)
    for layer in encoder.layer:
        norm(layer.self_attention.layer_norm)
        layer.self_attention.linear[0].weight = weight(3 * WIDTH, WIDTH)
        layer.self_attention.linear[0].bias = np.zeros(3 * WIDTH, dtype=np.float32)
        layer.self_attention.linear[1].weight = weight(WIDTH, WIDTH)
        layer.self_attention.linear[1].bias = np.zeros(WIDTH, dtype=np.float32)
        norm(layer.ffn.layer_norm)
        layer.ffn.linear_0.weight = weight(FFN, WIDTH)
        layer.ffn.linear_0.bias = np.zeros(FFN, dtype=np.float32)
        layer.ffn.linear_1.weight = weight(WIDTH, FFN)
        layer.ffn.linear_1.bias = np.zeros(WIDTH, dtype=np.float32)
    spec = TransformerEncoderModelSpec(encoder)
    spec.register_vocabulary(VOCAB)
    spec.validate()
    spec.optimize(quantization="int8")
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(str(folder))
    return folder


def measure(folder: Path, threads: int, batch: int = 8, repeat: int = 3) -> GemmRate:
    """Best of `repeat` timed forward passes of `batch` x TOKENS tokens (the backend's rate, not load's)."""
    import ctranslate2

    encoder = ctranslate2.Encoder(str(build_dense_model(folder)), device="cpu", compute_type="int8",
                                  intra_threads=threads)
    tokens = [[VOCAB[3 + (i * 7 + row) % (len(VOCAB) - 3)] for i in range(TOKENS)] for row in range(batch)]
    encoder.forward_batch(tokens[:1])  # warm-up: kernel choice, allocations
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        encoder.forward_batch(tokens)
        best = min(best, time.perf_counter() - began)
    operations = dense_operations(batch * TOKENS)
    return GemmRate(operations / best / 1e9, best, operations,
                    f"{batch * TOKENS}x{WIDTH}x({3 * WIDTH},{WIDTH},{FFN},{WIDTH}) x{LAYERS} layers")


@dataclass(frozen=True)
class Seq2SeqShape:
    """What the arithmetic of one encoder-decoder model depends on (from its transformers config)."""

    width: int  # d_model
    inner: int  # attention width (heads x head size)
    ffn: int
    gated: bool  # T5's gated FFN has two input projections
    encoder_layers: int
    decoder_layers: int

    @classmethod
    def of(cls, config: Any) -> Seq2SeqShape:
        if config.model_type in {"t5", "mt5"}:
            return cls(config.d_model, config.num_heads * config.d_kv, config.d_ff, config.is_gated_act,
                       config.num_layers, config.num_decoder_layers)
        return cls(config.d_model, config.d_model, config.encoder_ffn_dim, False, config.encoder_layers,
                   config.decoder_layers)

    def _ffn_macs(self) -> int:
        return (3 if self.gated else 2) * self.width * self.ffn

    def operations(self, source: int, generated: int, beams: int, output_vocab: int) -> float:
        """Matrix-product operations (2 per multiply-add) of one input: encoder, cross-attention keys and
        values once, then `generated` steps of `beams` hypotheses, each with the output layer.

        What beam search needs, not what an implementation may repeat (e.g. keys per beam).
        """
        encoder = self.encoder_layers * source * (4 * self.width * self.inner + self._ffn_macs()
                                                  + 2 * source * self.inner)
        cross_keys = self.decoder_layers * source * 2 * self.width * self.inner
        per_step = sum(
            self.decoder_layers * (6 * self.width * self.inner + self._ffn_macs() + 2 * (step + 1) * self.inner
                                   + 2 * source * self.inner) + self.width * output_vocab
            for step in range(generated)
        )
        return 2.0 * (encoder + cross_keys + beams * per_step)
