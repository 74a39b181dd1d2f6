"""`newsbot db ...`: schema migrations."""

from __future__ import annotations

import click

from bot.cli.common import cli_settings
from bot.db import open_database
from bot.db.migrate import current_revision, downgrade, upgrade


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    database = open_database(cli_settings().database_url)
    upgrade(database.engine, revision)
    click.echo(f"database at revision {current_revision(database.engine)}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    database = open_database(cli_settings().database_url)
    downgrade(database.engine, revision)
    click.echo(f"database at revision {current_revision(database.engine)}")


@db.command("current")
def db_current() -> None:
    """Print the database's current revision."""
    database = open_database(cli_settings().database_url)
    click.echo(current_revision(database.engine) or "empty")
