"""Logging set-up: the terminal shell keeps log lines off the conversation."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.logs import REDACTED, setup_logging

REPO = Path(__file__).resolve().parent.parent
TOKEN = "123456:SECRET-token"


def test_with_a_log_file_the_terminal_gets_short_warnings_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "newsbot.log"
    setup_logging("INFO", "text", secrets=[TOKEN], log_file=log_file)
    log = logging.getLogger("summarizer.models")
    log.info("fan-out: 3 pushes queued")
    long_warning = "model csebuetnlp/mT5_multilingual_XLSum is unavailable: " + "x" * 300 + f" {TOKEN}"
    try:
        raise RuntimeError("weights missing")
    except RuntimeError:
        log.warning(long_warning, exc_info=True)
    logging.getLogger("bot").error("first line\nsecond line")
    for handler in logging.getLogger().handlers:
        handler.flush()

    terminal = capsys.readouterr().err.splitlines()
    assert len(terminal) == 2, terminal
    assert terminal[0].startswith("newsbot: warning: model csebuetnlp/mT5_multilingual_XLSum is unavailable")
    assert len(terminal[0]) <= 180 and terminal[0].endswith("…")
    assert terminal[1] == "newsbot: error: first line…"
    written = log_file.read_text()
    assert "fan-out: 3 pushes queued" in written  # INFO: the file only
    assert "x" * 300 in written and "Traceback" in written and "weights missing" in written
    assert TOKEN not in written and REDACTED in written


def test_without_a_log_file_everything_goes_to_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "text")
    logging.getLogger("bot").info("schema upgraded")
    assert "INFO bot: schema upgraded" in capsys.readouterr().err


def test_the_shell_conversation_has_no_log_lines(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in {"PATH", "HOME", "LANG", "HF_HOME"}}
    env.update(PYTHONPATH=str(REPO), DATA_DIR=str(data), LOG_LEVEL="INFO", SUMMARY_MODEL="none",
               TRANSLATION_MODEL="none")
    done = subprocess.run([sys.executable, "-m", "bot", "shell"], input="/help\n", capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"newsbot: database SQLite file {data / 'newsbot.sqlite3'}"]
    assert " INFO " not in done.stdout
    assert "database schema upgraded from empty" in (data / "logs" / "newsbot.log").read_text()
