"""Telegram posts: UTF-16 entity offsets, hashtags to tags, bold heading or first line to title."""

from __future__ import annotations

from bot.config import Settings
from bot.db import Database
from bot.ingest.service import IngestService
from bot.ingest.telegram_post import PostEntity, parse_telegram_post
from bot.tags import TagService


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def entity(text: str, part: str, kind: str) -> PostEntity:
    index = text.index(part)
    return PostEntity(kind, utf16_len(text[:index]), utf16_len(part))


BODY = (
    "Menlu Rusia Sergey Lavrov menyatakan Moskow menghendaki jaminan keamanan yang mengikat dari #NATO, "
    "bukan hanya janji. Pernyataan itu disampaikan dalam wawancara televisi pada Senin malam."
)


def test_bold_heading_with_emoji_is_title_and_trailing_hashtags_are_tags() -> None:
    text = f"🇷🇺🔥 Rusia Minta Garansi Mengikat\n\n{BODY}\n\n#Rusia #Diplomasi\nSubscribe: @warta_contoh"
    entities = [entity(text, "🇷🇺🔥 Rusia Minta Garansi Mengikat", "bold")] + [
        entity(text, tag, "hashtag") for tag in ("#NATO", "#Rusia", "#Diplomasi")
    ]
    item = parse_telegram_post(text, entities, "https://t.me/warta_contoh/42")
    assert item.title == "Rusia Minta Garansi Mengikat"
    assert item.tags == ["NATO", "Rusia", "Diplomasi"]
    assert item.body == BODY.replace("#NATO", "NATO")
    assert item.url == "https://t.me/warta_contoh/42"


def test_first_line_is_title_without_entities() -> None:
    item = parse_telegram_post(f"Harga Beras Turun\n{BODY} #Ekonomi", [], None)
    assert item.title == "Harga Beras Turun"
    assert item.tags == ["NATO", "Ekonomi"]
    assert item.body.startswith("Menlu Rusia") and "#" not in item.body


def test_entities_after_astral_characters_use_utf16_offsets() -> None:
    text = "😀😀 Judul\n" + BODY + "\n#Rusia"
    item = parse_telegram_post(text, [entity(text, "#Rusia", "hashtag")], None)
    assert item.tags == ["Rusia"]


def test_single_paragraph_post_keeps_all_text(database: Database, settings: Settings) -> None:
    item = parse_telegram_post(BODY, [], None)
    assert item.title is None and item.body == BODY.replace("#NATO", "NATO")
    result = IngestService(database, settings, TagService(database, settings)).ingest(item)
    assert result.lang == "id" and result.title.startswith("Menlu Rusia")
