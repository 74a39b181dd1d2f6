"""The background push loop: fan-out of new articles, then sending due deliveries, forever.

`PushLoop.run(stop)` alternates the fan-out (in a thread; any process may have stored the
articles) with claiming due deliveries and sending them as bounded concurrent tasks. The shared
rate limiter paces the sends, so the global rate is reached while each chat stays within its
own limit. A new article is noticed within `poll_interval` seconds, or at once when `kick()` is
called: after an in-process ingest, and by `wakeups` (on PostgreSQL, a LISTEN thread that hears
the NOTIFY of another process's ingest, bot/db/notify.py). Any exception is logged and
counted and the loop goes on. On stop it lets in-flight sends finish (up to `drain_timeout`).

Outages (docs/pushes.md, docs/reliability.md):
- Telegram failing for every chat (5xx, timeouts, connection errors: ServiceUnavailable on several
  chats, or with getMe failing too) pauses all sends; failed deliveries go back without spending
  an attempt; `Transport.probe()` is retried with a capped backoff, then one real send (the canary)
  shows sendMessage works; one log line at the start and one at the end.
- The database failing: outcome writes it refused are kept and retried before anything else; a
  completed send is also journaled (SentJournal in DATA_DIR), so a restart records it before
  `recover_orphans` re-queues `sending` rows. A completed send is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.conversation.messages import Reply
from bot.db.engine import is_unavailable
from bot.db.models import ChatKind
from bot.jobs import SummaryNotReady
from bot.logs import Outage, Throttle
from bot.services.chats import ChatService
from bot.services.contracts import ArticleSummary, SummaryProvider
from bot.services.deliveries import TELEGRAM_CHAT_KINDS, ArticleView, ClaimedDelivery, DeliveryService
from bot.services.digest_sender import DigestLane
from bot.services.fanout import FanoutService
from bot.services.sending import ChatGone, ChatMoved, RetryAfter, SendError, SendPacer, ServiceUnavailable, TopicClosed, Transport
from bot.services.stories import EDIT_RECHECK, EditRequest, StoryService

log = logging.getLogger(__name__)

T = TypeVar("T")

LEASE_CHECK_SECONDS = 30.0
SUMMARY_CACHE_SECONDS = 60.0
ARTICLE_CACHE_SIZE = 256
ERROR_BACKOFF_MAX = 5.0
SUMMARY_NOT_READY_RETRY_SECONDS = 1.0
PROBE_FIRST_SECONDS = 1.0  # first getMe after Telegram failed for every chat
PROBE_MAX_SECONDS = 15.0  # the probe backoff's cap: an outage's end is noticed within this
OUTAGE_CHATS = 3  # this many chats failing (5xx, timeouts) with no success in between: an outage
PROBE_REUSE_SECONDS = 2.0  # sends failing together share one getMe
CANARY_STRIKES = 2  # a lone delivery failing while getMe answers: an attempt is spent after this many
NOTICE_INTERVAL_SECONDS = 60.0  # parked notices to admins: at most one message per interval
LOG_REPEAT_SECONDS = 60.0
JOURNAL_NAME = "sent-journal.txt"
MAX_STORY_EDITS = 4  # stories whose footers are being edited at once


@dataclass(frozen=True)
class ParkedNotice:
    """A delivery that gave up; passed to the admin hook."""

    delivery_id: int
    article_id: int
    chat_id: int
    attempts: int
    error: str


# Gets every delivery parked since the last call (never while Telegram is failing); raising keeps
# them for the next call.
ParkedHook = Callable[[Sequence[ParkedNotice]], Awaitable[None]]
# Turns a claimed delivery, its article and the summary in the chat's language into the message.
PushRenderer = Callable[[ClaimedDelivery, ArticleView, ArticleSummary], Reply]
# A forum topic was closed or deleted under a push: (chat id, topic) -> fall back to General.
TopicHook = Callable[[int, int | None], Awaitable[None]]


class WakeupSource(Protocol):
    """Something that calls `wake` (from any thread) when there is new work: bot/db/notify.py."""

    def start(self, wake: Callable[[], object]) -> None: ...

    def stop(self, timeout: float = ...) -> bool: ...


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
    held: int = 0  # sends put back without an attempt because Telegram was failing
    telegram_outages: int = 0
    database_outages: int = 0
    recorded_late: int = 0  # sends recorded after the database came back (or from the journal)
    edited: int = 0  # sent pushes whose footer was refreshed (bot/services/stories.py)


class SentJournal:
    """Sends Telegram accepted whose `sent` row is not yet written (the database is away): one line
    "delivery_id message_id" each, appended and fsynced, replayed at start-up before orphans are
    re-queued, and emptied once every entry is recorded. path None: memory only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path | None) -> SentJournal:
        return cls(Path(data_dir) / JOURNAL_NAME if data_dir is not None else None)

    def append(self, delivery_id: int, message_id: int) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="ascii") as handle:
            # A line torn by a crash mid-write stays on its own line, and is skipped when read.
            handle.write(f"\n{delivery_id} {message_id}\n")
            handle.flush()
            os.fsync(handle.fileno())

    def entries(self) -> dict[int, int]:
        if self.path is None or not self.path.exists():
            return {}
        entries: dict[int, int] = {}
        for line in self.path.read_text(encoding="ascii", errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].lstrip("-").isdigit():
                entries[int(parts[0])] = int(parts[1])
        return entries

    def clear(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()


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
        journal: SentJournal | None = None,
        probe_first: float = PROBE_FIRST_SECONDS,
        probe_max: float = PROBE_MAX_SECONDS,
        canary_strikes: int = CANARY_STRIKES,
        notice_interval: float = NOTICE_INTERVAL_SECONDS,
        error_backoff_max: float = ERROR_BACKOFF_MAX,
        stories: StoryService | None = None,
        digests: DigestLane | None = None,
        on_topic_closed: TopicHook | None = None,
        wakeups: WakeupSource | None = None,
    ) -> None:
        self.stats = PushStats()
        self._wakeups = wakeups
        self._digests = digests  # due digests fill the slots instant pushes leave free
        self._on_topic_closed = on_topic_closed
        self._stories = stories
        self._edit_tasks: set[asyncio.Task[None]] = set()
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
        # --- outages ---
        self._journal = journal or SentJournal(None)
        self._probe_first = probe_first
        self._probe_max = probe_max
        self._canary_strikes = canary_strikes
        self._notice_interval = notice_interval
        self._error_backoff_max = error_backoff_max
        self.telegram = Outage(log, "Telegram Bot API")
        self.database = Outage(log, "database")
        self._throttle = Throttle(LOG_REPEAT_SECONDS)
        self._probe_delay = probe_first
        self._next_probe = 0.0
        self._canary_allowed = False  # getMe answered: one delivery may test sendMessage
        self._canary: int | None = None  # the delivery doing so
        self._strikes: dict[int, int] = {}  # delivery -> canary failures while getMe answered
        # Chats whose send failed with a 5xx/timeout since the last successful send, and when.
        self._recent_unavailable: dict[int, float] = {}
        self._probe_task: asyncio.Future[bool] | None = None
        self._probe_at = float("-inf")
        # Writes the database refused while it was away, retried until it is back: delivery ->
        # the write. Sent ones are also in the journal (a restart still records them).
        self._owed: dict[int, Callable[[], Any]] = {}
        self._unrecorded: dict[int, int] = {}  # delivery -> message id, sent but not yet `sent`
        self._notices: list[ParkedNotice] = []
        self._last_notice = float("-inf")

    @property
    def deliveries(self) -> DeliveryService:
        return self._deliveries

    @property
    def wakeups(self) -> WakeupSource | None:
        return self._wakeups

    @property
    def unrecorded(self) -> dict[int, int]:
        """Sends Telegram accepted that are not yet recorded as `sent` (the database is away)."""
        return dict(self._unrecorded)

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
        if self._wakeups is not None:
            self._wakeups.start(partial(asyncio.get_running_loop().call_soon_threadsafe, self.kick))
        failures = 0
        try:
            # Sends a stopped process could not record (the database was away) are recorded
            # first, so the re-queue below does not send them again.
            for delivery_id, message_id in self._journal.entries().items():
                self._owe_sent(delivery_id, message_id, journal=False)
            while not stop.is_set():
                try:
                    if not await self._settle_owed():
                        raise _StillAway
                    # Every `sending` row of our chat kinds was left by a process that died.
                    self.stats.requeued += await self._db(self._deliveries.recover_orphans, kinds=self._kinds, all_sending=True)
                    self._database_back()
                    if self._digests is not None:
                        self.stats.requeued += await self._db(self._digests.recover, True)
                    break
                except Exception as error:
                    failures += 1
                    self.stats.loop_errors += 1
                    self._database_error(error, "cannot recover deliveries")
                    await self._sleep(stop, min(self._error_backoff_max, 0.5 * 2 ** min(failures, 10)))
            last_fanout = 0.0
            last_lease_check = time.monotonic()
            failures = 0
            while not stop.is_set():
                try:
                    if not await self._settle_owed():
                        raise _StillAway
                    now = time.monotonic()
                    if self._kicked or now - last_fanout >= self._poll_interval:
                        last_fanout = now
                        self._kicked = False
                        await self._fan_out()
                        await self._edit_stories()
                    if now - last_lease_check >= LEASE_CHECK_SECONDS and not self._owed:
                        last_lease_check = now
                        self.stats.requeued += await self._db(self._deliveries.recover_orphans, kinds=self._kinds)
                        if self._digests is not None:
                            self.stats.requeued += await self._db(self._digests.recover, False)
                    self._wake.clear()
                    await self._probe_if_due()
                    claimed = await self._claim()
                    if not self._owed:  # a send that failed to record meanwhile keeps the outage open
                        self._database_back()
                    failures = 0
                    await self._flush_notices()
                except Exception as error:
                    failures += 1
                    self.stats.loop_errors += 1
                    self._database_error(error, "push loop step failed")
                    await self._sleep(stop, min(self._error_backoff_max, 0.5 * 2 ** min(failures, 10)))
                    continue
                if self.telegram.active and claimed == 0:
                    await self._pause(stop, max(0.05, min(self._poll_interval, self._next_probe - time.monotonic())))
                elif claimed == 0:
                    await self._pause(stop, self._poll_interval)
                else:
                    # Claim again once a batch of slots is free (or at the next poll), not per send.
                    await self._wait_for_slots(stop)
        finally:
            if self._wakeups is not None:
                await asyncio.to_thread(self._wakeups.stop)  # joins the thread: off the event loop
            await self._drain()
            await self._last_chance()
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

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep up to `seconds`, waking early on stop only (after a failure: finished sends or
        kicks must not turn the backoff into a busy loop)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep up to `seconds`, waking early on stop, kick, or a finished send."""
        if self._kicked:  # a kick during the last step: its wake-up was cleared, the flag was not
            return
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
            if any(item.story_id != item.article_id for item in result.articles):
                self._articles.clear()  # a story gained an outlet: cached footers are stale

    # --- "Also reported by": footers of sent pushes ----------------------------------------------
    async def _edit_stories(self) -> None:
        if self._stories is None or len(self._edit_tasks) >= MAX_STORY_EDITS:
            return
        requests = await self._db(self._stories.claim_edits, MAX_STORY_EDITS - len(self._edit_tasks))
        for request in requests:
            task = asyncio.create_task(self._edit_story(request), name=f"story-edit-{request.story_id}")
            self._edit_tasks.add(task)
            task.add_done_callback(self._edit_done)

    def _edit_done(self, task: asyncio.Task[None]) -> None:
        self._edit_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.loop_errors += 1
            log.error("story edit task failed", exc_info=task.exception())

    async def _edit_story(self, request: EditRequest) -> None:
        """Re-render the story's sent pushes with the current footer and edit them in place."""
        assert self._stories is not None
        again = None
        try:
            plan = await self._db(self._stories.plan, request, self._kinds)
            if plan.wait:
                again = EDIT_RECHECK
            views: dict[int, ArticleView] = {}
            for target in plan.targets:
                delivery = target.delivery
                if self._limiter is not None and delivery.chat_id in self._limiter.cooling_chats():
                    again = EDIT_RECHECK
                    continue
                view = views.get(delivery.article_id)
                if view is None:  # fresh, not from the cache: it must name the new outlet
                    view = await self._db(self._deliveries.article_view, delivery.article_id)
                    if view is None:
                        continue
                    views[delivery.article_id] = self._articles[delivery.article_id] = view
                summary = await self._summary(delivery.article_id, delivery.lang)
                message = self._render_push(delivery, view, summary)
                try:
                    await self._transport.edit(delivery.chat_id, target.message_id, message)
                    self.stats.edited += 1
                except RetryAfter as error:
                    self.stats.rate_limited += 1
                    if self._limiter is not None:
                        self._limiter.note_retry_after(delivery.chat_id, error.seconds)
                    again = EDIT_RECHECK
                except SendError as error:  # gone, moved, deleted message: that footer stays as it is
                    log.info("cannot edit push %s in chat %s: %s", target.message_id, delivery.chat_id, error)
        except SummaryNotReady:
            again = EDIT_RECHECK
        except Exception:
            self.stats.loop_errors += 1
            log.warning("story edit of %s failed; retrying", request.story_id, exc_info=True)
            again = EDIT_RECHECK
        await self._db(self._stories.finish, request, again)

    async def _claim(self) -> int:
        free = self._concurrency - len(self._tasks)
        if free <= 0:
            return 0
        canary = False
        if self.telegram.active:
            # Telegram is failing: nothing goes out but one test delivery once getMe answers.
            if not self._canary_allowed or self._canary is not None:
                return 0
            free, canary = 1, True
        if self._limiter is not None and self._limiter.globally_paused_for() > 1.0:
            return 0
        exclude = set(self._tasks.values())
        if self._limiter is not None:
            exclude |= self._limiter.cooling_chats()
        claimed = await self._db(self._deliveries.claim_due, free, kinds=self._kinds, exclude_chats=exclude)
        if canary:
            self._canary_allowed = False
            if not claimed:
                self._telegram_back("nothing was waiting")  # getMe answers and nothing to test with
                return 0
            self._canary = claimed[0].id
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
            error = task.exception()
            assert error is not None
            if is_unavailable(error):
                self._database_error(error, "push task")
            else:
                log.error("push task failed", exc_info=error)

    async def _drain(self) -> None:
        if not self._tasks and not self._edit_tasks:
            return
        pending = [*self._tasks, *self._edit_tasks]
        log.info("push loop stopping: waiting for %d sends", len(pending))
        _, still = await asyncio.wait(pending, timeout=self._drain_timeout)
        for task in still:
            task.cancel()  # left `sending`; requeued when the loop next starts
        if still:
            await asyncio.wait(still, timeout=2)

    async def _last_chance(self) -> None:
        """On stop: one more try at the owed writes; sends still unrecorded stay in the journal."""
        if self._owed:
            with contextlib.suppress(Exception):  # the journal keeps them
                await asyncio.wait_for(self._settle_owed(), 5)
        if self._unrecorded:
            log.warning("stopping with %d sends not yet recorded as sent; kept in %s for the next start",
                        len(self._unrecorded), self._journal.path or "memory (lost)")

    # --- the database going away ----------------------------------------------------------------
    def _database_error(self, error: BaseException, what: str) -> None:
        """One line when the database goes away, a rate-limited line for anything else."""
        if is_unavailable(error) or isinstance(error, _StillAway):
            if self.database.begin(f"{what}: {type(error).__name__}: {error}" if not isinstance(error, _StillAway) else what):
                self.stats.database_outages += 1
            return
        self._throttle.log(log, logging.ERROR, f"loop:{type(error).__name__}", "%s: %s: %s", what, type(error).__name__, error)

    def _database_back(self) -> None:
        if self.database.active:
            self.database.end(f"{self.stats.recorded_late} sends recorded late so far")

    def _owe(self, delivery_id: int, write: Callable[[], Any]) -> None:
        self._owed[delivery_id] = write
        self.database.held += 1

    def _owe_sent(self, delivery_id: int, message_id: int, *, journal: bool = True) -> None:
        """Telegram accepted it but `sent` is not written: keep it (and journal it) until it is."""
        self._unrecorded[delivery_id] = message_id
        if journal:
            try:
                self._journal.append(delivery_id, message_id)
            except OSError as error:
                self._throttle.log(log, logging.ERROR, "journal", "cannot journal sent delivery %s: %s", delivery_id, error)
        self._owe(delivery_id, partial(self._deliveries.mark_sent, delivery_id, message_id, late=True))

    async def _write(self, delivery_id: int, func: Callable[..., Any], *args: Any) -> bool:
        """An outcome write; kept and retried when the database is away (True if written now)."""
        try:
            await self._db(func, delivery_id, *args)
            return True
        except Exception as error:
            if not is_unavailable(error):
                raise
            self._database_error(error, f"delivery {delivery_id}")
            self._owe(delivery_id, partial(func, delivery_id, *args))
            return False

    async def _settle_owed(self) -> bool:
        """Retry the writes the database refused; True when none is left."""
        if not self._owed:
            return True
        for delivery_id, write in list(self._owed.items()):
            try:
                await self._db(write)
            except Exception as error:
                if is_unavailable(error):
                    return False
                log.error("delivery %s: giving up a write after the database came back: %s", delivery_id, error)
            self._owed.pop(delivery_id, None)
            if self._unrecorded.pop(delivery_id, None) is not None:
                self.stats.sent += 1
                self.stats.recorded_late += 1
        if not self._unrecorded:
            self._journal.clear()
        self._database_back()
        return True

    # --- Telegram going away --------------------------------------------------------------------
    async def _probe_if_due(self) -> None:
        if not self.telegram.active or self._canary_allowed or self._canary is not None:
            return
        now = time.monotonic()
        if now < self._next_probe:
            return
        if await self._transport.probe():
            self._canary_allowed = True  # next: one real send shows whether sendMessage works too
        else:
            self._backoff_probe()

    def _backoff_probe(self) -> None:
        self._next_probe = time.monotonic() + self._probe_delay
        self._probe_delay = min(self._probe_max, self._probe_delay * 2)

    def _telegram_down(self, error: SendError) -> None:
        if self.telegram.begin(str(error)):
            self.stats.telegram_outages += 1
            self._probe_delay = self._probe_first
            self._canary_allowed = False
            self._backoff_probe()

    def _telegram_back(self, detail: str = "") -> None:
        self._canary, self._canary_allowed = None, False
        if self.telegram.active:
            self.telegram.end(detail)
            self._wake.set()

    # --- one delivery ---------------------------------------------------------------------------
    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
            message = await self._render(delivery)
        except _NotFollowing:
            await self._write(delivery.id, self._deliveries.cancel, "the chat no longer follows the article's tags")
            self.stats.cancelled += 1
            self._release_canary(delivery)
            return
        except SummaryNotReady as error:
            # Queued on the workers (BROKER_URL), not failed: try again soon without using up an attempt.
            await self._write(delivery.id, self._deliveries.reschedule, SUMMARY_NOT_READY_RETRY_SECONDS, str(error))
            self._release_canary(delivery)
            return
        except Exception as error:  # a summary or database failure: retry later
            self._release_canary(delivery)
            if is_unavailable(error):
                # The database is away: not this delivery's fault, no attempt spent.
                self._database_error(error, f"render delivery {delivery.id}")
                await self._write(delivery.id, self._deliveries.reschedule, 1.0, f"render: {type(error).__name__}")
                return
            self._throttle.log(log, logging.WARNING, f"render:{type(error).__name__}", "cannot render delivery %s: %s: %s",
                               delivery.id, type(error).__name__, error)
            await self._failed(delivery, f"render: {type(error).__name__}: {error}")
            return
        canary = self._canary == delivery.id
        try:
            message_id = await self._transport.send(delivery.chat_id, message)
        except RetryAfter as error:
            self._answered(delivery)
            self.stats.rate_limited += 1
            if self._limiter is not None:
                self._limiter.note_retry_after(delivery.chat_id, error.seconds)
            await self._write(delivery.id, self._deliveries.reschedule, error.seconds, str(error))
            return
        except ChatGone as error:
            self._answered(delivery)
            self.stats.chats_gone += 1
            await self._db(self._chats.deactivate, delivery.chat_id, error.reason)
            return
        except ChatMoved as error:
            self._answered(delivery)
            await self._db(self._chats.migrate, delivery.chat_id, error.new_chat_id)
            self.kick()
            return
        except ServiceUnavailable as error:
            await self._unavailable(delivery, error, canary)
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
            self._answered(delivery)
            await self._failed(delivery, str(error))
            return
        except Exception as error:  # unexpected: treat like a transient failure
            self._release_canary(delivery)
            self._throttle.log(log, logging.WARNING, f"send:{type(error).__name__}",
                               "unexpected error sending delivery %s: %s: %s", delivery.id, type(error).__name__, error)
            await self._failed(delivery, f"{type(error).__name__}: {error}")
            return
        self._recent_unavailable.clear()
        self._strikes.pop(delivery.id, None)
        self._answered(delivery)
        await self._record_sent(delivery, message_id)

    def _answered(self, delivery: ClaimedDelivery) -> None:
        """Telegram answered a send (even with an error about the chat): it is up."""
        self._release_canary(delivery)
        if self.telegram.active:
            self._telegram_back()

    def _release_canary(self, delivery: ClaimedDelivery) -> None:
        if self._canary == delivery.id:
            self._canary = None
            self._backoff_probe()

    async def _unavailable(self, delivery: ClaimedDelivery, error: ServiceUnavailable, canary: bool) -> None:
        """A 5xx, timeout or connection error: an outage, unless Telegram works for other chats."""
        if canary:
            self._canary = None
            self._backoff_probe()
        outage = self.telegram.active
        if not outage and not canary:
            # Several chats failing with nothing going through in between, or getMe failing too:
            # Telegram is down. One chat failing while getMe answers: that chat's problem.
            self._recent_unavailable[delivery.chat_id] = time.monotonic()
            outage = len(self._recent_unavailable) >= OUTAGE_CHATS or not await self._probe_now()
        if not outage or canary:
            strikes = self._strikes.get(delivery.id, 0) + 1
            if strikes >= self._canary_strikes:
                # getMe answers but this delivery keeps failing: count it against the delivery.
                self._strikes.pop(delivery.id, None)
                await self._failed(delivery, str(error))
                return
            self._strikes[delivery.id] = strikes
            if not outage:
                self.stats.retried += 1
                await self._write(delivery.id, self._deliveries.reschedule, self._probe_first, str(error))
                return
        self._telegram_down(error)
        self.telegram.held += 1
        self.stats.held += 1
        # Put back as due now, without spending the attempt; claims wait for the outage's end.
        await self._write(delivery.id, self._deliveries.reschedule, 0.0, f"Telegram unavailable: {error}")

    async def _probe_now(self) -> bool:
        """getMe, shared by every send failing at the same moment (one request, not sixty)."""
        now = time.monotonic()
        if self._probe_task is None or (self._probe_task.done() and now - self._probe_at > PROBE_REUSE_SECONDS):
            self._probe_at = now
            self._probe_task = asyncio.ensure_future(self._transport.probe())
        return await asyncio.shield(self._probe_task)

    async def _record_sent(self, delivery: ClaimedDelivery, message_id: int) -> None:
        """Commit `sent` at once; if the database is away, keep (and journal) it until it is back."""
        try:
            recorded = await self._db(self._deliveries.mark_sent, delivery.id, message_id)
        except Exception as error:
            self._database_error(error, f"record delivery {delivery.id} as sent")
            self._owe_sent(delivery.id, message_id)
            return
        if recorded:
            self.stats.sent += 1
        else:  # re-queued meanwhile (lease over): record it all the same, so it is not sent again
            self._owe_sent(delivery.id, message_id)
            await self._settle_owed()

    async def _failed(self, delivery: ClaimedDelivery, error: str) -> None:
        try:
            outcome = await self._db(self._deliveries.fail, delivery.id, error)
        except Exception as db_error:
            if not is_unavailable(db_error):
                raise
            self._database_error(db_error, f"delivery {delivery.id}")
            self._owe(delivery.id, partial(self._deliveries.fail, delivery.id, error))
            return
        if not outcome.parked:
            self.stats.retried += 1
            return
        self.stats.parked += 1
        self._notices.append(ParkedNotice(delivery.id, delivery.article_id, delivery.chat_id, delivery.attempts, error))
        self._wake.set()

    async def _flush_notices(self) -> None:
        """Tell admins about parked deliveries, never while Telegram fails (they would be lost)."""
        if not self._notices or self._on_parked is None or self.telegram.active:
            return
        now = time.monotonic()
        if now - self._last_notice < self._notice_interval:
            return
        notices, self._notices = self._notices, []
        self._last_notice = now
        try:
            await self._on_parked(notices)
        except Exception as error:
            self._notices = notices + self._notices  # kept for the next try
            self._throttle.log(log, logging.WARNING, "notice", "cannot tell admins about parked deliveries: %s", error)

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


class _StillAway(Exception):
    """Writes owed to the database still fail: it is not back yet."""
