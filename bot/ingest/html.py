"""HTML pages to a clean article: trafilatura for the main text, page metadata for the rest."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from bot.ingest.dates import find_date
from bot.ingest.fingerprint import clean_text
from bot.ingest.rawtext import parse_raw_text, split_tag_values

log = logging.getLogger(__name__)

# Tag-like metadata; "keywords" is often stuffed with dozens of terms, so it is capped.
MAX_KEYWORD_TAGS = 8
MIN_EXTRACT_CHARS = 20
_XML_INCOMPATIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_BLOCK_TAGS = (
    "p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article",
    "header", "footer", "nav", "aside", "blockquote", "pre", "figcaption", "dd", "dt", "ul", "ol", "table",
)  # fmt: skip
_HTML_START = re.compile(
    r"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html|<head|<body|<meta|<title|<article|<div|<p[\s>])", re.IGNORECASE | re.DOTALL
)


@dataclass
class ParsedHtml:
    """An article found in an HTML page."""

    title: str | None
    body: str
    tags: list[str] = field(default_factory=list)
    canonical_url: str | None = None
    published_at: datetime | None = None
    lang: str | None = None


def looks_like_html(text: str) -> bool:
    """Whether a document is HTML rather than plain text."""
    head = text[:2048]
    return bool(_HTML_START.match(head)) or ("</p>" in text[:20000].lower() and "<" in head)


def _metadata(tree: Any, base_url: str | None) -> dict[str, Any]:
    """Title, canonical URL, published time, language and tags from <head>."""
    meta: dict[str, list[str]] = {}
    for element in tree.iter("meta"):
        key = (element.get("property") or element.get("name") or element.get("itemprop") or "").strip().lower()
        content = (element.get("content") or "").strip()
        if key and content:
            meta.setdefault(key, []).append(content)
    canonical = None
    for link in tree.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            canonical = link.get("href").strip()
            break
    canonical = canonical or _first(meta.get("og:url"))
    if canonical and base_url:
        canonical = urljoin(base_url, canonical)
    tags: list[str] = []
    for key in ("article:tag", "og:article:tag", "news_keywords", "parsely-tags", "sailthru.tags"):
        for value in meta.get(key, []):
            tags.extend(split_tag_values(value))
    if not tags:
        for value in meta.get("keywords", []):
            tags.extend(split_tag_values(value)[:MAX_KEYWORD_TAGS])
    for key in ("article:section", "og:article:section"):
        for value in meta.get(key, []):
            tags.extend(split_tag_values(value)[:1])
    published = None
    for key in ("article:published_time", "og:article:published_time", "datepublished", "pubdate",
                "publishdate", "date", "dc.date", "dc.date.issued", "article:modified_time"):  # fmt: skip
        for value in meta.get(key, []):
            published = _parse_time(value)
            if published:
                break
        if published:
            break
    if published is None:
        for element in tree.iter("time"):
            published = _parse_time(element.get("datetime") or "")
            if published:
                break
    title = _first(meta.get("og:title") or meta.get("twitter:title"))
    if not title:
        title_element = tree.find(".//title")
        title = title_element.text_content().strip() if title_element is not None else None
    html_element = tree if tree.tag == "html" else tree.find(".//html")
    lang = (html_element.get("lang") if html_element is not None else None) or _first(meta.get("og:locale"))
    return {"canonical": canonical, "tags": tags, "published": published, "title": title, "lang": lang}


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _parse_time(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return find_date(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _lang_code(value: str | None) -> str | None:
    code = (value or "").strip().lower().replace("_", "-").split("-")[0]
    return code if re.fullmatch(r"[a-z]{2}", code) else None


def html_to_lines(tree: Any) -> str:
    """Visible text of a page, one block element per line (for the raw-text rules)."""
    from lxml import etree

    for element in list(tree.iter("script", "style", "noscript", "template", "svg", "iframe")):
        element.drop_tree()
    for element in tree.iter(*_BLOCK_TAGS):
        element.tail = "\n" + (element.tail or "")
        if element.tag == "br":
            continue
        element.text = "\n" + (element.text or "")
    body = tree.find(".//body")
    root = body if body is not None else tree
    return "\n".join(line.strip() for line in etree.tostring(root, method="text", encoding="unicode").split("\n"))


def _strip_title(body: str, title: str | None) -> str:
    """trafilatura keeps the <h1>; drop it (and repeats of it) from the top of the body."""
    paragraphs = [line.strip() for line in body.split("\n") if line.strip()]
    key = (title or "").strip().casefold()
    while paragraphs and key and paragraphs[0].casefold() == key:
        paragraphs.pop(0)
    return "\n\n".join(paragraphs)


def _extract(html: str, url: str | None) -> Any:
    """trafilatura's main-text extraction, or None when it fails."""
    import trafilatura

    try:
        return trafilatura.bare_extraction(
            html, url=url, with_metadata=True, include_comments=False, include_tables=False
        )
    except Exception:
        log.debug("trafilatura failed; falling back to raw-text rules", exc_info=True)
        return None


def parse_html(html: str, url: str | None = None) -> ParsedHtml:
    """Main text, title, canonical URL, published time, language and tags of an HTML page."""
    import lxml.html
    from lxml import etree

    # lxml refuses NUL and other control characters anywhere in a document.
    html = _XML_INCOMPATIBLE.sub("", html)
    if not html.strip():
        return ParsedHtml(title=None, body="")
    try:
        tree = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return ParsedHtml(title=None, body="")
    meta = _metadata(tree, url)
    title = meta["title"]
    # Too little text: nothing for the extractor to find (and it would log an error).
    document = None if len(tree.text_content().strip()) < MIN_EXTRACT_CHARS else _extract(html, url)
    text = ""
    if document is not None and getattr(document, "text", None):
        title = getattr(document, "title", None) or title
        text = _strip_title(clean_text(document.text, join_wrapped=False), title)
    else:
        # The extractor found no main text: the raw-text rules read the visible text.
        text = html_to_lines(tree)
    # The raw-text rules also tidy the extractor's output: leftover UI lines, "Baca juga",
    # a repeated headline, and tag lines at the end.
    parsed = parse_raw_text(text)
    body = parsed.body
    if parsed.title and (not title or parsed.title.casefold().startswith(title.casefold())):
        title = parsed.title  # the page's own heading beats a "<title>" cut at " | Site"
    tags = [*meta["tags"], *parsed.tags]
    published = meta["published"] or parsed.published_at
    if title:
        title = re.sub(r"\s+", " ", title).strip()
    by_key: dict[str, str] = {}
    for tag in tags:
        by_key.setdefault(tag.casefold(), tag)  # the first spelling of each tag wins
    unique_tags = list(by_key.values())
    return ParsedHtml(
        title=title or None,
        body=body,
        tags=unique_tags,
        canonical_url=meta["canonical"],
        published_at=published,
        lang=_lang_code(meta["lang"]),
    )
