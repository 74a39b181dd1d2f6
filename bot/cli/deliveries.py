"""`newsbot deliveries list|requeue`: parked deliveries (those that gave up), and trying them again."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

from bot.cli.common import cli_context

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """'30m', '2h', '1d' (that long ago) or an ISO date/time (UTC when no zone is given)."""
    if value is None:
        return None
    now = now or datetime.now(UTC)
    text = value.strip().lower()
    if match := _AGO.match(text):
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter("use an ISO date/time (2026-12-01T06:00) or an age such as 30m, 2h, 1d") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


_SINCE_HELP = "Only those parked since then: an ISO date/time (UTC) or an age such as 30m, 2h, 1d."


@click.group()
def deliveries() -> None:
    """Pushes that gave up after DELIVERY_MAX_ATTEMPTS ("parked")."""


@deliveries.command("list")
@click.option("--chat", "chat_id", type=int, default=None, help="Only this chat's.")
@click.option("--since", default=None, help=_SINCE_HELP)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def deliveries_list(chat_id: int | None, since: str | None, limit: int) -> None:
    """List parked deliveries, most recent first."""
    from bot.services.deliveries import DeliveryService

    when = parse_since(since)
    with cli_context() as context:
        parked = DeliveryService(context.db, context.settings).parked(limit, chat_id=chat_id, since=when)
    if not parked:
        click.echo("no parked deliveries")
        return
    for row in parked:
        updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
        error = " ".join((row.last_error or "").split())[:120]
        click.echo(f"#{row.id}  article {row.article_id}  chat {row.chat_id}  {row.attempts} tries  "
                   f"{updated.astimezone(UTC):%Y-%m-%d %H:%M} UTC  {error}")


@deliveries.command("requeue")
@click.option("--chat", "chat_id", type=int, default=None, help="Only this chat's.")
@click.option("--since", default=None, help=_SINCE_HELP)
def deliveries_requeue(chat_id: int | None, since: str | None) -> None:
    """Give parked deliveries a fresh set of tries; the running bot sends them within a second."""
    from bot.services.deliveries import DeliveryService

    when = parse_since(since)
    with cli_context() as context:
        count = DeliveryService(context.db, context.settings).requeue_parked(chat_id=chat_id, since=when)
    click.echo(f"re-queued {count} parked deliveries")
