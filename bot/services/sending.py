"""What the push loop needs from whatever carries messages to chats (Telegram, a terminal).

The loop only knows `Transport.send` and these typed outcomes; adapters map their own errors
to them (bot/telegram/transport.py for Telegram, bot/shell.py for the terminal).
"""

from __future__ import annotations

from typing import Protocol

from bot.conversation.messages import Reply


class SendError(Exception):
    """A push could not be sent."""


class RetryAfter(SendError):
    """The chat (or the whole bot) must wait `seconds` before sending again."""

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


class TopicClosed(SendError):
    """The forum topic is closed or deleted; the chat itself can still be written to (General)."""


class TransientSendError(SendError):
    """A failure specific to this message or chat (an unexpected 400 …); retried with backoff."""


class ServiceUnavailable(TransientSendError):
    """The service itself failed (5xx, timeout, connection error): it would fail for every chat.

    The push loop treats it as an outage of the whole transport, not as a failed attempt of this
    delivery: it pauses every send and probes the service until it answers (docs/pushes.md).
    """


class Transport(Protocol):
    """Sends one message to a chat and returns its message id; edits a message it sent."""

    async def send(self, chat_id: int, message: Reply) -> int:
        """Raises RetryAfter, ChatGone, ChatMoved, ServiceUnavailable or TransientSendError."""
        ...

    async def probe(self) -> bool:
        """Whether the service answers now (Telegram: getMe); never raises."""
        ...

    async def edit(self, chat_id: int, message_id: int, message: Reply) -> None:
        """Replace a sent message's text and buttons (an unchanged text is no error).

        Raises RetryAfter, ChatGone, ChatMoved or TransientSendError.
        """
        ...


class SendPacer(Protocol):
    """The shared send-rate limiter, as the push loop consults it before claiming."""

    def globally_paused_for(self) -> float:
        """Seconds until any send may go out (Telegram asked the whole bot to wait)."""
        ...

    def cooling_chats(self) -> set[int]:
        """Chats that must not be sent to right now."""
        ...

    def note_retry_after(self, chat_id: int | None, seconds: float) -> None:
        """Telegram asked to wait: pause that chat (or everything)."""
        ...
