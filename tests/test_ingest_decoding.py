"""Decoding page and file bytes: declared charsets, undeclared legacy code pages, stray bytes."""

from __future__ import annotations

import codecs

import pytest

from bot.ingest.loaders import article_from_bytes, decode_bytes

RUSSIAN = (
    "Министр иностранных дел России Сергей Лавров заявил в среду, что Москва ждёт от Запада юридически "
    "обязывающих гарантий безопасности. По его словам, устных обещаний недостаточно, а переговоры "
    "продолжатся на следующей неделе в Женеве."
)
FRENCH = (
    "Les cafés de Montréal protestent contre les règles imposées aux terrasses: les propriétaires disent "
    "que les frais sont trop élevés et que la ville ne les a pas consultés avant l'été."
)
INDONESIAN = (
    "Rusia meminta Barat memberikan jaminan keamanan yang mengikat secara hukum – bukan sekadar janji – "
    "kata Menteri Luar Negeri Sergei Lavrov di Moskwa pada Rabu (6/3/2024)."
)
CHINESE = (
    "新华社武汉6月19日电 记者从水利部长江水利委员会获悉，受持续强降雨影响，长江中下游干流及鄱阳湖、洞庭湖水位"
    "快速上涨，长江委于19日12时启动今年首次防汛四级应急响应。据气象部门预报，未来三天长江中下游地区仍将有大到暴雨。"
)
JAPANESE = (
    "気象庁によりますと、5日は高気圧に覆われて全国的に気温が上がり、東京の都心では午後1時すぎに35度を超えて、"
    "今年初めての猛暑日となりました。気象庁は熱中症警戒アラートを発表して、こまめな水分補給を呼びかけています。"
)


def page(body: str, head: str = "") -> str:
    return f"<html><head>{head}<title>Berita</title></head><body><p>{body}</p></body></html>"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [(FRENCH, "latin-1"), (FRENCH, "cp1252"), ("“Smart quotes” – and dashes — in cp1252 text, café.", "cp1252"),
     (RUSSIAN, "cp1251"), (RUSSIAN, "koi8-r"), (CHINESE, "gbk"), (CHINESE, "gb18030"), (JAPANESE, "shift_jis"),
     (JAPANESE, "euc-jp")],
)  # fmt: skip
def test_undeclared_legacy_encodings_are_detected_on_the_whole_document(text: str, encoding: str) -> None:
    data = page(text).encode(encoding)
    assert decode_bytes(data) == page(text)


@pytest.mark.parametrize("text", [RUSSIAN, INDONESIAN, CHINESE, FRENCH])
def test_utf8_with_a_few_bad_bytes_stays_utf8(text: str) -> None:
    # A handful of stray bytes (a truncated copy, one pasted cp1252 quote) must not flip the whole
    # document into a code page: only the bad bytes become U+FFFD.
    html = page(text)
    middle = len(html) // 2
    data = b"\x92".join([html[:40].encode(), html[40:middle].encode()]) + b"\xff\xfe" + html[middle:].encode() + b"\xe9"
    decoded = decode_bytes(data)
    assert decoded.replace("\ufffd", "") == page(text)
    assert decoded.count("\ufffd") == 4


def test_stray_byte_in_a_utf8_article_does_not_garble_its_title_body_or_tags() -> None:
    raw = (
        "Internasional › Rusia\n\nBukan Sekadar Janji, Rusia Minta Barat Berikan Garansi Mengikat\n\n"
        + INDONESIAN + "\n\n"
        + "Lavrov menyebut Россия tidak akan menerima janji lisan tanpa dokumen yang ditandatangani oleh semua pihak.\n\n"
        + "Tags: Rusia, Amerika Serikat, NATO"
    )  # fmt: skip
    data = raw.encode("utf-8").replace(b"lisan ", b"lisan \xc3")  # one broken sequence
    article = article_from_bytes(data, name="rusia.txt")
    assert article.title == "Bukan Sekadar Janji, Rusia Minta Barat Berikan Garansi Mengikat"
    assert article.tags == ["Rusia", "Amerika Serikat", "NATO"]
    assert "hukum – bukan sekadar janji –" in article.body
    assert "Lavrov menyebut Россия tidak akan menerima janji lisan \ufffdtanpa dokumen" in article.body


@pytest.mark.parametrize(
    ("head", "encoding"),
    [("<meta charset='windows-1251'>", "cp1251"),
     ('<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">', "koi8-r"),
     ('<meta charset="Shift_JIS">', "shift_jis"), ("<meta charset=gbk>", "gbk")],
)  # fmt: skip
def test_meta_charset_is_used_when_it_decodes_cleanly(head: str, encoding: str) -> None:
    text = {"cp1251": RUSSIAN, "koi8-r": RUSSIAN, "shift_jis": JAPANESE, "gbk": CHINESE}[encoding]
    assert decode_bytes(page(text, head).encode(encoding)) == page(text, head)


def test_xml_declaration_is_a_declared_charset() -> None:
    feed = f'<?xml version="1.0" encoding="windows-1251"?><rss><channel><title>{RUSSIAN[:40]}</title></channel></rss>'
    assert decode_bytes(feed.encode("cp1251")) == feed


def test_http_charset_is_preferred_over_a_meta_charset() -> None:
    text = page(RUSSIAN, "<meta charset='utf-8'>")
    assert decode_bytes(text.encode("koi8-r"), "koi8-r") == text


def test_a_wrong_declaration_loses_to_what_the_bytes_are() -> None:
    # Servers label UTF-8 pages ISO-8859-1 by default; valid UTF-8 with Cyrillic is not latin-1 text.
    utf8_page = page(RUSSIAN)
    assert decode_bytes(utf8_page.encode("utf-8"), "iso-8859-1") == utf8_page
    # A page claiming UTF-8 that is really cp1252 throughout.
    french = page(FRENCH, "<meta charset='utf-8'>")
    assert decode_bytes(french.encode("cp1252")) == french


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_with_a_bom(encoding: str) -> None:
    text = page(RUSSIAN)
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE, "utf-32-le": codecs.BOM_UTF32_LE,
           "utf-32-be": codecs.BOM_UTF32_BE}.get(encoding, b"")  # fmt: skip
    data = bom + text.encode(encoding)
    assert decode_bytes(data) == text
    article = article_from_bytes(data, name="page.html")
    assert "юридически обязывающих" in article.body


def test_utf16_declared_by_the_server_without_a_bom() -> None:
    text = page(RUSSIAN)
    assert decode_bytes(text.encode("utf-16-le"), "utf-16le") == text
    # Its NUL bytes are those of UTF-16, not a sign of a binary file.
    article = article_from_bytes(text.encode("utf-16-le"), name="page", declared_charset="UTF-16LE", content_type="text/html")
    assert "юридически обязывающих" in article.body


@pytest.mark.parametrize("label", ["utf-7", "zlib", "base64", "rot13", "idna", "no-such-charset"])
def test_declarations_that_are_not_page_encodings_are_ignored(label: str) -> None:
    text = page(FRENCH, f"<meta charset={label}>")
    assert decode_bytes(text.encode("utf-8"), label) == text
