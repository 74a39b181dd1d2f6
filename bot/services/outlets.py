"""Names of the outlets of a story, for the "Also reported by" footer of pushes and /summary."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Article, Source

MAX_OUTLETS_SHOWN = 5


def outlet_name(source_name: str | None, url: str | None) -> str | None:
    """How a footer names an outlet: its source's name, else the link's host without www."""
    if source_name and source_name.strip():
        return source_name.strip()
    host = urlsplit(url).hostname if url else None
    return host.removeprefix("www.") if host else None


def also_reported_by(session: Session, article_id: int) -> tuple[str, ...]:
    """The other outlets of the article's story (public members only), in the order they came."""
    story_id = session.scalar(select(Article.story_id).where(Article.id == article_id))
    if story_id is None:
        return ()
    rows = session.execute(
        select(Article.id, Source.name, Article.url)
        .outerjoin(Source, Source.id == Article.source_id)
        .where(Article.story_id == story_id, Article.submitted_by_chat_id.is_(None))
        .order_by(Article.id)
    ).all()
    own = next((outlet_name(name, url) for member, name, url in rows if member == article_id), None)
    names: list[str] = []
    for member, name, url in rows:
        outlet = outlet_name(name, url)
        if member != article_id and outlet and outlet != own and outlet not in names:
            names.append(outlet)
    if len(names) > MAX_OUTLETS_SHOWN:
        return (*names[:MAX_OUTLETS_SHOWN], f"+{len(names) - MAX_OUTLETS_SHOWN}")
    return tuple(names)
