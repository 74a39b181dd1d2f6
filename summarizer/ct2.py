"""CTranslate2 backend: a transformers seq2seq model converted once, then run by CTranslate2's C++ search.

The conversion starts from the model `from_pretrained` loaded (Hub id or folder, as with the
transformers backend), keeps only the output tokens of the configured languages' scripts
(summarizer.speed.kept_token_ids), quantizes as MODEL_PRECISION says, and is stored under the model
cache, keyed by the model's files, so later starts load it without reading the original weights.
`CTranslate2Runner.generate` takes and returns token ids of the original vocabulary, like
`Accelerated.generate`, so the engine does not care which backend runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from summarizer.config import Backend, Precision

if TYPE_CHECKING:
    import torch

    from summarizer.speed import VocabMap

log = logging.getLogger(__name__)

# Bump when the conversion below changes what it writes: older stored conversions are then ignored.
CONVERSION_REVISION = 1
COMPUTE_TYPES = {Precision.FP32: "float32", Precision.INT8: "int8"}
# Generation arguments the runner maps onto CTranslate2's options.
_MAPPED = {"num_beams", "max_new_tokens", "min_new_tokens", "max_length", "min_length", "length_penalty",
           "no_repeat_ngram_size", "repetition_penalty", "forced_bos_token_id", "do_sample",
           "num_return_sequences"}
# Accepted and not needed: CTranslate2 stops a beam search once num_beams hypotheses are finished
# (early_stopping), keeps its own cache, and never writes the tokens these would forbid (<pad>).
_IGNORED = {"early_stopping", "use_cache", "bad_words_ids", "suppress_tokens", "begin_suppress_tokens",
            "eos_token_id", "pad_token_id", "decoder_start_token_id", "bos_token_id", "forced_eos_token_id"}


class ConversionUnsupported(Exception):
    """CTranslate2 cannot run this model (architecture or precision); the transformers backend can."""


def installed() -> bool:
    """Whether the ctranslate2 package can be imported (without importing it)."""
    return importlib.util.find_spec("ctranslate2") is not None


def resolve(backend: Backend, precision: Precision) -> tuple[Backend, Precision]:
    """The backend and precision a model will run with, from the settings' (possibly `auto`) values.

    auto picks CTranslate2 when installed (int8 unless MODEL_PRECISION says fp32; it has no bf16 on
    CPU), else transformers (bf16 where the CPU has it, see summarizer.speed.accelerate).
    """
    if backend is Backend.AUTO:
        backend = Backend.CTRANSLATE2 if installed() and precision is not Precision.BF16 else Backend.TRANSFORMERS
    if backend is Backend.CTRANSLATE2:
        if precision is Precision.BF16:
            log.warning("MODEL_BACKEND=ctranslate2 has no bf16 on CPU; running int8 (MODEL_PRECISION=fp32 or int8)")
            return backend, Precision.INT8
        return backend, Precision.INT8 if precision is Precision.AUTO else precision
    return backend, Precision.BF16 if precision is Precision.AUTO else precision


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux), empty when unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def import_ctranslate2() -> Any:
    """Import ctranslate2, letting it use AVX-512 where the CPU has it (CT2_FORCE_CPU_ISA unless set).

    CTranslate2 picks AVX2 by default even on AVX-512 CPUs; on this project's Xeon AVX-512 made the
    summary + translation job ~10% faster (docs/speed.md). Read once, when the library loads.
    """
    if "CT2_FORCE_CPU_ISA" not in os.environ and {"avx512f", "avx512bw", "avx512vl"} <= cpu_flags():
        os.environ["CT2_FORCE_CPU_ISA"] = "AVX512"
    import ctranslate2

    return ctranslate2


def conversions_root(cache_dir: Path | None) -> Path:
    """Where converted models are stored: beside the Hugging Face cache (MODEL_CACHE_DIR or HF_HOME)."""
    if cache_dir is not None:
        return Path(cache_dir) / "newsbot-ctranslate2"
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "newsbot-ctranslate2"


def source_identity(model_id: str, cache_dir: Path | None) -> str | None:
    """What identifies the model's files: a folder's file sizes and times, or the Hub snapshot's commit.

    None when the files are not on disk (a Hub model not downloaded yet).
    """
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        digest = hashlib.sha256()
        # Hidden folders (e.g. huggingface_hub's .cache download metadata) are not the model.
        files = (p for p in folder.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(folder).parts))
        for path in sorted(files):
            stat = path.stat()
            digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return f"folder:{folder.resolve()}:{digest.hexdigest()}"
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json", cache_dir=str(cache_dir) if cache_dir else None)
    if not isinstance(found, str):
        return None
    return f"hub:{model_id}@{Path(found).parent.name}"  # snapshots/<commit>/config.json


def conversion_dir(root: Path, model_id: str, identity: str, precision: Precision,
                   keep: Sequence[int] | None) -> Path:
    """The folder of one conversion: model name, then a digest of everything that changes the result."""
    ctranslate2 = import_ctranslate2()
    kept = hashlib.sha256(",".join(map(str, keep)).encode()).hexdigest() if keep is not None else "all"
    fields = [identity, COMPUTE_TYPES[precision], kept, ctranslate2.__version__, CONVERSION_REVISION]
    digest = hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]
    folder = Path(model_id).expanduser()
    name = folder.resolve().name if folder.is_dir() else model_id.replace("/", "--")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.")[-80:] or "model"
    return root / f"{slug}-{digest}"


def _trim_spec(spec: Any, keep: Sequence[int]) -> None:
    """Cut the target side of a converted spec (decoder embedding, output layer, vocabulary) to `keep`."""
    import torch

    tokens = spec._vocabularies["target"][0]
    keep = [i for i in keep if i < len(tokens)]  # Marian's converter drops <pad>, the last id
    index = torch.tensor(keep, dtype=torch.long)
    decoder = spec.decoder
    embeddings = decoder.embeddings if isinstance(decoder.embeddings, list) else [decoder.embeddings]
    for part in [*embeddings, decoder.projection]:
        if part.weight.shape[0] != len(tokens):
            raise ConversionUnsupported(f"{type(spec).__name__}: unexpected output layer size")
        part.weight = part.weight[index]
        if getattr(part, "bias", None) is not None and not isinstance(part.bias, str) and part.bias.shape[0] == len(tokens):
            part.bias = part.bias[index]
    spec._vocabularies["target"] = [[tokens[i] for i in keep]]


def _fix_output_scale(spec: Any, config: Any) -> None:
    """Scale T5-family decoder outputs by d_model**-0.5 exactly when transformers does.

    The converter scales whenever `tie_word_embeddings` is set, as transformers 4 did. transformers 5
    sets that flag on every T5/mT5 config: it scales T5 by `scale_decoder_outputs` and never scales mT5.
    Scaling mT5's logits down 27x (mT5-base) would change every beam search (tests/test_ct2.py).
    """
    import transformers
    from ctranslate2.specs import model_spec

    if not hasattr(spec, "decoder") or not hasattr(spec.decoder, "scale_outputs"):
        return
    scale = getattr(config, "scale_decoder_outputs", None)
    if scale is None and config.model_type == "mt5" and int(transformers.__version__.split(".")[0]) >= 5:
        scale = False
    if scale is not None:
        spec.decoder.scale_outputs = config.d_model**-0.5 if scale else model_spec.OPTIONAL


def convert(model: Any, tokenizer: Any, output_dir: Path, precision: Precision,
            keep: Sequence[int] | None) -> None:
    """Write the CTranslate2 form of a loaded model into output_dir (which must not exist)."""
    import torch

    import_ctranslate2()
    from ctranslate2.converters.converter import Converter
    from ctranslate2.converters.transformers import _MODEL_LOADERS

    loader = _MODEL_LOADERS.get(type(model.config).__name__)
    if loader is None:
        raise ConversionUnsupported(f"CTranslate2 cannot convert {type(model.config).__name__}")

    class LoadedModelConverter(Converter):
        """Converts the model already in memory (the library's converter would load it again)."""

        def _load(self) -> Any:
            with torch.no_grad():
                spec = loader(model, tokenizer)
                _fix_output_scale(spec, model.config)
                if keep is not None:
                    _trim_spec(spec, keep)
                return spec

    try:
        LoadedModelConverter().convert(str(output_dir), quantization=COMPUTE_TYPES[precision])
    except (ValueError, NotImplementedError, KeyError, AttributeError) as error:
        # The converter's own checks (vocabulary sizes, unsupported options): not this model.
        raise ConversionUnsupported(f"CTranslate2 cannot convert this model: {error}") from error


def store_conversion(model: Any, tokenizer: Any, target: Path, precision: Precision,
                     keep: Sequence[int] | None) -> Path:
    """Convert into `target` atomically (a temporary sibling renamed into place); returns the folder.

    Where the cache cannot be written, converts into a temporary folder the caller must delete.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as error:
        log.warning("cannot store converted models in %s (%s); converting for this process only",
                    target.parent, error)
        scratch = Path(tempfile.mkdtemp(prefix="newsbot-ct2-"))
        convert(model, tokenizer, scratch / "model", precision, keep)
        return scratch / "model"
    try:
        convert(model, tokenizer, scratch / "model", precision, keep)
        try:
            os.replace(scratch / "model", target)
        except OSError:
            if not (target / "model.bin").exists():
                raise
            # Another process stored the same conversion first: identical content, keep theirs.
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def is_converted(folder: Path) -> bool:
    """Whether a folder holds a complete conversion."""
    return (folder / "model.bin").is_file() and (folder / "config.json").is_file()


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


# Enough replicas for a batch to spread over; beyond this, each replica gets cores // MAX_REPLICAS threads.
MAX_REPLICAS = 4


@dataclass(frozen=True)
class ThreadLayout:
    """How a model uses the cores: `replicas` (sharing the weights) x `intra` threads each (0: CTranslate2's choice)."""

    replicas: int
    intra: int


def thread_layout(configured: int, cores: int) -> ThreadLayout:
    """MODEL_THREADS=N: N intra-op threads per replica and as many replicas as the cores hold.

    0 (auto): one thread per replica, one replica per core up to MAX_REPLICAS. Decoding runs hundreds
    of small operations per token, and every one is an OpenMP fork and join when a replica has two
    threads; on a 2-core VM that made one article 2.2x slower (batches no faster) than one thread
    per replica (docs/speed.md, Thread layout). A replica takes one article of a batch (or one text) at a
    time, so a batch still uses every core.
    """
    if configured > 0:
        return ThreadLayout(max(1, cores // configured), configured)
    replicas = min(cores, MAX_REPLICAS)
    return ThreadLayout(replicas, max(1, cores // replicas))


class CTranslate2Runner:
    """Generates with a CTranslate2 model; takes and returns ids of the tokenizer's original vocabulary."""

    def __init__(self, folder: Path, tokenizer: Any, config: Any, generation_config: Any,
                 precision: Precision, threads: int, vocab_map: VocabMap | None = None) -> None:
        self.folder = folder
        self.tokenizer = tokenizer
        self.config = config
        self.generation_config = generation_config
        self.precision = precision
        self.vocab_map = vocab_map  # set when the output vocabulary was trimmed (see Engine._can_write)
        self.translator: Any = None
        self.use_layout(thread_layout(threads, available_cores()))

    def use_layout(self, layout: ThreadLayout) -> None:
        """Load the translator with this thread layout, freeing the current one first (one copy of the weights)."""
        self.translator = None
        self.layout = layout
        self.translator = import_ctranslate2().Translator(
            str(self.folder), device="cpu", compute_type=COMPUTE_TYPES[self.precision],
            inter_threads=layout.replicas, intra_threads=layout.intra,
        )

    def __repr__(self) -> str:
        trimmed = f", output_vocab={len(self.vocab_map)}" if self.vocab_map is not None else ""
        return f"CTranslate2Runner({self.config.model_type}, precision={self.precision.value}{trimmed})"

    def _setting(self, kwargs: dict[str, Any], name: str, default: Any = None) -> Any:
        value = kwargs.get(name)
        if value is None:
            value = getattr(self.generation_config, name, None)
        return default if value is None else value

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - _MAPPED - _IGNORED
        if unknown:
            raise ValueError(f"the ctranslate2 backend does not support {', '.join(sorted(unknown))}")
        if kwargs.get("do_sample"):
            raise ValueError("the ctranslate2 backend runs beam or greedy search only (do_sample=False)")
        if self._setting(kwargs, "num_return_sequences", 1) != 1:
            raise ValueError("the ctranslate2 backend returns one sequence per input")
        max_new = kwargs.get("max_new_tokens")
        if max_new is None:
            max_new = self._setting(kwargs, "max_length", 20) - 1  # transformers counts the start token
        min_new = kwargs.get("min_new_tokens")
        if min_new is None:
            min_new = max(0, self._setting(kwargs, "min_length", 0) - 1)
        return {
            "beam_size": self._setting(kwargs, "num_beams", 1),
            "max_decoding_length": max_new,
            "min_decoding_length": min_new,
            "length_penalty": self._setting(kwargs, "length_penalty", 1.0),
            "no_repeat_ngram_size": self._setting(kwargs, "no_repeat_ngram_size", 0),
            "repetition_penalty": self._setting(kwargs, "repetition_penalty", 1.0),
            "max_input_length": 0,  # the engine truncates at sentence boundaries before this
        }

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 **kwargs: Any) -> torch.Tensor:
        """Output ids per input, starting with the decoder start token and padded, as transformers returns."""
        import torch

        options = self._options(kwargs)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        sources = [
            self.tokenizer.convert_ids_to_tokens(row[mask.bool()].tolist())
            for row, mask in zip(input_ids, attention_mask, strict=True)
        ]
        forced = self._setting(kwargs, "forced_bos_token_id")
        prefix = None
        if forced is not None:
            prefix = [[self.tokenizer.convert_ids_to_tokens(int(forced))] for _ in sources]
        share = -(-len(sources) // self.layout.replicas)
        results = self.translator.translate_batch(sources, target_prefix=prefix, max_batch_size=share, **options)
        start = self.config.decoder_start_token_id
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        rows = [[start, *self.tokenizer.convert_tokens_to_ids(result.hypotheses[0])] for result in results]
        width = max(len(row) for row in rows)
        return torch.tensor([row + [pad] * (width - len(row)) for row in rows], dtype=torch.long)
