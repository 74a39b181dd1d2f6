"""Sentence splitting, clean-up and the extractive fallback (no models)."""

from __future__ import annotations

from pathlib import Path

from summarizer.extractive import ExtractiveAlgorithm, candidate_sentences, extract, textrank
from summarizer.text import clean_whitespace, cut_to_sentences, split_sentences, tidy_generated

SAMPLE = Path(__file__).parent / "fixtures" / "rusia-garansi-mengikat.txt"


def test_split_keeps_abbreviations_numbers_and_initials_together() -> None:
    text = (
        "Kapolres AKBP Hendri Budiman mengatakan 1.000 personel siap. Dr. Smith met J. Doe in the U.S. "
        "on Monday. Harga naik 2,5 persen dll. dan warga protes! Apa kabar?"
    )
    assert split_sentences(text) == [
        "Kapolres AKBP Hendri Budiman mengatakan 1.000 personel siap.",
        "Dr. Smith met J. Doe in the U.S. on Monday.",
        "Harga naik 2,5 persen dll. dan warga protes!",
        "Apa kabar?",
    ]


def test_split_ends_sentences_at_paragraphs_and_quotes() -> None:
    text = "“Kami menolak,” kata Lavrov. “Ini penting.” Dia pergi\n\nParagraf baru tanpa titik"
    assert split_sentences(text) == [
        "“Kami menolak,” kata Lavrov.",
        "“Ini penting.”",
        "Dia pergi",
        "Paragraf baru tanpa titik",
    ]


def test_whitespace_and_unfinished_sentences() -> None:
    assert clean_whitespace("  a \t b\u00a0c \n\n\n\n d  ") == "a b c\n\nd"
    assert cut_to_sentences("Satu dua tiga. Empat lima enam") == "Satu dua tiga."
    assert cut_to_sentences("no punctuation at all") == "no punctuation at all"


def test_tidy_generated_drops_loops() -> None:
    looping = "Rusia minta jaminan.  Rusia minta jaminan. NATO menolak usulan itu. NATO menolak"
    assert tidy_generated(looping) == "Rusia minta jaminan. NATO menolak usulan itu."


def test_lead_skips_headlines_menus_and_repeats() -> None:
    summary = extract(SAMPLE.read_text(encoding="utf-8"), 3, ExtractiveAlgorithm.LEAD)
    sentences = split_sentences(summary)
    assert len(sentences) == 3
    assert sentences[0].startswith("POROS PERLAWANAN – Menlu Rusia, Sergey Lavrov")
    assert "Loading" not in summary and "Ketik untuk mencari" not in summary
    assert "Bukan Sekadar Janji" not in summary  # the headline, printed twice above the text


def test_english_lead_and_count() -> None:
    text = (
        "The central bank raised interest rates by half a point on Thursday. "
        "Officials said inflation had stayed above target for a year. "
        "Markets fell after the announcement. Analysts expect another rise in June."
    )
    assert extract(text, 2) == (
        "The central bank raised interest rates by half a point on Thursday. "
        "Officials said inflation had stayed above target for a year."
    )


def test_textrank_prefers_central_sentences_and_keeps_order() -> None:
    sentences = [
        "Jakarta floods displaced thousands of residents on Monday.",
        "The weather was sunny in Bali where tourists enjoyed the beach all week long.",
        "Floods in Jakarta displaced residents after heavy rain on Monday.",
        "Officials said the Jakarta floods displaced residents in five districts.",
        "A football match in Surabaya ended in a draw between the two local teams.",
    ]
    picked = textrank(sentences, 3)
    assert picked == sorted(picked)
    assert set(picked) == {0, 2, 3}


def test_short_text_returns_what_there_is() -> None:
    assert extract("Satu kalimat saja di sini ya.", 3) == "Satu kalimat saja di sini ya."
    assert extract("", 3) == ""
    assert candidate_sentences("Judul\n\nIsi") == ["Judul", "Isi"]
