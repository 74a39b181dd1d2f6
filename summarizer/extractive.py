"""Extractive summaries: lead sentences, or TextRank with a position prior."""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Sequence

from summarizer.text import clean_whitespace, drop_repeated_sentences, ends_sentence, split_sentences, words

MIN_WORDS = 5  # shorter lines ("Tags:", "Loading", bylines) are never picked
MAX_HEADLINE_WORDS = 15  # an unpunctuated line shorter than this is a headline or caption
_DAMPING = 0.85
_ITERATIONS = 50


class ExtractiveAlgorithm(enum.StrEnum):
    """How the fallback picks sentences."""

    LEAD = "lead"
    TEXTRANK = "textrank"


def candidate_sentences(text: str) -> list[str]:
    """Sentences worth showing, in article order, without repeats.

    Short lines without final punctuation (headlines, bylines, captions) are used only when the
    text has no other sentences of MIN_WORDS words.
    """
    sentences = drop_repeated_sentences(split_sentences(text), threshold=0.95)
    long_enough = [sentence for sentence in sentences if len(words(sentence)) >= MIN_WORDS]
    complete = [
        sentence
        for sentence in long_enough
        if ends_sentence(sentence) or len(words(sentence)) >= MAX_HEADLINE_WORDS
    ]
    return complete or long_enough or sentences


def lead(sentences: Sequence[str], count: int) -> list[int]:
    """Indices of the first `count` sentences."""
    return list(range(min(count, len(sentences))))


def _similarity_matrix(sentences: Sequence[str]) -> list[list[float]]:
    """Cosine similarity of log-scaled TF-IDF word vectors between every pair of sentences."""
    bags = [Counter(words(sentence)) for sentence in sentences]
    document_frequency: Counter[str] = Counter()
    for bag in bags:
        document_frequency.update(bag.keys())
    total = len(bags)
    vectors: list[dict[str, float]] = []
    for bag in bags:
        vector = {
            word: (1 + math.log(count)) * math.log((1 + total) / (1 + document_frequency[word]) + 1)
            for word, count in bag.items()
        }
        vectors.append(vector)
    norms = [math.sqrt(sum(value * value for value in vector.values())) or 1.0 for vector in vectors]
    matrix = [[0.0] * total for _ in range(total)]
    for i in range(total):
        for j in range(i + 1, total):
            small, large = (vectors[i], vectors[j]) if len(vectors[i]) < len(vectors[j]) else (vectors[j], vectors[i])
            dot = sum(value * large.get(word, 0.0) for word, value in small.items())
            score = dot / (norms[i] * norms[j])
            matrix[i][j] = matrix[j][i] = score
    return matrix


def textrank(sentences: Sequence[str], count: int, position_weight: float = 1.0) -> list[int]:
    """Indices of the top `count` sentences by PageRank, personalized towards early sentences."""
    total = len(sentences)
    if total <= count:
        return list(range(total))
    matrix = _similarity_matrix(sentences)
    # News puts the gist first: the teleport vector favours early sentences (1 / (i+1)^w).
    prior = [1.0 / (index + 1) ** position_weight for index in range(total)]
    prior_sum = sum(prior)
    prior = [value / prior_sum for value in prior]
    out_weight = [sum(row) for row in matrix]
    scores = prior[:]
    for _ in range(_ITERATIONS):
        new_scores = []
        for i in range(total):
            incoming = sum(
                matrix[j][i] / out_weight[j] * scores[j] for j in range(total) if matrix[j][i] and out_weight[j]
            )
            new_scores.append((1 - _DAMPING) * prior[i] + _DAMPING * incoming)
        # Sentences linked to nothing give their mass back through the prior.
        lost = 1.0 - sum(new_scores)
        scores = [value + lost * prior[i] for i, value in enumerate(new_scores)]
    ranked = sorted(range(total), key=lambda index: (-scores[index], index))
    return sorted(ranked[:count])


def extract(text: str, count: int, algorithm: ExtractiveAlgorithm = ExtractiveAlgorithm.LEAD) -> str:
    """An extractive summary of `count` sentences, in article order."""
    sentences = candidate_sentences(clean_whitespace(text))
    picked = textrank(sentences, count) if algorithm is ExtractiveAlgorithm.TEXTRANK else lead(sentences, count)
    return " ".join(sentences[index] for index in picked)
