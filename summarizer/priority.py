"""Model work at a lower CPU priority, so the threads that answer users always get a core.

On Linux a nice value belongs to a thread, and threads inherit it from the thread that starts them:
a model loaded and run from these threads keeps its own threads (CTranslate2's replicas, OpenMP
and torch pools) at the lowered priority too. The scheduler then gives the event loop and the
database threads a core the moment they need one, while the model still gets every idle cycle:
a lone summary runs as fast as before (docs/speed.md, bench/bench_latency.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
# Summary and translation models run side by side, and callers of one model wait on its lock
# inside these threads: enough threads that a waiting call never holds up the other model.
MODEL_THREADS = 8


class LowPriorityThreads:
    """Runs calls on threads whose nice value is `niceness` above the process's (0: in the caller)."""

    def __init__(self, niceness: int, name: str = "model") -> None:
        self.niceness = niceness
        self._name = name
        self._inside = threading.local()  # set in our own threads: nested calls run in place
        self._guard = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def call(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """func(*args, **kwargs) on a lowered-priority thread; blocks until it returns or raises."""
        if self.niceness <= 0 or getattr(self._inside, "active", False):
            return func(*args, **kwargs)
        return self._executor().submit(func, *args, **kwargs).result()

    def close(self) -> None:
        """Stop the threads once running calls have returned."""
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(MODEL_THREADS, thread_name_prefix=self._name,
                                                initializer=self._lower)
            return self._pool

    def _lower(self) -> None:
        self._inside.active = True
        lower_thread_priority(self.niceness)


def lower_thread_priority(niceness: int) -> None:
    """Raise the calling thread's nice value by `niceness` (never needs privileges)."""
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))
    except (AttributeError, OSError) as error:  # not a Unix, or a sandbox refusing it: full priority
        log.debug("cannot lower the priority of model threads: %s", error)
