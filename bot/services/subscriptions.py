"""Which chat follows which tag: follow, unfollow and list, alias-aware and capped per chat."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Subscription, Tag
from bot.tags import MAX_TAG_LENGTH, TagService, normalize_tag

# Longest argument list we look at; anything beyond is not a real request.
MAX_TAG_ARGS = 20


@dataclass(frozen=True)
class TagRef:
    """A tag as shown to users."""

    id: int
    name: str


@dataclass
class FollowResult:
    """The outcome of /follow, per requested name."""

    added: list[TagRef] = field(default_factory=list)
    already: list[TagRef] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    over_limit: list[str] = field(default_factory=list)


@dataclass
class UnfollowResult:
    """The outcome of /unfollow, per requested name."""

    removed: list[TagRef] = field(default_factory=list)
    not_following: list[str] = field(default_factory=list)


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
    """Follows and unfollows; a chat follows at most MAX_FOLLOWS_PER_CHAT tags."""

    max_tag_length = MAX_TAG_LENGTH

    def __init__(self, db: Database, settings: Settings, tags: TagService) -> None:
        self._db = db
        self._settings = settings
        self._tags = tags

    @property
    def max_follows(self) -> int:
        return self._settings.max_follows_per_chat

    def follow(self, chat_id: int, names: list[str]) -> FollowResult:
        """Follow each name (creating the tag if new); the chat row must exist."""
        result = FollowResult()
        with self._db.session() as session:
            current = set(
                session.scalars(select(Subscription.tag_id).where(Subscription.chat_id == chat_id))
            )
            for name in names:
                if not normalize_tag(name):
                    result.invalid.append(name)
                    continue
                tag = self._tags.resolve(session, name)
                if tag is not None and tag.id in current:
                    result.already.append(TagRef(tag.id, tag.name))
                    continue
                if len(current) >= self.max_follows:
                    result.over_limit.append(tag.name if tag is not None else name)
                    continue
                if tag is None:
                    tag = self._tags.get_or_create(session, name)
                    session.flush()
                session.add(Subscription(chat_id=chat_id, tag_id=tag.id))
                current.add(tag.id)
                result.added.append(TagRef(tag.id, tag.name))
        return result

    def unfollow(self, chat_id: int, names: list[str]) -> UnfollowResult:
        """Stop following each name (any alias of a followed tag works)."""
        result = UnfollowResult()
        with self._db.session() as session:
            for name in names:
                tag = self._tags.resolve(session, name) if normalize_tag(name) else None
                removed = 0
                if tag is not None:
                    deleted = session.execute(
                        delete(Subscription).where(
                            Subscription.chat_id == chat_id, Subscription.tag_id == tag.id
                        )
                    )
                    removed = cast("CursorResult[Any]", deleted).rowcount  # a DELETE's result is a CursorResult
                if tag is not None and removed:
                    result.removed.append(TagRef(tag.id, tag.name))
                else:
                    result.not_following.append(tag.name if tag is not None else name)
        return result

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
        with self._db.session() as session:
            rows = session.execute(
                select(Tag.id, Tag.name)
                .join(Subscription, Subscription.tag_id == Tag.id)
                .where(Subscription.chat_id == chat_id)
                .order_by(Tag.name)
            ).all()
            return [TagRef(row.id, row.name) for row in rows]

    def count(self, chat_id: int) -> int:
        """How many tags the chat follows."""
        with self._db.session() as session:
            return session.scalar(
                select(func.count()).select_from(Subscription).where(Subscription.chat_id == chat_id)
            ) or 0
