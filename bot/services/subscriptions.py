"""Which chat follows which tag: the `subscriptions` rows of plain tag follows.

Following goes through FollowService (bot/services/follows.py), which parses what the reader
typed and stores plain tags here and queries with keywords in `follows`; this service reads
the tag rows and removes one by id (the unfollow button).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from bot.db import Database
from bot.db.models import Subscription, Tag

# Longest argument list we look at; anything beyond is not a real request.
MAX_TAG_ARGS = 20


@dataclass(frozen=True)
class TagRef:
    """A tag as shown to users."""

    id: int
    name: str


def split_tag_args(text: str) -> list[str]:
    """Tag names from a command's arguments: comma-separated when there is a comma
    (so "Amerika Serikat, Rusia" works), else one name per word. Duplicates dropped."""
    parts = text.split(",") if "," in text else text.split()
    names: list[str] = []
    seen: set[str] = set()
    for part in parts:
        name = re.sub(r"\s+", " ", part).strip()
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    return names[:MAX_TAG_ARGS]


class SubscriptionService:
    """The tag follows of chats."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def unfollow_tag(self, chat_id: int, tag_id: int) -> TagRef | None:
        """Unfollow by tag id (the inline button); the tag, or None when it no longer exists."""
        with self._db.session() as session:
            tag = session.get(Tag, tag_id)
            if tag is None:
                return None
            session.execute(
                delete(Subscription).where(
                    Subscription.chat_id == chat_id, Subscription.tag_id == tag_id
                )
            )
            return TagRef(tag.id, tag.name)

    def following(self, chat_id: int) -> list[TagRef]:
        """The chat's tags, by name."""
        with self._db.read_session() as session:
            rows = session.execute(
                select(Tag.id, Tag.name)
                .join(Subscription, Subscription.tag_id == Tag.id)
                .where(Subscription.chat_id == chat_id)
                .order_by(Tag.name)
            ).all()
            return [TagRef(row.id, row.name) for row in rows]

    def count(self, chat_id: int) -> int:
        """How many tags the chat follows."""
        with self._db.read_session() as session:
            return session.scalar(
                select(func.count()).select_from(Subscription).where(Subscription.chat_id == chat_id)
            ) or 0
