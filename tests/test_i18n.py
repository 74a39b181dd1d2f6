"""Locale files: same keys and placeholders in every language, valid HTML, escaping."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from bot.i18n import SUPPORTED_LANGS, Html, I18n, MissingKeyError, normalize_lang, placeholders

# Tags Telegram's HTML parse mode accepts (the subset our locale strings may use).
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                 "tg-spoiler", "blockquote", "span"}


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.errors.append(f"unsupported tag <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")


def html_errors(text: str) -> list[str]:
    """Problems Telegram's HTML parser would reject: unknown or unbalanced tags, stray '<'."""
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    return checker.errors + [f"unclosed <{tag}>" for tag in checker.stack]


def test_every_language_has_the_same_keys(i18n: I18n) -> None:
    assert set(i18n.langs) == set(SUPPORTED_LANGS)
    english = set(i18n.catalogs["en"])
    for lang in SUPPORTED_LANGS:
        assert set(i18n.catalogs[lang]) == english, lang


def test_every_language_has_the_same_placeholders(i18n: I18n) -> None:
    for key, template in i18n.catalogs["en"].items():
        for lang in SUPPORTED_LANGS:
            assert placeholders(i18n.catalogs[lang][key]) == placeholders(template), (lang, key)


def test_every_string_is_valid_telegram_html(i18n: I18n) -> None:
    for lang, catalog in i18n.catalogs.items():
        for key, template in catalog.items():
            filled = template.format(**{name: "x" for name in placeholders(template)})
            assert html_errors(filled) == [], (lang, key)


def test_parameters_are_escaped_unless_marked_html(i18n: I18n) -> None:
    text = i18n.t("en", "follow.added", tags="<script>&")
    assert text == "✅ Now following: &lt;script&gt;&amp;"
    assert i18n.t("en", "follow.added", tags=Html("<b>Rusia</b>")) == "✅ Now following: <b>Rusia</b>"


def test_placeholders_may_be_named_like_the_arguments(i18n: I18n) -> None:
    # "settings" and "lang.usage" have a {lang} placeholder: it must not clash with t()'s own argument.
    assert "Bahasa Indonesia" in i18n.t("en", "settings", lang="Bahasa Indonesia", count=1, max=2, kind="private")
    assert i18n.plain("id", "lang.usage", lang="en").endswith("en.")


def test_language_fallback_and_missing_key(i18n: I18n) -> None:
    assert i18n.t("fr", "lang.done") == i18n.catalogs["en"]["lang.done"]
    assert i18n.t("id-ID", "lang.done") == i18n.catalogs["id"]["lang.done"]
    with pytest.raises(MissingKeyError):
        i18n.t("en", "no.such.key")


@pytest.mark.parametrize(
    ("code", "expected"),
    [("id", "id"), ("ID", "id"), ("id-ID", "id"), ("en_US", "en"), ("fr", None), ("", None), (None, None)],
)
def test_normalize_lang(code: str | None, expected: str | None) -> None:
    assert normalize_lang(code) == expected
