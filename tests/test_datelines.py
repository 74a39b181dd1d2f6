"""The summarizer reads articles without their datelines and bylines; the stored body keeps them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from summarizer import Engine, Method, SummarizerConfig
from summarizer.text import strip_datelines

from tinymodels import TinyModels

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = "Menlu Rusia, Sergey Lavrov menyatakan, Moskow menghendaki jaminan-jaminan keamanan."


@pytest.mark.parametrize(
    ("opening", "rest"),
    [
        ("POROS PERLAWANAN – ", SAMPLE),
        ("JAKARTA, KOMPAS.com - ", "Pemerintah menaikkan harga bahan bakar minyak mulai Senin."),
        ("Jakarta (ANTARA) - ", "Presiden meresmikan jalan tol baru di Jawa Tengah pada Selasa."),
        ("TEMPO.CO, Jakarta - ", "Harga beras di pasar tradisional naik dua kali lipat."),
        ("Liputan6.com, Jakarta - ", "Harga beras di pasar tradisional naik dua kali lipat."),
        ("Jakarta, IDN Times - ", "Harga beras di pasar tradisional naik dua kali lipat."),
        ("KOMPAS.com - ", "Harga beras di pasar tradisional naik dua kali lipat."),
        ("Semarang - ", "Banjir merendam ribuan rumah di sejumlah kecamatan."),
        ("TOKYO, KOMPAS NUSANTARA - ", "Gempa berkekuatan magnitudo 6,1 mengguncang pesisir selatan Jepang."),
        ("WASHINGTON (Reuters) - ", "The Senate passed the spending bill late on Monday."),
        ("BRUSSELS, March 5 (Wire) - ", "European Union leaders agreed on new rules on Tuesday."),
        ("LONDON (AP) — ", "Britain's prime minister said on Tuesday that taxes would rise."),
        ("NEW YORK -- ", "Stocks fell sharply in early trading on Wall Street."),
    ],
)
def test_the_opening_dateline_is_cut(opening: str, rest: str) -> None:
    text = f"{opening}{rest}\nThe second paragraph - with a dash - stays as it is."
    assert strip_datelines(text) == f"{rest}\nThe second paragraph - with a dash - stays as it is."


@pytest.mark.parametrize(
    "line",
    [
        "Reporter: Andi Saputra | Editor: Budi Santoso",
        "Penulis: Siti Aminah",
        "Pewarta: Rina Sari",
        "Editor: Agus Salim",
        "Baca juga: Harga cabai turun menjelang Lebaran",
        "Baca juga: Harga cabai turun menjelang Lebaran.",
        "By Jane Doe and John Roe",
        "Reporting by Jane Doe; Editing by Mark Smith",
    ],
)
def test_bylines_and_read_also_lines_are_cut(line: str) -> None:
    body = "JAKARTA - Harga beras naik di pasar tradisional pekan ini.\nPedagang mengeluhkan pasokan yang seret."
    assert strip_datelines(f"{line}\n{body}\n{line}") == (
        "Harga beras naik di pasar tradisional pekan ini.\nPedagang mengeluhkan pasokan yang seret."
    )


@pytest.mark.parametrize(
    "text",
    [
        "Harga beras naik – kata pedagang di pasar Senin pagi.",
        "Rupiah – mata uang Indonesia – melemah terhadap dolar AS.",
        "BI – Bank Indonesia – menaikkan suku bunga acuan pekan ini.",
        "The minister - Mr Smith - said on Monday that taxes would rise.",
        "NATO – the alliance founded in 1949 – said on Monday it would meet.",
        "Presiden Joko Widodo – yang hadir di acara itu – mengatakan hal tersebut.",
        "Oleh karena itu, pemerintah menaikkan harga bahan bakar.",
        "By the end of the year, prices had doubled in most cities.",
    ],
)
def test_a_first_sentence_that_merely_contains_a_dash_is_kept(text: str) -> None:
    assert strip_datelines(text) == text


def test_a_dateline_deep_in_the_article_is_not_touched() -> None:
    text = "Pembukaan tanpa dateline di sini.\nParagraf kedua juga biasa.\nJAKARTA - Kalimat ketiga."
    assert strip_datelines(text) == text


def test_only_a_dateline_is_left_alone() -> None:
    assert strip_datelines("Reporter: Andi") == "Reporter: Andi"


def _fixture_bodies() -> list[tuple[str, str]]:
    bodies = []
    for path in [*sorted((FIXTURES / "raw_expected").glob("*.json")), FIXTURES / "rusia-garansi-mengikat.expected.json"]:
        expected = json.loads(path.read_text())
        if expected["dateline"]:
            bodies.append((expected["dateline"], "\n".join(expected["body"])))
    return bodies


@pytest.mark.parametrize(("dateline", "body"), _fixture_bodies())
def test_stored_bodies_of_real_pages_lose_their_dateline(dateline: str, body: str) -> None:
    assert dateline in body  # the stored body keeps it ...
    assert dateline not in strip_datelines(body)  # ... the summarizer does not read it


def test_the_extractive_summary_does_not_open_with_the_dateline() -> None:
    body = "\n".join(json.loads((FIXTURES / "rusia-garansi-mengikat.expected.json").read_text())["body"])
    output = Engine(SummarizerConfig(sentences=2)).summarize(body, "id")
    assert output.method is Method.EXTRACTIVE
    assert output.text.startswith("Menlu Rusia, Sergey Lavrov menyatakan")


def test_the_model_input_does_not_open_with_the_dateline(tiny_models: TinyModels) -> None:
    engine = Engine(SummarizerConfig(summary_model=str(tiny_models.summary), threads=1, num_beams=1))
    tokenizer = engine.models.get(str(tiny_models.summary)).tokenizer
    body = "Jakarta (ANTARA) - Presiden meresmikan jalan tol baru.\nReporter: Andi | Editor: Budi\nWarga menyambut baik."
    assert engine.prepare_input(tokenizer, body) == "Presiden meresmikan jalan tol baru. Warga menyambut baik."
