"""The follow query parser and matcher, without a database: forms, normal form, limits, hostile input."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.follows.matcher import ArticleText, words
from bot.follows.query import DropReason, QueryLimits, parse_query
from bot.services.search import _fts5, _tsquery, parse_search
from bot.services.subscriptions import TagRef

TAGS = {"korea selatan": TagRef(1, "Korea Selatan"), "south korea": TagRef(1, "Korea Selatan"),
        "rusia": TagRef(2, "Rusia"), "russia": TagRef(2, "Rusia"), "amerika serikat": TagRef(3, "Amerika Serikat"),
        "timur tengah": TagRef(4, "Timur Tengah"), "iklan": TagRef(5, "Iklan"), "korea": TagRef(6, "Korea")}


def lookup(keys: Collection[str]) -> Mapping[str, TagRef]:
    return {key: TAGS[key] for key in keys if key in TAGS}


def texts(query: str) -> list[str]:
    return [follow.text for follow in parse_query(query, lookup).follows]


def test_known_tags_are_whole_phrases_longest_first() -> None:
    assert texts("Korea Selatan") == ["Korea Selatan"]
    assert texts("Korea Selatan Rusia") == ["Korea Selatan", "Rusia"]
    assert texts("south KOREA russia") == ["Korea Selatan", "Rusia"]
    assert texts("Amerika Serikat") == ["Amerika Serikat"]
    assert texts("Korea Utara") == ["Korea", "utara"]  # the longest known name, then a keyword
    assert texts("Timur Tengah, Rusia") == ["Timur Tengah", "Rusia"]


def test_keywords_exclusions_required_and_quotes() -> None:
    [follow] = parse_query("gandum -iklan", lookup).follows
    assert follow.text == "gandum -Iklan" and follow.anchor.tag_id is None and follow.exclude[0].tag_id == 5
    assert texts("Rusia +gandum") == ["Rusia +gandum"]
    assert texts('"Harga  Beras"') == ['"harga beras"']
    assert texts('gandum -"iklan baris" +impor') == ['gandum +impor -"iklan baris"']
    # Commas separate follows; the + and - terms belong to their own group.
    assert texts("Rusia -iklan, harga-beras") == ["Rusia -Iklan", '"harga beras"']
    assert texts("+gandum") == ["gandum"]  # a required word alone is what is followed
    # The same meaning twice is one follow; order of + and - terms does not matter.
    assert len(parse_query("gandum -iklan -promo, gandum -promo -iklan", lookup).follows) == 1


def test_dropped_pieces_are_named_with_a_reason() -> None:
    parsed = parse_query('-iklan, "" 😀 ' + "x" * 65, lookup)
    assert parsed.follows == []
    reasons = {item.reason for item in parsed.dropped}
    assert reasons == {DropReason.ONLY_EXCLUDED, DropReason.EMPTY, DropReason.INVALID}
    parsed = parse_query("gandum +a +b +c -d", lookup, QueryLimits(max_chars=300, max_terms=3))
    assert [f.text for f in parsed.follows] == ["gandum +a +b"]
    assert [(d.text, d.reason) for d in parsed.dropped] == [("+c -d", DropReason.TOO_MANY)]
    parsed = parse_query("satu dua tiga empat", lookup, QueryLimits(max_chars=12, max_terms=10))
    assert [f.text for f in parsed.follows] == ["satu", "dua"]
    assert [(d.text, d.reason) for d in parsed.dropped] == [("tiga empat", DropReason.TOO_LONG)]


def test_matching_is_on_folded_whole_words() -> None:
    [follow] = parse_query('"harga beras" -iklan', lookup).follows
    article = ArticleText.of("Harga-Beras di Pasar Induk TURUN", "Café.", ["Ekonomi"], [9])
    assert follow.matches(article)
    assert not follow.matches(ArticleText.of("Harga beras", "Iklan: murah", [], []))
    assert not follow.matches(ArticleText.of("Hargaberas", "", [], []))
    assert not follow.matches(ArticleText.of("harga", "beras", [], []))  # a phrase never spans two fields
    [cafe] = parse_query("cafe", lookup).follows
    assert cafe.matches(article)  # accents folded
    [tagged] = parse_query("Rusia +gandum", lookup).follows
    assert tagged.matches(ArticleText.of("Ekspor", "gandum naik", ["Rusia"], [2]))
    assert not tagged.matches(ArticleText.of("Rusia ekspor gandum", "", [], []))  # a tag anchor needs the tag


def test_round_trip_through_json() -> None:
    for follow in parse_query('Rusia +gandum -"iklan baris", "harga beras" -Iklan', lookup).follows:
        assert type(follow).from_json(follow.to_json()) == follow


@pytest.mark.parametrize("query", ["harga-beras", "Harga beras", "beras harga", "HARGA_BERAS"])
def test_search_variants_are_the_same_words(query: str) -> None:
    assert sorted(p[0][0] for p in parse_search(query).include) == ["beras", "harga"]


@given(st.text(max_size=400))
def test_any_input_parses_and_engine_queries_hold_only_quoted_words(text: str) -> None:
    parsed = parse_query(text, lookup)
    for follow in parsed.follows:
        assert follow.text and all(words(term.display) for term in (follow.anchor, *follow.require, *follow.exclude))
    search = parse_search(text)
    if search:
        for query in (_fts5(search), _tsquery(search)):
            # Quoted literals hold letters, digits and spaces only; what is left is operators we wrote.
            stripped = re.sub(r"'[^\W_]+'", "", re.sub(r'"[^\W_]+(?: [^\W_]+)*"', "", query))
            assert set(stripped) <= set(" ()&|!<->ANDORT"), (text, query)
