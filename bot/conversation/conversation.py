"""The conversation itself, shared by the Telegram adapter and `newsbot shell`.

Adapters turn what arrives (a Telegram update, a terminal line) into an `Incoming` or a
`ButtonPress` and send back the `Reply` objects returned here. Everything here is blocking
(database, models, page fetches): adapters call it from a worker thread chosen by `workload()`,
never on the event loop.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.conversation.incoming import Incoming, Post, is_url, parse_id
from bot.conversation.messages import (
    MAX_NOTICE_CHARS,
    Button,
    Buttons,
    CallbackKind,
    CallbackResult,
    Reply,
    fit_lines,
    parse_callback,
    truncate,
)
from bot.conversation.render import escape_attr, follow_ref, render_push
from bot.conversation.rights import may_publish, must_check_admin
from bot.db.models import ChatKind, Source
from bot.follows.query import MAX_WORD_CHARS, Dropped, DropReason, FollowQuery, ParsedQuery
from bot.i18n import Html, escape
from bot.ingest.feeds import FeedError
from bot.ingest.fetch import FetchError
from bot.ingest.service import IngestError, IngestResult
from bot.ingest.telegram_post import parse_telegram_post
from bot.ingest.urls import InvalidUrl
from bot.jobs import SummaryNotReady
from bot.services.abuse import RateVerdict
from bot.services.articles import ArticleRef
from bot.services.chats import ChatInfo
from bot.services.contracts import ArticleSummary
from bot.services.digests import DAILY, HOURLY, format_times, parse_digest_times, parse_quiet
from bot.services.follows import FollowRef, tag_query
from bot.services.schedule import OFF, ON, parse_duration, parse_zone, zone_of
from bot.services.stats import collect_stats
from bot.services.subscriptions import TagRef, split_tag_args
from bot.tags import TagError

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

# Telegram messages hold at most 4096 characters; longer input only comes from elsewhere.
MAX_INPUT_CHARS = 4096
MAX_SEARCH_CHARS = 200
LATEST_DEFAULT = 5
LATEST_MAX = 20
FOLLOW_OFFER = 3  # latest articles offered after /follow, per tag
FOLLOW_OFFER_TAGS = 3
TAGS_SHOWN = 20
SEARCH_RESULTS = 10
PREVIEW_RESULTS = 5
MAX_LIST_BUTTONS = 50  # /following: one remove button per follow (MAX_FOLLOWS_PER_CHAT is 50 by default)
MAX_CALLBACK_BYTES = 64  # Telegram's limit on callback_data
BUTTON_TITLE_CHARS = 40
NAME_CHARS = 80
CLOCK_FORMAT = "%H:%M"  # the chat's local time, as /timezone and /settings show it
MOMENT_FORMAT = "%Y-%m-%d %H:%M"  # when a snooze ends, in the chat's zone
SNOOZE_BUTTON_SPAN = timedelta(days=1)  # the "Snooze" button under a push
_COUNT = re.compile(r"[+-]*[0-9]+")  # ASCII digits only: '²' or '٣' are words, not counts

# Bad input whose answer is a localized sentence (the library's own text goes to the log only).
USER_ERROR_KEYS: tuple[tuple[type[Exception], str], ...] = (
    (InvalidUrl, "error.bad_url"),
    (FetchError, "error.fetch"),
    (FeedError, "error.feed"),
    (IngestError, "error.no_article"),
    (TagError, "error.tag"),
)
USER_ERRORS: tuple[type[Exception], ...] = tuple(kind for kind, _ in USER_ERROR_KEYS)


class Command(enum.StrEnum):
    START = "start"
    HELP = "help"
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    FOLLOWING = "following"
    PREVIEW = "preview"
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
    REQUEUE = "requeue"
    TIMEZONE = "timezone"
    SILENT = "silent"
    SNOOZE = "snooze"
    DIGEST = "digest"
    QUIET = "quiet"
    LIMIT = "limit"


class Access(enum.Enum):
    """Who may use a command."""

    EVERYONE = "everyone"
    CHAT_ADMIN = "chat_admin"  # changes the chat: its owner, or a group's or channel's admins
    BOT_ADMIN = "bot_admin"  # ADMIN_IDS only


class Workload(enum.Enum):
    """Where an adapter runs a message, so quick commands never wait behind slow ones."""

    QUICK = "quick"  # database reads and writes
    SUMMARY = "summary"  # may compute a summary or translation (seconds)
    FETCH = "fetch"  # downloads a page for a user (bounded per user, own threads)


@dataclass(frozen=True)
class ButtonPress:
    """An inline button pressed in a chat."""

    chat_id: int
    chat_kind: ChatKind
    data: str
    user_id: int | None = None
    user_lang: str | None = None
    chat_admin: bool = True  # the presser may change this chat (see rights.must_check_admin)


@dataclass(frozen=True)
class Request:
    """What a command handler gets: the chat, the command's arguments, and the whole message."""

    chat: ChatInfo
    args: str
    incoming: Incoming

    @property
    def lang(self) -> str:
        return self.chat.lang


Handler = Callable[["Conversation", Request], list[Reply]]


@dataclass(frozen=True)
class CommandSpec:
    """One row of the command table."""

    command: Command
    handler: Handler
    access: Access = Access.EVERYONE
    workload: Workload = Workload.QUICK
    in_menu: bool = True  # shown in Telegram's command menu (setMyCommands)


class Conversation:
    """Turns messages and button presses into replies; one instance per process, shared by all chats."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.i18n = services.i18n
        self._fetching: set[int] = set()  # users with a page download in flight
        self._fetching_lock = threading.Lock()

    # --- what adapters ask before calling -------------------------------------------------------
    def spec(self, incoming: Incoming) -> CommandSpec | None:
        """The command table's row for this message, or None when it holds no known command."""
        parsed = incoming.parsed
        if parsed is None:
            return None
        try:
            return COMMANDS.get(Command(parsed.command))
        except ValueError:
            return None

    def must_check_admin(self, incoming: Incoming) -> bool:
        """Whether the adapter must ask Telegram if the sender administers this chat."""
        spec = self.spec(incoming)
        changes_chat = spec is not None and spec.access is Access.CHAT_ADMIN
        return must_check_admin(incoming.chat_kind, changes_chat=changes_chat, posted_by_chat=incoming.posted_by_chat)

    def must_check_presser(self, chat_kind: ChatKind, data: str) -> bool:
        """Whether the adapter must ask Telegram if whoever pressed this button administers the chat."""
        parsed = parse_callback(data)
        changes_chat = parsed is not None and parsed[0].changes_chat
        return must_check_admin(chat_kind, changes_chat=changes_chat)

    def workload(self, incoming: Incoming) -> Workload:
        """Which threads should answer this message."""
        spec = self.spec(incoming)
        if spec is None:
            return Workload.FETCH if self._link_of_plain_text(incoming) else Workload.QUICK
        if spec.command is Command.SUMMARY:
            args = incoming.parsed.args if incoming.parsed else ""
            replied = incoming.replied
            if is_url(args) or (not args and replied is not None and replied.article_id is None):
                return Workload.FETCH
        return spec.workload

    # --- entry points ---------------------------------------------------------------------------
    def handle(self, incoming: Incoming) -> list[Reply]:
        """Answer one message; [] when nothing should be said (not a command in a group)."""
        private = incoming.chat_kind in (ChatKind.PRIVATE, ChatKind.SHELL)
        parsed = incoming.parsed
        if parsed is None and not private:
            return []
        verdict = self._rate(incoming.chat_id, incoming.chat_kind)
        if verdict is RateVerdict.DROP:
            return []  # a flood costs no database work
        chat = self.s.chats.ensure(incoming.chat_id, incoming.chat_kind, incoming.chat_title, incoming.user_lang)
        if verdict is RateVerdict.WARN:
            return [self._reply(chat.lang, "slow_down", limit=self.s.rate_limiter.limit)]
        if len(incoming.text) > MAX_INPUT_CHARS:
            return [self._reply(chat.lang, "input.too_long", length=len(incoming.text), limit=MAX_INPUT_CHARS)]
        if parsed is None:
            return [self._plain_text(chat, incoming)]
        spec = self.spec(incoming)
        if spec is None:
            return [self._reply(chat.lang, "unknown", help=self._help_text(chat.lang, incoming.bot_admin))]
        if spec.access is Access.BOT_ADMIN and not incoming.bot_admin:
            return [self._reply(chat.lang, "admin_only", command=f"/{spec.command.value}")]
        if spec.access is Access.CHAT_ADMIN and not incoming.chat_admin:
            return [self._reply(chat.lang, "group_admin_only")]
        return spec.handler(self, Request(chat, parsed.args, incoming))

    def handle_forward(self, incoming: Incoming, post: Post, source_id: int | None = None) -> list[Reply]:
        """A message forwarded into a private chat: an admin's becomes an article for everyone,
        anyone else's is summarized for them alone."""
        verdict = self._rate(incoming.chat_id, incoming.chat_kind)
        if verdict is RateVerdict.DROP:
            return []
        chat = self.s.chats.ensure(incoming.chat_id, incoming.chat_kind, incoming.chat_title, incoming.user_lang)
        if verdict is RateVerdict.WARN:
            return [self._reply(chat.lang, "slow_down", limit=self.s.rate_limiter.limit)]
        if may_publish(incoming.chat_kind, bot_admin=incoming.bot_admin):
            return [self.ingest_reply(chat.lang, post, source_id)]
        return [self._summary_of_post(chat, post, incoming)]

    def channel_post(self, chat_id: int, title: str | None, post: Post) -> Reply:
        """A post (not a command) in a channel where the bot is admin: stored and pushed to followers."""
        self.s.chats.ensure(chat_id, ChatKind.CHANNEL, title)
        source_id = self.s.chats.channel_source(chat_id, title)
        return self.ingest_reply(self.i18n.default, post, source_id)

    def handle_callback(self, press: ButtonPress) -> CallbackResult:
        """Answer an inline button press."""
        verdict = self._rate(press.chat_id, press.chat_kind)  # buttons can start translations: limit them too
        if verdict is RateVerdict.DROP:
            return CallbackResult()
        chat = self.s.chats.ensure(press.chat_id, press.chat_kind, None, press.user_lang)
        lang = chat.lang
        if verdict is RateVerdict.WARN:
            return CallbackResult(notice=self.i18n.plain(lang, "slow_down", limit=self.s.rate_limiter.limit))
        parsed = parse_callback(press.data)
        try:
            if parsed is None or not parsed[1]:
                raise ValueError(press.data)
            kind, parts = parsed
            if kind is CallbackKind.TRANSLATE:
                target = parts[1] if len(parts) > 1 else ""
                if target not in self.i18n.langs:
                    return CallbackResult(notice=self.i18n.plain(lang, "lang.unsupported", code=truncate(target, 16),
                                                                 langs=", ".join(self.i18n.langs)))
                return self._translated(chat, parse_id(parts[0]), target)
            if kind is CallbackKind.ORIGINAL:
                article = self.s.articles.get(parse_id(parts[0]))
                if article is None:
                    return CallbackResult(notice=self.i18n.plain(lang, "summary.not_found", id=parts[0]))
                return CallbackResult(edit=self.summary_reply(chat, article.id, article.lang or lang))
            if kind is CallbackKind.SUMMARY:
                return CallbackResult(replies=[self.summary_reply(chat, parse_id(parts[0]), lang)])
            if kind is CallbackKind.UNFOLLOW:
                if not press.chat_admin:
                    return CallbackResult(notice=self.i18n.plain(lang, "group_admin_only"))
                tag = self.s.subscriptions.unfollow_tag(chat.id, parse_id(parts[0]))
                if tag is None:
                    return CallbackResult(notice=self.i18n.plain(lang, "tag.unknown"))
                notice = self.i18n.plain(lang, "unfollow.button_done", tag=tag.name)
                if chat.kind is ChatKind.CHANNEL:
                    return CallbackResult(notice=notice)  # a channel's readers need no announcement
                return CallbackResult(notice=notice, replies=[self._reply(lang, "unfollow.button_done", tag=tag.name)])
            if kind in (CallbackKind.UNFOLLOW_QUERY, CallbackKind.FOLLOW_TAG, CallbackKind.FOLLOW_WORD):
                if not press.chat_admin:
                    return CallbackResult(notice=self.i18n.plain(lang, "group_admin_only"))
                return self._follow_button(chat, kind, parts)
            if kind in (CallbackKind.MUTE, CallbackKind.SNOOZE, CallbackKind.UNSNOOZE, CallbackKind.UNMUTE):
                if not press.chat_admin:
                    return CallbackResult(notice=self.i18n.plain(lang, "group_admin_only"))
                return self._feedback_button(chat, kind, parts)
        except ValueError:
            pass
        log.info("ignoring unknown callback data %r", press.data[:64])
        return CallbackResult()

    def _follow_button(self, chat: ChatInfo, kind: CallbackKind, parts: list[str]) -> CallbackResult:
        """Buttons of /following, pushes and "did you mean": remove a keyword follow, follow a tag or a word."""
        lang = chat.lang
        if kind is CallbackKind.UNFOLLOW_QUERY:
            text = self.s.follows.remove(chat.id, parse_id(parts[0]))
            if text is None:
                return CallbackResult(notice=self.i18n.plain(lang, "unfollow.gone"))
            notice = self.i18n.plain(lang, "unfollow.button_done", tag=truncate(text, 100))
            if chat.kind is ChatKind.CHANNEL:
                return CallbackResult(notice=notice)
            return CallbackResult(notice=notice, replies=[self._reply(lang, "unfollow.button_done", tag=text)])
        if kind is CallbackKind.FOLLOW_TAG:
            tag = self.s.follows.tag(parse_id(parts[0]))
            if tag is None:
                return CallbackResult(notice=self.i18n.plain(lang, "tag.unknown"))
            queries = [tag_query(tag)]
        else:
            word = ":".join(parts)
            parsed = self.s.follows.parse(f'"{word}"')
            if not parsed.follows:
                raise ValueError(parts)
            queries = parsed.follows[:1]
        replies = self._follow_queries(chat, queries)
        shown = truncate(queries[0].text, 100)
        key = "follow.added" if queries[0].is_plain_tag else "follow.added_rules"
        notice = self.i18n.plain(lang, key, tags=shown, rules=shown)
        return CallbackResult(notice=notice, replies=replies)

    # --- helpers --------------------------------------------------------------------------------
    def _rate(self, chat_id: int, chat_kind: ChatKind) -> RateVerdict:
        # The local shell user is the operator of this machine: nothing to protect against.
        if chat_kind is ChatKind.SHELL:
            return RateVerdict.ALLOW
        return self.s.rate_limiter.check(chat_id)

    def _reply(self, lang: str | None, key: str, buttons: Buttons = (), /, **params: object) -> Reply:
        return Reply(self.i18n.t(lang, key, **params), buttons)

    def _user_error(self, lang: str, key: str, error: Exception) -> Reply:
        """A localized sentence for bad input; the library's own words only reach the log."""
        log.info("user input refused: %s: %s", type(error).__name__, error)
        # The most specific reason: a download problem wrapped as "no article" is still a download problem.
        cause = error.__cause__ if isinstance(error.__cause__, USER_ERRORS) else error
        reason_key = next((k for kind, k in USER_ERROR_KEYS if isinstance(cause, kind)), "error.generic")
        return self._reply(lang, key, reason=Html(self.i18n.t(lang, reason_key)))

    def _help_text(self, lang: str, bot_admin: bool) -> Html:
        text = self.i18n.t(lang, "help")
        if bot_admin:
            text = Html(f"{text}\n\n{self.i18n.t(lang, 'help.admin')}")
        return text

    @staticmethod
    def _names(tags: Sequence[TagRef] | Sequence[str]) -> str:
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
        return Button(label, callback_data=CallbackKind.SUMMARY.data(article.id))

    @staticmethod
    def _link_of_plain_text(incoming: Incoming) -> str | None:
        """A link pasted as a plain message in a private chat (treated as /summary LINK)."""
        if incoming.parsed is not None or incoming.chat_kind not in (ChatKind.PRIVATE, ChatKind.SHELL):
            return None
        return Post(incoming.clean_text).first_url()

    def _plain_text(self, chat: ChatInfo, incoming: Incoming) -> Reply:
        url = self._link_of_plain_text(incoming)
        if url is not None:
            return self._summary_of_url(chat, url, incoming)
        return self._reply(chat.lang, "hint.plain_text")

    # --- summaries ------------------------------------------------------------------------------
    def summary_reply(self, chat: ChatInfo, article_id: int, lang: str, *, viewer_chat_id: int | None = None) -> Reply:
        """The summary of an article in `lang`, with translate/original and unfollow buttons.

        `viewer_chat_id`: when set, another chat's private submission is answered as not found.
        """
        return self._summary_message(chat, article_id, lang, viewer_chat_id)[0]

    def _summary_message(self, chat: ChatInfo, article_id: int, lang: str,
                         viewer_chat_id: int | None = None) -> tuple[Reply, ArticleSummary | None]:
        article = self.s.articles.get(article_id, viewer_chat_id=viewer_chat_id)
        if article is None:
            return self._reply(chat.lang, "summary.not_found", id=article_id), None
        try:
            # One story, one summary: the story's fullest member is summarised (bot/services/stories.py).
            summary = self.s.summaries.summary(self.s.stories.best_member(article_id, viewer_chat_id), lang)
        except SummaryNotReady:
            return self._reply(chat.lang, "summary.not_ready"), None  # workers are busy (BROKER_URL set)
        following = {tag.id for tag in self.s.subscriptions.following(chat.id)}
        # The same message as a push of this article, so buttons and edits behave alike.
        reply = render_push(article, article.tags, article.source_name, summary, chat.lang, self.i18n,
                            followed_tag_ids=following, requested_lang=lang, translation=self.s.translation_enabled,
                            also_reported_by=self.s.stories.also_reported_by(article_id))
        return reply, summary

    def _translated(self, chat: ChatInfo, article_id: int, target: str) -> CallbackResult:
        name = self.i18n.plain(chat.lang, f"push.lang.{target}")
        unavailable = self.i18n.plain(chat.lang, "translate.unavailable", lang=name)
        if not self.s.translation_enabled:
            return CallbackResult(notice=unavailable)  # an older message's button: nothing to compute
        reply, summary = self._summary_message(chat, article_id, target)
        if summary is not None and summary.lang != target:
            # The model could not be used for this text: the edit says so and drops the button,
            # so pressing again cannot loop.
            return CallbackResult(edit=reply, notice=unavailable)
        return CallbackResult(edit=reply)

    def acknowledgement(self, press: ButtonPress) -> str | None:
        """A toast to show at once while a button's work runs (a summary or translation can take
        seconds; Telegram drops late answers), or None when the answer is quick."""
        parsed = parse_callback(press.data)
        if parsed is None:
            return None
        kind = parsed[0]
        if kind is CallbackKind.TRANSLATE and self.s.translation_enabled:
            return self.i18n.plain(self.i18n.lang_or_default(press.user_lang), "translate.working")
        if kind in (CallbackKind.ORIGINAL, CallbackKind.SUMMARY):
            return self.i18n.plain(self.i18n.lang_or_default(press.user_lang), "button.working")
        return None

    @contextmanager
    def _one_fetch_per_user(self, incoming: Incoming) -> Iterator[bool]:
        """At most one page download per user at a time; yields False when one is already running."""
        key = incoming.user_id if incoming.user_id is not None else incoming.chat_id
        with self._fetching_lock:
            if key in self._fetching:
                yield False
                return
            self._fetching.add(key)
        try:
            yield True
        finally:
            with self._fetching_lock:
                self._fetching.discard(key)

    def _submitter(self, chat: ChatInfo, incoming: Incoming) -> int | None:
        """None when the sender may publish (see rights.may_publish), else the chat the content is private to."""
        publish = may_publish(incoming.chat_kind, bot_admin=incoming.bot_admin, posted_by_chat=incoming.posted_by_chat)
        return None if publish else chat.id

    def _summary_of_url(self, chat: ChatInfo, url: str, incoming: Incoming) -> Reply:
        with self._one_fetch_per_user(incoming) as allowed:
            if not allowed:
                return self._reply(chat.lang, "summary.busy")
            try:
                result = self.s.fetch_article(url, self._submitter(chat, incoming))
            except USER_ERRORS as error:  # private address, not a page, too big, no text...
                return self._user_error(chat.lang, "summary.bad_url", error)
        return self.summary_reply(chat, result.article_id, chat.lang)

    def _summary_of_post(self, chat: ChatInfo, post: Post, incoming: Incoming) -> Reply:
        """The replied-to (or forwarded) message is the article, or (too short to be one) links to it."""
        if post.article_id is not None:
            return self.summary_reply(chat, post.article_id, chat.lang)  # a push: not a new article
        if not post.text.strip():
            return self._reply(chat.lang, "summary.no_article")
        try:
            result = self.ingest_post(post, submitted_by_chat_id=self._submitter(chat, incoming))
        except USER_ERRORS as error:
            url = post.first_url()
            if url is not None:
                return self._summary_of_url(chat, url, incoming)
            return self._user_error(chat.lang, "summary.failed", error)
        return self.summary_reply(chat, result.article_id, chat.lang)

    # --- commands -------------------------------------------------------------------------------
    def start(self, request: Request) -> list[Reply]:
        """/start: greet and explain."""
        return [self._reply(request.lang, "start")]

    def help(self, request: Request) -> list[Reply]:
        """/help: the commands, and when this chat's pushes arrive now."""
        text = self._help_text(request.lang, request.incoming.bot_admin)
        chat, lang = request.chat, request.lang
        zone, silent = self.s.schedule.modes(chat.id)
        digest, quiet, limit = self.s.digests.modes(chat.id)
        off = self.i18n.plain(lang, "settings.off")
        modes = self.i18n.t(lang, "help.modes", zone=zone, mode=self._digest_mode(chat, digest), quiet=quiet or off,
                            limit=off if limit is None else limit, silent=self.i18n.plain(lang, "settings.on") if silent else off)
        return [Reply(Html(f"{text}\n\n{modes}"))]

    def follow(self, request: Request) -> list[Reply]:
        """/follow QUERY: follow tags and keyword rules (see bot/follows/query.py), then offer the
        latest articles each would have pushed; a typo of a tag gets "did you mean" buttons."""
        lang, chat = request.lang, request.chat
        parsed = self.s.follows.parse(request.args)
        if not parsed.follows and not parsed.dropped:
            return [self._reply(lang, "follow.usage")]
        suggestion = self._suggestion(lang, parsed)
        if suggestion is not None:
            return [suggestion]
        replies = self._follow_queries(chat, parsed.follows, parsed.dropped)
        if chat.kind is ChatKind.SUPERGROUP:
            # In a forum topic the follow pushes to that topic; in General (or a plain group) to the chat.
            wanted = {query.key for query in parsed.follows}
            followed = [ref.query.key for ref in self.s.follows.of_chat(chat.id) if ref.query.key in wanted]
            self.s.schedule.route_topic(chat.id, followed, request.incoming.thread_id)
        return replies

    def _suggestion(self, lang: str, parsed: ParsedQuery) -> Reply | None:
        """"Did you mean Rusia?" when the whole query is one word that is no tag but close to one."""
        if parsed.quoted or parsed.dropped or len(parsed.follows) != 1 or len(parsed.unknown_words) != 1:
            return None
        query = parsed.follows[0]
        if query.require or query.exclude or query.anchor.tag_id is not None:
            return None
        word = parsed.unknown_words[0]
        tags = self.s.follows.suggest(word)
        if not tags:
            return None
        shown = truncate(word, NAME_CHARS)
        row = [Button(self.i18n.plain(lang, "btn.follow_tag", tag=tag.name), CallbackKind.FOLLOW_TAG.data(tag.id))
               for tag in tags]
        buttons: list[tuple[Button, ...]] = [tuple(row)]
        keyword = CallbackKind.FOLLOW_WORD.data(query.anchor.display)
        if len(keyword.encode()) <= MAX_CALLBACK_BYTES:
            buttons.append((Button(self.i18n.plain(lang, "btn.follow_word", word=truncate(query.anchor.display, 30)), keyword),))
        return self._reply(lang, "follow.suggest", tuple(buttons), word=shown, tags=self._names(tags))

    def _follow_queries(self, chat: ChatInfo, queries: Sequence[FollowQuery], dropped: Sequence[Dropped] = ()) -> list[Reply]:
        lang = chat.lang
        outcome = self.s.follows.follow(chat.id, queries)
        lines: list[Html] = []
        tags = [q.text for q in outcome.added if q.is_plain_tag]
        rules = [q.text for q in outcome.added if not q.is_plain_tag]
        if tags:
            lines.append(self.i18n.t(lang, "follow.added", tags=", ".join(tags)))
        if rules:
            lines.append(self.i18n.t(lang, "follow.added_rules", rules="; ".join(rules)))
        if outcome.already:
            lines.append(self.i18n.t(lang, "follow.already", tags="; ".join(q.text for q in outcome.already)))
        if outcome.over_limit:
            lines.append(self.i18n.t(lang, "follow.limit", max=self.s.follows.max_follows,
                                     tags="; ".join(q.text for q in outcome.over_limit)))
        lines += self._dropped_lines(lang, dropped)
        if not outcome.added and not outcome.already and not outcome.over_limit:
            lines.insert(0, self.i18n.t(lang, "follow.nothing"))
        replies = [Reply(Html("\n".join(lines)))]
        for query in outcome.added[:FOLLOW_OFFER_TAGS]:
            latest = self._backfill(chat, query)
            if latest:
                buttons = tuple((self._summary_button(lang, article),) for article in latest)
                key = "follow.latest" if query.is_plain_tag else "follow.latest_query"
                replies.append(self._reply(lang, key, buttons, tag=query.text, query=query.text))
        return replies

    def _backfill(self, chat: ChatInfo, query: FollowQuery) -> list[ArticleRef]:
        """The latest articles a new follow would have pushed (the fan-out's matcher)."""
        if query.is_plain_tag and query.anchor.tag_id is not None:
            return self.s.articles.latest(FOLLOW_OFFER, query.anchor.tag_id, viewer_chat_id=chat.id)
        found = (self.s.articles.get(article_id) for article_id in self.s.follows.preview([query], FOLLOW_OFFER))
        return [article for article in found if article is not None]

    def _dropped_lines(self, lang: str, dropped: Sequence[Dropped]) -> list[Html]:
        """One line per reason, naming every piece of the query that was not used."""
        limits = self.s.follows.limits
        maxima = {DropReason.INVALID: MAX_WORD_CHARS, DropReason.TOO_LONG: limits.max_chars,
                  DropReason.TOO_MANY: limits.max_terms}
        lines = []
        for reason in DropReason:
            items = [item.text for item in dropped if item.reason is reason]
            if items:
                lines.append(self.i18n.t(lang, f"follow.dropped.{reason.value}", items=", ".join(items),
                                         max=maxima.get(reason, 0)))
        return lines

    def unfollow(self, request: Request) -> list[Reply]:
        """/unfollow QUERY: stop following (the same forms as /follow); alone: the list with buttons."""
        lang = request.lang
        if not request.args.strip():
            return self.following(request)
        parsed = self.s.follows.parse(request.args)
        if not parsed.follows:
            return [Reply(Html("\n".join([self.i18n.t(lang, "unfollow.usage"), *self._dropped_lines(lang, parsed.dropped)])))]
        outcome = self.s.follows.unfollow(request.chat.id, parsed.follows)
        lines: list[Html] = []
        if outcome.removed:
            lines.append(self.i18n.t(lang, "unfollow.removed", tags="; ".join(q.text for q in outcome.removed)))
        if outcome.not_following:
            lines.append(self.i18n.t(lang, "unfollow.not_following", tags="; ".join(
                truncate(q.text, NAME_CHARS) for q in outcome.not_following)))
        lines += self._dropped_lines(lang, parsed.dropped)
        return [Reply(Html("\n".join(lines)))]

    def following(self, request: Request) -> list[Reply]:
        """/following: each follow as understood, the stories of the last 7 days it would have
        pushed, and a button to remove it."""
        lang = request.lang
        refs = self.s.follows.of_chat(request.chat.id)
        if not refs:
            return [self._reply(lang, "following.none")]
        counts = self.s.follows.week_counts(refs)
        lines = [self.i18n.t(lang, "following.header", count=len(refs))]
        lines += [self.i18n.t(lang, "following.item", query=ref.text, count=counts.get(ref.query.key, 0)) for ref in refs]
        buttons: Buttons = tuple((self._remove_button(lang, ref),) for ref in refs[:MAX_LIST_BUTTONS])
        lines.append(self.i18n.t(lang, "following.remove_hint"))
        # Snoozed follows, each with a button to wake it (as in /settings).
        snoozes, wake = self._snooze_lines(request.chat)
        lines += snoozes
        buttons += tuple(wake[:max(0, MAX_LIST_BUTTONS * 2 - len(buttons))])
        return [Reply(Html("\n".join(fit_lines(lines))), buttons)]

    def _remove_button(self, lang: str, ref: FollowRef) -> Button:
        label = self.i18n.plain(lang, "btn.unfollow_query", query=truncate(ref.text, BUTTON_TITLE_CHARS))
        if ref.follow_id is None and ref.query.anchor.tag_id is not None:
            return Button(label, CallbackKind.UNFOLLOW.data(ref.query.anchor.tag_id))
        return Button(label, CallbackKind.UNFOLLOW_QUERY.data(ref.follow_id))

    def preview(self, request: Request) -> list[Reply]:
        """/preview QUERY: the last stored articles the query would have pushed; nothing is followed."""
        lang = request.lang
        parsed = self.s.follows.parse(request.args)
        dropped = self._dropped_lines(lang, parsed.dropped)
        if not parsed.follows:
            return [Reply(Html("\n".join([self.i18n.t(lang, "preview.usage"), *dropped])))]
        shown = "; ".join(q.text for q in parsed.follows)
        found = (self.s.articles.get(article_id) for article_id in self.s.follows.preview(parsed.follows, PREVIEW_RESULTS))
        articles = [article for article in found if article is not None]
        if not articles:
            return [Reply(Html("\n".join([self.i18n.t(lang, "preview.none", query=shown), *dropped])))]
        reply = self._article_list(lang, self.i18n.t(lang, "preview.header", query=shown), articles)
        if dropped:
            reply = Reply(Html("\n".join([reply.text, *dropped])))
        return [reply]

    def tags(self, request: Request) -> list[Reply]:
        """/tags: popular tags with counts."""
        popular = self.s.articles.popular_tags(TAGS_SHOWN)
        if not popular:
            return [self._reply(request.lang, "tags.none")]
        lines = [self.i18n.t(request.lang, "tags.header")]
        lines += [self.i18n.t(request.lang, "tags.item", name=tag.name, count=count) for tag, count in popular]
        return [Reply(Html("\n".join(fit_lines(lines))))]

    def lang(self, request: Request) -> list[Reply]:
        """/lang CODE: the chat's language."""
        code = request.args.strip().lower()
        if not code:
            return [self._reply(request.lang, "lang.usage", lang=request.lang)]
        if code not in self.i18n.langs:
            return [self._reply(request.lang, "lang.unsupported", code=truncate(code, 16), langs=", ".join(self.i18n.langs))]
        self.s.chats.set_lang(request.chat.id, code)
        return [self._reply(code, "lang.done")]

    def summary(self, request: Request) -> list[Reply]:
        """/summary ID|URL, or as a reply: an article's summary in the chat's language."""
        chat, target, incoming = request.chat, request.args.strip(), request.incoming
        if not target and incoming.replied is not None:
            return [self._summary_of_post(chat, incoming.replied, incoming)]
        if not target:
            return [self._reply(chat.lang, "summary.usage")]
        if is_url(target):
            return [self._summary_of_url(chat, target, incoming)]
        try:
            article_id = parse_id(target)
        except ValueError:
            if target.lstrip("#").isdigit():
                return [self._reply(chat.lang, "summary.not_found", id=truncate(target, 30))]
            return [self._reply(chat.lang, "summary.usage")]
        return [self.summary_reply(chat, article_id, chat.lang, viewer_chat_id=chat.id)]

    def latest(self, request: Request) -> list[Reply]:
        """/latest [TAG] [N]: newest articles."""
        lang = request.lang
        words = request.args.split()
        count = LATEST_DEFAULT
        if words and _COUNT.fullmatch(words[-1]):
            number = words.pop()
            count = int(number) if number.isdigit() and len(number) <= 8 else 0  # '-5', '--5' are no counts
            if not 1 <= count <= LATEST_MAX:
                return [self._reply(lang, "latest.bad_count", max=LATEST_MAX)]
        name = " ".join(words)
        viewer = request.chat.id
        if name:
            tag = self.s.articles.find_tag(name)
            if tag is None:
                return [self._reply(lang, "latest.none_tag", tag=truncate(name, NAME_CHARS))]
            articles = self.s.articles.latest(count, tag.id, viewer_chat_id=viewer)
            if not articles:
                return [self._reply(lang, "latest.none_tag", tag=tag.name)]
            return [self._article_list(lang, self.i18n.t(lang, "latest.header_tag", tag=tag.name), articles)]
        articles = self.s.articles.latest(count, viewer_chat_id=viewer)
        if not articles:
            return [self._reply(lang, "latest.none")]
        return [self._article_list(lang, self.i18n.t(lang, "latest.header"), articles)]

    def search(self, request: Request) -> list[Reply]:
        """/search WORDS: find articles."""
        lang = request.lang
        query = " ".join(request.args.split())
        if not query:
            return [self._reply(lang, "search.usage")]
        if len(query) > MAX_SEARCH_CHARS:
            return [self._reply(lang, "input.too_long", length=len(query), limit=MAX_SEARCH_CHARS)]
        found = self.s.articles.search(query, SEARCH_RESULTS, viewer_chat_id=request.chat.id)
        if not found:
            return [self._reply(lang, "search.none", query=query)]
        return [self._article_list(lang, self.i18n.t(lang, "search.header", query=query), found)]

    def settings(self, request: Request) -> list[Reply]:
        """/settings: the chat's language, follows, time zone, silence, snoozes and muted stories
        (with buttons to undo the last two)."""
        chat = request.chat
        lines = [self.i18n.t(chat.lang, "settings", lang=self.i18n.plain(chat.lang, "lang.name"),
                             count=self.s.follows.count(chat.id), max=self.s.follows.max_follows,
                             kind=chat.kind.value), self._modes_line(chat), self._delivery_line(chat)]
        snoozes, buttons = self._snooze_lines(chat)
        lines += snoozes
        muted = self.s.schedule.muted_stories(chat.id)
        if muted:
            lines.append(self.i18n.t(chat.lang, "settings.muted", count=len(muted)))
            buttons += [(Button(self.i18n.plain(chat.lang, "btn.unmute", id=story_id), CallbackKind.UNMUTE.data(story_id)),)
                        for story_id in muted[:MAX_LIST_BUTTONS - len(buttons)]]
        if buttons:
            lines.append(self.i18n.t(chat.lang, "settings.undo_hint"))
        return [Reply(Html("\n".join(fit_lines(lines))), tuple(buttons))]

    # --- when pushes arrive: time zone, silence, snoozes, story mutes (docs/delivery-modes.md) ----
    def _clock_text(self, chat_id: int) -> str:
        return self.s.schedule.local_time(chat_id).strftime(CLOCK_FORMAT)

    def _until_text(self, chat_id: int, until: datetime) -> str:
        """A moment in the chat's zone, the way its readers read their clocks."""
        zone, _ = self.s.schedule.modes(chat_id)
        return until.astimezone(zone_of(zone, None)).strftime(MOMENT_FORMAT) + f" {zone}"

    def _modes_line(self, chat: ChatInfo) -> Html:
        zone, silent = self.s.schedule.modes(chat.id)
        state = self.i18n.plain(chat.lang, "settings.on" if silent else "settings.off")
        return self.i18n.t(chat.lang, "settings.modes", zone=zone, time=self._clock_text(chat.id), silent=state)

    def _snooze_lines(self, chat: ChatInfo) -> tuple[list[Html], list[tuple[Button, ...]]]:
        """One line per running snooze and a button to wake each follow."""
        lines: list[Html] = []
        buttons: list[tuple[Button, ...]] = []
        refs = {ref.query.key: ref for ref in self.s.follows.of_chat(chat.id)}
        for snooze in self.s.schedule.snoozes(chat.id):
            lines.append(self.i18n.t(chat.lang, "settings.snoozed", follow=snooze.text,
                                     until=self._until_text(chat.id, snooze.until)))
            ref = refs.get(snooze.key)
            if ref is not None and len(buttons) < MAX_LIST_BUTTONS:
                label = self.i18n.plain(chat.lang, "btn.unsnooze", follow=truncate(ref.text, BUTTON_TITLE_CHARS))
                buttons.append((Button(label, CallbackKind.UNSNOOZE.data(self._ref_code(ref))),))
        return lines, buttons

    @staticmethod
    def _ref_code(ref: FollowRef) -> str:
        return follow_ref(tag_id=ref.query.anchor.tag_id) if ref.follow_id is None else follow_ref(follow_id=ref.follow_id)

    def _ref_of_code(self, chat_id: int, code: str) -> FollowRef | None:
        """The chat's follow a button names ('t12', 'q5'), if the chat still has it."""
        for ref in self.s.follows.of_chat(chat_id):
            if self._ref_code(ref) == code:
                return ref
        return None

    def _digest_mode(self, chat: ChatInfo, digest: str | None) -> str:
        if digest is None:
            return self.i18n.plain(chat.lang, "digest.instant")
        if digest == HOURLY:
            return self.i18n.plain(chat.lang, "digest.hourly")
        zone, _ = self.s.schedule.modes(chat.id)
        return self.i18n.plain(chat.lang, "digest.daily", times=digest.replace(",", ", "), zone=zone)

    def _delivery_line(self, chat: ChatInfo) -> Html:
        digest, quiet, limit = self.s.digests.modes(chat.id)
        off = self.i18n.plain(chat.lang, "settings.off")
        return self.i18n.t(chat.lang, "settings.delivery", mode=self._digest_mode(chat, digest), quiet=quiet or off,
                           limit=off if limit is None else limit, waiting=self.s.digests.pending_count(chat.id))

    def digest(self, request: Request) -> list[Reply]:
        """/digest daily HH:MM[,HH:MM...], /digest hourly, /digest off: digests instead of instant pushes."""
        chat = request.chat
        word, _, rest = request.args.strip().partition(" ")
        word = word.lower()
        value: str | None
        if word == OFF and not rest.strip():
            value = None
        elif word == HOURLY and not rest.strip():
            value = HOURLY
        elif word == DAILY and (times := parse_digest_times(rest)) is not None:
            value = format_times(times)
        else:
            digest, _, _ = self.s.digests.modes(chat.id)
            return [self._reply(chat.lang, "digest.usage", mode=self._digest_mode(chat, digest))]
        self.s.digests.set_modes(chat.id, digest=value)
        return [self._reply(chat.lang, "digest.done", mode=self._digest_mode(chat, value))]

    def quiet(self, request: Request) -> list[Reply]:
        """/quiet HH:MM-HH:MM or /quiet off: nothing is sent then; what arrives comes as one digest at the end."""
        chat, text = request.chat, request.args.strip()
        zone, _ = self.s.schedule.modes(chat.id)
        if text.lower() == OFF:
            self.s.digests.set_modes(chat.id, quiet=None)
            return [self._reply(chat.lang, "quiet.off")]
        span = parse_quiet(text) if text else None
        if span is None:
            _, quiet, _ = self.s.digests.modes(chat.id)
            return [self._reply(chat.lang, "quiet.usage", zone=zone, quiet=quiet or self.i18n.plain(chat.lang, "settings.off"))]
        value = f"{format_times(span[:1])}-{format_times(span[1:])}"
        self.s.digests.set_modes(chat.id, quiet=value)
        return [self._reply(chat.lang, "quiet.done", quiet=value, zone=zone)]

    def limit(self, request: Request) -> list[Reply]:
        """/limit N or /limit off: at most N pushes a local day; further stories roll into the next digest."""
        chat, text = request.chat, request.args.strip().lower()
        if text == OFF:
            self.s.digests.set_modes(chat.id, daily_limit=None)
            return [self._reply(chat.lang, "limit.off")]
        if not (text.isdigit() and len(text) <= 4 and int(text) >= 1):
            _, _, limit = self.s.digests.modes(chat.id)
            shown = self.i18n.plain(chat.lang, "settings.off") if limit is None else limit
            return [self._reply(chat.lang, "limit.usage", limit=shown)]
        self.s.digests.set_modes(chat.id, daily_limit=int(text))
        return [self._reply(chat.lang, "limit.done", limit=int(text))]

    def timezone(self, request: Request) -> list[Reply]:
        """/timezone ZONE: the chat's time zone (IANA names, WIB/WITA/WIT, UTC, UTC+7)."""
        chat, text = request.chat, request.args.strip()
        if not text:
            current, _ = self.s.schedule.modes(chat.id)
            return [self._reply(chat.lang, "timezone.usage", zone=current, time=self._clock_text(chat.id))]
        zone = parse_zone(text)
        if zone is None:
            return [self._reply(chat.lang, "timezone.unknown", zone=truncate(text, NAME_CHARS))]
        self.s.schedule.set_timezone(chat.id, zone)
        self.s.digests.rescheduled(chat.id)  # waiting digests move to the new local times
        return [self._reply(chat.lang, "timezone.done", zone=zone, time=self._clock_text(chat.id))]

    def silent(self, request: Request) -> list[Reply]:
        """/silent on|off: pushes without a notification sound."""
        chat, word = request.chat, request.args.strip().lower()
        if word not in (ON, OFF):
            _, silent = self.s.schedule.modes(chat.id)
            state = self.i18n.plain(chat.lang, "settings.on" if silent else "settings.off")
            return [self._reply(chat.lang, "silent.usage", state=state)]
        self.s.schedule.set_silent(chat.id, word == ON)
        return [self._reply(chat.lang, "silent.on" if word == ON else "silent.off")]

    def snooze(self, request: Request) -> list[Reply]:
        """/snooze TAG DURATION (8h, 1d, 1w) or /snooze TAG off: pause one follow; its stories are skipped."""
        chat = request.chat
        query, _, last = request.args.strip().rpartition(" ")
        span = parse_duration(last)
        if not query.strip() or (span is None and last.lower() != OFF):
            return [self._reply(chat.lang, "snooze.usage")]
        parsed = self.s.follows.parse(query)
        wanted = {q.key for q in parsed.follows}
        ref = next((ref for ref in self.s.follows.of_chat(chat.id) if ref.query.key in wanted), None)
        if ref is None:
            return [self._reply(chat.lang, "snooze.not_following", follow=truncate(query.strip(), NAME_CHARS))]
        if span is None:
            key = "snooze.off" if self.s.schedule.unsnooze(chat.id, ref.query.key) else "snooze.not_snoozed"
            return [self._reply(chat.lang, key, follow=ref.text)]
        until = self.s.schedule.snooze(chat.id, ref.query.key, ref.text, span)
        return [self._reply(chat.lang, "snooze.done", follow=ref.text, until=self._until_text(chat.id, until))]

    def _feedback_button(self, chat: ChatInfo, kind: CallbackKind, parts: list[str]) -> CallbackResult:
        """Mute this story, snooze a follow for a day (pushes); wake a follow, unmute a story (/settings)."""
        lang = chat.lang
        if kind is CallbackKind.MUTE:
            self.s.schedule.mute_story(chat.id, parse_id(parts[0]))
            return CallbackResult(notice=self.i18n.plain(lang, "mute.done"))
        if kind is CallbackKind.UNMUTE:
            self.s.schedule.unmute_story(chat.id, parse_id(parts[0]))
            return CallbackResult(notice=self.i18n.plain(lang, "mute.undone"))
        ref = self._ref_of_code(chat.id, parts[0])
        if ref is None:
            return CallbackResult(notice=self.i18n.plain(lang, "unfollow.gone"))
        if kind is CallbackKind.UNSNOOZE:
            self.s.schedule.unsnooze(chat.id, ref.query.key)
            return CallbackResult(notice=self.i18n.plain(lang, "snooze.off", follow=truncate(ref.text, 100)))
        until = self.s.schedule.snooze(chat.id, ref.query.key, ref.text, SNOOZE_BUTTON_SPAN)
        text = self.i18n.plain(lang, "snooze.done", follow=truncate(ref.text, 60), until=self._until_text(chat.id, until))
        return CallbackResult(notice=truncate(text, MAX_NOTICE_CHARS))

    # --- admin commands -------------------------------------------------------------------------
    def stats(self, request: Request) -> list[Reply]:
        """/stats: counts of articles, chats, follows, summaries and deliveries."""
        lang = request.lang
        stats = collect_stats(self.s.db)
        deliveries = ", ".join(f"{status} {count}" for status, count in stats.deliveries.items() if count)
        return [self._reply(lang, "stats", articles=stats.articles, chats=stats.chats,
                            active_chats=stats.active_chats, subscriptions=stats.subscriptions,
                            summaries=stats.summaries, deliveries=deliveries or self.i18n.plain(lang, "stats.none"))]

    def requeue(self, request: Request) -> list[Reply]:
        """/requeue [CHAT_ID]: give parked deliveries (all, or one chat's) a fresh set of tries."""
        target = request.args.strip()
        chat_id: int | None = None
        if target:
            try:
                chat_id = int(target)
            except ValueError:
                return [self._reply(request.lang, "requeue.usage")]
        count = self.s.deliveries.requeue_parked(chat_id=chat_id)
        return [self._reply(request.lang, "requeue.done", count=count)]

    def addfeed(self, request: Request) -> list[Reply]:
        """/addfeed URL [TAG...]: poll a feed."""
        lang = request.lang
        url, _, rest = request.args.partition(" ")
        if not url or not is_url(url):
            return [self._reply(lang, "addfeed.usage")]
        try:
            feed = self.s.feeds.add(url, split_tag_args(rest))
        except USER_ERRORS as error:
            return [self._user_error(lang, "addfeed.failed", error)]
        return [self._reply(lang, "addfeed.done", id=feed.id, url=feed.url or "",
                            tags=", ".join(feed.default_tags or []) or self.i18n.plain(lang, "ingest.no_tags"))]

    def feeds(self, request: Request) -> list[Reply]:
        """/feeds: the feeds and their state."""
        lang = request.lang
        sources: list[Source] = self.s.feeds.list()
        if not sources:
            return [self._reply(lang, "feeds.none")]
        lines = [self.i18n.t(lang, "feeds.header")]
        for feed in sources:
            lines.append(self.i18n.t(lang, "feeds.item", id=feed.id, url=truncate(feed.url or "", 300),
                                     status=str(feed.status), tags=", ".join(feed.default_tags or [])))
        return [Reply(Html("\n".join(fit_lines(lines))))]

    def removefeed(self, request: Request) -> list[Reply]:
        """/removefeed URL|ID: stop polling a feed."""
        target = request.args.strip()
        if not target:
            return [self._reply(request.lang, "removefeed.usage")]
        try:
            removed = self.s.feeds.remove(parse_id(target) if target.lstrip("#").isdigit() else target)
        except ValueError:
            removed = False
        key = "removefeed.done" if removed else "removefeed.not_found"
        return [self._reply(request.lang, key, feed=truncate(target, 200))]

    # --- articles from posts --------------------------------------------------------------------
    def ingest_post(self, post: Post, source_id: int | None = None, *,
                    submitted_by_chat_id: int | None = None) -> IngestResult:
        """Store a message holding an article (IngestError when it holds none)."""
        item = parse_telegram_post(post.text, post.entities, post.url)
        item.source_id = source_id
        item.submitted_by_chat_id = submitted_by_chat_id
        return self.s.ingest.ingest(item)

    def ingest_reply(self, lang: str, post: Post, source_id: int | None = None) -> Reply:
        """Store a post for everyone and describe the outcome (for the admin who forwarded it)."""
        try:
            result = self.ingest_post(post, source_id)
        except USER_ERRORS as error:
            return self._user_error(lang, "ingest.failed", error)
        return self.describe_ingest(lang, result)

    def describe_ingest(self, lang: str, result: IngestResult) -> Reply:
        """'Stored article #12: title / Tags: …' or 'Already stored as #12'."""
        title = truncate(result.title, 200)
        if not result.created:
            return self._reply(lang, "ingest.duplicate", id=result.article_id, title=title)
        tags = ", ".join(result.tags) or self.i18n.plain(lang, "ingest.no_tags")
        text = self.i18n.t(lang, "ingest.stored", id=result.article_id, title=title, tags=tags)
        if result.story_id != result.article_id:
            text = Html(f"{text}\n{self.i18n.t(lang, 'ingest.story', story_id=result.story_id)}")
        return Reply(text)


# Commands and buttons that change what is stored: during a database outage they say "not saved".
SAVING_COMMANDS = frozenset({Command.FOLLOW, Command.UNFOLLOW, Command.LANG})
SAVING_BUTTONS = ("unf:",)


def apology_key(error: BaseException | None, text: str = "", *, button: str | None = None) -> str:
    """The locale key of the apology for a message (or button `button`) whose handling failed:
    "not saved, try again" for a change during a database outage, "cannot reach my database" for
    anything else then, "something went wrong" otherwise. Touches no database."""
    from bot.db.engine import is_unavailable

    if not is_unavailable(error):
        return "error.generic"
    if button is not None:
        saving = button.startswith(SAVING_BUTTONS)
    else:
        head = text.strip().split(maxsplit=1)[0] if text.strip().startswith("/") else ""
        saving = head[1:].partition("@")[0].lower() in {command.value for command in SAVING_COMMANDS}
    return "error.not_saved" if saving else "error.unavailable"


# The command table: every command, who may use it, where it runs, and whether the menu shows it.
COMMANDS: dict[Command, CommandSpec] = {spec.command: spec for spec in (
    CommandSpec(Command.START, Conversation.start),
    CommandSpec(Command.HELP, Conversation.help),
    CommandSpec(Command.FOLLOW, Conversation.follow, Access.CHAT_ADMIN),
    CommandSpec(Command.UNFOLLOW, Conversation.unfollow, Access.CHAT_ADMIN),
    CommandSpec(Command.FOLLOWING, Conversation.following),
    CommandSpec(Command.PREVIEW, Conversation.preview),
    CommandSpec(Command.TAGS, Conversation.tags),
    CommandSpec(Command.LATEST, Conversation.latest),
    CommandSpec(Command.SEARCH, Conversation.search),
    CommandSpec(Command.SUMMARY, Conversation.summary, workload=Workload.SUMMARY),
    CommandSpec(Command.LANG, Conversation.lang, Access.CHAT_ADMIN),
    CommandSpec(Command.SETTINGS, Conversation.settings),
    CommandSpec(Command.TIMEZONE, Conversation.timezone, Access.CHAT_ADMIN),
    CommandSpec(Command.SILENT, Conversation.silent, Access.CHAT_ADMIN),
    CommandSpec(Command.SNOOZE, Conversation.snooze, Access.CHAT_ADMIN),
    CommandSpec(Command.DIGEST, Conversation.digest, Access.CHAT_ADMIN),
    CommandSpec(Command.QUIET, Conversation.quiet, Access.CHAT_ADMIN),
    CommandSpec(Command.LIMIT, Conversation.limit, Access.CHAT_ADMIN),
    CommandSpec(Command.ADDFEED, Conversation.addfeed, Access.BOT_ADMIN, in_menu=False),
    CommandSpec(Command.FEEDS, Conversation.feeds, Access.BOT_ADMIN, in_menu=False),
    CommandSpec(Command.REMOVEFEED, Conversation.removefeed, Access.BOT_ADMIN, in_menu=False),
    CommandSpec(Command.STATS, Conversation.stats, Access.BOT_ADMIN, in_menu=False),
    CommandSpec(Command.REQUEUE, Conversation.requeue, Access.BOT_ADMIN, in_menu=False),
)}
MENU_COMMANDS: tuple[Command, ...] = tuple(spec.command for spec in COMMANDS.values() if spec.in_menu)
