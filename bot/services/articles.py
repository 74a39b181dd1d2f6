"""Read-only article queries for the conversation: by id, latest (per tag), search, popular tags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from bot.db import Database
from bot.db.models import Article, ArticleTag, Tag
from bot.services.subscriptions import TagRef
from bot.tags import TagService, normalize_tag

MAX_SEARCH_WORDS = 8
MAX_SEARCH_WORD_LENGTH = 64


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


def _like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_words(query: str) -> list[str]:
    """The words of a search query, length-limited, lower-cased, at most MAX_SEARCH_WORDS."""
    words = [word[:MAX_SEARCH_WORD_LENGTH].lower() for word in query.split()]
    return words[:MAX_SEARCH_WORDS]


class ArticleQueries:
    """Queries over stored articles; each call is one short read transaction."""

    def __init__(self, db: Database, tags: TagService) -> None:
        self._db = db
        self._tags = tags

    def _base(self) -> Select[tuple[Article]]:
        return select(Article).options(selectinload(Article.tags), selectinload(Article.source))

    def get(self, article_id: int) -> ArticleRef | None:
        """One article, or None."""
        with self._db.session() as session:
            article = session.scalars(self._base().where(Article.id == article_id)).one_or_none()
            return _ref(article) if article is not None else None

    def find_tag(self, name: str) -> TagRef | None:
        """The tag `name` means (alias-aware), or None."""
        if not normalize_tag(name):
            return None
        with self._db.session() as session:
            tag = self._tags.resolve(session, name)
            return TagRef(tag.id, tag.name) if tag is not None else None

    def latest(self, limit: int, tag_id: int | None = None) -> list[ArticleRef]:
        """Newest articles first, optionally only those with one tag; one per story."""
        with self._db.session() as session:
            query = self._base()
            if tag_id is not None:
                query = query.join(ArticleTag, ArticleTag.article_id == Article.id).where(
                    ArticleTag.tag_id == tag_id
                )
            # Story heads (or articles without a story) only, so re-publications are not listed twice.
            query = query.where(or_(Article.story_id.is_(None), Article.story_id == Article.id))
            query = query.order_by(Article.created_at.desc(), Article.id.desc()).limit(limit)
            return [_ref(article) for article in session.scalars(query)]

    def search(self, query: str, limit: int) -> list[ArticleRef]:
        """Articles whose title or body holds every word (case-insensitive), newest first."""
        words = search_words(query)
        if not words:
            return []
        conditions = [
            or_(
                func.lower(Article.title).like(_like_pattern(word), escape="\\"),
                func.lower(Article.body).like(_like_pattern(word), escape="\\"),
            )
            for word in words
        ]
        with self._db.session() as session:
            rows = session.scalars(
                self._base()
                .where(and_(*conditions))
                .order_by(Article.created_at.desc(), Article.id.desc())
                .limit(limit)
            )
            return [_ref(article) for article in rows]

    def popular_tags(self, limit: int) -> list[tuple[TagRef, int]]:
        """Tags with the most articles, with their counts."""
        with self._db.session() as session:
            return self._popular(session, limit)

    @staticmethod
    def _popular(session: Session, limit: int) -> list[tuple[TagRef, int]]:
        count = func.count(ArticleTag.article_id).label("n")
        rows = session.execute(
            select(Tag.id, Tag.name, count)
            .join(ArticleTag, ArticleTag.tag_id == Tag.id)
            .group_by(Tag.id, Tag.name)
            .order_by(count.desc(), Tag.name)
            .limit(limit)
        ).all()
        return [(TagRef(row.id, row.name), int(row.n)) for row in rows]
