"""The PTB Application: built once with every handler, menu and background task."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import urlsplit

from telegram import Bot, BotCommand, Update
from telegram.error import InvalidToken, NetworkError, TimedOut
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
from bot.conversation.conversation import COMMANDS, MENU_COMMANDS
from bot.conversation.messages import Reply
from bot.i18n import DEFAULT_LANG, Html, I18n
from bot.ops.health import health_task
from bot.services.pushes import ParkedNotice
from bot.telegram import handlers
from bot.telegram.handlers import ADMIN_REPORT_CHARS, BOT_DATA_KEY, BotRuntime, ErrorReporter, send_reply
from bot.telegram.ratelimit import build_rate_limiter
from bot.telegram.transport import SEND_TIMEOUT, TelegramTransport, send_defaults
from bot.wiring import Services, build_conversation, build_push_loop, build_services

log = logging.getLogger(__name__)
EVENT_LOOP_SWITCH_INTERVAL = 0.001  # seconds; see run_application

# Commands in private chats, groups and channel posts; edits of old messages are not commands.
_NEW_MESSAGES = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
# Only what a handler below handles: Telegram then never sends joins, leaves or reactions.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CHANNEL_POST, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER]
BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
STARTUP_MAX_DELAY = 60.0  # longest pause between getMe tries while Telegram is unreachable at start


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
    application.add_handler(CommandHandler([c.value for c in COMMANDS], handlers.command, filters=_NEW_MESSAGES))
    application.add_handler(MessageHandler(filters.UpdateType.CHANNEL_POST, handlers.channel_post))
    application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, handlers.command))
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
    services: Services | None = None,
    background: list[BackgroundTask] | None = None,
) -> Application:
    """The Application with handlers, rate limiter, menus and background tasks (push loop, feeds, health)."""
    settings = context.settings
    token = token_of(settings)
    services = services or build_services(context, i18n)
    # One limiter for replies and pushes, so together they stay within Telegram's limits.
    limiter = build_rate_limiter(settings)
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_url.replace("/bot", "/file/bot", 1))
        .defaults(send_defaults())
        .concurrent_updates(True)
        .rate_limiter(limiter)
        # A slow Telegram (answers after 8 s) must not look like a failed send: a timed-out send
        # that Telegram did process is sent again (docs/pushes.md). PTB's default is 5 s.
        .read_timeout(SEND_TIMEOUT)
        .write_timeout(SEND_TIMEOUT)
        .connect_timeout(10.0)
        .pool_timeout(SEND_TIMEOUT)
    )
    runtime = BotRuntime(
        services=services,
        conversation=build_conversation(services),
        reporter=ErrorReporter(settings.admin_ids, [token]),
    )

    async def post_init(application: Application) -> None:
        await set_menus(application, i18n)
        runtime.stop = asyncio.Event()
        tasks = background if background is not None else default_background(application, runtime)
        for task in tasks:
            runtime.tasks.append(asyncio.create_task(task(runtime.stop)))

    async def post_shutdown(application: Application) -> None:
        await stop_background(runtime)
        await asyncio.to_thread(runtime.close_pools)
        await asyncio.to_thread(services.close)

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


def default_background(application: Application, runtime: BotRuntime) -> list[BackgroundTask]:
    """The push loop (Telegram chats), the feed poller and, with HEALTH_PORT, the health server."""
    services = runtime.services
    bot = application.bot

    async def on_parked(notices: Sequence[ParkedNotice]) -> None:
        # Parked deliveries are visible to admins: one short message per batch (the push loop
        # calls this at most once a minute and never while Telegram fails; raising keeps them).
        if not runtime.reporter.admin_ids or not notices:
            return
        notice = notices[0]
        text = services.i18n.t(None, "error.parked", delivery_id=notice.delivery_id, article_id=notice.article_id,
                               chat_id=notice.chat_id, attempts=notice.attempts,
                               error=runtime.reporter.redact(notice.error)[:ADMIN_REPORT_CHARS])
        if len(notices) > 1:
            text = Html(f"{text}\n{services.i18n.t(None, 'error.parked_more', count=len(notices) - 1)}")
        for admin_id in runtime.reporter.admin_ids:
            await send_reply(bot, admin_id, Reply(text))

    pushes = build_push_loop(services, TelegramTransport(bot), limiter=getattr(bot, "rate_limiter", None),
                             on_parked=on_parked)
    runtime.pushes = pushes

    async def poll_feeds(stop: asyncio.Event) -> None:
        from bot.ingest.feeds import run_feed_poller

        await run_feed_poller(services.feeds, stop, services.settings.feed_poll_interval)

    tasks: list[BackgroundTask] = [pushes.run, poll_feeds]
    health = health_task(services.settings, services.db, services.summaries.status_line)
    if health is not None:
        tasks.append(health)  # HEALTH_PORT: /healthz, /readyz, /metrics
    return tasks


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
        "allowed_updates": ALLOWED_UPDATES,
    }


class TokenRefused(Exception):
    """Telegram refused TELEGRAM_BOT_TOKEN (revoked or mistyped): waiting will not help."""


async def _get_me(settings: Settings) -> None:
    bot = Bot(token_of(settings), base_url=settings.telegram_base_url)
    async with bot:  # initialize() asks getMe
        pass


def wait_for_telegram(settings: Settings, *, sleep: Callable[[float], None] = time.sleep,
                      first_delay: float = 1.0, max_delay: float = STARTUP_MAX_DELAY) -> None:
    """Ask getMe until the Bot API answers: an unreachable Telegram at start is waited out, one
    line per try with a growing pause; a refused token raises TokenRefused at once."""
    delay = first_delay
    while True:
        try:
            asyncio.run(_get_me(settings))
            return
        except InvalidToken as error:
            raise TokenRefused(str(error)) from None
        except (NetworkError, TimedOut) as error:  # RetryAfter and server errors included
            log.warning("Telegram Bot API not reachable (%s); trying again in %.0f s", error.message, delay)
        sleep(delay)
        delay = min(max_delay, delay * 2)


def run_application(application: Application, settings: Settings) -> None:
    """Long polling, or a webhook with a secret token when WEBHOOK_URL is set (blocks)."""
    wait_for_telegram(settings)
    # Busy background threads (a fan-out, the sends' bookkeeping) keep the GIL up to the switch
    # interval each time the event loop asks for it, and a reply takes many loop steps: 1 ms
    # instead of 5 ms (docs/speed.md, bench/bench_latency.py).
    sys.setswitchinterval(EVENT_LOOP_SWITCH_INTERVAL)
    if settings.webhook_url:
        application.run_webhook(**webhook_options(settings))
        return
    application.run_polling(allowed_updates=ALLOWED_UPDATES)
