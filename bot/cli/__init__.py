"""The `newsbot` command. Subcommands live in their own modules and load lazily,
so `newsbot ingest` does not import torch and `newsbot --help` stays fast."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

# name -> "module:attribute"; each module owns its command.
SUBCOMMANDS: dict[str, str] = {
    "db": "bot.cli.db:db",
    "deliveries": "bot.cli.deliveries:deliveries",
    "ingest": "bot.cli.ingest:ingest",
    "feeds": "bot.cli.feeds:feeds",
    "summarize": "bot.cli.summarize:summarize",
    "models": "bot.cli.models:models",
    "run": "bot.cli.run:run",
    "shell": "bot.cli.shell:shell",
    "stats": "bot.cli.stats:stats",
    "stories": "bot.cli.stories:stories",
    "worker": "bot.cli.worker:worker",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in SUBCOMMANDS if self._module_exists(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None or not self._module_exists(cmd_name):
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    @staticmethod
    def _module_exists(name: str) -> bool:
        return importlib.util.find_spec(SUBCOMMANDS[name].split(":")[0]) is not None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a database that cannot be used is one line and exit 2, not a traceback."""
        from bot.config import EXIT_USAGE
        from bot.db import DatabaseUnavailable

        try:
            return super().invoke(ctx)
        except DatabaseUnavailable as error:
            # --debug or LOG_LEVEL=DEBUG (set up by the command before it connected): the traceback.
            if ctx.params.get("debug") or logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            click.echo(f"newsbot: {error}", err=True)
            ctx.exit(EXIT_USAGE)


@click.group(cls=LazyGroup, invoke_without_command=True)
@click.option("--debug", is_flag=True, help="Show the traceback of an error instead of one line.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """newsbot: stores news, summarizes and translates it, pushes it to tag followers."""
    if ctx.invoked_subcommand is None:
        # With a token: the Telegram bot. Without one: the same conversation in this terminal.
        from bot.cli.common import cli_settings
        from bot.i18n import I18n

        if cli_settings().telegram_bot_token is not None:
            ctx.invoke(cli.get_command(ctx, "run"))  # type: ignore[arg-type]  # None only for an unknown name
            return
        click.echo(I18n.load().plain(None, "shell.no_token"), err=True)
        ctx.invoke(cli.get_command(ctx, "shell"))  # type: ignore[arg-type]  # None only for an unknown name


# Commands that run models restart once with the allocator and OpenMP settings (docs/speed.md).
MODEL_COMMANDS = frozenset({"run", "shell", "summarize", "worker"})


def _prepare_model_runtime() -> None:
    """Re-exec with MODEL_ALLOCATOR preloaded and passive OpenMP threads, when not done yet."""
    from pydantic import ValidationError

    from bot.config import Settings
    from summarizer.speed import reexec_with_runtime

    try:
        allocator = Settings().model_allocator
    except ValidationError:
        return  # the command itself reports the bad setting
    reexec_with_runtime(allocator)


def main() -> None:
    """Entry point of the `newsbot` script and `python -m bot`."""
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "run")
    if command in MODEL_COMMANDS:
        _prepare_model_runtime()
    cli(prog_name="newsbot", args=sys.argv[1:])
