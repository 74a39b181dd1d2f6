"""Bad input from files: each gets one clear message and nothing is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, Tag
from bot.ingest.loaders import read_file
from bot.ingest.service import IngestError, IngestService
from bot.tags import TagService

SAMPLE = Path(__file__).parent / "fixtures" / "rusia-garansi-mengikat.txt"


def ingest_file(path: Path, database: Database, settings: Settings) -> object:
    return IngestService(database, settings, TagService(database, settings)).ingest(read_file(path, settings, ["Uji Coba"]))


def counts(database: Database) -> tuple[int, int]:
    with database.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Article)) or 0,
            session.scalar(select(func.count()).select_from(Tag).where(Tag.key == "uji coba")) or 0,
        )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"   \n\n\t ", "is empty"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "looks like a PDF"),
        (b"PK\x03\x04\x14\x00\x06\x00", "looks like a ZIP archive"),
        (bytes(range(256)) * 4, "looks like a binary file"),
        (b"Loading\n\nMenu\n\nCari\n\nTinggalkan Komentar\n\n\xc2\xa9 2024 Situs", "article text is empty"),
        (b"<html><body><nav>Home | News</nav><footer>\xc2\xa9 2024</footer></body></html>", "article text is empty"),
        (b"<html><body><p>Too short.</p>", "nothing to store"),
        (b"<p>Only one short sentence in this whole page here.</p>", "too short"),
    ],
)
def test_bad_files_are_refused_clearly(tmp_path: Path, database: Database, settings: Settings, content: bytes, message: str) -> None:
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=message) as raised:
        ingest_file(path, database, settings)
    assert "\n" not in str(raised.value)
    assert counts(database) == (0, 0)


def test_fifty_megabyte_file_is_refused_without_reading_it_whole(tmp_path: Path, database: Database, settings: Settings) -> None:
    path = tmp_path / "huge.txt"
    line = ("Kalimat panjang yang berulang-ulang untuk membuat berkas yang sangat besar sekali. " * 10 + "\n").encode()
    with path.open("wb") as handle:
        for _ in range(50 * 1024 * 1024 // len(line) + 1):
            handle.write(line)
    assert path.stat().st_size >= 50 * 1024 * 1024
    with pytest.raises(IngestError, match="larger than the 5000000 byte limit"):
        ingest_file(path, database, settings)
    assert counts(database) == (0, 0)


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16"])
def test_non_utf8_text_is_decoded(tmp_path: Path, database: Database, settings: Settings, encoding: str) -> None:
    text = (
        "Café owners in Montréal protest new rules\n\n"
        "Café owners across Montréal gathered on Tuesday to protest new rules on terraces, saying the fees were too high.\n\n"
        "The city said the rules would make sidewalks safer and promised to review the fees for smaller cafés next year."
    )
    path = tmp_path / "article.txt"
    path.write_bytes(text.encode(encoding))
    result = ingest_file(path, database, settings)
    assert result.title == "Café owners in Montréal protest new rules"  # type: ignore[attr-defined]
    assert "smaller cafés" in result.body  # type: ignore[attr-defined]
    assert result.lang == "en"  # type: ignore[attr-defined]


def test_unreadable_path_is_one_clear_message(tmp_path: Path, database: Database, settings: Settings) -> None:
    with pytest.raises(IngestError, match="is a folder, not a regular file"):
        ingest_file(tmp_path, database, settings)  # a folder, not a file


def test_error_in_the_middle_leaves_earlier_articles_and_stores_later_ones(tmp_path: Path, database: Database, settings: Settings) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00\x01\x02" * 100)
    ingest_file(SAMPLE, database, settings)
    with pytest.raises(IngestError):
        ingest_file(bad, database, settings)
    assert counts(database) == (1, 1)
