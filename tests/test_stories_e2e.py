"""One story, one push, end to end: the real Application and push loop against the fake Bot API.

Three outlets publish the same wire story; the follower gets one push, and its footer is edited
in place (editMessageText) to name the other two outlets. An unrelated article on the same tag
is pushed on its own, and /summary of any member names the story's other outlets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.db.models import Source, SourceKind
from bot.ingest.service import ArticleInput, IngestService
from bot.tags import TagService

from fakebotapi import FakeBotApi
from test_push_e2e import Bot, follow, pushes_in, running_bot
from test_stories import UNRELATED, WIRE, WIRE_ANTARA, WIRE_KOMPAS

FOLLOWER = 41


@pytest.fixture
async def bot(fake_bot_api: FakeBotApi, database_url: str, tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(fake_bot_api, database_url, tmp_path) as running:
        yield running


def add_source(bot: Bot, name: str) -> int:
    with bot.db.session() as session:
        source = Source(kind=SourceKind.FEED, name=name, url=f"https://{name.lower()}.example/feed")
        session.add(source)
        session.flush()
        return source.id


def ingest(bot: Bot, body: str, url: str, source_id: int | None = None) -> int:
    service = IngestService(bot.db, bot.settings, TagService(bot.db, bot.settings))
    item = ArticleInput(body=body, url=url, tags=["Aceh"], lang="id", source_id=source_id)
    return service.ingest(item).article_id


async def test_three_outlets_one_push_whose_footer_names_the_other_two(bot: Bot) -> None:
    kompas, antara, poros = (add_source(bot, name) for name in ("Kompas", "Antara", "Poros"))
    with bot.db.session() as session:  # a known tag, so /follow Aceh follows the tag (not the word)
        TagService(bot.db, bot.settings).get_or_create(session, "Aceh")
    await follow(bot, FOLLOWER, "/follow Aceh")
    first = ingest(bot, WIRE_KOMPAS, "https://kompas.example/jengkol", kompas)
    [push] = await bot.pushes_to(FOLLOWER, 1)
    assert "Source: Kompas" in push.text and "Also reported by" not in push.text

    second = ingest(bot, WIRE_ANTARA, "https://antara.example/jengkol", antara)
    ingest(bot, WIRE, "https://poros.example/jengkol", poros)
    assert await bot.server.async_wait_for(
        lambda s: "Also reported by: Antara, Poros" in pushes_in(s, FOLLOWER)[0].text, timeout=20
    ), pushes_in(bot.server, FOLLOWER)[0].text
    other = ingest(bot, UNRELATED, "https://bank.example/bi", kompas)
    pushes = await bot.pushes_to(FOLLOWER, 2)
    await asyncio.sleep(0.6)  # time for a stray duplicate push or edit to show up

    pushes = pushes_in(bot.server, FOLLOWER)
    assert len(pushes) == 2  # one per story: the copies were never pushed
    story, unrelated = pushes
    assert f"unf:{_tag(bot)}:{first}" in [data for _, data in story.buttons()]
    assert "Source: Kompas\nAlso reported by: Antara, Poros" in story.text
    assert "Lavrov" not in story.text and "jengkol" in story.text
    # Edited in place, never re-sent; the buttons stay.
    assert 1 <= len(story.edits) <= 2 and "Also reported by" not in story.edits[0]
    assert story.buttons()[0] == ("🔕 Unfollow #Aceh", f"unf:{_tag(bot)}:{first}")
    assert [data.split(":")[0] for _, data in story.buttons()] == ["unf", "mute", "snz"]  # the same buttons as sent
    assert [c.params.get("message_id") for c in bot.server.calls("editMessageText")] == [story.message_id] * len(story.edits)
    assert f"unf:{_tag(bot)}:{other}" in [data for _, data in unrelated.buttons()]
    assert "Also reported by" not in unrelated.text and "Bank Indonesia" in unrelated.text
    assert bot.pushes.stats.edited == len(story.edits)

    # /summary of another member: the story's other outlets, from that member's point of view.
    before = len(bot.server.sent_messages(FOLLOWER))
    bot.server.user_command(FOLLOWER, f"/summary {second}")
    assert await bot.server.async_wait_for(lambda s: len(s.sent_messages(FOLLOWER)) > before, 10)
    answer = bot.server.sent_messages(FOLLOWER)[-1]
    assert "Source: Antara\nAlso reported by: Kompas, Poros" in answer.text, answer.text


def _tag(bot: Bot) -> int:
    from sqlalchemy import select

    from bot.db.models import Tag

    with bot.db.session() as session:
        return session.scalars(select(Tag.id).where(Tag.name == "Aceh")).one()
