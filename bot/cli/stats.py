"""`newsbot stats [--json]`: counts of articles, chats, subscriptions, summaries, deliveries."""

from __future__ import annotations

import json

import click

from bot.cli.common import cli_context
from bot.services.stats import collect_stats


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(as_json: bool) -> None:
    """Print the database's counts (the same as the admin's /stats)."""
    with cli_context() as context:
        snapshot = collect_stats(context.db)
    if as_json:
        click.echo(json.dumps(snapshot.to_dict(), sort_keys=True))
        return
    click.echo(f"articles       {snapshot.articles}")
    click.echo(f"chats          {snapshot.chats} ({snapshot.active_chats} active)")
    click.echo(f"subscriptions  {snapshot.subscriptions}")
    click.echo(f"summaries      {snapshot.summaries}")
    click.echo("deliveries     " + ", ".join(f"{status} {count}" for status, count in snapshot.deliveries.items()))
