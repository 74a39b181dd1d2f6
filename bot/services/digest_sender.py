"""Sending digests from the push loop: the digest lane next to the instant pushes.

The push loop claims instant pushes first and fills its remaining slots with due digests, oldest
due first (bot/services/pushes.py), so breaking stories never wait behind a morning's digests;
both go through the same shared send pacer (30 msg/s). A digest of several messages records each
part's message id as it goes, so a digest resumed after a crash sends only the parts not yet
recorded: the one part in flight when the process died is the only possible double.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence

from bot.conversation.messages import Reply
from bot.db.models import ChatKind
from bot.services.chats import ChatService
from bot.services.contracts import ArticleSummary, SummaryProvider
from bot.services.deliveries import TELEGRAM_CHAT_KINDS
from bot.services.digests import ClaimedDigest, DigestService, DigestStory
from bot.services.sending import ChatGone, ChatMoved, RetryAfter, SendError, SendPacer, Transport

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
CACHE_SIZE = 1024

# Renders a claimed digest (its stories with their summaries) as messages; [] for nothing to say.
DigestRenderer = Callable[[ClaimedDigest, Sequence[tuple[DigestStory, str, str | None, ArticleSummary]]], list[Reply]]


class DigestLane:
    """Claims and sends digests; `claim` and `recover` block (call them from a thread)."""

    def __init__(self, digests: DigestService, chats: ChatService, summaries: SummaryProvider, transport: Transport,
                 render: DigestRenderer, *, kinds: Collection[ChatKind] = TELEGRAM_CHAT_KINDS,
                 limiter: SendPacer | None = None) -> None:
        self._digests = digests
        self._chats = chats
        self._summaries = summaries
        self._transport = transport
        self._render = render
        self._kinds = frozenset(kinds)
        self._limiter = limiter
        self.sent = 0
        # 10,000 digests due at 07:00 hold the same few stories: each title and summary is read once.
        self._cache: dict[tuple[int, str], tuple[float, str, str | None, ArticleSummary]] = {}

    def claim(self, limit: int, exclude_chats: Collection[int]) -> list[ClaimedDigest]:
        return self._digests.claim_due(limit, kinds=self._kinds, exclude_chats=exclude_chats)

    def recover(self, all_sending: bool) -> int:
        return self._digests.recover_orphans(kinds=self._kinds, all_sending=all_sending)

    def _messages(self, digest: ClaimedDigest) -> list[Reply]:
        now = time.monotonic()
        missing = [story.article_id for story in digest.stories
                   if (cached := self._cache.get((story.article_id, digest.lang))) is None or cached[0] <= now]
        titles = self._digests.article_titles(missing) if missing else {}
        if len(self._cache) > CACHE_SIZE:
            self._cache.clear()
        for article_id, (title, url) in titles.items():
            summary = self._summaries.summary(article_id, digest.lang)
            self._cache[(article_id, digest.lang)] = (now + CACHE_SECONDS, title, url, summary)
        items = []
        for story in digest.stories:
            entry = self._cache.get((story.article_id, digest.lang))
            if entry is not None:  # an article deleted meanwhile is left out
                items.append((story, entry[1], entry[2], entry[3]))
        return self._render(digest, items)

    async def deliver(self, digest: ClaimedDigest) -> None:
        """Send the digest's parts not yet recorded, then mark it and its stories sent."""
        try:
            messages = await asyncio.to_thread(self._messages, digest)
        except Exception as error:
            log.warning("cannot render digest %s", digest.id, exc_info=True)
            await asyncio.to_thread(self._digests.fail, digest.id, f"render: {type(error).__name__}: {error}")
            return
        # Parts recorded by an earlier attempt (a crash or a failure mid-digest) are not sent again.
        sent = list(await asyncio.to_thread(self._digests.parts_sent, digest.id)) if digest.attempts > 1 else []
        for index, message in enumerate(messages[len(sent):], start=len(sent) + 1):
            try:
                sent.append(await self._transport.send(digest.chat_id, message))
            except RetryAfter as error:
                if self._limiter is not None:
                    self._limiter.note_retry_after(digest.chat_id, error.seconds)
                await asyncio.to_thread(self._digests.fail, digest.id, str(error), retry_after=error.seconds)
                return
            except ChatGone as error:
                await asyncio.to_thread(self._chats.deactivate, digest.chat_id, error.reason)
                return
            except ChatMoved as error:
                await asyncio.to_thread(self._chats.migrate, digest.chat_id, error.new_chat_id)
                return
            except SendError as error:
                await asyncio.to_thread(self._digests.fail, digest.id, str(error))
                return
            if index < len(messages):
                # Each part is recorded at once: a crash from here on does not send it again (the
                # last part is recorded by mark_sent).
                await asyncio.to_thread(self._digests.record_part, digest.id, sent)
        await asyncio.to_thread(self._digests.mark_sent, digest.id, sent)
        self.sent += 1
