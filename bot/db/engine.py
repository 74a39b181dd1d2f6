"""Engine and sessions: SQLite in WAL mode with a busy timeout, or PostgreSQL."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "newsbot_read_only"  # execution option of Database.read_session's engine
# psycopg (3) is the PostgreSQL driver newsbot installs; a URL without a driver would make
# SQLAlchemy 2.0 pick psycopg2, which is not installed. "postgres://" is Heroku's spelling.
POSTGRES_DRIVER = "postgresql+psycopg"
_DRIVERLESS_POSTGRES = ("postgresql", "postgres")


class DatabaseUnavailable(Exception):
    """DATABASE_URL is malformed, or its database cannot be reached; str() is one line for the user."""


def normalize_url(database_url: str | URL) -> URL:
    """The URL with the installed PostgreSQL driver when none is named."""
    url = make_url(database_url)
    if url.drivername in _DRIVERLESS_POSTGRES:
        url = url.set(drivername=POSTGRES_DRIVER)
    return url


def describe_database(database_url: str | URL) -> str:
    """Which database this is, for a start-up line: the SQLite file, or the URL without its password."""
    try:
        url = normalize_url(database_url)
    except ArgumentError:
        return "an unreadable DATABASE_URL"
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return "SQLite in memory"
        return f"SQLite file {Path(url.database).expanduser().resolve()}"
    return f"{url.get_backend_name()} {url.render_as_string(hide_password=True)}"


def _server(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def explain_database_error(database_url: str, error: BaseException) -> str:
    """One line naming DATABASE_URL, what is wrong and what to do; never the password."""
    try:
        url = normalize_url(database_url)
    except ArgumentError:
        return (
            "DATABASE_URL: not a database URL; use sqlite:////absolute/path/newsbot.sqlite3 "
            "or postgresql://user:password@host/database"
        )
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"} or isinstance(error, (ArgumentError, ModuleNotFoundError)):
        return (
            f"DATABASE_URL: unsupported database {url.drivername!r}; "
            "use sqlite:///path/newsbot.sqlite3 or postgresql://user:password@host/database"
        )
    detail = str(getattr(error, "orig", None) or error).strip()
    if url.password:
        detail = detail.replace(str(url.password), "***")
    if backend == "sqlite":
        reason = detail.splitlines()[0] if detail else type(error).__name__
        return (
            f"DATABASE_URL: cannot open SQLite file {url.database} ({reason}); "
            "check that its folder exists and is writable (or set DATA_DIR)"
        )
    server = _server(url)
    if missing := re.search(r'database "([^"]+)" does not exist', detail):
        name = missing.group(1)
        return f'DATABASE_URL: database "{name}" does not exist on PostgreSQL at {server}; create it with createdb {name}'
    if re.search(r"role .* does not exist|password authentication failed|no password supplied", detail):
        return (
            f"DATABASE_URL: PostgreSQL at {server} refused user {url.username!r} (wrong user or password); "
            "check the user and password in the URL"
        )
    if "Connection refused" in detail:
        reason = "connection refused"
    elif "resolve host" in detail or "Name or service not known" in detail:
        reason = f"unknown host {url.host!r}"
    elif "timeout" in detail.lower() or "timed out" in detail.lower():
        reason = "timed out"
    else:
        reason = detail.splitlines()[0] if detail else type(error).__name__
    return f"DATABASE_URL: cannot connect to PostgreSQL at {server} ({reason}); is the server running?"


# Errors after which a pooled PostgreSQL connection must not be used again: the server went
# read-only (a standby after a failover, default_transaction_read_only) keeps that setting per
# session, so only a fresh connection finds the writable primary again.
_READ_ONLY_MARKERS = ("read-only transaction", "read only transaction", "in a read-only transaction")


def is_read_only_error(error: BaseException) -> bool:
    """Whether the server refused a write because it (or the session) is read-only."""
    return any(marker in str(getattr(error, "orig", None) or error).lower() for marker in _READ_ONLY_MARKERS)


def is_unavailable(error: BaseException | None) -> bool:
    """Whether `error` means the database is out of reach (down, restarting, read-only, pool
    exhausted) rather than a bug or a bad query: the caller waits and tries again."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sa_exc.OperationalError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return True
        if isinstance(error, sa_exc.DBAPIError) and is_read_only_error(error):
            return True
        if isinstance(error, DatabaseUnavailable):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def _prepare_postgres(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        # A read-only answer is treated like a lost connection: SQLAlchemy then invalidates it
        # and recycles the whole pool (every pooled connection may hold the same setting).
        if not context.is_disconnect and is_read_only_error(context.original_exception):
            context.is_disconnect = True
            context.invalidate_pool_on_disconnect = True


def _prepare_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            # A reader in WAL mode never waits for the writer: a plain (deferred) BEGIN takes no
            # lock, and query_only makes a write in it fail loudly instead of waiting for the lock.
            connection.exec_driver_sql("PRAGMA query_only=1")
            connection.exec_driver_sql("BEGIN")
            return
        connection.exec_driver_sql("PRAGMA query_only=0")
        # IMMEDIATE takes the write lock up front, so a read-then-write transaction waits
        # on busy_timeout instead of failing with SQLITE_BUSY when another process writes.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite the file's folder is created and WAL is switched on."""
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        _prepare_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # A connection attempt to a host that does not answer gives up after 10 s, not the OS's minutes.
    if url.get_backend_name() == "postgresql":
        connect_args = dict(kwargs.pop("connect_args", {}) or {})
        connect_args.setdefault("connect_timeout", 10)
        kwargs["connect_args"] = connect_args
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "postgresql":
        _prepare_postgres(engine)
    return engine


class Database:
    """An engine with its session factory; one per process, passed to the services."""

    def __init__(self, database_url: str, **engine_kwargs: Any) -> None:
        self.url = database_url
        self.engine = make_engine(database_url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # Same pool and events; on SQLite its transactions begin deferred and read-only (_prepare_sqlite).
        self.read_sessionmaker = sessionmaker(self.engine.execution_options(**{READ_ONLY_OPTION: True}),
                                              expire_on_commit=False)
        # SQLite has one write lock, and every transaction here takes it (BEGIN IMMEDIATE). Threads
        # of this process queue for it on this lock, which hands over the moment it is free;
        # SQLite's busy handler sleeps up to 100 ms between tries, so a command could sleep long
        # after the lock was free while a fan-out's sends write 30 times a second (docs/speed.md).
        # Other processes (`newsbot ingest`) still meet the busy timeout.
        self._writer = threading.RLock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        # Bounded like the busy timeout: a thread that holds a transaction while waiting for another
        # thread's fails as SQLite would have made it fail, instead of waiting forever.
        queued = self._writer is not None and self._writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            with self.sessionmaker() as session, session.begin():
                yield session
        finally:
            if queued:
                assert self._writer is not None
                self._writer.release()

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session in one transaction that only reads (a write in it fails on SQLite).

        On SQLite it neither takes nor queues for the write lock: in WAL mode a reader sees the last
        commit and never waits, so a command's reads do not wait behind a fan-out's inserts or the
        sends' bookkeeping. On PostgreSQL it is an ordinary session (readers never wait there).
        """
        with self.read_sessionmaker() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(database_url: str, *, connect: bool = True, **engine_kwargs: Any) -> Database:
    """A Database whose server answered; DatabaseUnavailable (one line, from the cause) otherwise.

    connect=False only checks the URL: for workers, which wait for a database still starting.
    """
    try:
        database = Database(database_url, **engine_kwargs)
    except (SQLAlchemyError, ModuleNotFoundError, OSError) as error:
        raise DatabaseUnavailable(explain_database_error(database_url, error)) from error
    if not connect:
        return database
    try:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as error:
        database.dispose()
        raise DatabaseUnavailable(explain_database_error(database_url, error)) from error
    return database
