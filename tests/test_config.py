"""Settings: defaults, .env parsing, and the one-line exit 2 on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def run_newsbot(args: list[str], cwd: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in {"PATH", "HOME", "LANG"}}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_defaults_are_embedded_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.database_url.startswith("sqlite:///")
    assert settings.telegram_base_url == "https://api.telegram.org/bot"


def test_env_file_and_list_parsing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ADMIN_IDS=1, 22 ,333\nFETCH_ALLOWED_HOSTS=localhost,example.test\n")
    settings = Settings()
    assert settings.admin_ids == [1, 22, 333]
    assert settings.fetch_allowed_hosts == ["localhost", "example.test"]


def test_bad_value_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FETCH_TIMEOUT", "soon")
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FETCH_TIMEOUT" in err[0]


def test_cli_bad_setting_no_traceback(tmp_path: Path) -> None:
    result = run_newsbot(["db", "upgrade"], tmp_path, {"ADMIN_IDS": "alice"})
    assert result.returncode == 2
    assert "ADMIN_IDS" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_creates_sqlite_in_data_folder(tmp_path: Path) -> None:
    result = run_newsbot(["db", "upgrade"], tmp_path, {})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "newsbot.sqlite3").exists()
