"""Follows that mean what the reader means, end to end: the real PTB adapter against the fake
Bot API with the push loop running, on SQLite and PostgreSQL.

Multi-word tags and aliases, keyword follows with exclusions and required words, typo
suggestions, one push per story however many follows match, dropped pieces named, and
full-text /search. "Nothing was pushed" is read from the outbox once the article is fanned out:
the fan-out creates every delivery in the transaction that marks the article, so no delivery
then means no push, ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.db import Database
from bot.i18n import I18n

from conftest import following_text
from fakebotapi import FakeBotApi
from test_bot_telegram import Bot, deliveries_once_fanned_out, services, start_bot, stop_bot, store

READER = 3001
BODY = (
    "Pemerintah mengumumkan anggaran baru untuk transportasi umum pada hari Selasa malam. "
    "Tarif bus tidak akan naik tahun depan, sementara tiga jalur trem baru direncanakan di utara kota. "
    "Anggota oposisi mengatakan rencana itu kurang rinci dan meminta tinjauan biaya yang independen."
)
# Unrelated texts, so no two test articles become one story (story linking is not under test here).
OTHER = (
    "Hujan deras sejak pagi membuat beberapa ruas jalan di pusat kota tergenang air setinggi lutut. "
    "Petugas pemadam kebakaran membantu warga memindahkan barang ke tempat yang lebih tinggi. "
    "Badan meteorologi memperkirakan cuaca buruk masih akan berlangsung hingga akhir pekan."
)
THIRD = (
    "Tim nasional sepak bola berlatih keras menjelang pertandingan persahabatan pekan depan. "
    "Pelatih memanggil lima pemain muda dari klub daerah untuk mengikuti pemusatan latihan. "
    "Tiket pertandingan sudah habis terjual dalam dua jam setelah penjualan dibuka secara daring."
)


@pytest.fixture
async def bot(database: Database, tmp_path: Path, i18n: I18n) -> AsyncIterator[Bot]:
    with FakeBotApi() as server:
        # Many commands a minute here (the hostile-input test): rate limiting is tested elsewhere.
        application = await start_bot(server, database, tmp_path, i18n, command_rate_limit=10_000,
                                      send_rate_per_chat=1000.0)
        try:
            yield Bot(server, application, i18n)
        finally:
            await stop_bot(application)


async def test_multi_word_tags_and_aliases_are_one_tag(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(READER, "/follow Korea Selatan") == i18n.t("en", "follow.added", tags="Korea Selatan")
    assert await bot.ask(READER, "/follow Timur Tengah Amerika Serikat") == i18n.t(
        "en", "follow.added", tags="Timur Tengah, Amerika Serikat")
    # Aliases in any language are the same tags, recognised as whole phrases too.
    assert await bot.ask(READER, "/follow South Korea, Middle East") == i18n.t(
        "en", "follow.already", tags="Korea Selatan; Timur Tengah")
    assert await bot.ask(READER, "/following") == following_text(
        i18n, "en", [("Amerika Serikat", 0), ("Korea Selatan", 0), ("Timur Tengah", 0)])
    # No junk tags: "Serikat", "Selatan", "Tengah" were never created.
    for junk in ("Serikat", "Selatan", "Tengah", "Korea"):
        assert await asyncio.to_thread(services(bot).articles.find_tag, junk) is None
    article = await store(bot, "Seoul dan Washington berunding", BODY, ["Korsel"])
    [_, _, _, _, push] = await bot.said(READER, 5)
    assert "Seoul dan Washington berunding" in push.text
    assert await deliveries_once_fanned_out(bot, READER) == [article]


async def test_keyword_follow_pushes_untagged_article_and_exclusion_blocks(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(READER, "/follow gandum -iklan") == i18n.t("en", "follow.added_rules", rules="gandum -iklan")
    # Indonesian works the same way.
    assert await bot.ask(READER, "/lang id") == i18n.t("id", "lang.done")
    # Tagged Ekonomi only, the word is in the text (any case): pushed, naming the follow that matched.
    wheat = await store(bot, "Impor Gandum Naik", "Impor GANDUM dari Australia naik tajam bulan ini. " + BODY, ["Ekonomi"])
    [*_, push] = await bot.said(READER, 3)
    assert "Impor Gandum Naik" in push.text
    assert i18n.plain("id", "push.matched", query="gandum -iklan") in push.text
    assert any(data.startswith("unq:") for _, data in push.buttons())
    # Matches the keyword and the exclusion: never pushed.
    await store(bot, "Promo tepung gandum", "Iklan: tepung gandum murah hari ini. " + OTHER, [])
    assert await deliveries_once_fanned_out(bot, READER) == [wheat]
    # Words match whole: "gandumnya" is not "gandum".
    await store(bot, "Tanpa kata", "Gandumnya habis. " + THIRD, [])
    assert await deliveries_once_fanned_out(bot, READER) == [wheat]


async def test_tag_with_required_word(bot: Bot, i18n: I18n) -> None:
    assert await bot.ask(READER, "/follow Rusia +gandum") == i18n.t("en", "follow.added_rules", rules="Rusia +gandum")
    await store(bot, "Rusia dan gencatan senjata", BODY, ["Rusia"])  # the tag without the word
    wheat = await store(bot, "Ekspor gandum Rusia", "Ekspor gandum Rusia melonjak. " + OTHER, ["Russia"])
    assert await deliveries_once_fanned_out(bot, READER) == [wheat]


async def test_typo_gets_a_suggestion_and_follows_nothing(bot: Bot, i18n: I18n) -> None:
    answer = await bot.ask(READER, "/follow Rusai")
    assert answer.startswith(i18n.t("en", "follow.suggest", word="Rusai", tags="Rusia")[:40])
    assert "Rusia" in answer
    assert await bot.ask(READER, "/following") == i18n.t("en", "following.none")
    suggestion = bot.server.sent_messages(READER)[0]
    buttons = dict(suggestion.buttons())
    assert any(data.startswith("fow:") for data in buttons.values())
    # Pressing [Rusia] follows the tag.
    tag_button = next(data for label, data in buttons.items() if data.startswith("fot:") and "Rusia" in label)
    bot.server.callback_query(READER, tag_button, message_id=suggestion.message_id)
    [*_, done] = await bot.said(READER, 3)
    assert done.text == i18n.t("en", "follow.added", tags="Rusia")
    assert await bot.ask(READER, "/following") == following_text(i18n, "en", [("Rusia", 0)])


async def test_one_push_per_story_however_many_follows_match(bot: Bot, i18n: I18n) -> None:
    for command in ("/follow Rusia", "/follow gandum", '/follow "ekspor gandum"', "/follow Rusia +gandum"):
        await bot.ask(READER, command)
    article = await store(bot, "Ekspor gandum Rusia", "Ekspor gandum Rusia melonjak. " + BODY, ["Rusia", "Ekonomi"])
    assert await deliveries_once_fanned_out(bot, READER) == [article]
    # The same story again from another outlet (a near-duplicate): still one push.
    await store(bot, "Ekspor gandum Rusia (update)", "Ekspor gandum Rusia melonjak. " + BODY + " Baca juga.", ["Rusia"])
    assert await deliveries_once_fanned_out(bot, READER) == [article]
    pushes = await bot.said(READER, 5)
    assert sum("Ekspor gandum Rusia" in m.text for m in pushes) == 1


async def test_dropped_pieces_are_named(bot: Bot, i18n: I18n) -> None:
    many = " ".join(f"+w{i}" for i in range(12))
    answer = await bot.ask(READER, f'/follow gandum {many} "" 😀')
    kept = " ".join(f"+w{i}" for i in range(9))
    assert answer == "\n".join([
        i18n.t("en", "follow.added_rules", rules=f"gandum {kept}"),
        i18n.t("en", "follow.dropped.empty", items='""'),
        i18n.t("en", "follow.dropped.invalid", items="😀", max=64),
        i18n.t("en", "follow.dropped.too_many", items="+w9 +w10 +w11", max=10),
    ])
    assert await bot.ask(READER, "/follow -iklan") == "\n".join([
        i18n.t("en", "follow.nothing"), i18n.t("en", "follow.dropped.only_excluded", items="-iklan")])
    long = " ".join(["kata"] * 100)
    answer = await bot.ask(READER, f"/follow beras {long}")
    assert i18n.t("en", "follow.added_rules", rules="beras; kata") in answer
    assert answer.splitlines()[-1].startswith(i18n.t("en", "follow.dropped.too_long", items="", max=300)[:30])


async def test_preview_and_unfollow_buttons(bot: Bot, i18n: I18n) -> None:
    wheat = await store(bot, "Impor gandum naik", "Impor gandum naik tajam. " + BODY, ["Ekonomi"])
    await store(bot, "Iklan gandum", "Iklan gandum murah. " + OTHER, [])
    assert await deliveries_once_fanned_out(bot, READER) == []  # stored before the follow: not pushed later
    preview = await bot.ask(READER, "/preview gandum -iklan")
    assert preview.startswith(i18n.t("en", "preview.header", query="gandum -iklan"))
    assert f"#{wheat} " in preview and "Iklan gandum" not in preview
    assert await bot.ask(READER, "/following") == i18n.t("en", "following.none")  # nothing followed
    await bot.ask(READER, "/follow gandum -iklan")
    [*_, offer] = await bot.said(READER, 4)  # the follow's answer, then the latest it would have pushed
    assert offer.text == i18n.t("en", "follow.latest_query", query="gandum -iklan")
    listing = await bot.ask(READER, "/unfollow")
    assert listing == following_text(i18n, "en", [("gandum -iklan", 1)])
    message = bot.server.sent_messages(READER)[-1]
    [(_, remove)] = message.buttons()
    bot.server.callback_query(READER, remove, message_id=message.message_id)
    [*_, done] = await bot.said(READER, 6)
    assert done.text == i18n.t("en", "unfollow.button_done", tag="gandum -iklan")
    assert await bot.ask(READER, "/following") == i18n.t("en", "following.none")


async def test_search_finds_word_order_and_hyphen_variants(bot: Bot, i18n: I18n) -> None:
    rice = await store(bot, "Harga Beras di Pasar Induk Turun", BODY, ["Ekonomi"])
    await store(bot, "Harga cabai naik", OTHER + " Harga cabai naik lagi.", [])
    for query in ("harga-beras", "Harga beras", "beras harga", "BERAS", '"harga beras"', "beras -cabai"):
        answer = await bot.ask(READER, f"/search {query}")
        assert answer.startswith(i18n.t("en", "search.header", query=query)), (query, answer)
        assert f"#{rice} " in answer and "Harga cabai naik" not in answer, (query, answer)
    for query in ('"beras harga"', "beras -harga", "gandum"):
        assert await bot.ask(READER, f"/search {query}") == i18n.t("en", "search.none", query=query)


HOSTILE = ["%", "_", "*", '"', "(", "NEAR", "\\", "😀😀", '""', "a* OR b*", "x" * 150, "'; DROP TABLE articles; --",
           'NEAR("a" "b", 2)', "harga:beras", "^harga", "{title}: beras", "'", "x" * 3900]


async def test_hostile_queries_get_a_clear_answer(bot: Bot, i18n: I18n) -> None:
    for hostile in HOSTILE:  # (no stored articles: a /follow answer then is exactly one message)
        for command in ("/search", "/preview", "/follow", "/unfollow"):
            answer = await bot.ask(READER, f"{command} {hostile}")
            assert answer and i18n.t("en", "error.generic") not in answer, (command, hostile, answer)
    # Over Telegram's own limit: refused before any query runs.
    answer = await bot.ask(READER, "/follow " + "gandum " * 1500)
    assert answer == i18n.t("en", "input.too_long", length=len("/follow " + "gandum " * 1500), limit=4096)


async def test_answers_in_indonesian(bot: Bot, i18n: I18n) -> None:
    reader = READER + 1
    assert await bot.ask(reader, "/follow Korea Selatan", lang="id") == i18n.t("id", "follow.added", tags="Korea Selatan")
    assert await bot.ask(reader, "/follow gandum -iklan") == i18n.t("id", "follow.added_rules", rules="gandum -iklan")
    assert (await bot.ask(reader, "/follow Rusai")).startswith(i18n.t("id", "follow.suggest", word="Rusai", tags="Rusia")[:30])
    assert await bot.ask(reader, "/follow -iklan") == "\n".join([
        i18n.t("id", "follow.nothing"), i18n.t("id", "follow.dropped.only_excluded", items="-iklan")])
    assert await bot.ask(reader, "/following") == following_text(i18n, "id", [("Korea Selatan", 0), ("gandum -iklan", 0)])
