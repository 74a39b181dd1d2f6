"""`newsbot run`: the Telegram bot (long polling, or a webhook when WEBHOOK_URL is set)."""

from __future__ import annotations

import re

import click

from bot.cli.common import cli_context, cli_settings
from bot.config import EXIT_USAGE
from bot.i18n import I18n

# What Telegram accepts as a webhook secret token.
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@click.command()
def run() -> None:
    """Run the Telegram bot; without TELEGRAM_BOT_TOKEN, say how to get one and exit 2."""
    settings = cli_settings()
    i18n = I18n.load()
    if settings.telegram_bot_token is None:
        click.echo(f"newsbot: {i18n.plain(None, 'run.no_token')}", err=True)
        raise SystemExit(EXIT_USAGE)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if settings.webhook_url and not WEBHOOK_SECRET.fullmatch(secret):
        click.echo(f"newsbot: {i18n.plain(None, 'run.webhook_secret')}", err=True)
        raise SystemExit(EXIT_USAGE)
    from bot.telegram.app import TokenRefused, build_application, run_application

    with cli_context(settings, announce=True) as context:
        application = build_application(context, i18n)
        try:
            run_application(application, settings)
        except TokenRefused:
            click.echo(f"newsbot: {i18n.plain(None, 'run.token_refused')}", err=True)
            raise SystemExit(EXIT_USAGE) from None
