"""The one composition root: every service of a process, built once and handed to the adapters.

`newsbot run` (bot/telegram/app.py), `newsbot shell` (bot/shell.py) and the tests build their
services here; the push loop is assembled here too, with whatever transport the adapter has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from bot.config import Settings
from bot.context import AppContext
from bot.conversation.conversation import Conversation
from bot.conversation.digest_render import DigestItem, render_digest
from bot.conversation.messages import Reply
from bot.conversation.render import render_push
from bot.db import Database
from bot.db.models import ChatKind
from bot.db.notify import listener_for
from bot.i18n import I18n
from bot.ingest.feeds import FeedService
from bot.ingest.fetch import fetch_article
from bot.ingest.service import IngestResult, IngestService
from bot.jobs import build_summary_provider
from bot.services.abuse import CommandRateLimiter
from bot.services.articles import ArticleQueries
from bot.services.chats import ChatService
from bot.services.contracts import ArticleSummary, SummaryProvider
from bot.services.deliveries import TELEGRAM_CHAT_KINDS, ArticleView, ClaimedDelivery, DeliveryService
from bot.services.digest_sender import DigestLane, DigestRenderer
from bot.services.digests import ClaimedDigest, DigestService, DigestStory
from bot.services.fanout import FanoutService
from bot.services.follows import FollowService
from bot.services.pushes import ParkedHook, PushLoop, PushRenderer, SentJournal, TopicHook
from bot.services.schedule import ScheduleService
from bot.services.sending import SendError, SendPacer, Transport
from bot.services.stories import StoryService
from bot.services.subscriptions import SubscriptionService
from bot.tags import TagService
from summarizer.config import is_disabled

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the conversation and the push loop need, built once per process."""

    settings: Settings
    db: Database
    i18n: I18n
    tags: TagService
    chats: ChatService
    subscriptions: SubscriptionService
    articles: ArticleQueries
    summaries: SummaryProvider
    rate_limiter: CommandRateLimiter
    ingest: IngestService
    feeds: FeedService
    deliveries: DeliveryService
    fanout: FanoutService
    follows: FollowService
    stories: StoryService
    schedule: ScheduleService
    digests: DigestService

    @property
    def translation_enabled(self) -> bool:
        """Whether a translation model is configured (translate buttons are offered only then)."""
        return not is_disabled(self.settings.translation_model)

    def fetch_article(self, url: str, submitted_by_chat_id: int | None = None) -> IngestResult:
        """Download a page and store it; `submitted_by_chat_id` keeps it private to that chat."""
        item = replace(fetch_article(url, self.settings), submitted_by_chat_id=submitted_by_chat_id)
        return self.ingest.ingest(item)

    def close(self) -> None:
        """Release what the services hold open (HTTP clients, model threads)."""
        self.feeds.close()
        close = getattr(self.summaries, "close", None)
        if close is not None:
            close()


def build_services(context: AppContext, i18n: I18n, *, summaries: SummaryProvider | None = None,
                   clock: Callable[[], datetime] | None = None) -> Services:
    """Build every service once; models load lazily on first use.

    Summaries are computed in this process, or queued for `newsbot worker` when BROKER_URL is set.
    `clock`: what "now" is for time zones, snoozes and the fan-out (tests move it instead of sleeping).
    """
    now = clock or (lambda: datetime.now(UTC))
    settings, db = context.settings, context.db
    tags = TagService(db, settings)
    ingest = IngestService(db, settings, tags)
    summaries = summaries if summaries is not None else build_summary_provider(context)
    subscriptions = SubscriptionService(db)
    return Services(
        settings=settings,
        db=db,
        i18n=i18n,
        tags=tags,
        chats=ChatService(db),
        subscriptions=subscriptions,
        articles=ArticleQueries(db, tags),
        summaries=summaries,
        rate_limiter=CommandRateLimiter(settings.command_rate_limit),
        ingest=ingest,
        feeds=FeedService(db, settings, ingest),
        deliveries=DeliveryService(db, settings),
        fanout=FanoutService(db, summaries, max_age=push_max_age(settings), clock=now),
        follows=FollowService(db, settings, tags, subscriptions),
        stories=StoryService(db),
        schedule=ScheduleService(db, clock=now),
        digests=DigestService(db, clock=now),
    )


def push_max_age(settings: Settings) -> timedelta | None:
    """How old a publication date may be for the article to be pushed (None: any age)."""
    return timedelta(hours=settings.push_max_age_hours) if settings.push_max_age_hours else None


def build_conversation(services: Services) -> Conversation:
    """The conversation over these services."""
    return Conversation(services)


def push_renderer(services: Services) -> PushRenderer:
    """Render a claimed delivery as the same message /summary shows, in the chat's language."""
    translation = services.translation_enabled

    def render(delivery: ClaimedDelivery, article: ArticleView, summary: ArticleSummary) -> Reply:
        message = render_push(article, article.tags, article.source_name, summary, delivery.lang, services.i18n,
                              followed_tag_ids=delivery.followed_tag_ids, translation=translation,
                              matched_follow=delivery.matched_follow, story_id=delivery.story_id,
                              also_reported_by=article.also_reported_by)
        return replace(message, silent=delivery.silent, thread_id=delivery.thread_id)

    return render


def digest_renderer(services: Services) -> DigestRenderer:
    """Render a claimed digest: its stories grouped by follow, in the chat's language."""

    def render(digest: ClaimedDigest, stories: Sequence[tuple[DigestStory, str, str | None, ArticleSummary]]) -> list[Reply]:
        items = [DigestItem(story.article_id, story.follow, (summary.title or "").strip() or title, url, summary.text)
                 for story, title, url, summary in stories]
        return render_digest(items, digest.lang, services.i18n, silent=digest.silent)

    return render


def build_push_loop(
    services: Services,
    transport: Transport,
    *,
    limiter: SendPacer | None = None,
    kinds: Collection[ChatKind] = TELEGRAM_CHAT_KINDS,
    on_parked: ParkedHook | None = None,
    poll_interval: float = 0.5,
    drain_timeout: float = 10.0,
    journal: SentJournal | None = None,
    **outage_options: float,
) -> PushLoop:
    """Fan-out and outbox sender for the chats of `kinds`, sending through `transport`.

    Sends the database could not record yet are journaled in DATA_DIR (one file per chat-kind set:
    the bot's and the shell's loops never share one). `outage_options`: PushLoop's probe_first,
    probe_max, canary_strikes, notice_interval, error_backoff_max (tests shorten them).
    On PostgreSQL the loop also listens for the NOTIFY of articles stored by any process and wakes
    at once (bot/db/notify.py); `poll_interval` stays the fallback, and SQLite's only way.
    """
    if journal is None:
        suffix = "" if kinds == TELEGRAM_CHAT_KINDS else "-" + "-".join(sorted(str(k) for k in kinds))
        name = f"sent-journal{suffix}.txt"
        journal = SentJournal(services.settings.data_dir / name)
    return PushLoop(
        fanout=services.fanout,
        deliveries=services.deliveries,
        chats=services.chats,
        summaries=services.summaries,
        transport=transport,
        render=push_renderer(services),
        limiter=limiter,
        kinds=kinds,
        poll_interval=poll_interval,
        # Enough sends in flight to keep the global rate busy while each waits for its chat's slot.
        concurrency=max(8, int(services.settings.send_rate_global * 2)),
        drain_timeout=drain_timeout,
        on_parked=on_parked,
        journal=journal,
        stories=services.stories,
        **outage_options,  # type: ignore[arg-type]
        digests=DigestLane(services.digests, services.chats, services.summaries, transport, digest_renderer(services),
                           kinds=kinds, limiter=limiter),
        on_topic_closed=topic_fallback(services, transport),
        wakeups=listener_for(services.db),
    )


def topic_fallback(services: Services, transport: Transport) -> TopicHook:
    """A closed or deleted forum topic: its follows fall back to General, and the chat's admins
    are told there once (the second push to that topic finds no follow routed to it any more)."""

    async def fallback(chat_id: int, thread_id: int | None) -> None:
        moved = await asyncio.to_thread(services.schedule.drop_topic, chat_id, thread_id)
        if not moved:
            return
        chat = await asyncio.to_thread(services.chats.get, chat_id)
        lang = chat.lang if chat is not None else services.i18n.default
        try:
            await transport.send(chat_id, Reply(services.i18n.t(lang, "topic.closed", topic=thread_id or 0)))
        except SendError:
            log.warning("cannot tell chat %s that topic %s is closed", chat_id, thread_id, exc_info=True)

    return fallback
