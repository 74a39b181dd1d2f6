"""Logging set-up: text or JSON lines, with secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REDACTED = "[REDACTED]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SHORT_LINE_CHARS = 160


class RedactingFilter(logging.Filter):
    """Replaces each secret (the bot token) in a record's final message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key.startswith("ctx_"):
                payload[key[4:]] = value
        if record.exc_text:
            payload["exception"] = record.exc_text
        elif record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


class ShortFormatter(logging.Formatter):
    """One short line per record, no traceback: for a terminal that is also a conversation."""

    def format(self, record: logging.LogRecord) -> str:
        lines = record.getMessage().strip().splitlines() or [""]
        text = lines[0]
        if len(text) > SHORT_LINE_CHARS or len(lines) > 1:
            text = text[: SHORT_LINE_CHARS - 1].rstrip() + "…"
        return f"newsbot: {record.levelname.lower()}: {text}"


def setup_logging(
    level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (), *, log_file: Path | None = None
) -> None:
    """Configure the root logger once per process; every handler redacts the secrets.

    log_file: records at `level` go to this file (text or JSON as `fmt` says); the terminal
    gets only WARNING and above, one short line each (the shell, whose terminal is the chat).
    """
    secrets = list(secrets)
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handlers: list[logging.Handler] = []
    if log_file is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        handlers.append(handler)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(formatter)
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setLevel(logging.WARNING)
        terminal.setFormatter(ShortFormatter())
        handlers += [handler, terminal]
        logging.captureWarnings(True)  # library warnings go to the file too, not raw onto the terminal
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, logging.FileHandler):
            old.close()
    for handler in handlers:
        handler.addFilter(RedactingFilter(secrets))
        root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and Bot API URLs hold the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic says "Context impl ..." at INFO on every start; bot.db.migrate logs real upgrades.
    logging.getLogger("alembic").setLevel(logging.WARNING)


class Throttle:
    """Rate-limited repeats: the first occurrence of a key is logged, then at most one line per
    `interval` seconds, saying how many were held back in between.

        throttle = Throttle(60)
        throttle.log(log, logging.WARNING, "db", "cannot record delivery %s: %s", 12, error)
    """

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, key: str) -> int | None:
        """None while `key` must stay quiet (counted), else how many were held back since its last line."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)

    def log(self, logger: logging.Logger, level: int, key: str, msg: str, *args: object) -> bool:
        """Log one line (never a traceback) unless `key` logged less than `interval` ago."""
        held = self.due(key)
        if held is None:
            return False
        if held:
            msg += f" ({held} more like this in the last {self._interval:.0f} s)"
        logger.log(level, msg, *args)
        return True

    def forget(self, key: str) -> None:
        """The condition ended: the next occurrence logs at once."""
        self._last.pop(key, None)
        self._held.pop(key, None)


class Outage:
    """One line when something we depend on goes away, one when it is back (with how long and what
    was held), nothing in between but `note`d counts."""

    def __init__(self, logger: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._what = what
        self._clock = clock
        self.since: float | None = None
        self.held = 0  # things that waited during this outage
        self.count = 0  # outages so far

    @property
    def active(self) -> bool:
        return self.since is not None

    def begin(self, reason: str, held: int = 0) -> bool:
        """Note a failure; True (and one WARNING line) if it starts an outage."""
        self.held += held
        if self.since is not None:
            return False
        self.since = self._clock()
        self.count += 1
        self._log.warning("%s unavailable (%s); waiting for it to come back", self._what, _one_line(reason))
        return True

    def end(self, detail: str = "") -> float | None:
        """Note a success; the outage's length in seconds (and one line) if one was going on."""
        if self.since is None:
            return None
        length = self._clock() - self.since
        extra = f"; {detail}" if detail else ""
        self._log.warning("%s back after %.1f s (%d held during the outage%s)", self._what, length, self.held, extra)
        self.since = None
        self.held = 0
        return length


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
