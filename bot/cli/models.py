"""`newsbot models list|fetch`: the configured models, and downloading them for offline use."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import click

from bot.cli.common import cli_settings
from bot.config import EXIT_USAGE

if TYPE_CHECKING:
    from summarizer import SummarizerConfig

EXIT_FAILED = 1


@click.group()
def models() -> None:
    """The summary and translation models newsbot is configured to use."""


@models.command("list")
def list_models() -> None:
    """Show each configured model and whether it is in the local cache."""
    from bot.services.summaries import summarizer_config
    from summarizer.fetch import is_cached, planned_models

    config = summarizer_config(cli_settings())
    planned = planned_models(config)
    if not planned:
        click.echo("no models configured: extractive summaries, no translation")
        return
    for model in planned:
        if model.local:
            state = "local folder" if os.path.isdir(os.path.expanduser(model.model_id)) else "missing folder"
        else:
            state = "cached" if is_cached(model.model_id, config.cache_dir) else "not cached"
        click.echo(f"{model.role.value:11s} {model.detail:9s} {model.model_id}  [{state}]")


@models.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be downloaded.")
@click.option("--convert/--no-convert", default=True, show_default=True,
              help="Also store each downloaded model's CTranslate2 conversion (when MODEL_BACKEND runs "
                   "CTranslate2), so servers and images start without converting.")
def fetch(dry_run: bool, convert: bool) -> None:
    """Download the configured models into the cache (MODEL_CACHE_DIR), for offline servers and images."""
    from bot.services.summaries import summarizer_config
    from summarizer.fetch import Role, download, planned_models
    from summarizer.models import hub_reachable

    settings = cli_settings()
    # One INFO line per HTTP request would bury the progress bars.
    for name in ("httpx", "httpx2", "huggingface_hub"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    config = summarizer_config(settings)
    remote = [model for model in planned_models(config) if not model.local]
    if not remote:
        click.echo("nothing to download: no Hub models configured (local folders or none)")
        return
    if dry_run:
        for model in remote:
            click.echo(f"would download {model.model_id} ({model.role.value}, {model.detail})")
        return
    if config.offline:
        click.echo(
            "newsbot models fetch: HF_HUB_OFFLINE is set, so nothing can be downloaded; "
            "run it where the Hugging Face Hub is reachable with HF_HUB_OFFLINE=0",
            err=True,
        )
        raise SystemExit(EXIT_USAGE)
    if not hub_reachable(config.hub_probe_timeout):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        click.echo(
            f"newsbot models fetch: cannot reach the Hugging Face Hub at {endpoint}; "
            "check the network or proxy (HTTPS_PROXY), or copy a filled cache folder (MODEL_CACHE_DIR)",
            err=True,
        )
        raise SystemExit(EXIT_FAILED)
    failed = 0
    fetched: list[str] = []
    for model in remote:
        click.echo(f"downloading {model.model_id} ({model.role.value}, {model.detail})", err=True)
        try:
            folder = download(model.model_id, config.cache_dir)
        except Exception as error:
            failed += 1
            hint = "; translation will pivot through English" if model.role is Role.TRANSLATION else ""
            click.echo(
                f"newsbot models fetch: {model.model_id}: {type(error).__name__}: {str(error)[:300]}{hint}",
                err=True,
            )
            continue
        click.echo(f"{model.model_id} -> {folder}")
        fetched.append(model.model_id)
    if convert and fetched:
        store_conversions(config, fetched)
    if failed:
        raise SystemExit(EXIT_FAILED)


def store_conversions(config: SummarizerConfig, model_ids: list[str]) -> None:
    """Load each model once with the configured backend: CTranslate2 converts it and stores the result."""
    from summarizer import Engine
    from summarizer.config import Backend
    from summarizer.ct2 import resolve

    backend, precision = resolve(config.backend, config.precision)
    if backend is not Backend.CTRANSLATE2:
        return
    engine = Engine(config)
    click.echo(f"converting {len(model_ids)} model(s) for CTranslate2 ({precision.value})", err=True)
    failed = set(engine.preload(only=set(model_ids)))
    for model_id in model_ids:
        if model_id in failed:
            continue  # the load failure was logged with its reason
        loaded = engine.models.get(model_id)
        if loaded.backend is Backend.CTRANSLATE2:
            click.echo(f"{model_id}: CTranslate2 {loaded.precision.value} stored in {loaded.runner.folder}")
        else:
            click.echo(f"{model_id}: runs with transformers (CTranslate2 cannot convert it)")
