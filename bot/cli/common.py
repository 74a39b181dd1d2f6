"""Helpers shared by the CLI commands: settings, context, and logging set-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from bot.config import Settings, load_settings
from bot.context import AppContext, open_context
from bot.db import describe_database
from bot.logs import setup_logging


def secrets_of(settings: Settings) -> list[str]:
    """Values no log line may show: the bot token and the webhook secret."""
    return [secret.get_secret_value() for secret in (settings.telegram_bot_token, settings.webhook_secret) if secret]


def cli_settings(*, log_file: bool = False, answers_users: bool = True) -> Settings:
    """Load settings (exit 2 on a bad one) and configure logging with the secrets redacted.

    log_file: log to DATA_DIR/logs/newsbot.log, and only short WARNING+ lines to the terminal
    (the shell, whose terminal is the conversation).
    answers_users: False for commands that only run models (worker, summarize): MODEL_NICENESS is
    for processes where commands share the cores with the models, so theirs keep full priority.
    """
    settings = load_settings()
    if not answers_users:
        settings = settings.model_copy(update={"model_niceness": 0})
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


@contextmanager
def cli_context(settings: Settings | None = None, *, announce: bool = False) -> Iterator[AppContext]:
    """An AppContext for one CLI command, migrated and closed afterwards.

    announce: say first which database is used (the commands that start services do).
    """
    settings = settings or cli_settings()
    if announce:
        announce_database(settings)
    context = open_context(settings)
    try:
        yield context
    finally:
        context.close()


def is_url(source: str) -> bool:
    """Whether a command-line source is an http(s) URL."""
    return source.lower().startswith(("http://", "https://"))


def expand_sources(source: str, *, literal: Callable[[str], bool]) -> Iterator[tuple[str, Path | None]]:
    """(display name, path) for each item of a SOURCE argument; a folder gives its files, sorted.

    URLs, other schemes and what `literal` accepts (stdin's '-', an article id) pass through as names.
    """
    if literal(source) or is_url(source) or "://" in source:
        yield source, None
        return
    path = Path(source)
    if path.is_dir():
        files = sorted(child for child in path.rglob("*") if child.is_file() and not child.name.startswith("."))
        if not files:
            yield source, path  # reported as an empty folder
        for child in files:
            yield str(child), child
    else:
        yield source, path
