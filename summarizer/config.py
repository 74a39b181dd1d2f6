"""Configuration and results of the summarizer (no Telegram, no database)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from summarizer.extractive import ExtractiveAlgorithm

NO_MODEL = "none"
# The models newsbot runs when SUMMARY_MODEL / TRANSLATION_MODEL are not set. SummarizerConfig
# itself defaults to NO_MODEL, so a program using the summarizer downloads nothing unasked.
DEFAULT_SUMMARY_MODEL = "csebuetnlp/mT5_multilingual_XLSum"
DEFAULT_TRANSLATION_MODEL = "Helsinki-NLP/opus-mt-{src}-{tgt}"


class Method(enum.StrEnum):
    """How a summary was made (same values as bot.db.models.SummaryMethod)."""

    SEQ2SEQ = "seq2seq"
    EXTRACTIVE = "extractive"


class Precision(enum.StrEnum):
    """Numeric format of the weights at inference on CPU (MODEL_PRECISION)."""

    AUTO = "auto"  # int8 with CTranslate2, bf16 with transformers (see summarizer.ct2.resolve)
    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


class Backend(enum.StrEnum):
    """What runs the models (MODEL_BACKEND)."""

    AUTO = "auto"  # ctranslate2 when installed and able to convert the model, else transformers
    TRANSFORMERS = "transformers"  # torch, through summarizer.speed.accelerate()
    CTRANSLATE2 = "ctranslate2"  # converted once, run by CTranslate2 (summarizer.ct2)


@dataclass(frozen=True)
class SummarizerConfig:
    """Which models to use and how to run them; the bot builds it from its Settings."""

    summary_model: str = NO_MODEL  # Hub id, local folder, or "none" (extractive only)
    summary_model_overrides: Mapping[str, str] = field(default_factory=dict)  # lang -> model or "none"
    translation_model: str = NO_MODEL  # Hub id, folder, template with {src}/{tgt}, or "none"
    pivot_language: str = "en"
    languages: tuple[str, ...] = ("id", "en")  # languages readers use (translation pairs, vocab)
    cache_dir: Path | None = None
    offline: bool = False  # never contact the Hub (HF_HUB_OFFLINE)
    backend: Backend = Backend.AUTO
    precision: Precision = Precision.AUTO
    threads: int = 0  # intra-op threads (per CTranslate2 replica); 0: auto (summarizer.ct2.thread_layout)
    niceness: int = 10  # model threads run this much below the process's priority (summarizer/priority.py); 0: same
    num_beams: int = 4
    max_new_tokens: int = 84
    min_new_tokens: int = 0
    max_input_tokens: int = 512
    no_repeat_ngram_size: int = 3  # used when the model's generation config sets none
    length_penalty: float | None = None  # None: the model's own (XL-Sum's is 0.6)
    translation_num_beams: int = 4
    translation_max_new_tokens: int = 256
    batch_size: int = 8
    sentences: int = 3  # sentences in an extractive summary
    extractive_algorithm: ExtractiveAlgorithm = ExtractiveAlgorithm.LEAD
    hub_probe_timeout: float = 3.0  # seconds to decide the Hub is unreachable

    def summary_model_for(self, lang: str | None) -> str:
        """The summary model configured for a language (an override, else the default)."""
        if lang and lang in self.summary_model_overrides:
            return self.summary_model_overrides[lang]
        return self.summary_model

    @property
    def translation_enabled(self) -> bool:
        return not is_disabled(self.translation_model)

    def extractive_key(self) -> str:
        """The model column value of a fallback summary."""
        return f"extractive:{self.extractive_algorithm.value}"


def is_disabled(model: str | None) -> bool:
    """True when a model setting means "no model": "none" (any case) or nothing at all.

    The one test of "no model" for summaries and translations, in the summarizer and the bot.
    """
    return model is None or model.strip().lower() in {NO_MODEL, ""}


def parse_overrides(value: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse "en=model-a,id=model-b" into {"en": "model-a", "id": "model-b"}."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(key).strip().lower(): str(model).strip() for key, model in value.items()}
    result: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        lang, separator, model = item.partition("=")
        if not separator or not lang.strip() or not model.strip():
            raise ValueError(f"expected LANG=MODEL, got {item.strip()!r}")
        result[lang.strip().lower()] = model.strip()
    return result


@dataclass(frozen=True)
class SummaryOutput:
    """One summary and how it was made."""

    text: str
    lang: str | None
    method: Method
    model: str | None  # model id for seq2seq, None for extractive
    algorithm: ExtractiveAlgorithm | None = None
    fallback_reason: str | None = None  # why a configured model was not used

    @property
    def model_key(self) -> str:
        """Identifies what produced this text: model id or "extractive:<algorithm>"."""
        if self.method is Method.SEQ2SEQ and self.model:
            return self.model
        return f"extractive:{(self.algorithm or ExtractiveAlgorithm.LEAD).value}"


@dataclass(frozen=True)
class TranslationOutput:
    """One translated text and the model(s) that made it (pivot: "a + b")."""

    text: str
    src: str
    tgt: str
    model: str
    pivot: str | None = None


class TranslationUnavailable(Exception):
    """No translation model is configured or loadable for this language pair."""
