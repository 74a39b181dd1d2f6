"""The fake Bot API answers PTB's real HTTP stack the way Telegram does, faults included."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from fakebotapi import FakeBotApi, RemoteFakeBotApi


def _bot(server: FakeBotApi) -> Bot:
    return Bot(server.token, base_url=server.base_url)


async def test_send_and_edit_are_recorded_per_chat(fake_bot_api: FakeBotApi) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Original", callback_data="orig:5")]])
    async with _bot(fake_bot_api) as bot:
        me = await bot.get_me()
        first = await bot.send_message(
            42, "<b>Judul</b>", parse_mode="HTML", reply_markup=markup,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )
        second = await bot.send_message(42, "dua")
        other = await bot.send_message(-1001, "grup")
        await bot.edit_message_text("<i>Title</i>", chat_id=42, message_id=first.message_id, parse_mode="HTML")
    assert me.username == "newsbot_test_bot"
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert other.chat.type == "supergroup"
    messages = fake_bot_api.sent_messages(42)
    assert [m.text for m in messages] == ["<i>Title</i>", "dua"]
    assert messages[0].edits == ["<b>Judul</b>"]
    assert messages[0].disable_preview and not messages[1].disable_preview
    assert [m.chat_id for m in fake_bot_api.sent_messages()] == [42, 42, -1001]
    assert fake_bot_api.calls("editMessageText")[0].params["message_id"] == 1


async def test_injected_faults_raise_ptb_errors(fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.fail_retry_after(3, chat_id=7, times=1)
    fake_bot_api.block_chat(8)
    fake_bot_api.lose_chat(9)
    async with _bot(fake_bot_api) as bot:
        with pytest.raises(RetryAfter) as retry:
            await bot.send_message(7, "a")
        assert (await bot.send_message(7, "b")).message_id == 1  # the fault was used up
        with pytest.raises(Forbidden, match="blocked by the user"):
            await bot.send_message(8, "c")
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(9, "d")
        await bot.send_message(10, "e")
    waited = retry.value.retry_after
    assert (waited if isinstance(waited, int) else waited.total_seconds()) == 3
    assert [(m.chat_id, m.text) for m in fake_bot_api.sent_messages()] == [(7, "b"), (10, "e")]
    assert [c.status for c in fake_bot_api.calls("sendMessage")] == [429, 200, 403, 400, 200]


async def test_polling_application_gets_commands_and_button_presses(fake_bot_api: FakeBotApi) -> None:
    seen: list[str] = []

    async def follow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(f"follow {' '.join(context.args or [])} lang={update.effective_user.language_code}")
        await update.effective_message.reply_text("ok")

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(f"button {update.callback_query.data}")
        await update.callback_query.answer()

    app = ApplicationBuilder().token(fake_bot_api.token).base_url(fake_bot_api.base_url).build()
    app.add_handler(CommandHandler("follow", follow))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        fake_bot_api.user_command(11, "/follow Rusia", lang="id")
        fake_bot_api.callback_query(11, "unf:3", message_id=1)
        fake_bot_api.group_message(-55, 12, "/follow Ekonomi")
        assert await fake_bot_api.async_wait_for(lambda s: len(seen) == 3 and len(s.calls("answerCallbackQuery")) == 1)
        await app.updater.stop()
        await app.stop()
    assert seen == ["follow Rusia lang=id", "button unf:3", "follow Ekonomi lang=en"]
    assert [(m.chat_id, m.text) for m in fake_bot_api.sent_messages()] == [(11, "ok"), (-55, "ok")]


def test_server_in_another_process_is_driven_over_http(tmp_path: Path) -> None:
    script = Path(__file__).parent / "fakebotapi.py"
    process = subprocess.Popen([sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()  # type: ignore[union-attr]  # stdout=PIPE, so never None
        remote = RemoteFakeBotApi(url)
        remote.block_chat(5)

        async def exercise() -> None:
            async with Bot(remote.token, base_url=remote.base_url) as bot:
                await bot.send_message(4, "hello")
                with pytest.raises(Forbidden):
                    await bot.send_message(5, "blocked")

        asyncio.run(exercise())
        assert [(m.chat_id, m.text, m.message_id) for m in remote.sent_messages()] == [(4, "hello", 1)]
        assert [c.method for c in remote.calls("sendMessage")] == ["sendMessage", "sendMessage"]
    finally:
        process.terminate()
        process.wait(10)
