"""Private user-submitted articles (issue 13): never pushed, visible only to the submitter,
made public (and pushed) when a public source brings the same article. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Article, ChatKind, Delivery
from bot.ingest.service import ArticleInput, IngestResult, IngestService
from bot.services.articles import ArticleQueries
from bot.services.chats import ChatService
from bot.services.fanout import FanoutService
from bot.tags import TagService

from conftest import follow_tags

BODY = (
    "Menteri Luar Negeri Rusia Sergei Lavrov menyatakan Moskow meminta Barat memberikan garansi "
    "keamanan yang mengikat secara hukum sebelum perundingan dilanjutkan pekan depan di Jenewa."
)
OTHER = (
    "The central bank raised interest rates on Thursday for the third time this year, officials "
    "said, as inflation stayed well above the target and markets fell sharply in response."
)
THIRD = (
    "Heavy rain flooded dozens of villages in the river valley overnight, forcing thousands of families "
    "to leave their homes while rescue teams used boats to reach the elderly and the sick."
)
SUBMITTER = 501
STRANGER = 502
FOLLOWER = 503


class RecordingSummaries:
    def __init__(self) -> None:
        self.calls: list[tuple[int, list[str]]] = []

    def prefetch(self, requests: Sequence[tuple[int, Sequence[str]]]) -> None:
        self.calls.extend((article_id, list(langs)) for article_id, langs in requests)


class World:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.tags = TagService(db, settings)
        self.chats = ChatService(db)
        self.service = IngestService(db, settings, self.tags)
        self.queries = ArticleQueries(db, self.tags)
        self.summaries = RecordingSummaries()
        self.fanout = FanoutService(db, self.summaries)  # type: ignore[arg-type]  # a recording test double
        for chat_id in (SUBMITTER, STRANGER, FOLLOWER):
            self.chats.ensure(chat_id, ChatKind.PRIVATE, title=None, user_lang="en")
        follow_tags(db, settings, FOLLOWER, ["Rusia"])

    def ingest(
        self, body: str = BODY, *, by: int | None = None, tags: Sequence[str] = ("Rusia",), **fields: object
    ) -> IngestResult:
        # arg-type: **fields (typed object) fill ArticleInput's typed fields.
        return self.service.ingest(ArticleInput(body=body, tags=list(tags), lang="id", submitted_by_chat_id=by, **fields))  # type: ignore[arg-type]

    def article(self, article_id: int) -> Article:
        with self.db.session() as session:
            article = session.get(Article, article_id)
            assert article is not None
            _ = article.tags
            return article

    def deliveries(self) -> list[tuple[int, int]]:
        with self.db.session() as session:
            # misc: mypy sees tuple(row) as tuple[int, ...], not the pair the rows are.
            return [tuple(row) for row in session.execute(select(Delivery.article_id, Delivery.chat_id).order_by(Delivery.id))]  # type: ignore[misc]


@pytest.fixture
def world(database: Database, settings: Settings) -> World:
    return World(database, settings)


def test_private_article_is_stored_for_its_submitter(world: World) -> None:
    result = world.ingest(by=SUBMITTER)
    assert result.created and result.private and result.submitted_by_chat_id == SUBMITTER
    assert world.article(result.article_id).submitted_by_chat_id == SUBMITTER
    public = world.ingest(OTHER)
    assert not public.private and world.article(public.article_id).submitted_by_chat_id is None


def test_follower_of_the_tag_gets_no_delivery_for_a_private_article(world: World) -> None:
    private = world.ingest(by=SUBMITTER)
    done = world.fanout.run_once()
    assert [(item.article_id, item.deliveries, item.private) for item in done.articles] == [(private.article_id, 0, True)]
    assert world.deliveries() == []
    assert world.summaries.calls == []  # no summary prefetch for it either
    assert world.article(private.article_id).fanned_out_at is not None  # not reconsidered
    assert world.fanout.run_once().articles == []


@pytest.mark.parametrize("same", ["url", "guid", "text"])
def test_public_reingest_makes_a_private_article_public_and_pushed(world: World, same: str) -> None:
    private = world.ingest(by=SUBMITTER, url="https://news.example/a", guid="g-1", tags=["Rusia"])
    world.fanout.run_once()
    assert world.deliveries() == []
    fields: dict[str, object] = {"url": "https://news.example/a?utm_source=tg"} if same == "url" else {}
    if same == "guid":
        fields["guid"] = "g-1"
    body = BODY if same == "text" else OTHER
    public = world.ingest(body, tags=["Ekonomi"], **fields)
    assert public.article_id == private.article_id and not public.created and not public.private
    article = world.article(private.article_id)
    assert article.submitted_by_chat_id is None and article.fanned_out_at is None
    assert sorted(tag.name for tag in article.tags) == ["Ekonomi", "Rusia"]  # tags merged as for any duplicate
    world.fanout.run_once()
    assert world.deliveries() == [(private.article_id, FOLLOWER)]
    assert world.summaries.calls == [(private.article_id, ["en"])]
    assert [a.id for a in world.queries.latest(10, viewer_chat_id=STRANGER)] == [private.article_id]


def test_private_reingest_of_a_public_article_leaves_it_unchanged(world: World) -> None:
    public = world.ingest(url="https://news.example/p", tags=["Rusia"])
    world.fanout.run_once()
    fanned = world.article(public.article_id).fanned_out_at
    again = world.ingest(by=SUBMITTER, url="https://news.example/p", tags=["Spam Tag"])
    assert again.article_id == public.article_id and not again.created and not again.private
    article = world.article(public.article_id)
    assert article.submitted_by_chat_id is None and article.fanned_out_at == fanned
    assert [tag.name for tag in article.tags] == ["Rusia"]  # a user cannot tag what everyone sees
    assert world.fanout.run_once().articles == []
    assert world.deliveries() == [(public.article_id, FOLLOWER)]


def test_private_reingest_of_another_chats_private_article_keeps_it_theirs(world: World) -> None:
    first = world.ingest(by=SUBMITTER, tags=["Rusia"])
    again = world.ingest(by=STRANGER, tags=["Other"])
    assert again.article_id == first.article_id and not again.created
    assert again.submitted_by_chat_id == SUBMITTER  # still private, still the first chat's
    article = world.article(first.article_id)
    assert article.submitted_by_chat_id == SUBMITTER and [t.name for t in article.tags] == ["Rusia"]
    own = world.ingest(by=SUBMITTER, tags=["Mine"])
    assert own.article_id == first.article_id and own.tags == ["Mine", "Rusia"]
    world.fanout.run_once()
    assert world.deliveries() == []


def test_queries_hide_other_chats_private_articles(world: World) -> None:
    public = world.ingest(OTHER, tags=["Rusia"], title="Public rates")
    private = world.ingest(BODY, by=SUBMITTER, tags=["Rusia", "Secret Topic"], title="Private Lavrov")
    tag = world.queries.find_tag("Rusia")
    assert tag is not None

    def ids(refs: Sequence[object]) -> list[int]:
        return [ref.id for ref in refs]  # type: ignore[attr-defined]  # refs of several ArticleRef-like types

    assert ids(world.queries.latest(10)) == [public.article_id]
    assert ids(world.queries.latest(10, viewer_chat_id=STRANGER)) == [public.article_id]
    assert ids(world.queries.latest(10, viewer_chat_id=SUBMITTER)) == [private.article_id, public.article_id]
    assert ids(world.queries.latest(10, tag.id, viewer_chat_id=STRANGER)) == [public.article_id]
    assert ids(world.queries.latest(10, tag.id, viewer_chat_id=SUBMITTER)) == [private.article_id, public.article_id]
    assert ids(world.queries.search("lavrov", 10)) == []
    assert ids(world.queries.search("lavrov", 10, viewer_chat_id=STRANGER)) == []
    assert ids(world.queries.search("lavrov", 10, viewer_chat_id=SUBMITTER)) == [private.article_id]
    # /summary <id>: another chat's private article does not exist for the viewer.
    assert world.queries.get(private.article_id, viewer_chat_id=STRANGER) is None
    assert world.queries.get(private.article_id, viewer_chat_id=SUBMITTER) is not None
    assert world.queries.get(public.article_id, viewer_chat_id=STRANGER) is not None
    assert world.queries.get(private.article_id) is not None  # internal use: no filter

    def popular(viewer: int | None) -> dict[str, int]:
        return {ref.name: n for ref, n in world.queries.popular_tags(10, viewer_chat_id=viewer)}

    assert popular(None) == {"Rusia": 1} == popular(STRANGER)
    assert popular(SUBMITTER) == {"Rusia": 2, "Secret Topic": 1}


def test_a_public_near_duplicate_never_joins_a_private_story(world: World, settings: Settings) -> None:
    from pathlib import Path

    sample = (Path(__file__).parent / "fixtures" / "rusia-garansi-mengikat.txt").read_text("utf-8")
    private = world.ingest(sample, by=SUBMITTER, url="https://user.example/copy")
    # The feed brings the story re-published with a small edit: linked by simhash if it could see it.
    public = world.ingest(sample + "\n\nDiperbarui pukul 10.00 WIB.", url="https://news.example/story")
    assert public.created and public.story_id == public.article_id  # its own story, so it is listed
    assert [a.id for a in world.queries.latest(10, viewer_chat_id=STRANGER)] == [public.article_id]
    # The submitter's own near-copies still link to what they can see.
    mine = world.ingest(sample + "\n\nCatatan saya.", by=SUBMITTER, url="https://user.example/copy2")
    assert mine.story_id in {private.article_id, public.article_id}
    world.fanout.run_once(max_articles=10)
    assert world.deliveries() == [(public.article_id, FOLLOWER)]


@pytest.mark.parametrize("query", ["Россия", "россия", "РОССИЯ", "rOsSiYa", "ÜBER", "straße"])
def test_search_is_case_insensitive_beyond_ascii(world: World, query: str) -> None:
    found = world.ingest(
        "РОССИЯ и Украина: переговоры о гарантиях безопасности продолжатся на следующей неделе в Женеве, "
        "сообщили дипломаты. Rossiya über alles? Nein. Die STRASSE ist gesperrt, sagte die Polizei am Abend.",
        tags=["Rusia"], title="Россия и переговоры",
    )
    world.ingest(OTHER)
    expected = [found.article_id]  # folded ("strasse") and lower-cased ("straße") spellings are both looked for
    assert [ref.id for ref in world.queries.search(query, 10)] == expected
    assert [ref.id for ref in world.queries.search(f"{query} переговоры", 10)] == expected


def test_search_function_works_on_connections_pooled_before_the_queries(database: Database, settings: Settings) -> None:
    # Warm the pool first: the SQLite function must be registered on existing connections too.
    with database.session() as session:
        session.execute(select(1))
    world = World(database, settings)
    hit = world.ingest(THIRD + " ДОЖДЬ", title="Наводнение")
    assert [ref.id for ref in world.queries.search("дождь наводнение", 5)] == [hit.article_id]
    assert [ref.id for ref in ArticleQueries(database, world.tags).search("НАВОДНЕНИЕ", 5)] == [hit.article_id]
