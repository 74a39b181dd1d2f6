"""The one outgoing message model: text in Telegram HTML, rows of buttons, and the limits on both."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.i18n import Html

MAX_MESSAGE_CHARS = 4096  # Telegram's limit, in UTF-16 code units
MAX_NOTICE_CHARS = 200  # a callback answer (toast)
ELLIPSIS = "…"
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s")


class CallbackKind(enum.StrEnum):
    """Prefixes of inline button callback_data; `data()` builds the full string."""

    TRANSLATE = "tr"  # tr:<article_id>:<lang>
    ORIGINAL = "orig"  # orig:<article_id>
    UNFOLLOW = "unf"  # unf:<tag_id>:<article_id> (the article part is absent on older messages)
    SUMMARY = "sum"  # sum:<article_id> (offered after /follow)
    UNFOLLOW_QUERY = "unq"  # unq:<follow_id>[:<article_id>] (a keyword follow: /following, pushes)
    FOLLOW_TAG = "fot"  # fot:<tag_id> ("did you mean" after /follow of a typo)
    FOLLOW_WORD = "fow"  # fow:<word> (follow the word as typed, as a keyword)
    MUTE = "mute"  # mute:<story_id>:<article_id> (pushes: no more of this story)
    SNOOZE = "snz"  # snz:<t<tag_id>|q<follow_id>>:<article_id> (pushes: pause that follow for a day)
    UNSNOOZE = "wake"  # wake:<t<tag_id>|q<follow_id>> (/settings, /following: end a snooze)
    UNMUTE = "unmute"  # unmute:<story_id> (/settings: undo a story mute)

    def data(self, *parts: object) -> str:
        """'tr', 12, 'en' -> 'tr:12:en' (Telegram allows 64 bytes; ids and codes stay far below)."""
        return ":".join((self.value, *(str(part) for part in parts)))

    @property
    def changes_chat(self) -> bool:
        """Whether pressing the button changes the chat's settings (so needs the presser's rights)."""
        return self in (CallbackKind.UNFOLLOW, CallbackKind.UNFOLLOW_QUERY, CallbackKind.FOLLOW_TAG, CallbackKind.FOLLOW_WORD,
                        CallbackKind.MUTE, CallbackKind.SNOOZE, CallbackKind.UNSNOOZE, CallbackKind.UNMUTE)


# Where a button's data names the article its message is about: kind -> index of the id part.
ARTICLE_PART = {CallbackKind.TRANSLATE: 0, CallbackKind.ORIGINAL: 0, CallbackKind.SUMMARY: 0, CallbackKind.UNFOLLOW: 1,
                CallbackKind.UNFOLLOW_QUERY: 1, CallbackKind.MUTE: 1, CallbackKind.SNOOZE: 1}


def parse_callback(data: str) -> tuple[CallbackKind, list[str]] | None:
    """'tr:12:en' -> (TRANSLATE, ['12', 'en']); None for data that is not ours."""
    head, *rest = data.split(":")
    try:
        return CallbackKind(head), rest
    except ValueError:
        return None


@dataclass(frozen=True)
class Button:
    """An inline button: exactly one of callback_data and url."""

    text: str
    callback_data: str | None = None
    url: str | None = None


Buttons = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True)
class Reply:
    """One message to send (or the new content of an edited one), Telegram HTML, with buttons."""

    text: Html
    buttons: Buttons = ()
    silent: bool = False  # sent without a notification sound (the chat's /silent on)
    thread_id: int | None = None  # the forum topic it goes to (message_thread_id); None: the chat / General
    bulk: bool = False  # a digest part: paced after instant pushes by the shared send limiter

    def callback_data(self) -> list[str]:
        return [button.callback_data for row in self.buttons for button in row if button.callback_data]


@dataclass
class CallbackResult:
    """What pressing a button does: edit the message, show a short notice, send messages."""

    edit: Reply | None = None
    notice: str | None = None  # plain text, shown as a toast by Telegram
    replies: list[Reply] = field(default_factory=list)


def telegram_length(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


def fit_lines(lines: Sequence[str], limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """The leading whole lines that fit one message (never cutting a tag or an entity)."""
    kept: list[str] = []
    size = 0
    for line in lines:
        size += telegram_length(line) + (1 if kept else 0)
        if size > limit:
            break
        kept.append(line)
    return kept


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis (for names and titles inside a line)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def trim_text(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 units at a sentence, else a word boundary, with '…'."""
    if telegram_length(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ""
    room = limit - len(ELLIPSIS)
    # Work on a prefix that fits in UTF-16 units (astral characters count twice).
    prefix = text[:room]
    while telegram_length(prefix) > room:
        prefix = prefix[:-1]
    sentences = [match.end() for match in _SENTENCE_END.finditer(prefix + " ")]
    if sentences and sentences[-1] >= len(prefix) // 3:
        return prefix[: sentences[-1]].rstrip()
    cut = prefix.rfind(" ")
    if cut >= len(prefix) // 3:
        return prefix[:cut].rstrip(" ,;:-–—") + ELLIPSIS
    return prefix.rstrip() + ELLIPSIS
