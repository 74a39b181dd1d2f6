"""`newsbot summarize`: offline (extractive, saying so) and with a tiny local model (seq2seq)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli

from tinymodels import TinyModels

SAMPLE = Path(__file__).parent / "fixtures" / "rusia-garansi-mengikat.txt"
ENGLISH = (
    "Central Bank Raises Rates\n\n"
    "The central bank raised interest rates by half a point on Thursday, its third rise this year. "
    "Officials said inflation had stayed above the target for more than a year and needed to come down. "
    "Markets fell sharply after the announcement, and analysts expect another rise in June.\n"
)
TITLE = "Bukan Sekadar Janji, Rusia Minta Barat Berikan Garansi Mengikat"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a user's shell: a fresh SQLite file, an empty model cache, no .env."""
    monkeypatch.chdir(tmp_path)
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'newsbot.sqlite3'}",
        "DATA_DIR": str(tmp_path),
        "MODEL_CACHE_DIR": str(tmp_path / "hf-cache"),
        "LOG_LEVEL": "ERROR",
        "MODEL_PRECISION": "fp32",
        "MODEL_THREADS": "1",
    }


def run(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(cli, ["summarize", *args], env=env, catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()] if "--json" in args else []
    return result.exit_code, lines, result.stderr


def test_offline_default_models_fall_back_to_extractive_and_say_so(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "HF_HUB_OFFLINE": "1"}  # default SUMMARY_MODEL and TRANSLATION_MODEL, not cached
    code, records, stderr = run(env, str(SAMPLE), "--json", "--lang", "en")
    assert code == 0
    assert len(records) == 1
    record = records[0]
    assert record["source"] == str(SAMPLE) and record["title"] == TITLE and record["lang"] == "id"
    assert record["method"] == "extractive" and record["model"] is None and record["translation"] is None
    assert str(record["summary"]).startswith("Menlu Rusia, Sergey Lavrov")  # the dateline is not summarized
    notices = [line for line in stderr.splitlines() if line.startswith("newsbot summarize:")]
    assert len([line for line in notices if "csebuetnlp/mT5_multilingual_XLSum is unavailable" in line]) == 1
    assert "newsbot models fetch" in stderr and "HF_HUB_OFFLINE" in stderr
    # The stored article can be summarized again by id: cached, same result.
    code, again, _stderr = run(env, str(record["id"]), "--json")
    assert code == 0 and again[0]["summary"] == record["summary"] and again[0]["source"] == str(record["id"])


def test_tiny_model_names_itself_and_translates(cli_env: dict[str, str], tiny_models: TinyModels) -> None:
    env = {
        **cli_env,
        "SUMMARY_MODEL": str(tiny_models.summary),
        "TRANSLATION_MODEL": tiny_models.translation_template,
        "SUMMARY_NUM_BEAMS": "1",
        "TRANSLATION_NUM_BEAMS": "1",
        "SUMMARY_MAX_NEW_TOKENS": "8",
    }
    folder = Path("articles")  # relative to the test's working folder
    folder.mkdir()
    (folder / "a-rusia.txt").write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "b-bank.txt").write_text(ENGLISH, encoding="utf-8")
    code, records, stderr = run(env, str(SAMPLE), "--json", "--lang", "en")
    assert code == 0, stderr
    record = records[0]
    assert record["method"] == "seq2seq" and record["model"] == str(tiny_models.summary)
    assert record["summary"] and record["lang"] == "id"
    translation = record["translation"]
    assert isinstance(translation, dict) and translation["lang"] == "en"
    assert translation["model"] == str(tiny_models.root / "marian-id-en")
    assert translation["title"] and translation["summary"]
    assert "unavailable" not in stderr
    # A folder, a missing file and a bad id: the good ones print, the bad ones are reported, exit 1.
    code, records, stderr = run(env, str(folder), "nope.txt", "99999", "--json")
    assert code == 1
    assert [r["source"] for r in records] == [str(folder / "a-rusia.txt"), str(folder / "b-bank.txt")]
    assert [r["lang"] for r in records] == ["id", "en"]
    assert records[0]["summary"] == record["summary"]  # the same article: read from the cache
    assert records[1]["method"] == "seq2seq"
    assert "nope.txt: no such file" in stderr and "no stored article with id 99999" in stderr


def test_plain_output_and_bad_lang(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none"}
    code, _records, stderr = run(env, str(SAMPLE), "--lang", "en")
    assert code == 0
    assert "translation to en is off" in stderr
    result = CliRunner().invoke(cli, ["summarize", str(SAMPLE)], env=env)
    assert result.stdout.startswith(f"#1 {TITLE} [id] (extractive)\nMenlu Rusia, Sergey Lavrov")
    result = CliRunner().invoke(cli, ["summarize", str(SAMPLE), "--lang", "english!"], env=env)
    assert result.exit_code == 2 and "--lang expects a language code" in result.stderr


def test_url_source_is_fetched_stored_and_summarized(cli_env: dict[str, str]) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    paragraphs = "".join(f"<p>{line}</p>" for line in ENGLISH.splitlines()[2:])
    page = (
        "<html><head><title>Central Bank Raises Rates</title></head><body><article>"
        f"<h1>Central Bank Raises Rates</h1>{paragraphs}</article></body></html>"
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/news/rates.html"
        env = {**cli_env, "SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none", "FETCH_ALLOWED_HOSTS": "127.0.0.1"}
        code, records, stderr = run(env, url, "--json")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, stderr
    assert records[0]["source"] == url and records[0]["lang"] == "en"
    assert str(records[0]["summary"]).startswith("The central bank raised interest rates by half a point")


@pytest.mark.slow
def test_first_run_online_downloads_the_model_from_the_hub(tmp_path: Path, tiny_models: TinyModels) -> None:
    """A Hub id not in the cache is downloaded by from_pretrained (a fake Hub on loopback).

    Runs `newsbot` in a subprocess: huggingface_hub reads HF_ENDPOINT when first imported.
    """
    import os
    import subprocess
    import sys

    from tinymodels import FakeHub

    with FakeHub({"example-org/tiny-sum": tiny_models.summary}) as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_OFFLINE": "0",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'newsbot.sqlite3'}",
            "MODEL_CACHE_DIR": str(tmp_path / "hf-cache"),
            "SUMMARY_MODEL": "example-org/tiny-sum",
            "TRANSLATION_MODEL": "none",
            "SUMMARY_NUM_BEAMS": "1",
            "SUMMARY_MAX_NEW_TOKENS": "8",
            "MODEL_PRECISION": "fp32",
            "MODEL_THREADS": "1",
            "LOG_LEVEL": "ERROR",
        }
        command = [sys.executable, "-m", "bot", "summarize", str(SAMPLE), "--json"]
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert record["method"] == "seq2seq" and record["model"] == "example-org/tiny-sum"
    assert any(request.endswith("/model.safetensors") for request in hub.requests)
    assert (tmp_path / "hf-cache" / "models--example-org--tiny-sum" / "snapshots" / FakeHub.COMMIT).is_dir()
