"""Turning files, bytes and URLs into ArticleInput: decoding, format detection, parsing."""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from pathlib import Path

from bot.config import Settings
from bot.ingest.fetch import HTML_TYPES, Fetcher, FetchError
from bot.ingest.html import looks_like_html, parse_html
from bot.ingest.rawtext import parse_raw_text
from bot.ingest.service import ArticleInput, IngestError
from bot.ingest.urls import InvalidUrl, canonical_url

# File signatures of formats that are certainly not articles.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "PDF"), (b"\x89PNG", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"GIF8", "GIF image"),
    (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip archive"), (b"\x7fELF", "executable"),
    (b"RIFF", "media file"), (b"ID3", "MP3 audio"), (b"\x00\x00\x00", "binary file"), (b"BZh", "bzip2 archive"),
    (b"\xd0\xcf\x11\xe0", "Office document"), (b"SQLite format", "SQLite database"),
)  # fmt: skip
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.IGNORECASE)
SNIFF_BYTES = 8192


def binary_kind(data: bytes) -> str | None:
    """A name for the binary format of `data`, or None when it looks like text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    for magic, name in MAGIC:
        if data.startswith(magic):
            return name
    head = data[:SNIFF_BYTES]
    if b"\x00" in head:
        return "binary file"
    controls = sum(1 for byte in head if byte < 9 or 13 < byte < 32)
    return "binary file" if head and controls / len(head) > 0.05 else None


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Text of `data`: BOM, declared charset, <meta charset>, UTF-8, then charset detection."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    candidates = [declared] if declared else []
    if match := _META_CHARSET.search(data[:SNIFF_BYTES]):
        candidates.append(match.group(1).decode("ascii", "ignore"))
    candidates.append("utf-8")
    for encoding in candidates:
        try:
            return data.decode(encoding)  # type: ignore[arg-type]
        except (LookupError, UnicodeDecodeError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000]).best()
    if best is not None and best.encoding:
        try:
            return data.decode(best.encoding, errors="replace")
        except LookupError:
            pass
    return data.decode("cp1252", errors="replace")


def article_from_document(
    text: str, *, url: str | None = None, tags: Sequence[str] = (), source_id: int | None = None,
    guid: str | None = None, is_html: bool | None = None,
) -> ArticleInput:  # fmt: skip
    """Parse a page (HTML or raw text) into an ArticleInput; extra tags are added to its own."""
    if is_html if is_html is not None else looks_like_html(text):
        page = parse_html(text, url)
        canonical = page.canonical_url
        if canonical:
            try:
                canonical_url(canonical)
            except InvalidUrl:
                canonical = None  # a broken <link rel=canonical> must not sink the page
        return ArticleInput(
            body=page.body, title=page.title, url=canonical or url, guid=guid,
            tags=[*page.tags, *tags], published_at=page.published_at, source_id=source_id,
        )  # fmt: skip
    parsed = parse_raw_text(text)
    return ArticleInput(
        body=parsed.body, title=parsed.title, url=url, guid=guid, tags=[*parsed.tags, *tags],
        published_at=parsed.published_at, source_id=source_id,
    )  # fmt: skip


def article_from_bytes(
    data: bytes, *, name: str, declared_charset: str | None = None, url: str | None = None,
    tags: Sequence[str] = (), content_type: str = "",
) -> ArticleInput:  # fmt: skip
    """Decode and parse raw bytes; refuses binary content with a clear message."""
    if not data.strip():
        raise IngestError(f"{name} is empty")
    kind = binary_kind(data)
    if kind is not None:
        raise IngestError(f"{name} looks like a {kind}, not an article in text or HTML")
    text = decode_bytes(data, declared_charset)
    is_html = True if content_type in ("text/html", "application/xhtml+xml") else None
    return article_from_document(text, url=url, tags=tags, is_html=is_html)


def read_file(path: Path, settings: Settings, tags: Sequence[str] = ()) -> ArticleInput:
    """An article from a file; files over FETCH_MAX_BYTES are refused without being read whole."""
    limit = settings.fetch_max_bytes
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise IngestError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > limit:
        raise IngestError(f"{path} is larger than the {limit} byte limit (FETCH_MAX_BYTES)")
    return article_from_bytes(data, name=str(path), tags=tags)


def read_stdin_bytes(data: bytes, settings: Settings, tags: Sequence[str] = ()) -> ArticleInput:
    """An article from standard input's bytes."""
    if len(data) > settings.fetch_max_bytes:
        raise IngestError(f"standard input is larger than the {settings.fetch_max_bytes} byte limit (FETCH_MAX_BYTES)")
    return article_from_bytes(data, name="standard input", tags=tags)


def fetch_article(fetcher: Fetcher, url: str, tags: Sequence[str] = ()) -> ArticleInput:
    """Fetch a page and parse it; fetch problems become IngestError with the reason."""
    try:
        page = fetcher.fetch(url, accept=HTML_TYPES)
    except FetchError as error:
        raise IngestError(str(error)) from error  # the cause tells a download problem from a bad page
    article = article_from_bytes(
        page.content, name=page.url, declared_charset=page.charset, url=page.url, tags=tags,
        content_type=page.content_type,
    )  # fmt: skip
    if article.url is None:
        article.url = page.url
    return article
