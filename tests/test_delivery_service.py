"""The outbox state machine on SQLite and PostgreSQL: claim, sent, retry/backoff, park, chat gone, orphans."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.db.models import Chat, ChatKind, Delivery, DeliveryStatus
from bot.services.deliveries import SHELL_CHAT_KINDS, DeliveryService, backoff_seconds
from bot.services.fanout import FanoutService
from bot.services.subscriptions import SubscriptionService

from test_fanout import BODY_EN, World

# Other stories than BODY_EN (a copy of it with a sentence added would join its story).
FLOODS_EN = ("Heavy rain flooded several districts of Jakarta overnight, the disaster agency said, and police "
             "closed two toll roads while volunteers evacuated residents from the riverbanks by boat.")
STRIKE_EN = ("Dock workers in the northern port walked out for a second week over pay, union leaders said, "
             "leaving hundreds of containers stranded and shipping companies counting the cost of delays.")


class Clock:
    """A settable clock for the service (timestamps are stored, so they must be real datetimes)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def world(database, settings: Settings) -> World:  # type: ignore[no-untyped-def]  # untyped fixture parameter
    return World(database, settings)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_service(world: World, clock: Clock, **settings_overrides: object) -> DeliveryService:
    settings = world.settings.model_copy(update=settings_overrides) if settings_overrides else world.settings
    return DeliveryService(world.db, settings, backoff_base=10.0, clock=clock)


def fan_out(world: World, chats: dict[int, str], *, body: str = BODY_EN) -> int:
    for chat_id, lang in chats.items():
        if world.chats.get(chat_id) is None:
            world.chat(chat_id, "Rusia", lang=lang)
    article = world.ingest(["Rusia"], body=body, lang="en")
    FanoutService(world.db).run_once()
    return article.article_id


def statuses(world: World) -> dict[int, DeliveryStatus]:
    with world.db.session() as session:
        return {chat: DeliveryStatus(status) for chat, status in session.execute(select(Delivery.chat_id, Delivery.status))}


def test_claim_marks_sending_one_per_chat_and_skips_excluded_chats(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    article = fan_out(world, {1: "en", 2: "id", 3: "en"})
    second = fan_out(world, {}, body=FLOODS_EN)
    claimed = service.claim_due(10, exclude_chats={3})
    assert [(c.chat_id, c.article_id, c.lang, c.attempts) for c in claimed] == [(1, article, "en", 1), (2, article, "id", 1)]
    again = service.claim_due(10)  # chats 1 and 2 have their second story due; 3 its first
    assert sorted((c.chat_id, c.article_id) for c in again) == [(1, second), (2, second), (3, article)]
    counts = service.counts()
    assert counts[DeliveryStatus.SENDING] == 5 and counts[DeliveryStatus.PENDING] == 1


def test_sent_records_message_id_once(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    fan_out(world, {1: "en"})
    [claimed] = service.claim_due(5)
    assert service.mark_sent(claimed.id, 77)
    assert not service.mark_sent(claimed.id, 78)  # no longer `sending`
    with world.db.session() as session:
        delivery = session.get(Delivery, claimed.id)
        assert (delivery.status, delivery.message_id, delivery.sent_at is not None) == (DeliveryStatus.SENT, 77, True)
    assert service.claim_due(5) == []


def test_failures_back_off_exponentially_then_park(world: World, clock: Clock) -> None:
    service = make_service(world, clock, delivery_max_attempts=3)
    fan_out(world, {1: "en"})
    waits = []
    for attempt in range(1, 4):
        [claimed] = service.claim_due(5)
        assert claimed.attempts == attempt
        outcome = service.fail(claimed.id, f"boom {attempt}")
        if outcome.next_attempt_at is not None:
            waits.append((outcome.next_attempt_at - clock.now).total_seconds())
            assert service.claim_due(5) == []  # not due yet
            clock.advance(waits[-1])
    assert waits == [10.0, 20.0]
    assert outcome.parked
    assert service.claim_due(5) == []
    [parked] = service.parked(10)
    assert (parked.chat_id, parked.attempts, parked.last_error) == (1, 3, "boom 3")
    assert service.requeue_parked() == 1 and service.claim_due(5)[0].attempts == 1


def test_retry_after_reschedules_without_using_an_attempt(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    fan_out(world, {1: "en"})
    [claimed] = service.claim_due(5)
    service.reschedule(claimed.id, 30, "retry after 30 s")
    clock.advance(29)
    assert service.claim_due(5) == []
    clock.advance(1)
    [again] = service.claim_due(5)
    assert again.attempts == 1


def test_deactivated_chat_has_its_deliveries_cancelled(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    fan_out(world, {1: "en", 2: "en"})
    fan_out(world, {}, body=STRIKE_EN)
    [first, _other] = service.claim_due(2)
    assert first.chat_id == 1
    assert world.chats.deactivate(1, "forbidden: bot was blocked by the user") == 2
    with world.db.session() as session:
        chat = session.get(Chat, 1)
        assert (chat.active, chat.deactivated_reason) == (False, "forbidden: bot was blocked by the user")
        rows = session.execute(select(Delivery.chat_id, Delivery.status).order_by(Delivery.id)).all()
    assert [(c, DeliveryStatus(s)) for c, s in rows] == [
        (1, DeliveryStatus.CANCELLED), (2, DeliveryStatus.SENDING), (1, DeliveryStatus.CANCELLED), (2, DeliveryStatus.PENDING),
    ]
    assert not service.mark_sent(first.id, 5)


def test_orphaned_sending_rows_are_requeued_at_start_or_after_their_lease(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    fan_out(world, {1: "en", 2: "en"})
    service.claim_due(1)  # chat 1 is `sending` when "the process dies"
    assert service.recover_orphans() == 0  # lease not over yet
    clock.advance(DeliveryService.__init__.__kwdefaults__["lease"].total_seconds())
    assert service.recover_orphans() == 1
    service.claim_due(5)
    assert service.recover_orphans(all_sending=True) == 2  # start-up: everything `sending` is orphaned
    assert set(statuses(world).values()) == {DeliveryStatus.PENDING}


def test_claims_are_per_transport_kind(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    world.chat(9, "Rusia", kind=ChatKind.SHELL)
    fan_out(world, {1: "en"})
    assert [c.chat_id for c in service.claim_due(5)] == [1]
    assert [c.chat_id for c in service.claim_due(5, kinds=SHELL_CHAT_KINDS)] == [9]
    assert service.recover_orphans(kinds=SHELL_CHAT_KINDS, all_sending=True) == 1
    assert statuses(world) == {1: DeliveryStatus.SENDING, 9: DeliveryStatus.PENDING}


def test_concurrent_claimers_never_get_the_same_delivery(world: World, database_url: str, clock: Clock) -> None:
    from bot.db import Database

    fan_out(world, {chat: "en" for chat in range(1, 61)})
    barrier = threading.Barrier(3)
    claimed: list[list[int]] = []

    def claimer() -> None:
        db = Database(database_url)
        try:
            service = DeliveryService(db, world.settings, clock=clock)
            barrier.wait()
            mine: list[int] = []
            while batch := service.claim_due(4):
                mine.extend(c.id for c in batch)
            claimed.append(mine)
        finally:
            db.dispose()

    threads = [threading.Thread(target=claimer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [delivery for mine in claimed for delivery in mine]
    assert len(everything) == len(set(everything)) == 60


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_seconds(n, 5, 60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_claim_tells_which_of_the_article_tags_the_chat_still_follows(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    world.chat(1, "Rusia", "Ukraina")
    world.chat(2, "Ukraina")
    article = world.ingest(["Rusia", "Ukraina"], body=BODY_EN, lang="en")
    FanoutService(world.db).run_once()
    with world.db.session() as session:
        from bot.db.models import Tag

        ids = dict(session.execute(select(Tag.name, Tag.id)).all())
    SubscriptionService(world.db).unfollow_tag(2, ids["Ukraina"])  # after the fan-out, before the send
    claimed = {c.chat_id: c for c in service.claim_due(5)}
    assert claimed[1].followed_tag_ids == {ids["Rusia"], ids["Ukraina"]} and claimed[1].article_id == article.article_id
    assert claimed[2].followed_tag_ids == frozenset()  # the push loop cancels this one
