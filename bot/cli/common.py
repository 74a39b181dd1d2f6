"""Helpers shared by the CLI commands: settings, context, and logging set-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from bot.config import Settings, load_settings
from bot.context import AppContext, open_context
from bot.db import describe_database
from bot.logs import setup_logging

# Commands that start long-running services: they say first which database they use.
SERVICE_COMMANDS = frozenset({"run", "shell", "worker"})


def secrets_of(settings: Settings) -> list[str]:
    """Values no log line may show: the bot token and the webhook secret."""
    return [secret.get_secret_value() for secret in (settings.telegram_bot_token, settings.webhook_secret) if secret]


def cli_settings(*, log_file: bool = False) -> Settings:
    """Load settings (exit 2 on a bad one) and configure logging with the secrets redacted.

    log_file: log to DATA_DIR/logs/newsbot.log, and only short WARNING+ lines to the terminal
    (the shell, whose terminal is the conversation).
    """
    settings = load_settings()
    setup_logging(
        settings.log_level,
        settings.log_format,
        secrets=secrets_of(settings),
        log_file=settings.data_dir / "logs" / "newsbot.log" if log_file else None,
    )
    return settings


def announce_database(settings: Settings) -> None:
    """The first line of a service command: which database it uses (password hidden)."""
    click.echo(f"newsbot: database {describe_database(settings.database_url)}", err=True)


def _running_service_command() -> bool:
    context = click.get_current_context(silent=True)
    return context is not None and context.info_name in SERVICE_COMMANDS


@contextmanager
def cli_context(settings: Settings | None = None) -> Iterator[AppContext]:
    """An AppContext for one CLI command, migrated and closed afterwards."""
    settings = settings or cli_settings()
    if _running_service_command():
        announce_database(settings)
    context = open_context(settings)
    try:
        yield context
    finally:
        context.close()
