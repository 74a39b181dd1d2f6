"""Settings: defaults, .env parsing, the data folder, and one clear line (exit 2) for a bad value."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.config import Settings, default_data_dir, load_settings, summarizer_config
from summarizer import SummarizerConfig, is_disabled
from summarizer.config import DEFAULT_SUMMARY_MODEL, DEFAULT_TRANSLATION_MODEL

from conftest import POSTGRES_ADMIN_URL
from pgscratch import scratch_postgres

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cret-Passw0rd"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home folder of its own: the default data folder lives under it."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def run_newsbot(
    args: list[str], cwd: Path, env_extra: dict[str, str], *, home: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`newsbot` from this checkout with none of the developer's settings (no DATA_DIR either)."""
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in {"PATH", "LANG"}}
    env.update(PYTHONPATH=str(REPO), HOME=str(home), HF_HOME=str(home / "hf"), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
        timeout=120,
    )


def _no_user_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


# --- empty values, .env.example ---------------------------------------------------------------


def test_env_example_copied_as_is_works(tmp_path: Path, home: Path) -> None:
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    result = run_newsbot(["stats"], tmp_path, {}, home=home)
    assert result.returncode == 0, result.stderr
    assert "articles" in result.stdout


def test_empty_values_mean_not_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_user_settings(monkeypatch, tmp_path)
    (tmp_path / ".env").write_text("HEALTH_PORT=\nHF_HUB_OFFLINE=\nSUMMARY_MODEL=\nADMIN_IDS=\nMODEL_CACHE_DIR=\n")
    for name in ("BROKER_URL", "TELEGRAM_BOT_TOKEN", "MODEL_THREADS", "MODEL_LANGUAGES", "DATABASE_URL"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.health_port is None and settings.hf_hub_offline is False
    assert settings.summary_model == DEFAULT_SUMMARY_MODEL and settings.model_cache_dir is None
    assert settings.admin_ids == [] and settings.broker_url is None and settings.telegram_bot_token is None
    assert settings.model_threads == 0 and settings.model_languages == ["id", "en"]
    assert settings.database_url == f"sqlite:///{settings.data_dir / 'newsbot.sqlite3'}"


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.MULTILINE))
    assert listed == {name.upper() for name in Settings.model_fields}


def test_env_file_and_list_parsing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_user_settings(monkeypatch, tmp_path)
    (tmp_path / ".env").write_text("ADMIN_IDS=1, 22 ,333\nFETCH_ALLOWED_HOSTS=localhost,example.test\n")
    settings = Settings()
    assert settings.admin_ids == [1, 22, 333]
    assert settings.fetch_allowed_hosts == ["localhost", "example.test"]


def test_bad_value_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FETCH_TIMEOUT", "soon")
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FETCH_TIMEOUT" in err[0]


def test_cli_bad_setting_no_traceback(tmp_path: Path, home: Path) -> None:
    result = run_newsbot(["db", "upgrade"], tmp_path, {"ADMIN_IDS": "alice"}, home=home)
    assert result.returncode == 2
    assert "ADMIN_IDS" in result.stderr
    assert "Traceback" not in result.stderr


# --- one source for the model settings -------------------------------------------------------


def test_model_settings_default_to_the_summarizers_own() -> None:
    built = summarizer_config(Settings(_env_file=None, hf_hub_offline=False))  # type: ignore[call-arg]  # _env_file: pydantic-settings option
    expected = SummarizerConfig(summary_model=DEFAULT_SUMMARY_MODEL, translation_model=DEFAULT_TRANSLATION_MODEL)
    if built.offline and not expected.offline:  # HF_HUB_OFFLINE=1 in the test environment
        expected = dataclasses.replace(expected, offline=True)
    assert built == expected


def test_settings_reach_the_summarizer() -> None:
    settings = Settings(  # type: ignore[call-arg]  # _env_file: a pydantic-settings option, no field
        _env_file=None, summary_num_beams=2, summary_sentences=5, model_precision="int8",
        summary_model_overrides="en=none", model_languages="EN", model_niceness=0,
    )
    config = summarizer_config(settings)
    assert (config.num_beams, config.sentences, config.precision.value, config.niceness) == (2, 5, "int8", 0)
    assert config.summary_model_for("en") == "none" and config.languages == ("en",)


@pytest.mark.parametrize(("value", "disabled"), [("none", True), ("None ", True), ("", True), ("  ", True), ("x/y", False)])
def test_no_model_means_the_same_everywhere(value: str, disabled: bool) -> None:
    assert is_disabled(value) is disabled
    assert SummarizerConfig(translation_model=value).translation_enabled is not disabled


# --- dead code --------------------------------------------------------------------------------


def test_test_devices_are_not_settings_nor_shipped() -> None:
    assert "job_test_delay" not in Settings.model_fields
    assert importlib.util.find_spec("bot.db.scratch") is None  # the throwaway-database helper is tests/pgscratch.py
    import bot.config

    assert not hasattr(bot.config, "SettingsError")


# --- the data folder --------------------------------------------------------------------------


def test_default_data_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if sys.platform in ("win32", "darwin"):
        pytest.skip("XDG folders are for Linux and other Unix")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "newsbot"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "newsbot"


def test_one_database_whichever_folder_newsbot_runs_from(tmp_path: Path, home: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    assert run_newsbot(["ingest", "--help"], first, {}, home=home).returncode == 0
    result = run_newsbot(["db", "upgrade"], first, {}, home=home)
    assert result.returncode == 0, result.stderr
    database = home / ".local" / "share" / "newsbot" / "newsbot.sqlite3"
    assert database.exists()
    result = run_newsbot(["stats", "--json"], second, {}, home=home)
    assert result.returncode == 0, result.stderr
    assert not list(first.rglob("*.sqlite3")) and not list(second.rglob("*.sqlite3"))


def test_data_dir_setting_moves_the_database(tmp_path: Path, home: Path) -> None:
    result = run_newsbot(["db", "upgrade"], tmp_path, {"DATA_DIR": str(tmp_path / "elsewhere")}, home=home)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere" / "newsbot.sqlite3").exists()


def test_the_shell_says_which_database_first(tmp_path: Path, home: Path) -> None:
    result = run_newsbot(["shell"], tmp_path, {"SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none"},
                         home=home, stdin="")
    assert result.returncode == 0, result.stderr
    database = home / ".local" / "share" / "newsbot" / "newsbot.sqlite3"
    assert result.stderr.splitlines()[0] == f"newsbot: database SQLite file {database}"


# --- bad database settings --------------------------------------------------------------------


def _one_line_exit_2(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("newsbot: DATABASE_URL: ")
    for text in expected:
        assert text in lines[0]
    assert SECRET not in result.stderr + result.stdout
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def postgres_server() -> str:
    """host:port of the local PostgreSQL (as NEWSBOT_TEST_POSTGRES_URL names it)."""
    url = make_url(POSTGRES_ADMIN_URL)
    return f"{url.host or 'localhost'}:{url.port or 5432}"


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("foo://x", ["unsupported database 'foo'", "postgresql://"]),
        ("not a url", ["not a database URL"]),
        ("mysql://root@localhost/db", ["unsupported database 'mysql'"]),
    ],
)
def test_a_malformed_database_url_is_one_line(
    database_url: str, expected: list[str], tmp_path: Path, home: Path
) -> None:
    _one_line_exit_2(run_newsbot(["stats"], tmp_path, {"DATABASE_URL": database_url}, home=home), *expected)


def test_a_postgresql_that_is_down_is_one_line(tmp_path: Path, home: Path) -> None:
    port = _closed_port()
    url = f"postgresql://newsbot:{SECRET}@localhost:{port}/newsbot"
    line = _one_line_exit_2(run_newsbot(["stats"], tmp_path, {"DATABASE_URL": url}, home=home))
    assert line == (
        f"newsbot: DATABASE_URL: cannot connect to PostgreSQL at localhost:{port} (connection refused); "
        "is the server running?"
    )


def test_a_database_that_does_not_exist_is_one_line(tmp_path: Path, home: Path, postgres_server: str) -> None:
    name = f"newsbot_nope_{uuid.uuid4().hex[:8]}"
    url = make_url(POSTGRES_ADMIN_URL).set(database=name, password=SECRET).render_as_string(hide_password=False)
    for command in (["stats"], ["db", "upgrade"], ["feeds", "list"]):
        line = _one_line_exit_2(run_newsbot(command, tmp_path, {"DATABASE_URL": url}, home=home))
        assert line == (
            f'newsbot: DATABASE_URL: database "{name}" does not exist on PostgreSQL at {postgres_server}; '
            f"create it with createdb {name}"
        )


def test_an_sqlite_file_that_cannot_be_made_is_one_line(tmp_path: Path, home: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_newsbot(["stats"], tmp_path, {"DATA_DIR": str(blocker / "data")}, home=home)
    _one_line_exit_2(result, "SQLite", str(blocker / "data" / "newsbot.sqlite3"))


@pytest.mark.parametrize(("args", "env"), [(["--debug", "stats"], {}), (["stats"], {"LOG_LEVEL": "DEBUG"})])
def test_debug_shows_the_traceback(args: list[str], env: dict[str, str], tmp_path: Path, home: Path) -> None:
    url = f"postgresql://newsbot:{SECRET}@localhost:{_closed_port()}/newsbot"
    result = run_newsbot(args, tmp_path, {"DATABASE_URL": url, **env}, home=home)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "connection refused" in result.stderr
    assert SECRET not in result.stderr


@pytest.fixture
def driverless_postgres_url() -> Iterator[str]:
    """A migrated scratch database, its URL spelled postgres:// without a driver (as Heroku and others do)."""
    with scratch_postgres(POSTGRES_ADMIN_URL, "newsbot_cfg") as url:
        parsed = make_url(url)
        yield parsed.set(drivername="postgres", password=SECRET).render_as_string(hide_password=False)


def test_postgresql_url_without_a_driver_works_and_service_commands_name_it(
    driverless_postgres_url: str, tmp_path: Path, home: Path
) -> None:
    for spelling in (driverless_postgres_url, driverless_postgres_url.replace("postgres://", "postgresql://", 1)):
        result = run_newsbot(["stats", "--json"], tmp_path, {"DATABASE_URL": spelling}, home=home)
        assert result.returncode == 0, result.stderr
    env = {"DATABASE_URL": driverless_postgres_url, "SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none"}
    result = run_newsbot(["shell"], tmp_path, env, home=home, stdin="")
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("newsbot: database postgresql postgresql+psycopg://")
    assert make_url(driverless_postgres_url).database in first and "***" in first
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("command", ["run", "worker"])
def test_services_say_which_database_first(
    command: str, driverless_postgres_url: str, tmp_path: Path, home: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in {"PATH", "LANG"}}
    env.update(
        PYTHONPATH=str(REPO), HOME=str(home), DATABASE_URL=driverless_postgres_url, SUMMARY_MODEL="none",
        TRANSLATION_MODEL="none", TELEGRAM_BOT_TOKEN="123:abc", TELEGRAM_BASE_URL=f"http://127.0.0.1:{_closed_port()}/bot",
        BROKER_URL="redis://127.0.0.1:6379/14", JOB_QUEUE=f"newsbot-cfg-{uuid.uuid4().hex[:8]}",
    )
    process = subprocess.Popen([sys.executable, "-m", "bot", command], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        first = process.stderr.readline().strip()
    finally:
        process.kill()
        process.wait(30)
    user = make_url(driverless_postgres_url).username
    assert first.startswith(f"newsbot: database postgresql postgresql+psycopg://{user}:***@")
    assert SECRET not in first
