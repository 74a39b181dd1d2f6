"""The story_edits outbox (bot/services/stories.py) on SQLite and PostgreSQL, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.db import Database
from bot.db.models import StoryEdit
from bot.ingest.stories import STORY_EDIT_DELAY, request_story_edit
from bot.services.deliveries import DeliveryService
from bot.services.fanout import FanoutService
from bot.services.outlets import outlet_name
from bot.services.stories import EDIT_LEASE, EDIT_MAX_WAIT, EDIT_RECHECK, StoryService

from test_fanout import World
from test_stories import WIRE, WIRE_KOMPAS


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


def story_with_a_push(world: World, clock: Clock) -> tuple[int, DeliveryService]:
    world.chat(7, "Aceh")
    world.chat(8, "Aceh")
    first = world.ingest(["Aceh"], body=WIRE, url="https://poros.example/a").article_id
    FanoutService(world.db).run_once()
    deliveries = DeliveryService(world.db, world.settings, clock=clock)
    return first, deliveries


def test_edit_waits_for_unsent_deliveries_then_targets_every_sent_push(database: Database, settings: Settings,
                                                                       clock: Clock) -> None:
    world = World(database, settings)
    first, deliveries = story_with_a_push(world, clock)
    [one] = deliveries.claim_due(1)
    deliveries.mark_sent(one.id, 501)
    copy = world.ingest(["Aceh"], body=WIRE_KOMPAS, url="https://kompas.example/a")
    assert copy.story_id == first  # the join requested an edit
    service = StoryService(database, clock=clock)
    clock.now = datetime.now(UTC)
    assert service.claim_edits(5) == []  # debounced
    clock.advance(STORY_EDIT_DELAY + timedelta(seconds=5))  # ingest stamped the request with the real clock
    [request] = service.claim_edits(5)
    assert service.claim_edits(5) == []  # leased to us
    plan = service.plan(request, kinds=world_kinds())
    assert plan.wait and plan.targets == []  # chat 8's push is still on its way
    service.finish(request, EDIT_RECHECK)
    clock.advance(EDIT_RECHECK)
    [request] = service.claim_edits(5)
    [other] = deliveries.claim_due(5)
    deliveries.mark_sent(other.id, 502)
    plan = service.plan(request, kinds=world_kinds())
    assert not plan.wait
    assert sorted((t.delivery.chat_id, t.message_id, t.delivery.article_id) for t in plan.targets) == [
        (7, 501, first), (8, 502, first)]
    assert all(t.delivery.followed_tag_ids for t in plan.targets)
    service.finish(request)
    with database.session() as session:
        assert session.scalars(select(StoryEdit)).all() == []


def test_a_member_joining_during_an_edit_pass_is_not_lost(database: Database, settings: Settings, clock: Clock) -> None:
    world = World(database, settings)
    first, _ = story_with_a_push(world, clock)
    with database.session() as session:
        request_story_edit(session, first, clock.now - STORY_EDIT_DELAY)
    service = StoryService(database, clock=clock)
    [request] = service.claim_edits(5)
    with database.session() as session:  # another outlet joins while the pass renders
        request_story_edit(session, first, clock.now + timedelta(seconds=1))
    service.finish(request)
    [again] = service.claim_edits(5)  # still there, and due at once
    assert again.story_id == first
    service.finish(again)
    assert service.claim_edits(5) == []


def test_a_lapsed_lease_and_a_long_wait(database: Database, settings: Settings, clock: Clock) -> None:
    world = World(database, settings)
    first, _ = story_with_a_push(world, clock)
    with database.session() as session:
        request_story_edit(session, first, clock.now - STORY_EDIT_DELAY)
    service = StoryService(database, clock=clock)
    [request] = service.claim_edits(5)
    clock.advance(EDIT_LEASE)  # the process that claimed it died
    [request] = service.claim_edits(5)
    clock.advance(EDIT_MAX_WAIT)
    plan = service.plan(request, kinds=world_kinds())
    assert not plan.wait and plan.targets == []  # nothing sent yet after 10 minutes: stop waiting


def test_outlet_names() -> None:
    assert outlet_name("Kompas", "https://kompas.com/a") == "Kompas"
    assert outlet_name(None, "https://www.antaranews.com/berita/1") == "antaranews.com"
    assert outlet_name("  ", None) is None


def world_kinds() -> frozenset:  # type: ignore[type-arg]
    from bot.db.models import ChatKind

    return frozenset({ChatKind.PRIVATE, ChatKind.SUPERGROUP})


async def test_the_shell_prints_an_edited_push_as_a_new_version() -> None:
    import io

    from bot.conversation.messages import Reply
    from bot.i18n import Html
    from bot.shell import ShellPrinter, ShellTransport

    out = io.StringIO()
    transport = ShellTransport(ShellPrinter(out))
    message_id = await transport.send(1, Reply(Html("<b>Banjir</b>\n\nSource: Kompas")))
    await transport.edit(1, message_id, Reply(Html("<b>Banjir</b>\n\nSource: Kompas\nAlso reported by: Antara")))
    printed = out.getvalue()
    assert printed.index("🔔 Banjir") < printed.index("✏️ Banjir") and printed.rstrip().endswith("Also reported by: Antara")
