"""Builders of tiny random-weight seq2seq models saved like Hub models, for tests.

Tokenizers are trained on the fly (sentencepiece unigram) on sentences generated here, so the
tests need no download and no data files. Load the saved folders with from_pretrained, exactly
as users load real models (SUMMARY_MODEL=<folder>, TRANSLATION_MODEL=<folder with {src}-{tgt}>).
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_WORDS = [
    "rusia", "minta", "barat", "berikan", "garansi", "mengikat", "menlu", "menyatakan", "moskow", "keamanan", "janji", "nato",
    "presiden", "jakarta", "banjir", "warga", "pemerintah", "harga", "naik", "pasar", "saham", "bank", "sentral", "bunga",
    "the", "central", "bank", "raised", "interest", "rates", "on", "thursday", "officials", "said", "inflation", "markets",
    "fell", "analysts", "expect", "floods", "residents", "government", "prices", "rose", "people", "city", "police", "minister",
    "россия", "москва", "президент", "заявил",  # Cyrillic pieces, so vocabulary trimming has something to drop
]
_NAMES = ("Lavrov", "Putin", "Washington", "Eropa", "Jakarta", "Surabaya", "Reuters", "NATO")
VOCAB_SIZE = 160
# Generated outputs have at least this many tokens, so random weights never give empty text.
MIN_NEW_TOKENS = 6


def training_sentences(count: int = 600, seed: int = 0) -> list[str]:
    """Indonesian- and English-like sentences with names, numbers and punctuation."""
    rnd = random.Random(seed)
    sentences = []
    for _ in range(count):
        words = [rnd.choice(_WORDS) for _ in range(rnd.randint(4, 14))]
        if rnd.random() < 0.5:
            words.insert(rnd.randrange(len(words)), rnd.choice(_NAMES))
        if rnd.random() < 0.2:
            words.append(str(rnd.randint(1, 2030)))
        sentence = " ".join(words)
        sentences.append(sentence[0].upper() + sentence[1:] + rnd.choice(".!?.,"[:4]))
    return sentences


def article(seed: int, sentences: int = 6) -> str:
    """A short article-like text of generated sentences."""
    return " ".join(training_sentences(sentences, seed=seed))


def _train_sentencepiece(path: Path) -> None:
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_sentences()),
        model_writer=buffer,
        vocab_size=VOCAB_SIZE,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    path.write_bytes(buffer.getvalue())


def _pieces(spm_path: Path) -> list[tuple[str, float]]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_path))
    return [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]


def _save_random_model(
    model_class: Any, config: Any, tokenizer: Any, folder: Path, seed: int, **generation: Any
) -> None:
    """Random weights from `seed`, fixed-minimum-length generation, saved with its tokenizer."""
    import torch
    from transformers import GenerationConfig

    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        min_new_tokens=MIN_NEW_TOKENS,
        **generation,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def build_tiny_mt5(folder: Path, seed: int = 0) -> Path:
    """A random-weight 2-layer mT5 with a T5 tokenizer, saved with save_pretrained."""
    from transformers import MT5Config, MT5ForConditionalGeneration, T5Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    spm_path = folder / "train.spm"
    _train_sentencepiece(spm_path)
    tokenizer = T5Tokenizer(vocab=_pieces(spm_path), extra_ids=0)
    spm_path.unlink()
    config = MT5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    _save_random_model(MT5ForConditionalGeneration, config, tokenizer, folder, seed)
    return folder


def build_tiny_marian(folder: Path, seed: int = 0, max_positions: int = 512) -> Path:
    """A random-weight 1-layer Marian translation model with a sentencepiece MarianTokenizer."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    spm_path = folder / "train.spm"
    _train_sentencepiece(spm_path)
    # Laid out like opus-mt's vocab.json: <pad> (also the decoder start) is the last id.
    pieces = [piece for piece, _score in _pieces(spm_path) if piece != "<pad>"] + ["<pad>"]
    vocab = {piece: index for index, piece in enumerate(pieces)}
    (folder / "train-vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(spm_path),
        target_spm=str(spm_path),
        vocab=str(folder / "train-vocab.json"),
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    _save_random_model(MarianMTModel, config, tokenizer, folder, seed, bad_words_ids=[[config.pad_token_id]])
    spm_path.unlink()
    (folder / "train-vocab.json").unlink()
    return folder


@dataclass(frozen=True)
class TinyModels:
    """Folders of the tiny models: a summarizer and Marian pairs id-en, en-id and en-de."""

    root: Path
    summary: Path

    @property
    def translation_template(self) -> str:
        """TRANSLATION_MODEL value: marian-{src}-{tgt} folders (no id-de: that pair pivots via en)."""
        return str(self.root / "marian-{src}-{tgt}")


def build_tiny_models(root: Path) -> TinyModels:
    """Build every tiny model once (a few seconds) under root."""
    summary = build_tiny_mt5(root / "tiny-mt5", seed=0)
    for seed, pair in enumerate(("id-en", "en-id", "en-de"), start=1):
        build_tiny_marian(root / f"marian-{pair}", seed=seed)
    return TinyModels(root=root, summary=summary)


def _tiny_m2m100_config(tokenizer: Any, vocab_size: int) -> Any:
    """A 1-layer M2M100 architecture (M2M100 and NLLB share it) for this tokenizer."""
    from transformers import M2M100Config

    return M2M100Config(
        vocab_size=vocab_size,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )


def build_tiny_m2m100(folder: Path, seed: int = 0) -> Path:
    """A random-weight 1-layer M2M100 (many-to-many, language tokens like __en__)."""
    from transformers import M2M100ForConditionalGeneration, M2M100Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    spm_path = folder / "train.spm"
    _train_sentencepiece(spm_path)
    vocab = {piece: index for index, (piece, _score) in enumerate(_pieces(spm_path))}
    vocab_path = folder / "train-vocab.json"
    vocab_path.write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = M2M100Tokenizer(vocab_file=str(vocab_path), spm_file=str(spm_path), src_lang="en", tgt_lang="id")
    vocab_size = max([*tokenizer.get_vocab().values(), *tokenizer.lang_token_to_id.values()]) + 1
    _save_random_model(M2M100ForConditionalGeneration, _tiny_m2m100_config(tokenizer, vocab_size), tokenizer,
                       folder, seed)
    spm_path.unlink()
    vocab_path.unlink()
    return folder


def build_tiny_nllb(folder: Path, seed: int = 0) -> Path:
    """A random-weight 1-layer NLLB (M2M100 architecture, NllbTokenizer with FLORES-200 codes).

    The tokenizer is character-level (a BPE vocabulary of single characters, no merges): enough to
    carry language codes, which are what this model is for in the tests.
    """
    from transformers import M2M100ForConditionalGeneration, NllbTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = sorted({char for sentence in training_sentences() for char in sentence if char != " "})
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece in ["\u2581", *chars, *("\u2581" + char for char in chars)]:
        vocab.setdefault(piece, len(vocab))
    tokenizer = NllbTokenizer(vocab=vocab, merges=[], src_lang="ind_Latn", tgt_lang="eng_Latn")
    _save_random_model(M2M100ForConditionalGeneration, _tiny_m2m100_config(tokenizer, len(tokenizer)), tokenizer,
                       folder, seed)
    return folder


def install_in_hub_cache(folder: Path, cache_dir: Path, repo_id: str) -> Path:
    """Lay a saved model out as `newsbot models fetch` leaves it in the Hugging Face cache."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot


class FakeHub:
    """A minimal Hugging Face Hub on loopback serving saved model folders (for `models fetch`).

    Answers what huggingface_hub's snapshot_download asks: repo revision, file tree, and
    HEAD/GET of each file; unknown repositories get the Hub's 404 "RepoNotFound".
    """

    COMMIT = "a" * 40

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {
            repo_id: {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
            for repo_id, folder in repos.items()
        }
        self.requests: list[str] = []
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeHub:
        import threading
        from http.server import ThreadingHTTPServer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type:
        import hashlib
        from http.server import BaseHTTPRequestHandler

        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _answer(self) -> None:
                path = self.path.split("?")[0]
                hub.requests.append(f"{self.command} {path}")
                as_json = {"Content-Type": "application/json"}
                for repo_id, files in hub.repos.items():
                    api = f"/api/models/{repo_id}"
                    if path in (api, f"{api}/revision/main", f"{api}/revision/{hub.COMMIT}"):
                        info = {"id": repo_id, "sha": hub.COMMIT, "siblings": [{"rfilename": n} for n in files]}
                        return self._send(200, json.dumps(info).encode(), as_json)
                    if path in (f"{api}/tree/main", f"{api}/tree/{hub.COMMIT}"):
                        tree = [
                            {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                            for name, data in files.items()
                        ]
                        return self._send(200, json.dumps(tree).encode(), as_json)
                    prefix = f"/{repo_id}/resolve/"
                    if path.startswith(prefix) and path[len(prefix) :].split("/", 1)[-1] in files:
                        data = files[path[len(prefix) :].split("/", 1)[-1]]
                        headers = {"X-Repo-Commit": hub.COMMIT, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
                        return self._send(200, data, headers)
                known = [f"/api/models/{repo_id}/" for repo_id in hub.repos]
                known += [f"/{repo_id}/resolve/" for repo_id in hub.repos]
                if any(path.startswith(prefix) for prefix in known):  # the repo exists, that file does not
                    missing = {**as_json, "X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}
                    return self._send(404, b'{"error": "Entry not found"}', missing)
                not_found = {**as_json, "X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
                return self._send(404, b'{"error": "Repository not found"}', not_found)

            do_GET = _answer
            do_HEAD = _answer

            def log_message(self, *_args: object) -> None:
                pass

        return Handler
