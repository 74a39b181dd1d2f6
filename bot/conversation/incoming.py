"""What arrives from a chat: a message (usually a command), parsed once, and the posts it may hold."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from bot.conversation.messages import ARTICLE_PART, parse_callback
from bot.db.models import ChatKind
from bot.ingest.telegram_post import PostEntity

MAX_ID = 2**63 - 1  # ids are BIGINT: larger numbers would make PostgreSQL fail, not answer
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedCommand:
    """A command's name and the rest of the message."""

    command: str  # lower-case name without '/' and '@bot'
    args: str


def parse_command(text: str) -> ParsedCommand | None:
    """'/follow@newsbot Rusia' -> ('follow', 'Rusia'); None when not a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    head, _, args = stripped.partition(" ")
    if "\n" in head:
        head, _, rest = head.partition("\n")
        args = f"{rest} {args}".strip()
    name = head[1:].split("@", 1)[0].lower()
    return ParsedCommand(command=name, args=args.strip())


def is_url(text: str) -> bool:
    """Whether the whole text is one http(s) link."""
    return bool(_URL.match(text.strip()))


def parse_id(text: str) -> int:
    """A database id from user input ('12' or '#12'); ValueError unless it is 1..2**63-1 in ASCII digits."""
    digits = text.strip().removeprefix("#")
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not an id: {text[:30]}")
    value = int(digits)
    if not 1 <= value <= MAX_ID:
        raise ValueError(f"not an id: {text[:30]}")
    return value


def article_of_buttons(callback_data: Sequence[str]) -> int | None:
    """The article a bot message is about, from its buttons (every push has at least one)."""
    for data in callback_data:
        parsed = parse_callback(data)
        if parsed is None:
            continue
        kind, parts = parsed
        index = ARTICLE_PART.get(kind)
        if index is None or len(parts) <= index:
            continue
        try:
            return parse_id(parts[index])
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class Post:
    """A message holding an article: a channel post, an admin's forward, a replied-to message."""

    text: str
    entities: tuple[PostEntity, ...] = ()  # UTF-16 offsets, as Telegram gives them
    url: str | None = None  # link to the post itself (t.me/channel/123) when known
    article_id: int | None = None  # set when the message is one of the bot's own article messages

    def first_url(self) -> str | None:
        """The first link of the message: a text_link's target or a URL in the text."""
        for entity in self.entities:
            if entity.type == "text_link" and entity.url:
                return entity.url
        match = _URL_IN_TEXT.search(self.text)
        return match.group(0).rstrip(".,;:!?)") if match else None


@dataclass(frozen=True)
class Incoming:
    """A text message from a chat, as an adapter (Telegram, the shell) received it."""

    chat_id: int
    chat_kind: ChatKind
    text: str
    user_id: int | None = None
    user_lang: str | None = None
    chat_title: str | None = None
    # The sender may change this chat (private chat, the chat's own channel, a group admin); the
    # adapter asks Telegram only when `rights.must_check_admin` says so.
    chat_admin: bool = True
    bot_admin: bool = False  # one of ADMIN_IDS
    replied: Post | None = None  # the message this one replies to
    posted_by_chat: bool = False  # sent as the chat itself: a channel post or an anonymous group admin
    thread_id: int | None = None  # written inside this forum topic (answers and follows go there)

    @cached_property
    def clean_text(self) -> str:
        """The text without control characters (NUL above all: PostgreSQL refuses it)."""
        return _CONTROL.sub("", self.text)

    @cached_property
    def parsed(self) -> ParsedCommand | None:
        """The command this message holds, parsed once."""
        return parse_command(self.clean_text)
