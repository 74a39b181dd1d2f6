"""Telegram channel posts and forwarded messages to ArticleInput (plain Python, no PTB import).

Telegram gives entity offsets and lengths in UTF-16 code units, so text is sliced in UTF-16.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.ingest.fingerprint import clean_text
from bot.ingest.rawtext import Kind, classify
from bot.ingest.service import ArticleInput

TITLE_MAX_CHARS = 200
_HASHTAG = re.compile(r"(?<![\w#])#([^\W_][\w]{0,63})", re.UNICODE)
_TAG_LINE = re.compile(r"^(?:[\s,;|•·]*#[\w]+)+[\s,;|•·.]*$", re.UNICODE)


@dataclass(frozen=True)
class PostEntity:
    """A Telegram message entity: type ("hashtag", "bold", ...), UTF-16 offset and length."""

    type: str
    offset: int
    length: int
    url: str | None = None


def _utf16_slice(encoded: bytes, offset: int, length: int) -> str:
    return encoded[2 * offset : 2 * (offset + length)].decode("utf-16-le", errors="ignore")


def _utf16_to_index(text: str, offset: int) -> int:
    """The str index of a UTF-16 offset (characters outside the BMP count twice in UTF-16)."""
    units = 0
    for index, char in enumerate(text):
        if units >= offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def parse_telegram_post(text: str, entities: Sequence[PostEntity], url: str | None) -> ArticleInput:
    """Title from a leading bold heading or the first line; hashtags become tags."""
    encoded = text.encode("utf-16-le")
    tags: list[str] = []
    for entity in entities:
        if str(entity.type).lower() in ("hashtag", "messageentitytype.hashtag"):
            tags.append(_utf16_slice(encoded, entity.offset, entity.length).lstrip("#"))
    if not any(str(e.type).lower().endswith("hashtag") for e in entities):
        tags.extend(_HASHTAG.findall(text))

    title: str | None = None
    body = text
    bold = sorted(
        (e for e in entities if str(e.type).lower().endswith("bold")), key=lambda e: e.offset
    )
    leading = text[: len(text) - len(text.lstrip())]
    if bold and _utf16_to_index(text, bold[0].offset) <= len(leading):
        start = _utf16_to_index(text, bold[0].offset)
        end = _utf16_to_index(text, bold[0].offset + bold[0].length)
        heading = text[start:end].strip()
        if heading and len(heading) <= TITLE_MAX_CHARS and "\n\n" not in heading:
            title = " ".join(heading.split())
            body = text[end:]
    if title is None:
        first, _, rest = text.strip().partition("\n")
        if rest.strip() and len(first.strip()) <= TITLE_MAX_CHARS and not _TAG_LINE.match(first):
            title = first.strip()
            body = rest

    lines = clean_text(body).split("\n")
    # A trailing line (or lines) made only of hashtags is a tag list, not article text; the
    # same for channel sign-offs ("Subscribe: @channel", share prompts) at the very end.
    while lines and (not lines[-1].strip() or _TAG_LINE.match(lines[-1]) or _is_trailing_chrome(lines[-1])):
        lines.pop()
    body_text = "\n".join(lines)
    body_text = _HASHTAG.sub(lambda match: match.group(1), body_text)  # "#Rusia menyatakan" reads as prose
    if title:
        title = _HASHTAG.sub(lambda match: match.group(1), title).strip()
        title = re.sub(r"^[^\w\"“'‘(\[]+", "", title).strip()  # leading emoji and bullets
    by_key: dict[str, str] = {}
    for tag in tags:
        if tag:
            by_key.setdefault(tag.casefold(), tag)  # the first spelling of each tag wins
    unique = list(by_key.values())
    return ArticleInput(body=clean_text(body_text), title=title or None, url=url, tags=unique)


def _is_trailing_chrome(line: str) -> bool:
    stripped = line.strip()
    if re.fullmatch(r"[@\s\w.:|•-]*@\w{4,}[\s\w.:|•-]*", stripped) and len(stripped.split()) <= 6:
        return True  # "Subscribe: @channel", "👉 @newsbot"
    return classify(stripped).kind in (Kind.CHROME, Kind.END) if stripped else True
