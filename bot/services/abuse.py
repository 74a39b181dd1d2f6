"""Per-chat command rate limit: a sliding one-minute window; warn once, then ignore."""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateVerdict(enum.StrEnum):
    ALLOW = "allow"
    WARN = "warn"  # first command over the limit: tell the chat to slow down
    DROP = "drop"  # further commands in the same window: ignore silently


class CommandRateLimiter:
    """At most `per_minute` commands per chat in any 60 s; thread-safe, memory pruned as it goes."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}
        self._last_prune = clock()

    @property
    def limit(self) -> int:
        return self._limit

    def check(self, chat_id: int) -> RateVerdict:
        """Record one command from the chat and say whether to handle it."""
        now = self._clock()
        with self._lock:
            self._prune(now)
            hits = self._hits.setdefault(chat_id, deque())
            while hits and now - hits[0] >= WINDOW_SECONDS:
                hits.popleft()
            if len(hits) < self._limit:
                hits.append(now)
                self._warned.pop(chat_id, None)
                return RateVerdict.ALLOW
            if chat_id in self._warned:
                return RateVerdict.DROP
            self._warned[chat_id] = now
            return RateVerdict.WARN

    def _prune(self, now: float) -> None:
        # Forget idle chats once a minute so the dict does not grow with every chat ever seen.
        if now - self._last_prune < WINDOW_SECONDS:
            return
        self._last_prune = now
        for chat_id in [c for c, h in self._hits.items() if not h or now - h[-1] >= WINDOW_SECONDS]:
            del self._hits[chat_id]
            self._warned.pop(chat_id, None)
