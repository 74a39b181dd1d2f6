"""Helpers shared by the CLI commands: settings, context, and logging set-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.config import Settings, load_settings
from bot.context import AppContext, open_context
from bot.logs import setup_logging


def cli_settings() -> Settings:
    """Load settings (exit 2 on a bad one) and configure logging with the token redacted."""
    settings = load_settings()
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    setup_logging(settings.log_level, settings.log_format, secrets=[token])
    return settings


@contextmanager
def cli_context(settings: Settings | None = None) -> Iterator[AppContext]:
    """An AppContext for one CLI command, migrated and closed afterwards."""
    context = open_context(settings or cli_settings())
    try:
        yield context
    finally:
        context.close()
