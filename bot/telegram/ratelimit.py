"""One limiter for everything the bot sends: global, per-chat and per-group rates, RetryAfter.

`SendRateLimiter` is a PTB `BaseRateLimiter`, passed to `ApplicationBuilder().rate_limiter(...)`,
so command replies and pushes share it. Message-sending calls wait for:

1. their chat's turn (one at a time per chat, SEND_RATE_PER_CHAT apart; groups also at most
   SEND_RATE_PER_GROUP_MINUTE in any 60 s), then
2. a global slot (at most SEND_RATE_GLOBAL in any second). Waiters for global slots are
   served by priority: replies to users (the default) before pushes (`Priority.PUSH`), and pushes
   and digests are spaced evenly (BACKGROUND_PACING) instead of in clumps, so a /follow is
   answered within about one interval even while a large fan-out sends as fast as it may.

A 429 RetryAfter blocks that chat for the time Telegram asks; 429s for several chats within a
short window mean the bot as a whole is limited, and then every send pauses. The request is
retried up to `max_retries` times after the wait, then the RetryAfter is raised to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

from bot.config import Settings

log = logging.getLogger(__name__)

# Bot API methods that put a message into a chat and count toward Telegram's limits.
LIMITED_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
        "editMessageReplyMarkup",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAnimation",
        "sendAudio",
        "sendVoice",
        "sendMediaGroup",
        "sendSticker",
        "sendPoll",
        "sendLocation",
        "sendContact",
        "copyMessage",
        "copyMessages",
        "forwardMessage",
        "forwardMessages",
    }
)
# 429s for this many different chats within GLOBAL_429_WINDOW seconds mean a global limit.
GLOBAL_429_CHATS = 2
GLOBAL_429_WINDOW = 2.0
GROUP_WINDOW = 60.0
# The global window is this much longer than a second: requests leave in order but may reach
# Telegram a few milliseconds apart from when they were released.
WINDOW_MARGIN = 0.02
# Pushes and digests keep at least this share of the mean interval between two sends (see _GlobalGate).
BACKGROUND_PACING = 0.95
# Per-chat state is dropped once idle this long, so 10,000 chats do not pile up forever.
CHAT_STATE_TTL = 120.0


class Priority(enum.IntEnum):
    """Order in which waiters get global slots; lower goes first."""

    REPLY = 0  # answers to a user's command or button
    PUSH = 1  # background deliveries
    DIGEST = 2  # digest parts: a breaking push never waits behind a morning's digests


def retry_after_seconds(error: RetryAfter) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB settings."""
    with warnings.catch_warnings():
        # PTB warns that the int becomes a timedelta in a future version: both are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = error.retry_after
    return float(value.total_seconds() if hasattr(value, "total_seconds") else value)


def is_group_chat(chat_id: int) -> bool:
    """Groups, supergroups and channels have negative ids; users positive."""
    return chat_id < 0


class _GlobalGate:
    """Hands out send slots: at most `per_window` in any `window` seconds (Telegram's "30 messages
    per second"), never closer than half the mean interval; highest priority first, then FIFO.

    Counting in a sliding window (rather than spacing sends exactly 1/rate apart) keeps the
    long-run rate at the limit even when a busy machine wakes the timer late.
    """

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        if rate >= 1:
            self.window, self.per_window = 1.0 + WINDOW_MARGIN, int(rate)
        else:
            self.window, self.per_window = 1.0 / rate + WINDOW_MARGIN, 1
        self.min_gap = self.window / self.per_window / 2
        # Pushes and digests keep nearly the mean interval apart. With half of it they went out in
        # clumps at twice the rate and then paused until the window slid; the sliding window
        # repeats such a pattern every second, and a reply that came at a pause waited up to half
        # a second, first in line all the same (docs/speed.md, Responsiveness). At 95%
        # a pause lasts at most about 5% of the window, yet a sender woken late still catches up.
        self.background_gap = self.window / self.per_window * BACKGROUND_PACING
        self._clock = clock
        self._sent: deque[float] = deque(maxlen=self.per_window)
        self._paused_until = 0.0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def pause_until(self, moment: float) -> None:
        """No slot before `moment` (a global RetryAfter)."""
        self._paused_until = max(self._paused_until, moment)
        if self._wake is not None:
            self._wake.set()

    def _next_slot(self, now: float, priority: int) -> float:
        """When a sender of this priority may go: at most per_window sends in any window, replies
        at least min_gap after the last send, pushes and digests background_gap."""
        slot = max(now, self._paused_until)
        if self._sent:
            slot = max(slot, self._sent[-1] + (self.min_gap if priority <= Priority.REPLY else self.background_gap))
            if len(self._sent) >= self.per_window:
                slot = max(slot, self._sent[0] + self.window)
        return slot

    async def acquire(self, priority: int) -> None:
        now = self._clock()
        if not self._waiters and self._next_slot(now, priority) <= now:
            self._sent.append(now)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), future))
        if self._dispatcher is None or self._dispatcher.done():
            self._wake = asyncio.Event()
            self._dispatcher = asyncio.create_task(self._dispatch(), name="send-rate-gate")
        await future

    async def _dispatch(self) -> None:
        assert self._wake is not None
        while self._waiters:
            now = self._clock()
            delay = self._next_slot(now, self._waiters[0][0]) - now
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            _, _, future = heapq.heappop(self._waiters)
            if future.done():  # the waiter was cancelled
                continue
            self._sent.append(now)
            future.set_result(None)

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        for _, _, future in self._waiters:
            if not future.done():
                future.cancel()
        self._waiters.clear()


@dataclass
class _ChatState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_at: float = 0.0
    recent: deque[float] = field(default_factory=deque)  # group send times in the last minute
    last_used: float = 0.0


class SendRateLimiter(BaseRateLimiter[int]):
    """Telegram's sending limits for one bot, shared by all its requests."""

    def __init__(
        self,
        global_rate: float = 30.0,
        per_chat_rate: float = 1.0,
        per_group_minute: float = 20.0,
        *,
        max_retries: int = 1,
        max_retry_wait: float = 60.0,
        group_window: float = GROUP_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.global_rate = global_rate
        self.per_chat_interval = 1.0 / per_chat_rate
        self.per_group_minute = max(1, int(per_group_minute))
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.group_window = group_window
        self._clock = clock
        self._gate = _GlobalGate(global_rate, clock)
        self._chats: dict[int, _ChatState] = {}
        self._recent_429: deque[tuple[float, int]] = deque()
        self._global_pause_until = 0.0
        self._acquired = 0

    async def initialize(self) -> None:
        """Nothing to open: state lives in memory."""

    async def shutdown(self) -> None:
        """Release waiters of the global gate."""
        await self._gate.close()

    # --- what the push sender asks ------------------------------------------------------------
    def cooling_chats(self) -> set[int]:
        """Chats that may not be sent to for more than a second (RetryAfter, or a group that used
        up its messages for the minute), so the push sender does not tie up a slot waiting."""
        now = self._clock()
        horizon = now + 1.0
        cooling = set()
        for chat_id, state in self._chats.items():
            ready = state.next_at
            if len(state.recent) >= self.per_group_minute and state.recent[0] > now - self.group_window:
                ready = max(ready, state.recent[0] + self.group_window)
            if ready > horizon:
                cooling.add(chat_id)
        return cooling

    def globally_paused_for(self) -> float:
        """Seconds left of a global RetryAfter pause (0 when none)."""
        return max(0.0, self._global_pause_until - self._clock())

    def note_retry_after(self, chat_id: int | None, seconds: float) -> None:
        """Record a 429: block the chat, or every chat when several chats got one recently."""
        now = self._clock()
        until = now + seconds
        if chat_id is not None:
            state = self._chats.setdefault(chat_id, _ChatState())
            state.next_at = max(state.next_at, until)
            state.last_used = now
            self._recent_429.append((now, chat_id))
        while self._recent_429 and self._recent_429[0][0] < now - GLOBAL_429_WINDOW:
            self._recent_429.popleft()
        distinct = {chat for _, chat in self._recent_429}
        if chat_id is None or len(distinct) >= GLOBAL_429_CHATS:
            log.warning("Telegram rate limit for the whole bot: pausing sends for %.1f s", seconds)
            self._global_pause_until = max(self._global_pause_until, until)
            self._gate.pause_until(until)

    # --- the PTB contract -----------------------------------------------------------------------
    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Wait for the chat's turn and a global slot, call, and honour RetryAfter."""
        chat_id = data.get("chat_id")
        if not isinstance(chat_id, int):
            chat_id = None  # "@channelname" or no chat: only the global limit applies
        limited = endpoint in LIMITED_METHODS
        priority = int(rate_limit_args) if rate_limit_args is not None else int(Priority.REPLY)
        attempt = 0
        while True:
            if limited:
                await self.acquire(chat_id, priority)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                seconds = retry_after_seconds(error)
                self.note_retry_after(chat_id, seconds)
                if attempt >= self.max_retries or seconds > self.max_retry_wait:
                    raise
                attempt += 1
                log.info("RetryAfter %.1f s on %s; retrying after the wait", seconds, endpoint)
                if not limited:
                    await asyncio.sleep(seconds)

    async def acquire(self, chat_id: int | None, priority: int = Priority.REPLY) -> None:
        """Wait until a message to `chat_id` may be sent now, and claim that moment."""
        if chat_id is None:
            await self._wait_global_pause()
            await self._gate.acquire(priority)
            return
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = _ChatState()
        async with state.lock:
            while True:
                now = self._clock()
                ready = state.next_at
                if is_group_chat(chat_id):
                    while state.recent and state.recent[0] <= now - self.group_window:
                        state.recent.popleft()
                    if len(state.recent) >= self.per_group_minute:
                        ready = max(ready, state.recent[0] + self.group_window)
                if ready <= now:
                    break
                await asyncio.sleep(ready - now)
            await self._wait_global_pause()
            await self._gate.acquire(priority)
            sent_at = self._clock()
            state.next_at = max(state.next_at, sent_at + self.per_chat_interval)
            state.last_used = sent_at
            if is_group_chat(chat_id):
                state.recent.append(sent_at)
        self._acquired += 1
        if self._acquired % 1000 == 0:
            self._prune()

    async def _wait_global_pause(self) -> None:
        while (left := self._global_pause_until - self._clock()) > 0:
            await asyncio.sleep(left)

    def _prune(self) -> None:
        """Forget chats idle for a while (their limits have long expired)."""
        cutoff = self._clock() - CHAT_STATE_TTL
        for chat_id in [
            cid
            for cid, state in self._chats.items()
            if state.last_used < cutoff and state.next_at < cutoff and not state.lock.locked()
        ]:
            del self._chats[chat_id]


def build_rate_limiter(settings: Settings) -> SendRateLimiter:
    """The limiter configured from SEND_RATE_GLOBAL, SEND_RATE_PER_CHAT, SEND_RATE_PER_GROUP_MINUTE."""
    return SendRateLimiter(
        global_rate=settings.send_rate_global,
        per_chat_rate=settings.send_rate_per_chat,
        per_group_minute=settings.send_rate_per_group_minute,
    )
