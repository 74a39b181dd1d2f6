"""A fake Telegram Bot API HTTP server on loopback, for end-to-end tests and benchmarks.

PTB talks to it through its real HTTP stack: `ApplicationBuilder().base_url(server.base_url)`
(the same as TELEGRAM_BASE_URL=http://127.0.0.1:<port>/bot). It implements the methods the bot
uses, records every call, lets a test script incoming updates (users writing in private chats,
groups and channels, pressing buttons) and inject faults (429, 403, 400, 500, latency).

In-process use (a thread with its own event loop; works from sync and async tests):

    with FakeBotApi() as server:
        server.user_command(user_id=11, text="/follow Rusia")
        ...
        server.sent_messages(chat_id=11)

From another process (the benchmark): `python tests/fakebotapi.py --port 8081` serves the same
API plus control endpoints under /_fake/, driven by `RemoteFakeBotApi("http://127.0.0.1:8081")`,
which has the same helper methods as FakeBotApi.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_TOKEN = "123456789:TEST-fake-token_ABCdef"
BOT_USER_ID = 123456789
BOT_USERNAME = "newsbot_test_bot"

# Methods that put something into a chat; faults and latency target these.
SEND_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendPhoto",
        "sendDocument",
        "sendChatAction",
        "deleteMessage",
    }
)
# Parameters whose form value is text even when it looks like JSON ("123", "true").
_TEXT_KEYS = frozenset(
    {
        "text",
        "caption",
        "description",
        "short_description",
        "name",
        "title",
        "callback_data",
        "query",
        "url",
        "parse_mode",
        "callback_query_id",
        "secret_token",
        "language_code",
        "inline_message_id",
    }
)


class FaultKind:
    """Kinds of injected failures (values are what the control API accepts)."""

    RETRY_AFTER = "retry_after"  # 429 Too Many Requests with parameters.retry_after
    BLOCKED = "blocked"  # 403 Forbidden: bot was blocked by the user
    KICKED = "kicked"  # 403 Forbidden: bot was kicked from the group chat
    CHAT_NOT_FOUND = "chat_not_found"  # 400 Bad Request: chat not found
    SERVER_ERROR = "server_error"  # 500 Internal Server Error
    BAD_GATEWAY = "bad_gateway"  # 502 Bad Gateway
    BAD_REQUEST = "bad_request"  # 400 with a custom description
    MIGRATED = "migrated"  # 400 with parameters.migrate_to_chat_id (group became a supergroup)
    STALL = "stall"  # no answer until `until`; then answered normally if the client is still there


ALL_METHODS = ["*"]  # Fault.methods: every Bot API method, getMe and getUpdates included


@dataclass
class Fault:
    """One injected failure: for `chat_id` (None: any chat), `times` times (None: until removed)."""

    kind: str
    chat_id: int | None = None
    times: int | None = 1
    retry_after: int = 1
    description: str | None = None
    methods: list[str] | None = None  # None: every method in SEND_METHODS
    migrate_to: int | None = None
    until: float | None = None  # time.time() after which the fault is over (None: by `times`)

    def matches(self, method: str, chat_id: int | None) -> bool:
        """Whether this fault applies to a call."""
        if self.times is not None and self.times <= 0:
            return False
        if self.until is not None and time.time() >= self.until:
            return False
        if self.methods != ALL_METHODS and method not in (self.methods or SEND_METHODS):
            return False
        return self.chat_id is None or self.chat_id == chat_id

    def response(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status and Bot API error body of this fault."""
        if self.kind == FaultKind.RETRY_AFTER:
            return _error_body(
                429, f"Too Many Requests: retry after {self.retry_after}", retry_after=self.retry_after
            )
        if self.kind == FaultKind.BLOCKED:
            return _error_body(403, "Forbidden: bot was blocked by the user")
        if self.kind == FaultKind.KICKED:
            return _error_body(403, "Forbidden: bot was kicked from the group chat")
        if self.kind == FaultKind.CHAT_NOT_FOUND:
            return _error_body(400, "Bad Request: chat not found")
        if self.kind == FaultKind.MIGRATED:
            return _error_body(
                400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=self.migrate_to
            )
        if self.kind == FaultKind.SERVER_ERROR:
            return _error_body(500, "Internal Server Error")
        if self.kind == FaultKind.BAD_GATEWAY:
            return _error_body(502, "Bad Gateway")
        return _error_body(400, self.description or "Bad Request")


def _error_body(status: int, description: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
    """A Bot API error answer: HTTP status and JSON body (with `parameters` when given)."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body


@dataclass
class Call:
    """One request the bot made: method, decoded parameters, when, and how it was answered."""

    method: str
    params: dict[str, Any]
    time: float
    status: int = 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int) else None


@dataclass
class SentMessage:
    """A message the bot put into a chat; `text` is its latest version after edits."""

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    disable_preview: bool
    time: float
    reply_to_message_id: int | None = None
    edits: list[str] = field(default_factory=list)  # earlier texts, oldest first
    disable_notification: bool = False  # sent silently
    message_thread_id: int | None = None  # the forum topic it went to

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data or url) of every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b.get("text", ""), b.get("callback_data") or b.get("url") or "") for row in rows for b in row]


def _chat_type(chat_id: int) -> str:
    """Telegram's id ranges: users positive, channels/supergroups -100..., basic groups negative."""
    if chat_id > 0:
        return "private"
    if str(chat_id).startswith("-100"):
        return "supergroup"
    return "group"


def _user(user_id: int, *, first_name: str | None = None, lang: str | None = "en", is_bot: bool = False) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name or f"User{user_id}"}
    if lang:
        user["language_code"] = lang
    return user


def _command_entities(text: str) -> list[dict[str, Any]]:
    """A bot_command entity when the text starts with /command (as Telegram adds)."""
    if not text.startswith("/"):
        return []
    length = len(text.split()[0]) if text.split() else 1
    # Telegram counts UTF-16 code units; commands are ASCII so len() matches.
    return [{"type": "bot_command", "offset": 0, "length": length}]


class _Scripting:
    """Helpers that build and queue updates, and inject faults; shared by local and remote servers."""

    def push_update(self, update: dict[str, Any]) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def add_fault(self, fault: Fault) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def register_chat(  # pragma: no cover
        self, chat_id: int, chat_type: str, title: str | None = None, admins: list[int] | None = None
    ) -> None:
        raise NotImplementedError

    # --- updates -----------------------------------------------------------------------------
    def user_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str | None = None,
        chat_title: str | None = None,
        lang: str | None = "en",
        first_name: str | None = None,
        reply_to: dict[str, Any] | None = None,
        forward_from_chat: dict[str, Any] | None = None,
        entities: list[dict[str, Any]] | None = None,
        thread_id: int | None = None,
    ) -> int:
        """A user writes `text` in a private chat (default) or a group `chat_id`; returns update_id.

        `thread_id`: written inside that topic of a forum supergroup."""
        chat_id = user_id if chat_id is None else chat_id
        chat_type = chat_type or _chat_type(chat_id)
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name or f"User{user_id}"
        else:
            chat["title"] = chat_title or f"Group {chat_id}"
        self.register_chat(chat_id, chat_type, chat.get("title"))
        message: dict[str, Any] = {
            "message_id": _next_incoming_id(),
            "date": int(time.time()),
            "chat": chat,
            "from": _user(user_id, first_name=first_name, lang=lang),
            "text": text,
        }
        all_entities = (entities or []) + _command_entities(text)
        if all_entities:
            message["entities"] = all_entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if thread_id is not None:
            chat["is_forum"] = True
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if forward_from_chat is not None:
            message["forward_origin"] = {
                "type": "channel",
                "chat": forward_from_chat,
                "message_id": forward_from_chat.get("message_id", 1),
                "date": int(time.time()),
            }
        return self.push_update({"message": message})

    def user_command(self, user_id: int, text: str, **kwargs: Any) -> int:
        """A user sends a command such as "/follow Rusia" (same options as user_message)."""
        if not text.startswith("/"):
            text = "/" + text
        return self.user_message(user_id, text, **kwargs)

    def group_message(self, chat_id: int, user_id: int, text: str, *, title: str | None = None, **kwargs: Any) -> int:
        """A member `user_id` writes in group `chat_id` (negative id)."""
        return self.user_message(user_id, text, chat_id=chat_id, chat_title=title, **kwargs)

    def channel_post(
        self, chat_id: int, text: str, *, title: str | None = None, username: str | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> int:
        """A post in channel `chat_id` where the bot is an admin."""
        chat: dict[str, Any] = {"id": chat_id, "type": "channel", "title": title or f"Channel {chat_id}"}
        if username:
            chat["username"] = username
        self.register_chat(chat_id, "channel", chat["title"])
        post: dict[str, Any] = {
            "message_id": _next_incoming_id(),
            "date": int(time.time()),
            "chat": chat,
            "sender_chat": chat,
            "text": text,
        }
        if entities:
            post["entities"] = entities
        return self.push_update({"channel_post": post})

    def callback_query(
        self,
        user_id: int,
        data: str,
        *,
        message_id: int,
        chat_id: int | None = None,
        chat_type: str | None = None,
        message_text: str = "",
        lang: str | None = "en",
    ) -> int:
        """A user presses an inline button with `data` under the bot's message `message_id`."""
        chat_id = user_id if chat_id is None else chat_id
        chat_type = chat_type or _chat_type(chat_id)
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type != "private":
            chat["title"] = f"Group {chat_id}"
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": _user(BOT_USER_ID, first_name="newsbot", lang=None, is_bot=True),
            "text": message_text,
        }
        query = {
            "id": str(_next_incoming_id()),
            "from": _user(user_id, lang=lang),
            "chat_instance": str(chat_id),
            "message": message,
            "data": data,
        }
        return self.push_update({"callback_query": query})

    # --- faults --------------------------------------------------------------------------------
    def fail_retry_after(self, retry_after: int = 1, *, chat_id: int | None = None, times: int = 1) -> None:
        """Answer 429 with retry_after for `chat_id` (None: every chat) `times` times."""
        self.add_fault(Fault(FaultKind.RETRY_AFTER, chat_id=chat_id, times=times, retry_after=retry_after))

    def block_chat(self, chat_id: int) -> None:
        """From now on every send to `chat_id` gets 403 "bot was blocked by the user"."""
        self.add_fault(Fault(FaultKind.BLOCKED, chat_id=chat_id, times=None))

    def kick_from_chat(self, chat_id: int) -> None:
        """From now on every send to group `chat_id` gets 403 "bot was kicked"."""
        self.add_fault(Fault(FaultKind.KICKED, chat_id=chat_id, times=None))

    def lose_chat(self, chat_id: int) -> None:
        """From now on every send to `chat_id` gets 400 "chat not found"."""
        self.add_fault(Fault(FaultKind.CHAT_NOT_FOUND, chat_id=chat_id, times=None))

    def migrate_chat(self, chat_id: int, new_chat_id: int) -> None:
        """Group `chat_id` became supergroup `new_chat_id`: sends to the old id fail from now on."""
        self.add_fault(Fault(FaultKind.MIGRATED, chat_id=chat_id, times=None, migrate_to=new_chat_id))

    def server_outage(self, seconds: float, *, methods: list[str] | None = ALL_METHODS, status: int = 500) -> None:
        """Every call (of `methods`; None: the send methods) answers 500 (or 502) for `seconds`."""
        kind = FaultKind.SERVER_ERROR if status == 500 else FaultKind.BAD_GATEWAY
        self.add_fault(Fault(kind, times=None, methods=methods, until=time.time() + seconds))

    def stall(self, seconds: float, *, methods: list[str] | None = ALL_METHODS) -> None:
        """Calls hang for `seconds` (like an unreachable server); one whose client gave up by then
        has no effect, the others are answered normally."""
        self.add_fault(Fault(FaultKind.STALL, times=None, methods=methods, until=time.time() + seconds))

    def fail_server_error(self, *, chat_id: int | None = None, times: int | None = 1) -> None:
        """Answer 500 for `chat_id` (None: every chat) `times` times (None: always)."""
        self.add_fault(Fault(FaultKind.SERVER_ERROR, chat_id=chat_id, times=times))


_incoming_ids = itertools.count(1_000_000)
_incoming_lock = threading.Lock()


def _next_incoming_id() -> int:
    with _incoming_lock:
        return next(_incoming_ids)


class _State:
    """Everything the server knows; guarded by one lock because tests touch it from other threads."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = 1
        self.calls: list[Call] = []
        self.sent: list[SentMessage] = []
        self.by_key: dict[tuple[int, int], SentMessage] = {}
        self.next_message_id: dict[int, int] = {}
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.chats: dict[int, dict[str, Any]] = {}
        self.admins: dict[int, list[int]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.webhook: dict[str, Any] = {}
        self.hold_after: int | None = None  # sendMessage calls beyond this many successes hang
        self.held = 0  # requests hanging right now
        self.closed_topics: set[tuple[int, int]] = set()  # (chat, message_thread_id) of closed forum topics

    def push(self, update: dict[str, Any]) -> int:
        with self.lock:
            update = dict(update)
            update["update_id"] = self.next_update_id
            self.next_update_id += 1
            self.updates.append(update)
            return update["update_id"]

    def take_updates(self, offset: int | None, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            if offset is not None:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            return [dict(u) for u in self.updates[:limit]]

    def fault_for(self, method: str, chat_id: int | None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, chat_id):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None


def _decode_form(form: Any) -> dict[str, Any]:
    """PTB posts form fields whose non-string values are JSON; decode those back."""
    params: dict[str, Any] = {}
    for key, value in form.items():
        if not isinstance(value, str):
            continue  # uploaded files: not used by the bot
        if key in _TEXT_KEYS:
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


class FakeBotApi(_Scripting):
    """The fake server, run in a background thread on 127.0.0.1 (port 0 picks a free one)."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        self.token = token
        self.host = host
        self.port = port
        self._state = _State(token)
        self._state.latency = latency
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._new_update: asyncio.Event | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What TELEGRAM_BASE_URL must be for the bot to talk to this server."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeBotApi:
        """Start serving in a daemon thread; returns when the port is bound."""
        self._thread = threading.Thread(target=self._serve, name="fake-bot-api", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._start_error is not None:
            raise RuntimeError("fake Bot API did not start") from self._start_error
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop is None or self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._startup(control=False))
        except BaseException as error:
            self._start_error = error
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.close()

    async def _startup(self, *, control: bool) -> None:
        self._new_update = asyncio.Event()
        app = build_app(self._state, self._new_update, control=control)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp's private _server: set once start() returned

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- scripting -------------------------------------------------------------------------------
    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates (update_id is assigned); returns the update_id."""
        update_id = self._state.push(update)
        if self._loop is not None and self._new_update is not None:
            self._loop.call_soon_threadsafe(self._new_update.set)
        return update_id

    def add_fault(self, fault: Fault) -> None:
        """Inject a failure (see Fault)."""
        with self._state.lock:
            self._state.faults.append(fault)

    def clear_faults(self) -> None:
        with self._state.lock:
            self._state.faults.clear()

    def set_latency(self, seconds: float) -> None:
        """Delay every answer to a sending method by `seconds`."""
        self._state.latency = seconds

    def hold_sends(self, after: int) -> None:
        """Accept `after` messages in all, then let every further sendMessage hang (no answer)."""
        self._state.hold_after = after

    def release_sends(self) -> None:
        """Stop holding: hanging requests whose client is still there are accepted."""
        self._state.hold_after = None

    def held_requests(self) -> int:
        """sendMessage requests hanging right now."""
        with self._state.lock:
            return self._state.held

    def register_chat(self, chat_id: int, chat_type: str, title: str | None = None, admins: list[int] | None = None) -> None:
        """Tell the server a chat's type and title (getChat) and, for groups, its admins."""
        with self._state.lock:
            self._state.chats[chat_id] = {"id": chat_id, "type": chat_type, **({"title": title} if title else {})}
            if admins is not None:
                self._state.admins[chat_id] = list(admins)

    def close_topic(self, chat_id: int, thread_id: int) -> None:
        """From now on sendMessage into that forum topic gets 400 "TOPIC_CLOSED"."""
        with self._state.lock:
            self._state.closed_topics.add((chat_id, thread_id))

    def set_admins(self, chat_id: int, user_ids: list[int]) -> None:
        """Group admins reported by getChatMember/getChatAdministrators."""
        with self._state.lock:
            self._state.admins[chat_id] = list(user_ids)

    # --- inspection -------------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        """Every request received (optionally one method's), in order."""
        with self._state.lock:
            return [c for c in self._state.calls if method is None or c.method == method]

    def sent_messages(self, chat_id: int | None = None) -> list[SentMessage]:
        """Messages the bot sent (to one chat, or all), in the order the server accepted them."""
        with self._state.lock:
            return [m for m in self._state.sent if chat_id is None or m.chat_id == chat_id]

    def pending_updates(self) -> int:
        """Updates not yet confirmed by the bot (getUpdates offset)."""
        with self._state.lock:
            return len(self._state.updates)

    def my_commands(self) -> dict[str, list[dict[str, Any]]]:
        """The last setMyCommands per "scope type/language" key."""
        with self._state.lock:
            return dict(self._state.commands)

    def wait_for(self, predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
        """Poll `predicate(self)` until true or `timeout` seconds; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    async def async_wait_for(self, predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
        """`wait_for` for async tests (does not block the event loop)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)

    def wait_for_messages(self, count: int, chat_id: int | None = None, timeout: float = 10.0) -> list[SentMessage]:
        """Wait until at least `count` messages were sent (to `chat_id`); returns them."""
        self.wait_for(lambda s: len(s.sent_messages(chat_id)) >= count, timeout)
        return self.sent_messages(chat_id)

    async def async_wait_for_messages(self, count: int, chat_id: int | None = None, timeout: float = 10.0) -> list[SentMessage]:
        """`wait_for_messages` for async tests."""
        await self.async_wait_for(lambda s: len(s.sent_messages(chat_id)) >= count, timeout)
        return self.sent_messages(chat_id)


# --- the HTTP application --------------------------------------------------------------------


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str) -> web.Response:
    status, body = _error_body(status, description)
    return web.json_response(body, status=status)


def _bot_user() -> dict[str, Any]:
    return {
        "id": BOT_USER_ID,
        "is_bot": True,
        "first_name": "newsbot",
        "username": BOT_USERNAME,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


def _chat_json(state: _State, chat_id: int) -> dict[str, Any]:
    known = state.chats.get(chat_id)
    if known:
        return dict(known)
    chat: dict[str, Any] = {"id": chat_id, "type": _chat_type(chat_id)}
    if chat["type"] != "private":
        chat["title"] = f"Group {chat_id}"
    return chat


def _message_json(state: _State, sent: SentMessage) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": sent.message_id,
        "date": int(sent.time),
        "chat": _chat_json(state, sent.chat_id),
        "from": _bot_user(),
        "text": sent.text,
    }
    if sent.reply_markup:
        message["reply_markup"] = sent.reply_markup
    if sent.edits:
        message["edit_date"] = int(time.time())
    return message


def build_app(state: _State, new_update: asyncio.Event, *, control: bool) -> web.Application:
    """The aiohttp application: /bot<token>/<method>, plus /_fake/* control routes if `control`."""

    async def api(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        if request.content_type == "application/json":
            raw = await request.json() if request.can_read_body else {}
            params = dict(raw or {})
        else:
            params = _decode_form(await request.post())
        params.update(_decode_form(request.query))
        call = Call(method=method, params=params, time=time.time())
        with state.lock:
            state.calls.append(call)
        if token != state.token:
            call.status = 401
            return _error(401, "Unauthorized")
        handler = METHODS.get(method)
        if handler is None:
            call.status = 404
            return _error(404, "Not Found: method not found")
        chat_id = params.get("chat_id") if isinstance(params.get("chat_id"), int) else None
        if method in SEND_METHODS and state.latency > 0:
            await asyncio.sleep(state.latency)
        fault = state.fault_for(method, chat_id)
        if fault is not None and fault.kind == FaultKind.STALL:
            while fault.until is not None and time.time() < fault.until:
                await asyncio.sleep(0.05)
            if request.transport is None or request.transport.is_closing():
                call.status = 499  # the client gave up: nothing happened
                return web.Response(status=499)
            fault = state.fault_for(method, chat_id)
            if fault is not None and fault.kind == FaultKind.STALL:
                fault = None
        if fault is not None:
            status, body = fault.response()
            call.status = status
            return web.json_response(body, status=status)
        try:
            return await handler(params)
        except _ApiError as error:
            call.status = error.status
            return _error(error.status, error.description)

    async def get_me(params: dict[str, Any]) -> web.Response:
        return _ok(_bot_user())

    async def get_updates(params: dict[str, Any]) -> web.Response:
        offset = params.get("offset")
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        while True:
            new_update.clear()
            updates = state.take_updates(offset, limit)
            remaining = deadline - time.monotonic()
            if updates or remaining <= 0:
                return _ok(updates)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(new_update.wait(), remaining)

    async def send_message(params: dict[str, Any]) -> web.Response:
        chat_id = _require_chat(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        thread = params.get("message_thread_id")
        if isinstance(thread, int) and (chat_id, thread) in state.closed_topics:
            raise _ApiError(400, "Bad Request: TOPIC_CLOSED")
        if state.hold_after is not None and len(state.sent) >= state.hold_after:
            # Hang like an unreachable server: the message is only accepted after release, and
            # never if the client goes away first (aiohttp cancels this handler then).
            with state.lock:
                state.held += 1
            try:
                while state.hold_after is not None and len(state.sent) >= state.hold_after:
                    await asyncio.sleep(0.02)
            finally:
                with state.lock:
                    state.held -= 1
        preview = params.get("link_preview_options") or {}
        reply = params.get("reply_parameters") or {}
        with state.lock:
            message_id = state.next_message_id.get(chat_id, 1)
            state.next_message_id[chat_id] = message_id + 1
            sent = SentMessage(
                chat_id=chat_id,
                message_id=message_id,
                text=text,
                parse_mode=params.get("parse_mode"),
                reply_markup=params.get("reply_markup"),
                disable_preview=bool(preview.get("is_disabled") or params.get("disable_web_page_preview")),
                time=time.time(),
                reply_to_message_id=reply.get("message_id") or params.get("reply_to_message_id"),
                disable_notification=params.get("disable_notification") in (True, "true", "True"),
                message_thread_id=params.get("message_thread_id"),
            )
            state.sent.append(sent)
            state.by_key[(chat_id, message_id)] = sent
            return _ok(_message_json(state, sent))

    def _edited(params: dict[str, Any]) -> SentMessage:
        chat_id = _require_chat(params)
        message_id = params.get("message_id")
        sent = state.by_key.get((chat_id, message_id)) if isinstance(message_id, int) else None
        if sent is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return sent

    async def edit_message_text(params: dict[str, Any]) -> web.Response:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        with state.lock:
            sent = _edited(params)
            if text == sent.text and params.get("reply_markup") == sent.reply_markup:
                raise _ApiError(400, "Bad Request: message is not modified")
            sent.edits.append(sent.text)
            sent.text = text
            sent.parse_mode = params.get("parse_mode")
            sent.reply_markup = params.get("reply_markup")
            return _ok(_message_json(state, sent))

    async def edit_message_reply_markup(params: dict[str, Any]) -> web.Response:
        with state.lock:
            sent = _edited(params)
            sent.reply_markup = params.get("reply_markup")
            return _ok(_message_json(state, sent))

    async def true_result(params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def set_my_commands(params: dict[str, Any]) -> web.Response:
        key = _commands_key(params)
        with state.lock:
            state.commands[key] = list(params.get("commands") or [])
        return _ok(True)

    async def delete_my_commands(params: dict[str, Any]) -> web.Response:
        with state.lock:
            state.commands.pop(_commands_key(params), None)
        return _ok(True)

    async def get_my_commands(params: dict[str, Any]) -> web.Response:
        with state.lock:
            return _ok(state.commands.get(_commands_key(params), []))

    async def get_chat(params: dict[str, Any]) -> web.Response:
        chat_id = _require_chat(params)
        with state.lock:
            chat = _chat_json(state, chat_id)
        chat.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return _ok(chat)

    def _member(chat_id: int, user_id: int) -> dict[str, Any]:
        admins = state.admins.get(chat_id, [])
        user = _bot_user() if user_id == BOT_USER_ID else _user(user_id)
        if user_id in admins[:1]:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if user_id in admins or user_id == BOT_USER_ID:
            return {
                "status": "administrator",
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                "can_manage_chat": True,
                "can_delete_messages": True,
                "can_manage_video_chats": False,
                "can_restrict_members": False,
                "can_promote_members": False,
                "can_change_info": True,
                "can_invite_users": True,
                "can_post_stories": False,
                "can_edit_stories": False,
                "can_delete_stories": False,
            }
        return {"status": "member", "user": user}

    async def get_chat_member(params: dict[str, Any]) -> web.Response:
        chat_id = _require_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise _ApiError(400, "Bad Request: invalid user_id specified")
        with state.lock:
            return _ok(_member(chat_id, user_id))

    async def get_chat_administrators(params: dict[str, Any]) -> web.Response:
        chat_id = _require_chat(params)
        with state.lock:
            return _ok([_member(chat_id, uid) for uid in state.admins.get(chat_id, [])])

    async def set_webhook(params: dict[str, Any]) -> web.Response:
        with state.lock:
            state.webhook = dict(params)
        return _ok(True)

    async def delete_webhook(params: dict[str, Any]) -> web.Response:
        with state.lock:
            state.webhook = {}
            if params.get("drop_pending_updates"):
                state.updates.clear()
        return _ok(True)

    async def get_webhook_info(params: dict[str, Any]) -> web.Response:
        with state.lock:
            url = state.webhook.get("url", "")
        return _ok({"url": url, "has_custom_certificate": False, "pending_update_count": 0})

    METHODS = {
        "getMe": get_me,
        "getUpdates": get_updates,
        "sendMessage": send_message,
        "editMessageText": edit_message_text,
        "editMessageReplyMarkup": edit_message_reply_markup,
        "answerCallbackQuery": true_result,
        "sendChatAction": true_result,
        "deleteMessage": true_result,
        "close": true_result,
        "logOut": true_result,
        "setMyCommands": set_my_commands,
        "deleteMyCommands": delete_my_commands,
        "getMyCommands": get_my_commands,
        "getChat": get_chat,
        "getChatMember": get_chat_member,
        "getChatAdministrators": get_chat_administrators,
        "setWebhook": set_webhook,
        "deleteWebhook": delete_webhook,
        "getWebhookInfo": get_webhook_info,
    }

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/bot{token}/{method}", api)
    if control:
        _add_control_routes(app, state, new_update)
    return app


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _require_chat(params: dict[str, Any]) -> int:
    chat_id = params.get("chat_id")
    if not isinstance(chat_id, int):
        raise _ApiError(400, "Bad Request: chat not found")
    return chat_id


def _commands_key(params: dict[str, Any]) -> str:
    scope = params.get("scope") or {"type": "default"}
    return f"{scope.get('type', 'default')}/{params.get('language_code') or ''}"


# --- control API for a server in another process ----------------------------------------------


def _add_control_routes(app: web.Application, state: _State, new_update: asyncio.Event) -> None:
    async def push(request: web.Request) -> web.Response:
        update_id = state.push(await request.json())
        new_update.set()
        return web.json_response({"update_id": update_id})

    async def fault(request: web.Request) -> web.Response:
        with state.lock:
            state.faults.append(Fault(**await request.json()))
        return web.json_response({"ok": True})

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        with state.lock:
            state.chats[body["chat_id"]] = {
                "id": body["chat_id"], "type": body["chat_type"], **({"title": body["title"]} if body.get("title") else {})
            }
            if body.get("admins") is not None:
                state.admins[body["chat_id"]] = list(body["admins"])
        return web.json_response({"ok": True})

    async def sent(request: web.Request) -> web.Response:
        chat_id = request.query.get("chat_id")
        since = int(request.query.get("since", "0"))
        with state.lock:
            rows = [asdict(m) for m in state.sent[since:] if chat_id is None or m.chat_id == int(chat_id)]
        return web.json_response(rows)

    async def calls(request: web.Request) -> web.Response:
        method = request.query.get("method")
        with state.lock:
            rows = [asdict(c) for c in state.calls if method is None or c.method == method]
        return web.json_response(rows)

    async def latency(request: web.Request) -> web.Response:
        state.latency = float((await request.json())["seconds"])
        return web.json_response({"ok": True})

    async def reset(request: web.Request) -> web.Response:
        with state.lock:
            state.calls.clear()
            state.sent.clear()
            state.by_key.clear()
            state.faults.clear()
        return web.json_response({"ok": True})

    app.router.add_post("/_fake/update", push)
    app.router.add_post("/_fake/fault", fault)
    app.router.add_post("/_fake/chat", chat)
    app.router.add_post("/_fake/latency", latency)
    app.router.add_post("/_fake/reset", reset)
    app.router.add_get("/_fake/sent", sent)
    app.router.add_get("/_fake/calls", calls)


class RemoteFakeBotApi(_Scripting):
    """Drives a fake server running in another process (`python tests/fakebotapi.py`)."""

    def __init__(self, url: str, token: str = DEFAULT_TOKEN) -> None:
        self.url = url.rstrip("/")
        self.token = token

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=60) as response:
            return json.loads(response.read())

    def push_update(self, update: dict[str, Any]) -> int:
        return int(self._post("/_fake/update", update)["update_id"])

    def add_fault(self, fault: Fault) -> None:
        self._post("/_fake/fault", asdict(fault))

    def register_chat(self, chat_id: int, chat_type: str, title: str | None = None, admins: list[int] | None = None) -> None:
        self._post("/_fake/chat", {"chat_id": chat_id, "chat_type": chat_type, "title": title, "admins": admins})

    def set_latency(self, seconds: float) -> None:
        self._post("/_fake/latency", {"seconds": seconds})

    def reset(self) -> None:
        """Forget recorded calls, messages and faults."""
        self._post("/_fake/reset", {})

    def sent_messages(self, chat_id: int | None = None, since: int = 0) -> list[SentMessage]:
        query = f"?since={since}" + (f"&chat_id={chat_id}" if chat_id is not None else "")
        return [SentMessage(**row) for row in self._get(f"/_fake/sent{query}")]

    def calls(self, method: str | None = None) -> list[Call]:
        query = f"?method={method}" if method else ""
        return [Call(**row) for row in self._get(f"/_fake/calls{query}")]


def serve_forever(host: str, port: int, token: str, latency: float) -> None:
    """Run the server with control routes in this process until interrupted."""
    state = _State(token)
    state.latency = latency

    async def main() -> None:
        new_update = asyncio.Event()
        app = build_app(state, new_update, control=True)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp's private _server: set once start() returned
        print(f"http://{host}:{bound}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server with /_fake control routes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each sending call")
    args = parser.parse_args()
    serve_forever(args.host, args.port, args.token, args.latency)
