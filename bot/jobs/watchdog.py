"""A worker that stopped consuming exits, so its supervisor starts a fresh one.

Celery workers can stay alive without taking jobs after the broker went away at the wrong
moment (Redis restarting while a job finishes: "Couldn't ack … ConnectionError", and the
consumer never resumes). `ConsumerWatchdog` looks at the queue from its own connection: jobs
waiting while this worker has been idle for `stall_after` seconds means its consumer is gone.
It logs one CRITICAL line and exits the process (the job it may have held is redelivered:
acks_late and the visibility timeout); Docker, systemd or Kubernetes restart it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 15.0
STALL_AFTER_S = 120.0
EXIT_STALLED = 75  # EX_TEMPFAIL: restart me


class ConsumerWatchdog:
    """Call `started()`/`finished()` around each job; `check()` (or the thread of `start()`) does the rest."""

    def __init__(
        self,
        depth: Callable[[], int | None],
        *,
        stall_after: float = STALL_AFTER_S,
        interval: float = WATCHDOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        exit: Callable[[int], None] = os._exit,
    ) -> None:
        self._depth = depth
        self._stall_after = stall_after
        self._interval = interval
        self._clock = clock
        self._exit = exit
        self._running = 0
        self._last_activity = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def started(self, *_: object, **__: object) -> None:
        with self._lock:
            self._running += 1
            self._last_activity = self._clock()

    def finished(self, *_: object, **__: object) -> None:
        with self._lock:
            self._running = max(0, self._running - 1)
            self._last_activity = self._clock()

    def check(self) -> bool:
        """True when the worker must go: jobs wait and it took none for `stall_after` seconds."""
        with self._lock:
            idle_for = self._clock() - self._last_activity if self._running == 0 else 0.0
        if idle_for < self._stall_after:
            return False
        try:
            waiting = self._depth()
        except Exception:  # the broker is away: the consumer reconnects by itself, wait for it
            return False
        if not waiting:
            with self._lock:
                self._last_activity = self._clock()  # idle because there is nothing to do
            return False
        log.critical("worker idle for %.0f s while %d jobs wait: its broker consumer is gone; exiting to be restarted",
                     idle_for, waiting)
        self._exit(EXIT_STALLED)
        return True

    def start(self) -> ConsumerWatchdog:
        thread = threading.Thread(target=self._run, name="consumer-watchdog", daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self.check():
                return
