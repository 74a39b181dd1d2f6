"""Logging set-up: text or JSON lines, with secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
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
