"""Lazy, thread-safe model loading: once per process, failures remembered and reported once."""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from summarizer.config import Backend, Precision, SummarizerConfig

log = logging.getLogger(__name__)

FIX_HINT = "run `newsbot models fetch` while online (or set SUMMARY_MODEL=none / TRANSLATION_MODEL=none)"


class ModelFamily(enum.StrEnum):
    """What kind of seq2seq model was loaded; decides how languages are passed."""

    GENERIC = "generic"  # T5/mT5/BART summarizers, Marian pairs: plain text in, text out
    NLLB = "nllb"  # many-to-many, FLORES-200 codes
    M2M100 = "m2m100"  # many-to-many, ISO codes


class ModelUnavailable(Exception):
    """A model could not be loaded; the message says why and what to do."""


@dataclass
class LoadedModel:
    """A tokenizer and a model ready to generate; `runner.generate` takes and returns original token ids.

    `model` carries `config` and `generation_config`: the transformers model, or the CTranslate2 runner.
    """

    model_id: str
    tokenizer: Any
    model: Any
    runner: Any
    family: ModelFamily
    backend: Backend = Backend.TRANSFORMERS
    precision: Precision = Precision.FP32
    # One generate() at a time per model; re-entrant so a caller can also hold it while setting
    # per-call tokenizer state (NLLB/M2M100 src_lang) before generating.
    lock: threading.RLock = field(default_factory=threading.RLock)


def hub_reachable(timeout: float) -> bool:
    """Quick TCP probe of the Hub endpoint, so an unreachable Hub fails in seconds, not minutes."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy decides; let huggingface_hub try
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def env_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set in the environment."""
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def looks_like_path(model_id: str) -> bool:
    """True for ids that name a folder (absolute, ./relative, ~) rather than a Hub repository."""
    return model_id.startswith(("/", "./", "../", "~", "\\")) or Path(model_id).expanduser().is_dir()


def _family(config: Any, tokenizer: Any) -> ModelFamily:
    """Detect many-to-many translation models by tokenizer class / model type."""
    tokenizer_name = type(tokenizer).__name__.lower()
    if "nllb" in tokenizer_name:
        return ModelFamily.NLLB
    if getattr(config, "model_type", "") == "m2m_100":
        return ModelFamily.M2M100
    return ModelFamily.GENERIC


class ModelStore:
    """Loads each model id once per process; concurrent first calls wait for a single load."""

    def __init__(self, config: SummarizerConfig) -> None:
        self._config = config
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._loaded: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}
        self.loads = 0  # successful from_pretrained calls, for status and tests

    @property
    def offline(self) -> bool:
        return self._config.offline or env_offline()

    def failure(self, model_id: str) -> str | None:
        """Why this model failed to load, or None if it has not failed (yet)."""
        with self._guard:
            return self._failed.get(model_id)

    def is_loaded(self, model_id: str) -> bool:
        with self._guard:
            return model_id in self._loaded

    def loaded_ids(self) -> list[str]:
        with self._guard:
            return list(self._loaded)

    def failures(self) -> dict[str, str]:
        with self._guard:
            return dict(self._failed)

    def get(self, model_id: str, languages: Sequence[str] | None = None) -> LoadedModel:
        """The loaded model, loading it on first use; raises ModelUnavailable (remembered).

        `languages`: the output languages the model must be able to write; the first load may
        trim its output vocabulary to their scripts (summarizer.speed). None: keep it whole.
        """
        with self._guard:
            if model_id in self._loaded:
                return self._loaded[model_id]
            if model_id in self._failed:
                raise ModelUnavailable(self._failed[model_id])
            key_lock = self._key_locks.setdefault(model_id, threading.Lock())
        with key_lock:
            with self._guard:
                if model_id in self._loaded:
                    return self._loaded[model_id]
                if model_id in self._failed:
                    raise ModelUnavailable(self._failed[model_id])
            try:
                loaded = self._load(model_id, languages)
            except ModelUnavailable as error:
                self._remember_failure(model_id, str(error))
                raise
            except Exception as error:
                reason = f"cannot load model {model_id!r}: {type(error).__name__}: {str(error)[:300]}"
                self._remember_failure(model_id, reason)
                raise ModelUnavailable(reason) from error
            with self._guard:
                self._loaded[model_id] = loaded
                self.loads += 1
            return loaded

    def _remember_failure(self, model_id: str, reason: str) -> None:
        with self._guard:
            self._failed[model_id] = reason
        # Reported once: later calls find the failure and never retry or log again.
        log.warning("model %s unavailable, using the fallback: %s; to fix: %s", model_id, reason, FIX_HINT)

    def _hub_options(self) -> dict[str, Any]:
        if self._config.cache_dir is None:
            return {}
        return {"cache_dir": str(self._config.cache_dir)}

    def _fetch(self, model_id: str, load: Callable[..., Any]) -> Any:
        """`load(source, **options)` for a folder, or for a Hub id from the local cache first, then from
        the Hub when allowed and reachable (so an offline server fails in seconds, never hangs)."""
        path = Path(model_id).expanduser()
        if path.is_dir():
            return load(str(path))
        if looks_like_path(model_id):
            raise ModelUnavailable(f"model folder {model_id} does not exist")
        options = self._hub_options()
        try:
            return load(model_id, **options, local_files_only=True)
        except OSError as cache_miss:
            if self.offline:
                raise ModelUnavailable(
                    f"model {model_id} is not in the local cache and HF_HUB_OFFLINE is set"
                ) from cache_miss
            if not hub_reachable(self._config.hub_probe_timeout):
                raise ModelUnavailable(
                    f"model {model_id} is not in the local cache and the Hugging Face Hub is unreachable"
                ) from cache_miss
            log.info("downloading %s of model %s", getattr(load, "__qualname__", "files"), model_id)
            return load(model_id, **options)

    def _load(self, model_id: str, languages: Sequence[str] | None) -> LoadedModel:
        from transformers import AutoTokenizer

        from summarizer.ct2 import resolve

        tokenizer = self._fetch(model_id, AutoTokenizer.from_pretrained)
        backend, precision = resolve(self._config.backend, self._config.precision)
        if backend is Backend.CTRANSLATE2:
            return self._load_ctranslate2(model_id, tokenizer, languages, precision)
        return self._load_transformers(model_id, tokenizer, languages, precision)

    def _load_transformers(self, model_id: str, tokenizer: Any, languages: Sequence[str] | None,
                           precision: Precision, model: Any = None) -> LoadedModel:
        """The model run by torch through summarizer.speed.accelerate (`model`: already loaded)."""
        from transformers import AutoModelForSeq2SeqLM

        from summarizer.speed import accelerate

        if model is None:
            model = self._fetch(model_id, AutoModelForSeq2SeqLM.from_pretrained)
        model.eval()
        family = _family(model.config, tokenizer)
        # Many-to-many models select the target by a language token: keep their whole vocabulary.
        runner = accelerate(model, tokenizer, precision=precision.value,
                            languages=self._trim_languages(languages, family), threads=self._config.threads)
        log.info("loaded model %s (transformers, %s)", model_id, runner.precision.value)
        return LoadedModel(model_id, tokenizer, model, runner, family, Backend.TRANSFORMERS, runner.precision)

    @staticmethod
    def _trim_languages(languages: Sequence[str] | None, family: ModelFamily) -> list[str] | None:
        return list(languages) if languages and family is ModelFamily.GENERIC else None

    def _load_ctranslate2(self, model_id: str, tokenizer: Any, languages: Sequence[str] | None,
                          precision: Precision) -> LoadedModel:
        """The model's stored CTranslate2 conversion, converting it first when there is none yet."""
        import shutil

        from transformers import AutoConfig, AutoModelForSeq2SeqLM, GenerationConfig

        from summarizer import ct2
        from summarizer.speed import (
            VocabMap,
            kept_token_ids,
            release_freed_memory,
            special_token_ids,
        )

        if not ct2.installed():
            raise ModelUnavailable("MODEL_BACKEND=ctranslate2 needs the ctranslate2 package: pip install ctranslate2")
        config = self._fetch(model_id, AutoConfig.from_pretrained)
        try:
            generation_config = self._fetch(model_id, GenerationConfig.from_pretrained)
        except (OSError, ModelUnavailable):
            generation_config = GenerationConfig.from_model_config(config)
        family = _family(config, tokenizer)
        vocab_size = getattr(config, "decoder_vocab_size", None) or config.vocab_size
        trim = self._trim_languages(languages, family)
        keep = None
        if trim:
            keep = kept_token_ids(tokenizer, trim, vocab_size, special_token_ids(config, generation_config))
        root = ct2.conversions_root(self._config.cache_dir)
        identity = ct2.source_identity(model_id, self._config.cache_dir)
        folder = ct2.conversion_dir(root, model_id, identity, precision, keep) if identity else None
        temporary = False
        if folder is None or not ct2.is_converted(folder):
            model = self._fetch(model_id, AutoModelForSeq2SeqLM.from_pretrained).eval()
            identity = identity or ct2.source_identity(model_id, self._config.cache_dir)
            target = ct2.conversion_dir(root, model_id, identity or f"unidentified:{model_id}", precision, keep)
            log.info("converting model %s for CTranslate2 (%s%s), once", model_id, precision.value,
                     f", {len(keep)} of {vocab_size} output tokens" if keep else "")
            try:
                folder = ct2.store_conversion(model, tokenizer, target, precision, keep)
            except ct2.ConversionUnsupported as error:
                if self._config.backend is Backend.CTRANSLATE2:
                    raise ModelUnavailable(f"{error} (MODEL_BACKEND=ctranslate2; try transformers)") from error
                log.info("model %s: %s; running it with transformers", model_id, error)
                _, fallback = ct2.resolve(Backend.TRANSFORMERS, self._config.precision)
                return self._load_transformers(model_id, tokenizer, languages, fallback, model)
            temporary = folder != target
            del model
            release_freed_memory()
        try:
            runner = ct2.CTranslate2Runner(folder, tokenizer, config, generation_config, precision,
                                           self._config.threads, VocabMap(keep, vocab_size) if keep else None)
        finally:
            if temporary:
                shutil.rmtree(folder.parent, ignore_errors=True)
        log.info("loaded model %s (ctranslate2, %s, %dx%d replicas x threads) from %s", model_id, precision.value,
                 runner.layout.replicas, runner.layout.intra, folder)
        return LoadedModel(model_id, tokenizer, runner, runner, family, Backend.CTRANSLATE2, precision)
