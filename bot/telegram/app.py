"""The PTB Application: built once in main() with every handler, menu and background task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.config import Settings
from bot.context import AppContext
from bot.i18n import DEFAULT_LANG, I18n
from bot.telegram import handlers
from bot.telegram.conversation import MENU_COMMANDS, BotServices, Command, Conversation, build_services
from bot.telegram.handlers import BOT_DATA_KEY, BotRuntime, ErrorReporter

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
    if services is None:
        from bot.jobs import build_summary_provider

        # In-process summaries without BROKER_URL; queued for `newsbot worker` with it.
        services = build_services(settings, context.db, i18n, summaries=build_summary_provider(context))
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_url.replace("/bot", "/file/bot", 1))
        .concurrent_updates(True)
    )
    try:
        from bot.telegram.ratelimit import build_rate_limiter

        builder = builder.rate_limiter(build_rate_limiter(settings))
    except ImportError:  # pragma: no cover - the push helper's limiter is part of the package
        log.warning("no shared rate limiter; sending without one")
    runtime = BotRuntime(
        services=services,
        conversation=Conversation(services),
        reporter=ErrorReporter(settings.admin_ids, [token]),
    )
    tasks = list(background) if background is not None else default_background(services)

    async def post_init(application: Application) -> None:
        await set_menus(application, i18n)
        runtime.stop = asyncio.Event()
        for task in tasks:
            runtime.tasks.append(asyncio.create_task(task(runtime.stop)))

    async def post_shutdown(application: Application) -> None:
        await stop_background(runtime)

    application = builder.post_init(post_init).post_shutdown(post_shutdown).build()
    application.bot_data[BOT_DATA_KEY] = runtime
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


def default_background(services: BotServices) -> list[BackgroundTask]:
    """The push loop and the feed poller, when their modules are installed."""
    tasks: list[BackgroundTask] = []
    push = _push_loop_task(services)
    if push is not None:
        tasks.append(push)
    feeds = _feed_poller_task(services)
    if feeds is not None:
        tasks.append(feeds)
    health = _health_task(services)
    if health is not None:
        tasks.append(health)
    return tasks


def _health_task(services: BotServices) -> BackgroundTask | None:
    """/healthz, /readyz and /metrics on HEALTH_PORT (None when unset)."""
    from bot.ops.health import health_task

    return health_task(services.settings, services.db, services.summaries.status_line)


def _push_loop_task(services: BotServices) -> BackgroundTask | None:
    return None  # wired once bot/telegram/pushes.py lands


def _feed_poller_task(services: BotServices) -> BackgroundTask | None:
    return None  # wired once bot/ingest/feeds.py lands


def run_application(application: Application, settings: Settings) -> None:
    """Long polling, or a webhook with a secret token when WEBHOOK_URL is set (blocks)."""
    if settings.webhook_url:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        path = settings.webhook_url.rstrip("/").rsplit("/", 1)[-1] if "/" in settings.webhook_url.split("//", 1)[-1] else ""
        application.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=path,
            webhook_url=settings.webhook_url,
            secret_token=secret,
            allowed_updates=Update.ALL_TYPES,
        )
        return
    application.run_polling(allowed_updates=Update.ALL_TYPES)
