"""`newsbot stories relink [--since DAYS]`: re-link stored articles into stories (docs/stories.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from bot.cli.common import cli_context


@click.group()
def stories() -> None:
    """Stories: the same news from many outlets, linked as one."""


@stories.command()
@click.option("--since", "days", type=click.FloatRange(min=0, min_open=True), default=None, metavar="DAYS",
              help="Only articles of the last DAYS days (default: all stored articles).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def relink(days: float | None, as_json: bool) -> None:
    """Re-link stored articles with the current rules, oldest first. Nothing is pushed again."""
    from bot.ingest.relink import relink_stories
    from bot.ingest.stories import StoryLinker

    since = datetime.now(UTC) - timedelta(days=days) if days is not None else None
    with cli_context(announce=True) as context:
        linker = StoryLinker(timedelta(days=context.settings.story_window_days))

        def progress(done: int, total: int) -> None:
            if not as_json:
                click.echo(f"  {done}/{total} articles", err=True)

        report = relink_stories(context.db, linker, since, progress=progress)
    if as_json:
        click.echo(json.dumps(report.__dict__, sort_keys=True))
        return
    click.echo(f"re-linked {report.articles} articles: {report.changed} changed story; "
               f"{report.stories_before} stories before, {report.stories_after} after")
