"""Raw page text: the sample and fixtures in other site styles parse exactly; chrome is dropped."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from bot.config import Settings
from bot.db import Database
from bot.ingest.loaders import read_file
from bot.ingest.rawtext import Kind, classify, parse_raw_text
from bot.ingest.service import IngestError, IngestService
from bot.tags import TagService

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "rusia-garansi-mengikat.txt"
CASES = [SAMPLE, *sorted((FIXTURES / "raw").glob("*.txt"))]


def expected_for(path: Path) -> dict[str, object]:
    folder = FIXTURES if path == SAMPLE else FIXTURES / "raw_expected"
    return json.loads((folder / f"{path.stem}.expected.json").read_text("utf-8"))


@pytest.mark.parametrize("path", CASES, ids=lambda path: path.stem)
def test_fixture_parses_exactly(path: Path) -> None:
    expected = expected_for(path)
    parsed = parse_raw_text(path.read_text("utf-8"))
    assert parsed.title == expected["title"]
    assert parsed.tags == expected["tags"]
    assert parsed.body.split("\n\n") == expected["body"]
    assert parsed.dateline == expected["dateline"]
    published = expected["published_at"]
    assert parsed.published_at == (datetime.fromisoformat(published) if published else None)


@pytest.mark.parametrize("path", CASES, ids=lambda path: path.stem)
def test_fixture_ingests_with_title_tags_language_and_clean_body(
    path: Path, database: Database, settings: Settings
) -> None:
    expected = expected_for(path)
    service = IngestService(database, settings, TagService(database, settings))
    result = service.ingest(read_file(path, settings))
    assert result.created
    assert result.title == expected["title"]
    assert result.tags == expected["stored_tags"]
    assert result.lang == expected["lang"]
    assert result.body == "\n\n".join(expected["body"])  # type: ignore[arg-type]  # parsed JSON: values typed object


def test_sample_keeps_every_paragraph_and_no_chrome(database: Database, settings: Settings) -> None:
    service = IngestService(database, settings, TagService(database, settings))
    result = service.ingest(read_file(SAMPLE, settings))
    assert result.title == "Bukan Sekadar Janji, Rusia Minta Barat Berikan Garansi Mengikat"
    assert result.tags == ["Rusia"]
    assert result.lang == "id"
    paragraphs = result.body.split("\n\n")
    assert len(paragraphs) == 9
    assert paragraphs[0].startswith("POROS PERLAWANAN – Menlu Rusia, Sergey Lavrov menyatakan")
    assert paragraphs[-1].endswith("dan pengambilan keputusan bersama.")
    for chrome in ["Loading", "Ketik untuk mencari", "Tags:", "Tinggalkan Komentar", "Your email address", "Required fields"]:
        assert chrome not in result.body
    assert result.title not in result.body


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("Memuat...", Kind.CHROME),
        ("Please wait", Kind.CHROME),
        ("Type here to search", Kind.CHROME),
        ("Masukkan kata kunci pencarian", Kind.CHROME),
        ("Share on Facebook", Kind.CHROME),
        ("Facebook Twitter WhatsApp Email", Kind.CHROME),
        ("Home | World | Business | Tech", Kind.CHROME),
        ("ADVERTISEMENT", Kind.CHROME),
        ("Baca juga: Harga Emas Naik Lagi", Kind.RELATED),
        ("Related: Markets slide as oil jumps", Kind.RELATED),
        ("Leave a Reply", Kind.END),
        ("Tulis Komentar", Kind.END),
        ("Alamat email Anda tidak akan dipublikasikan.", Kind.END),
        ("12 Comments", Kind.END),
        ("© 2025 Harian Contoh. Hak cipta dilindungi undang-undang.", Kind.END),
        ("You may also like", Kind.END),
        ("Topik: Ekonomi, Energi", Kind.TAGS),
        ("Kategori: Olahraga", Kind.CATEGORY),
        ("#Banjir #Jakarta", Kind.HASHTAGS),
        ("Rabu, 6 Maret 2024 | 19:05 WIB", Kind.DATE),
        ("Updated 5 minutes ago", Kind.DATE),
        ("Reporter: Siti Aminah", Kind.BYLINE),
        ("(ant/rd)", Kind.BYLINE),
        ("Presiden tiba di lokasi. (Foto: Dok. Istana)", Kind.CAPTION),
        ("Banjir Rendam Jakarta Utara", Kind.SHORT),
        ("Pemerintah menyatakan bantuan akan tiba dalam dua hari ke depan untuk warga terdampak.", Kind.PARAGRAPH),
    ],
)
def test_line_rules_generalize_beyond_the_sample(line: str, kind: Kind) -> None:
    assert classify(line).kind is kind


def test_headline_without_repeat_is_found_above_the_body() -> None:
    text = (
        "Menu\nCari\nNews › Sport\nTimnas Menang Tipis atas Vietnam di Laga Kualifikasi\n"
        "Minggu, 10 Maret 2024 21:00 WIB\n"
        "Timnas Indonesia menang tipis 1-0 atas Vietnam dalam laga kualifikasi yang digelar di Jakarta malam ini.\n"
        "Gol tunggal dicetak pada menit ke-70 melalui sundulan setelah tendangan sudut dari sisi kanan.\n"
        "Tags: Sepak Bola, Timnas\nLeave a comment"
    )
    parsed = parse_raw_text(text)
    assert parsed.title == "Timnas Menang Tipis atas Vietnam di Laga Kualifikasi"
    assert parsed.tags == ["Sport", "Sepak Bola", "Timnas"]
    assert parsed.body.count("\n\n") == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Loading\n\nKetik untuk mencari\n\nHome | News | Sport\n\nTinggalkan Komentar\n\n© 2024 Situs",
        "Menu\nLogin\nDaftar\nCari\nShare\nFacebook\nTwitter",
    ],
)
def test_empty_and_all_chrome_pages_give_no_body(text: str, database: Database, settings: Settings) -> None:
    from bot.ingest.loaders import article_from_document

    item = article_from_document(text)
    assert item.body == ""
    with pytest.raises(IngestError, match="empty"):
        IngestService(database, settings, TagService(database, settings)).ingest(item)


def test_clean_text_keeps_lists_and_dated_sentences_but_drops_initials() -> None:
    text = (
        "Ledakan meriam saat latihan menewaskan tiga prajurit dan melukai beberapa lainnya, kata juru bicara.\n"
        "Film itu dijadwalkan tayang 25 Januari 2018.\n"
        "\"Nanti kita lihat keputusan pleno,\" tutup dia. [rnd]\n"
        "Korban meninggal dunia\n"
        "1. Pratu Marwan\n"
        "2. Praka Edy\n"
        "3. Pratu Ridai\n"
        "[tsr]"
    )
    parsed = parse_raw_text(text)
    assert parsed.title is None
    assert parsed.body.split("\n\n") == text.split("\n")[:-1]


def test_menu_after_the_article_is_dropped_but_a_closing_list_is_kept() -> None:
    text = (
        "Tiga Hal yang Sering Dilupakan Saat Menikah di Hari Libur\n"
        "Memanfaatkan momen libur hari raya untuk menikah memang praktis, tetapi ada beberapa hal yang sering terlupa.\n"
        "Tidak memberitahu para tamu dari jauh-jauh hari\n"
        "Melupakan rencana orang lain\n"
        "Share this:\n"
        "Like this:\n"
        "Home\nNews\nSport\n"
    )
    parsed = parse_raw_text(text)
    assert parsed.title == "Tiga Hal yang Sering Dilupakan Saat Menikah di Hari Libur"
    assert parsed.body.split("\n\n") == text.split("\n")[1:4]


def test_popular_stories_above_the_article_are_not_its_headline() -> None:
    text = (
        "Terpopuler\n"
        "Harga Emas Antam Hari Ini Naik Tajam, Cek Daftar Lengkapnya di Sini Sekarang\n"
        "Lima Tips Hemat Belanja Bulanan untuk Keluarga Muda di Kota Besar\n"
        "Sekolah Baru Dibuka di Desa Terpencil\n"
        "Sebuah sekolah dasar baru dibuka di desa terpencil di pegunungan, menampung seratus dua puluh murid.\n"
        "Warga menyambut gembira karena anak-anak tidak lagi harus berjalan dua jam ke sekolah terdekat."
    )
    parsed = parse_raw_text(text)
    assert parsed.title == "Sekolah Baru Dibuka di Desa Terpencil"
    assert parsed.body.count("\n\n") == 1
