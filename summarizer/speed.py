"""Inference speed-ups for seq2seq models on CPU: precision (fp32, bf16, int8), thread count, and
trimming the output vocabulary to the scripts of the configured languages.

`accelerate(model, tokenizer, precision=..., languages=...)` returns an `Accelerated` wrapper whose
`generate` returns token ids in the tokenizer's original vocabulary, so callers decode as usual.
"""

from __future__ import annotations

import copy
import logging
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from summarizer.config import Precision

if TYPE_CHECKING:
    import torch
    from transformers import GenerationMixin, PreTrainedModel

log = logging.getLogger(__name__)

# Words of Unicode character names that identify each language's script. Languages missing here
# are not trimmed (the full vocabulary stays).
LATIN = ("LATIN",)
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    **{code: LATIN for code in (
        "id", "en", "ms", "jv", "su", "tl", "vi", "fr", "de", "es", "pt", "it", "nl", "tr", "pl", "sw",
        "ro", "cs", "sk", "hu", "fi", "sv", "da", "no", "nb", "et", "lv", "lt", "hr", "sl", "sq", "az",
        "uz", "so", "ha", "yo", "ig", "ga", "cy", "eu", "ca", "gl", "af", "mt", "is", "eo", "la")},
    **{code: ("CYRILLIC",) for code in ("ru", "uk", "bg", "mk", "be", "kk", "ky", "mn", "tg")},
    "sr": ("CYRILLIC", "LATIN"),
    **{code: ("ARABIC",) for code in ("ar", "fa", "ur", "ps")},
    "el": ("GREEK",),
    "he": ("HEBREW",),
    **{code: ("DEVANAGARI",) for code in ("hi", "mr", "ne")},
    "bn": ("BENGALI",),
    "ta": ("TAMIL",),
    "te": ("TELUGU",),
    "th": ("THAI",),
    "my": ("MYANMAR",),
    "km": ("KHMER",),
    "ko": ("HANGUL",),
    "zh": ("CJK",),
    "ja": ("CJK", "HIRAGANA", "KATAKANA"),
}
# Token-id generation arguments that must be moved into the trimmed vocabulary.
_SINGLE_ID_KEYS = ("decoder_start_token_id", "bos_token_id", "forced_bos_token_id", "forced_eos_token_id")
_ID_OR_LIST_KEYS = ("eos_token_id", "pad_token_id")
_ID_LIST_KEYS = ("suppress_tokens", "begin_suppress_tokens")
_ID_LISTS_KEYS = ("bad_words_ids",)
_UNSUPPORTED_WHEN_TRIMMED = ("force_words_ids", "prefix_allowed_tokens_fn", "sequence_bias", "decoder_input_ids")


class Allocator(StrEnum):
    """Memory allocator preloaded into a process that runs models (MODEL_ALLOCATOR)."""

    AUTO = "auto"  # tcmalloc, else jemalloc, else the system's
    TCMALLOC = "tcmalloc"
    JEMALLOC = "jemalloc"
    SYSTEM = "system"  # glibc malloc, no re-exec


ALLOCATOR_LIBRARIES: dict[Allocator, tuple[str, ...]] = {
    Allocator.TCMALLOC: ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    Allocator.JEMALLOC: ("libjemalloc.so.2",),
}
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                "/usr/local/lib")
# Set in the re-executed process so it never re-executes again.
RUNTIME_MARKER = "NEWSBOT_RUNTIME_READY"


def find_allocator(choice: Allocator | str, dirs: Sequence[str] = LIBRARY_DIRS) -> str | None:
    """Path of the shared library for an allocator choice, None for `system` or when not installed."""
    import os

    wanted = Allocator(choice)
    order = [Allocator.TCMALLOC, Allocator.JEMALLOC] if wanted is Allocator.AUTO else [wanted]
    for allocator in order:
        for name in ALLOCATOR_LIBRARIES.get(allocator, ()):
            for folder in dirs:
                path = os.path.join(folder, name)
                if os.path.exists(path):
                    return path
    return None


def runtime_environment(allocator: Allocator | str, environ: dict[str, str],
                        dirs: Sequence[str] = LIBRARY_DIRS) -> dict[str, str] | None:
    """The environment a model-running process should restart with, or None when it needs no restart.

    Preloads the allocator (tcmalloc halves the cost of beam search's many large allocations) and
    makes idle OpenMP threads sleep instead of spin (OMP_WAIT_POLICY=PASSIVE): on a busy CPU spinning
    threads made generation several times slower. Both must be set before the process starts.
    """
    if environ.get(RUNTIME_MARKER):
        return None
    env = dict(environ)
    changed = False
    library = find_allocator(allocator, dirs)
    if library and library not in env.get("LD_PRELOAD", "").split(":"):
        env["LD_PRELOAD"] = ":".join(part for part in (library, env.get("LD_PRELOAD", "")) if part)
        changed = True
    if "OMP_WAIT_POLICY" not in env:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        changed = True
    if not changed:
        return None
    env[RUNTIME_MARKER] = "1"
    return env


def reexec_with_runtime(allocator: Allocator | str) -> None:
    """Restart this Python process with `runtime_environment` when it differs; returns if not needed."""
    import os
    import sys

    env = runtime_environment(allocator, dict(os.environ))
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


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
    """Dynamic int8 quantization of every Linear layer, in place (weights int8, activations per batch)."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which is not installed here.
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def bf16_embedding(embedding: torch.nn.Embedding) -> torch.nn.Module:
    """A module with the same lookups as `embedding`, its table kept in bf16, returning float32."""
    import torch

    class Bf16Embedding(torch.nn.Module):
        """Embedding table stored in bf16 (half of fp32's memory); lookups come back as float32."""

        def __init__(self, weight: torch.Tensor, padding_idx: int | None) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(weight.detach().to(torch.bfloat16), requires_grad=False)
            self.padding_idx = padding_idx
            self.num_embeddings, self.embedding_dim = weight.shape

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.embedding(ids, self.weight).float()

    return Bf16Embedding(embedding.weight, embedding.padding_idx)


def compact_embeddings(model: PreTrainedModel, min_rows: int = 1000) -> int:
    """Store every large plain token-embedding table in bf16 (tied tables stay shared); returns how many."""
    import torch

    replaced: dict[int, torch.nn.Module] = {}
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            # Exact type only: subclasses (sinusoidal positions, scaled embeddings) compute differently.
            if type(child) is torch.nn.Embedding and child.num_embeddings >= min_rows:
                key = child.weight.data_ptr()
                if key not in replaced:
                    replaced[key] = bf16_embedding(child)
                setattr(parent, name, replaced[key])
    return len(replaced)


# --- vocabulary trimming ---------------------------------------------------------------------


def _char_in_scripts(char: str, scripts: tuple[str, ...]) -> bool:
    if char.isascii():
        return True
    category = unicodedata.category(char)
    if category[0] in "PSZ":  # punctuation, symbols and spaces are shared across scripts
        return True
    if category[0] == "M" and 0x300 <= ord(char) < 0x370:  # generic combining accents
        return True
    name = unicodedata.name(char, "")
    return any(word in name for word in scripts)


def piece_in_scripts(piece: str, scripts: tuple[str, ...]) -> bool:
    """Whether a SentencePiece piece is written only in these scripts (plus ASCII, punctuation, symbols)."""
    return all(_char_in_scripts(char, scripts) for char in piece.replace("\u2581", ""))


def scripts_for(languages: Iterable[str]) -> tuple[str, ...] | None:
    """The Unicode script words for these language codes, or None when one is unknown."""
    words: list[str] = []
    for language in languages:
        code = language.strip().lower().split("-")[0].split("_")[0]
        if code not in LANGUAGE_SCRIPTS:
            return None
        words.extend(word for word in LANGUAGE_SCRIPTS[code] if word not in words)
    return tuple(words) or None


def kept_token_ids(tokenizer: Any, languages: Sequence[str], vocab_size: int,
                   always: Iterable[int] = ()) -> list[int] | None:
    """Sorted ids of the tokenizer pieces written in the languages' scripts, plus every special token.

    None when trimming does not apply: unknown language, byte-level BPE pieces, or nothing to drop.
    """
    scripts = scripts_for(languages)
    if scripts is None or tokenizer is None:
        return None
    size = min(len(tokenizer), vocab_size)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    if any(isinstance(piece, str) and piece.startswith("\u0120") for piece in pieces[:5000]):
        return None  # byte-level BPE: pieces are byte codes, not script text
    keep = {index for index, piece in enumerate(pieces) if isinstance(piece, str) and piece_in_scripts(piece, scripts)}
    keep |= {i for i in getattr(tokenizer, "all_special_ids", []) if 0 <= i < vocab_size}
    keep |= {i for i in always if isinstance(i, int) and 0 <= i < vocab_size}
    if len(keep) >= vocab_size:
        return None
    return sorted(keep)


class VocabMap:
    """Maps ids between the original vocabulary and the kept (trimmed) one."""

    def __init__(self, keep: Sequence[int], original_size: int) -> None:
        import torch

        self.keep = torch.tensor(list(keep), dtype=torch.long)  # trimmed id -> original id
        self.original_size = original_size
        self._to_new = {int(orig): new for new, orig in enumerate(self.keep.tolist())}

    def __len__(self) -> int:
        return len(self._to_new)

    def new_id(self, original: int) -> int | None:
        """The trimmed id of an original id, None when it was dropped."""
        return self._to_new.get(int(original))

    def to_original(self, ids: torch.Tensor) -> torch.Tensor:
        """Trimmed ids (any shape) back to original ids."""
        return self.keep[ids]

    def remap_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Generation arguments with their token ids moved into the trimmed vocabulary."""
        unsupported = [key for key in _UNSUPPORTED_WHEN_TRIMMED if kwargs.get(key) is not None]
        if unsupported:
            raise ValueError(f"{', '.join(unsupported)} cannot be used with a trimmed vocabulary")
        out = dict(kwargs)
        for key in (*_SINGLE_ID_KEYS, *_ID_OR_LIST_KEYS, *_ID_LIST_KEYS, *_ID_LISTS_KEYS):
            if out.get(key) is not None:
                out[key] = self._remap_value(key, out[key])
        if out.get("generation_config") is not None:
            out["generation_config"] = self.remap_generation_config(out["generation_config"])
        return out

    def remap_generation_config(self, config: Any) -> Any:
        """A copy of a GenerationConfig (or model config) with token ids in the trimmed vocabulary."""
        config = copy.deepcopy(config)
        for key in (*_SINGLE_ID_KEYS, *_ID_OR_LIST_KEYS, *_ID_LIST_KEYS, *_ID_LISTS_KEYS):
            value = getattr(config, key, None)
            if value is not None:
                setattr(config, key, self._remap_value(key, value))
        return config

    def _required(self, key: str, original: int) -> int:
        new = self.new_id(original)
        if new is None:
            raise ValueError(f"{key}={original} is not in the trimmed vocabulary")
        return new

    def _remap_value(self, key: str, value: Any) -> Any:
        if key in _ID_LISTS_KEYS:
            # A banned sequence with a dropped token can never be generated: leave it out.
            kept = [[self.new_id(i) for i in seq] for seq in value]
            return [list(seq) for seq in kept if all(i is not None for i in seq)] or None
        if key in _ID_LIST_KEYS or (key in _ID_OR_LIST_KEYS and isinstance(value, (list, tuple))):
            if key in _ID_LIST_KEYS:
                return [n for n in (self.new_id(i) for i in value) if n is not None] or None
            return [self._required(key, i) for i in value]
        if hasattr(value, "tolist"):
            value = value.tolist()
            if isinstance(value, list):
                return [self._required(key, i) for i in value]
        return self._required(key, int(value))


def trim_vocabulary(model: PreTrainedModel, keep: Sequence[int]) -> VocabMap:
    """Cut the decoder's input embedding and output layer to the kept ids, in place.

    The encoder keeps its full embedding: articles may contain any token, only outputs are limited.
    """
    import torch

    output = model.get_output_embeddings()
    decoder = model.get_decoder()
    if output is None or decoder is None or not hasattr(decoder, "embed_tokens"):
        raise ValueError(f"{type(model).__name__} has no decoder embedding and output layer to trim")
    vocab_map = VocabMap(keep, output.weight.shape[0])
    index = vocab_map.keep
    with torch.no_grad():
        head = torch.nn.Linear(output.in_features, len(index), bias=output.bias is not None,
                               dtype=output.weight.dtype)
        head.weight.copy_(output.weight[index])
        if output.bias is not None:
            head.bias.copy_(output.bias[index])
        model.set_output_embeddings(head)
        old = decoder.embed_tokens
        padding = vocab_map.new_id(old.padding_idx) if old.padding_idx is not None else None
        embed = copy.copy(old)  # same class and settings (e.g. a scaled-embedding subclass's embed_scale)
        embed._parameters = {"weight": torch.nn.Parameter(old.weight[index].clone(), requires_grad=False)}
        embed.num_embeddings, embed.padding_idx = len(index), padding
        decoder.embed_tokens = embed
        bias = getattr(model, "final_logits_bias", None)
        if isinstance(bias, torch.Tensor):
            model.final_logits_bias = bias[..., index].clone()  # Marian, BART, mBART
    model.generation_config = vocab_map.remap_generation_config(model.generation_config)
    for key in (*_SINGLE_ID_KEYS, *_ID_OR_LIST_KEYS):
        value = getattr(model.config, key, None)
        if isinstance(value, int) and vocab_map.new_id(value) is not None:
            setattr(model.config, key, vocab_map.new_id(value))
    return vocab_map


# --- beam search without copying cross-attention keys and values ------------------------------


def cache_argument() -> str:
    """The name under which this transformers version's generate() takes a cache object."""
    try:
        from transformers.generation.utils import ALL_CACHE_NAMES  # transformers 5
    except ImportError:
        return "past_key_values"
    return str(ALL_CACHE_NAMES[0])


def beam_shared_cross_cache(model: PreTrainedModel) -> Any:
    """An encoder-decoder cache whose beam reordering leaves the cross-attention part alone.

    Beams of one input share identical cross-attention keys and values (they come from the same
    encoder output), and beam search only reorders beams within an input, so re-indexing them each
    step, as transformers does, copies ~150 MB per step for mT5-base (beam 4, 512 tokens) for nothing.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    class SharedCrossAttentionCache(EncoderDecoderCache):
        """EncoderDecoderCache that reorders only self-attention entries between beam steps."""

        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            self.self_attention_cache.reorder_cache(beam_idx)

    config = model.config.get_text_config(decoder=True)
    return SharedCrossAttentionCache(DynamicCache(config=config), DynamicCache(config=config))


class Accelerated:
    """A seq2seq model prepared for fast CPU inference; mirrors the wrapped HF model in original ids."""

    def __init__(self, model: PreTrainedModel, tokenizer: Any, precision: Precision,
                 vocab_map: VocabMap | None = None, original_config: Any = None,
                 original_generation_config: Any = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.precision = precision
        self.vocab_map = vocab_map
        self._config = original_config if original_config is not None else model.config
        self._generation_config = (
            original_generation_config if original_generation_config is not None else model.generation_config
        )

    @property
    def config(self) -> Any:
        """The model's config, token ids in the original vocabulary."""
        return self._config

    @property
    def generation_config(self) -> Any:
        """The model's generation config, token ids in the original vocabulary."""
        return self._generation_config

    @property
    def device(self) -> torch.device:
        """The device the model runs on (always CPU here)."""
        return self.model.device

    @property
    def _generative(self) -> GenerationMixin:
        """The model's generate(): seq2seq model classes mix GenerationMixin in; PreTrainedModel itself does not."""
        return cast("GenerationMixin", self.model)

    @property
    def output_vocab_size(self) -> int:
        """How many tokens generation chooses from (smaller than the vocabulary when trimmed)."""
        return len(self.vocab_map) if self.vocab_map is not None else self.model.get_output_embeddings().out_features

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 **gen_kwargs: Any) -> torch.Tensor:
        """Generate token ids (original vocabulary) for a batch of encoded inputs."""
        import torch

        kwargs = dict(gen_kwargs)
        cache_key = cache_argument()
        if self.model.config.is_encoder_decoder and kwargs.get("use_cache", True) and kwargs.get(cache_key) is None:
            kwargs[cache_key] = beam_shared_cross_cache(self.model)
        if self.vocab_map is None:
            with torch.inference_mode():
                return self._generative.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if attention_mask is None:
            # generate would guess padding from the (trimmed) pad id; the inputs use original ids.
            pad = self._config.pad_token_id
            attention_mask = (input_ids != pad).long() if pad is not None else torch.ones_like(input_ids)
        kwargs = self.vocab_map.remap_kwargs(kwargs)
        with torch.inference_mode():
            output = self._generative.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if isinstance(output, torch.Tensor):
            return self.vocab_map.to_original(output)
        output.sequences = self.vocab_map.to_original(output.sequences)  # dict-style output
        return output

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper: fall through to the HF model.
        if name in {"model", "tokenizer", "precision", "vocab_map", "_config", "_generation_config"}:
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        trimmed = f", output_vocab={len(self.vocab_map)}" if self.vocab_map is not None else ""
        return f"Accelerated({type(self.model).__name__}, precision={self.precision.value}{trimmed})"


def special_token_ids(config: Any, generation_config: Any) -> set[int]:
    """Every start, end, pad and forced token id the configs name (kept when trimming)."""
    ids: set[int] = set()
    for source in (config, generation_config):
        for key in (*_SINGLE_ID_KEYS, *_ID_OR_LIST_KEYS):
            value = getattr(source, key, None)
            values = value if isinstance(value, (list, tuple)) else [value]
            ids |= {v for v in values if isinstance(v, int)}
    return ids


def accelerate(model: PreTrainedModel, tokenizer: Any, *, precision: str = "bf16",
               languages: Sequence[str] | None = None, threads: int = 0) -> Accelerated:
    """Prepare a loaded HF seq2seq model for fast CPU generation; output ids stay in the original vocabulary.

    Changes `model` in place (precision, trimmed output layer): use the returned wrapper from then on.
    """
    import torch

    chosen = parse_precision(precision)
    if chosen is Precision.AUTO:
        chosen = Precision.BF16
    if chosen is Precision.BF16 and not bf16_supported():
        # Without avx512_bf16/AMX, bf16 matrix products are emulated and slower than fp32.
        log.warning("this CPU has no native bf16; MODEL_PRECISION=bf16 runs as fp32 (int8 may be faster)")
        chosen = Precision.FP32
    if threads > 0:
        torch.set_num_threads(threads)
    model.eval()
    original_config = copy.deepcopy(model.config)
    original_generation = copy.deepcopy(model.generation_config)
    vocab_map = None
    if languages:
        vocab_size = model.get_output_embeddings().weight.shape[0]
        keep = kept_token_ids(tokenizer, languages, vocab_size, special_token_ids(model.config, model.generation_config))
        if keep is not None:
            vocab_map = trim_vocabulary(model, keep)
            log.info("output vocabulary trimmed to %d of %d tokens for %s", len(keep), vocab_size,
                     ",".join(languages))
    if chosen is Precision.BF16:
        model = model.to(torch.bfloat16)  # type: ignore[arg-type]  # @wraps'd .to: typeshed's _Wrapped binds no self
    else:
        model = model.float()
        if chosen is Precision.INT8:
            model = quantize_int8(model)
            compact_embeddings(model)
    own_memory(model)
    release_freed_memory()
    return Accelerated(model, tokenizer, chosen, vocab_map, original_config, original_generation)


def release_freed_memory() -> None:
    """Hand memory freed by the conversion back to the OS (glibc keeps it otherwise); best effort."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()  # replaced modules sit in reference cycles: free their fp32 weights now
    process = ctypes.CDLL(None)
    release = getattr(process, "MallocExtension_ReleaseFreeMemory", None)  # tcmalloc, when preloaded
    if release is not None:
        release()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


def own_memory(model: torch.nn.Module) -> None:
    """Copy every parameter and buffer into memory of its own (tied ones stay tied).

    from_pretrained maps the checkpoint file; a single small tensor still viewing it keeps every page
    that conversion read resident (2 GB for mT5-base), although the converted model no longer needs them.
    """
    import torch

    copies: dict[int, torch.nn.Parameter] = {}
    with torch.no_grad():
        for module in model.modules():
            for name, param in list(module._parameters.items()):
                if param is not None:
                    if id(param) not in copies:
                        copies[id(param)] = torch.nn.Parameter(param.detach().clone(), requires_grad=False)
                    module._parameters[name] = copies[id(param)]
            for name, buffer in list(module._buffers.items()):
                if buffer is not None:
                    module._buffers[name] = buffer.clone()

