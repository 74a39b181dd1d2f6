"""The ORM model: sources, articles, tags, chats, subscriptions, summaries and deliveries.

Schema changes go through an Alembic migration in bot/migrations/versions.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments an INTEGER PRIMARY KEY, so ids are BIGINT elsewhere only.
IdType = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _enum(enum_class: type[enum.Enum], length: int = 16) -> Enum:
    """Enums are stored as their string values in a VARCHAR (portable, readable)."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class SourceKind(enum.StrEnum):
    FEED = "feed"
    TELEGRAM = "telegram"
    WEB = "web"
    FILE = "file"
    MANUAL = "manual"


class SourceStatus(enum.StrEnum):
    ACTIVE = "active"
    FAILING = "failing"
    DISABLED = "disabled"


class ChatKind(enum.StrEnum):
    PRIVATE = "private"
    GROUP = "group"
    SUPERGROUP = "supergroup"
    CHANNEL = "channel"
    SHELL = "shell"


class SummaryKind(enum.StrEnum):
    SUMMARY = "summary"
    TRANSLATION = "translation"


class SummaryMethod(enum.StrEnum):
    SEQ2SEQ = "seq2seq"
    EXTRACTIVE = "extractive"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # created, not yet tried
    SENDING = "sending"  # a sender claimed it; the send may or may not have happened
    SENT = "sent"
    RETRY = "retry"  # failed, will be retried at next_attempt_at
    PARKED = "parked"  # gave up after retries; visible to admins
    CANCELLED = "cancelled"  # chat deactivated or unfollowed before sending


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[type, DateTime]] = {datetime: DateTime(timezone=True)}


class Source(Base):
    """Where articles come from: a feed, a Telegram channel, a site, a file import."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[SourceKind] = mapped_column(_enum(SourceKind))
    name: Mapped[str] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(String(2048), unique=True)
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    default_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[SourceStatus] = mapped_column(_enum(SourceStatus), default=SourceStatus.ACTIVE)
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    last_polled_at: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None] = mapped_column(index=True)
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tag(Base):
    """A topic; `key` is the normalized form (casefolded, accents and '#' removed)."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    aliases: Mapped[list[TagAlias]] = relationship(back_populates="tag", cascade="all, delete-orphan")


class TagAlias(Base):
    """Another spelling or language of a tag ("Russia", "Россия" for "Rusia")."""

    __tablename__ = "tag_aliases"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)

    tag: Mapped[Tag] = relationship(back_populates="aliases")


class ArticleTag(Base):
    __tablename__ = "article_tags"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Article(Base):
    """One stored article. `story_id` links near-duplicates to the first article of the story."""

    __tablename__ = "articles"
    __table_args__ = (
        # The fan-out's claim (oldest article not yet fanned out) without walking every article that was.
        Index("ix_articles_unfanned", "created_at", "id", postgresql_where=text("fanned_out_at IS NULL"),
              sqlite_where=text("fanned_out_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("sources.id", ondelete="SET NULL"), index=True
    )
    url: Mapped[str | None] = mapped_column(String(2048), unique=True)
    guid: Mapped[str | None] = mapped_column(String(1024), unique=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(8))
    published_at: Mapped[datetime | None]
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    simhash: Mapped[int | None] = mapped_column(BigInteger)
    # Story head: the first article of a story has story_id == id; re-publications point to it.
    story_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Set once deliveries for all followers have been created (the push fan-out is done).
    fanned_out_at: Mapped[datetime | None] = mapped_column(index=True)
    # Set for text a Telegram user submitted (/summary of a forwarded post or their own URL):
    # visible only to that chat and never pushed to followers. NULL = public (feeds, admins,
    # the chat's own channel, the CLI). A public ingest of the same article clears it.
    submitted_by_chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)

    tags: Mapped[list[Tag]] = relationship(secondary="article_tags", order_by="Tag.name")
    source: Mapped[Source | None] = relationship()


class Chat(Base):
    """A Telegram user, group or channel (or the local shell) the bot talks to."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[ChatKind] = mapped_column(_enum(ChatKind))
    title: Mapped[str | None] = mapped_column(String(300))
    lang: Mapped[str | None] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The reader's time zone as /timezone stored it ("Asia/Jakarta", "UTC+07:00"); NULL: the
    # default of the chat's language (bot/services/schedule.py), so /lang id also moves it to WIB.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # /silent on: pushes arrive without a notification sound (disable_notification).
    silent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # /digest: "hourly" or local times "07:00,19:00"; NULL: instant pushes.
    digest: Mapped[str | None] = mapped_column(String(200))
    # /quiet: local "22:00-06:00" (may cross midnight); NULL: none.
    quiet: Mapped[str | None] = mapped_column(String(11))
    # /limit: instant pushes per local day; past it stories roll into the next digest. NULL: no cap.
    daily_limit: Mapped[int | None] = mapped_column(Integer)


class Subscription(Base):
    """A chat follows a tag."""

    __tablename__ = "subscriptions"

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Follow(Base):
    """A chat follows a query with keywords, required words or exclusions (bot/follows/query.py).

    A plain tag follow stays a `Subscription` (the indexed join the fan-out always used); a
    follow is a candidate for an article through `tag_id` (its anchor tag) or `word` (the first
    word of its anchor keyword), both indexed, and `query` then decides.
    """

    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("chat_id", "key", name="uq_follows_chat_key"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(1000))  # FollowQuery.key: one row per meaning and chat
    text: Mapped[str] = mapped_column(String(1000))  # FollowQuery.text, as shown to the chat
    query: Mapped[dict[str, object]] = mapped_column(JSON)  # FollowQuery.to_json()
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)
    word: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Summary(Base):
    """A computed summary or translation, stored once per article, language, kind and model.

    `model` is the model id for seq2seq output and "extractive:<algorithm>" for the fallback,
    so the unique key never holds NULL.
    """

    __tablename__ = "summaries"
    __table_args__ = (UniqueConstraint("article_id", "lang", "kind", "model", name="uq_summaries_key"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    lang: Mapped[str] = mapped_column(String(8))
    kind: Mapped[SummaryKind] = mapped_column(_enum(SummaryKind))
    model: Mapped[str] = mapped_column(String(300))
    method: Mapped[SummaryMethod] = mapped_column(_enum(SummaryMethod))
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """The outbox: one push of one story to one chat, created before it is sent."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("chat_id", "story_id", name="uq_deliveries_chat_story"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        # A chat's unsent deliveries without stepping over its sent history: the fair claim's
        # per-chat order check (bot/services/deliveries.py), chat deactivation and migration.
        Index("ix_deliveries_chat_status", "chat_id", "status"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    story_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
    # The query follow that matched (the push names it); NULL when a plain tag follow did. No
    # foreign key: a follow removed before the send just goes unnamed (and SQLite adds the column in place).
    follow_id: Mapped[int | None] = mapped_column(BigInteger)
    # The digest that owns this story (digest mode, quiet hours, over the cap): never claimed as an
    # instant push, sent inside exactly that digest. No foreign key: added in place on SQLite.
    digest_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The forum topic the push goes to (the follow was made there); NULL: the chat itself / General.
    message_thread_id: Mapped[int | None] = mapped_column(BigInteger)



class StoryBand(Base):
    """One MinHash LSH band of an article (or its title's hash): the story linker's candidate index.

    Articles sharing a band value are candidates for the same story; `created_at` is the
    article's time (published, else stored), so the lookup only reads bands inside the window.
    """

    __tablename__ = "story_bands"
    __table_args__ = (Index("ix_story_bands_band_hash_created_at", "band_hash", "created_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    band_hash: Mapped[int] = mapped_column(BigInteger)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]


class StoryEdit(Base):
    """Outbox of stories whose sent pushes need their "Also reported by" footer refreshed.

    `requested_at` moves on every new member, so an edit pass that started before a member joined
    does not delete the request; `due_at` debounces bursts and leases a claimed row.
    """

    __tablename__ = "story_edits"

    story_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    requested_at: Mapped[datetime]
    due_at: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
class Snooze(Base):
    """/snooze TAG DURATION: the chat's follow with this key pushes nothing until `until`.

    `key` is the follow's FollowQuery.key (a plain tag follow's is "#<tag id>"), so one row
    covers the follow whichever table holds it. Snoozed stories are skipped, not collected.
    """

    __tablename__ = "snoozes"

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    text: Mapped[str] = mapped_column(String(1000))  # the follow as shown to the chat
    until: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoryMute(Base):
    """"Mute this story": the chat gets nothing more of this story (no push, no later update)."""

    __tablename__ = "story_mutes"

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    story_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Digest(Base):
    """One digest message (or a few, when long) for a chat, due at a moment: it OWNS its stories
    (deliveries.digest_id) and goes through the same outbox states as a delivery."""

    __tablename__ = "digests"
    __table_args__ = (Index("ix_digests_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    due_at: Mapped[datetime]
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # the claim's lease while `sending`; the retry time while `retry`
    message_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]


class FollowTopic(Base):
    """A follow made inside a forum topic: its pushes go to that topic (message_thread_id).

    Keyed like snoozes by the follow's FollowQuery.key, whichever table holds the follow.
    """

    __tablename__ = "follow_topics"

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    thread_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
