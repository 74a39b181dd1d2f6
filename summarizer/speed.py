"""Inference speed-ups for seq2seq models on CPU: precision (fp32, bf16, int8) and thread count.

`accelerate(model, tokenizer, precision=...)` returns an `Accelerated` wrapper whose `generate`
returns token ids in the tokenizer's original vocabulary, so callers decode as usual.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


class Precision(StrEnum):
    """Numeric format of the weights used at inference."""

    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


def parse_precision(value: str | Precision) -> Precision:
    """Turn a setting value into a Precision, or raise ValueError naming the allowed values."""
    try:
        return Precision(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in Precision)
        raise ValueError(f"unknown model precision {value!r}; use one of: {allowed}") from None


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 matrix products natively (avx512_bf16 or AMX)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations quantized per batch)."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which is not installed here.
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)


class Accelerated:
    """A seq2seq model prepared for fast CPU inference; mirrors the wrapped HF model."""

    def __init__(self, model: PreTrainedModel, tokenizer: Any, precision: Precision) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.precision = precision

    @property
    def config(self) -> Any:
        """The wrapped model's config."""
        return self.model.config

    @property
    def generation_config(self) -> Any:
        """The wrapped model's generation config."""
        return self.model.generation_config

    @property
    def device(self) -> torch.device:
        """The device the model runs on (always CPU here)."""
        return self.model.device

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 **gen_kwargs: Any) -> torch.Tensor:
        """Generate token ids (original vocabulary) for a batch of encoded inputs."""
        import torch

        with torch.inference_mode():
            return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **gen_kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper: fall through to the HF model.
        if name in {"model", "tokenizer", "precision"}:
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"Accelerated({type(self.model).__name__}, precision={self.precision.value})"


def accelerate(model: PreTrainedModel, tokenizer: Any, *, precision: str = "bf16",
               languages: Sequence[str] | None = None, threads: int = 0) -> Accelerated:
    """Prepare a loaded HF seq2seq model for fast CPU generation; output ids stay in the original vocabulary."""
    import torch

    chosen = parse_precision(precision)
    if threads > 0:
        torch.set_num_threads(threads)
    model.eval()
    if chosen is Precision.BF16:
        model = model.to(torch.bfloat16)
    elif chosen is Precision.INT8:
        model = quantize_int8(model.float())
    else:
        model = model.float()
    return Accelerated(model, tokenizer, chosen)
