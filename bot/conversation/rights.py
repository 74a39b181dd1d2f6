"""Who may change a chat, and who may make an article reach other people: written once, here.

- Changing a chat (follow, unfollow, language, the unfollow button) is for the person whose
  private chat it is, for a group's admins, and for a channel's admins. In a group or a channel
  the adapter must ask Telegram (getChatMember) unless the message was sent as the chat itself
  (a channel post, an anonymous group admin): anyone can press a button under a channel post.
- Articles that are pushed to others come only from the bot's admins (ADMIN_IDS), feeds, the CLI
  and the chat's own channel posts. What any other user asks for (/summary of a link, a reply
  or a forward) is stored for that request only: never pushed, listed or found by other chats.
"""

from __future__ import annotations

from bot.db.models import ChatKind

# Chats with more than one person in them, where rights differ from person to person.
SHARED_CHATS = frozenset({ChatKind.GROUP, ChatKind.SUPERGROUP, ChatKind.CHANNEL})


def must_check_admin(kind: ChatKind, *, changes_chat: bool, posted_by_chat: bool = False) -> bool:
    """Whether the adapter must ask Telegram if the sender administers the chat before acting."""
    if not changes_chat or kind not in SHARED_CHATS:
        return False
    return not posted_by_chat  # only a channel's admins post as the channel; likewise anonymous admins


def may_publish(kind: ChatKind, *, bot_admin: bool, posted_by_chat: bool = False) -> bool:
    """Whether content this sender submits may be pushed to other chats (see the module doc)."""
    if bot_admin or kind is ChatKind.SHELL:  # the shell is the operator of this machine
        return True
    return kind is ChatKind.CHANNEL and posted_by_chat
