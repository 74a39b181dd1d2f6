"""The summarizer engine: batched seq2seq summaries and translations with an extractive fallback."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from summarizer.config import (
    Method,
    SummarizerConfig,
    SummaryOutput,
    TranslationOutput,
    TranslationUnavailable,
    is_disabled,
)
from summarizer.extractive import extract
from summarizer.langcodes import nllb_code
from summarizer.models import LoadedModel, ModelFamily, ModelStore, ModelUnavailable
from summarizer.priority import LowPriorityThreads
from summarizer.text import clean_whitespace, split_sentences, strip_datelines, tidy_generated, truncate_to_budget

log = logging.getLogger(__name__)

TRANSLATION_NO_REPEAT_NGRAM = 4  # looser than for summaries: translations may repeat short phrases


@dataclass
class EngineStats:
    """Counters of work done, for the status line, metrics and tests."""

    seq2seq_summaries: int = 0
    extractive_summaries: int = 0
    translations: int = 0
    generate_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)


def _is_template(model: str) -> bool:
    return "{src}" in model or "{tgt}" in model


class Engine:
    """Summarizes and translates batches of texts; models load lazily, once, on first use."""

    def __init__(self, config: SummarizerConfig) -> None:
        self.config = config
        self.models = ModelStore(config)
        self.stats = EngineStats()
        # Loading and generating run here: models and their own threads stay below the
        # conversation's priority (summarizer/priority.py).
        self.model_threads = LowPriorityThreads(config.niceness)

    def close(self) -> None:
        """Stop the model threads (after running calls return)."""
        self.model_threads.close()

    # --- summaries ------------------------------------------------------------------------

    def summary_key(self, lang: str | None) -> str:
        """The model key a summary in this language will be stored under, without loading anything."""
        model_id = self.config.summary_model_for(lang)
        if is_disabled(model_id) or self.models.failure(model_id) is not None:
            return self.config.extractive_key()
        if self.models.is_loaded(model_id) and not self._can_write(self.models.get(model_id), lang):
            return self.config.extractive_key()
        return model_id

    def summarize(self, text: str, lang: str | None = None) -> SummaryOutput:
        """One summary (see summarize_batch)."""
        return self.summarize_batch([text], [lang])[0]

    def summarize_batch(self, texts: Sequence[str], langs: Sequence[str | None]) -> list[SummaryOutput]:
        """Summaries of texts in the same order, batched per model; extractive when no model works."""
        return self.model_threads.call(self._summarize_batch, texts, langs)

    def _summarize_batch(self, texts: Sequence[str], langs: Sequence[str | None]) -> list[SummaryOutput]:
        if len(texts) != len(langs):
            raise ValueError("texts and langs must have the same length")
        results: list[SummaryOutput | None] = [None] * len(texts)
        groups: dict[str, list[int]] = {}
        for index, (text, lang) in enumerate(zip(texts, langs, strict=True)):
            model_id = self.config.summary_model_for(lang)
            if is_disabled(model_id) or not clean_whitespace(text):
                results[index] = self._extractive(text, lang, None)
            else:
                groups.setdefault(model_id, []).append(index)
        for model_id, indices in groups.items():
            try:
                loaded = self.models.get(model_id, self.config.languages)
            except ModelUnavailable as error:
                for index in indices:
                    results[index] = self._extractive(texts[index], langs[index], str(error))
                continue
            writable = []
            for index in indices:
                if self._can_write(loaded, langs[index]):
                    writable.append(index)
                else:
                    reason = (
                        f"{model_id} was trimmed to the scripts of MODEL_LANGUAGES "
                        f"({','.join(self.config.languages)}) and cannot write {langs[index]}"
                    )
                    results[index] = self._extractive(texts[index], langs[index], reason)
            indices = writable
            # Similar lengths in one batch waste less padding.
            indices.sort(key=lambda index: len(texts[index]))
            for start in range(0, len(indices), self.config.batch_size):
                chunk = indices[start : start + self.config.batch_size]
                try:
                    generated = self._generate_summaries(loaded, [texts[index] for index in chunk])
                except Exception as error:
                    log.warning("summary model %s failed on a batch, using the fallback: %r", model_id, error)
                    reason = f"model {model_id} failed: {type(error).__name__}: {str(error)[:200]}"
                    for index in chunk:
                        results[index] = self._extractive(texts[index], langs[index], reason)
                    continue
                for index, summary in zip(chunk, generated, strict=True):
                    if summary:
                        results[index] = SummaryOutput(summary, langs[index], Method.SEQ2SEQ, model_id)
                        self.stats.add("seq2seq_summaries")
                    else:
                        results[index] = self._extractive(
                            texts[index], langs[index], f"model {model_id} produced an empty summary"
                        )
        return [result for result in results if result is not None]

    def _can_write(self, loaded: LoadedModel, lang: str | None) -> bool:
        """False when the model's output vocabulary was trimmed to scripts that exclude `lang`."""
        if lang is None or getattr(loaded.runner, "vocab_map", None) is None:
            return True
        from summarizer.speed import scripts_for

        needed, kept = scripts_for([lang]), scripts_for(self.config.languages)
        return needed is not None and kept is not None and set(needed) <= set(kept)

    def _extractive(self, text: str, lang: str | None, reason: str | None) -> SummaryOutput:
        self.stats.add("extractive_summaries")
        summary = extract(strip_datelines(text), self.config.sentences, self.config.extractive_algorithm)
        return SummaryOutput(
            summary, lang, Method.EXTRACTIVE, None, self.config.extractive_algorithm, fallback_reason=reason
        )

    def prepare_input(self, tokenizer: Any, text: str) -> str:
        """Whole sentences from the start of the text (its dateline cut) that fit SUMMARY_MAX_INPUT_TOKENS."""
        sentences = split_sentences(strip_datelines(text))
        budget = self.config.max_input_tokens - 2  # room for special tokens

        def count(sentence: str) -> int:
            return len(tokenizer(sentence, add_special_tokens=False)["input_ids"])

        return truncate_to_budget(sentences, count, budget)

    def _summary_generate_kwargs(self, loaded: LoadedModel) -> dict[str, Any]:
        """Beam, length and repetition settings; the model's own tuned values win where it has them."""
        config = self.config
        model_defaults = getattr(loaded.model, "generation_config", None)
        kwargs: dict[str, Any] = {
            "num_beams": config.num_beams,
            "max_new_tokens": config.max_new_tokens,
            "do_sample": False,
        }
        if not getattr(model_defaults, "no_repeat_ngram_size", 0):
            kwargs["no_repeat_ngram_size"] = config.no_repeat_ngram_size
        if config.num_beams > 1:
            kwargs["early_stopping"] = True
            if config.length_penalty is not None:
                kwargs["length_penalty"] = config.length_penalty
        if config.min_new_tokens:
            kwargs["min_new_tokens"] = config.min_new_tokens
        return kwargs

    def _generate_summaries(self, loaded: LoadedModel, texts: Sequence[str]) -> list[str]:
        prepared = [self.prepare_input(loaded.tokenizer, text) for text in texts]
        decoded = self._generate(
            loaded, prepared, self._summary_generate_kwargs(loaded), self.config.max_input_tokens
        )
        return [tidy_generated(text) for text in decoded]

    def _generate(
        self,
        loaded: LoadedModel,
        texts: Sequence[str],
        kwargs: dict[str, Any],
        max_length: int,
        caps: Sequence[int] | None = None,
    ) -> list[str]:
        """Tokenize with right padding, generate without gradients, decode (each cut to its cap)."""
        import torch

        with loaded.lock, torch.inference_mode():
            batch = loaded.tokenizer(
                list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_length
            )
            output = loaded.runner.generate(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs
            )
            self.stats.add("generate_calls")
            sequences = [row.tolist() for row in output]
            if caps is not None:
                # Sequences start with the decoder start token, then the new tokens.
                sequences = [sequence[: cap + 1] for sequence, cap in zip(sequences, caps, strict=True)]
            return [
                clean_whitespace(text)
                for text in loaded.tokenizer.batch_decode(sequences, skip_special_tokens=True)
            ]

    # --- translation ----------------------------------------------------------------------

    def _fill(self, src: str, tgt: str) -> str:
        return self.config.translation_model.replace("{src}", src).replace("{tgt}", tgt)

    def _routes(self, src: str, tgt: str) -> list[list[str]]:
        """Model chains to try for a pair: direct first, then through the pivot language."""
        model = self.config.translation_model
        if not _is_template(model):
            return [[model]]
        routes = [[self._fill(src, tgt)]]
        pivot = self.config.pivot_language
        if pivot not in (src, tgt):
            routes.append([self._fill(src, pivot), self._fill(pivot, tgt)])
        return routes

    def _translation_languages(self, tgt: str) -> list[str] | None:
        """Output languages of a translation model: its pair's target when a template names it."""
        return [tgt] if _is_template(self.config.translation_model) else None

    def translation_key(self, src: str, tgt: str) -> str | None:
        """The model key a translation will be stored under, or None when known to be unavailable."""
        if not self.config.translation_enabled or src == tgt:
            return None
        for route in self._routes(src, tgt):
            if all(self.models.failure(model_id) is None for model_id in route):
                return " + ".join(route)
        return None

    def translate(self, text: str, src: str, tgt: str) -> TranslationOutput:
        """One translation (see translate_batch)."""
        return self.translate_batch([text], src, tgt)[0]

    def translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[TranslationOutput]:
        """Translations from src to tgt in order; raises TranslationUnavailable when no model works."""
        return self.model_threads.call(self._translate_batch, texts, src, tgt)

    def _translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[TranslationOutput]:
        if not self.config.translation_enabled:
            raise TranslationUnavailable("translation is disabled (TRANSLATION_MODEL=none)")
        if src == tgt:
            return [TranslationOutput(text, src, tgt, "identity") for text in texts]
        reasons: list[str] = []
        for route in self._routes(src, tgt):
            hops = [src, *([self.config.pivot_language] if len(route) > 1 else []), tgt]
            try:
                loaded = [
                    self.models.get(model_id, self._translation_languages(hops[step + 1]))
                    for step, model_id in enumerate(route)
                ]
            except ModelUnavailable as error:
                reasons.append(str(error))
                continue
            current = list(texts)
            try:
                for step, model in enumerate(loaded):
                    current = self._translate_with(model, current, hops[step], hops[step + 1])
            except TranslationUnavailable:
                raise
            except Exception as error:
                log.warning("translation %s->%s failed: %r", src, tgt, error)
                raise TranslationUnavailable(f"translation {src}->{tgt} failed: {type(error).__name__}") from error
            self.stats.add("translations", len(texts))
            pivot = self.config.pivot_language if len(route) > 1 else None
            return [TranslationOutput(text, src, tgt, " + ".join(route), pivot) for text in current]
        raise TranslationUnavailable(f"no translation model for {src}->{tgt}: " + "; ".join(reasons))

    def _translate_with(self, loaded: LoadedModel, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        kwargs: dict[str, Any] = {
            "num_beams": self.config.translation_num_beams,
            "no_repeat_ngram_size": TRANSLATION_NO_REPEAT_NGRAM,
            "do_sample": False,
        }
        with loaded.lock:  # src_lang is tokenizer state shared by all callers of this model
            return self._translate_locked(loaded, texts, src, tgt, kwargs)

    def _translate_locked(
        self, loaded: LoadedModel, texts: Sequence[str], src: str, tgt: str, kwargs: dict[str, Any]
    ) -> list[str]:
        tokenizer = loaded.tokenizer
        if loaded.family is ModelFamily.NLLB:
            src_code, tgt_code = nllb_code(src), nllb_code(tgt)
            if src_code is None or tgt_code is None:
                raise TranslationUnavailable(f"{loaded.model_id} has no code for {src} or {tgt}")
            tokenizer.src_lang = src_code
            kwargs["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(tgt_code)
        elif loaded.family is ModelFamily.M2M100:
            try:
                tokenizer.src_lang = src
                kwargs["forced_bos_token_id"] = tokenizer.get_lang_id(tgt)
            except (KeyError, ValueError) as error:
                raise TranslationUnavailable(f"{loaded.model_id} does not know {src} or {tgt}") from error
        results: list[str] = ["" for _ in texts]
        order = sorted((index for index, text in enumerate(texts) if text.strip()), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.config.batch_size):
            chunk = order[start : start + self.config.batch_size]
            # A translation is rarely more than twice as long as its source: bound runaway output,
            # per text (cut after generation), so a batch gives what one-by-one calls give.
            caps = [
                min(self.config.translation_max_new_tokens, 2 * len(tokenizer(texts[index])["input_ids"]) + 8)
                for index in chunk
            ]
            kwargs["max_new_tokens"] = max(caps)
            outputs = self._generate(
                loaded, [texts[index] for index in chunk], kwargs, self.config.max_input_tokens, caps
            )
            for index, text in zip(chunk, outputs, strict=True):
                results[index] = text
        return results

    # --- status ---------------------------------------------------------------------------

    def preload(self, only: Collection[str] | None = None) -> list[str]:
        """Load every configured model now (workers call it at start); returns the ones that failed.

        `only`: load just these of the configured models.
        """
        return self.model_threads.call(self._preload, only)

    def _preload(self, only: Collection[str] | None) -> list[str]:
        from summarizer.fetch import Role, planned_models

        failed = []
        for planned in planned_models(self.config):
            if only is not None and planned.model_id not in only:
                continue
            if planned.role is Role.SUMMARY:
                languages: Sequence[str] | None = self.config.languages
            else:
                languages = self._translation_languages(planned.detail.rpartition("-")[2])
            try:
                self.models.get(planned.model_id, languages)
            except ModelUnavailable:
                failed.append(planned.model_id)
        return failed


    def status_line(self) -> str:
        """One line: which models are loaded, pending or failed, and what the fallback is."""
        parts: list[str] = []
        summary_models = {self.config.summary_model, *self.config.summary_model_overrides.values()}
        for model_id in sorted(summary_models):
            parts.append(f"summary {self._describe(model_id)}")
        if self.config.translation_enabled:
            loaded = [m for m in self.models.loaded_ids() if m not in summary_models]
            failed = [m for m in self.models.failures() if m not in summary_models]
            detail = f"translation {self.config.translation_model}"
            if loaded:
                detail += f" (loaded: {', '.join(loaded)})"
            if failed:
                detail += f" (unavailable: {', '.join(failed)})"
            parts.append(detail)
        else:
            parts.append("translation off")
        return "; ".join(parts)

    def _describe(self, model_id: str) -> str:
        fallback = self.config.extractive_key()
        if is_disabled(model_id):
            return f"none ({fallback})"
        reason = self.models.failure(model_id)
        if reason is not None:
            return f"{model_id} unavailable, using {fallback}: {reason}"
        if self.models.is_loaded(model_id):
            loaded = self.models.get(model_id)
            return f"{model_id} loaded ({loaded.backend.value}, {loaded.precision.value})"
        return f"{model_id} (loads on first use)"
