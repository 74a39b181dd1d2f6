"""The plain services behind the conversation, on SQLite and PostgreSQL."""

from __future__ import annotations

from bot.config import Settings
from bot.conversation.incoming import parse_command
from bot.db import Database
from bot.db.models import Article, Chat, ChatKind, Delivery, DeliveryStatus
from bot.ingest.service import ArticleInput, IngestService
from bot.services.abuse import CommandRateLimiter, RateVerdict
from bot.services.articles import ArticleQueries
from bot.services.chats import ChatService
from bot.services.follows import FollowService
from bot.services.stats import collect_stats
from bot.services.subscriptions import SubscriptionService, TagRef, split_tag_args
from bot.tags import TagService

from conftest import follow_tags

BODY = (
    "The city council approved a new budget for public transport on Tuesday evening after a long debate. "
    "Bus fares will stay the same next year, while three new tram lines are planned for the northern districts. "
    "Opposition members said the plan lacked funding details and asked for an independent review of 100% of costs."
)


def test_rate_limiter_window_warns_once_and_recovers() -> None:
    now = [0.0]
    limiter = CommandRateLimiter(2, clock=lambda: now[0])
    assert [limiter.check(1) for _ in range(4)] == [RateVerdict.ALLOW, RateVerdict.ALLOW, RateVerdict.WARN, RateVerdict.DROP]
    assert limiter.check(2) is RateVerdict.ALLOW
    now[0] = 59.0
    assert limiter.check(1) is RateVerdict.DROP
    now[0] = 60.0  # the first two commands left the window
    assert limiter.check(1) is RateVerdict.ALLOW
    assert limiter.check(1) is RateVerdict.ALLOW
    assert limiter.check(1) is RateVerdict.WARN


def test_split_tag_args_and_parse_command() -> None:
    assert split_tag_args("Rusia  Ekonomi rusia") == ["Rusia", "Ekonomi"]
    assert split_tag_args("Amerika Serikat, #Ekonomi,, ") == ["Amerika Serikat", "#Ekonomi"]
    assert len(split_tag_args(" ".join(f"t{i}" for i in range(100)))) == 20
    command = parse_command("/Follow@newsbot_test_bot Rusia Ekonomi")
    assert command is not None and (command.command, command.args) == ("follow", "Rusia Ekonomi")
    command = parse_command("/summary\n12")
    assert command is not None and (command.command, command.args) == ("summary", "12")
    assert parse_command("hello /follow") is None and parse_command("/") is None


def test_chats_default_language_reactivation_and_channel_source(database: Database) -> None:
    chats = ChatService(database)
    assert chats.ensure(5, ChatKind.PRIVATE, "Ana", "id-ID").lang == "id"
    assert chats.ensure(6, ChatKind.PRIVATE, "Bo", "de").lang == "en"
    chats.set_lang(6, "id")
    chats.deactivate(6, "forbidden: bot was blocked by the user")
    assert chats.get(6) is not None and chats.get(6).active is False  # type: ignore[union-attr]  # not None (checked first)
    again = chats.ensure(6, ChatKind.PRIVATE, "Bo", "en")
    assert again.active is True and again.lang == "id"  # writing again re-activates, keeps /lang
    first = chats.channel_source(-1001, "Kabar")
    assert chats.channel_source(-1001, "Kabar Dunia") == first
    assert chats.get(404) is None


def test_subscriptions_list_count_and_unfollow_by_id(database: Database, settings: Settings) -> None:
    chats = ChatService(database)
    chats.ensure(7, ChatKind.PRIVATE)
    subscriptions = SubscriptionService(database)
    rusia_id, _ekonomi_id = follow_tags(database, settings, 7, ["Russia", "Ekonomi"])  # an alias of Rusia
    assert [t.name for t in subscriptions.following(7)] == ["Ekonomi", "Rusia"]
    assert subscriptions.count(7) == 2
    rusia = TagRef(rusia_id, "Rusia")
    assert subscriptions.unfollow_tag(7, rusia.id) == rusia
    assert [t.name for t in subscriptions.following(7)] == ["Ekonomi"]
    assert subscriptions.unfollow_tag(7, 999_999) is None


def test_article_queries_story_heads_search_and_popular_tags(database: Database, settings: Settings) -> None:
    tags = TagService(database, settings)
    ingest = IngestService(database, settings, tags)
    first = ingest.ingest(ArticleInput(body=BODY, title="Budget approved", tags=["Kota"], lang="en"))
    # A re-publication of the same story with a small edit: linked, not listed twice.
    again = ingest.ingest(ArticleInput(body=BODY.replace("Tuesday", "Tuesday night"), title="Budget approved (update)",
                                       tags=["Kota", "Zeta"], lang="en"))
    assert again.story_id == first.article_id and again.article_id != first.article_id
    queries = ArticleQueries(database, tags)
    assert [a.id for a in queries.latest(10)] == [first.article_id]
    # Wildcard and operator characters are gaps between words, never operators (full-text search).
    assert {a.id for a in queries.search("100%", 10)} == {again.article_id, first.article_id}
    assert {a.id for a in queries.search("100_*", 10)} == {again.article_id, first.article_id}
    assert queries.search("%_*", 10) == []
    assert {a.id for a in queries.search("TRAM lines", 10)} == {again.article_id, first.article_id}  # ranked, any case
    popular = [(tag.name, count) for tag, count in queries.popular_tags(10)]
    assert popular == [("Kota", 2), ("Zeta", 1)]
    assert queries.find_tag("kota") is not None and queries.find_tag("<bad>") is None


def test_stats_counts_every_delivery_status(database: Database, settings: Settings) -> None:
    ingest = IngestService(database, settings, TagService(database, settings))
    article = ingest.ingest(ArticleInput(body=BODY, title="Budget approved", tags=["Kota"], lang="en"))
    with database.session() as session:
        session.add_all([Chat(id=1, kind=ChatKind.PRIVATE, lang="en"), Chat(id=2, kind=ChatKind.GROUP, active=False)])
        session.flush()
        session.add_all([
            Delivery(article_id=article.article_id, story_id=article.story_id, chat_id=1, status=DeliveryStatus.SENT),
            Delivery(article_id=article.article_id, story_id=article.story_id, chat_id=2, status=DeliveryStatus.PARKED),
        ])
    stats = collect_stats(database)
    assert (stats.articles, stats.chats, stats.active_chats, stats.subscriptions) == (1, 2, 1, 0)
    assert stats.deliveries == {"pending": 0, "sending": 0, "sent": 1, "retry": 0, "parked": 1, "cancelled": 0}
    assert stats.to_dict()["deliveries"] == stats.deliveries
    with database.session() as session:
        assert session.get(Article, article.article_id) is not None


def test_chat_migration_moves_follows_and_language(database: Database, settings: Settings) -> None:
    tags = TagService(database, settings)
    chats = ChatService(database)
    subscriptions = SubscriptionService(database)
    chats.ensure(-42, ChatKind.GROUP, "Readers", "id")
    follow_tags(database, settings, -42, ["Rusia", "Ekonomi"])
    chats.ensure(-10042, ChatKind.SUPERGROUP, "Readers", "en")
    follow_tags(database, settings, -10042, ["Rusia"])  # already there: not duplicated
    follows = FollowService(database, settings, tags, subscriptions)
    follows.follow(-42, follows.parse("gandum -iklan, kedelai").follows)
    follows.follow(-10042, follows.parse("kedelai").follows)  # already there: not duplicated
    chats.migrate(-42, -10042)
    assert [t.name for t in subscriptions.following(-10042)] == ["Ekonomi", "Rusia"]
    assert subscriptions.following(-42) == []
    assert [ref.text for ref in follows.of_chat(-10042)] == ["Ekonomi", "Rusia", "gandum -iklan", "kedelai"]
    assert follows.of_chat(-42) == []
    assert chats.get(-42).active is False  # type: ignore[union-attr]  # the chat exists
    chats.migrate(-7, -1007)  # an unknown chat: nothing to move
    assert chats.get(-1007) is None


def test_fit_lines_keeps_whole_lines_within_telegram_length() -> None:
    from bot.conversation.messages import fit_lines

    lines = ["header", "a &amp; b" * 300, "😀" * 1500, "tail"]
    kept = fit_lines(lines, limit=4096)
    assert kept == ["header", "a &amp; b" * 300]
    assert fit_lines(["😀" * 2048]) == ["😀" * 2048] and fit_lines(["😀" * 2049]) == []
