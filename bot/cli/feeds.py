"""`newsbot feeds add|list|remove|poll`: manage and poll RSS/Atom feeds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from bot.cli.common import cli_context, cli_settings

if TYPE_CHECKING:
    from bot.ingest.feeds import FeedService

EXIT_SOME_FAILED = 1


@contextmanager
def _feed_service() -> Iterator[FeedService]:
    from bot.ingest.feeds import FeedService

    with cli_context(cli_settings()) as context:
        service = FeedService(context.db, context.settings)
        try:
            yield service
        finally:
            service.close()


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.group()
def feeds() -> None:
    """RSS/Atom feeds the bot polls for articles."""


@feeds.command("add")
@click.argument("url")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Tag every article of this feed (repeatable).")
def feeds_add(url: str, tags: tuple[str, ...]) -> None:
    """Register the feed at URL (adding tags to it when it is already registered)."""
    from bot.ingest.feeds import FeedError

    with _feed_service() as service:
        try:
            source = service.add(url, tags)
        except FeedError as error:
            raise click.UsageError(str(error)) from None
        tag_text = ", ".join(source.default_tags or []) or "no tags"
        click.echo(f"feed #{source.id} {source.url} ({tag_text}); polled within a minute by the bot, or run `newsbot feeds poll`")


@feeds.command("list")
def feeds_list() -> None:
    """Show every feed with its status, failures, last error and next poll."""
    with _feed_service() as service:
        sources = service.list()
    if not sources:
        click.echo("no feeds; add one with `newsbot feeds add URL`")
        return
    for source in sources:
        status = source.status.value if hasattr(source.status, "value") else str(source.status)
        marker = "  <-- FAILING" if status == "failing" else ""
        click.echo(f"#{source.id} [{status}] {source.url}{marker}")
        click.echo(f"    name: {source.name}")
        click.echo(f"    tags: {', '.join(source.default_tags or []) or '-'}")
        click.echo(
            f"    last poll: {_when(source.last_polled_at)}"
            f"  next poll: {_when(source.next_poll_at) if source.next_poll_at else 'due now'}"
            f"  consecutive failures: {source.failure_count or 0}"
        )
        if source.last_error:
            click.echo(f"    last error: {source.last_error}")


@feeds.command("remove")
@click.argument("target", metavar="URL|ID")
def feeds_remove(target: str) -> None:
    """Stop polling a feed (its stored articles stay)."""
    with _feed_service() as service:
        removed = service.remove(target)
    if not removed:
        click.echo(f"newsbot feeds: no feed {target}", err=True)
        raise SystemExit(EXIT_SOME_FAILED)
    click.echo(f"removed feed {target}")


@feeds.command("poll")
def feeds_poll() -> None:
    """Poll every feed once now (exit 1 when any feed failed)."""
    with _feed_service() as service:
        results = service.poll_all()
    if not results:
        click.echo("no feeds to poll")
        return
    failed = 0
    for result in results:
        if result.error:
            failed += 1
            click.echo(f"newsbot feeds: #{result.source_id} {result.url}: {result.error} [{result.status.value}]", err=True)
            continue
        state = (
            "not modified" if result.not_modified else f"{result.new} new, {result.duplicates} known, {result.skipped} skipped"
        )
        click.echo(f"#{result.source_id} {result.url}: {state}")
        for message in result.entry_errors:
            click.echo(f"    skipped: {message}", err=True)
    if failed:
        raise SystemExit(EXIT_SOME_FAILED)
