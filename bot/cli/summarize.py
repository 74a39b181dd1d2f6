"""`newsbot summarize SOURCE... [--lang CODE] [--json]`: summaries of files, folders, URLs or article ids."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from bot.cli.common import cli_context, cli_settings, expand_sources, is_url

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.services.contracts import ArticleSummary
    from bot.services.summaries import SummaryService

EXIT_SOME_FAILED = 1
_LANG = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class _Resolved:
    """A source and the stored article it became."""

    source: str
    article_id: int


def _resolve(sources: tuple[str, ...], settings: Settings, db: Any) -> tuple[list[_Resolved], list[str]]:
    """Stored article ids for every source (ingesting files and URLs), and error lines."""
    from sqlalchemy import select

    from bot.db.models import Article
    from bot.ingest.fetch import Fetcher, fetch_article
    from bot.ingest.loaders import read_file
    from bot.ingest.service import IngestError, IngestService
    from bot.tags import TagError, TagService

    resolved: list[_Resolved] = []
    errors: list[str] = []
    tags = TagService(db, settings)
    try:
        tags.ensure_aliases_loaded()  # so "Russia" lands on the "Rusia" tag, as with `newsbot ingest`
    except TagError as error:
        return [], [str(error)]
    ingest = IngestService(db, settings, tags)
    with Fetcher(settings) as fetcher:
        for source in sources:
            for name, path in expand_sources(source, literal=lambda source: source.isdigit()):
                try:
                    if name.isdigit():
                        with db.session() as session:
                            found = session.scalar(select(Article.id).where(Article.id == int(name)))
                        if found is None:
                            raise IngestError(f"no stored article with id {name}")
                        resolved.append(_Resolved(name, int(name)))
                        continue
                    if is_url(name):
                        item = fetch_article(name, settings, fetcher=fetcher)
                    elif "://" in name:
                        raise IngestError(f"only http and https URLs can be fetched: {name[:200]}")
                    elif path is not None and path.is_dir():
                        raise IngestError(f"{name}: folder has no files")
                    elif path is None or (not path.exists() and not path.is_symlink()):
                        raise IngestError(f"{name}: no such file, folder, URL or article id")
                    else:
                        item = read_file(path, settings)
                    resolved.append(_Resolved(name, ingest.ingest(item).article_id))
                except IngestError as error:
                    message = str(error)
                    errors.append(message if message.startswith(name) else f"{name}: {message}")
    return resolved, errors


def _record(source: str, original: ArticleSummary, translated: ArticleSummary | None) -> dict[str, Any]:
    """The --json object of one source."""
    translation = None
    if translated is not None and translated.translated_from is not None:
        translation = {
            "lang": translated.lang,
            "title": translated.title,
            "summary": translated.text,
            "model": translated.translation_model,
        }
    return {
        "source": source,
        "id": original.article_id,
        "title": original.title,
        "lang": original.lang,
        "summary": original.text,
        "method": original.method.value,
        "model": original.model,
        "translation": translation,
    }


def _notices(service: SummaryService, lang: str | None, results: list[dict[str, Any]]) -> list[str]:
    """One line per model that could not be used (each said once)."""
    engine = service.engine
    failures = engine.models.failures()
    lines = []
    summary_models = {engine.config.summary_model, *engine.config.summary_model_overrides.values()}
    for model_id in sorted(summary_models):
        if model_id in failures:
            lines.append(
                f"summary model {model_id} is unavailable ({failures[model_id]}); "
                "using extractive summaries. To fix: run `newsbot models fetch` while online, "
                "or set SUMMARY_MODEL=none to silence this."
            )
    if lang and any(record["lang"] != lang and record["translation"] is None for record in results):
        if not engine.config.translation_enabled:
            lines.append(f"translation to {lang} is off (TRANSLATION_MODEL=none); showing the original language.")
        else:
            missing = sorted(model_id for model_id in failures if model_id not in summary_models)
            detail = f" (unavailable: {', '.join(missing)})" if missing else ""
            lines.append(f"no translation model for {lang}{detail}; showing the original language.")
    return lines


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--lang", metavar="CODE", help="Also translate title and summary into this language (ISO 639-1).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per source on its own line.")
def summarize(sources: tuple[str, ...], lang: str | None, as_json: bool) -> None:
    """Summarize SOURCE files, folders, http(s) URLs or stored article ids (in batches)."""
    if lang is not None:
        lang = lang.strip().lower()
        if not _LANG.match(lang):
            raise click.UsageError(f"--lang expects a language code such as en or id, got {lang!r}")
    from bot.services.summaries import SummaryService

    settings = cli_settings(answers_users=False)
    # This command explains an unavailable model itself, once, below; skip the log's copy.
    logging.getLogger("summarizer.models").setLevel(logging.ERROR)
    with cli_context(settings) as context:
        resolved, errors = _resolve(sources, settings, context.db)
        for line in errors:
            click.echo(f"newsbot summarize: {line}", err=True)
        service = SummaryService(context.db, settings)
        ids = list(dict.fromkeys(item.article_id for item in resolved))
        originals = {summary.article_id: summary for summary in service.summarize_articles(ids, None)}
        translated: dict[int, ArticleSummary] = {}
        if lang:
            translated = {summary.article_id: summary for summary in service.summarize_articles(ids, lang)}
        records = [
            _record(item.source, originals[item.article_id], translated.get(item.article_id)) for item in resolved
        ]
        for line in _notices(service, lang, records):
            click.echo(f"newsbot summarize: {line}", err=True)
        for record in records:
            if as_json:
                click.echo(json.dumps(record, ensure_ascii=False))
                continue
            how = record["model"] or "extractive"
            click.echo(f"#{record['id']} {record['title']} [{record['lang']}] ({how})")
            click.echo(record["summary"])
            if record["translation"]:
                translation = record["translation"]
                click.echo(f"[{translation['lang']}, machine translation] {translation['title']}")
                click.echo(translation["summary"])
            click.echo()
    if errors:
        raise SystemExit(EXIT_SOME_FAILED)
