"""An article's summary as one message with its inline buttons: pushes and /summary alike.

Everything from articles, tags and sources is escaped; the only tags produced are <a href>, <b>
and <i>. The message stays within Telegram's 4096 characters by trimming the summary (at a
sentence, else a word boundary, before escaping, so no entity or tag is ever cut).
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Sequence
from typing import Protocol

from bot.conversation.messages import MAX_MESSAGE_CHARS, Button, Buttons, CallbackKind, Reply, telegram_length, trim_text
from bot.db.models import SummaryMethod
from bot.i18n import Html, I18n
from bot.services.contracts import ArticleSummary

MAX_UNFOLLOW_BUTTONS = 3
MATCHED_CHARS = 200  # a matched follow's text in a push
MATCHED_BUTTON_CHARS = 40
_HASHTAG_UNSAFE = re.compile(r"[^\w]+", re.UNICODE)


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


def escape_attr(text: str) -> str:
    """Escape a value for an HTML attribute (href)."""
    return html.escape(text, quote=True)


def hashtag(name: str) -> str:
    """'Amerika Serikat' -> '#Amerika_Serikat' (a hashtag cannot hold spaces or punctuation)."""
    return "#" + (_HASHTAG_UNSAFE.sub("_", name).strip("_") or "tag")


def lang_display_name(i18n: I18n, chat_lang: str, code: str) -> str:
    """A language's name in the chat's language ("Indonesian"/"Inggris"), else its code."""
    try:
        return i18n.plain(chat_lang, f"push.lang.{code}")
    except KeyError:
        return code.upper()


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


def summary_note(summary: ArticleSummary, chat_lang: str, requested_lang: str, i18n: I18n) -> str:
    """How the text was made, honestly: a model's summary, key sentences, a machine translation,
    or the original because no translation into the requested language is available."""
    made = "summary.machine_made" if summary.method is SummaryMethod.SEQ2SEQ else "summary.key_sentences"
    parts = [i18n.plain(chat_lang, made)]
    if summary.translated_from:
        parts.append(i18n.plain(chat_lang, "summary.machine_translated",
                                src=lang_display_name(i18n, chat_lang, summary.translated_from)))
    elif summary.lang != requested_lang:
        parts.append(i18n.plain(chat_lang, "summary.no_translation",
                                lang=lang_display_name(i18n, chat_lang, requested_lang),
                                src=lang_display_name(i18n, chat_lang, summary.lang)))
    return " ".join(parts)


def render_push(
    article: ArticleLike,
    tags: Sequence[TagLike],
    source_name: str | None,
    summary: ArticleSummary,
    chat_lang: str,
    i18n: I18n,
    *,
    followed_tag_ids: Collection[int] | None = None,
    requested_lang: str | None = None,
    translation: bool = True,
    matched_follow: tuple[int, str] | None = None,
    also_reported_by: Sequence[str] = (),
    story_id: int | None = None,
) -> Reply:
    """The message of `article` for a chat in `chat_lang`, showing `summary`.

    `followed_tag_ids`: tags of the article the chat follows (unfollow buttons); None: all.
    `requested_lang`: the language the reader asked for (default: the chat's); `translation`:
    whether a translation model is configured (else no translate buttons are offered).
    `also_reported_by`: the other outlets of the article's story, named in the footer.
    `story_id`: set for a push, which then also offers "Mute this story" and "Snooze".
    """
    requested = requested_lang or chat_lang
    title = summary.title.strip() if summary.title and summary.title.strip() else article.title
    note = f"<i>{_esc(summary_note(summary, chat_lang, requested, i18n))}</i>"
    tag_line = _esc(" ".join(hashtag(tag.name) for tag in tags))
    raw_source = i18n.plain(chat_lang, "push.source", source=source_name) if source_name else ""
    if also_reported_by:
        also = i18n.plain(chat_lang, "push.also_reported", sources=", ".join(also_reported_by))
        raw_source = f"{raw_source}\n{also}" if raw_source else also
    source_line = _esc(raw_source)
    if matched_follow is not None:  # a keyword follow matched: say which (tags show in the tag line)
        source_line = "\n".join(part for part in (source_line, _esc(i18n.plain(
            chat_lang, "push.matched", query=_shorten(matched_follow[1], MATCHED_CHARS)))) if part)

    def head(title_html: str) -> str:
        if article.url:
            return f'<b><a href="{escape_attr(article.url)}">{title_html}</a></b>'
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
    buttons = push_buttons(article, tags, summary, chat_lang, i18n, followed_tag_ids,
                           requested_lang=requested, translation=translation)
    if matched_follow is not None:
        label = i18n.plain(chat_lang, "btn.unfollow", tag=_shorten(matched_follow[1], MATCHED_BUTTON_CHARS))
        buttons = (*buttons, (Button(label, CallbackKind.UNFOLLOW_QUERY.data(matched_follow[0], article.id)),))
    if story_id is not None:
        buttons = (*buttons, feedback_buttons(article, tags, story_id, chat_lang, i18n, followed_tag_ids, matched_follow))
    return Reply(Html(text), buttons)


def follow_ref(tag_id: int | None = None, follow_id: int | None = None) -> str:
    """How a button names a follow: 't12' (the plain tag follow of tag 12) or 'q5' (query follow 5)."""
    return f"t{tag_id}" if tag_id is not None else f"q{follow_id}"


def feedback_buttons(
    article: ArticleLike,
    tags: Sequence[TagLike],
    story_id: int,
    chat_lang: str,
    i18n: I18n,
    followed_tag_ids: Collection[int] | None,
    matched_follow: tuple[int, str] | None,
) -> tuple[Button, ...]:
    """A push's feedback row: mute this story, and snooze the follow that brought it (for a day)."""
    row = [Button(i18n.plain(chat_lang, "btn.mute"), CallbackKind.MUTE.data(story_id, article.id))]
    followed = [tag for tag in tags if followed_tag_ids is None or tag.id in followed_tag_ids]
    if followed:
        label = i18n.plain(chat_lang, "btn.snooze", follow=hashtag(followed[0].name))
        row.append(Button(label, CallbackKind.SNOOZE.data(follow_ref(tag_id=followed[0].id), article.id)))
    elif matched_follow is not None:
        label = i18n.plain(chat_lang, "btn.snooze", follow=_shorten(matched_follow[1], MATCHED_BUTTON_CHARS))
        row.append(Button(label, CallbackKind.SNOOZE.data(follow_ref(follow_id=matched_follow[0]), article.id)))
    return tuple(row)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def push_buttons(
    article: ArticleLike,
    tags: Sequence[TagLike],
    summary: ArticleSummary,
    chat_lang: str,
    i18n: I18n,
    followed_tag_ids: Collection[int] | None = None,
    *,
    requested_lang: str | None = None,
    translation: bool = True,
) -> Buttons:
    """Translate / Original, and Unfollow #tag buttons.

    No translate button when translation is off or just failed for this article: pressing it
    would only show the same text again.
    """
    rows: list[tuple[Button, ...]] = []
    if summary.translated_from:
        rows.append((Button(i18n.plain(chat_lang, "btn.original"), CallbackKind.ORIGINAL.data(article.id)),))
    elif translation and summary.lang == (requested_lang or chat_lang):
        targets = [lang for lang in i18n.langs if lang != summary.lang]
        if targets:
            rows.append(tuple(
                Button(i18n.plain(chat_lang, "btn.translate", lang_name=i18n.plain(lang, "lang.name")),
                       CallbackKind.TRANSLATE.data(article.id, lang))
                for lang in targets
            ))
    unfollow = [tag for tag in tags if followed_tag_ids is None or tag.id in followed_tag_ids]
    if unfollow:
        rows.append(tuple(
            Button(i18n.plain(chat_lang, "btn.unfollow", tag=hashtag(tag.name)), CallbackKind.UNFOLLOW.data(tag.id, article.id))
            for tag in unfollow[:MAX_UNFOLLOW_BUTTONS]
        ))
    return tuple(rows)
