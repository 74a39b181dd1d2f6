"""ROUGE of the extractive fallback against Lead-3 on the IndoSum dev subset.

Usage: .venv/bin/python bench/eval_rouge.py [--data ../shared/data/indosum-dev-100.jsonl] [--sentences 3]
Prints ROUGE-1/2/L F1 (x100) of Lead-3 and of each extractive algorithm. Scored with rouge-score,
a tokenizing, lower-casing tokenizer and no stemmer (its Porter stemmer is English-only).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

from summarizer.extractive import ExtractiveAlgorithm, extract
from summarizer.text import split_sentences

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "indosum-dev-100.jsonl"


class LowercaseTokenizer:
    """rouge-score tokenizer: lower-cased word tokens, keeping non-ASCII letters."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())


def evaluate(rows: list[dict[str, str]], sentences: int) -> dict[str, tuple[float, float, float]]:
    """Mean ROUGE-1/2/L F1 (x100) per method."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=LowercaseTokenizer())
    methods: dict[str, Callable[[str], str]] = {
        f"Lead-{sentences} (first sentences, baseline)": lambda text: " ".join(split_sentences(text)[:sentences]),
        "fallback lead (default)": lambda text: extract(text, sentences, ExtractiveAlgorithm.LEAD),
        "fallback textrank+position": lambda text: extract(text, sentences, ExtractiveAlgorithm.TEXTRANK),
    }
    results: dict[str, tuple[float, float, float]] = {}
    for name, summarize in methods.items():
        totals = [0.0, 0.0, 0.0]
        for row in rows:
            prediction = summarize(row["text"])
            scores = scorer.score(row["summary"], prediction)
            for index, key in enumerate(("rouge1", "rouge2", "rougeL")):
                totals[index] += scores[key].fmeasure
        results[name] = (
            100 * totals[0] / len(rows),
            100 * totals[1] / len(rows),
            100 * totals[2] / len(rows),
        )
    return results


def main() -> None:
    """Read the data set and print one line per method."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sentences", type=int, default=3)
    args = parser.parse_args()
    with args.data.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    print(f"{len(rows)} articles from {args.data.name}; ROUGE F1 x100 (R1 / R2 / RL)")
    for name, (r1, r2, rl) in evaluate(rows, args.sentences).items():
        print(f"{name:46s} {r1:6.2f} {r2:6.2f} {rl:6.2f}")


if __name__ == "__main__":
    main()
