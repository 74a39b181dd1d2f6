"""How a rendered push reaches a chat: the Transport protocol, its typed errors, and Telegram's.

The push sender only knows `Transport.send`; `TelegramTransport` wraps a PTB bot (with the
shared rate limiter), `newsbot shell` has its own transport that prints to the terminal.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.error import RetryAfter as PtbRetryAfter

from bot.telegram.ratelimit import Priority, retry_after_seconds
from bot.telegram.render import RenderedMessage

log = logging.getLogger(__name__)

# BadRequest descriptions that mean the chat can never receive messages from the bot again.
_GONE_MARKERS = (
    "chat not found",
    "user is deactivated",
    "bot was kicked",
    "bot was blocked",
    "not a member",
    "have no rights to send",
    "not enough rights to send",
    "chat_write_forbidden",
    "group chat was deactivated",
    "peer_id_invalid",
)


class SendError(Exception):
    """A push could not be sent."""


class RetryAfter(SendError):
    """Telegram asked to wait `seconds` before sending again."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds:g} s")
        self.seconds = seconds


class ChatGone(SendError):
    """The chat can no longer be written to (blocked, kicked, deleted); `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChatMoved(SendError):
    """A group became a supergroup with a new id; its follows and pushes move there."""

    def __init__(self, new_chat_id: int) -> None:
        super().__init__(f"migrated to supergroup {new_chat_id}")
        self.new_chat_id = new_chat_id


class TransientSendError(SendError):
    """Any other failure (network, server error, unexpected answer); retried with backoff."""


class Transport(Protocol):
    """Sends one rendered message to a chat and returns its message id."""

    async def send(self, chat_id: int, message: RenderedMessage) -> int:
        """Raises RetryAfter, ChatGone, ChatMoved or TransientSendError."""
        ...


def reply_markup(message: RenderedMessage) -> InlineKeyboardMarkup | None:
    """The PTB keyboard of a rendered message's buttons (None without buttons)."""
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.text, callback_data=b.callback_data) for b in row] for row in message.buttons]
    )


def classify(error: TelegramError, secret: str = "") -> SendError:
    """Map a PTB error to the push sender's typed errors (with `secret` removed from texts)."""
    if secret and secret in error.message:
        error.message = error.message.replace(secret, "[REDACTED]")
    if isinstance(error, PtbRetryAfter):
        return RetryAfter(retry_after_seconds(error))
    if isinstance(error, Forbidden):
        return ChatGone(f"forbidden: {error.message}")
    if isinstance(error, ChatMigrated):
        return ChatMoved(int(error.new_chat_id))
    if isinstance(error, BadRequest) and any(marker in error.message.lower() for marker in _GONE_MARKERS):
        return ChatGone(f"bad request: {error.message}")
    if isinstance(error, NetworkError | TelegramError):
        return TransientSendError(f"{type(error).__name__}: {error.message}")
    return TransientSendError(str(error))  # pragma: no cover - TelegramError covers all


class TelegramTransport:
    """Sends pushes through a PTB ExtBot; its rate limiter (if any) paces them as pushes."""

    def __init__(self, bot: Any) -> None:
        self._bot = bot
        self._limited = getattr(bot, "rate_limiter", None) is not None

    async def send(self, chat_id: int, message: RenderedMessage) -> int:
        """sendMessage as HTML without link preview; typed errors on failure."""
        kwargs: dict[str, Any] = {}
        if self._limited:
            kwargs["rate_limit_args"] = int(Priority.PUSH)
        try:
            sent = await self._bot.send_message(
                chat_id=chat_id,
                text=message.html,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=reply_markup(message),
                **kwargs,
            )
        except InvalidToken:
            raise  # not a delivery problem: the whole bot is misconfigured
        except TelegramError as error:
            # The token must never reach logs or the database through an error text.
            raise classify(error, secret=getattr(self._bot, "token", "")) from error
        return int(sent.message_id)
