"""A pushed article as one Telegram HTML message with its inline buttons.

Everything from articles, tags and sources is escaped; the only tags produced are <a href>, <b>
and <i>. The message stays within Telegram's 4096 characters by trimming the summary (at a
sentence, else a word boundary, before escaping, so no entity or tag is ever cut).
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.i18n import I18n
from bot.services.contracts import ArticleSummary

MAX_MESSAGE_CHARS = 4096
MAX_UNFOLLOW_BUTTONS = 3
ELLIPSIS = "…"
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s")
_HASHTAG_UNSAFE = re.compile(r"[^\w]+", re.UNICODE)


class CallbackPrefix:
    """callback_data prefixes of the push buttons (C2's handlers dispatch on these)."""

    TRANSLATE = "tr"  # tr:<article_id>:<lang>
    ORIGINAL = "orig"  # orig:<article_id>
    UNFOLLOW = "unf"  # unf:<tag_id>


@dataclass(frozen=True)
class Button:
    """An inline button: a label and its callback_data."""

    text: str
    callback_data: str


@dataclass(frozen=True)
class RenderedMessage:
    """Telegram HTML text with rows of inline buttons."""

    html: str
    buttons: list[list[Button]] = field(default_factory=list)


class ArticleLike(Protocol):
    """What rendering needs of an article (the ORM Article or a plain dataclass)."""

    @property
    def id(self) -> int: ...

    @property
    def title(self) -> str: ...

    @property
    def url(self) -> str | None: ...

    @property
    def lang(self) -> str | None: ...


class TagLike(Protocol):
    """A tag with an id and a display name (Tag, TagRef)."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def telegram_length(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


def hashtag(name: str) -> str:
    """'Amerika Serikat' -> '#Amerika_Serikat' (a hashtag cannot hold spaces or punctuation)."""
    return "#" + (_HASHTAG_UNSAFE.sub("_", name).strip("_") or "tag")


def lang_display_name(i18n: I18n, chat_lang: str, code: str) -> str:
    """A language's name in the chat's language ("Indonesian"/"Inggris"), else its code."""
    key = f"push.lang.{code}"
    try:
        return i18n.plain(chat_lang, key)
    except KeyError:
        return code.upper()


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


def _fit_escaped(text: str, budget: int) -> str:
    """Escaped `text` trimmed so that its escaped form fits in `budget` units."""
    if budget <= 0:
        return ""
    limit = budget
    while True:
        escaped = _esc(trim_text(text, limit))
        if telegram_length(escaped) <= budget or limit <= 0:
            return escaped if telegram_length(escaped) <= budget else ""
        limit -= max(1, telegram_length(escaped) - budget)


def render_push(
    article: ArticleLike,
    tags: Sequence[TagLike],
    source_name: str | None,
    summary: ArticleSummary,
    chat_lang: str,
    i18n: I18n,
    *,
    followed_tag_ids: Collection[int] | None = None,
) -> RenderedMessage:
    """The push message of `article` for a chat in `chat_lang`, showing `summary`.

    `followed_tag_ids`: tags of the article the chat follows (unfollow buttons); None: all.
    """
    title = summary.title.strip() if summary.title and summary.title.strip() else article.title
    note_key = "summary.machine_translated" if summary.translated_from else "summary.machine_made"
    note_params = (
        {"src": lang_display_name(i18n, chat_lang, summary.translated_from)} if summary.translated_from else {}
    )
    note = f"<i>{_esc(i18n.plain(chat_lang, note_key, **note_params))}</i>"
    tag_line = _esc(" ".join(hashtag(tag.name) for tag in tags))
    raw_source = i18n.plain(chat_lang, "push.source", source=source_name) if source_name else ""
    source_line = _esc(raw_source)

    def head(title_html: str) -> str:
        if article.url:
            return f'<b><a href="{_attr(article.url)}">{title_html}</a></b>'
        return f"<b>{title_html}</b>"

    tail = "\n".join(part for part in (note, tag_line, source_line) if part)
    title_html = _esc(title)
    fixed = telegram_length(head(title_html)) + telegram_length(tail) + 4  # two blank-line joins
    if fixed > MAX_MESSAGE_CHARS - 200:
        # A pathological title or tag list: shorten those first, keep room for the summary.
        title_html = _fit_escaped(title, 300)
        tag_line = _fit_escaped(" ".join(hashtag(tag.name) for tag in tags), 600)
        source_line = _fit_escaped(raw_source, 200)
        tail = "\n".join(part for part in (note, tag_line, source_line) if part)
        fixed = telegram_length(head(title_html)) + telegram_length(tail) + 4
    body_html = _fit_escaped(summary.text.strip(), MAX_MESSAGE_CHARS - fixed)
    text = "\n\n".join(part for part in (head(title_html), body_html, tail) if part)
    return RenderedMessage(html=text, buttons=push_buttons(article, tags, summary, chat_lang, i18n, followed_tag_ids))


def push_buttons(
    article: ArticleLike,
    tags: Sequence[TagLike],
    summary: ArticleSummary,
    chat_lang: str,
    i18n: I18n,
    followed_tag_ids: Collection[int] | None = None,
) -> list[list[Button]]:
    """Translate / Original, and Unfollow #tag buttons, with the fixed callback_data formats."""
    rows: list[list[Button]] = []
    if summary.translated_from:
        rows.append([Button(i18n.plain(chat_lang, "btn.original"), f"{CallbackPrefix.ORIGINAL}:{article.id}")])
    else:
        targets = [lang for lang in i18n.langs if lang != summary.lang]
        if targets:
            rows.append(
                [
                    Button(
                        i18n.plain(chat_lang, "btn.translate", lang_name=i18n.plain(lang, "lang.name")),
                        f"{CallbackPrefix.TRANSLATE}:{article.id}:{lang}",
                    )
                    for lang in targets
                ]
            )
    unfollow = [tag for tag in tags if followed_tag_ids is None or tag.id in followed_tag_ids]
    if unfollow:
        rows.append(
            [
                Button(i18n.plain(chat_lang, "btn.unfollow", tag=hashtag(tag.name)), f"{CallbackPrefix.UNFOLLOW}:{tag.id}")
                for tag in unfollow[:MAX_UNFOLLOW_BUTTONS]
            ]
        )
    return rows
