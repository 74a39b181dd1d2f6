"""Turning files, bytes and URLs into ArticleInput: decoding, format detection, parsing."""

from __future__ import annotations

import codecs
import errno
import os
import re
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from bot.config import Settings
from bot.ingest.fetch import is_text_codec
from bot.ingest.html import looks_like_html, parse_html
from bot.ingest.rawtext import parse_raw_text
from bot.ingest.service import ArticleInput, IngestError
from bot.ingest.urls import InvalidUrl, canonical_url

# File signatures of formats that are certainly not articles, named with their article ("an").
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"), (b"\x7fELF", "an executable"),
    (b"MZ\x90\x00", "an executable"), (b"RIFF", "a media file"), (b"ID3", "an MP3 audio file"), (b"BZh", "a bzip2 archive"),
    (b"\xd0\xcf\x11\xe0", "an Office document"), (b"SQLite format", "an SQLite database"),
)  # fmt: skip
BOMS: tuple[tuple[bytes, str], ...] = (  # UTF-32 first: its little-endian BOM starts like UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)  # fmt: skip
# <meta charset=...>, <meta http-equiv content="...; charset=...">, <?xml ... encoding="..."?>
_DECLARED = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)|<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_:.-]+)""",
    re.IGNORECASE,
)
SNIFF_BYTES = 8192  # where a page declares its charset (browsers look at the first 1024 bytes)
# Control bytes that text hardly has (all C0 controls but tab, line feed, VT, form feed, CR).
_CONTROL_BYTES = bytes(b for b in range(32) if not 9 <= b <= 13)
MAX_CONTROL_RATIO = 0.05
# A declared charset is used when at most this share of the characters fail to decode.
DECLARED_TOLERANCE = 0.005
# UTF-8 with some well-formed multi-byte characters and at most this many bad sequences (or one per
# 1000 bytes) stays UTF-8: legacy code pages make hundreds of bad sequences, not a handful.
FEW_BAD_BYTES = 4
_WIDE = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})


def _codec(name: str | None) -> str | None:
    """Python's codec name for a charset label, or None for an unknown or useless one."""
    if not name:
        return None
    try:
        codec = codecs.lookup(name.strip()).name
    except (LookupError, ValueError):
        return None
    if not is_text_codec(codec):
        return None
    # As browsers do: latin-1 and ASCII labels mean windows-1252 (its superset seen in practice).
    return "cp1252" if codec in ("latin-1", "iso8859-1", "ascii") else codec


def binary_kind(data: bytes, declared: str | None = None) -> str | None:
    """What binary format `data` is ("a PDF", "an executable", "a binary file"), or None for text.

    The whole input is looked at: a NUL byte anywhere (outside UTF-16/32) makes it binary, since
    text never holds one and dropping it silently would hide a corrupt or mixed file.
    """
    if data.startswith(tuple(bom for bom, _ in BOMS)) or _codec(declared) in _WIDE:
        return None
    for magic, name in MAGIC:
        if data.startswith(magic):
            return name
    if b"\x00" in data:
        return "a binary file"
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    return "a binary file" if data and controls / len(data) > MAX_CONTROL_RATIO else None


class _Errors(threading.local):
    count = 0


_ERRORS = _Errors()


def _count_and_replace(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    _ERRORS.count += 1
    return "\ufffd", error.end


codecs.register_error("newsbot-count", _count_and_replace)


def _decode(data: bytes, encoding: str) -> tuple[str, int]:
    """`data` decoded with U+FFFD for each undecodable sequence, and how many there were."""
    _ERRORS.count = 0
    text = data.decode(encoding, errors="newsbot-count")
    return text, _ERRORS.count


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Text of `data`, never wholly in a wrong code page because of a few bad bytes.

    1. A BOM decides. 2. Valid UTF-8 with non-ASCII text is UTF-8, whatever a page declares
    (servers label UTF-8 as ISO-8859-1 by default). 3. A declared charset (the HTTP header, then
    <meta charset> or the XML declaration) is used when it decodes cleanly or nearly so.
    4. UTF-8 with a few bad bytes stays UTF-8 (the bad bytes become U+FFFD) when it has valid
    multi-byte characters and either twice as many of them as bad sequences or only a handful of
    bad ones: legacy code pages hardly ever form valid UTF-8 by chance, and when they do (Shift_JIS,
    GBK) they also make hundreds of bad sequences. 5. Otherwise charset-normalizer guesses from the
    whole document.
    """
    encoding: str | None  # a BOM's codec, then each candidate's
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    utf8, bad = _decode(data, "utf-8")
    non_ascii = len(utf8) - len(utf8.encode("ascii", "ignore")) - bad  # well-formed multi-byte characters
    if bad == 0 and non_ascii:
        return utf8
    candidates = [_codec(declared)]
    if match := _DECLARED.search(data[:SNIFF_BYTES]):
        label = (match.group(1) or match.group(2)).decode("ascii", "ignore")
        # A <meta> saying UTF-16 was read as ASCII, so it cannot be true (the HTML standard's rule).
        candidates.append("utf-8" if _codec(label) in _WIDE else _codec(label))
    for encoding in candidates:
        if encoding is None or (encoding in _WIDE and b"\x00" not in data):
            continue  # UTF-16/32 text has NUL bytes; without them the label is wrong
        try:
            text, errors = _decode(data, encoding)
        except UnicodeError:  # codecs such as idna take no error handler
            continue
        if errors <= DECLARED_TOLERANCE * len(text):
            return text
    if bad == 0 or non_ascii >= 2 * bad or (non_ascii and bad <= max(FEW_BAD_BYTES, len(data) // 1000)):
        return utf8
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    encoding = _codec(best.encoding) if best is not None else None
    return data.decode(encoding or "cp1252", errors="replace")


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
    kind = binary_kind(data, declared_charset)
    if kind is not None:
        where = data.find(b"\x00") if kind == "a binary file" else -1
        detail = f" (NUL byte at offset {where})" if where >= 0 else ""
        raise IngestError(f"{name} looks like {kind}{detail}, not an article in text or HTML")
    text = decode_bytes(data, declared_charset)
    is_html = True if content_type in ("text/html", "application/xhtml+xml") else None
    return article_from_document(text, url=url, tags=tags, is_html=is_html)


_FILE_TYPES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
)  # fmt: skip
_OS_ERRORS = {
    errno.ENOENT: "no such file, folder or URL", errno.ELOOP: "symbolic link loop", errno.EACCES: "permission denied",
    errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is not a folder", errno.EISDIR: "is a folder",
    errno.ENAMETOOLONG: "file name too long",
}  # fmt: skip


def _os_error(path: Path, error: OSError) -> IngestError:
    """One line for an OSError on `path`, in words a user knows ("symbolic link loop", not ELOOP)."""
    reason = _OS_ERRORS.get(error.errno or 0) or f"cannot read: {error.strerror or error}"
    if error.errno == errno.ENOENT and path.is_symlink():
        reason = "broken symbolic link (its target does not exist)"
    return IngestError(f"{path}: {reason}")


def read_file(path: Path, settings: Settings, tags: Sequence[str] = ()) -> ArticleInput:
    """An article from a regular file; files over FETCH_MAX_BYTES are refused without being read whole.

    Named pipes, devices and sockets are refused: reading one could wait forever (a FIFO with no
    writer) or never end (/dev/zero). The file is opened without blocking and checked on the open
    descriptor, so it cannot be swapped for a pipe between the check and the read.
    """
    limit = settings.fetch_max_bytes
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise _os_error(path, error) from None
    try:
        mode = os.fstat(fd).st_mode
        for is_kind, what in _FILE_TYPES:
            if is_kind(mode):
                hint = " (use - to read standard input)" if stat.S_ISFIFO(mode) else ""
                raise IngestError(f"{path} is {what}, not a regular file{hint}")
        if not stat.S_ISREG(mode):
            raise IngestError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise _os_error(path, error) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise IngestError(f"{path} is larger than the {limit} byte limit (FETCH_MAX_BYTES)")
    return article_from_bytes(data, name=str(path), tags=tags)


def read_stdin_bytes(data: bytes, settings: Settings, tags: Sequence[str] = ()) -> ArticleInput:
    """An article from standard input's bytes."""
    if len(data) > settings.fetch_max_bytes:
        raise IngestError(f"standard input is larger than the {settings.fetch_max_bytes} byte limit (FETCH_MAX_BYTES)")
    return article_from_bytes(data, name="standard input", tags=tags)
