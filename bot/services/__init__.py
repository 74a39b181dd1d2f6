"""Plain-Python services holding newsbot's rules; Telegram handlers and the shell call these."""
