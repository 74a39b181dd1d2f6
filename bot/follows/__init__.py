"""Follow queries: the parser (`query`) and the matcher (`matcher`), free of the database and Telegram."""
