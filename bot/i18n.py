"""User-facing text: locale files bot/locales/<lang>.json, loaded once and formatted by key.

Every string is Telegram HTML. `I18n.t` escapes each parameter with html.escape, so user
input (tag names, titles, URLs) can never inject markup; wrap already-rendered HTML in
`Html(...)` to pass it through unchanged.
"""

from __future__ import annotations

import html
import json
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_LANG = "en"
SUPPORTED_LANGS: tuple[str, ...] = ("en", "id")


class Html(str):
    """A string that is already valid Telegram HTML; `I18n.t` inserts it without escaping."""

    __slots__ = ()


def escape(value: object) -> str:
    """Escape any value for Telegram HTML (Html values pass through)."""
    if isinstance(value, Html):
        return str(value)
    return html.escape(str(value), quote=False)


def placeholders(template: str) -> set[str]:
    """The names of the {placeholders} in a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def normalize_lang(code: str | None) -> str | None:
    """'id', 'ID', 'id-ID', 'en_US' -> 'id' / 'en'; None when not one of ours."""
    if not code:
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return base if base in SUPPORTED_LANGS else None


class MissingKeyError(KeyError):
    """A locale key is absent from the default language file (a bug, not bad input)."""


@dataclass(frozen=True)
class I18n:
    """All locales in memory; build once in main() with `I18n.load()` and pass it around."""

    catalogs: Mapping[str, Mapping[str, str]]
    default: str = DEFAULT_LANG

    @classmethod
    def load(cls, directory: Path | None = None, langs: Iterable[str] = SUPPORTED_LANGS) -> I18n:
        """Read <lang>.json for each language from `directory` (default: the package's locales)."""
        catalogs: dict[str, dict[str, str]] = {}
        for lang in langs:
            if directory is None:
                raw = resources.files("bot").joinpath("locales", f"{lang}.json").read_text("utf-8")
            else:
                raw = (directory / f"{lang}.json").read_text("utf-8")
            catalogs[lang] = json.loads(raw)
        return cls(catalogs=catalogs)

    @property
    def langs(self) -> tuple[str, ...]:
        return tuple(self.catalogs)

    def lang_or_default(self, lang: str | None) -> str:
        """The language itself when we have it, else the default."""
        normalized = normalize_lang(lang)
        return normalized if normalized is not None and normalized in self.catalogs else self.default

    def raw(self, lang: str | None, key: str) -> str:
        """The unformatted template, falling back to the default language."""
        catalog = self.catalogs.get(self.lang_or_default(lang), {})
        template = catalog.get(key)
        if template is None:
            template = self.catalogs[self.default].get(key)
        if template is None:
            raise MissingKeyError(key)
        return template

    def t(self, lang: str | None, key: str, /, **params: object) -> Html:
        """The text for `key` in `lang` with HTML-escaped parameters filled in."""
        template = self.raw(lang, key)
        return Html(template.format(**{name: escape(value) for name, value in params.items()}))

    def plain(self, lang: str | None, key: str, /, **params: object) -> str:
        """The text for `key` with parameters filled in unescaped (for non-HTML places: menus, buttons)."""
        return self.raw(lang, key).format(**{name: str(value) for name, value in params.items()})
