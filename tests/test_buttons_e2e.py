"""Buttons whose work takes seconds answer at once, then edit the message; repeated presses of the
same button while it runs start nothing new. Through the real PTB adapter and the fake Bot API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

from bot.context import AppContext
from bot.db import Database
from bot.db.models import SummaryMethod
from bot.i18n import I18n
from bot.ingest.service import ArticleInput
from bot.services.contracts import ArticleSummary
from bot.telegram.app import build_application
from bot.wiring import build_services

from conftest import make_settings
from fakebotapi import DEFAULT_TOKEN, FakeBotApi
from test_bot_telegram import BODY, USER, Bot, stop_bot


class GatedTranslator:
    """A summary provider whose translations wait until the test lets them finish (a slow model)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.translations = 0

    def summary(self, article_id: int, lang: str) -> ArticleSummary:
        if lang != "en":
            self.translations += 1
            self.release.wait(30)
        return ArticleSummary(article_id=article_id, lang=lang, title="Judul" if lang == "id" else "Title",
                              text="Ringkasan." if lang == "id" else "Summary.", method=SummaryMethod.SEQ2SEQ,
                              model="m", translated_from="en" if lang != "en" else None,
                              translation_model="t" if lang != "en" else None)

    def prefetch(self, requests: Sequence[tuple[int, Sequence[str]]]) -> None:
        """Nothing to prepare."""

    def status_line(self) -> str:
        return "gated test translator"


async def test_a_slow_translate_button_answers_at_once_and_edits_later(sqlite_database: Database, tmp_path: Path) -> None:
    i18n = I18n.load()
    translator = GatedTranslator()
    with FakeBotApi() as server:
        settings = make_settings(sqlite_database.url, tmp_path, telegram_bot_token=DEFAULT_TOKEN,
                                 telegram_base_url=server.base_url, translation_model="some/translation-model")
        context = AppContext(settings=settings, db=sqlite_database)
        services = build_services(context, i18n, summaries=translator)
        application = build_application(context, i18n, services=services, background=[])
        await application.initialize()
        assert application.post_init is not None
        await application.post_init(application)
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0.0, timeout=1)
        bot = Bot(server, application, i18n)
        try:
            item = ArticleInput(body=BODY, title="T", tags=["Rusia"], lang="en")
            article = await asyncio.to_thread(services.ingest.ingest, item)
            reply = await bot.ask(USER, f"/summary {article.article_id}")
            assert "Summary." in reply
            [message] = server.sent_messages(USER)
            translate = f"tr:{article.article_id}:id"
            assert translate in [data for _, data in message.buttons()]
            server.callback_query(USER, translate, message_id=message.message_id)
            await server.async_wait_for(lambda s: len(s.calls("answerCallbackQuery")) == 1, 10)
            # Answered while the translation is still running: a toast, no edit yet.
            assert server.calls("answerCallbackQuery")[0].params.get("text") == i18n.plain("en", "translate.working")
            assert server.calls("editMessageText") == []
            server.callback_query(USER, translate, message_id=message.message_id)
            await server.async_wait_for(lambda s: len(s.calls("answerCallbackQuery")) == 2, 10)
            assert server.calls("answerCallbackQuery")[1].params.get("text") == i18n.plain("en", "button.busy")
            translator.release.set()
            await server.async_wait_for(lambda s: len(s.calls("editMessageText")) == 1, 10)
            assert "Ringkasan." in server.calls("editMessageText")[0].params["text"]
            assert translator.translations == 1  # the second press started nothing
        finally:
            translator.release.set()
            await stop_bot(application)
