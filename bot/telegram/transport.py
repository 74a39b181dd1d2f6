"""Between the conversation's message model and PTB: keyboards, sending, and Telegram's errors.

`TelegramTransport` is the push loop's Transport (bot/services/sending.py) for Telegram: it
sends through the PTB bot, whose `Defaults` set HTML and no link preview once for every call,
and maps PTB's errors to the loop's typed outcomes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, TelegramError, TimedOut
from telegram.error import RetryAfter as PtbRetryAfter
from telegram.ext import Defaults

from bot.conversation.messages import Reply
from bot.services.sending import ChatGone, ChatMoved, RetryAfter, SendError, ServiceUnavailable, TopicClosed, TransientSendError
from bot.telegram.ratelimit import Priority, retry_after_seconds

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


# BadRequest descriptions that mean the forum topic is closed or gone (the chat itself is fine).
_TOPIC_MARKERS = ("topic_closed", "topic_deleted", "message thread not found", "topic_id_invalid")


def send_defaults() -> Defaults:
    """Every message is Telegram HTML without link previews: set once for the whole bot."""
    return Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True))


def reply_markup(message: Reply) -> InlineKeyboardMarkup | None:
    """The PTB keyboard of a message's buttons (None without buttons)."""
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.text, callback_data=b.callback_data, url=b.url) for b in row] for row in message.buttons]
    )


async def send_message(bot: Any, chat_id: int, message: Reply, priority: Priority) -> int:
    """sendMessage with the message's buttons; the shared limiter paces it by `priority`."""
    kwargs: dict[str, Any] = {}
    if getattr(bot, "rate_limiter", None) is not None:
        kwargs["rate_limit_args"] = int(priority)
    if message.silent:
        kwargs["disable_notification"] = True
    if message.thread_id is not None:
        kwargs["message_thread_id"] = message.thread_id
    sent = await bot.send_message(chat_id=chat_id, text=message.text, reply_markup=reply_markup(message), **kwargs)
    return int(sent.message_id)


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
    if isinstance(error, BadRequest) and any(marker in error.message.lower() for marker in _TOPIC_MARKERS):
        return TopicClosed(f"bad request: {error.message}")
    if isinstance(error, BadRequest) and any(marker in error.message.lower() for marker in _GONE_MARKERS):
        return ChatGone(f"bad request: {error.message}")
    if isinstance(error, TimedOut) or (isinstance(error, NetworkError) and not isinstance(error, BadRequest)):
        # 5xx answers, timeouts and connection errors: Telegram is failing, not this chat.
        return ServiceUnavailable(f"{type(error).__name__}: {error.message}")
    if isinstance(error, TelegramError):
        return TransientSendError(f"{type(error).__name__}: {error.message}")
    return TransientSendError(str(error))  # pragma: no cover - TelegramError covers all


PROBE_TIMEOUT = 10.0  # seconds for one getMe while Telegram is failing
SEND_TIMEOUT = 30.0  # read/write timeout of Bot API requests (bot/telegram/app.py sets it)


async def edit_message(bot: Any, chat_id: int, message_id: int, message: Reply, priority: Priority) -> None:
    """editMessageText with the message's buttons, paced like a send; "not modified" is success."""
    kwargs: dict[str, Any] = {}
    if getattr(bot, "rate_limiter", None) is not None:
        kwargs["rate_limit_args"] = int(priority)
    try:
        await bot.edit_message_text(chat_id=chat_id, message_id=message_id, text=message.text,
                                    reply_markup=reply_markup(message), **kwargs)
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise


class TelegramTransport:
    """Sends pushes through a PTB ExtBot; its rate limiter (if any) paces them as pushes."""

    def __init__(self, bot: Any, *, probe_timeout: float = PROBE_TIMEOUT) -> None:
        self._bot = bot
        self._probe_timeout = probe_timeout

    async def probe(self) -> bool:
        """getMe: whether the Bot API answers now (any answer but a network error or 5xx counts)."""
        try:
            await asyncio.wait_for(
                self._bot.get_me(read_timeout=self._probe_timeout, connect_timeout=self._probe_timeout),
                self._probe_timeout + 1,
            )
        except (TimeoutError, NetworkError):
            return False
        except TelegramError:
            return True  # Telegram answered (e.g. 429): it is up
        except Exception:  # a probe never raises
            return False
        return True

    async def send(self, chat_id: int, message: Reply) -> int:
        """sendMessage; typed errors on failure."""
        try:
            return await send_message(self._bot, chat_id, message, Priority.DIGEST if message.bulk else Priority.PUSH)
        except InvalidToken:
            raise  # not a delivery problem: the whole bot is misconfigured
        except TelegramError as error:
            # The token must never reach logs or the database through an error text.
            raise classify(error, secret=getattr(self._bot, "token", "")) from error

    async def edit(self, chat_id: int, message_id: int, message: Reply) -> None:
        """editMessageText (a story's footer gained an outlet); typed errors on failure."""
        try:
            await edit_message(self._bot, chat_id, message_id, message, Priority.PUSH)
        except InvalidToken:
            raise
        except TelegramError as error:
            raise classify(error, secret=getattr(self._bot, "token", "")) from error
