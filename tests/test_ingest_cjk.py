"""Chinese and Japanese pages: text without spaces between words is still an article."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.db import Database
from bot.ingest.loaders import article_from_bytes, read_file
from bot.ingest.rawtext import parse_raw_text, word_count
from bot.ingest.service import MIN_BODY_WORDS, IngestService
from bot.tags import TagService

FIXTURES = Path(__file__).parent / "fixtures" / "cjk"
ZH = FIXTURES / "zh-news.html"
JA = FIXTURES / "ja-news.html"


def test_chinese_page_gives_its_headline_body_and_keywords() -> None:
    article = article_from_bytes(ZH.read_bytes(), name=str(ZH))
    assert article.title == "长江流域今年首次启动防汛四级应急响应"
    paragraphs = article.body.split("\n\n")
    assert len(paragraphs) == 3
    assert paragraphs[0].startswith("新华社武汉6月19日电 记者从水利部长江水利委员会获悉")
    assert paragraphs[2].endswith("避免前往河道、低洼地带等危险区域。")
    assert "首页" not in article.body and "版权所有" not in article.body
    assert article.tags == ["长江", "防汛", "水利部"]
    assert word_count(article.body) >= MIN_BODY_WORDS


def test_japanese_page_gives_its_headline_and_body() -> None:
    article = article_from_bytes(JA.read_bytes(), name=str(JA))
    assert article.title == "東京で今年初の猛暑日、各地で熱中症に警戒"
    paragraphs = article.body.split("\n\n")
    assert len(paragraphs) == 3
    assert paragraphs[0].startswith("気象庁によりますと、5日は高気圧に覆われて")
    assert paragraphs[2].endswith("40人を超えたということです。")
    assert "ホーム" not in article.body and "Copyright" not in article.body
    assert word_count(article.body) >= MIN_BODY_WORDS


def test_chinese_raw_text_paragraphs_are_prose() -> None:
    text = ("国际新闻\n\n联合国安理会举行会议讨论中东局势\n\n"
            "联合国安理会18日举行公开会议，讨论中东局势。多国代表呼吁各方保持克制，尽快实现停火。\n\n"
            "会议还讨论了人道主义援助问题。")  # fmt: skip
    parsed = parse_raw_text(text)
    assert parsed.title == "联合国安理会举行会议讨论中东局势"
    assert parsed.body == ("联合国安理会18日举行公开会议，讨论中东局势。多国代表呼吁各方保持克制，尽快实现停火。\n\n"
                           "会议还讨论了人道主义援助问题。")
    assert parsed.tags == ["国际新闻"]  # the section above the headline


@pytest.mark.parametrize(
    ("text", "words"),
    [("The harbour reopened on Monday.", 5), ("长江委启动应急响应", 5), ("東京で猛暑日", 3), ("NHK によると 35 度", 5), ("", 0)],
)
def test_word_count_counts_two_cjk_characters_as_a_word(text: str, words: int) -> None:
    assert word_count(text) == words


def test_chinese_page_is_stored(database: Database, settings: Settings) -> None:
    service = IngestService(database, settings, TagService(database, settings))
    result = service.ingest(read_file(ZH, settings))
    assert result.created and result.title == "长江流域今年首次启动防汛四级应急响应"
    assert "长江委于19日12时启动今年首次防汛四级应急响应。" in result.body


def test_japanese_page_is_stored(database: Database, settings: Settings) -> None:
    service = IngestService(database, settings, TagService(database, settings))
    result = service.ingest(read_file(JA, settings))
    assert result.created and result.title == "東京で今年初の猛暑日、各地で熱中症に警戒"
