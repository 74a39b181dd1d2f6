"""Settings from the environment and a .env file.

Every setting here is listed, with a comment, in .env.example. `load_settings()` turns a bad
value into one clear line naming the setting and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EXIT_USAGE = 2


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All of newsbot's settings; names match the environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- storage -------------------------------------------------------------------------
    database_url: str = Field(
        default="sqlite:///data/newsbot.sqlite3",
        description="SQLAlchemy URL; sqlite:///path or postgresql+psycopg://user@host/db",
    )
    data_dir: Path = Field(default=Path("data"), description="folder for SQLite and caches")

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
    near_duplicate_distance: int = Field(default=6, ge=0, le=64)

    # --- models --------------------------------------------------------------------------
    summary_model: str = "csebuetnlp/mT5_multilingual_XLSum"
    translation_model: str = "Helsinki-NLP/opus-mt-{src}-{tgt}"
    model_cache_dir: Path | None = None
    model_backend: str = Field(default="auto", pattern="^(auto|transformers|ctranslate2)$")
    model_precision: str = Field(default="auto", pattern="^(auto|fp32|bf16|int8)$")
    model_threads: int = Field(default=0, ge=0)
    model_allocator: str = Field(default="auto", pattern="^(auto|tcmalloc|jemalloc|system)$")
    summary_num_beams: int = Field(default=4, ge=1)
    summary_max_new_tokens: int = Field(default=84, ge=8)
    summary_max_input_tokens: int = Field(default=512, ge=32)
    summary_sentences: int = Field(default=3, ge=1, le=10)
    translation_num_beams: int = Field(default=4, ge=1)
    model_batch_size: int = Field(default=8, ge=1)
    summary_model_overrides: str = Field(default="", description="per-language SUMMARY_MODEL: en=ID,id=ID")
    model_languages: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["id", "en"])
    hf_hub_offline: bool = False

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
    command_rate_limit: int = Field(default=20, ge=1, description="commands per chat per minute")
    delivery_max_attempts: int = Field(default=5, ge=1)

    # --- scale-out and operations -------------------------------------------------------
    broker_url: str | None = None
    health_port: int | None = Field(default=None, gt=0, lt=65536)
    health_listen: str = "127.0.0.1"
    job_queue: str = Field(default="newsbot", pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    job_visibility_timeout: float = Field(default=3600.0, gt=0)
    job_max_retries: int = Field(default=10, ge=0)
    job_test_delay: float = Field(default=0.0, ge=0)
    summary_wait: float = Field(default=5.0, ge=0)

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
        for item in value.split(","):
            if item.strip() and not all(part.strip() for part in item.partition("=")[::2]):
                raise ValueError(f"expected LANG=MODEL pairs separated by commas, got {item.strip()!r}")
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("broker_url", "webhook_url", "model_cache_dir", "tag_aliases_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_bot_token", "webhook_secret", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class SettingsError(Exception):
    """A setting has a bad value; the message names it in one line."""


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the first bad setting, without echoing secret values."""
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first.get("loc") else "settings"
    return f"invalid setting {name}: {first['msg']}"


def load_settings(**overrides: object) -> Settings:
    """Build Settings or exit 2 with one clear line (no traceback)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        print(f"newsbot: {describe_validation_error(error)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
