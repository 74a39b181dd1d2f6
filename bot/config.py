"""Settings from the environment and a .env file.

Every setting here is listed, with a comment, in .env.example. `load_settings()` turns a bad
value into one clear line naming the setting and exit code 2. An empty value (`HEALTH_PORT=`)
means "not set", in the environment and in .env alike, so .env.example works as copied.

The model settings take their defaults from the summarizer's own `SummarizerConfig`, and
`summarizer_config()` is the one place that turns Settings into a SummarizerConfig.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from summarizer.config import (
    DEFAULT_SUMMARY_MODEL,
    DEFAULT_TRANSLATION_MODEL,
    Backend,
    Precision,
    SummarizerConfig,
    parse_overrides,
)

EXIT_USAGE = 2
APP_NAME = "newsbot"
SQLITE_FILE = "newsbot.sqlite3"

# The summarizer's defaults: the model settings below take theirs from here, never re-state them.
_MODEL_DEFAULTS = SummarizerConfig()


def default_data_dir() -> Path:
    """The platform's per-user data folder for newsbot (DATA_DIR's default).

    Linux and other Unix: $XDG_DATA_HOME/newsbot, else ~/.local/share/newsbot; macOS:
    ~/Library/Application Support/newsbot; Windows: %LOCALAPPDATA%\\newsbot.
    A fixed folder, so running newsbot from another directory finds the same database.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / APP_NAME


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All of newsbot's settings; names match the environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `NAME=` means unset, in the environment and in .env
    )

    # --- storage -------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=default_data_dir, description="folder for the SQLite file and the shell's log"
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; default sqlite:///DATA_DIR/newsbot.sqlite3, or postgresql://user@host/db",
    )

    # --- logging -------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: str = Field(default="text", pattern="^(text|json)$")

    # --- ingestion -----------------------------------------------------------------------
    fetch_timeout: float = Field(default=15.0, gt=0)
    fetch_max_bytes: int = Field(default=5_000_000, gt=0)
    fetch_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    fetch_user_agent: str = "newsbot/0.1 (+https://github.com/newsbot)"
    feed_poll_interval: float = Field(default=300.0, gt=0)
    feed_max_backoff: float = Field(default=6 * 3600.0, gt=0)
    feed_failing_after: int = Field(default=5, gt=0)
    tag_aliases_file: Path | None = None
    push_max_age_hours: float = Field(
        default=48.0, ge=0, description="articles published longer ago are stored, not pushed; 0: no limit"
    )
    near_duplicate_distance: int = Field(default=6, ge=0, le=64)
    story_window_days: float = Field(default=3.0, gt=0, description="a story older than this starts a new story")

    # --- models --------------------------------------------------------------------------
    summary_model: str = DEFAULT_SUMMARY_MODEL
    translation_model: str = DEFAULT_TRANSLATION_MODEL
    model_cache_dir: Path | None = _MODEL_DEFAULTS.cache_dir
    model_backend: Backend = _MODEL_DEFAULTS.backend
    model_precision: Precision = _MODEL_DEFAULTS.precision
    model_threads: int = Field(default=_MODEL_DEFAULTS.threads, ge=0)
    model_niceness: int = Field(
        default=_MODEL_DEFAULTS.niceness, ge=0, le=19,
        description="in run and shell, models run this much below the bot's CPU priority, so commands get a core; 0: same",
    )
    model_allocator: str = Field(default="auto", pattern="^(auto|tcmalloc|jemalloc|system)$")
    summary_num_beams: int = Field(default=_MODEL_DEFAULTS.num_beams, ge=1)
    summary_max_new_tokens: int = Field(default=_MODEL_DEFAULTS.max_new_tokens, ge=8)
    summary_max_input_tokens: int = Field(default=_MODEL_DEFAULTS.max_input_tokens, ge=32)
    summary_sentences: int = Field(default=_MODEL_DEFAULTS.sentences, ge=1, le=10)
    translation_num_beams: int = Field(default=_MODEL_DEFAULTS.translation_num_beams, ge=1)
    model_batch_size: int = Field(default=_MODEL_DEFAULTS.batch_size, ge=1)
    summary_model_overrides: str = Field(default="", description="per-language SUMMARY_MODEL: en=ID,id=ID")
    model_languages: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(_MODEL_DEFAULTS.languages))
    hf_hub_offline: bool = _MODEL_DEFAULTS.offline

    # --- telegram ------------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, gt=0, lt=65536)
    send_rate_global: float = Field(default=30.0, gt=0)
    send_rate_per_chat: float = Field(default=1.0, gt=0)
    send_rate_per_group_minute: float = Field(default=20.0, gt=0)
    max_follows_per_chat: int = Field(default=50, ge=1)
    max_keywords_per_follow: int = Field(default=10, ge=1, description="tags and words in one follow, + and - included")
    max_follow_query_chars: int = Field(default=300, ge=10, le=4096)
    command_rate_limit: int = Field(default=20, ge=1, description="commands per chat per minute")
    delivery_max_attempts: int = Field(default=5, ge=1)

    # --- scale-out and operations -------------------------------------------------------
    broker_url: str | None = None
    health_port: int | None = Field(default=None, gt=0, lt=65536)
    health_listen: str = "127.0.0.1"
    job_queue: str = Field(default="newsbot", pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    job_visibility_timeout: float = Field(default=3600.0, gt=0)
    job_max_retries: int = Field(default=10, ge=0)
    summary_wait: float = Field(default=5.0, ge=0)
    worker_stall_timeout: float = Field(default=120.0, gt=0, description="a worker idle this long while jobs wait exits")
    summary_stall_timeout: float = Field(default=300.0, gt=0, description="the bot computes a summary queued this long itself")

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        # Derived here, not in a default, so DATA_DIR (from any source) decides where it lives.
        if not self.database_url.strip():
            self.database_url = f"sqlite:///{self.data_dir / SQLITE_FILE}"
        return self

    @field_validator("fetch_allowed_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("model_languages", mode="before")
    @classmethod
    def _parse_languages(cls, value: object) -> object:
        parsed = _split_csv(value)
        return [str(item).lower() for item in parsed] if isinstance(parsed, list) else parsed

    @field_validator("summary_model_overrides")
    @classmethod
    def _check_overrides(cls, value: str) -> str:
        parse_overrides(value)  # raises ValueError naming the bad pair
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: object) -> object:
        return _split_csv(value)



def summarizer_config(settings: Settings) -> SummarizerConfig:
    """The summarizer's configuration from newsbot's settings (the one place that maps them)."""
    from summarizer.models import env_offline

    return SummarizerConfig(
        summary_model=settings.summary_model,
        summary_model_overrides=parse_overrides(settings.summary_model_overrides),
        translation_model=settings.translation_model,
        languages=tuple(settings.model_languages),
        cache_dir=settings.model_cache_dir,
        offline=settings.hf_hub_offline or env_offline(),
        backend=settings.model_backend,
        precision=settings.model_precision,
        threads=settings.model_threads,
        niceness=settings.model_niceness,
        num_beams=settings.summary_num_beams,
        max_new_tokens=settings.summary_max_new_tokens,
        max_input_tokens=settings.summary_max_input_tokens,
        translation_num_beams=settings.translation_num_beams,
        batch_size=settings.model_batch_size,
        sentences=settings.summary_sentences,
    )


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the first bad setting, without echoing secret values."""
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first.get("loc") else "settings"
    return f"invalid setting {name}: {first['msg']}"


def load_settings(**overrides: Any) -> Settings:
    """Build Settings or exit 2 with one clear line (no traceback)."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        print(f"newsbot: {describe_validation_error(error)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
