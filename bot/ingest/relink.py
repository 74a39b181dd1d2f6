"""Re-link stored articles into stories with the current rules (`newsbot stories relink`).

Articles are taken oldest first (by the time the story window uses); each one's bands are
rebuilt and it is linked as if it had just arrived, against the articles before it. Nothing is
pushed again: `fanned_out_at` is left alone and no footer edit is requested. Deliveries of a
story that merged into another are moved to the surviving story id where the chat has none
there yet, so a later member of the merged story is not pushed to chats that already had it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from bot.db import Database
from bot.db.models import Article, Delivery, StoryBand
from bot.ingest.stories import StoryLinker, article_time, story_text

log = logging.getLogger(__name__)

BATCH = 500  # articles per transaction


@dataclass
class RelinkReport:
    """What a re-link did."""

    articles: int = 0
    changed: int = 0  # articles whose story changed
    stories_before: int = 0
    stories_after: int = 0


def relink_stories(
    db: Database,
    linker: StoryLinker,
    since: datetime | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> RelinkReport:
    """Re-link every article from `since` on (all when None); see the module docstring."""
    with db.session() as session:
        rows = session.execute(select(Article.id, Article.published_at, Article.created_at, Article.story_id)).all()
    timed = [(article_time(published, created), article_id, story_id) for article_id, published, created, story_id in rows]
    chosen = sorted(item for item in timed if since is None or item[0] >= since)
    report = RelinkReport(articles=len(chosen))
    old_story = {article_id: story_id or article_id for _, article_id, story_id in chosen}
    report.stories_before = len(set(old_story.values()))
    ids = [article_id for _, article_id, _ in chosen]
    with db.session() as session:
        for start in range(0, len(ids), BATCH):
            session.execute(delete(StoryBand).where(StoryBand.article_id.in_(ids[start : start + BATCH])))
    new_story: dict[int, int] = {}
    for start in range(0, len(chosen), BATCH):
        with db.session() as session:
            for at, article_id, _ in chosen[start : start + BATCH]:
                article = session.get(Article, article_id)
                if article is None:
                    continue
                text = story_text(article.title, article.body)
                match = linker.find(session, text, at, article.submitted_by_chat_id, exclude={article_id})
                # A member whose story head was re-linked follows it (heads come first in time order).
                head = new_story.get(match.story_id, match.story_id) if match is not None else article_id
                new_story[article_id] = head
                if article.story_id != head:
                    article.story_id = head
                    report.changed += 1
                linker.index(session, article_id, text, at)
        if progress is not None:
            progress(min(start + BATCH, len(chosen)), len(chosen))
    report.stories_after = len(set(new_story.values()))
    _follow_demoted_heads(db, old_story, new_story)
    return report


def _follow_demoted_heads(db: Database, old_story: dict[int, int], new_story: dict[int, int]) -> None:
    """Heads that joined another story: their members outside the re-link, and their deliveries, follow."""
    demoted = {article_id: head for article_id, head in new_story.items() if old_story[article_id] == article_id != head}
    if not demoted:
        return
    with db.session() as session:
        for old_head, head in demoted.items():
            members = session.scalars(select(Article.id).where(Article.story_id == old_head, Article.id != old_head)).all()
            outside = [member for member in members if member not in new_story]
            if outside:
                session.execute(update(Article).where(Article.id.in_(outside)).values(story_id=head))
            already = select(Delivery.chat_id).where(Delivery.story_id == head)
            session.execute(
                update(Delivery)
                .where(Delivery.story_id == old_head, Delivery.chat_id.not_in(already))
                .values(story_id=head)
                .execution_options(synchronize_session=False)
            )
    log.info("re-link: %d former story heads joined other stories", len(demoted))
