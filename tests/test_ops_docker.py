"""Dockerfile and docker-compose.yml agree with the real settings, CLI commands and packaging.

Docker itself can't run here; these checks catch the drift that breaks images silently: a
renamed setting, a removed command, a torch pin out of step, a file the image no longer gets.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import SUBCOMMANDS, cli
from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
# Variables read by other programs than newsbot (the images' own, Hugging Face's).
FOREIGN_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "HF_HOME", "HF_HUB_OFFLINE", "PYTHONUNBUFFERED",
                     "PATH", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    # Join continuation lines so each instruction is one line.
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def _instructions(dockerfile: str, keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in dockerfile.splitlines() if line.split(None, 1)[:1] == [keyword]]


def _newsbot_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image", "").startswith("newsbot")}


def test_compose_runs_bot_two_workers_postgres_and_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"bot", "worker", "postgres", "redis"} <= set(services)
    assert services["bot"]["command"] == ["run"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("bot", "worker", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    for name in ("bot", "worker"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_compose_commands_are_real_newsbot_commands(compose: dict[str, Any]) -> None:
    runner = CliRunner()
    for name, service in _newsbot_services(compose).items():
        command = service["command"]
        assert command[0] in SUBCOMMANDS, f"{name}: unknown command {command[0]}"
        # `--help` after the full argument list proves click accepts the subcommand path.
        result = runner.invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"


def test_compose_environment_names_are_real_settings(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for variable in environment:
            if name in ("postgres", "redis"):
                continue
            assert variable in SETTING_NAMES | FOREIGN_VARIABLES, f"{name}: {variable} is not a newsbot setting"
        if name in _newsbot_services(compose):
            # Every value must pass the settings' own validation.
            values = {k.lower(): v for k, v in environment.items() if k in SETTING_NAMES}
            Settings(_env_file=None, **values)  # type: ignore[call-arg]  # _env_file: a pydantic-settings option, no field


def test_compose_database_and_broker_point_at_compose_services(compose: dict[str, Any]) -> None:
    environment = compose["services"]["worker"]["environment"]
    postgres = compose["services"]["postgres"]["environment"]
    expected = (
        f"postgresql+psycopg://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert environment["DATABASE_URL"] == expected
    assert environment["BROKER_URL"].startswith("redis://redis:6379")
    # The healthchecks probe the port the newsbot processes serve on.
    port = environment["HEALTH_PORT"]
    for name in ("bot", "worker"):
        assert f":{port}/readyz" in " ".join(compose["services"][name]["healthcheck"]["test"])


def test_dockerfile_is_multi_stage_non_root_with_volumes(dockerfile: str) -> None:
    stages = _instructions(dockerfile, "FROM")
    assert len(stages) == 2 and stages[0].endswith("AS builder") and stages[1].endswith("AS runtime")
    assert "--from=builder /opt/venv /opt/venv" in _instructions(dockerfile, "COPY")
    users = _instructions(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0")
    volume_line = _instructions(dockerfile, "VOLUME")[0]
    assert "/data" in volume_line and "/models" in volume_line
    # Baking models must happen before VOLUME, or Docker discards what the step wrote.
    lines = dockerfile.splitlines()
    bake = next(i for i, line in enumerate(lines) if "newsbot models fetch" in line)
    volume = next(i for i, line in enumerate(lines) if line.startswith("VOLUME"))
    assert bake < volume
    assert _instructions(dockerfile, "ENTRYPOINT") == ['["newsbot"]']


def test_dockerfile_torch_pin_matches_pyproject(dockerfile: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = next(dep for dep in project["dependencies"] if dep.replace(" ", "").startswith("torch=="))
    version = pinned.split("==")[1]
    match = re.search(r"pip install torch==(\S+) --index-url https://download\.pytorch\.org/whl/cpu", dockerfile)
    assert match is not None and match.group(1) == version


def test_dockerfile_copies_every_package_and_its_environment_names_are_settings(dockerfile: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = " ".join(_instructions(dockerfile, "COPY"))
    for package in packages:
        assert f"COPY {package} ./{package}" in f"COPY {copied}" or f"{package} ./{package}" in copied
        assert (ROOT / package).is_dir()
    assert project["project"]["readme"] in copied
    for env_line in _instructions(dockerfile, "ENV"):
        for variable in re.findall(r"(\w+)=", env_line):
            assert variable in SETTING_NAMES | FOREIGN_VARIABLES, variable
    assert "HEALTH_PORT=9090" in " ".join(_instructions(dockerfile, "ENV"))


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", ".git", "data/"} <= ignored
    for needed in ("bot", "summarizer", "pyproject.toml", "README.md"):
        assert needed not in ignored
