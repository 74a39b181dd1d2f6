"""The health endpoint: /healthz (liveness), /readyz (readiness checks, JSON) and /metrics.

A small threaded HTTP server on HEALTH_LISTEN:HEALTH_PORT, used by the bot and by workers alike;
checks run in the server's thread, so they may block (database ping, broker connection).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from bot.config import Settings
from bot.db import Database
from bot.ops.metrics import Metrics, build_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one readiness check."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Check:
    """A named readiness check; `run` raises or returns a detail line."""

    name: str
    run: Callable[[], str]

    def result(self) -> CheckResult:
        try:
            return CheckResult(True, self.run())
        except Exception as error:
            return CheckResult(False, f"{type(error).__name__}: {error}"[:300])


def database_check(db: Database) -> Check:
    """Ready when the database answers, its schema is at the newest migration and it takes a write
    (a no-op UPDATE of alembic_version, rolled back: a read-only server or session fails it)."""

    head = _newest_revision()

    def run() -> str:
        from sqlalchemy.exc import OperationalError, ProgrammingError

        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            try:
                # Read directly: alembic's MigrationContext would log two INFO lines per probe.
                current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except (ProgrammingError, OperationalError):
                current = None  # no alembic_version table: never migrated
            if current is not None:
                connection.rollback()
                if db.engine.dialect.name == "postgresql":
                    # A migration holding the row must not make the probe hang.
                    connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
                connection.rollback()
        if current != head:
            raise RuntimeError(f"schema at {current or 'nothing'}, newest is {head}: run `newsbot db upgrade`")
        return f"{db.engine.dialect.name} at {current}, writable"

    return Check("database", run)


def _newest_revision() -> str | None:
    from alembic.script import ScriptDirectory

    from bot.db.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def status_check(name: str, status_line: Callable[[], str]) -> Check:
    """Always ready (a fallback is fine); shows what is loaded, e.g. models or the extractive fallback."""
    return Check(name, status_line)


def readiness(checks: Sequence[Check]) -> tuple[bool, dict[str, object]]:
    """Run every check; ready only when all pass."""
    results = {check.name: check.result() for check in checks}
    ready = all(result.ok for result in results.values())
    body: dict[str, object] = {
        "status": "ready" if ready else "not ready",
        "checks": {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()},
    }
    return ready, body


class HealthServer:
    """Serves /healthz, /readyz and /metrics from a daemon thread until `stop()`."""

    def __init__(self, host: str, port: int, checks: Sequence[Check], metrics: Metrics | None = None) -> None:
        self._checks = list(checks)
        self._metrics = metrics
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health endpoint on port %d (/healthz, /readyz, /metrics)", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._send_json(HTTPStatus.OK, {"status": "ok"})
                elif path == "/readyz":
                    ready, body = readiness(server._checks)
                    self._send_json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, body)
                elif path == "/metrics" and server._metrics is not None:
                    self._send(HTTPStatus.OK, server._metrics.exposition(), CONTENT_TYPE_LATEST)
                else:
                    self._send_json(HTTPStatus.NOT_FOUND, {"status": "not found"})

            def _send_json(self, status: HTTPStatus, body: dict[str, object]) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: HTTPStatus, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("health: " + format, *args)

        return Handler


def process_checks(
    settings: Settings, db: Database, status_line: Callable[[], str]
) -> tuple[list[Check], Callable[[], int | None] | None]:
    """Readiness checks of a bot or worker process, and the queue-depth probe when BROKER_URL is set."""
    checks = [database_check(db), status_check("models", status_line)]
    depth: Callable[[], int | None] | None = None
    if settings.broker_url:
        from bot.jobs.celery_app import CeleryJobs, build_celery_app

        jobs = CeleryJobs(build_celery_app(settings), settings.job_queue)
        checks.append(Check("queue", jobs.ping))
        depth = jobs.depth
    return checks, depth


def health_task(
    settings: Settings, db: Database, status_line: Callable[[], str]
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None:
    """A background task for the bot's event loop: serve HEALTH_PORT until stopped (None when off)."""
    if not settings.health_port:
        return None
    port = settings.health_port

    async def serve(stop: asyncio.Event) -> None:
        checks, depth = process_checks(settings, db, status_line)
        metrics = build_metrics(db, queue_depth=depth)
        counting = metrics.count_logged_errors()
        server = HealthServer(settings.health_listen, port, checks, metrics).start()
        try:
            await stop.wait()
        finally:
            await asyncio.to_thread(server.stop)
            logging.getLogger().removeHandler(counting)

    return serve
