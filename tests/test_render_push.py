"""Push messages are valid, escaped Telegram HTML within 4096 characters, with the fixed buttons."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.conversation.messages import MAX_MESSAGE_CHARS, telegram_length, trim_text
from bot.conversation.render import hashtag, render_push
from bot.db.models import SummaryMethod
from bot.i18n import I18n
from bot.services.contracts import ArticleSummary

ALLOWED = {"a", "b", "i"}


@dataclass(frozen=True)
class Art:
    id: int
    title: str
    url: str | None
    lang: str | None


@dataclass(frozen=True)
class T:
    id: int
    name: str


class Checker(HTMLParser):
    """Collects tags (checking nesting) and the visible text of Telegram HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text += data


def check_html(text: str) -> Checker:
    checker = Checker()
    checker.feed(text)
    checker.close()
    assert not checker.stack, f"unclosed tags {checker.stack}"
    assert {tag for tag, _ in checker.tags} <= ALLOWED
    for tag, attrs in checker.tags:
        assert set(attrs) <= ({"href"} if tag == "a" else set())
    assert telegram_length(text) <= MAX_MESSAGE_CHARS
    return checker


def summary(text: str, *, lang: str = "id", title: str = "Judul", translated_from: str | None = None,
            method: SummaryMethod = SummaryMethod.EXTRACTIVE) -> ArticleSummary:
    return ArticleSummary(
        article_id=7,
        lang=lang,
        title=title,
        text=text,
        method=method,
        model="mt5" if method is SummaryMethod.SEQ2SEQ else None,
        translated_from=translated_from,
        translation_model="opus" if translated_from else None,
    )


def test_push_has_linked_title_summary_note_tags_source_and_buttons(i18n: I18n) -> None:
    article = Art(7, "Rusia & <NATO>", "https://example.com/a?x=1&y=\"2\"", "id")
    tags = [T(3, "Rusia"), T(9, "Amerika Serikat")]
    message = render_push(article, tags, "Kompas <TV>", summary("Isi <b>ringkasan</b> & lain."), "id", i18n)
    parsed = check_html(message.text)
    assert ("a", {"href": 'https://example.com/a?x=1&y="2"'}) in parsed.tags
    assert parsed.text.startswith("Judul\n\nIsi <b>ringkasan</b> & lain.")  # markup shown as text
    assert "Kalimat kunci dari artikel." in parsed.text  # an extract, honestly labelled
    assert "Ringkasan buatan mesin." not in parsed.text
    assert "#Rusia #Amerika_Serikat" in parsed.text
    assert "Sumber: Kompas <TV>" in parsed.text
    assert [[b.callback_data for b in row] for row in message.buttons] == [["tr:7:en"], ["unf:3:7", "unf:9:7"]]
    assert message.buttons[1][0].text == "🔕 Berhenti ikuti #Rusia"


def test_translated_push_says_so_and_offers_the_original(i18n: I18n) -> None:
    article = Art(7, "Rusia minta garansi", None, "id")
    message = render_push(
        article, [T(3, "Rusia")], None, summary("Russia asks.", lang="en", title="Russia asks", translated_from="id"),
        "en", i18n, followed_tag_ids={3},
    )
    parsed = check_html(message.text)
    assert parsed.text.startswith("Russia asks\n\nRussia asks.")
    assert "Key sentences from the article. Machine-translated from Indonesian." in parsed.text
    assert not any(tag == "a" for tag, _ in parsed.tags)  # no URL, no link
    assert [[b.callback_data for b in row] for row in message.buttons] == [["orig:7"], ["unf:3:7"]]


def test_model_summary_is_labelled_machine_made(i18n: I18n) -> None:
    made = summary("Isi.", method=SummaryMethod.SEQ2SEQ)
    parsed = check_html(render_push(Art(7, "Judul", None, "id"), [], None, made, "id", i18n).text)
    assert "Ringkasan buatan mesin." in parsed.text and "Kalimat kunci" not in parsed.text


def test_untranslated_text_says_so_and_offers_no_translate_button(i18n: I18n) -> None:
    # An English chat got the Indonesian text: no translation model could be used.
    original = summary("Rusia meminta jaminan.", lang="id")
    message = render_push(Art(7, "Judul", None, "id"), [T(3, "Rusia")], None, original, "en", i18n)
    parsed = check_html(message.text)
    assert "No translation into English is available; this is the Indonesian text." in parsed.text
    assert [[b.callback_data for b in row] for row in message.buttons] == [["unf:3:7"]]
    # With translation switched off no chat is offered a translate button.
    plain = render_push(Art(7, "Judul", None, "id"), [T(3, "Rusia")], None, original, "id", i18n, translation=False)
    assert [[b.callback_data for b in row] for row in plain.buttons] == [["unf:3:7"]]


def test_only_followed_tags_get_unfollow_buttons(i18n: I18n) -> None:
    message = render_push(
        Art(1, "T", None, "en"), [T(1, "A"), T(2, "B")], None, summary("x.", lang="en"), "en", i18n, followed_tag_ids={2}
    )
    assert message.buttons[-1][0].callback_data == "unf:2:1" and len(message.buttons[-1]) == 1
    assert message.buttons[0][0].callback_data == "tr:1:id"


def test_long_summary_is_trimmed_at_a_sentence_boundary(i18n: I18n) -> None:
    sentence = "Kalimat nomor satu berisi <angka> & fakta penting. "
    text = sentence * 200  # ~10,000 characters, each with escapes
    message = render_push(Art(2, "Judul", "https://e.com/x", "id"), [T(1, "Rusia")], "Kompas", summary(text), "id", i18n)
    parsed = check_html(message.text)
    body = parsed.text.split("\n\n")[1]
    assert body.endswith("fakta penting.")
    assert len(body) > 3000  # trimmed, not dropped
    assert "#Rusia" in parsed.text and "Sumber: Kompas" in parsed.text


def test_trim_never_cuts_a_word_or_an_astral_character() -> None:
    assert trim_text("satu dua tiga empat lima", 14) == "satu dua…"
    emoji = "🙂" * 10  # each counts 2 UTF-16 units
    trimmed = trim_text(emoji, 9)
    assert telegram_length(trimmed) <= 9 and trimmed.endswith("…") and set(trimmed[:-1]) == {"🙂"}


def test_hashtags_have_no_spaces_or_punctuation() -> None:
    assert hashtag("Amerika Serikat") == "#Amerika_Serikat"
    assert hashtag("<b>&") == "#b"
    assert hashtag("!!!") == "#tag"


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(min_size=1, max_size=400),
    body=st.text(max_size=6000),
    tag_names=st.lists(st.text(min_size=1, max_size=60), max_size=12),
    url=st.one_of(st.none(), st.text(min_size=1, max_size=300).map(lambda s: "https://e.com/" + s)),
    source=st.one_of(st.none(), st.text(max_size=300)),
)
def test_any_input_renders_to_valid_html_within_the_limit(
    title: str, body: str, tag_names: list[str], url: str | None, source: str | None
) -> None:
    i18n = I18n.load()
    tags = [T(index, name) for index, name in enumerate(tag_names)]
    message = render_push(Art(5, title, url, "id"), tags, source, summary(body, title=title), "en", i18n)
    parsed = check_html(message.text)
    if url is not None:
        assert parsed.tags[1] == ("a", {"href": url})
    for row in message.buttons:
        for button in row:
            assert len(button.callback_data.encode()) <= 64
