"""The PTB Application: built once in main() with every handler, menu and background task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.config import Settings
from bot.context import AppContext
from bot.i18n import DEFAULT_LANG, I18n
from bot.ops.health import health_task
from bot.telegram import handlers
from bot.telegram.conversation import MENU_COMMANDS, BotServices, Command, Conversation, build_services
from bot.telegram.handlers import ADMIN_REPORT_CHARS, BOT_DATA_KEY, BotRuntime, ErrorReporter, send_reply
from bot.telegram.conversation import Reply
from bot.telegram.ratelimit import SendRateLimiter, build_rate_limiter

log = logging.getLogger(__name__)

# Commands in private chats, groups and channel posts; edits of old messages are not commands.
_NEW_MESSAGES = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
BackgroundTask = Callable[[asyncio.Event], Awaitable[None]]

_COMMAND_HANDLERS = {
    Command.START: handlers.start,
    Command.HELP: handlers.help_command,
    Command.FOLLOW: handlers.follow,
    Command.UNFOLLOW: handlers.unfollow,
    Command.FOLLOWING: handlers.following,
    Command.TAGS: handlers.tags,
    Command.LANG: handlers.lang,
    Command.SUMMARY: handlers.summary,
    Command.LATEST: handlers.latest,
    Command.SEARCH: handlers.search,
    Command.SETTINGS: handlers.settings,
    Command.ADDFEED: handlers.admin_command,
    Command.FEEDS: handlers.admin_command,
    Command.REMOVEFEED: handlers.admin_command,
    Command.STATS: handlers.admin_command,
}


def token_of(settings: Settings) -> str:
    """The bot token (callers check it is set)."""
    assert settings.telegram_bot_token is not None
    return settings.telegram_bot_token.get_secret_value()


def menu(i18n: I18n, lang: str) -> list[BotCommand]:
    """The command menu in one language."""
    return [BotCommand(command.value, i18n.plain(lang, f"cmd.{command.value}")) for command in MENU_COMMANDS]


async def set_menus(application: Application, i18n: I18n) -> None:
    """setMyCommands: English as the default, then each other language by language_code."""
    await application.bot.set_my_commands(menu(i18n, DEFAULT_LANG))
    for lang in i18n.langs:
        if lang != DEFAULT_LANG:
            await application.bot.set_my_commands(menu(i18n, lang), language_code=lang)


def register_handlers(application: Application) -> None:
    """Every handler of the bot, in the order PTB tries them."""
    for command, callback in _COMMAND_HANDLERS.items():
        application.add_handler(CommandHandler(command.value, callback, filters=_NEW_MESSAGES))
    application.add_handler(MessageHandler(filters.UpdateType.CHANNEL_POST, handlers.channel_post))
    application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, handlers.unknown_command))
    application.add_handler(
        MessageHandler(filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE & ~filters.COMMAND, handlers.private_text)
    )
    application.add_handler(CallbackQueryHandler(handlers.button))
    application.add_handler(ChatMemberHandler(handlers.membership, ChatMemberHandler.MY_CHAT_MEMBER))
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, handlers.migrated), group=1)
    application.add_error_handler(handlers.on_error)


def build_application(
    context: AppContext,
    i18n: I18n,
    *,
    services: BotServices | None = None,
    background: list[BackgroundTask] | None = None,
) -> Application:
    """The Application with handlers, rate limiter, menus and background tasks (push loop, feeds)."""
    settings = context.settings
    token = token_of(settings)
    # Summaries in-process without BROKER_URL, queued for `newsbot worker` with it (build_services).
    services = services or build_services(settings, context.db, i18n)
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_url.replace("/bot", "/file/bot", 1))
        .concurrent_updates(True)
    )
    # One limiter for replies and pushes, so together they stay within Telegram's limits.
    limiter = build_rate_limiter(settings)
    builder = builder.rate_limiter(limiter)
    runtime = BotRuntime(
        services=services,
        conversation=Conversation(services),
        reporter=ErrorReporter(settings.admin_ids, [token]),
    )
    application_box: list[Application] = []
    tasks = list(background) if background is not None else default_background(services, runtime, limiter, application_box)

    async def post_init(application: Application) -> None:
        await set_menus(application, i18n)
        runtime.stop = asyncio.Event()
        for task in tasks:
            runtime.tasks.append(asyncio.create_task(task(runtime.stop)))

    async def post_shutdown(application: Application) -> None:
        await stop_background(runtime)
        await asyncio.to_thread(runtime.slow_pool.shutdown, wait=True, cancel_futures=True)
        services.feeds.close()
        close = getattr(services.summaries, "close", None)
        if close is not None:
            await asyncio.to_thread(close)

    application = builder.post_init(post_init).post_shutdown(post_shutdown).build()
    application.bot_data[BOT_DATA_KEY] = runtime
    application_box.append(application)
    register_handlers(application)
    return application


async def stop_background(runtime: BotRuntime, timeout: float = 15.0) -> None:
    """Ask the background tasks to stop and wait for them (cancel after `timeout`)."""
    if runtime.stop is not None:
        runtime.stop.set()
    if not runtime.tasks:
        return
    done, pending = await asyncio.wait(runtime.tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())
    runtime.tasks.clear()


def default_background(services: BotServices, runtime: BotRuntime, limiter: SendRateLimiter,
                       application_box: list[Application]) -> list[BackgroundTask]:
    """The push loop (Telegram chats) and the feed poller."""
    tasks: list[BackgroundTask] = [_push_loop_task(services, runtime, limiter, application_box)]
    feeds = _feed_poller_task(services)
    if feeds is not None:
        tasks.append(feeds)
    health = health_task(services.settings, services.db, services.summaries.status_line)
    if health is not None:
        tasks.append(health)  # HEALTH_PORT: /healthz, /readyz, /metrics
    return tasks


def _push_loop_task(services: BotServices, runtime: BotRuntime, limiter: SendRateLimiter,
                    application_box: list[Application]) -> BackgroundTask:
    async def run_pushes(stop: asyncio.Event) -> None:
        from bot.telegram.pushes import ParkedNotice, PushLoop
        from bot.telegram.transport import TelegramTransport

        bot = application_box[0].bot

        async def on_parked(notice: ParkedNotice) -> None:
            # Parked deliveries are visible to admins: one short message, rate-limited like errors.
            if not runtime.reporter.admin_ids or not runtime.reporter.due():
                return
            text = services.i18n.t(None, "error.parked", delivery_id=notice.delivery_id, article_id=notice.article_id,
                                   chat_id=notice.chat_id, attempts=notice.attempts,
                                   error=runtime.reporter.redact(notice.error)[:ADMIN_REPORT_CHARS])
            for admin_id in runtime.reporter.admin_ids:
                await send_reply(bot, admin_id, Reply(text))

        loop = PushLoop(db=services.db, settings=services.settings, transport=TelegramTransport(bot),
                        summaries=services.summaries, i18n=services.i18n, limiter=limiter, on_parked=on_parked)
        runtime.pushes = loop
        await loop.run(stop)

    return run_pushes


def _feed_poller_task(services: BotServices) -> BackgroundTask | None:
    async def poll_feeds(stop: asyncio.Event) -> None:
        from bot.ingest.feeds import run_feed_poller

        await run_feed_poller(services.feeds, stop, services.settings.feed_poll_interval)

    return poll_feeds


def webhook_options(settings: Settings) -> dict[str, Any]:
    """Arguments of run_webhook/start_webhook: listen address, path taken from WEBHOOK_URL, secret."""
    assert settings.webhook_url is not None
    path = urlsplit(settings.webhook_url).path.strip("/")
    return {
        "listen": settings.webhook_listen,
        "port": settings.webhook_port,
        "url_path": path,
        "webhook_url": settings.webhook_url,
        # Telegram sends it in X-Telegram-Bot-Api-Secret-Token; PTB answers 403 without it.
        "secret_token": settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
        "allowed_updates": Update.ALL_TYPES,
    }


def run_application(application: Application, settings: Settings) -> None:
    """Long polling, or a webhook with a secret token when WEBHOOK_URL is set (blocks)."""
    if settings.webhook_url:
        application.run_webhook(**webhook_options(settings))
        return
    application.run_polling(allowed_updates=Update.ALL_TYPES)
