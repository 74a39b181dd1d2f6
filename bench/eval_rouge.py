"""ROUGE of the extractive fallback against Lead-3 on the IndoSum dev subset.

Usage: .venv/bin/python bench/eval_rouge.py [--data ../shared/data/indosum-dev-100.jsonl] [--sentences 3]
                                            [--model ID_OR_FOLDER [--backend auto] [--precision int8] [--limit 20]]
Prints ROUGE-1/2/L F1 (x100) of Lead-3, of each extractive algorithm, and of a model if given. Scored with rouge-score,
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


def evaluate_model(rows: list[dict[str, str]], model: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """Mean ROUGE-1/2/L F1 (x100) of a seq2seq model run through newsbot's engine."""
    from rouge_score import rouge_scorer

    from summarizer import Backend, Engine, Method, Precision, SummarizerConfig

    config = SummarizerConfig(
        summary_model=model,
        cache_dir=args.cache_dir,
        backend=Backend(args.backend),
        precision=Precision(args.precision),
        num_beams=args.beams,
        batch_size=args.batch_size,
    )
    outputs = Engine(config).summarize_batch([row["text"] for row in rows], ["id"] * len(rows))
    if any(output.method is Method.EXTRACTIVE for output in outputs):
        raise SystemExit(f"model {model} did not run: {outputs[0].fallback_reason}")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=LowercaseTokenizer())
    totals = [0.0, 0.0, 0.0]
    for row, output in zip(rows, outputs, strict=True):
        scores = scorer.score(row["summary"], output.text)
        for index, key in enumerate(("rouge1", "rouge2", "rougeL")):
            totals[index] += scores[key].fmeasure
    return 100 * totals[0] / len(rows), 100 * totals[1] / len(rows), 100 * totals[2] / len(rows)


def main() -> None:
    """Read the data set and print one line per method."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sentences", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N articles")
    parser.add_argument("--model", help="also score this seq2seq model (Hub id in the cache, or a folder)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--backend", default="auto", choices=["auto", "ctranslate2", "transformers"])
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"],
                        help="fp32 is the reference; compare MODEL_PRECISION=int8 (newsbot's default) against it")
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    with args.data.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    print(f"{len(rows)} articles from {args.data.name}; ROUGE F1 x100 (R1 / R2 / RL)")
    for name, (r1, r2, rl) in evaluate(rows, args.sentences).items():
        print(f"{name:46s} {r1:6.2f} {r2:6.2f} {rl:6.2f}")
    if args.model:
        r1, r2, rl = evaluate_model(rows, args.model, args)
        print(f"{args.model[:46]:46s} {r1:6.2f} {r2:6.2f} {rl:6.2f}")


if __name__ == "__main__":
    main()
