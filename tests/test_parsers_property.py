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
@given(
    st.text(),
    st.lists(st.tuples(st.sampled_from(["bold", "hashtag", "url"]), st.integers(-5, 200), st.integers(-5, 200)), max_size=6),
)
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


# --- arbitrary bytes through every page parser: a result or one of the project's one-line errors ---
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABELS = st.sampled_from([None, "utf-8", "UTF-16", "utf-32", "iso-8859-1", "windows-1251", "shift_jis", "gbk",
                          "utf-7", "zlib", "base64", "idna", "x-unknown", "", " ", "utf-8\x00", "\ufffd"])  # fmt: skip
PREFIXES = st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff",
                            b"<meta charset=", b"<?xml version='1.0' encoding='", b"<html><body><p>",
                            "长江防汛 東京で猛暑日。".encode(), "Россия".encode("cp1251")])  # fmt: skip
CJK_TEXT = st.text(alphabet=st.sampled_from(list("长江委启动应急响应東京で猛暑日。、！？「」 \n<p></p>abc")), max_size=300)


@FUZZ
@given(st.lists(st.one_of(PREFIXES, st.binary(max_size=200)), max_size=8).map(b"".join), LABELS)
def test_decode_bytes_is_total_for_any_bytes_and_any_declared_charset(data: bytes, declared: str | None) -> None:
    assert isinstance(decode_bytes(data, declared), str)


@FUZZ
@given(
    st.lists(st.one_of(PREFIXES, st.binary(max_size=300), CJK_TEXT.map(str.encode)), max_size=8).map(b"".join),
    LABELS,
    st.sampled_from(["", "text/html", "text/plain", "application/xhtml+xml"]),
)
def test_page_bytes_give_an_article_or_one_clear_ingest_error(data: bytes, declared: str | None, content_type: str) -> None:
    from bot.ingest.loaders import article_from_bytes
    from bot.ingest.service import IngestError

    try:
        item = article_from_bytes(data, name="page", declared_charset=declared, url="https://example.com/a",
                                  content_type=content_type)  # fmt: skip
    except IngestError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert isinstance(item.body, str) and isinstance(item.title, str | None)


@FUZZ
@given(st.one_of(st.text(), CJK_TEXT))
def test_html_and_raw_text_parsers_are_total_on_any_text(text: str) -> None:
    from bot.ingest.rawtext import word_count

    assert isinstance(parse_html(text).body, str)
    assert isinstance(parse_raw_text(text).body, str)
    assert word_count(text) >= 0


@FUZZ
@given(st.binary(max_size=2000))
def test_read_file_gives_an_article_or_one_clear_ingest_error(data: bytes) -> None:
    import tempfile
    from pathlib import Path

    from bot.ingest.loaders import read_file
    from bot.ingest.service import IngestError

    from conftest import make_settings

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input"
        path.write_bytes(data)
        try:
            item = read_file(path, make_settings("sqlite://", Path(folder)))
        except IngestError as error:
            assert "\n" not in str(error)
        else:
            assert isinstance(item.body, str)
