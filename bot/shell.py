"""`newsbot shell`: the bot's conversation in a terminal, on the same services and database.

The local user is a chat of kind "shell". Lines are commands as in Telegram ("/follow Rusia");
a line "@<callback_data>" presses an inline button (the shell prints each button with it).
Telegram HTML is printed as readable plain text. Works with a piped, non-interactive stdin:
it answers each line in turn and exits at end of input once pending pushes are out.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TextIO

from sqlalchemy import func, select

from bot.context import AppContext
from bot.conversation.conversation import ButtonPress, Conversation, apology_key
from bot.conversation.incoming import Incoming
from bot.conversation.messages import Buttons, CallbackResult, Reply
from bot.db.models import Article, ChatKind, Delivery, DeliveryStatus
from bot.i18n import I18n
from bot.services.deliveries import SHELL_CHAT_KINDS
from bot.wiring import Services, build_conversation, build_push_loop, build_services

log = logging.getLogger(__name__)

SHELL_CHAT_ID = 1
SHELL_USER_ID = 1
DRAIN_TIMEOUT = 30.0  # seconds to wait at end of input for pending pushes
_LINK = re.compile(r'<a\s+href="([^"]*)"\s*>(.*?)</a>', re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def html_to_text(text: str) -> str:
    """Telegram HTML as plain text: links become 'title (url)', other tags are dropped."""

    def link(match: re.Match[str]) -> str:
        url, label = html.unescape(match.group(1)), match.group(2)
        return f"{label} ({url})" if url else label

    return html.unescape(_TAG.sub("", _LINK.sub(link, text)))


def format_buttons(buttons: Buttons) -> list[str]:
    """One line per row: '[label] @callback_data' or '[label] url'."""
    lines = []
    for row in buttons:
        cells = [f"[{b.text}] @{b.callback_data}" if b.callback_data else f"[{b.text}] {b.url}" for b in row]
        lines.append("  " + "   ".join(cells))
    return lines


class ShellPrinter:
    """Writes replies and pushes to the terminal; one lock so they never interleave mid-message."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def reply(self, reply: Reply, prefix: str = "") -> None:
        text = html_to_text(reply.text)
        lines = [prefix + text if prefix else text, *format_buttons(reply.buttons)]
        self.line("\n".join(lines) + "\n")

    def notice(self, text: str) -> None:
        self.line(f"({text})\n")

    def prompt(self, text: str) -> None:
        with self._lock:
            self._out.write(text)
            self._out.flush()

    def line(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()


class ShellSession:
    """Feeds terminal lines to the conversation as the local shell chat."""

    def __init__(self, conversation: Conversation, printer: ShellPrinter, *, chat_id: int = SHELL_CHAT_ID,
                 user_lang: str | None = None) -> None:
        self.conversation = conversation
        self.printer = printer
        self.chat_id = chat_id
        self.user_lang = user_lang

    def handle_line(self, line: str) -> None:
        """Answer one line (blocking: run it in a thread)."""
        text = line.strip()
        if not text:
            return
        try:
            if text.startswith("@"):
                press = ButtonPress(self.chat_id, ChatKind.SHELL, text[1:], user_id=SHELL_USER_ID,
                                    user_lang=self.user_lang)
                self._show_callback(self.conversation.handle_callback(press))
                return
            incoming = Incoming(chat_id=self.chat_id, chat_kind=ChatKind.SHELL, text=text, user_id=SHELL_USER_ID,
                                user_lang=self.user_lang, chat_title="shell", bot_admin=True)
            for reply in self.conversation.handle(incoming):
                self.printer.reply(reply)
        except Exception as error:  # the shell keeps running; the log has the details
            key = apology_key(error, text, button=text[1:] if text.startswith("@") else None)
            if key == "error.generic":
                log.exception("command failed: %s", text[:80])
            else:  # the database is away: no traceback, the answer says what happened
                log.warning("command failed, database unavailable: %s", text[:80])
            self.printer.reply(Reply(self.conversation.i18n.t(self.user_lang, key)))

    def _show_callback(self, result: CallbackResult) -> None:
        if result.edit is not None:
            self.printer.reply(result.edit, prefix="(edited) ")
        for reply in result.replies:
            self.printer.reply(reply)
        if result.notice and not result.replies:
            self.printer.notice(result.notice)


# A terminal's usual ways out besides Ctrl-D; in the shell they are not Telegram commands.
QUIT_WORDS = frozenset({"/quit", "/exit", "quit", "exit"})


async def run_shell(
    session: ShellSession,
    stdin: TextIO,
    *,
    banner: str | None = None,
    background: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None,
    drain: Callable[[], Awaitable[None]] | None = None,
    prompt: str | None = None,
) -> None:
    """Read lines until end of input (or /quit); `background` (the push loop) runs alongside until then,
    and `drain` waits for pending pushes before it is stopped."""
    if banner:
        session.printer.line(banner)
    stop = asyncio.Event()
    task = asyncio.create_task(background(stop)) if background is not None else None
    try:
        while True:
            if prompt:
                session.printer.prompt(prompt)
            line = await asyncio.to_thread(stdin.readline)
            if not line or line.strip().lower() in QUIT_WORDS:
                break
            await asyncio.to_thread(session.handle_line, line)
        if drain is not None:
            await drain()
    finally:
        stop.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=10)
            except TimeoutError:
                task.cancel()


class ShellTransport:
    """The push loop's Transport for the terminal: prints each push and numbers it like a message id."""

    def __init__(self, printer: ShellPrinter) -> None:
        self._printer = printer
        self._next_id = 1

    async def send(self, chat_id: int, message: Reply) -> int:
        """Print the push; it cannot fail the way Telegram can."""
        self._printer.reply(message, prefix="🔔 ")
        message_id, self._next_id = self._next_id, self._next_id + 1
        return message_id

    async def probe(self) -> bool:
        """The terminal is always there."""
        return True

    async def edit(self, chat_id: int, message_id: int, message: Reply) -> None:
        """Print the new version of an earlier push (a terminal cannot change what it printed)."""
        self._printer.reply(message, prefix="✏️ ")


def undelivered(services: Services, chat_id: int) -> int:
    """Articles not yet fanned out plus this chat's deliveries not yet sent (pending or sending)."""
    with services.db.session() as session:
        waiting = session.scalar(
            select(func.count()).select_from(Delivery).where(
                Delivery.chat_id == chat_id,
                Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
            )
        ) or 0
        unfanned = session.scalar(
            select(func.count()).select_from(Article).where(Article.fanned_out_at.is_(None))
        ) or 0
    return int(waiting) + int(unfanned)


async def run_shell_app(context: AppContext, i18n: I18n, *, chat_id: int = SHELL_CHAT_ID,
                        user_lang: str | None = None, stdin: TextIO, stdout: TextIO,
                        interactive: bool = False, user_name: str = "shell",
                        services: Services | None = None, drain_timeout: float = DRAIN_TIMEOUT) -> None:
    """Build the services on `context` and run the shell, with pushes, until end of input."""
    services = services or build_services(context, i18n)
    conversation = build_conversation(services)
    printer = ShellPrinter(stdout)
    session = ShellSession(conversation, printer, chat_id=chat_id, user_lang=user_lang)
    # Create the local chat up front so pushes can reach it before the first command.
    await asyncio.to_thread(services.chats.ensure, chat_id, ChatKind.SHELL, user_name, user_lang)
    pushes = build_push_loop(services, ShellTransport(printer), kinds=SHELL_CHAT_KINDS)

    async def drain() -> None:
        # End of input: let articles stored meanwhile reach this chat before exiting.
        deadline = asyncio.get_running_loop().time() + drain_timeout
        pushes.kick()
        while await asyncio.to_thread(undelivered, services, chat_id):
            if asyncio.get_running_loop().time() >= deadline:
                log.warning("exiting with pushes still pending")
                return
            await asyncio.sleep(0.1)

    banner = i18n.plain(user_lang, "shell.banner", chat_id=chat_id) if interactive else None
    await run_shell(session, stdin, banner=banner, background=pushes.run, drain=drain,
                    prompt="> " if interactive else None)
