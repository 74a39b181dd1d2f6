"""Stories as readers see them: which other outlets reported a story, and refreshing the footer
("Also reported by: Kompas, Antara") of pushes already sent when another outlet joins.

Ingest records a request in the `story_edits` outbox in the same transaction that links a new
article into a story (bot/ingest/stories.py). The push loop claims due requests and edits the
story's sent messages through the transport (editMessageText), never sending a second push.
While some deliveries of the story are still on their way, the edit waits (they are rendered
with the new footer anyway), so each message is normally edited once per new outlet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, CursorResult, delete, func, or_, select, update

from bot.db import Database
from bot.db.models import Article, Chat, ChatKind, Delivery, DeliveryStatus, StoryEdit
from bot.services.deliveries import TELEGRAM_CHAT_KINDS, ClaimedDelivery, delivery_views
from bot.services.outlets import also_reported_by

log = logging.getLogger(__name__)

EDIT_LEASE = timedelta(minutes=2)  # a claimed request whose process died is retried after this
EDIT_RECHECK = timedelta(seconds=2)  # deliveries of the story still unsent: look again then
# After this long, messages already sent are edited even if some deliveries are still retrying.
EDIT_MAX_WAIT = timedelta(minutes=10)
_UNSENT = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRY)


@dataclass(frozen=True)
class EditRequest:
    """A claimed request to refresh a story's sent pushes."""

    story_id: int
    requested_at: datetime


@dataclass(frozen=True)
class EditTarget:
    """A sent push to re-render (as its delivery) and edit in place."""

    delivery: ClaimedDelivery
    message_id: int


@dataclass(frozen=True)
class EditPlan:
    """What to edit now; `wait` when deliveries of the story are still on their way."""

    targets: list[EditTarget]
    wait: bool


class StoryService:
    """The story_edits outbox and story views; sync, call it from a thread."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._now = clock

    def also_reported_by(self, article_id: int) -> tuple[str, ...]:
        with self._db.read_session() as session:
            return also_reported_by(session, article_id)

    def best_member(self, article_id: int, viewer_chat_id: int | None = None) -> int:
        """The story member whose summary /summary shows: the fullest text (longest body) the
        viewer may see, so a copy that dropped paragraphs is summarised from the complete one."""
        with self._db.read_session() as session:
            story_id = session.scalar(select(Article.story_id).where(Article.id == article_id))
            if story_id is None:
                return article_id
            visible: ColumnElement[bool] = Article.submitted_by_chat_id.is_(None)
            if viewer_chat_id is not None:
                visible = or_(visible, Article.submitted_by_chat_id == viewer_chat_id)
            best = session.scalar(
                select(Article.id)
                .where(Article.story_id == story_id, or_(visible, Article.id == article_id))
                .order_by(func.length(Article.body).desc(), Article.id)
                .limit(1)
            )
            return best if best is not None else article_id

    def claim_edits(self, limit: int) -> list[EditRequest]:
        """Lease up to `limit` due requests (exclusive among processes)."""
        if limit <= 0:
            return []
        now = self._now()
        with self._db.session() as session:
            rows = session.execute(
                select(StoryEdit.story_id, StoryEdit.requested_at)
                .where(StoryEdit.due_at <= now)
                .order_by(StoryEdit.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return []
            session.execute(
                update(StoryEdit)
                .where(StoryEdit.story_id.in_([row[0] for row in rows]))
                .values(due_at=now + EDIT_LEASE, attempts=StoryEdit.attempts + 1)
            )
        return [EditRequest(story_id, requested_at) for story_id, requested_at in rows]

    def plan(self, request: EditRequest, kinds: Collection[ChatKind] = TELEGRAM_CHAT_KINDS) -> EditPlan:
        """The story's sent pushes to chats of `kinds`, unless some are still unsent (then wait)."""
        kind_values = list(kinds)
        with self._db.session() as session:
            unsent = session.scalar(
                select(func.count())
                .select_from(Delivery)
                .join(Chat, Chat.id == Delivery.chat_id)
                .where(Delivery.story_id == request.story_id, Delivery.status.in_(_UNSENT), Chat.kind.in_(kind_values))
            ) or 0
            requested = request.requested_at if request.requested_at.tzinfo else request.requested_at.replace(tzinfo=UTC)
            if unsent and self._now() - requested < EDIT_MAX_WAIT:
                return EditPlan(targets=[], wait=True)
            sent: dict[int, int | None] = dict(session.execute(
                select(Delivery.id, Delivery.message_id)
                .join(Chat, Chat.id == Delivery.chat_id)
                .where(Delivery.story_id == request.story_id, Delivery.status == DeliveryStatus.SENT,
                       Delivery.message_id.is_not(None), Chat.kind.in_(kind_values), Chat.active.is_(True))
            ).all())
            # The same chat, language and buttons as when the push was claimed.
            views = delivery_views(session, sent)
        targets = [EditTarget(view, message_id=int(sent[delivery_id] or 0)) for delivery_id, view in views.items()]
        return EditPlan(targets=targets, wait=False)

    def finish(self, request: EditRequest, again_in: timedelta | None = None) -> None:
        """Done with a request: delete it, or look again in `again_in`.

        A member that joined meanwhile moved `requested_at`: the row stays, due at once.
        """
        now = self._now()
        with self._db.session() as session:
            if again_in is not None:
                session.execute(update(StoryEdit).where(StoryEdit.story_id == request.story_id).values(due_at=now + again_in))
                return
            result = session.execute(
                delete(StoryEdit).where(StoryEdit.story_id == request.story_id, StoryEdit.requested_at <= request.requested_at)
            )
            if not (result.rowcount if isinstance(result, CursorResult) else 0):
                session.execute(update(StoryEdit).where(StoryEdit.story_id == request.story_id).values(due_at=now))
