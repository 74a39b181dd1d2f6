"""Counts for admins: articles, chats, subscriptions, summaries, deliveries by status.

Used by the /stats command and by `newsbot stats [--json]`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sqlalchemy import ColumnElement, func, select

from bot.db import Database
from bot.db.models import Article, Chat, Delivery, DeliveryStatus, Follow, Subscription, Summary


@dataclass(frozen=True)
class Stats:
    """One snapshot of the database's counts."""

    articles: int
    chats: int
    active_chats: int
    subscriptions: int
    summaries: int
    deliveries: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def collect_stats(db: Database) -> Stats:
    """Count everything in one read transaction; every delivery status is listed, 0 included."""
    with db.session() as session:

        def count(model: type, *where: ColumnElement[bool]) -> int:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        by_status = {row[0]: row[1] for row in rows}
        deliveries = {status.value: int(by_status.get(status, 0)) for status in DeliveryStatus}
        return Stats(
            articles=count(Article),
            chats=count(Chat),
            active_chats=count(Chat, Chat.active.is_(True)),
            subscriptions=count(Subscription) + count(Follow),  # plain tag follows and query follows
            summaries=count(Summary),
            deliveries=deliveries,
        )
