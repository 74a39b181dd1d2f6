"""Fan-out: one pending delivery per following chat per story, exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, Chat, ChatKind, Delivery, DeliveryStatus
from bot.ingest.service import ArticleInput, IngestResult, IngestService
from bot.services.chats import ChatService
from bot.services.fanout import FanoutService
from bot.tags import TagService

from conftest import follow_tags

BODY_ID = (
    "Menteri Luar Negeri Rusia Sergei Lavrov menyatakan Moskow meminta Barat memberikan garansi "
    "keamanan yang mengikat secara hukum sebelum perundingan dilanjutkan pekan depan di Jenewa."
)
BODY_EN = (
    "The central bank raised interest rates on Thursday for the third time this year, officials "
    "said, as inflation stayed well above the target and markets fell sharply in response."
)


class World:
    """Real services on one database: chats, follows and ingested articles."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.tags = TagService(db, settings)
        self.chats = ChatService(db)
        self.ingest_service = IngestService(db, settings, self.tags)

    def chat(self, chat_id: int, *tags: str, lang: str = "en", kind: ChatKind | None = None) -> int:
        kind = kind or (ChatKind.PRIVATE if chat_id > 0 else ChatKind.SUPERGROUP)
        self.chats.ensure(chat_id, kind, title=None if chat_id > 0 else f"G{chat_id}", user_lang=lang)
        if tags:
            follow_tags(self.db, self.settings, chat_id, tags)
        return chat_id

    def ingest(
        self, tags: Sequence[str], *, body: str = BODY_ID, lang: str = "id", url: str | None = None, title: str | None = None
    ) -> IngestResult:
        return self.ingest_service.ingest(ArticleInput(body=body, title=title, url=url, tags=list(tags), lang=lang))

    def deliveries(self) -> list[tuple[int, int, DeliveryStatus]]:
        """(article_id, chat_id, status) of every delivery."""
        with self.db.session() as session:
            rows = session.execute(select(Delivery.article_id, Delivery.chat_id, Delivery.status).order_by(Delivery.id)).all()
        return [(a, c, DeliveryStatus(s)) for a, c, s in rows]


@pytest.fixture
def world(database: Database, settings: Settings) -> World:
    return World(database, settings)


def test_each_follower_gets_one_pending_delivery(world: World) -> None:
    world.chat(1, "Rusia")
    world.chat(2, "Russia", "Ukraina")  # an alias of Rusia: the same tag
    world.chat(3, "Ekonomi")
    world.chat(-100500, "Ukraina", lang="id")
    world.chat(4)  # follows nothing
    article = world.ingest(["Rusia", "Ukraina"])
    fanout = FanoutService(world.db)
    result = fanout.run_once()
    assert [(a.article_id, a.deliveries, a.langs) for a in result.articles] == [(article.article_id, 3, ("en", "id"))]
    assert sorted(world.deliveries()) == sorted(
        (article.article_id, chat, DeliveryStatus.PENDING) for chat in (1, 2, -100500)
    )
    assert fanout.run_once().articles == []  # fanned out once
    with world.db.session() as session:
        assert session.get(Article, article.article_id).fanned_out_at is not None


def test_inactive_chats_and_later_followers_get_nothing_retroactively(world: World) -> None:
    world.chat(1, "Rusia")
    world.chat(2, "Rusia")
    world.chats.deactivate(2, "blocked")
    first = world.ingest(["Rusia"])
    FanoutService(world.db).run_once()
    world.chat(3, "Rusia")  # follows after the fan-out
    second = world.ingest(["Rusia"], body=BODY_EN, lang="en")
    FanoutService(world.db).run_once()
    assert world.deliveries() == [
        (first.article_id, 1, DeliveryStatus.PENDING),
        (second.article_id, 1, DeliveryStatus.PENDING),
        (second.article_id, 3, DeliveryStatus.PENDING),
    ]


def test_a_near_duplicate_of_a_delivered_story_is_not_pushed_again(world: World) -> None:
    sample = (Path(__file__).parent / "fixtures" / "rusia-garansi-mengikat.txt").read_text("utf-8")
    world.chat(1, "Rusia")
    first = world.ingest(["Rusia"], body=sample, url="https://a.example/1")
    FanoutService(world.db).run_once()
    world.chat(2, "Rusia")
    # The same story re-published elsewhere with a small edit (linked by story_id at ingest).
    again = world.ingest(["Rusia"], body=sample + "\n\nDiperbarui pukul 10.00 WIB.", url="https://b.example/2")
    assert again.created and again.story_id == first.article_id
    FanoutService(world.db).run_once()
    assert world.deliveries() == [
        (first.article_id, 1, DeliveryStatus.PENDING),
        (again.article_id, 2, DeliveryStatus.PENDING),  # chat 2 never had this story
    ]


def test_articles_are_fanned_out_in_stored_order_and_prefetch_gets_follower_languages(world: World) -> None:
    class RecordingSummaries:
        def __init__(self) -> None:
            self.calls: list[list[tuple[int, list[str]]]] = []

        def prefetch(self, requests: Sequence[tuple[int, Sequence[str]]]) -> None:
            self.calls.append([(article_id, list(langs)) for article_id, langs in requests])

    world.chat(1, "Rusia", lang="id")
    world.chat(2, "Rusia", lang="en")
    ids = [world.ingest(["Rusia"], body=body, lang=lang).article_id for body, lang in ((BODY_ID, "id"), (BODY_EN, "en"))]
    hints = RecordingSummaries()
    result = FanoutService(world.db, hints).run_once()  # type: ignore[arg-type]  # a recording test double
    assert [item.article_id for item in result.articles] == ids
    # One hint for the round, in arrival order, so the summaries can be computed in one batch.
    assert hints.calls == [[(ids[0], ["en", "id"]), (ids[1], ["en", "id"])]]


def test_two_concurrent_fanouts_create_each_delivery_once(database_url: str, settings: Settings, tmp_path: Path) -> None:
    setup_db = Database(database_url)
    world = World(setup_db, settings)
    for chat_id in range(1, 41):
        world.chat(chat_id, "Rusia")
    bodies = [f"{BODY_EN} Item {n} " + " ".join(f"kata{n}x{i}" for i in range(30)) for n in range(8)]
    for index, body in enumerate(bodies):
        world.ingest(["Rusia"], body=body, lang="en", url=f"https://e.example/{index}")
    barrier = threading.Barrier(2)
    done: list[int] = []

    def worker() -> None:
        db = Database(database_url)  # its own engine, as another process would have
        try:
            barrier.wait()
            done.append(FanoutService(db).run_once(max_articles=100).deliveries)
        finally:
            db.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with setup_db.session() as session:
        per_pair = session.execute(
            select(Delivery.chat_id, Delivery.story_id, func.count()).group_by(Delivery.chat_id, Delivery.story_id)
        ).all()
        waiting = session.scalar(select(func.count()).select_from(Article).where(Article.fanned_out_at.is_(None)))
    setup_db.dispose()
    stories = {story for _, story, _ in per_pair}
    assert waiting == 0
    assert all(count == 1 for _, _, count in per_pair)
    assert len(per_pair) == 40 * len(stories) and sum(done) == len(per_pair)


def test_shell_and_group_chats_are_fanned_out_like_any_chat(world: World) -> None:
    world.chat(-5, "Rusia", kind=ChatKind.GROUP)
    world.chat(0, "Rusia", kind=ChatKind.SHELL)
    article = world.ingest(["Rusia"])
    FanoutService(world.db).run_once()
    with world.db.session() as session:
        kinds = session.execute(
            select(Chat.kind)
            .join(Delivery, Delivery.chat_id == Chat.id)
            .where(Delivery.article_id == article.article_id)
            .order_by(Chat.id)
        ).scalars().all()
    assert [ChatKind(kind) for kind in kinds] == [ChatKind.GROUP, ChatKind.SHELL]


def test_articles_published_long_ago_are_stored_but_not_pushed(world: World) -> None:
    """A newly added feed's backlog (or an old page) must not flood followers."""
    from datetime import UTC, datetime, timedelta

    from bot.ingest.service import ArticleInput

    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    world.chat(1, "Rusia")
    fresh = world.ingest_service.ingest(ArticleInput(body=BODY_ID, tags=["Rusia"], lang="id",
                                                     published_at=now - timedelta(hours=47)))
    stale = world.ingest_service.ingest(ArticleInput(body=BODY_EN, tags=["Rusia"], lang="en",
                                                     published_at=now - timedelta(hours=49)))
    result = FanoutService(world.db, max_age=timedelta(hours=48), clock=lambda: now).run_once()
    assert [(a.article_id, a.deliveries, a.stale) for a in result.articles] == [
        (fresh.article_id, 1, False), (stale.article_id, 0, True)]
    assert world.deliveries() == [(fresh.article_id, 1, DeliveryStatus.PENDING)]
    assert FanoutService(world.db, max_age=timedelta(hours=48), clock=lambda: now).run_once().articles == []


def test_large_fan_outs_commit_in_chunks_and_a_crash_between_them_is_completed_once(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.services.fanout as fanout_module

    monkeypatch.setattr(fanout_module, "FANOUT_CHUNK", 3)
    for chat_id in range(1, 11):
        world.chat(chat_id, "Rusia", lang="id" if chat_id % 2 else "en")
    article = world.ingest(["Rusia"]).article_id
    fanout = FanoutService(world.db)
    real_insert = FanoutService._insert_chunk
    calls = 0

    def crash_in_the_third_chunk(self: FanoutService, *args: object, **kwargs: object) -> set[int]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("killed mid-way")
        return real_insert(self, *args, **kwargs)  # type: ignore[arg-type]  # forwarded as received

    monkeypatch.setattr(FanoutService, "_insert_chunk", crash_in_the_third_chunk)
    with pytest.raises(RuntimeError, match="killed mid-way"):
        fanout.run_once()
    # Two chunks are committed (their pushes may already go out); the article is not marked done.
    assert len(world.deliveries()) == 6
    with world.db.session() as session:
        assert session.scalar(select(Article.fanned_out_at).where(Article.id == article)) is None
    monkeypatch.setattr(FanoutService, "_insert_chunk", real_insert)
    result = fanout.run_once()
    assert [(item.article_id, item.deliveries, item.langs) for item in result.articles] == [(article, 4, ("en", "id"))]
    assert sorted(chat for _, chat, _ in world.deliveries()) == list(range(1, 11))  # each chat once
    assert fanout.run_once().articles == []
    with world.db.session() as session:
        assert session.scalar(select(Article.fanned_out_at).where(Article.id == article)) is not None
