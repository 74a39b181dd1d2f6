"""Summaries and translations of news text: seq2seq models with an extractive fallback.

Standalone: knows nothing of Telegram or the database. Importing it loads no model and no torch.
"""

from summarizer.config import (
    NO_MODEL,
    Backend,
    Method,
    Precision,
    SummarizerConfig,
    SummaryOutput,
    TranslationOutput,
    TranslationUnavailable,
    is_disabled,
    parse_overrides,
)
from summarizer.engine import Engine, EngineStats
from summarizer.extractive import ExtractiveAlgorithm, extract
from summarizer.models import ModelUnavailable

__all__ = [
    "NO_MODEL",
    "Backend",
    "Engine",
    "EngineStats",
    "ExtractiveAlgorithm",
    "Method",
    "ModelUnavailable",
    "Precision",
    "SummarizerConfig",
    "SummaryOutput",
    "TranslationOutput",
    "TranslationUnavailable",
    "extract",
    "is_disabled",
    "parse_overrides",
]
