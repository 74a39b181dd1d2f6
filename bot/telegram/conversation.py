"""The conversation itself, shared by the Telegram handlers and `newsbot shell`.

Adapters turn what arrives (a Telegram update, a terminal line) into an `Incoming` and send
back the `Reply` objects this layer returns. Everything here is blocking (database, models):
adapters call it from a worker thread (asyncio.to_thread), never on the event loop.
"""

from __future__ import annotations

import enum
import html
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bot.config import Settings
from bot.context import AppContext
from bot.db import Database
from bot.db.models import ChatKind, Source
from bot.i18n import Html, I18n, escape
from bot.services.abuse import CommandRateLimiter, RateVerdict
from bot.services.articles import ArticleQueries, ArticleRef
from bot.services.chats import ChatInfo, ChatService
from bot.services.contracts import SummaryProvider
from bot.services.stats import collect_stats
from bot.services.subscriptions import SubscriptionService, TagRef, split_tag_args
from bot.jobs import SummaryNotReady, build_summary_provider
from bot.ingest.feeds import FeedError, FeedService
from bot.ingest.fetch import FetchError, fetch_article
from bot.ingest.service import IngestError, IngestResult, IngestService
from bot.ingest.urls import InvalidUrl
from bot.ingest.telegram_post import PostEntity, parse_telegram_post
from bot.tags import TagError, TagService
from bot.telegram.render import RenderedMessage, render_push

log = logging.getLogger(__name__)

# Telegram messages hold at most 4096 characters; longer input only comes from elsewhere.
MAX_INPUT_CHARS = 4096
MAX_SEARCH_CHARS = 200
MAX_MESSAGE_CHARS = 4096
LATEST_DEFAULT = 5
LATEST_MAX = 20
FOLLOW_OFFER = 3  # latest articles offered after /follow, per tag
FOLLOW_OFFER_TAGS = 3
TAGS_SHOWN = 20
SEARCH_RESULTS = 10
BUTTON_TITLE_CHARS = 40
# Errors whose one-line message is the answer to bad input (as opposed to bugs).
USER_ERRORS: tuple[type[Exception], ...] = (IngestError, FetchError, FeedError, TagError, InvalidUrl)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


class Command(enum.StrEnum):
    START = "start"
    HELP = "help"
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    FOLLOWING = "following"
    TAGS = "tags"
    LANG = "lang"
    SUMMARY = "summary"
    LATEST = "latest"
    SEARCH = "search"
    SETTINGS = "settings"
    ADDFEED = "addfeed"
    FEEDS = "feeds"
    REMOVEFEED = "removefeed"
    STATS = "stats"


# The menu (setMyCommands), in this order; admin commands stay out of it.
MENU_COMMANDS: tuple[Command, ...] = (
    Command.START, Command.HELP, Command.FOLLOW, Command.UNFOLLOW, Command.FOLLOWING,
    Command.TAGS, Command.LATEST, Command.SEARCH, Command.SUMMARY, Command.LANG, Command.SETTINGS,
)
# Only the bot's admins (ADMIN_IDS).
ADMIN_COMMANDS = frozenset({Command.ADDFEED, Command.FEEDS, Command.REMOVEFEED, Command.STATS})
# Change a chat's settings: in groups only the group's admins may.
CHAT_ADMIN_COMMANDS = frozenset({Command.FOLLOW, Command.UNFOLLOW, Command.LANG})


class CallbackKind(enum.StrEnum):
    """Prefixes of inline button callback_data."""

    TRANSLATE = "tr"  # tr:<article_id>:<lang>
    ORIGINAL = "orig"  # orig:<article_id>
    UNFOLLOW = "unf"  # unf:<tag_id>
    SUMMARY = "sum"  # sum:<article_id> (offered after /follow)


@dataclass(frozen=True)
class Button:
    """An inline button: exactly one of callback_data and url."""

    text: str
    callback_data: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Reply:
    """One message to send (or the new content of an edited one), Telegram HTML."""

    text: Html
    buttons: tuple[tuple[Button, ...], ...] = ()


@dataclass(frozen=True)
class Post:
    """A message holding an article: a channel post, an admin's forward, a replied-to message."""

    text: str
    entities: tuple[PostEntity, ...] = ()  # UTF-16 offsets, as Telegram gives them
    url: str | None = None  # link to the post itself (t.me/channel/123) when known
    article_id: int | None = None  # set when the message is one of the bot's own article messages


@dataclass(frozen=True)
class Incoming:
    """A text message (usually a command) from a chat."""

    chat_id: int
    chat_kind: ChatKind
    text: str
    user_id: int | None = None
    user_lang: str | None = None
    chat_title: str | None = None
    chat_admin: bool = True  # may change this chat's follows and language (checked by adapters)
    bot_admin: bool = False  # one of ADMIN_IDS
    replied: Post | None = None  # the message this one replies to


@dataclass
class CallbackResult:
    """What pressing a button does: edit the message, show a short notice, or both."""

    edit: Reply | None = None
    notice: str | None = None  # plain text, shown as a toast by Telegram
    replies: list[Reply] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedCommand:
    """A command's name and the rest of the message."""

    command: str  # lower-case name without '/' and '@bot'
    args: str


def parse_command(text: str) -> ParsedCommand | None:
    """'/follow@newsbot Rusia' -> ('follow', 'Rusia'); None when not a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    head, _, args = stripped.partition(" ")
    if "\n" in head:
        head, _, rest = head.partition("\n")
        args = f"{rest} {args}".strip()
    name = head[1:].split("@", 1)[0].lower()
    return ParsedCommand(command=name, args=args.strip())


def command_of(text: str) -> Command | None:
    """The known command a message holds, or None."""
    parsed = parse_command(text)
    if parsed is None:
        return None
    try:
        return Command(parsed.command)
    except ValueError:
        return None


def needs_chat_admin(incoming_text: str, chat_kind: ChatKind) -> bool:
    """Whether the adapter must check that the sender administers the group."""
    return chat_kind in (ChatKind.GROUP, ChatKind.SUPERGROUP) and command_of(incoming_text) in CHAT_ADMIN_COMMANDS


def article_of_buttons(callback_data: Sequence[str]) -> int | None:
    """The article a bot message is about, from its tr:/orig:/sum: buttons."""
    for data in callback_data:
        kind, _, rest = data.partition(":")
        if kind in (CallbackKind.TRANSLATE, CallbackKind.ORIGINAL, CallbackKind.SUMMARY):
            try:
                return parse_id(rest.partition(":")[0])
            except ValueError:
                continue
    return None


def first_url(post: Post) -> str | None:
    """The first link of a message: a text_link's target or a URL in the text."""
    for entity in post.entities:
        if entity.type == "text_link" and entity.url:
            return entity.url
    match = _URL_IN_TEXT.search(post.text)
    return match.group(0).rstrip(".,;:!?)") if match else None


MAX_ID = 2**63 - 1  # ids are BIGINT: larger numbers would make PostgreSQL fail, not answer


def parse_id(text: str) -> int:
    """A database id from user input; ValueError unless it is 1..2**63-1."""
    value = int(text)
    if not 1 <= value <= MAX_ID:
        raise ValueError(f"not an id: {text[:30]}")
    return value


def fit_lines(lines: Sequence[str], limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """The leading whole lines that fit one message (never cutting a tag or an entity)."""
    kept: list[str] = []
    size = 0
    for line in lines:
        size += len(line.encode("utf-16-le")) // 2 + (1 if kept else 0)  # Telegram counts UTF-16 units
        if size > limit:
            break
        kept.append(line)
    return kept


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass
class BotServices:
    """Everything the conversation needs, built once in main() and passed to the adapters."""

    settings: Settings
    db: Database
    i18n: I18n
    tags: TagService
    chats: ChatService
    subscriptions: SubscriptionService
    articles: ArticleQueries
    summaries: SummaryProvider
    rate_limiter: CommandRateLimiter
    ingest: IngestService
    feeds: FeedService
    fetch_article: Callable[[str], IngestResult]  # URL -> stored article (fetch + ingest)


class Conversation:
    """Turns commands into replies; one instance per process, shared by all chats."""

    def __init__(self, services: BotServices) -> None:
        self.s = services
        self.i18n = services.i18n

    # --- entry points -------------------------------------------------------------------
    def handle(self, incoming: Incoming) -> list[Reply]:
        """Answer one message; [] when nothing should be said (not a command in a group)."""
        # Control characters (NUL above all: PostgreSQL refuses it) never mean anything in a command.
        incoming = replace(incoming, text=_CONTROL.sub("", incoming.text))
        parsed = parse_command(incoming.text)
        private = incoming.chat_kind in (ChatKind.PRIVATE, ChatKind.SHELL)
        if parsed is None and not private:
            return []
        verdict = self._rate(incoming.chat_id, incoming.chat_kind)
        if verdict is RateVerdict.DROP:
            return []  # a flood costs no database work
        chat = self.s.chats.ensure(
            incoming.chat_id, incoming.chat_kind, incoming.chat_title, incoming.user_lang
        )
        lang = chat.lang
        if verdict is RateVerdict.WARN:
            return [self._reply(lang, "slow_down", limit=self.s.rate_limiter.limit)]
        if len(incoming.text) > MAX_INPUT_CHARS:
            return [self._reply(lang, "input.too_long", length=len(incoming.text), limit=MAX_INPUT_CHARS)]
        if parsed is None:
            return [self._unknown(lang, incoming)]
        try:
            command = Command(parsed.command)
        except ValueError:
            return [self._unknown(lang, incoming)]
        if command in ADMIN_COMMANDS and not incoming.bot_admin:
            return [self._reply(lang, "admin_only", command=f"/{command.value}")]
        if command in CHAT_ADMIN_COMMANDS and not incoming.chat_admin:
            return [self._reply(lang, "group_admin_only")]
        handler = getattr(self, f"_cmd_{command.value}")
        return handler(chat, parsed.args, incoming)

    def handle_callback(self, chat_id: int, chat_kind: ChatKind, data: str, *, chat_admin: bool,
                        user_lang: str | None = None) -> CallbackResult:
        """Answer an inline button press with callback_data `data`."""
        verdict = self._rate(chat_id, chat_kind)  # buttons can start translations: limit them too
        if verdict is RateVerdict.DROP:
            return CallbackResult()
        chat = self.s.chats.ensure(chat_id, chat_kind, None, user_lang)
        if verdict is RateVerdict.WARN:
            return CallbackResult(notice=self.i18n.plain(chat.lang, "slow_down", limit=self.s.rate_limiter.limit))
        kind, _, rest = data.partition(":")
        try:
            if kind == CallbackKind.TRANSLATE:
                article_id, _, target = rest.partition(":")
                if target not in self.i18n.langs:
                    return CallbackResult(notice=self.i18n.plain(chat.lang, "lang.unsupported",
                                                                  code=target, langs=", ".join(self.i18n.langs)))
                return CallbackResult(edit=self.summary_reply(chat, parse_id(article_id), target))
            if kind == CallbackKind.ORIGINAL:
                article = self.s.articles.get(parse_id(rest))
                if article is None:
                    return CallbackResult(notice=self.i18n.plain(chat.lang, "summary.not_found", id=rest))
                return CallbackResult(edit=self.summary_reply(chat, article.id, article.lang or chat.lang))
            if kind == CallbackKind.SUMMARY:
                return CallbackResult(replies=[self.summary_reply(chat, parse_id(rest), chat.lang)])
            if kind == CallbackKind.UNFOLLOW:
                if not chat_admin:
                    return CallbackResult(notice=self.i18n.plain(chat.lang, "group_admin_only"))
                tag = self.s.subscriptions.unfollow_tag(chat.id, parse_id(rest))
                if tag is None:
                    return CallbackResult(notice=self.i18n.plain(chat.lang, "tag.unknown"))
                text = self.i18n.plain(chat.lang, "unfollow.button_done", tag=tag.name)
                return CallbackResult(notice=text, replies=[self._reply(chat.lang, "unfollow.button_done", tag=tag.name)])
        except ValueError:
            pass
        log.info("ignoring unknown callback data %r", data[:64])
        return CallbackResult()

    # --- helpers ------------------------------------------------------------------------
    def _rate(self, chat_id: int, chat_kind: ChatKind) -> RateVerdict:
        # The local shell user is the operator of this machine: nothing to protect against.
        if chat_kind is ChatKind.SHELL:
            return RateVerdict.ALLOW
        return self.s.rate_limiter.check(chat_id)

    def _reply(self, lang: str, key: str, buttons: tuple[tuple[Button, ...], ...] = (), /, **params: object) -> Reply:
        return Reply(self.i18n.t(lang, key, **params), buttons)

    def _help_text(self, lang: str, bot_admin: bool) -> Html:
        text = self.i18n.t(lang, "help")
        if bot_admin:
            text = Html(f"{text}\n\n{self.i18n.t(lang, 'help.admin')}")
        return text

    def _unknown(self, lang: str, incoming: Incoming) -> Reply:
        return self._reply(lang, "unknown", help=self._help_text(lang, incoming.bot_admin))

    def _names(self, tags: Sequence[TagRef] | Sequence[str]) -> str:
        return ", ".join(tag.name if isinstance(tag, TagRef) else tag for tag in tags)

    def _article_line(self, lang: str, article: ArticleRef) -> Html:
        title = escape(truncate(article.title, 120))
        link = Html(f'<a href="{escape_attr(article.url)}">{title}</a>') if article.url else Html(f"<b>{title}</b>")
        tags = self._names(article.tags) or self.i18n.plain(lang, "ingest.no_tags")
        return self.i18n.t(lang, "article.item", id=article.id, link=link, tags=tags)

    def _article_list(self, lang: str, header: Html, articles: Sequence[ArticleRef]) -> Reply:
        lines = [header, *(self._article_line(lang, article) for article in articles)]
        return Reply(Html("\n".join(fit_lines(lines))))

    def _summary_button(self, lang: str, article: ArticleRef) -> Button:
        label = self.i18n.plain(lang, "btn.summary", id=article.id, title=truncate(article.title, BUTTON_TITLE_CHARS))
        return Button(label, callback_data=f"{CallbackKind.SUMMARY}:{article.id}")

    # --- summaries ----------------------------------------------------------------------
    def summary_reply(self, chat: ChatInfo, article_id: int, lang: str) -> Reply:
        """The summary of an article in `lang`, with translate/original and unfollow buttons."""
        article = self.s.articles.get(article_id)
        if article is None:
            return self._reply(chat.lang, "summary.not_found", id=article_id)
        try:
            summary = self.s.summaries.summary(article_id, lang)
        except SummaryNotReady:
            return self._reply(chat.lang, "summary.not_ready")  # workers are busy (BROKER_URL set)
        following = {tag.id for tag in self.s.subscriptions.following(chat.id)}
        # The same message as a push of this article, so buttons and edits behave alike.
        rendered = render_push(article, article.tags, article.source_name, summary, chat.lang, self.i18n,
                               followed_tag_ids=following)
        return reply_of(rendered)

    # --- commands -----------------------------------------------------------------------
    def _cmd_start(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        return [self._reply(chat.lang, "start")]

    def _cmd_help(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        return [Reply(self._help_text(chat.lang, incoming.bot_admin))]

    def _cmd_follow(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        names = split_tag_args(args)
        if not names:
            return [self._reply(chat.lang, "follow.usage")]
        result = self.s.subscriptions.follow(chat.id, names)
        lines: list[Html] = []
        if result.added:
            lines.append(self.i18n.t(chat.lang, "follow.added", tags=self._names(result.added)))
        if result.already:
            lines.append(self.i18n.t(chat.lang, "follow.already", tags=self._names(result.already)))
        if result.invalid:
            lines.append(self.i18n.t(chat.lang, "follow.invalid", tags=self._names([truncate(n, 80) for n in result.invalid]),
                                     max=self.s.subscriptions.max_tag_length))
        if result.over_limit:
            lines.append(self.i18n.t(chat.lang, "follow.limit", max=self.s.subscriptions.max_follows,
                                     tags=self._names(result.over_limit)))
        replies = [Reply(Html("\n".join(lines)))]
        # Offer the latest few articles of each newly followed tag as buttons.
        for tag in result.added[:FOLLOW_OFFER_TAGS]:
            latest = self.s.articles.latest(FOLLOW_OFFER, tag.id)
            if latest:
                buttons = tuple((self._summary_button(chat.lang, article),) for article in latest)
                replies.append(self._reply(chat.lang, "follow.latest", buttons, tag=tag.name))
        return replies

    def _cmd_unfollow(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        names = split_tag_args(args)
        if not names:
            return [self._reply(chat.lang, "unfollow.usage")]
        result = self.s.subscriptions.unfollow(chat.id, names)
        lines: list[Html] = []
        if result.removed:
            lines.append(self.i18n.t(chat.lang, "unfollow.removed", tags=self._names(result.removed)))
        if result.not_following:
            names_shown = [truncate(n, 80) for n in result.not_following]
            lines.append(self.i18n.t(chat.lang, "unfollow.not_following", tags=self._names(names_shown)))
        return [Reply(Html("\n".join(lines)))]

    def _cmd_following(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        tags = self.s.subscriptions.following(chat.id)
        if not tags:
            return [self._reply(chat.lang, "following.none")]
        return [self._reply(chat.lang, "following.list", count=len(tags), tags=self._names(tags))]

    def _cmd_tags(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        popular = self.s.articles.popular_tags(TAGS_SHOWN)
        if not popular:
            return [self._reply(chat.lang, "tags.none")]
        lines = [self.i18n.t(chat.lang, "tags.header")]
        lines += [self.i18n.t(chat.lang, "tags.item", name=tag.name, count=count) for tag, count in popular]
        return [Reply(Html("\n".join(fit_lines(lines))))]

    def _cmd_lang(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        code = args.strip().lower()
        if not code:
            return [self._reply(chat.lang, "lang.usage", lang=chat.lang)]
        if code not in self.i18n.langs:
            return [self._reply(chat.lang, "lang.unsupported", code=truncate(code, 16), langs=", ".join(self.i18n.langs))]
        self.s.chats.set_lang(chat.id, code)
        return [self._reply(code, "lang.done")]

    def _cmd_summary(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        target = args.strip()
        if not target and incoming.replied is not None:
            return [self._summary_of_post(chat, incoming.replied)]
        if not target:
            return [self._reply(chat.lang, "summary.usage")]
        if target.lstrip("#").isdigit():
            try:
                article_id = parse_id(target.lstrip("#"))
            except ValueError:
                return [self._reply(chat.lang, "summary.not_found", id=truncate(target, 30))]
            return [self.summary_reply(chat, article_id, chat.lang)]
        if _URL.match(target):
            return [self._summary_of_url(chat, target)]
        return [self._reply(chat.lang, "summary.usage")]

    def _summary_of_url(self, chat: ChatInfo, url: str) -> Reply:
        try:
            result = self.s.fetch_article(url)
        except USER_ERRORS as error:  # private address, not a page, too big, no text...
            return self._reply(chat.lang, "summary.bad_url", reason=truncate(str(error), 300))
        return self.summary_reply(chat, result.article_id, chat.lang)

    def _summary_of_post(self, chat: ChatInfo, post: Post) -> Reply:
        """The replied-to message is the article, or (too short to be one) links to it."""
        if post.article_id is not None:
            return self.summary_reply(chat, post.article_id, chat.lang)  # a push: not a new article
        if not post.text.strip():
            return self._reply(chat.lang, "summary.no_article")
        try:
            result = self.ingest_post(post)
        except USER_ERRORS as error:
            url = first_url(post)
            if url is not None:
                return self._summary_of_url(chat, url)
            return self._reply(chat.lang, "summary.failed", reason=truncate(str(error), 300))
        return self.summary_reply(chat, result.article_id, chat.lang)

    def _cmd_latest(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        words = args.split()
        count = LATEST_DEFAULT
        if words and words[-1].lstrip("-").isdigit():
            count = int(words.pop()[:6])
            if not 1 <= count <= LATEST_MAX:
                return [self._reply(chat.lang, "latest.bad_count", max=LATEST_MAX)]
        name = " ".join(words)
        if name:
            tag = self.s.articles.find_tag(name)
            if tag is None:
                return [self._reply(chat.lang, "latest.none_tag", tag=truncate(name, 80))]
            articles = self.s.articles.latest(count, tag.id)
            if not articles:
                return [self._reply(chat.lang, "latest.none_tag", tag=tag.name)]
            return [self._article_list(chat.lang, self.i18n.t(chat.lang, "latest.header_tag", tag=tag.name), articles)]
        articles = self.s.articles.latest(count)
        if not articles:
            return [self._reply(chat.lang, "latest.none")]
        return [self._article_list(chat.lang, self.i18n.t(chat.lang, "latest.header"), articles)]

    def _cmd_search(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        query = " ".join(args.split())
        if not query:
            return [self._reply(chat.lang, "search.usage")]
        if len(query) > MAX_SEARCH_CHARS:
            return [self._reply(chat.lang, "input.too_long", length=len(query), limit=MAX_SEARCH_CHARS)]
        found = self.s.articles.search(query, SEARCH_RESULTS)
        if not found:
            return [self._reply(chat.lang, "search.none", query=query)]
        return [self._article_list(chat.lang, self.i18n.t(chat.lang, "search.header", query=query), found)]

    def _cmd_settings(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        return [self._reply(chat.lang, "settings", lang=self.i18n.plain(chat.lang, "lang.name"),
                            count=self.s.subscriptions.count(chat.id), max=self.s.subscriptions.max_follows,
                            kind=chat.kind.value)]

    # --- admin commands -----------------------------------------------------------------
    def _cmd_stats(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        stats = collect_stats(self.s.db)
        deliveries = ", ".join(f"{status} {count}" for status, count in stats.deliveries.items() if count)
        return [self._reply(chat.lang, "stats", articles=stats.articles, chats=stats.chats,
                            active_chats=stats.active_chats, subscriptions=stats.subscriptions,
                            summaries=stats.summaries,
                            deliveries=deliveries or self.i18n.plain(chat.lang, "stats.none"))]

    def _cmd_addfeed(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        url, _, rest = args.partition(" ")
        if not url or not _URL.match(url):
            return [self._reply(chat.lang, "addfeed.usage")]
        tags = split_tag_args(rest)
        try:
            feed = _feed_view(self.s.feeds.add(url, tags))
        except USER_ERRORS as error:
            return [self._reply(chat.lang, "addfeed.failed", reason=truncate(str(error), 300))]
        return [self._reply(chat.lang, "addfeed.done", id=feed.id, url=feed.url,
                            tags=", ".join(feed.tags) or self.i18n.plain(chat.lang, "ingest.no_tags"))]

    def _cmd_feeds(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        feeds = [_feed_view(source) for source in self.s.feeds.list()]
        if not feeds:
            return [self._reply(chat.lang, "feeds.none")]
        lines = [self.i18n.t(chat.lang, "feeds.header")]
        for feed in feeds:
            lines.append(self.i18n.t(chat.lang, "feeds.item", id=feed.id, url=truncate(feed.url, 300),
                                     status=feed.status, tags=", ".join(feed.tags)))
        return [Reply(Html("\n".join(fit_lines(lines))))]

    def _cmd_removefeed(self, chat: ChatInfo, args: str, incoming: Incoming) -> list[Reply]:
        target = args.strip()
        if not target:
            return [self._reply(chat.lang, "removefeed.usage")]
        try:
            removed = self.s.feeds.remove(parse_id(target.lstrip("#")) if target.lstrip("#").isdigit() else target)
        except ValueError:
            removed = False
        key = "removefeed.done" if removed else "removefeed.not_found"
        return [self._reply(chat.lang, key, feed=truncate(target, 200))]

    # --- articles from posts ------------------------------------------------------------
    def ingest_post(self, post: Post, source_id: int | None = None) -> IngestResult:
        """Store a message holding an article (IngestError when it holds none)."""
        item = parse_telegram_post(post.text, post.entities, post.url)
        if source_id is not None:
            item.source_id = source_id
        return self.s.ingest.ingest(item)

    def ingest_reply(self, lang: str, post: Post, source_id: int | None = None) -> Reply:
        """Store a post and describe the outcome (for the admin who forwarded it)."""
        try:
            result = self.ingest_post(post, source_id)
        except USER_ERRORS as error:
            return self._reply(lang, "ingest.failed", reason=truncate(str(error), 300))
        return self.describe_ingest(lang, result)

    def describe_ingest(self, lang: str, result: IngestResult) -> Reply:
        """'Stored article #12: title / Tags: …' or 'Already stored as #12'."""
        article_id = result.article_id
        title = truncate(result.title, 200)
        if not result.created:
            return self._reply(lang, "ingest.duplicate", id=article_id, title=title)
        tags = ", ".join(result.tags) or self.i18n.plain(lang, "ingest.no_tags")
        text = self.i18n.t(lang, "ingest.stored", id=article_id, title=title, tags=tags)
        story_id = result.story_id
        if story_id != article_id:
            text = Html(f"{text}\n{self.i18n.t(lang, 'ingest.story', story_id=story_id)}")
        return Reply(text)


def escape_attr(value: str) -> str:
    """Escape a value for an HTML attribute (href)."""
    return html.escape(value, quote=True)


def reply_of(message: RenderedMessage) -> Reply:
    """C1's rendered push message as a Reply (same text and buttons)."""
    buttons = tuple(tuple(Button(b.text, callback_data=b.callback_data) for b in row) for row in message.buttons)
    return Reply(Html(message.html), buttons)


# --- feeds: thin calls into A's FeedService --------------------------------------------------
@dataclass(frozen=True)
class FeedView:
    """A feed as /feeds lists it."""

    id: int
    url: str
    status: str
    tags: list[str]


def _feed_view(source: Source) -> FeedView:
    return FeedView(id=source.id, url=source.url or "", status=str(source.status), tags=list(source.default_tags or []))


def build_services(settings: Settings, db: Database, i18n: I18n,
                   summaries: SummaryProvider | None = None) -> BotServices:
    """Build every service of the conversation once (in main); models load lazily on first use."""
    tags = TagService(db, settings)
    if summaries is None:
        # In-process SummaryService, or jobs for `newsbot worker` when BROKER_URL is set.
        summaries = build_summary_provider(AppContext(settings=settings, db=db))
    ingest = IngestService(db, settings, tags)

    def fetch_and_store(url: str) -> IngestResult:
        return ingest.ingest(fetch_article(url, settings))

    return BotServices(
        settings=settings,
        db=db,
        i18n=i18n,
        tags=tags,
        chats=ChatService(db),
        subscriptions=SubscriptionService(db, settings, tags),
        articles=ArticleQueries(db, tags),
        summaries=summaries,
        rate_limiter=CommandRateLimiter(settings.command_rate_limit),
        ingest=ingest,
        feeds=FeedService(db, settings, ingest),
        fetch_article=fetch_and_store,
    )
