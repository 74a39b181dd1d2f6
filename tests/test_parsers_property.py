"""Property tests: the text, HTML, Telegram and date parsers never crash on random input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.ingest.dates import find_date
from bot.ingest.fingerprint import clean_text, fingerprint, hamming, simhash
from bot.ingest.html import parse_html
from bot.ingest.loaders import binary_kind, decode_bytes
from bot.ingest.rawtext import parse_raw_text
from bot.ingest.telegram_post import PostEntity, parse_telegram_post
from bot.tags import normalize_tag

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TAGS = st.sampled_from(["<p>", "</p>", "<div>", "</div>", "<h1>", "</h1>", "<br>", "<script>", "<!--", "-->",
                        "<meta property='article:tag' content='", "'>", "<title>", "<html>", "&amp;", "&#0;", "<"])  # fmt: skip
LINES = st.sampled_from(["Loading", "Tags:", "Baca juga:", "© 2024", "Home | News", "#Rusia", "Rabu, 6 Maret 2024",
                         "Leave a comment", "\n", "\n\n", " – ", "JAKARTA –"])  # fmt: skip


@FAST
@given(st.lists(st.one_of(st.text(), LINES), max_size=30).map("\n".join))
def test_raw_text_parser_never_crashes(text: str) -> None:
    parsed = parse_raw_text(text)
    assert isinstance(parsed.body, str)
    assert all(isinstance(tag, str) for tag in parsed.tags)


@FAST
@given(st.lists(st.one_of(st.text(max_size=40), TAGS), max_size=40).map("".join))
def test_html_parser_never_crashes(html: str) -> None:
    page = parse_html(html)
    assert isinstance(page.body, str)


@FAST
@given(st.text(), st.lists(st.tuples(st.sampled_from(["bold", "hashtag", "url"]), st.integers(-5, 200), st.integers(-5, 200)), max_size=6))
def test_telegram_parser_never_crashes(text: str, raw: list[tuple[str, int, int]]) -> None:
    item = parse_telegram_post(text, [PostEntity(kind, offset, length) for kind, offset, length in raw], None)
    assert isinstance(item.body, str)


@FAST
@given(st.binary(max_size=2000))
def test_decoding_never_crashes(data: bytes) -> None:
    if binary_kind(data) is None:
        assert isinstance(decode_bytes(data), str)


@FAST
@given(st.text())
def test_text_helpers_are_total(text: str) -> None:
    find_date(text)
    assert clean_text(clean_text(text)) == clean_text(text)
    assert len(fingerprint(text)) == 64
    value = simhash(text)
    assert -(2**63) <= value < 2**63 and hamming(value, value) == 0
    key = normalize_tag(text)
    assert len(key) <= 128 and normalize_tag(key) in (key, "")


@FAST
@given(st.binary(max_size=3000) | st.text(max_size=3000).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_give_an_article_or_one_clear_error(data: bytes) -> None:
    from bot.ingest.loaders import article_from_bytes
    from bot.ingest.service import IngestError

    try:
        item = article_from_bytes(data, name="input")
    except IngestError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(item.body, str) and all(isinstance(tag, str) for tag in item.tags)
