"""Chats the bot talks to: created on first contact, with their language and kind.

This is the one place for chat lifecycle rules: a chat that blocks or removes the bot is
deactivated with its unsent deliveries cancelled, a group that becomes a supergroup moves
everything to its new id, and a chat that writes again (or adds the bot back) is active again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError

from bot.db import Database
from bot.db.models import Chat, ChatKind, Delivery, DeliveryStatus, Follow, Source, SourceKind, Subscription
from bot.i18n import DEFAULT_LANG, normalize_lang

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 1000
# Deliveries not yet out: what a chat that goes away cancels and a migrated group takes along.
UNSENT_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRY, DeliveryStatus.SENDING)


@dataclass(frozen=True)
class ChatInfo:
    """What the conversation needs to know about a chat."""

    id: int
    kind: ChatKind
    title: str | None
    lang: str
    active: bool


def _info(chat: Chat) -> ChatInfo:
    return ChatInfo(
        id=chat.id,
        kind=ChatKind(chat.kind),
        title=chat.title,
        lang=normalize_lang(chat.lang) or DEFAULT_LANG,
        active=chat.active,
    )


class ChatService:
    """Reads and updates rows of `chats`; every method is one short transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def ensure(
        self, chat_id: int, kind: ChatKind, title: str | None = None, user_lang: str | None = None
    ) -> ChatInfo:
        """The chat, created on first contact with the user's language when it is one of ours.

        A chat that had been deactivated (the bot was blocked) is active again once it writes.
        """
        title = title[:300] if title else None
        # Every update begins here: a chat that is already as it should be costs a read only, which
        # on SQLite does not wait for the write lock a fan-out or the sends hold.
        with self._db.read_session() as session:
            known = session.get(Chat, chat_id)
            if known is not None and known.active and known.kind == kind and not (title and known.title != title):
                return _info(known)
        with self._db.session() as session:
            chat = session.get(Chat, chat_id)
            if chat is None:
                chat = Chat(
                    id=chat_id,
                    kind=kind,
                    title=title,
                    lang=normalize_lang(user_lang) or DEFAULT_LANG,
                    active=True,
                )
                session.add(chat)
            else:
                if title and chat.title != title:
                    chat.title = title
                if chat.kind != kind:
                    chat.kind = kind  # a group upgraded to a supergroup keeps its row
                if not chat.active:
                    chat.active = True
                    chat.deactivated_reason = None
            session.flush()
            return _info(chat)

    def get(self, chat_id: int) -> ChatInfo | None:
        """The chat, or None when it never wrote to the bot."""
        with self._db.read_session() as session:
            chat = session.get(Chat, chat_id)
            return _info(chat) if chat is not None else None

    def set_lang(self, chat_id: int, lang: str) -> None:
        """Store the chat's language (already validated by the caller)."""
        with self._db.session() as session:
            chat = session.get(Chat, chat_id)
            if chat is None:
                raise LookupError(f"unknown chat {chat_id}")
            chat.lang = lang

    def channel_source(self, telegram_chat_id: int, title: str | None) -> int:
        """The id of the `sources` row of a Telegram channel whose posts we store (created once)."""
        name = (title or str(telegram_chat_id))[:300]
        for _attempt in range(2):
            try:
                with self._db.session() as session:
                    source = session.scalars(
                        select(Source).where(Source.telegram_chat_id == telegram_chat_id)
                    ).one_or_none()
                    if source is None:
                        source = Source(kind=SourceKind.TELEGRAM, name=name, telegram_chat_id=telegram_chat_id,
                                        default_tags=[])
                        session.add(source)
                    elif title and source.name != name:
                        source.name = name
                    session.flush()
                    return source.id
            except IntegrityError:
                continue  # another process created it at the same moment; read it next time
        raise RuntimeError(f"could not record the source of channel {telegram_chat_id}")

    # --- lifecycle: the one set of rules for chats that go away, move or come back ------------
    def deactivate(self, chat_id: int, reason: str) -> int:
        """The bot was blocked, kicked or the chat is gone: stop pushes and cancel its unsent deliveries.

        Returns how many deliveries were cancelled. `ensure` reactivates the chat when it writes
        again or the bot is added back.
        """
        now = datetime.now(UTC)
        reason = reason[:MAX_REASON_CHARS]
        with self._db.session() as session:
            session.execute(
                update(Chat).where(Chat.id == chat_id).values(active=False, deactivated_reason=reason, updated_at=now)
            )
            result = session.execute(
                update(Delivery)
                .where(Delivery.chat_id == chat_id, Delivery.status.in_(UNSENT_STATUSES))
                .values(status=DeliveryStatus.CANCELLED, last_error=reason, next_attempt_at=None, updated_at=now)
            )
            cancelled = cast("CursorResult[Any]", result).rowcount or 0  # an UPDATE's result is a CursorResult
        log.info("chat %s deactivated (%s); %d deliveries cancelled", chat_id, reason, cancelled)
        return cancelled

    def migrate(self, old_id: int, new_id: int) -> int:
        """A group became supergroup `new_id`: language, follows and unsent deliveries move there.

        Returns how many deliveries moved (pending again, for the new chat id); a story the new
        chat already has is not moved twice.
        """
        now = datetime.now(UTC)
        with self._db.session() as session:
            old = session.get(Chat, old_id)
            if old is None:
                return 0
            if session.get(Chat, new_id) is None:
                session.add(Chat(id=new_id, kind=ChatKind.SUPERGROUP, title=old.title, lang=old.lang, active=True))
                session.flush()
            taken = set(session.scalars(select(Subscription.tag_id).where(Subscription.chat_id == new_id)))
            for subscription in session.scalars(select(Subscription).where(Subscription.chat_id == old_id)).all():
                if subscription.tag_id not in taken:
                    session.add(Subscription(chat_id=new_id, tag_id=subscription.tag_id))
                session.delete(subscription)
            # Query follows move too (one per meaning: one the new chat has already is dropped).
            keys = set(session.scalars(select(Follow.key).where(Follow.chat_id == new_id)))
            for follow in session.scalars(select(Follow).where(Follow.chat_id == old_id)).all():
                if follow.key in keys:
                    session.delete(follow)
                else:
                    follow.chat_id = new_id
            stories = set(session.scalars(select(Delivery.story_id).where(Delivery.chat_id == new_id)))
            moved = 0
            unsent = session.scalars(
                select(Delivery).where(Delivery.chat_id == old_id, Delivery.status.in_(UNSENT_STATUSES))
            ).all()
            for delivery in unsent:
                if delivery.story_id in stories:
                    delivery.status = DeliveryStatus.CANCELLED
                else:
                    delivery.chat_id = new_id
                    delivery.digest_id = None  # the old chat's digest stays behind: pushed instantly there
                    delivery.status = DeliveryStatus.PENDING
                    delivery.next_attempt_at = None
                    stories.add(delivery.story_id)
                    moved += 1
                delivery.updated_at = now
            old.active = False
            old.deactivated_reason = f"migrated to supergroup {new_id}"
        log.info("chat %s migrated to %s; %d deliveries moved", old_id, new_id, moved)
        return moved
