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
from collections.abc import Callable, Collection, Sequence

from bot.conversation.messages import Reply
from bot.db.models import ChatKind
from bot.services.chats import ChatService
from bot.services.contracts import ArticleSummary, SummaryProvider
from bot.services.deliveries import TELEGRAM_CHAT_KINDS
from bot.services.digests import ClaimedDigest, DigestService, DigestStory
from bot.services.sending import ChatGone, ChatMoved, RetryAfter, SendError, SendPacer, Transport

log = logging.getLogger(__name__)

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

    def claim(self, limit: int, exclude_chats: Collection[int]) -> list[ClaimedDigest]:
        return self._digests.claim_due(limit, kinds=self._kinds, exclude_chats=exclude_chats)

    def recover(self, all_sending: bool) -> int:
        return self._digests.recover_orphans(kinds=self._kinds, all_sending=all_sending)

    def _messages(self, digest: ClaimedDigest) -> list[Reply]:
        titles = self._digests.article_titles([story.article_id for story in digest.stories])
        items = []
        for story in digest.stories:
            if story.article_id not in titles:
                continue
            title, url = titles[story.article_id]
            items.append((story, title, url, self._summaries.summary(story.article_id, digest.lang)))
        return self._render(digest, items)

    async def deliver(self, digest: ClaimedDigest) -> None:
        """Send the digest's parts not yet recorded, then mark it and its stories sent."""
        try:
            messages = await asyncio.to_thread(self._messages, digest)
        except Exception as error:
            log.warning("cannot render digest %s", digest.id, exc_info=True)
            await asyncio.to_thread(self._digests.fail, digest.id, f"render: {type(error).__name__}: {error}")
            return
        sent = list(await asyncio.to_thread(self._digests.parts_sent, digest.id))
        for message in messages[len(sent):]:
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
            # Each part is recorded at once: a crash from here on does not send it again.
            await asyncio.to_thread(self._digests.record_part, digest.id, sent)
        await asyncio.to_thread(self._digests.mark_sent, digest.id, sent)
        self.sent += 1
