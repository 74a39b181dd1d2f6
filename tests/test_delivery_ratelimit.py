"""The shared limiter paces PTB's real requests (fake Bot API on loopback): global, per chat, per group,
replies before pushes, and RetryAfter honoured for a chat or for the whole bot."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from telegram.error import RetryAfter
from telegram.ext import Application, ApplicationBuilder, ExtBot

from bot.telegram.ratelimit import Priority, SendRateLimiter, _GlobalGate, build_rate_limiter

from conftest import make_settings
from fakebotapi import FakeBotApi

# The bot_with fixture: a bot on the fake Bot API that sends through the given limiter.
BotWith = Callable[[SendRateLimiter], Awaitable[ExtBot]]


async def _app(server: FakeBotApi, limiter: SendRateLimiter) -> Application:
    app = ApplicationBuilder().token(server.token).base_url(server.base_url).rate_limiter(limiter).build()
    await app.initialize()
    return app


@pytest.fixture
async def bot_with(fake_bot_api: FakeBotApi) -> AsyncIterator[BotWith]:
    apps: list[Application] = []

    async def make(limiter: SendRateLimiter) -> ExtBot:
        app = await _app(fake_bot_api, limiter)
        apps.append(app)
        return app.bot

    yield make
    for app in apps:
        await app.shutdown()


def send_times(server: FakeBotApi, chat_id: int | None = None) -> list[float]:
    return [c.time for c in server.calls("sendMessage") if c.status == 200 and (chat_id is None or c.chat_id == chat_id)]


def max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def test_global_rate_is_never_exceeded(fake_bot_api: FakeBotApi, bot_with: BotWith) -> None:
    bot = await bot_with(SendRateLimiter(global_rate=40, per_chat_rate=100))
    start = time.monotonic()
    await asyncio.gather(*(bot.send_message(chat, "x") for chat in range(1, 61)))
    elapsed = time.monotonic() - start
    times = send_times(fake_bot_api)
    assert len(times) == 60
    assert elapsed >= 0.95  # the 41st message waits for the first one's second to pass
    assert max_in_window(times, 0.98) <= 40  # measured where requests arrive: allow a little jitter
    assert max_in_window(times, 0.2) <= 0.2 * 40 * 2 + 4  # no burst: at most twice the mean rate (+ jitter)


async def test_each_chat_waits_its_interval_and_groups_their_minute(fake_bot_api: FakeBotApi, bot_with: BotWith) -> None:
    bot = await bot_with(SendRateLimiter(global_rate=1000, per_chat_rate=10, per_group_minute=3, group_window=1.0))
    await asyncio.gather(*(bot.send_message(5, f"m{i}") for i in range(4)), *(bot.send_message(-100, f"g{i}") for i in range(5)))
    private = send_times(fake_bot_api, 5)
    group = send_times(fake_bot_api, -100)
    assert [m.text for m in fake_bot_api.sent_messages(5)] == ["m0", "m1", "m2", "m3"]  # in order
    # Measured where requests arrive: one late arrival can shorten a single gap, so check the span
    # of the 3 intervals of 0.1 s (less a little scheduling jitter) rather than each gap.
    assert private[-1] - private[0] >= 0.27
    assert max_in_window(group, 0.9) <= 3
    assert group[3] - group[0] >= 0.9


async def test_chats_that_must_wait_are_reported_as_cooling(fake_bot_api: FakeBotApi, bot_with: BotWith) -> None:
    limiter = SendRateLimiter(global_rate=1000, per_chat_rate=100, per_group_minute=2, group_window=5.0)
    bot = await bot_with(limiter)
    await bot.send_message(-200, "a")
    await bot.send_message(-200, "b")
    await bot.send_message(200, "c")
    limiter.note_retry_after(300, 10)
    assert limiter.cooling_chats() == {-200, 300}  # the group used its 2 per window; 300 got a 429


async def test_replies_overtake_queued_pushes(fake_bot_api: FakeBotApi, bot_with: BotWith) -> None:
    bot = await bot_with(SendRateLimiter(global_rate=20, per_chat_rate=100))
    pushes = [asyncio.create_task(bot.send_message(chat, "push", rate_limit_args=Priority.PUSH)) for chat in range(1, 41)]
    assert await fake_bot_api.async_wait_for(lambda s: len(s.sent_messages()) >= 2)
    out_before = len(fake_bot_api.sent_messages())  # the rest (about 38) queue for global slots
    await bot.send_message(999, "reply")
    await asyncio.gather(*pushes)
    order = [m.chat_id for m in fake_bot_api.sent_messages()]
    assert order.index(999) <= out_before + 5  # FIFO would put it last (index 40)


async def test_retry_after_for_one_chat_waits_and_retries_that_chat_only(fake_bot_api: FakeBotApi, bot_with: BotWith) -> None:
    limiter = SendRateLimiter(global_rate=1000, per_chat_rate=100)
    bot = await bot_with(limiter)
    fake_bot_api.fail_retry_after(1, chat_id=7, times=1)
    first = asyncio.create_task(bot.send_message(7, "later"))
    assert await fake_bot_api.async_wait_for(lambda s: len(s.calls("sendMessage")) == 1)
    await bot.send_message(8, "now")
    message = await first
    assert message.message_id == 1
    calls = fake_bot_api.calls("sendMessage")
    # Chat 8 went out while chat 7 waited out its 429; chat 7 was retried after the wait.
    assert [(c.chat_id, c.status) for c in calls] == [(7, 429), (8, 200), (7, 200)]
    assert calls[2].time - calls[0].time >= 0.95


async def test_retry_after_on_several_chats_pauses_the_whole_bot(fake_bot_api: FakeBotApi, bot_with: BotWith) -> None:
    limiter = SendRateLimiter(global_rate=1000, per_chat_rate=100, max_retries=0)
    bot = await bot_with(limiter)
    fake_bot_api.fail_retry_after(1, times=2)  # any chat, twice
    for chat in (1, 2):
        with pytest.raises(RetryAfter):
            await bot.send_message(chat, "x")
    assert limiter.globally_paused_for() > 0.5
    started = time.monotonic()
    await bot.send_message(3, "after the pause")
    assert time.monotonic() - started >= 0.8


def test_limiter_is_built_from_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]  # untyped fixture parameter
    settings = make_settings("sqlite://", tmp_path, send_rate_global=12, send_rate_per_chat=0.5, send_rate_per_group_minute=7)
    limiter = build_rate_limiter(settings)
    assert (limiter.global_rate, limiter.per_chat_interval, limiter.per_group_minute) == (12, 2.0, 7)


def test_pushes_are_spaced_evenly_so_a_reply_never_waits_long_for_the_window() -> None:
    """A fan-out keeps the window full; its sends must not come in clumps with long pauses between,
    or a reply that arrives at a pause waits for the window to slide."""
    now = [100.0]
    gate = _GlobalGate(30, lambda: now[0])
    interval = gate.window / gate.per_window
    for _ in range(300):  # ten windows of pushes, each as early as the gate allows
        now[0] = gate._next_slot(now[0], Priority.PUSH)
        gate._sent.append(now[0])
    times = list(gate._sent)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval * 0.9  # no clumps
    # A reply arriving at any moment of a window waits at most for the pause at its end: under a
    # tenth of a second (with pushes half an interval apart, as before, the pause was half a second).
    waits = []
    for step in range(100):
        moment = now[0] + gate.window * step / 100
        waits.append(gate._next_slot(moment, Priority.REPLY) - moment)
    assert max(waits) < 0.1 * gate.window
    # Still never more than the limit in any window, replies included.
    for _ in range(5):
        now[0] = gate._next_slot(now[0], Priority.REPLY)
        gate._sent.append(now[0])
    sent = list(gate._sent)
    assert sent[-1] - sent[0] >= gate.window * (gate.per_window - 1) / gate.per_window
