"""Graceful shutdown: SIGTERM and SIGINT set a stop event that loops check between units of work."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """In the main thread of a sync process: the first signal sets `stop`; the old handlers come back after."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing in-flight work, then stopping", signal.Signals(signum).name)
        stop.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, handle)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_loop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """In an asyncio process: the first signal sets `stop` (the loop's tasks then wind down)."""

    def handle(sig: signal.Signals) -> None:
        log.info("received %s: finishing in-flight work, then stopping", sig.name)
        stop.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, handle, sig)
