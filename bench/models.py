"""Random-weight models with the real architectures, for benchmarks (never for summaries).

Configs come from ../shared/model-configs; models are built once, saved with save_pretrained into a
cache folder, and loaded with from_pretrained like the real ones, so loading and memory match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT.parent / "shared" / "model-configs"
SUMMARY_CONFIG = "csebuetnlp__mT5_multilingual_XLSum.json"
TRANSLATION_CONFIG = "Helsinki-NLP__opus-mt-id-en.json"


@dataclass(frozen=True)
class BenchModel:
    """A saved random-weight model and the facts a benchmark needs about it."""

    name: str
    path: Path
    vocab_size: int
    special_ids: tuple[int, ...]  # ids never used as random article tokens


def load_config(filename: str, config_dir: Path = CONFIG_DIR) -> Any:
    """A transformers config object from one of the shared JSON configs."""
    from transformers import AutoConfig

    fields = json.loads((config_dir / filename).read_text(encoding="utf-8"))
    fields.pop("_name_or_path", None)
    model_type = fields.pop("model_type")
    return AutoConfig.for_model(model_type, **fields)


def build_random(config: Any, seed: int = 0) -> Any:
    """A seq2seq model with random weights for this config (small init keeps activations finite)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(seed)
    model = AutoModelForSeq2SeqLM.from_config(config)
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr():
        # transformers 5 forces mT5 configs to tied embeddings, but the real checkpoints ship a separate
        # lm_head (loading then keeps both): give the benchmark model one too, so sizes match.
        head.weight = torch.nn.Parameter(torch.randn_like(head.weight) * 0.05)
    return model.eval()


def _special_ids(config: Any) -> tuple[int, ...]:
    ids = {config.pad_token_id, config.eos_token_id, config.decoder_start_token_id}
    ids |= {getattr(config, "bos_token_id", None)}
    return tuple(sorted(i for i in ids if isinstance(i, int)))


def ensure_model(filename: str, cache_dir: Path, seed: int = 0) -> BenchModel:
    """Build and save the random model for a shared config unless the cache already holds it."""
    config = load_config(filename)
    target = cache_dir / filename.removesuffix(".json")
    if not (target / "config.json").exists():
        model = build_random(config, seed)
        target.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(target)
        del model
    return BenchModel(filename.removesuffix(".json"), target, config.vocab_size, _special_ids(config))


def random_articles(model: BenchModel, count: int, length: int, seed: int = 0) -> list[torch.Tensor]:
    """`count` random token-id sequences of `length` ids, each ending with EOS like tokenizer output."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    eos = load_config(model.name + ".json").eos_token_id
    special = torch.tensor(model.special_ids)
    rows = []
    for _ in range(count):
        ids = torch.randint(3, model.vocab_size, (length - 1,), generator=generator)
        ids[torch.isin(ids, special)] = 3  # keep pad/eos/start ids out of the text
        rows.append(torch.cat([ids, torch.tensor([eos])]))
    return rows


# --- word-level tokenizers of the models' full vocabularies --------------------------------------
# The real tokenizers can't be downloaded here. Each model folder gets a word-level tokenizer with
# the model's vocabulary size: `keep` of mT5's ids are Latin-script pieces (what vocabulary trimming
# keeps for id/en), the rest Cyrillic, so trimming and CTranslate2 conversion run as for real models.


def tokenizer_folder(model: BenchModel, target: Path, latin: set[int], special: dict[str, int]) -> Path:
    """A folder with the model's files (linked) and a word-level tokenizer of the full vocabulary."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    if (target / "tokenizer.json").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for item in model.path.iterdir():
        link = target / item.name
        if not link.exists():
            link.symlink_to(item)
    by_id = {index: name for name, index in special.items()}
    pieces = [
        by_id.get(i) or (f"\u2581w{i}" if i in latin else f"\u2581\u0436{i}") for i in range(model.vocab_size)
    ]
    pieces[period_id(latin, special)] = "\u2581."
    tokenizer = Tokenizer(WordLevel({piece: i for i, piece in enumerate(pieces)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", special["</s>"])])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    wrapped.save_pretrained(target)
    return target


def period_id(latin: set[int], special: dict[str, int]) -> int:
    """The id whose piece is the full stop (sentence splitting needs one)."""
    return min(latin - set(special.values()))


@dataclass(frozen=True)
class TokenizerFolders:
    """Model folders with tokenizers, and words present in both vocabularies."""

    summary: Path
    translation: Path
    words: list[str]


def tokenizer_folders(cache: Path, keep: int, source: str = "id", target: str = "en") -> TokenizerFolders:
    """The summary (mT5 XLSum) and translation (opus-mt source-target) folders, built once under cache."""
    import random

    summary = ensure_model(SUMMARY_CONFIG, cache)
    translation = ensure_model(TRANSLATION_CONFIG, cache)
    mt5_special = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    rng = random.Random(0)
    latin = set(rng.sample(range(summary.vocab_size), keep)) | set(mt5_special.values())
    summary_dir = tokenizer_folder(summary, cache / "workers" / "mt5-xlsum", latin, mt5_special)
    marian_special = {"</s>": 0, "<unk>": 1, "<pad>": translation.vocab_size - 1}
    translation_dir = tokenizer_folder(translation, cache / "workers" / f"opus-mt-{source}-{target}",
                                       set(range(translation.vocab_size)), marian_special)
    # Article words must exist in both vocabularies, so the translation input is not all <unk>.
    words = sorted(latin - set(mt5_special.values()) - {period_id(latin, mt5_special)})
    words = [f"w{i}" for i in words if 1 < i < translation.vocab_size - 1][:20000]
    return TokenizerFolders(summary_dir, translation_dir, words)
