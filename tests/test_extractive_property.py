"""Property tests: sentence splitting and extraction never crash and never invent text."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from summarizer.extractive import ExtractiveAlgorithm, extract
from summarizer.text import clean_whitespace, split_sentences, tidy_generated, words

WORDS = st.sampled_from(
    ["Rusia", "minta", "garansi", "Dr.", "dll.", "1.000", "U.S.", "“Kami", "menolak,”", "kata", "NATO", "yes", "?"]
)
TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(WORDS, st.sampled_from([". ", "! ", "\n", "\n\n", " ", "... "])), max_size=80).map("".join),
)


@settings(max_examples=150, deadline=None)
@given(TEXT)
def test_sentences_cover_the_words_in_order(text: str) -> None:
    sentences = split_sentences(text)
    assert all(sentence and sentence == sentence.strip() for sentence in sentences)
    assert [word for sentence in sentences for word in words(sentence)] == words(clean_whitespace(text))


def joins_subsequence(summary: str, sentences: list[str], limit: int) -> bool:
    """True when summary is " ".join of at most `limit` of the sentences, in their order."""
    if not summary:
        return True
    if limit == 0:
        return False
    for index, sentence in enumerate(sentences):
        if summary == sentence:
            return True
        if summary.startswith(sentence + " ") and joins_subsequence(
            summary[len(sentence) + 1 :], sentences[index + 1 :], limit - 1
        ):
            return True
    return False


@settings(max_examples=150, deadline=None)
@given(TEXT, st.integers(min_value=1, max_value=5), st.sampled_from(list(ExtractiveAlgorithm)))
def test_extract_only_picks_sentences_of_the_text(text: str, count: int, algorithm: ExtractiveAlgorithm) -> None:
    summary = extract(text, count, algorithm)
    assert joins_subsequence(summary, split_sentences(text), count)
    assert bool(summary) == any(words(sentence) for sentence in split_sentences(text))


@settings(max_examples=150, deadline=None)
@given(TEXT)
@example("00100\n00000. 00000:00100.")  # a line break split what the joined text merges
def test_tidy_generated_is_idempotent_and_keeps_no_new_words(text: str) -> None:
    tidy = tidy_generated(text)
    assert tidy_generated(tidy) == tidy
    assert set(words(tidy)) <= set(words(text))
