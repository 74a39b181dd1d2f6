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


# --- fairness between fan-outs (issue 12) --------------------------------------------------------

OLD_FANOUT_CHATS = range(1, 301)  # a big fan-out stored first
NEW_STORY_CHATS = range(1001, 1006)  # a small story stored after it


def big_then_small(world: World, *, also_following_both: tuple[int, ...] = ()) -> tuple[int, int]:
    """300 chats get an old story (#Rusia), then 5 other chats (and `also_following_both`) a newer
    one (#Banjir); returns the two article ids."""
    for chat_id in OLD_FANOUT_CHATS:
        world.chat(chat_id, "Rusia", *(("Banjir",) if chat_id in also_following_both else ()))
    old = world.ingest(["Rusia"], body=BODY_EN, lang="en").article_id
    FanoutService(world.db).run_once()
    for chat_id in NEW_STORY_CHATS:
        world.chat(chat_id, "Banjir")
    new = world.ingest(["Banjir"], body=FLOODS_EN, lang="en").article_id
    FanoutService(world.db).run_once()
    return old, new


def claim_until_empty(service: DeliveryService, limit: int) -> list[list[tuple[int, int, int]]]:
    """Claims as the push loop does (the previous claim's chats still in flight), each claimed
    delivery then sent; every claim's (delivery id, chat id, article id)."""
    claims: list[list[tuple[int, int, int]]] = []
    in_flight: set[int] = set()
    for _ in range(1000):  # bounded: far more than the deliveries need
        claimed = service.claim_due(limit, exclude_chats=in_flight)
        if not claimed and not in_flight:
            return claims
        claims.append([(c.id, c.chat_id, c.article_id) for c in claimed])
        for delivery in claimed:
            assert service.mark_sent(delivery.id, 1)
        in_flight = {c.chat_id for c in claimed}
    raise AssertionError("deliveries still due after 1000 claims")


def test_a_small_new_story_goes_out_in_the_first_claim_beside_a_big_older_fan_out(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    old, new = big_then_small(world)
    first = service.claim_due(20)
    assert sorted(c.chat_id for c in first if c.article_id == new) == list(NEW_STORY_CHATS)
    # Half the claim is the big fan-out's oldest deliveries (it keeps going meanwhile); the newest
    # lane, done with the new story, went on from the big fan-out's newest end.
    assert sorted(c.chat_id for c in first if c.article_id == old) == [*range(1, 11), *range(296, 301)]
    assert len({c.chat_id for c in first}) == len(first) == 20


def test_a_burst_of_new_stories_for_the_same_readers_starts_with_its_first_story(world: World, clock: Clock) -> None:
    """Several new stories for the same few readers after a big fan-out: the newest lane meets the
    burst's last stories, and serves each of those readers its oldest waiting one."""
    service = make_service(world, clock)
    old, first_new = big_then_small(world)
    # More stories than the newest lane's window holds rows for these readers (claim_due(20): 20).
    bodies = [" ".join(f"story{number}word{word}" for word in range(80)) + "." for number in range(6)]
    later = [world.ingest(["Banjir"], body=body, lang="en").article_id for body in bodies]
    FanoutService(world.db).run_once()
    first = service.claim_due(20)
    assert sorted(c.chat_id for c in first if c.article_id == first_new) == list(NEW_STORY_CHATS)
    assert not [c for c in first if c.article_id in later]  # each reader's stories in order
    received: dict[int, list[int]] = {}
    for claim in [[(c.id, c.chat_id, c.article_id) for c in first], *claim_until_empty(service, 20)]:
        for _id, chat_id, article_id in claim:
            received.setdefault(chat_id, []).append(article_id)
    assert all(received[chat_id] == [first_new, *later] for chat_id in NEW_STORY_CHATS)
    assert old not in received[NEW_STORY_CHATS[0]]


def test_a_chat_gets_the_older_story_first_even_when_the_newer_one_is_in_the_newest_lane(
    world: World, clock: Clock
) -> None:
    service = make_service(world, clock)
    old, new = big_then_small(world, also_following_both=(300,))  # the old fan-out's last chat
    first = service.claim_due(20)
    assert sorted(c.chat_id for c in first if c.article_id == new) == list(NEW_STORY_CHATS)  # not chat 300
    received: dict[int, list[int]] = {}
    for claim in [[(c.id, c.chat_id, c.article_id) for c in first], *claim_until_empty(service, 20)]:
        for _id, chat_id, article_id in claim:
            received.setdefault(chat_id, []).append(article_id)
    assert received[300] == [old, new]


def test_every_delivery_is_claimed_exactly_once_and_each_chat_in_creation_order(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    big_then_small(world, also_following_both=(3, 150, 299))
    world.ingest(["Rusia"], body=STRIKE_EN, lang="en")  # a third story, for every #Rusia chat
    FanoutService(world.db).run_once()
    with world.db.session() as session:
        everything = {delivery_id: chat_id for delivery_id, chat_id in session.execute(select(Delivery.id, Delivery.chat_id))}
    claims = claim_until_empty(service, 20)
    claimed = [delivery_id for claim in claims for delivery_id, _chat, _article in claim]
    assert sorted(claimed) == sorted(everything) and len(everything) == 300 * 2 + 5 + 3
    for claim in claims:
        assert len({chat_id for _id, chat_id, _article in claim}) == len(claim)  # one per chat per claim
    by_chat: dict[int, list[int]] = {}
    for delivery_id in claimed:
        by_chat.setdefault(everything[delivery_id], []).append(delivery_id)
    assert all(ids == sorted(ids) for ids in by_chat.values())  # each chat's pushes in creation order
    assert set(statuses(world).values()) == {DeliveryStatus.SENT}


def test_due_retries_still_come_before_both_lanes(world: World, clock: Clock) -> None:
    service = make_service(world, clock)
    big_then_small(world)
    [failed] = service.claim_due(1)
    service.fail(failed.id, "boom")
    clock.advance(10)
    first = service.claim_due(20)
    assert first[0].id == failed.id and first[0].attempts == 2
