"""Waking push loops at once on PostgreSQL: NOTIFY when a transaction leaves work for them, LISTEN in the bot.

Articles are stored by other processes too (`newsbot ingest`, feeds, workers). Without a wake-up
the push loop notices them at its next poll (0.5 s). On PostgreSQL the storing transaction also
sends NOTIFY, which the server delivers only at commit (a rollback sends nothing), and a listener
thread in the bot kicks the loop. SQLite has no cross-process notification: there the poll stays
the only way (docs/speed.md). The poll also stays on PostgreSQL, so a lost listener loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from bot.db.engine import Database

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

PUSHES_CHANNEL = "newsbot_pushes"
LISTENER_APPLICATION_NAME = "newsbot-push-listener"  # how it shows in pg_stat_activity
LISTEN_WAIT_SECONDS = 0.5  # longest wait between looks at the stop flag
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5
STOP_TIMEOUT_SECONDS = 5.0
# A server that vanished without closing the socket (a dead host, a dropped route) is noticed by
# TCP keepalives within about a minute; otherwise the wait would never end.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def wake_push_loops_on_commit(session: Session) -> None:
    """Tell every listening push loop, once this transaction commits, that there is work now (a
    public article to fan out, or deliveries that became due). On SQLite it does nothing."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": PUSHES_CHANNEL})


def listener_for(database: Database) -> PushListener | None:
    """A listener on this database's server, or None on SQLite (no notifications there)."""
    if database.engine.dialect.name != "postgresql":
        return None
    return PushListener(database.engine.url)


class PushListener:
    """A daemon thread with its own connection, LISTENing on PUSHES_CHANNEL and calling `wake` on
    each notification (and after each (re)connect, since notifications meanwhile were missed).

    `wake` runs on the listener thread: it must only hand over (loop.call_soon_threadsafe).
    A lost connection is retried with a capped backoff; one line when lost, one when back.
    """

    def __init__(self, url: URL, *, reconnect_first: float = RECONNECT_FIRST_SECONDS,
                 reconnect_max: float = RECONNECT_MAX_SECONDS) -> None:
        self._url = url
        self._reconnect_first = reconnect_first
        self._reconnect_max = reconnect_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = 0  # notifications so far (tests and logs)
        self.connects = 0  # successful LISTENs so far

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, wake: Callable[[], object]) -> None:
        """Start the thread (it connects there: nothing here blocks)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(wake,), name="push-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Ask the thread to end and wait up to `timeout`; whether it ended (a daemon thread
        stuck in a connect attempt does not hold the process)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning("push listener did not stop within %.0f s; leaving it behind", timeout)
            return False
        return True

    # --- the thread -----------------------------------------------------------------------------
    def _run(self, wake: Callable[[], object]) -> None:
        delay = self._reconnect_first
        lost = False
        while not self._stop.is_set():
            connection: psycopg.Connection[Any] | None = None
            try:
                connection = self._connect()
                connection.execute(f"LISTEN {PUSHES_CHANNEL}")
                self.connects += 1
                if lost:
                    log.warning("push notifications from PostgreSQL back; new articles wake the push loop again")
                    lost = False
                delay = self._reconnect_first
                self._wake(wake)  # whatever was stored while we were not listening
                while not self._stop.is_set():
                    for _notification in connection.notifies(timeout=LISTEN_WAIT_SECONDS):
                        self.received += 1
                        self._wake(wake)
            except Exception as error:  # a lost server mostly; anything else is retried the same way
                if self._stop.is_set():
                    break
                if not lost:
                    log.warning("push notifications from PostgreSQL lost (%s); the push loop polls until they are "
                                "back", self._describe(error))
                    lost = True
                self._stop.wait(delay)
                delay = min(self._reconnect_max, delay * 2)
            finally:
                if connection is not None:
                    connection.close()

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg  # here, not at import: a SQLite install never loads it

        url = self._url
        params: dict[str, Any] = {**url.translate_connect_args(username="user", database="dbname"), **url.query}
        params.update(_KEEPALIVES, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name=LISTENER_APPLICATION_NAME)
        return psycopg.connect(autocommit=True, **params)

    def _wake(self, wake: Callable[[], object]) -> None:
        try:
            wake()
        except RuntimeError:  # the event loop closed under a listener that outlived its stop
            log.debug("push listener: event loop gone", exc_info=True)

    def _describe(self, error: BaseException) -> str:
        """The error's first line, without the password."""
        lines = str(error).strip().splitlines()
        detail = lines[0] if lines else type(error).__name__
        if self._url.password:
            detail = detail.replace(str(self._url.password), "***")
        return detail
