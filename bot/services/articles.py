"""Read-only article queries for the conversation: by id, latest (per tag), search, popular tags.

Visibility: an article with `submitted_by_chat_id` set is a user's private submission. Lists
(latest, search, popular tags) show public articles plus the viewer's own private ones; `get`
with a viewer hides other chats' private articles (ids are sequential and guessable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from bot.db import Database
from bot.db.models import Article, ArticleTag, Tag
from bot.services.subscriptions import TagRef
from bot.tags import TagService, normalize_tag

MAX_SEARCH_WORDS = 8
MAX_SEARCH_WORD_LENGTH = 64
# SQLite's lower() and LIKE fold ASCII only; this Python function folds all of Unicode.
SQLITE_LOWER_FUNCTION = "unicode_lower"
_REGISTERED = "newsbot_unicode_lower"  # key in the pooled connection's info dict


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


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _ensure_sqlite_lower(session: Session) -> None:
    """Register unicode_lower on this session's SQLite connection, once per DBAPI connection.

    Done here rather than in a "connect" listener so connections pooled before this service
    existed get it too, without touching bot/db/engine.py.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite" or connection.info.get(_REGISTERED):
        return
    dbapi = connection.connection.dbapi_connection
    # SQLAlchemy types the DBAPI connection as PEP 249's protocol (or None), which has no create_function;
    # here it is sqlite3's (checked above).
    dbapi.create_function(SQLITE_LOWER_FUNCTION, 1, _unicode_lower, deterministic=True)  # type: ignore[union-attr]  # see above
    connection.info[_REGISTERED] = True


def visible_to(viewer_chat_id: int | None) -> ColumnElement[bool]:
    """Public articles, plus the viewer's own private submissions."""
    public = Article.submitted_by_chat_id.is_(None)
    if viewer_chat_id is None:
        return public
    return or_(public, Article.submitted_by_chat_id == viewer_chat_id)


def search_words(query: str) -> list[str]:
    """The words of a search query, length-limited, lower-cased, at most MAX_SEARCH_WORDS."""
    words = [word[:MAX_SEARCH_WORD_LENGTH].lower() for word in query.split()]
    return words[:MAX_SEARCH_WORDS]


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
        with self._db.session() as session:
            article = session.scalars(query).one_or_none()
            return _ref(article) if article is not None else None

    def find_tag(self, name: str) -> TagRef | None:
        """The tag `name` means (alias-aware), or None."""
        if not normalize_tag(name):
            return None
        with self._db.session() as session:
            tag = self._tags.resolve(session, name)
            return TagRef(tag.id, tag.name) if tag is not None else None

    def latest(self, limit: int, tag_id: int | None = None, viewer_chat_id: int | None = None) -> list[ArticleRef]:
        """Newest articles first, optionally only those with one tag; one per story.

        Public articles plus `viewer_chat_id`'s own private ones (public only when None).
        """
        with self._db.session() as session:
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
        """Articles whose title or body holds every word (case-insensitive in any script), newest first.

        Public articles plus `viewer_chat_id`'s own private ones (public only when None).
        """
        words = search_words(query)
        if not words:
            return []
        with self._db.session() as session:
            if self._db.is_sqlite:
                _ensure_sqlite_lower(session)
                lower: Any = getattr(func, SQLITE_LOWER_FUNCTION)
            else:
                lower = func.lower  # PostgreSQL's lower() follows the database's Unicode locale
            conditions = [
                or_(
                    lower(Article.title).like(_like_pattern(word), escape="\\"),
                    lower(Article.body).like(_like_pattern(word), escape="\\"),
                )
                for word in words
            ]
            rows = session.scalars(
                self._base()
                .where(and_(*conditions), visible_to(viewer_chat_id))
                .order_by(Article.created_at.desc(), Article.id.desc())
                .limit(limit)
            )
            return [_ref(article) for article in rows]

    def popular_tags(self, limit: int, viewer_chat_id: int | None = None) -> list[tuple[TagRef, int]]:
        """Tags with the most articles visible to the viewer (public only when None), with counts."""
        with self._db.session() as session:
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
