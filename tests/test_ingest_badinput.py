"""Bad input from files: each gets one clear message and nothing is stored."""

from __future__ import annotations

import os
import threading
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
def test_bad_files_are_refused_clearly(
    tmp_path: Path, database: Database, settings: Settings, content: bytes, message: str
) -> None:
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
    assert result.title == "Café owners in Montréal protest new rules"  # type: ignore[attr-defined]  # ingest_file is typed object
    assert "smaller cafés" in result.body  # type: ignore[attr-defined]  # ingest_file is typed object
    assert result.lang == "en"  # type: ignore[attr-defined]  # ingest_file is typed object


def test_unreadable_path_is_one_clear_message(tmp_path: Path, database: Database, settings: Settings) -> None:
    with pytest.raises(IngestError, match="is a folder, not a regular file"):
        ingest_file(tmp_path, database, settings)  # a folder, not a file


def test_error_in_the_middle_leaves_earlier_articles_and_stores_later_ones(
    tmp_path: Path, database: Database, settings: Settings
) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00\x01\x02" * 100)
    ingest_file(SAMPLE, database, settings)
    with pytest.raises(IngestError):
        ingest_file(bad, database, settings)
    assert counts(database) == (1, 1)


def test_nul_byte_after_the_first_8_kb_makes_the_file_binary(tmp_path: Path, database: Database, settings: Settings) -> None:
    # Text never holds NUL; one deep inside means a corrupt or mixed file, which is refused
    # rather than stored with the NUL silently dropped.
    text = SAMPLE.read_bytes()
    offset = 9000 if len(text) > 9000 else len(text) - 10
    path = tmp_path / "mixed.txt"
    path.write_bytes((text * 3)[:offset] + b"\x00" + (text * 3)[offset:])
    with pytest.raises(IngestError, match=rf"looks like a binary file \(NUL byte at offset {offset}\)"):
        ingest_file(path, database, settings)
    assert counts(database) == (0, 0)


@pytest.mark.parametrize(
    ("content", "phrase"),
    [(b"\x7fELF\x02\x01\x01" + bytes(200), "looks like an executable,"),
     (b"MZ\x90\x00\x03" + bytes(200), "looks like an executable,"),
     (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "looks like an Office document,"),
     (b"ID3\x04\x00" + bytes(100), "looks like an MP3 audio file,"),
     (b"SQLite format 3\x00" + bytes(100), "looks like an SQLite database,"),
     (b"%PDF-1.4\n" + bytes(10), "looks like a PDF,")],
)  # fmt: skip
def test_binary_kinds_are_named_with_the_right_article(
    tmp_path: Path, database: Database, settings: Settings, content: bytes, phrase: str
) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    with pytest.raises(IngestError) as raised:
        ingest_file(path, database, settings)
    assert phrase in str(raised.value)


def test_a_named_pipe_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path: Path, settings: Settings) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome: list[BaseException | object] = []

    def read() -> None:
        try:
            outcome.append(read_file(fifo, settings))
        except BaseException as error:
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # the old behaviour: blocked in open(); free it before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("reading a FIFO blocked")
    [error] = outcome
    assert isinstance(error, IngestError)
    assert str(error) == f"{fifo} is a named pipe (FIFO), not a regular file (use - to read standard input)"


@pytest.mark.parametrize(
    ("name", "message"), [("/dev/zero", "is a character device, not a regular file"), ("/dev/null", "is a character device")]
)
def test_devices_are_refused(settings: Settings, name: str, message: str) -> None:
    if not Path(name).exists():
        pytest.skip(f"{name} does not exist here")
    with pytest.raises(IngestError, match=message):
        read_file(Path(name), settings)


def test_symbolic_link_problems_are_named(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(IngestError) as loop:
        read_file(tmp_path / "a", settings)
    assert str(loop.value) == f"{tmp_path / 'a'}: symbolic link loop"
    with pytest.raises(IngestError, match="broken symbolic link"):
        read_file(tmp_path / "dangling", settings)
    with pytest.raises(IngestError, match="no such file"):
        read_file(tmp_path / "missing.txt", settings)
