"""Read-only article queries for the conversation: by id, latest (per tag), search, popular tags.

Visibility: an article with `submitted_by_chat_id` set is a user's private submission. Lists
(latest, search, popular tags) show public articles plus the viewer's own private ones; `get`
with a viewer hides other chats' private articles (ids are sequential and guessable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from bot.db import Database
from bot.db.models import Article, ArticleTag, Tag
from bot.services.search import FullTextSearch
from bot.services.subscriptions import TagRef
from bot.tags import TagService, normalize_tag


@dataclass(frozen=True)
class ArticleRef:
    """An article as listed to users."""

    id: int
    title: str
    url: str | None
    lang: str | None
    tags: tuple[TagRef, ...]
    created_at: datetime
    story_id: int | None
    source_name: str | None = None


def _ref(article: Article) -> ArticleRef:
    return ArticleRef(
        id=article.id,
        title=article.title,
        url=article.url,
        lang=article.lang,
        tags=tuple(TagRef(tag.id, tag.name) for tag in article.tags),
        created_at=article.created_at,
        story_id=article.story_id,
        source_name=article.source.name if article.source is not None else None,
    )


def visible_to(viewer_chat_id: int | None) -> ColumnElement[bool]:
    """Public articles, plus the viewer's own private submissions."""
    public = Article.submitted_by_chat_id.is_(None)
    if viewer_chat_id is None:
        return public
    return or_(public, Article.submitted_by_chat_id == viewer_chat_id)


class ArticleQueries:
    """Queries over stored articles; each call is one short read transaction."""

    def __init__(self, db: Database, tags: TagService) -> None:
        self._db = db
        self._tags = tags

    def _base(self) -> Select[Article]:
        return select(Article).options(selectinload(Article.tags), selectinload(Article.source))

    def get(self, article_id: int, viewer_chat_id: int | None = None) -> ArticleRef | None:
        """One article, or None; with a viewer, another chat's private article is None too.

        viewer_chat_id None means internal use (pushes, jobs): no visibility filter.
        """
        query = self._base().where(Article.id == article_id)
        if viewer_chat_id is not None:
            query = query.where(visible_to(viewer_chat_id))
        with self._db.read_session() as session:
            article = session.scalars(query).one_or_none()
            return _ref(article) if article is not None else None

    def find_tag(self, name: str) -> TagRef | None:
        """The tag `name` means (alias-aware), or None."""
        if not normalize_tag(name):
            return None
        self._tags.ensure_aliases_loaded()  # seeding writes: before the read-only transaction
        with self._db.read_session() as session:
            tag = self._tags.resolve(session, name)
            return TagRef(tag.id, tag.name) if tag is not None else None

    def latest(self, limit: int, tag_id: int | None = None, viewer_chat_id: int | None = None) -> list[ArticleRef]:
        """Newest articles first, optionally only those with one tag; one per story.

        Public articles plus `viewer_chat_id`'s own private ones (public only when None).
        """
        with self._db.read_session() as session:
            query = self._base().where(visible_to(viewer_chat_id))
            if tag_id is not None:
                query = query.join(ArticleTag, ArticleTag.article_id == Article.id).where(
                    ArticleTag.tag_id == tag_id
                )
            # Story heads (or articles without a story) only, so re-publications are not listed twice.
            query = query.where(or_(Article.story_id.is_(None), Article.story_id == Article.id))
            query = query.order_by(Article.created_at.desc(), Article.id.desc()).limit(limit)
            return [_ref(article) for article in session.scalars(query)]

    def search(self, query: str, limit: int, viewer_chat_id: int | None = None) -> list[ArticleRef]:
        """Full-text search (bot/services/search.py), best match first.

        Public articles plus `viewer_chat_id`'s own private ones (public only when None).
        """
        with self._db.read_session() as session:
            ids = FullTextSearch().search(session, query, limit, viewer_chat_id)
            if not ids:
                return []
            found = {article.id: article for article in session.scalars(self._base().where(Article.id.in_(ids)))}
            return [_ref(found[article_id]) for article_id in ids if article_id in found]

    def popular_tags(self, limit: int, viewer_chat_id: int | None = None) -> list[tuple[TagRef, int]]:
        """Tags with the most articles visible to the viewer (public only when None), with counts."""
        with self._db.read_session() as session:
            return self._popular(session, limit, viewer_chat_id)

    @staticmethod
    def _popular(session: Session, limit: int, viewer_chat_id: int | None = None) -> list[tuple[TagRef, int]]:
        count = func.count(ArticleTag.article_id).label("n")
        rows = session.execute(
            select(Tag.id, Tag.name, count)
            .join(ArticleTag, ArticleTag.tag_id == Tag.id)
            .join(Article, Article.id == ArticleTag.article_id)
            .where(visible_to(viewer_chat_id))
            .group_by(Tag.id, Tag.name)
            .order_by(count.desc(), Tag.name)
            .limit(limit)
        ).all()
        return [(TagRef(row.id, row.name), int(row.n)) for row in rows]
