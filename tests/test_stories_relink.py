"""`newsbot stories relink [--since DAYS]`: stored articles re-linked with the current rules, nothing pushed again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, Delivery, DeliveryStatus, StoryBand, StoryEdit
from bot.ingest.relink import relink_stories
from bot.ingest.service import ArticleInput
from bot.ingest.stories import StoryLinker
from bot.services.fanout import FanoutService

from test_fanout import World
from test_stories import UNRELATED, WIRE, WIRE_ANTARA, WIRE_KOMPAS

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)


def store(world: World, body: str, url: str, at: datetime) -> int:
    item = ArticleInput(body=body, url=url, tags=["Aceh"], lang="id", published_at=at)
    return world.ingest_service.ingest(item).article_id


def as_if_stored_by_old_rules(db: Database) -> None:
    """Every article its own story and no band index: what the rules before 0004 left for these copies."""
    with db.session() as session:
        session.execute(update(Article).values(story_id=Article.id))
        session.execute(delete(StoryBand))
        session.execute(delete(StoryEdit))


def stories(db: Database) -> dict[int, int]:
    with db.session() as session:
        return dict(session.execute(select(Article.id, Article.story_id)).all())


def test_relink_joins_the_copies_without_pushing_again(database: Database, settings: Settings) -> None:
    world = World(database, settings)
    world.chat(7, "Aceh")
    first = store(world, WIRE, "https://poros.example/a", NOW - timedelta(hours=5))
    kompas = store(world, WIRE_KOMPAS, "https://kompas.example/a", NOW - timedelta(hours=4))
    other = store(world, UNRELATED, "https://bank.example/bi", NOW - timedelta(hours=3))
    as_if_stored_by_old_rules(database)
    antara = store(world, WIRE_ANTARA, "https://antara.example/a", NOW - timedelta(hours=2))
    FanoutService(database).run_once()
    # Old rules: chat 7 got every copy as its own story (three pushes of one story).
    assert sorted(a for a, _, _ in world.deliveries()) == sorted([first, kompas, other, antara])
    with database.session() as session:
        fanned = dict(session.execute(select(Article.id, Article.fanned_out_at)).all())

    report = relink_stories(database, StoryLinker(timedelta(days=settings.story_window_days)))
    assert (report.articles, report.changed, report.stories_before, report.stories_after) == (4, 2, 4, 2)
    assert stories(database) == {first: first, kompas: first, antara: first, other: other}
    with database.session() as session:
        assert dict(session.execute(select(Article.id, Article.fanned_out_at)).all()) == fanned
        assert session.scalar(select(func.count()).select_from(StoryEdit)) == 0  # no footer edits either
        assert session.scalar(select(func.count(func.distinct(StoryBand.article_id)))) == 4
        by_story = session.execute(select(Delivery.story_id, Delivery.article_id).order_by(Delivery.article_id)).all()
    assert FanoutService(database).run_once().articles == []  # nothing new to push
    # The chat's deliveries of the merged copies: one moved to the surviving story, the rest stay.
    assert (first, first) in by_story and (other, other) in by_story
    # A fourth outlet's copy now finds the chat already served: no push.
    store(world, WIRE_KOMPAS.replace("KOMPAS.com –", "DETIK.com –"), "https://detik.example/a", NOW - timedelta(hours=1))
    FanoutService(database).run_once()
    assert len(world.deliveries()) == 4
    assert {status for _, _, status in world.deliveries()} == {DeliveryStatus.PENDING}


def test_relink_since_days_leaves_older_articles_alone(database: Database, settings: Settings) -> None:
    world = World(database, settings)
    old = store(world, WIRE, "https://poros.example/a", NOW - timedelta(days=10))
    old_copy = store(world, WIRE_KOMPAS, "https://kompas.example/a", NOW - timedelta(days=10) + timedelta(hours=1))
    fresh = store(world, UNRELATED, "https://bank.example/bi", NOW - timedelta(hours=3))
    fresh_copy = store(world, UNRELATED.replace("Bank Indonesia", "BI"), "https://bank2.example/bi", NOW - timedelta(hours=2))
    as_if_stored_by_old_rules(database)
    report = relink_stories(database, StoryLinker(timedelta(days=3)), NOW - timedelta(days=1))
    assert report.articles == 2
    assert stories(database) == {old: old, old_copy: old_copy, fresh: fresh, fresh_copy: fresh}


def test_cli_relink_prints_what_it_did(sqlite_database: Database, tmp_path: Path) -> None:
    from conftest import make_settings

    url = str(sqlite_database.engine.url)
    world = World(sqlite_database, make_settings(url, tmp_path))
    first = store(world, WIRE, "https://poros.example/a", NOW - timedelta(hours=5))
    copy = store(world, WIRE_KOMPAS, "https://kompas.example/a", NOW - timedelta(hours=4))
    as_if_stored_by_old_rules(sqlite_database)
    env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(tmp_path), "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(REPO), "SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none"}
    done = subprocess.run([sys.executable, "-m", "bot", "stories", "relink", "--since", "2", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"articles": 2, "changed": 1, "stories_before": 2, "stories_after": 1}
    assert stories(sqlite_database) == {first: first, copy: first}
    bad = subprocess.run([sys.executable, "-m", "bot", "stories", "relink", "--since", "0"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--since" in bad.stderr
