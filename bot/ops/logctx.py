"""Structured log context: key/values bound for a block of code appear in every JSON log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

_CONTEXT: ContextVar[Mapping[str, object]] = ContextVar("newsbot_log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Bind values (job id, article id, ...) to every log record made inside the block."""
    token = _CONTEXT.set({**_CONTEXT.get(), **values})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound values onto the record as ctx_<name> (bot.logs.JsonFormatter prints them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            setattr(record, f"ctx_{key}", value)
        return True


def install_context_filter(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of the root logger (once per handler)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(existing, ContextFilter) for existing in handler.filters):
            handler.addFilter(ContextFilter())
