"""Telegram adapters: the conversation, push delivery, rendering and rate limits."""
