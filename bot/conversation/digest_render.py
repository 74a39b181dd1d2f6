"""A digest as messages: a headline per story grouped by follow, each summary in an expandable
blockquote, and buttons that open the full summary (the same `sum:` button /follow offers).

Split into as few messages as needed, each valid Telegram HTML within 4096 characters, and
deterministic for the same stories: a digest resumed after a crash skips the parts already sent.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from bot.conversation.messages import MAX_MESSAGE_CHARS, Button, CallbackKind, Reply, telegram_length, trim_text, truncate
from bot.conversation.render import escape_attr
from bot.i18n import Html, I18n

DIGEST_SUMMARY_CHARS = 600  # each story's summary inside the digest (the button opens the whole)
DIGEST_TITLE_CHARS = 300
BUTTON_TITLE_CHARS = 40
MAX_BUTTONS = 90  # Telegram allows 100 per message


@dataclass(frozen=True)
class DigestItem:
    """One story as the digest shows it."""

    article_id: int
    follow: str
    title: str
    url: str | None
    summary: str


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _block(item: DigestItem) -> str:
    title = _esc(truncate(item.title, DIGEST_TITLE_CHARS))
    head = f'<b><a href="{escape_attr(item.url)}">{title}</a></b>' if item.url else f"<b>{title}</b>"
    summary = _esc(trim_text(item.summary.strip(), DIGEST_SUMMARY_CHARS))
    return f"• {head}\n<blockquote expandable>{summary}</blockquote>" if summary else f"• {head}"


def render_digest(items: Sequence[DigestItem], lang: str, i18n: I18n, *, silent: bool = False) -> list[Reply]:
    """The digest's messages; [] when there is nothing (no message for an empty digest)."""
    if not items:
        return []
    groups: dict[str, list[DigestItem]] = {}
    for item in items:
        groups.setdefault(item.follow, []).append(item)
    header = i18n.t(lang, "digest.header", count=len(items))
    messages: list[Reply] = []
    lines: list[str] = [header]
    buttons: list[tuple[Button, ...]] = []
    size = telegram_length(header)

    def flush() -> None:
        nonlocal lines, buttons, size
        messages.append(Reply(Html("\n".join(lines)), tuple(buttons), silent=silent, bulk=True))
        lines, buttons = [i18n.t(lang, "digest.continued")], []
        size = telegram_length(lines[0])

    for follow, members in groups.items():
        group_head = f"\n<b>{_esc(truncate(follow, DIGEST_TITLE_CHARS))}</b>" if follow else ""
        pending_head = group_head
        for item in members:
            block = _block(item)
            extra = telegram_length(block) + 1 + (telegram_length(pending_head) + 1 if pending_head else 0)
            if (size + extra > MAX_MESSAGE_CHARS or len(buttons) >= MAX_BUTTONS) and len(lines) > 1:
                flush()
                pending_head = group_head
                extra = telegram_length(block) + 1 + (telegram_length(pending_head) + 1 if pending_head else 0)
            if pending_head:
                lines.append(pending_head)
                pending_head = ""
            lines.append(block)
            size += extra
            label = i18n.plain(lang, "btn.summary", id=item.article_id, title=truncate(item.title, BUTTON_TITLE_CHARS))
            buttons.append((Button(label, CallbackKind.SUMMARY.data(item.article_id)),))
    if len(lines) > 1:
        messages.append(Reply(Html("\n".join(lines)), tuple(buttons), silent=silent, bulk=True))
    return messages
