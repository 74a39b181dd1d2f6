"""The conversation, free of Telegram: what the bot says to a chat and what its buttons do.

- `messages`: the one outgoing message model (Reply, Button, callback kinds, Telegram's limits).
- `incoming`: what arrives from a chat (Incoming, Post) and how a command is parsed, once.
- `render`: an article's summary as a message (pushes and /summary alike).
- `conversation`: the command table and the Conversation that answers.
- `rights`: who may change a chat, asked once per message or button press.

`bot.telegram` converts PTB objects to and from these types; `bot.shell` does the same for a
terminal. Nothing here imports telegram.
"""
