"""`newsbot models list|fetch`: planned models, cache state, offline and unreachable Hub errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from summarizer import SummarizerConfig
from summarizer.fetch import Role, planned_models

from tinymodels import TinyModels, install_in_hub_cache


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'newsbot.sqlite3'}",
        "MODEL_CACHE_DIR": str(tmp_path / "hf-cache"),
        "LOG_LEVEL": "ERROR",
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_planned_models_cover_overrides_and_language_pairs() -> None:
    config = SummarizerConfig(
        summary_model="org/sum",
        summary_model_overrides={"en": "org/sum-en", "id": "none"},
        translation_model="org/mt-{src}-{tgt}",
        languages=("id", "en", "ms"),
    )
    planned = [(model.model_id, model.role, model.detail) for model in planned_models(config)]
    assert planned[:2] == [("org/sum", Role.SUMMARY, "default"), ("org/sum-en", Role.SUMMARY, "en")]
    pairs = {detail for _model, role, detail in planned if role is Role.TRANSLATION}
    assert pairs == {"id-en", "id-ms", "en-id", "en-ms", "ms-id", "ms-en"}
    assert planned_models(SummarizerConfig()) == []  # none and none


def test_list_shows_cache_state_and_local_folders(env: dict[str, str], tiny_models: TinyModels) -> None:
    result = CliRunner().invoke(cli, ["models", "list"], env=env)
    assert result.exit_code == 0
    assert "csebuetnlp/mT5_multilingual_XLSum  [not cached]" in result.stdout
    assert "Helsinki-NLP/opus-mt-id-en  [not cached]" in result.stdout
    assert "Helsinki-NLP/opus-mt-en-id  [not cached]" in result.stdout
    install_in_hub_cache(tiny_models.summary, Path(env["MODEL_CACHE_DIR"]), "csebuetnlp/mT5_multilingual_XLSum")
    result = CliRunner().invoke(cli, ["models", "list"], env=env)
    assert "csebuetnlp/mT5_multilingual_XLSum  [cached]" in result.stdout
    assert "Helsinki-NLP/opus-mt-id-en  [not cached]" in result.stdout
    local = {**env, "SUMMARY_MODEL": str(tiny_models.summary), "TRANSLATION_MODEL": "none"}
    result = CliRunner().invoke(cli, ["models", "list"], env=local)
    assert result.stdout.strip() == f"summary     default   {tiny_models.summary}  [local folder]"
    result = CliRunner().invoke(cli, ["models", "fetch"], env=local)
    assert result.exit_code == 0 and "nothing to download" in result.stdout


def test_fetch_dry_run_offline_and_unreachable(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["models", "fetch", "--dry-run"], env=env)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "would download csebuetnlp/mT5_multilingual_XLSum (summary, default)",
        "would download Helsinki-NLP/opus-mt-id-en (translation, id-en)",
        "would download Helsinki-NLP/opus-mt-en-id (translation, en-id)",
    ]
    result = CliRunner().invoke(cli, ["models", "fetch"], env={**env, "HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 2 and "HF_HUB_OFFLINE is set" in result.stderr
    unreachable = {**env, "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    result = CliRunner().invoke(cli, ["models", "fetch"], env=unreachable)
    assert result.exit_code == 1 and "cannot reach the Hugging Face Hub" in result.stderr


def test_fetch_then_use_offline(env: dict[str, str], tiny_models: TinyModels, tmp_path: Path) -> None:
    """The offline-server flow: fetch from a (fake) Hub, then summarize with HF_HUB_OFFLINE=1."""
    from tinymodels import FakeHub

    configured = {
        **env,
        "SUMMARY_MODEL": "example-org/tiny-sum",
        "TRANSLATION_MODEL": "example-org/mt-{src}-{tgt}",
        "MODEL_LANGUAGES": "id,en,de",
        "SUMMARY_NUM_BEAMS": "1",
        "TRANSLATION_NUM_BEAMS": "1",
        "SUMMARY_MAX_NEW_TOKENS": "8",
        "MODEL_PRECISION": "fp32",
        "MODEL_THREADS": "1",
    }
    repos = {
        "example-org/tiny-sum": tiny_models.summary,
        "example-org/mt-id-en": tiny_models.root / "marian-id-en",
        "example-org/mt-en-id": tiny_models.root / "marian-en-id",
        "example-org/mt-en-de": tiny_models.root / "marian-en-de",
    }
    with FakeHub(repos) as hub:
        # A fresh process: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, on import.
        fetch_env = {**os.environ, **configured, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0"}
        command = [sys.executable, "-m", "bot", "models", "fetch"]
        result = subprocess.run(command, env=fetch_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    # id-de, de-id and de-en do not exist: reported (with the pivot hint), the rest downloaded.
    assert result.returncode == 1, result.stderr
    assert result.stdout.count(" -> ") == 4
    assert result.stderr.count("RepositoryNotFoundError") == 3
    assert "example-org/mt-id-de: RepositoryNotFoundError" in result.stderr
    assert "translation will pivot through English" in result.stderr
    # Each downloaded model was converted for CTranslate2 (MODEL_BACKEND=auto) and stored.
    assert result.stdout.count("CTranslate2 fp32 stored in") == 4
    converted = Path(configured["MODEL_CACHE_DIR"]) / "newsbot-ctranslate2"
    stored = sorted(converted.iterdir())
    assert len(stored) == 4
    listing = CliRunner().invoke(cli, ["models", "list"], env=configured).stdout
    assert "example-org/tiny-sum  [cached]" in listing and "example-org/mt-en-de  [cached]" in listing
    assert "example-org/mt-id-de  [not cached]" in listing
    sample = Path(__file__).parent / "fixtures" / "rusia-garansi-mengikat.txt"
    offline = {**configured, "HF_HUB_OFFLINE": "1"}
    result = CliRunner().invoke(cli, ["summarize", str(sample), "--json", "--lang", "de"], env=offline)
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert record["method"] == "seq2seq" and record["model"] == "example-org/tiny-sum"
    assert record["translation"]["model"] == "example-org/mt-id-en + example-org/mt-en-de"
    assert sorted(converted.iterdir()) == stored  # the server used the stored conversions
