"""Telegram handlers: thin adapters from PTB updates to the shared Conversation and back.

Each handler parses the update, calls the blocking conversation in a worker thread
(asyncio.to_thread) and sends the returned replies as Telegram HTML.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    MessageOriginChannel,
    Update,
)
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.db.models import ChatKind
from bot.ingest.telegram_post import PostEntity
from bot.logs import RedactingFilter
from bot.telegram.conversation import (
    BotServices,
    Command,
    Conversation,
    Incoming,
    Post,
    Reply,
    article_of_buttons,
    command_of,
    needs_chat_admin,
)

log = logging.getLogger(__name__)

BOT_DATA_KEY = "newsbot"
SLOW_WORKERS = 2
T = TypeVar("T")
ADMIN_REPORT_INTERVAL = 60.0  # seconds between error reports to admins
ADMIN_REPORT_CHARS = 300
_ADMIN_STATUSES = frozenset({ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER})


class ErrorReporter:
    """Tells the bot's admins about errors, at most once per ADMIN_REPORT_INTERVAL."""

    def __init__(self, admin_ids: Sequence[int], secrets: Sequence[str], interval: float = ADMIN_REPORT_INTERVAL) -> None:
        self._admin_ids = list(admin_ids)
        self._redactor = RedactingFilter(secrets)
        self._interval = interval
        self._last = float("-inf")
        self.suppressed = 0

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

    def due(self) -> bool:
        """Whether a report may go out now (and mark it sent)."""
        now = time.monotonic()
        if now - self._last < self._interval:
            self.suppressed += 1
            return False
        self._last = now
        return True

    @property
    def admin_ids(self) -> list[int]:
        return self._admin_ids


@dataclass
class BotRuntime:
    """The one object in application.bot_data: services, conversation, background tasks."""

    services: BotServices
    conversation: Conversation
    reporter: ErrorReporter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event | None = None
    pushes: Any = None  # the PushLoop once started (kicked after in-process ingests)
    _chat_locks: dict[int, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    # Summaries and translations may take seconds: they get their own threads, so quick
    # commands (/follow, /latest) never queue behind them in asyncio's default pool.
    slow_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=SLOW_WORKERS, thread_name_prefix="bot-summary")
    )

    async def run_slow(self, func: Callable[..., T], *args: Any) -> T:
        """Run a possibly slow blocking call (summary, translation) in the summary threads."""
        return await asyncio.get_running_loop().run_in_executor(self.slow_pool, func, *args)

    @contextlib.asynccontextmanager
    async def chat_lock(self, chat_id: int) -> AsyncIterator[None]:
        """One command at a time per chat, so replies come in the order commands were sent
        (updates of different chats still run concurrently)."""
        lock, users = self._chat_locks.get(chat_id, (asyncio.Lock(), 0))
        self._chat_locks[chat_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._chat_locks[chat_id]
            if users == 1:
                del self._chat_locks[chat_id]  # nobody waits: forget it, so the dict stays small
            else:
                self._chat_locks[chat_id] = (lock, users - 1)


def runtime(context: ContextTypes.DEFAULT_TYPE) -> BotRuntime:
    """The BotRuntime built in main()."""
    value = context.bot_data[BOT_DATA_KEY]
    assert isinstance(value, BotRuntime)
    return value


# --- conversions ---------------------------------------------------------------------------
def chat_kind(chat_type: str) -> ChatKind:
    """PTB's chat type string as our ChatKind (both use Telegram's names)."""
    return ChatKind(chat_type)


def post_of(message: Message) -> Post:
    """A Telegram message as a Post for ingestion: text or caption with UTF-16 entity offsets."""
    text = message.text or message.caption or ""
    raw: Sequence[MessageEntity] = message.entities or message.caption_entities or ()
    entities = tuple(PostEntity(str(e.type), e.offset, e.length, e.url) for e in raw)
    url = None
    chat = message.chat
    if chat.type == "channel" and chat.username:
        url = f"https://t.me/{chat.username}/{message.message_id}"
    origin = message.forward_origin
    if isinstance(origin, MessageOriginChannel) and origin.chat.username:
        url = f"https://t.me/{origin.chat.username}/{origin.message_id}"
    return Post(text=text, entities=entities, url=url)


def replied_post(message: Message, bot_id: int) -> Post:
    """The message a command replies to; for the bot's own article messages, which article."""
    post = post_of(message)
    if message.from_user is not None and message.from_user.id == bot_id and message.reply_markup is not None:
        data = [b.callback_data for row in message.reply_markup.inline_keyboard for b in row
                if isinstance(b.callback_data, str)]
        return replace(post, article_id=article_of_buttons(data))
    return post


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """The reply's buttons as an inline keyboard."""
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.text, callback_data=b.callback_data, url=b.url) for b in row] for row in reply.buttons]
    )


async def send_reply(bot: Bot, chat_id: int, reply: Reply) -> None:
    """Send one reply as HTML without link preview; answers go before pushes in the limiter."""
    kwargs: dict[str, Any] = {}
    if getattr(bot, "rate_limiter", None) is not None:
        from bot.telegram.ratelimit import Priority

        kwargs["rate_limit_args"] = int(Priority.REPLY)
    await bot.send_message(
        chat_id=chat_id,
        text=reply.text,
        parse_mode=ParseMode.HTML,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        reply_markup=keyboard(reply),
        **kwargs,
    )


async def is_chat_admin(bot: Bot, chat_id: int, user_id: int | None, message: Message | None) -> bool:
    """Whether the sender administers the group (anonymous admins post as the group itself)."""
    if message is not None and message.sender_chat is not None and message.sender_chat.id == chat_id:
        return True
    if user_id is None:
        return False
    member = await bot.get_chat_member(chat_id=chat_id, user_id=user_id)
    return member.status in _ADMIN_STATUSES


def kick_pushes(rt: BotRuntime) -> None:
    """A new article may be stored: let the push loop fan it out now instead of at its next poll."""
    if rt.pushes is not None:
        rt.pushes.kick()


# --- the conversation ----------------------------------------------------------------------
async def converse(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a message through the shared conversation."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    rt = runtime(context)
    user = update.effective_user
    kind = chat_kind(chat.type)
    text = message.text or message.caption or ""
    chat_admin = True
    if needs_chat_admin(text, kind):
        chat_admin = await is_chat_admin(context.bot, chat.id, user.id if user else None, message)
    incoming = Incoming(
        chat_id=chat.id,
        chat_kind=kind,
        text=text,
        user_id=user.id if user else None,
        user_lang=user.language_code if user else None,
        chat_title=chat.title or chat.full_name or chat.username,
        chat_admin=chat_admin,
        bot_admin=user is not None and user.id in rt.services.settings.admin_ids,
        replied=replied_post(message.reply_to_message, context.bot.id) if message.reply_to_message else None,
    )
    async with rt.chat_lock(chat.id):
        if command_of(text) is Command.SUMMARY:
            replies = await rt.run_slow(rt.conversation.handle, incoming)
        else:
            replies = await asyncio.to_thread(rt.conversation.handle, incoming)
        if command_of(text) is Command.SUMMARY:
            kick_pushes(rt)  # a linked or replied article may have been stored just now
        for reply in replies:
            await send_reply(context.bot, chat.id, reply)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: greet and explain."""
    await converse(update, context)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: list the commands."""
    await converse(update, context)


async def follow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/follow TAG...: follow tags (group admins only in groups)."""
    await converse(update, context)


async def unfollow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unfollow TAG...: stop following tags."""
    await converse(update, context)


async def following(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/following: the chat's tags."""
    await converse(update, context)


async def tags(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/tags: popular tags with counts."""
    await converse(update, context)


async def lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/lang CODE: the chat's language."""
    await converse(update, context)


async def summary(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/summary ID|URL, or as a reply: an article's summary in the chat's language."""
    await converse(update, context)


async def latest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/latest [TAG] [N]: newest articles."""
    await converse(update, context)


async def search(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/search WORDS: find articles."""
    await converse(update, context)


async def settings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/settings: the chat's language and follows."""
    await converse(update, context)


async def admin_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/addfeed, /feeds, /removefeed, /stats: admins only (the conversation refuses others)."""
    await converse(update, context)


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other /command: answered with help (in groups only when addressed to this bot)."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    if chat.type != "private":
        head = (message.text or "").split(maxsplit=1)[0] if message.text else ""
        addressee = head.partition("@")[2].lower()
        if addressee != (context.bot.username or "").lower():
            return  # meant for another bot, or for people: not ours to answer in a group
    await converse(update, context)


async def private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text in a private chat: an admin's forward becomes an article, else help."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    rt = runtime(context)
    if message.forward_origin is not None and user.id in rt.services.settings.admin_ids:
        chat = await asyncio.to_thread(
            rt.services.chats.ensure, message.chat.id, ChatKind.PRIVATE, message.chat.full_name, user.language_code
        )
        source_id = None
        origin = message.forward_origin
        if isinstance(origin, MessageOriginChannel):
            source_id = await asyncio.to_thread(rt.services.chats.channel_source, origin.chat.id, origin.chat.title)
        reply = await asyncio.to_thread(rt.conversation.ingest_reply, chat.lang, post_of(message), source_id)
        kick_pushes(rt)
        await send_reply(context.bot, message.chat.id, reply)
        return
    await converse(update, context)


async def channel_post(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A post in a channel where the bot is admin: a command, or an article to store."""
    post = update.channel_post
    if post is None:
        return
    text = post.text or post.caption or ""
    if command_of(text) is not None or text.startswith("/"):
        await converse(update, context)  # only the channel's admins can post there
        return
    rt = runtime(context)
    source_id = await asyncio.to_thread(rt.services.chats.channel_source, post.chat.id, post.chat.title)
    reply = await asyncio.to_thread(rt.conversation.ingest_reply, "en", post_of(post), source_id)
    kick_pushes(rt)
    log.info("channel %s post %s: %s", post.chat.id, post.message_id, reply.text.replace("\n", " ")[:200])


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An inline button: translate, show the original, unfollow, or a summary offered after /follow."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    rt = runtime(context)
    message = query.message
    chat = update.effective_chat
    if chat is None or not isinstance(message, Message):
        await query.answer()
        return
    kind = chat_kind(chat.type)
    chat_admin = True
    if kind in (ChatKind.GROUP, ChatKind.SUPERGROUP) and query.data.startswith("unf:"):
        chat_admin = await is_chat_admin(context.bot, chat.id, query.from_user.id, None)
    result = await rt.run_slow(functools.partial(
        rt.conversation.handle_callback, chat.id, kind, query.data,
        chat_admin=chat_admin, user_lang=query.from_user.language_code,
    ))
    try:
        await query.answer(text=result.notice[:200] if result.notice else None)
    except BadRequest:
        # A slow translation can outlive the query (Telegram gives ~15 s); the edit still counts.
        log.info("callback query expired before it was answered")
    if result.edit is not None:
        try:
            await query.edit_message_text(
                text=result.edit.text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=keyboard(result.edit),
            )
        except BadRequest as error:
            if "not modified" not in error.message.lower():
                raise
    for reply in result.replies:
        await send_reply(context.bot, chat.id, reply)


async def membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The bot was blocked, removed or added: stop or resume pushes to that chat at once."""
    change = update.my_chat_member
    if change is None:
        return
    rt = runtime(context)
    chat = change.chat
    status = change.new_chat_member.status
    if status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
        await asyncio.to_thread(rt.services.chats.deactivate, chat.id, f"bot status in chat: {status}")
        log.info("chat %s deactivated: bot %s", chat.id, status)
    elif chat.type != "private":
        # Added to a group or channel: remember it (language from whoever added the bot).
        user = change.from_user
        await asyncio.to_thread(rt.services.chats.ensure, chat.id, chat_kind(chat.type), chat.title,
                                user.language_code if user else None)


async def migrated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group became a supergroup: its follows and language move to the new chat id."""
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    rt = runtime(context)
    await asyncio.to_thread(rt.services.chats.migrate, message.chat.id, message.migrate_to_chat_id)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error (token redacted by the log filter), apologise to the chat, tell admins briefly."""
    error = context.error
    log.error("error while handling an update", exc_info=error)
    rt = context.bot_data.get(BOT_DATA_KEY)
    if not isinstance(rt, BotRuntime):
        return
    i18n = rt.services.i18n
    chat = update.effective_chat if isinstance(update, Update) else None
    # Apologise where someone asked something; never into a channel's public feed.
    if chat is not None and chat.type != "channel" and update.effective_message is not None:  # type: ignore[union-attr]
        try:
            info = await asyncio.to_thread(rt.services.chats.get, chat.id)
            await send_reply(context.bot, chat.id, Reply(i18n.t(info.lang if info else None, "error.generic")))
        except Exception:  # noqa: BLE001 - the error handler must not fail itself
            log.warning("could not tell the chat about the error", exc_info=True)
    if not rt.reporter.admin_ids or not rt.reporter.due():
        return
    description = rt.reporter.redact(f"{type(error).__name__}: {error}")[:ADMIN_REPORT_CHARS]
    for admin_id in rt.reporter.admin_ids:
        try:
            await send_reply(context.bot, admin_id, Reply(i18n.t(None, "error.admin_report", error=description)))
        except TelegramError:
            log.warning("could not report the error to admin %s", admin_id)

