"""HTML pages: trafilatura main text plus metadata (title, canonical URL, time, tags)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bot.ingest.html import looks_like_html, parse_html
from bot.ingest.loaders import article_from_document

PARAGRAPHS = [
    "Pemerintah kota meresmikan taman kota terbesar di tepi sungai pada Sabtu pagi, dihadiri ribuan warga.",
    "Taman seluas dua belas hektare itu dilengkapi jalur sepeda, area bermain anak, dan kebun komunitas.",
    "Wali kota mengatakan taman tersebut akan dibuka setiap hari tanpa biaya masuk bagi semua pengunjung.",
]

PAGE = f"""<!DOCTYPE html>
<html lang="id"><head><meta charset="utf-8"><title>Taman Kota Baru Diresmikan - Warta Contoh</title>
<meta property="og:title" content="Taman Kota Terbesar Diresmikan di Tepi Sungai">
<link rel="canonical" href="https://warta.example/kota/taman-baru?utm_medium=social">
<meta property="article:published_time" content="2024-03-09T08:15:00+07:00">
<meta property="article:tag" content="Lingkungan"><meta property="article:tag" content="Ruang Publik">
<meta name="keywords" content="taman, kota, sungai, warga, liburan, jalan-jalan, piknik, sepeda, anak">
<meta property="article:section" content="Kota">
<script>var tracking = "do not keep";</script></head>
<body><header><nav><ul><li>Beranda</li><li>Kota</li><li>Politik</li></ul></nav>
<form><input placeholder="Ketik untuk mencari"></form></header>
<main><article><h1>Taman Kota Terbesar Diresmikan di Tepi Sungai</h1>
<div class="share">Bagikan: Facebook Twitter WhatsApp</div>
{''.join(f'<p>{p}</p>' for p in PARAGRAPHS)}
<p>Baca juga: Jalur Sepeda Baru Dibuka di Pusat Kota</p></article>
<section class="comments"><h3>Tinggalkan Komentar</h3><p>Alamat email Anda tidak akan dipublikasikan.</p></section></main>
<footer><p>© 2024 Warta Contoh. Hak cipta dilindungi.</p></footer></body></html>"""


def test_main_text_and_metadata() -> None:
    page = parse_html(PAGE, "https://warta.example/kota/taman-baru")
    assert page.title == "Taman Kota Terbesar Diresmikan di Tepi Sungai"
    assert page.body.split("\n\n") == PARAGRAPHS
    assert page.canonical_url == "https://warta.example/kota/taman-baru?utm_medium=social"
    assert page.published_at == datetime(2024, 3, 9, 8, 15, tzinfo=timezone(timedelta(hours=7)))
    assert page.tags == ["Lingkungan", "Ruang Publik", "Kota"]
    assert page.lang == "id"


def test_keywords_are_used_when_there_are_no_article_tags() -> None:
    html = PAGE.replace(
        '<meta property="article:tag" content="Lingkungan"><meta property="article:tag" content="Ruang Publik">', ""
    )
    page = parse_html(html)
    assert page.tags[:3] == ["taman", "kota", "sungai"] and len(page.tags) <= 9


def test_article_from_document_uses_canonical_url() -> None:
    item = article_from_document(PAGE, url="https://warta.example/amp/taman", tags=["Extra"])
    assert item.url == "https://warta.example/kota/taman-baru?utm_medium=social"
    assert item.tags[-1] == "Extra"
    assert item.published_at is not None and item.published_at.astimezone(UTC).hour == 1


def test_page_of_divs_falls_back_to_raw_text_rules() -> None:
    lines = [
        "Loading", "Menu", "Kota", "Taman Kota Terbesar Diresmikan di Tepi Sungai", *PARAGRAPHS, "Tags: Taman, Kota",
        "Tinggalkan Komentar",
    ]
    html = "<html><body>" + "".join(f"<div>{line}</div>" for line in lines) + "</body></html>"
    page = parse_html(html)
    assert page.title == "Taman Kota Terbesar Diresmikan di Tepi Sungai"
    assert page.body.split("\n\n") == PARAGRAPHS
    assert "Taman" in page.tags


def test_malformed_and_empty_html_do_not_crash() -> None:
    for html in ["", "<html>", "<<<>>>", "<p>unclosed <b>bold <i>text", "<html><body></body></html>", "\x00<html>"]:
        page = parse_html(html)
        assert isinstance(page.body, str)


def test_html_detection() -> None:
    assert looks_like_html(PAGE)
    assert looks_like_html("<p>A paragraph.</p><p>Another.</p>")
    assert not looks_like_html("Judul\n\nIsi berita dengan tanda < dan > di dalamnya.")
