"""The background push loop: fan-out of new articles, then sending due deliveries, forever.

`PushLoop.run(stop)` alternates the fan-out (in a thread; any process may have stored the
articles) with claiming due deliveries and sending them as bounded concurrent tasks. The shared
rate limiter paces the sends, so the global rate is reached while each chat stays within its
own limit. A new article is noticed within `poll_interval` seconds. Any exception is logged and
counted and the loop goes on. On stop it lets in-flight sends finish (up to `drain_timeout`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from bot.conversation.messages import Reply
from bot.db.models import ChatKind
from bot.jobs import SummaryNotReady
from bot.services.chats import ChatService
from bot.services.contracts import ArticleSummary, SummaryProvider
from bot.services.deliveries import TELEGRAM_CHAT_KINDS, ArticleView, ClaimedDelivery, DeliveryService
from bot.services.digest_sender import DigestLane
from bot.services.fanout import FanoutService
from bot.services.sending import ChatGone, ChatMoved, RetryAfter, SendError, SendPacer, TopicClosed, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

LEASE_CHECK_SECONDS = 30.0
SUMMARY_CACHE_SECONDS = 60.0
ARTICLE_CACHE_SIZE = 256
MARK_SENT_TRIES = 5
ERROR_BACKOFF_MAX = 10.0
SUMMARY_NOT_READY_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class ParkedNotice:
    """A delivery that gave up; passed to the admin hook."""

    delivery_id: int
    article_id: int
    chat_id: int
    attempts: int
    error: str


ParkedHook = Callable[[ParkedNotice], Awaitable[None]]
# Turns a claimed delivery, its article and the summary in the chat's language into the message.
PushRenderer = Callable[[ClaimedDelivery, ArticleView, ArticleSummary], Reply]
# A forum topic was closed or deleted under a push: (chat id, topic) -> fall back to General.
TopicHook = Callable[[int, int | None], Awaitable[None]]


@dataclass
class PushStats:
    """Counters of one loop, for logs, /stats and tests."""

    articles_fanned_out: int = 0
    deliveries_created: int = 0
    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    parked: int = 0
    chats_gone: int = 0
    cancelled: int = 0
    requeued: int = 0
    loop_errors: int = 0


class PushLoop:
    """Fan-out and outbox sender for one process and one transport."""

    def __init__(
        self,
        *,
        fanout: FanoutService,
        deliveries: DeliveryService,
        chats: ChatService,
        summaries: SummaryProvider,
        transport: Transport,
        render: PushRenderer,
        limiter: SendPacer | None = None,
        kinds: Collection[ChatKind] = TELEGRAM_CHAT_KINDS,
        poll_interval: float = 0.5,
        concurrency: int = 60,
        drain_timeout: float = 10.0,
        on_parked: ParkedHook | None = None,
        digests: DigestLane | None = None,
        on_topic_closed: TopicHook | None = None,
    ) -> None:
        self.stats = PushStats()
        self._digests = digests  # due digests fill the slots instant pushes leave free
        self._on_topic_closed = on_topic_closed
        self._transport = transport
        self._render_push = render
        self._summaries = summaries
        self._limiter = limiter
        self._kinds = frozenset(kinds)
        self._poll_interval = poll_interval
        self._concurrency = concurrency
        self._drain_timeout = drain_timeout
        self._on_parked = on_parked
        self._fanout = fanout
        self._deliveries = deliveries
        self._chats = chats
        self._tasks: dict[asyncio.Task[None], int] = {}  # task -> chat id
        self._wake = asyncio.Event()
        self._kicked = False
        self._articles: dict[int, ArticleView] = {}
        self._summary_cache: dict[tuple[int, str], tuple[float, asyncio.Future[ArticleSummary]]] = {}
        # Own threads, so slow summaries or DB waits never starve the command handlers' threads.
        self._db_pool: ThreadPoolExecutor | None = None
        self._summary_pool: ThreadPoolExecutor | None = None

    @property
    def deliveries(self) -> DeliveryService:
        return self._deliveries

    def kick(self) -> None:
        """Look for new articles and due deliveries now (e.g. right after an in-process ingest)."""
        self._kicked = True
        self._wake.set()

    async def _db(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, partial(func, *args, **kwargs))

    # --- the loop -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then finish in-flight sends."""
        self._db_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="push-db")
        self._summary_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="push-summary")
        failures = 0
        try:
            while not stop.is_set():
                try:
                    # Every `sending` row of our chat kinds was left by a process that died.
                    self.stats.requeued += await self._db(self._deliveries.recover_orphans, kinds=self._kinds, all_sending=True)
                    if self._digests is not None:
                        self.stats.requeued += await self._db(self._digests.recover, True)
                    break
                except Exception:
                    failures += 1
                    self.stats.loop_errors += 1
                    log.exception("push loop: cannot recover deliveries; retrying")
                    await self._pause(stop, min(ERROR_BACKOFF_MAX, 0.5 * 2**failures))
            last_fanout = 0.0
            last_lease_check = time.monotonic()
            failures = 0
            while not stop.is_set():
                try:
                    now = time.monotonic()
                    if self._kicked or now - last_fanout >= self._poll_interval:
                        last_fanout = now
                        self._kicked = False
                        await self._fan_out()
                    if now - last_lease_check >= LEASE_CHECK_SECONDS:
                        last_lease_check = now
                        self.stats.requeued += await self._db(self._deliveries.recover_orphans, kinds=self._kinds)
                        if self._digests is not None:
                            self.stats.requeued += await self._db(self._digests.recover, False)
                    self._wake.clear()
                    claimed = await self._claim()
                    failures = 0
                except Exception:
                    failures += 1
                    self.stats.loop_errors += 1
                    log.exception("push loop step failed (%d in a row)", failures)
                    await self._pause(stop, min(ERROR_BACKOFF_MAX, 0.5 * 2**failures))
                    continue
                if claimed == 0:
                    await self._pause(stop, self._poll_interval)
                else:
                    # Claim again once a batch of slots is free (or at the next poll), not per send.
                    await self._wait_for_slots(stop)
        finally:
            await self._drain()
            self._db_pool.shutdown(wait=False, cancel_futures=True)
            self._summary_pool.shutdown(wait=False, cancel_futures=True)

    async def _wait_for_slots(self, stop: asyncio.Event) -> None:
        batch = max(1, self._concurrency // 4)
        deadline = time.monotonic() + self._poll_interval
        while not stop.is_set() and not self._kicked:
            if self._concurrency - len(self._tasks) >= batch:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            await self._pause(stop, left)

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep up to `seconds`, waking early on stop, kick, or a finished send."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _fan_out(self) -> None:
        result = await self._db(self._fanout.run_once)
        if result.articles:
            self.stats.articles_fanned_out += len(result.articles)
            self.stats.deliveries_created += result.deliveries

    async def _claim(self) -> int:
        free = self._concurrency - len(self._tasks)
        if free <= 0:
            return 0
        if self._limiter is not None and self._limiter.globally_paused_for() > 1.0:
            return 0
        exclude = set(self._tasks.values())
        if self._limiter is not None:
            exclude |= self._limiter.cooling_chats()
        claimed = await self._db(self._deliveries.claim_due, free, kinds=self._kinds, exclude_chats=exclude)
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery), name=f"push-{delivery.id}")
            self._tasks[task] = delivery.chat_id
            task.add_done_callback(self._task_done)
        return len(claimed) + await self._claim_digests(free - len(claimed), exclude | {d.chat_id for d in claimed})

    async def _claim_digests(self, free: int, exclude: set[int]) -> int:
        """Due digests, oldest due first, in the slots instant pushes left (breaking news first)."""
        if self._digests is None or free <= 0:
            return 0
        digests = await self._db(self._digests.claim, free, exclude)
        for digest in digests:
            task = asyncio.create_task(self._digests.deliver(digest), name=f"digest-{digest.id}")
            self._tasks[task] = digest.chat_id
            task.add_done_callback(self._task_done)
        return len(digests)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            self.stats.loop_errors += 1
            log.error("push task failed", exc_info=task.exception())

    async def _drain(self) -> None:
        if not self._tasks:
            return
        pending = list(self._tasks)
        log.info("push loop stopping: waiting for %d sends", len(pending))
        _, still = await asyncio.wait(pending, timeout=self._drain_timeout)
        for task in still:
            task.cancel()  # left `sending`; requeued when the loop next starts
        if still:
            await asyncio.wait(still, timeout=2)

    # --- one delivery ---------------------------------------------------------------------------
    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
            message = await self._render(delivery)
        except _NotFollowing:
            await self._db(self._deliveries.cancel, delivery.id, "the chat no longer follows the article's tags")
            self.stats.cancelled += 1
            return
        except SummaryNotReady as error:
            # Queued on the workers (BROKER_URL), not failed: try again soon without using up an attempt.
            await self._db(self._deliveries.reschedule, delivery.id, SUMMARY_NOT_READY_RETRY_SECONDS, str(error))
            return
        except Exception as error:  # a summary or database failure: retry later
            log.warning("cannot render delivery %s", delivery.id, exc_info=True)
            await self._failed(delivery, f"render: {type(error).__name__}: {error}")
            return
        try:
            message_id = await self._transport.send(delivery.chat_id, message)
        except RetryAfter as error:
            self.stats.rate_limited += 1
            if self._limiter is not None:
                self._limiter.note_retry_after(delivery.chat_id, error.seconds)
            await self._db(self._deliveries.reschedule, delivery.id, error.seconds, str(error))
            return
        except ChatGone as error:
            self.stats.chats_gone += 1
            await self._db(self._chats.deactivate, delivery.chat_id, error.reason)
            return
        except ChatMoved as error:
            await self._db(self._chats.migrate, delivery.chat_id, error.new_chat_id)
            self.kick()
            return
        except TopicClosed as error:
            if self._on_topic_closed is None:
                await self._failed(delivery, str(error))
                return
            # The topic's follows and unsent pushes (this one too) fall back to General; sent again now.
            await self._on_topic_closed(delivery.chat_id, delivery.thread_id)
            await self._db(self._deliveries.reschedule, delivery.id, 0.0, str(error))
            self.kick()
            return
        except SendError as error:
            await self._failed(delivery, str(error))
            return
        except Exception as error:  # unexpected: treat like a transient failure
            log.warning("unexpected error sending delivery %s", delivery.id, exc_info=True)
            await self._failed(delivery, f"{type(error).__name__}: {error}")
            return
        await self._record_sent(delivery, message_id)

    async def _record_sent(self, delivery: ClaimedDelivery, message_id: int) -> None:
        """Commit `sent` at once: until this commit a crash means the message is sent again."""
        for attempt in range(MARK_SENT_TRIES):
            try:
                await self._db(self._deliveries.mark_sent, delivery.id, message_id)
                self.stats.sent += 1
                return
            except Exception:
                log.warning("cannot record delivery %s as sent (try %d)", delivery.id, attempt + 1, exc_info=True)
                await asyncio.sleep(0.2 * 2**attempt)
        log.error("delivery %s was sent (message %s) but could not be recorded", delivery.id, message_id)

    async def _failed(self, delivery: ClaimedDelivery, error: str) -> None:
        outcome = await self._db(self._deliveries.fail, delivery.id, error)
        if not outcome.parked:
            self.stats.retried += 1
            return
        self.stats.parked += 1
        if self._on_parked is not None:
            notice = ParkedNotice(delivery.id, delivery.article_id, delivery.chat_id, delivery.attempts, error)
            try:
                await self._on_parked(notice)
            except Exception:
                log.warning("parked-delivery hook failed", exc_info=True)

    async def _render(self, delivery: ClaimedDelivery) -> Reply:
        view = await self._article(delivery.article_id)
        if not delivery.followed_tag_ids and delivery.matched_follow is None:
            raise _NotFollowing  # unfollowed (the tags, or the keyword follow that matched) before the send
        summary = await self._summary(delivery.article_id, delivery.lang)
        return self._render_push(delivery, view, summary)

    async def _article(self, article_id: int) -> ArticleView:
        view = self._articles.get(article_id)
        if view is None:
            view = await self._db(self._deliveries.article_view, article_id)
            if view is None:
                raise LookupError(f"article {article_id} no longer exists")
            if len(self._articles) >= ARTICLE_CACHE_SIZE:
                self._articles.pop(next(iter(self._articles)))
            self._articles[article_id] = view
        return view

    async def _summary(self, article_id: int, lang: str) -> ArticleSummary:
        """The summary, computed once per article and language however many chats wait for it."""
        key = (article_id, lang)
        now = time.monotonic()
        cached = self._summary_cache.get(key)
        if cached is not None and cached[0] > now and not _failed(cached[1]):
            return await asyncio.shield(cached[1])
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._summary_pool, self._summaries.summary, article_id, lang)
        self._summary_cache[key] = (now + SUMMARY_CACHE_SECONDS, future)
        if len(self._summary_cache) > 4 * ARTICLE_CACHE_SIZE:
            for stale in [k for k, (expires, f) in self._summary_cache.items() if expires <= now and f.done()]:
                del self._summary_cache[stale]
        return await asyncio.shield(future)


def _failed(future: asyncio.Future[ArticleSummary]) -> bool:
    """Whether a finished summary future holds an error (then it is computed again)."""
    return future.done() and (future.cancelled() or future.exception() is not None)


class _NotFollowing(Exception):
    """The chat unfollowed every tag of the article after the fan-out."""
