"""Which Hub models a configuration needs, whether they are cached, and downloading them."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from summarizer.config import SummarizerConfig, is_disabled
from summarizer.models import looks_like_path

# Weights in other frameworks are never needed: transformers + torch load safetensors or .bin.
_IGNORE = ["*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*", "*.onnx", "onnx/*", "*.tflite"]


class Role(enum.StrEnum):
    """What a model is used for."""

    SUMMARY = "summary"
    TRANSLATION = "translation"


@dataclass(frozen=True)
class PlannedModel:
    """One model the configuration uses."""

    model_id: str
    role: Role
    detail: str  # the language or pair it serves
    local: bool  # a folder on disk, nothing to download


def planned_models(config: SummarizerConfig) -> list[PlannedModel]:
    """Summary models (default and per-language) and translation models between the configured languages."""
    planned: dict[str, PlannedModel] = {}

    def add(model_id: str, role: Role, detail: str) -> None:
        if is_disabled(model_id) or model_id in planned:
            return
        planned[model_id] = PlannedModel(model_id, role, detail, looks_like_path(model_id))

    add(config.summary_model, Role.SUMMARY, "default")
    for lang, model_id in sorted(config.summary_model_overrides.items()):
        add(model_id, Role.SUMMARY, lang)
    if config.translation_enabled:
        template = config.translation_model
        if "{src}" in template or "{tgt}" in template:
            for src in config.languages:
                for tgt in config.languages:
                    if src != tgt:
                        add(template.replace("{src}", src).replace("{tgt}", tgt), Role.TRANSLATION, f"{src}-{tgt}")
        else:
            add(template, Role.TRANSLATION, "all pairs")
    return list(planned.values())


def is_cached(model_id: str, cache_dir: Path | None) -> bool:
    """True when the model's config is in the local Hub cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json", cache_dir=str(cache_dir) if cache_dir else None)
    return isinstance(found, str)


def download(model_id: str, cache_dir: Path | None) -> str:
    """Download a model snapshot into the cache with progress bars; returns its folder."""
    from huggingface_hub import HfApi, snapshot_download

    endpoint = os.environ.get("HF_ENDPOINT") or None
    ignore = list(_IGNORE)
    files = HfApi(endpoint=endpoint).list_repo_files(model_id)
    if any(name.endswith(".safetensors") for name in files):
        ignore.append("*.bin")  # the same weights twice otherwise
    options: dict[str, Any] = {"ignore_patterns": ignore, "endpoint": endpoint}
    if cache_dir is not None:
        options["cache_dir"] = str(cache_dir)
    return snapshot_download(model_id, **options)
