"""The conversation layer shared by Telegram and the shell, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.config import Settings
from bot.context import AppContext
from bot.conversation.conversation import ButtonPress, Conversation
from bot.conversation.incoming import Incoming, Post
from bot.conversation.messages import CallbackResult, Reply
from bot.db import Database
from bot.db.models import ChatKind
from bot.i18n import I18n
from bot.ingest.service import ArticleInput
from bot.wiring import build_services

from conftest import following_text, help_text, make_settings
from test_i18n import html_errors

EN_BODY = (
    "Russia said on Monday it would demand binding security guarantees before any ceasefire talks. "
    "Officials in Moscow repeated that the proposal must be written into a treaty signed by all sides. "
    "Diplomats in Europe said the demand would make an agreement harder to reach this year."
)
ID_BODY = (
    "Pemerintah Indonesia mengumumkan anggaran baru untuk transportasi umum pada hari Selasa malam. "
    "Tarif bus tidak akan naik tahun depan, sementara tiga jalur trem baru direncanakan di utara kota. "
    "Anggota oposisi mengatakan rencana itu kurang rinci dan meminta tinjauan biaya yang independen."
)
USER = 1001


def make_conversation(database: Database, settings: Settings, i18n: I18n) -> Conversation:
    """The real services, SummaryService included (extractive: SUMMARY_MODEL=none in tests)."""
    return Conversation(build_services(AppContext(settings=settings, db=database), i18n))


@pytest.fixture
def conversation(database: Database, settings: Settings, i18n: I18n) -> Conversation:
    return make_conversation(database, settings, i18n)


def say(conversation: Conversation, text: str, *, chat_id: int = USER, kind: ChatKind = ChatKind.PRIVATE,
        **kwargs: object) -> list[Reply]:
    replies = conversation.handle(Incoming(chat_id=chat_id, chat_kind=kind, text=text, user_id=USER, **kwargs))  # type: ignore[arg-type]  # **kwargs: object fill typed fields
    for reply in replies:
        assert html_errors(reply.text) == [], reply.text
        assert len(reply.text) <= 4096
    return replies


def press(conversation: Conversation, data: str, *, chat_id: int = USER, kind: ChatKind = ChatKind.PRIVATE) -> CallbackResult:
    """Press an inline button in a chat."""
    return conversation.handle_callback(ButtonPress(chat_id, kind, data, user_id=USER))


def texts(replies: list[Reply]) -> list[str]:
    return [str(reply.text) for reply in replies]


def store(conversation: Conversation, body: str, title: str, tags: list[str], lang: str, url: str | None = None) -> int:
    result = conversation.s.ingest.ingest(ArticleInput(body=body, title=title, tags=tags, lang=lang, url=url))
    return result.article_id


def test_start_help_and_unknown_command(conversation: Conversation, i18n: I18n) -> None:
    assert texts(say(conversation, "/start")) == [i18n.t("en", "start")]
    assert texts(say(conversation, "/help@newsbot_test_bot")) == [help_text(i18n, "en")]
    unknown = i18n.t("en", "unknown", help=i18n.t("en", "help"))
    assert texts(say(conversation, "/frobnicate now")) == [unknown]
    # Plain text is not an unknown command: a short hint, not the whole help.
    assert texts(say(conversation, "hello there")) == [i18n.t("en", "hint.plain_text")]
    # In groups, plain talk is not for the bot.
    assert say(conversation, "hello group", chat_id=-500, kind=ChatKind.GROUP) == []


def test_follow_alias_following_unfollow(conversation: Conversation, i18n: I18n) -> None:
    assert texts(say(conversation, "/follow Rusia")) == [i18n.t("en", "follow.added", tags="Rusia")]
    # "Russia" is an alias of the same tag.
    assert texts(say(conversation, "/follow Russia")) == [i18n.t("en", "follow.already", tags="Rusia")]
    # A known multi-word tag is one tag; a word that is no tag is a keyword.
    assert texts(say(conversation, "/follow Amerika Serikat, #Ekonomi Gandum")) == [
        i18n.t("en", "follow.added", tags="Amerika Serikat, Ekonomi") + "\n" + i18n.t("en", "follow.added_rules", rules="gandum")
    ]
    assert texts(say(conversation, "/following")) == [
        following_text(i18n, "en", [("Amerika Serikat", 0), ("Ekonomi", 0), ("Rusia", 0), ("gandum", 0)])
    ]
    assert texts(say(conversation, "/unfollow russia Nothing")) == [
        i18n.t("en", "unfollow.removed", tags="Rusia") + "\n" + i18n.t("en", "unfollow.not_following", tags="nothing")
    ]
    assert texts(say(conversation, "/follow")) == [i18n.t("en", "follow.usage")]


def test_follow_rejects_bad_tags_and_caps_follows(database: Database, tmp_path: Path, i18n: I18n) -> None:
    settings = make_settings(database.url, tmp_path, max_follows_per_chat=2)
    conversation = make_conversation(database, settings, i18n)
    long_word = "x" * 65
    replies = texts(say(conversation, f"/follow <>, {long_word}, 😀"))
    assert replies == [i18n.t("en", "follow.nothing") + "\n" + i18n.t(
        "en", "follow.dropped.invalid", items=f"<>, {long_word[:59]}…, 😀", max=64)]
    assert "&lt;&gt;" in replies[0]
    assert texts(say(conversation, "/follow A1 B2 C3")) == [
        i18n.t("en", "follow.added_rules", rules="a1; b2") + "\n" + i18n.t("en", "follow.limit", max=2, tags="c3")
    ]


def test_language_default_and_lang_command(conversation: Conversation, i18n: I18n) -> None:
    # A new chat takes the user's Telegram language when it is one of ours.
    assert texts(say(conversation, "/start", chat_id=2002, user_lang="id")) == [i18n.t("id", "start")]
    assert texts(say(conversation, "/start", chat_id=2003, user_lang="fr")) == [i18n.t("en", "start")]
    assert texts(say(conversation, "/lang id")) == [i18n.t("id", "lang.done")]
    assert texts(say(conversation, "/follow Rusia")) == [i18n.t("id", "follow.added", tags="Rusia")]
    assert texts(say(conversation, "/lang xx")) == [i18n.t("id", "lang.unsupported", code="xx", langs="en, id")]
    assert texts(say(conversation, "/lang")) == [i18n.t("id", "lang.usage", lang="id")]
    [settings] = texts(say(conversation, "/settings"))
    assert settings.startswith(i18n.t("id", "settings", lang="Bahasa Indonesia", count=1, max=50, kind="private")
                               + "\nZona waktu: Asia/Jakarta (sekarang ")
    assert texts(say(conversation, "/lang en")) == [i18n.t("en", "lang.done")]


def test_group_changes_need_a_group_admin(conversation: Conversation, i18n: I18n) -> None:
    group = -100500
    refused = say(conversation, "/follow Rusia", chat_id=group, kind=ChatKind.SUPERGROUP, chat_admin=False)
    assert texts(refused) == [i18n.t("en", "group_admin_only")]
    assert texts(say(conversation, "/lang id", chat_id=group, kind=ChatKind.SUPERGROUP, chat_admin=False)) == [
        i18n.t("en", "group_admin_only")
    ]
    # Reading is open to every member; changing works for admins.
    assert texts(say(conversation, "/following", chat_id=group, kind=ChatKind.SUPERGROUP, chat_admin=False)) == [
        i18n.t("en", "following.none")
    ]
    assert texts(say(conversation, "/follow Rusia", chat_id=group, kind=ChatKind.SUPERGROUP, chat_admin=True)) == [
        i18n.t("en", "follow.added", tags="Rusia")
    ]


def test_summary_translate_original_and_unfollow_buttons(conversation: Conversation, i18n: I18n) -> None:
    article_id = store(conversation, EN_BODY, "Russia demands guarantees", ["Russia"], "en", "https://example.com/r?a=1&b=2")
    say(conversation, "/follow Rusia")
    [reply] = say(conversation, f"/summary {article_id}")
    assert reply.text.startswith('<b><a href="https://example.com/r?a=1&amp;b=2">Russia demands guarantees</a></b>')
    assert "Russia said on Monday" in reply.text
    # An extract of the article's first sentences is labelled as such, never as a machine summary.
    assert i18n.t("en", "summary.key_sentences") in reply.text
    assert i18n.t("en", "summary.machine_made") not in reply.text
    data = [button.callback_data for row in reply.buttons for button in row]
    tag_id = conversation.s.articles.find_tag("Rusia").id  # type: ignore[union-attr]  # the tag exists: the article has it
    # Translation is off in tests (TRANSLATION_MODEL=none): no translate button is offered...
    assert data == [f"unf:{tag_id}:{article_id}"]
    # ...and a stale one says translation is unavailable instead of showing the same text again.
    result = press(conversation, f"tr:{article_id}:id")
    assert result.edit is None
    assert result.notice == i18n.plain("en", "translate.unavailable", lang=i18n.plain("en", "push.lang.id"))
    result = press(conversation, f"orig:{article_id}")
    assert result.edit is not None and result.edit.text == reply.text
    result = press(conversation, f"unf:{tag_id}")
    assert result.notice == i18n.plain("en", "unfollow.button_done", tag="Rusia")
    assert texts(say(conversation, "/following")) == [i18n.t("en", "following.none")]
    # Bad input to /summary gets one clear line.
    assert texts(say(conversation, "/summary 999999")) == [i18n.t("en", "summary.not_found", id=999999)]
    assert texts(say(conversation, "/summary what is this")) == [i18n.t("en", "summary.usage")]
    assert texts(say(conversation, "/summary " + "x" * 50_000)) == [
        i18n.t("en", "input.too_long", length=50_009, limit=4096)
    ]


def test_follow_offers_latest_articles(conversation: Conversation, i18n: I18n) -> None:
    first = store(conversation, EN_BODY, "Russia demands guarantees", ["Rusia"], "en")
    second = store(conversation, ID_BODY, "Anggaran transportasi", ["Rusia", "Indonesia"], "id")
    replies = say(conversation, "/follow Russia")
    assert len(replies) == 2
    assert replies[1].text == i18n.t("en", "follow.latest", tag="Rusia")
    assert [b.callback_data for row in replies[1].buttons for b in row] == [f"sum:{second}", f"sum:{first}"]
    result = press(conversation, f"sum:{second}")
    assert len(result.replies) == 1 and "Pemerintah Indonesia" in result.replies[0].text


def test_latest_search_and_tags(conversation: Conversation, i18n: I18n) -> None:
    assert texts(say(conversation, "/latest")) == [i18n.t("en", "latest.none")]
    assert texts(say(conversation, "/tags")) == [i18n.t("en", "tags.none")]
    first = store(conversation, EN_BODY, "Russia demands guarantees", ["Rusia"], "en")
    second = store(conversation, ID_BODY, "Anggaran <transportasi>", ["Rusia", "Indonesia"], "id")
    [latest] = say(conversation, "/latest")
    lines = latest.text.split("\n")
    assert lines[0] == i18n.t("en", "latest.header")
    assert lines[1] == i18n.t("en", "article.item", id=second, link=_b("Anggaran &lt;transportasi&gt;"), tags="Indonesia, Rusia")
    assert lines[2].startswith(f"#{first} ")
    [one] = say(conversation, "/latest russia 1")
    assert one.text.split("\n")[0] == i18n.t("en", "latest.header_tag", tag="Rusia")
    assert len(one.text.split("\n")) == 2
    assert texts(say(conversation, "/latest Rusia 0")) == [i18n.t("en", "latest.bad_count", max=20)]
    assert texts(say(conversation, "/latest Nowhere")) == [i18n.t("en", "latest.none_tag", tag="Nowhere")]
    [found] = say(conversation, "/search TARIF bus")
    assert found.text.split("\n")[0] == i18n.t("en", "search.header", query="TARIF bus")
    assert [line.split(" ")[0] for line in found.text.split("\n")[1:]] == [f"#{second}"]
    assert texts(say(conversation, "/search 100%_")) == [i18n.t("en", "search.none", query="100%_")]
    assert texts(say(conversation, "/tags")) == [
        "\n".join([i18n.t("en", "tags.header"), i18n.t("en", "tags.item", name="Rusia", count=2),
                   i18n.t("en", "tags.item", name="Indonesia", count=1)])
    ]


def _b(text: str) -> object:
    from bot.i18n import Html

    return Html(f"<b>{text}</b>")


def test_rate_limit_warns_once_then_ignores(database: Database, tmp_path: Path, i18n: I18n) -> None:
    conversation = make_conversation(database, make_settings(database.url, tmp_path, command_rate_limit=3), i18n)
    for _ in range(3):
        assert texts(say(conversation, "/start")) == [i18n.t("en", "start")]
    assert texts(say(conversation, "/start")) == [i18n.t("en", "slow_down", limit=3)]
    assert say(conversation, "/start") == []
    # Other chats are not affected, and the local shell is never limited.
    assert texts(say(conversation, "/start", chat_id=3003)) == [i18n.t("en", "start")]
    for _ in range(5):
        assert texts(say(conversation, "/start", chat_id=1, kind=ChatKind.SHELL)) == [i18n.t("en", "start")]


def test_admin_commands(conversation: Conversation, i18n: I18n) -> None:
    assert texts(say(conversation, "/addfeed https://example.com/feed.xml")) == [
        i18n.t("en", "admin_only", command="/addfeed")
    ]
    assert texts(say(conversation, "/stats")) == [i18n.t("en", "admin_only", command="/stats")]
    store(conversation, EN_BODY, "Russia demands guarantees", ["Rusia"], "en")
    say(conversation, "/follow Rusia")
    assert texts(say(conversation, "/stats", bot_admin=True)) == [
        i18n.t("en", "stats", articles=1, chats=1, active_chats=1, subscriptions=1, summaries=0,
               deliveries=i18n.plain("en", "stats.none"))
    ]
    help_text = texts(say(conversation, "/help", bot_admin=True))[0]
    assert i18n.t("en", "help.admin") in help_text


def test_summary_as_a_reply(conversation: Conversation, i18n: I18n) -> None:
    from bot.ingest.telegram_post import PostEntity

    article_text = "Moscow demands guarantees\n\n" + EN_BODY + " #Rusia"
    tag_offset = len(article_text) - len("#Rusia")
    post = Post(article_text, (PostEntity("hashtag", tag_offset, 6),))
    [reply] = say(conversation, "/summary", replied=post)
    assert "Russia said on Monday" in reply.text
    # An ordinary user's message is stored for this chat only: listed here, nowhere else.
    [article] = conversation.s.articles.latest(5, viewer_chat_id=USER)
    assert [tag.name for tag in article.tags] == ["Rusia"]
    assert conversation.s.articles.latest(5) == []
    # Replying to the same message again finds the stored article instead of storing it twice.
    assert texts(say(conversation, "/summary", replied=post)) == texts([reply])
    assert len(conversation.s.articles.latest(5, viewer_chat_id=USER)) == 1
    # A short message with a link to a private address: the link is refused clearly.
    [refused] = say(conversation, "/summary", replied=Post("look at this http://10.0.0.1/x"))
    assert refused.text.startswith(i18n.t("en", "summary.bad_url", reason=""))
    assert texts(say(conversation, "/summary", replied=Post("too short"))) == [
        i18n.t("en", "summary.failed", reason=i18n.t("en", "error.no_article"))
    ]
    assert texts(say(conversation, "/summary", replied=Post(""))) == [i18n.t("en", "summary.no_article")]


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory: pytest.TempPathFactory) -> str:
    """TRANSLATION_MODEL template over a tiny random Marian model en-id (built here, no download)."""
    from tinymodels import build_tiny_marian

    root = tmp_path_factory.mktemp("marian")
    build_tiny_marian(root / "marian-en-id", seed=1)
    return str(root / "marian-{src}-{tgt}")


def test_translate_and_original_buttons_with_a_real_translator(
    sqlite_database: Database, tmp_path: Path, i18n: I18n, tiny_marian: str
) -> None:
    settings = make_settings(sqlite_database.url, tmp_path, translation_model=tiny_marian, translation_num_beams=1,
                             model_precision="fp32", model_threads=1)
    conversation = make_conversation(sqlite_database, settings, i18n)
    article_id = store(conversation, EN_BODY, "Russia demands guarantees", ["Rusia"], "en")
    [original] = say(conversation, f"/summary {article_id}")
    assert "Russia said on Monday" in original.text
    buttons = [b.callback_data for row in original.buttons for b in row]
    assert buttons == [f"tr:{article_id}:id"]
    result = press(conversation, f"tr:{article_id}:id")
    assert result.edit is not None
    translated = result.edit
    # The tiny model's words are random, but the message says it is a machine translation of English.
    assert i18n.plain("en", "summary.machine_translated", src="English") in translated.text
    assert "Russia said on Monday" not in translated.text
    assert html_errors(translated.text) == []
    assert [b.callback_data for row in translated.buttons for b in row] == [f"orig:{article_id}"]
    back = press(conversation, f"orig:{article_id}")
    assert back.edit == original
    # An Indonesian chat gets the translation right away, with the way back to the original.
    say(conversation, "/lang id")
    [in_id] = say(conversation, f"/summary {article_id}")
    assert [b.callback_data for row in in_id.buttons for b in row] == [f"orig:{article_id}"]
    assert in_id.text.count("Diterjemahkan mesin dari") == 1


def test_summary_not_ready_when_workers_do_not_answer_in_time(
    sqlite_database: Database, tmp_path: Path, i18n: I18n
) -> None:
    """BROKER_URL set and no `newsbot worker` running: /summary says to ask again, it does not hang."""
    import uuid

    import redis

    queue = f"newsbot-test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(sqlite_database.url, tmp_path, broker_url="redis://127.0.0.1:6379/15",
                             job_queue=queue, summary_wait=0.3)
    conversation = make_conversation(sqlite_database, settings, i18n)
    try:
        article_id = store(conversation, EN_BODY, "Russia demands guarantees", ["Rusia"], "en")
        assert texts(say(conversation, f"/summary {article_id}")) == [i18n.t("en", "summary.not_ready")]
        assert conversation.s.summaries.status_line().endswith("1 jobs waiting")
    finally:
        conversation.s.summaries.close()  # type: ignore[attr-defined]  # the protocol has no close(); this Celery-backed service has
        redis.Redis(host="127.0.0.1", port=6379, db=15).delete(queue)


def test_huge_numbers_are_answered_not_crashed(conversation: Conversation, i18n: I18n) -> None:
    huge = "9" * 25
    assert texts(say(conversation, f"/summary {huge}")) == [i18n.t("en", "summary.not_found", id=huge)]
    assert texts(say(conversation, f"/latest Rusia {huge}")) == [i18n.t("en", "latest.bad_count", max=20)]
    assert texts(say(conversation, f"/removefeed {huge}", bot_admin=True)) == [
        i18n.t("en", "removefeed.not_found", feed=huge)
    ]
    for data in (f"tr:{huge}:id", f"orig:{huge}", f"sum:{huge}", f"unf:{huge}", "unf:-1", "tr:1", "junk"):
        result = press(conversation, data)
        assert result.edit is None and result.replies == [], data


COMMANDS = ["/start", "/help", "/follow", "/unfollow", "/following", "/tags", "/lang", "/summary", "/latest",
            "/search", "/settings", "/addfeed", "/feeds", "/removefeed", "/stats", "/nope", ""]
HOSTILE = st.text(st.characters(codec="utf-8"), max_size=80) | st.sampled_from(
    ["\x00", "<b>x</b>", "&amp;", "%_\\", "9" * 30, "-1", "#", "@x", "http://[::1]/", "https://", "a,,b"])


def test_hostile_input_never_crashes_and_answers_valid_html(database: Database, tmp_path: Path, i18n: I18n) -> None:
    """Any text after any command (controls, NUL, markup, huge numbers): an answer, never an error."""
    # No rate limit here: every example must reach its command.
    conversation = make_conversation(database, make_settings(database.url, tmp_path, command_rate_limit=10_000), i18n)

    # Few examples (each is a database round trip); the function-scoped fixture is shared on purpose.
    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(command=st.sampled_from(COMMANDS), arg=HOSTILE, admin=st.booleans())
    def check(command: str, arg: str, admin: bool) -> None:
        replies = say(conversation, f"{command} {arg}" if command else arg, bot_admin=admin)
        assert replies and all(reply.text.strip() for reply in replies)

    check()


def test_nul_and_markup_in_every_command(conversation: Conversation) -> None:
    for index, command in enumerate(filter(None, COMMANDS)):
        for arg in ("a\x00b", "<i>x</i> & y", "https://example.com/\x00"):
            # One chat per command, so the per-chat rate limit does not answer instead.
            replies = say(conversation, f"{command} {arg}", chat_id=5000 + index, bot_admin=True)
            assert replies and all(reply.text.strip() for reply in replies), (command, arg)


def test_odd_counts_in_latest_are_answered_not_crashed(conversation: Conversation, i18n: I18n) -> None:
    store(conversation, EN_BODY, "Russia demands guarantees", ["Rusia"], "en")
    bad = i18n.t("en", "latest.bad_count", max=20)
    for text in ("/latest --5", "/latest -5", "/latest 0", "/latest 999999999999", "/latest Rusia --5"):
        assert texts(say(conversation, text)) == [bad], text
    # Digits that are not ASCII are words (a tag name), never a count.
    assert texts(say(conversation, "/latest ²")) == [i18n.t("en", "latest.none_tag", tag="²")]
    assert texts(say(conversation, "/latest ٣")) == [i18n.t("en", "latest.none_tag", tag="٣")]
    assert "Russia demands guarantees" in texts(say(conversation, "/latest Rusia 1"))[0]


def test_library_error_text_never_reaches_a_chat(conversation: Conversation, i18n: I18n) -> None:
    say(conversation, "/lang id")
    for link in ("http://10.0.0.1/x", "http://localhost:1/x", "ftp://example.com/x"):
        [reply] = say(conversation, f"/summary {link}") if link.startswith("http") else say(conversation, link)
        if link.startswith("http"):
            assert reply.text == i18n.t("id", "summary.bad_url", reason=i18n.t("id", "error.fetch")), link
        else:  # not a link we read: a hint, in Indonesian
            assert reply.text == i18n.t("id", "hint.plain_text")
    [reply] = say(conversation, "/addfeed http://example.com:99999/feed.xml", bot_admin=True)
    assert reply.text == i18n.t("id", "addfeed.failed", reason=i18n.t("id", "error.feed"))


def test_the_command_table_is_the_one_source_of_access_and_menu() -> None:
    from bot.conversation.conversation import COMMANDS, MENU_COMMANDS, Access, Command

    assert set(COMMANDS) == set(Command)
    assert {c for c, spec in COMMANDS.items() if spec.access is Access.BOT_ADMIN} == {
        Command.ADDFEED, Command.FEEDS, Command.REMOVEFEED, Command.STATS, Command.REQUEUE}
    assert {c for c, spec in COMMANDS.items() if spec.access is Access.CHAT_ADMIN} == {
        Command.FOLLOW, Command.UNFOLLOW, Command.LANG, Command.TIMEZONE, Command.SILENT, Command.SNOOZE,
        Command.DIGEST, Command.QUIET, Command.LIMIT}
    assert not set(MENU_COMMANDS) & {Command.ADDFEED, Command.FEEDS, Command.REMOVEFEED, Command.STATS}


def test_rights_are_asked_only_where_they_differ() -> None:
    from bot.conversation.rights import may_publish, must_check_admin

    for kind in (ChatKind.PRIVATE, ChatKind.SHELL):
        assert not must_check_admin(kind, changes_chat=True)
    for kind in (ChatKind.GROUP, ChatKind.SUPERGROUP, ChatKind.CHANNEL):
        assert must_check_admin(kind, changes_chat=True)  # a button under a channel post: anyone can press it
        assert not must_check_admin(kind, changes_chat=True, posted_by_chat=True)
        assert not must_check_admin(kind, changes_chat=False)
    assert may_publish(ChatKind.PRIVATE, bot_admin=True) and may_publish(ChatKind.SHELL, bot_admin=False)
    assert may_publish(ChatKind.CHANNEL, bot_admin=False, posted_by_chat=True)
    for kind in (ChatKind.PRIVATE, ChatKind.GROUP, ChatKind.SUPERGROUP, ChatKind.CHANNEL):
        assert not may_publish(kind, bot_admin=False)


def test_follow_buttons_need_a_group_admin(conversation: Conversation, i18n: I18n) -> None:
    group = -100501
    [suggestion] = say(conversation, "/follow Rusai", chat_id=group, kind=ChatKind.SUPERGROUP)
    follow_tag = next(data for data in suggestion.callback_data() if data.startswith("fot:"))
    refused = conversation.handle_callback(ButtonPress(group, ChatKind.SUPERGROUP, follow_tag, user_id=7, chat_admin=False))
    assert refused.notice == i18n.plain("en", "group_admin_only") and not refused.replies
    assert texts(say(conversation, "/following", chat_id=group, kind=ChatKind.SUPERGROUP)) == [i18n.t("en", "following.none")]
    accepted = conversation.handle_callback(ButtonPress(group, ChatKind.SUPERGROUP, follow_tag, user_id=7, chat_admin=True))
    assert texts(accepted.replies) == [i18n.t("en", "follow.added", tags="Rusia")]
    # The keyword button follows the word as typed; removing it by its /following button needs an admin too.
    keyword = next(data for data in suggestion.callback_data() if data.startswith("fow:"))
    conversation.handle_callback(ButtonPress(group, ChatKind.SUPERGROUP, keyword, user_id=7, chat_admin=True))
    [listing] = say(conversation, "/following", chat_id=group, kind=ChatKind.SUPERGROUP)
    assert listing.text == following_text(i18n, "en", [("Rusia", 0), ("rusai", 0)])
    remove = next(data for data in listing.callback_data() if data.startswith("unq:"))
    assert conversation.handle_callback(ButtonPress(group, ChatKind.SUPERGROUP, remove, chat_admin=False)).notice == \
        i18n.plain("en", "group_admin_only")
    done = conversation.handle_callback(ButtonPress(group, ChatKind.SUPERGROUP, remove, chat_admin=True))
    assert done.notice == i18n.plain("en", "unfollow.button_done", tag="rusai")
    assert conversation.handle_callback(ButtonPress(group, ChatKind.SUPERGROUP, remove, chat_admin=True)).notice == \
        i18n.plain("en", "unfollow.gone")
