"""`newsbot shell`: talk to the bot in this terminal, no Telegram needed."""

from __future__ import annotations

import asyncio
import getpass
import sys

import click

from bot.cli.common import cli_context, cli_settings
from bot.i18n import I18n


@click.command()
@click.option("--chat-id", type=int, default=None, help="Id of the local chat (default: 1).")
@click.option("--lang", default=None, help="Language of a new local chat: id or en (default: en).")
def shell(chat_id: int | None, lang: str | None) -> None:
    """Chat with the bot in the terminal; pushes for the tags you follow appear as they arrive."""
    from bot.shell import SHELL_CHAT_ID, run_shell_app

    # The terminal is the conversation: logs go to DATA_DIR/logs/newsbot.log, warnings stay short.
    settings = cli_settings(log_file=True)
    i18n = I18n.load()
    with cli_context(settings, announce=True) as context:
        asyncio.run(
            run_shell_app(
                context, i18n, chat_id=chat_id or SHELL_CHAT_ID, user_lang=lang,
                stdin=sys.stdin, stdout=sys.stdout, interactive=sys.stdin.isatty(),
                user_name=getpass.getuser(),
            )
        )
