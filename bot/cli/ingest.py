"""`newsbot ingest SOURCE...`: store articles from files, folders, URLs or standard input."""

from __future__ import annotations

import json
import sys

import click

from bot.cli.common import cli_context, cli_settings, expand_sources, is_url
from bot.config import EXIT_USAGE

EXIT_SOME_FAILED = 1


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Add this tag to every article (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per source on its own line.")
def ingest(sources: tuple[str, ...], tags: tuple[str, ...], as_json: bool) -> None:
    """Store articles from SOURCE files, folders, http(s) URLs, or - for standard input."""
    from bot.ingest.fetch import Fetcher, fetch_article
    from bot.ingest.loaders import read_file, read_stdin_bytes
    from bot.ingest.service import IngestError, IngestService
    from bot.tags import TagError, TagService, normalize_tag

    for tag in tags:
        if not normalize_tag(tag):
            raise click.UsageError(f"invalid tag {tag!r}: use 1-64 letters, digits and spaces")
    if sources.count("-") > 1:
        raise click.UsageError("standard input (-) can be read only once")

    settings = cli_settings()
    failures = 0
    with cli_context(settings) as context, Fetcher(settings) as fetcher:
        tag_service = TagService(context.db, settings)
        service = IngestService(context.db, settings, tag_service)
        try:
            tag_service.ensure_aliases_loaded()
        except TagError as error:
            click.echo(f"newsbot ingest: {error}", err=True)
            raise SystemExit(EXIT_USAGE) from None
        for source in sources:
            for name, path in expand_sources(source, literal=lambda source: source == "-"):
                kind = "stdin" if name == "-" else "url" if is_url(name) else "file"
                try:
                    if name == "-":
                        item = read_stdin_bytes(sys.stdin.buffer.read(settings.fetch_max_bytes + 1), settings, tags)
                    elif is_url(name):
                        item = fetch_article(name, settings, tags, fetcher=fetcher)
                    elif "://" in name:
                        raise IngestError(f"only http and https URLs can be fetched: {name[:200]}")
                    elif path is not None and path.is_dir():
                        raise IngestError(f"{name}: folder has no files")
                    else:
                        assert path is not None
                        item = read_file(path, settings, tags)  # says why a path cannot be read
                    result = service.ingest(item)
                except IngestError as error:
                    failures += 1
                    label = "standard input" if name == "-" else name
                    message = str(error)
                    prefix = "" if label[:200] in message else f"{label}: "  # name the source once
                    click.echo(f"newsbot ingest: {prefix}{message}", err=True)
                    continue
                if as_json:
                    record = {
                        "id": result.article_id,
                        "title": result.title,
                        "tags": result.tags,
                        "lang": result.lang,
                        "url": result.url,
                        "body": result.body,
                        "duplicate_of": result.duplicate_of,
                        "story_id": result.story_id,
                        "source": name,
                        "source_kind": kind,
                        "created": result.created,
                    }
                    click.echo(json.dumps(record, ensure_ascii=False))
                else:
                    state = "stored" if result.created else f"duplicate of #{result.duplicate_of}"
                    tag_text = ", ".join(result.tags) or "no tags"
                    click.echo(f"#{result.article_id} {state}: {result.title} [{result.lang or '?'}] ({tag_text})")
    if failures:
        raise SystemExit(EXIT_SOME_FAILED)
