"""Telegram handlers: thin adapters from PTB updates to the shared Conversation and back.

Each handler turns the update into the conversation's `Incoming` or `ButtonPress`, asks
Telegram for the sender's rights only when the conversation says so, runs the blocking
conversation on the threads its workload calls for, and sends back the replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from telegram import Bot, CallbackQuery, Message, MessageEntity, MessageOriginChannel, Update
from telegram.constants import ChatMemberStatus
from telegram.error import BadRequest, NetworkError, TelegramError, TimedOut
from telegram.ext import ContextTypes

from bot.conversation.conversation import ButtonPress, Conversation, Workload, apology_key
from bot.conversation.incoming import Incoming, Post, article_of_buttons
from bot.conversation.messages import MAX_NOTICE_CHARS, Reply
from bot.db.engine import is_unavailable
from bot.db.models import ChatKind
from bot.i18n import I18n
from bot.ingest.telegram_post import PostEntity
from bot.logs import RedactingFilter, Throttle
from bot.services.pushes import PushLoop
from bot.telegram.ratelimit import Priority
from bot.telegram.transport import reply_markup, send_message
from bot.wiring import Services

log = logging.getLogger(__name__)

BOT_DATA_KEY = "newsbot"
SUMMARY_THREADS = 2
FETCH_THREADS = 4
T = TypeVar("T")
ADMIN_REPORT_INTERVAL = 60.0  # seconds between error reports to admins
ADMIN_REPORT_CHARS = 300
_ADMIN_STATUSES = frozenset({ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER})
_GONE_STATUSES = frozenset({ChatMemberStatus.BANNED, ChatMemberStatus.LEFT})


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


def _pool(threads: int, name: str) -> Callable[[], ThreadPoolExecutor]:
    return lambda: ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)


@dataclass
class BotRuntime:
    """The one object in application.bot_data: services, conversation, threads, background tasks."""

    services: Services
    conversation: Conversation
    reporter: ErrorReporter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event | None = None
    pushes: PushLoop | None = None  # kicked after in-process ingests
    _chat_locks: dict[int, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    # Summaries may take seconds and page downloads up to FETCH_TIMEOUT: each gets its own
    # threads, so quick commands (/follow, /latest) never queue behind them, and downloads
    # (which any user can start) never hold the summary threads.
    summary_pool: ThreadPoolExecutor = field(default_factory=_pool(SUMMARY_THREADS, "bot-summary"))
    fetch_pool: ThreadPoolExecutor = field(default_factory=_pool(FETCH_THREADS, "bot-fetch"))
    # Buttons whose work is running: (chat id, message id, callback data).
    pressed: set[tuple[int, int, str]] = field(default_factory=set)

    @property
    def i18n(self) -> I18n:
        return self.services.i18n

    async def run(self, workload: Workload, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on the threads its workload calls for."""
        if workload is Workload.QUICK:
            return await asyncio.to_thread(func, *args)
        pool = self.summary_pool if workload is Workload.SUMMARY else self.fetch_pool
        return await asyncio.get_running_loop().run_in_executor(pool, func, *args)

    def close_pools(self) -> None:
        for pool in (self.summary_pool, self.fetch_pool):
            pool.shutdown(wait=True, cancel_futures=True)

    def kick_pushes(self) -> None:
        """A new article may be stored: let the push loop fan it out now instead of at its next poll."""
        if self.pushes is not None:
            self.pushes.kick()

    @contextlib.asynccontextmanager
    async def chat_lock(self, chat_id: int) -> AsyncIterator[None]:
        """One message at a time per chat, so replies come in the order they were asked
        (messages of different chats still run concurrently)."""
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
    """The BotRuntime built in build_application()."""
    value = context.bot_data[BOT_DATA_KEY]
    assert isinstance(value, BotRuntime)
    return value


# --- conversions ---------------------------------------------------------------------------
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


async def is_chat_admin(bot: Bot, chat_id: int, user_id: int | None) -> bool:
    """Whether the user administers the group or channel, as Telegram says now."""
    if user_id is None:
        return False
    member = await bot.get_chat_member(chat_id=chat_id, user_id=user_id)
    return member.status in _ADMIN_STATUSES


async def incoming_of(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Incoming | None:
    """The update's message as an Incoming, with the sender's rights asked of Telegram if needed."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return None
    rt = runtime(context)
    user = update.effective_user
    incoming = Incoming(
        chat_id=chat.id,
        chat_kind=ChatKind(chat.type),
        text=message.text or message.caption or "",
        user_id=user.id if user else None,
        user_lang=user.language_code if user else None,
        chat_title=chat.title or chat.full_name or chat.username,
        bot_admin=user is not None and user.id in rt.services.settings.admin_ids,
        replied=replied_post(message.reply_to_message, context.bot.id) if message.reply_to_message else None,
        # A channel post, or an anonymous group admin writing as the group.
        posted_by_chat=message.sender_chat is not None and message.sender_chat.id == chat.id,
        thread_id=message.message_thread_id if message.is_topic_message else None,
    )
    if rt.conversation.must_check_admin(incoming):
        incoming = replace(incoming, chat_admin=await is_chat_admin(context.bot, chat.id, incoming.user_id))
    return incoming


async def send_reply(bot: Bot, chat_id: int, reply: Reply) -> None:
    """Send one reply; answers go before pushes in the shared rate limiter."""
    await send_message(bot, chat_id, reply, Priority.REPLY)


async def answer(rt: BotRuntime, bot: Bot, incoming: Incoming, call: Callable[[], list[Reply]]) -> None:
    """Run the conversation for one message in its chat's turn and send what it says."""
    workload = rt.conversation.workload(incoming)
    async with rt.chat_lock(incoming.chat_id):
        replies = await rt.run(workload, call)
        if workload is not Workload.QUICK:
            rt.kick_pushes()  # an admin's link or reply may have stored an article for everyone
        for reply in replies:
            if incoming.thread_id is not None and reply.thread_id is None:
                reply = replace(reply, thread_id=incoming.thread_id)  # answered in the topic it was asked in
            await send_reply(bot, incoming.chat_id, reply)


# --- handlers ------------------------------------------------------------------------------
async def command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any command of the conversation's table (in groups, unknown ones only when addressed to us)."""
    incoming = await incoming_of(update, context)
    if incoming is None:
        return
    rt = runtime(context)
    if incoming.chat_kind is not ChatKind.PRIVATE:
        head = incoming.text.split(maxsplit=1)[0] if incoming.text.strip() else ""
        addressee = head.partition("@")[2].lower()
        ours = addressee == (context.bot.username or "").lower()
        if (addressee and not ours) or (rt.conversation.spec(incoming) is None and not ours):
            return  # meant for another bot, or for people: not ours to answer in a group
    await answer(rt, context.bot, incoming, lambda: rt.conversation.handle(incoming))


async def private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text in a private chat: a forward (an admin's becomes an article), a pasted link, or a hint."""
    incoming = await incoming_of(update, context)
    message = update.effective_message
    if incoming is None or message is None:
        return
    rt = runtime(context)
    origin = message.forward_origin
    if origin is None:
        await answer(rt, context.bot, incoming, lambda: rt.conversation.handle(incoming))
        return
    post = post_of(message)

    def forwarded() -> list[Reply]:
        source_id = None
        if isinstance(origin, MessageOriginChannel) and incoming.bot_admin:
            source_id = rt.services.chats.channel_source(origin.chat.id, origin.chat.title)
        return rt.conversation.handle_forward(incoming, post, source_id)

    async with rt.chat_lock(incoming.chat_id):
        replies = await rt.run(Workload.FETCH, forwarded)  # may fetch the page the forward links to
        rt.kick_pushes()
        for reply in replies:
            await send_reply(context.bot, incoming.chat_id, reply)


async def channel_post(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A post in a channel where the bot is admin: a command, or an article to store and push."""
    post = update.channel_post
    if post is None:
        return
    text = post.text or post.caption or ""
    if text.startswith("/"):
        await command(update, context)  # only the channel's admins can post there
        return
    rt = runtime(context)
    reply = await asyncio.to_thread(rt.conversation.channel_post, post.chat.id, post.chat.title, post_of(post))
    rt.kick_pushes()
    log.info("channel %s post %s: %s", post.chat.id, post.message_id, reply.text.replace("\n", " ")[:200])


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An inline button: translate, show the original, unfollow, or a summary offered after /follow."""
    query = update.callback_query
    chat = update.effective_chat
    if query is None or query.data is None:
        return
    if chat is None or not isinstance(query.message, Message):
        await query.answer()
        return
    rt = runtime(context)
    press = ButtonPress(chat_id=chat.id, chat_kind=ChatKind(chat.type), data=query.data,
                        user_id=query.from_user.id, user_lang=query.from_user.language_code)
    if rt.conversation.must_check_presser(press.chat_kind, press.data):
        press = replace(press, chat_admin=await is_chat_admin(context.bot, chat.id, query.from_user.id))
    # Slow buttons are answered at once ("Translating…"), then the message is edited when the work
    # is done; pressing the same button again meanwhile starts nothing new.
    acknowledgement = rt.conversation.acknowledgement(press)
    key = (chat.id, query.message.message_id, press.data)
    if acknowledgement is not None:
        if key in rt.pressed:
            await _answer_query(query, rt.i18n.plain(rt.i18n.lang_or_default(press.user_lang), "button.busy"))
            return
        await _answer_query(query, acknowledgement)
        rt.pressed.add(key)
    try:
        result = await rt.run(Workload.SUMMARY, rt.conversation.handle_callback, press)
    finally:
        rt.pressed.discard(key)
    if acknowledgement is None:
        await _answer_query(query, result.notice)
    if result.edit is not None:
        try:
            await query.edit_message_text(text=result.edit.text, reply_markup=reply_markup(result.edit))
        except BadRequest as error:
            if "not modified" not in error.message.lower():
                raise
    for reply in result.replies:
        await send_reply(context.bot, chat.id, reply)


async def _answer_query(query: CallbackQuery, notice: str | None) -> None:
    """Answer a button press (a toast when `notice` is set); a late answer is only logged."""
    try:
        await query.answer(text=notice[:MAX_NOTICE_CHARS] if notice else None)
    except BadRequest:
        log.info("callback query expired before it was answered")


async def membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The bot was blocked, removed, unblocked or added: stop or resume pushes to that chat at once."""
    change = update.my_chat_member
    if change is None:
        return
    rt = runtime(context)
    chat = change.chat
    status = change.new_chat_member.status
    if status in _GONE_STATUSES:
        await asyncio.to_thread(rt.services.chats.deactivate, chat.id, f"bot status in chat: {status}")
        return
    # Added (or unblocked): remember the chat, active again (language from whoever added the bot).
    user = change.from_user
    await asyncio.to_thread(rt.services.chats.ensure, chat.id, ChatKind(chat.type), chat.title or chat.full_name,
                            user.language_code if user else None)


async def migrated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group became a supergroup: its follows, language and unsent pushes move to the new chat id."""
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    rt = runtime(context)
    await asyncio.to_thread(rt.services.chats.migrate, message.chat.id, message.migrate_to_chat_id)


_errors = Throttle(60.0)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error (token redacted by the log filter), apologise to the chat, tell admins briefly.

    Nothing here touches the database, which may be what failed: the apology is in the user's
    Telegram language. A database outage is one rate-limited line without a traceback, and the
    user hears "not saved, try again" when the command would have changed something.
    """
    error = context.error
    if update is None and isinstance(error, NetworkError | TimedOut):
        # getUpdates failing while Telegram is away (PTB retries by itself): one line, then one a
        # minute with the count; no traceback per request, no admin report (it could not arrive).
        _errors.log(log, logging.WARNING, "getUpdates", "getUpdates failed (%s: %s); retrying",
                    type(error).__name__, error.message)
        return
    db_down = is_unavailable(error)
    if db_down:
        _errors.log(log, logging.WARNING, "db", "database unavailable while handling an update: %s: %s",
                    type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")
    else:
        log.error("error while handling an update", exc_info=error)
    rt = context.bot_data.get(BOT_DATA_KEY)
    if not isinstance(rt, BotRuntime):
        return
    chat = update.effective_chat if isinstance(update, Update) else None
    message = update.effective_message if isinstance(update, Update) else None
    user = update.effective_user if isinstance(update, Update) else None
    lang = user.language_code if user else None
    query = update.callback_query if isinstance(update, Update) else None
    text = (message.text or message.caption or "") if message is not None else ""
    key = apology_key(error, text, button=(query.data or "") if query is not None else None)
    if query is not None and db_down:
        with contextlib.suppress(TelegramError):
            await query.answer(text=rt.i18n.plain(lang, key)[:MAX_NOTICE_CHARS])
    # Apologise where someone asked something, never into a channel's public feed; in the user's
    # Telegram language, without the database (which may be what failed).
    elif chat is not None and chat.type != "channel" and message is not None:
        try:
            await send_reply(context.bot, chat.id, Reply(rt.i18n.t(lang, key)))
        except TelegramError:
            _errors.log(log, logging.WARNING, "apology", "could not tell the chat about the error")
    if db_down or not rt.reporter.admin_ids or not rt.reporter.due():
        return  # a database outage is in the logs (and /readyz); admins are not flooded with it
    description = rt.reporter.redact(f"{type(error).__name__}: {error}")[:ADMIN_REPORT_CHARS]
    for admin_id in rt.reporter.admin_ids:
        try:
            await send_reply(context.bot, admin_id, Reply(rt.i18n.t(None, "error.admin_report", error=description)))
        except TelegramError:
            log.warning("could not report the error to admin %s", admin_id)
