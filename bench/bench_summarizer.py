"""Benchmark: summary (mT5-base XLSum architecture) + one translation (opus-mt-id-en architecture) per article.

Random-weight models with the real architectures (bench/models.py), 512-token articles, fixed output
lengths (64 new summary tokens, 96 translation tokens) so random weights cannot shorten the work.
Each configuration runs in its own process (its own peak memory), all in one run, interleaved over
--repeat rounds; medians are printed. Modes: plain transformers (naive), summarizer.speed.accelerate()
(transformers backend) and summarizer.ct2 through the engine's ModelStore (ct2 ..., newsbot's default
backend; conversions are stored before the timed rounds). This box's figures are noisy: compare
modes within one run. Each round also measures CTranslate2's int8 matrix-product rate
(bench/int8_rate.py) and the table prints each mode's share of it; --lock FILE holds FILE (flock)
during each round only.

    .venv/bin/python bench/bench_summarizer.py --quick
    .venv/bin/python bench/bench_summarizer.py --articles 8 --repeat 3
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.int8_rate import GemmRate, Seq2SeqShape, measure
from bench.models import (
    SUMMARY_CONFIG,
    TRANSLATION_CONFIG,
    BenchModel,
    TokenizerFolders,
    ensure_model,
    load_config,
    random_articles,
    tokenizer_folders,
)

SUMMARY_INPUT_TOKENS = 512
SUMMARY_TOKENS = 64
TRANSLATION_INPUT_TOKENS = 96  # title + summary, as the engine sends them
TRANSLATION_TOKENS = 96
BEAMS = 4
GEMM_RATE = "int8 GEMM rate"  # the pseudo-mode measuring CTranslate2's int8 matrix-product rate


class Backend(StrEnum):
    """How a configuration runs the models."""

    NAIVE = "naive"  # plain transformers fp32, as loaded
    ACCELERATE = "accelerate"  # summarizer.speed.accelerate() (MODEL_BACKEND=transformers)
    CTRANSLATE2 = "ctranslate2"  # summarizer.ct2 through the engine's ModelStore (MODEL_BACKEND=ctranslate2)


@dataclass(frozen=True)
class Mode:
    """One benchmarked configuration."""

    name: str
    backend: Backend
    precision: str = "fp32"
    trim: bool = False
    batch: int = 1
    runtime: bool = True  # newsbot's process runtime: MODEL_ALLOCATOR preload + OMP_WAIT_POLICY=PASSIVE
    isa: str = ""  # CT2_FORCE_CPU_ISA for CTranslate2 ("" = newsbot's choice: AVX512 where the CPU has it)
    # CTranslate2 replicas x intra-op threads, e.g. "2x2"; "" = newsbot's (summarizer.ct2.thread_layout,
    # MODEL_THREADS=0); "default" = CTranslate2's own defaults, as a plain Translator(path) gets them.
    layout: str = ""


@dataclass
class Result:
    """What a child process measured."""

    mode: str
    ms_per_article: float
    summary_ms: float
    translation_ms: float
    load_s: float
    resident_mb: float  # RSS with both models loaded and prepared
    peak_mb: float  # peak RSS of the whole process (loading included)
    ids: str = ""  # digest of every generated id: layouts of one model must write the same ids


def default_modes(batch: int) -> list[Mode]:
    """The baseline and newsbot's levers, one at a time and combined."""
    return [
        Mode("naive fp32 b1", Backend.NAIVE, runtime=False),
        Mode("naive fp32 b1 +rt", Backend.NAIVE),
        Mode("fp32 b1", Backend.ACCELERATE, "fp32"),
        Mode("bf16 b1", Backend.ACCELERATE, "bf16"),
        Mode("bf16+trim b1 -rt", Backend.ACCELERATE, "bf16", True, runtime=False),
        Mode("bf16+trim b1", Backend.ACCELERATE, "bf16", True),
        Mode("int8+trim b1", Backend.ACCELERATE, "int8", True),
        Mode(f"bf16+trim b{batch}", Backend.ACCELERATE, "bf16", True, batch),
        Mode(f"int8+trim b{batch}", Backend.ACCELERATE, "int8", True, batch),
        # The reference, plain CTranslate2: the untrimmed model, Translator(path, compute_type="int8").
        Mode(f"ct2 int8 b{batch}", Backend.CTRANSLATE2, "int8", False, batch, layout="default"),
        Mode(f"ct2 int8 b{batch} newsbot layout", Backend.CTRANSLATE2, "int8", False, batch),  # trimming's share
        Mode(f"ct2 int8+trim b{batch} avx2", Backend.CTRANSLATE2, "int8", True, batch, isa="AVX2"),
        Mode("ct2 fp32+trim b1", Backend.CTRANSLATE2, "fp32", True),
        Mode("ct2 int8+trim b1", Backend.CTRANSLATE2, "int8", True),  # newsbot's defaults, one at a time
        Mode(f"ct2 int8+trim b{batch}", Backend.CTRANSLATE2, "int8", True, batch),  # newsbot's defaults
        # The layout newsbot used before summarizer.ct2.thread_layout: two replicas of two threads each.
        Mode("ct2 int8+trim b1 2x2", Backend.CTRANSLATE2, "int8", True, layout="2x2"),
        Mode(f"ct2 int8+trim b{batch} 2x2", Backend.CTRANSLATE2, "int8", True, batch, layout="2x2"),
        Mode(f"ct2 int8+trim b{batch} -rt", Backend.CTRANSLATE2, "int8", True, batch, runtime=False),
        Mode("ct2 int8+trim b1 -rt", Backend.CTRANSLATE2, "int8", True, runtime=False),
    ]


def rss_mb() -> float:
    """Current resident set size in MiB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def summary_kwargs() -> dict[str, Any]:
    return {"num_beams": BEAMS, "min_new_tokens": SUMMARY_TOKENS, "max_new_tokens": SUMMARY_TOKENS,
            "no_repeat_ngram_size": 3, "do_sample": False}


def translation_kwargs() -> dict[str, Any]:
    return {"num_beams": BEAMS, "min_new_tokens": TRANSLATION_TOKENS, "max_new_tokens": TRANSLATION_TOKENS,
            "do_sample": False}


def run_child(mode: Mode, folders: TokenizerFolders, models: dict[str, BenchModel], articles: int, threads: int,
              cache_dir: Path) -> Result:
    """Load both models, prepare them as the mode says, time summary + translation per article."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from summarizer import Backend as ModelBackend
    from summarizer import Precision, SummarizerConfig
    from summarizer.models import ModelStore
    from summarizer.speed import accelerate

    torch.set_num_threads(threads)
    started = time.perf_counter()
    runners = {}
    languages = {"summary": ["id", "en"], "translation": ["en"]}
    store = ModelStore(SummarizerConfig(backend=ModelBackend.CTRANSLATE2, precision=Precision(mode.precision),
                                        threads=0, cache_dir=cache_dir / "converted"))
    for role, folder in (("summary", folders.summary), ("translation", folders.translation)):
        if mode.backend is Backend.CTRANSLATE2:
            runners[role] = relayout(store.get(str(folder), languages[role] if mode.trim else None).runner,
                                     mode.layout)
            continue
        model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        if mode.backend is Backend.NAIVE:
            runners[role] = model
            continue
        runners[role] = accelerate(model, AutoTokenizer.from_pretrained(folder), precision=mode.precision,
                                   languages=languages[role] if mode.trim else None, threads=threads)
    load_s = time.perf_counter() - started
    resident = rss_mb()
    if not articles:  # --prepare: conversions are stored, nothing to time
        return Result(mode.name, 0.0, 0.0, 0.0, load_s, resident, rss_mb())
    summary_in = random_articles(models["summary"], articles, SUMMARY_INPUT_TOKENS, seed=1)
    translation_in = random_articles(models["translation"], articles, TRANSLATION_INPUT_TOKENS, seed=2)

    digest = hashlib.sha256()

    def timed(role: str, rows: list[torch.Tensor], kwargs: dict[str, Any]) -> float:
        total = 0.0
        for start in range(0, len(rows), mode.batch):
            ids = torch.stack(rows[start:start + mode.batch])
            began = time.perf_counter()
            with torch.inference_mode():
                out = runners[role].generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
            total += time.perf_counter() - began
            # Every configuration writes exactly the fixed number of tokens (plus the start token).
            assert tuple(out.shape) == (ids.shape[0], kwargs["max_new_tokens"] + 1), out.shape
            digest.update(out.numpy().tobytes())
        return total

    # Warm-up on one short input: first calls pay one-off costs (oneDNN kernel choice, allocations).
    warm = {"num_beams": 4, "max_new_tokens": 4, "min_new_tokens": 4}
    timed("summary", [summary_in[0][:64]] * mode.batch, warm)
    timed("translation", [translation_in[0][:32]] * mode.batch, warm)
    digest = hashlib.sha256()  # the measured outputs only
    summary_s = timed("summary", summary_in, summary_kwargs())
    translation_s = timed("translation", translation_in, translation_kwargs())
    peak = own_peak_mb()
    return Result(mode.name, 1000 * (summary_s + translation_s) / articles, 1000 * summary_s / articles,
                  1000 * translation_s / articles, load_s, resident, peak, digest.hexdigest()[:12])


def relayout(runner: Any, layout: str) -> Any:
    """The runner with another CTranslate2 thread layout than newsbot's (Mode.layout); same weights."""
    if not layout:
        return runner
    from summarizer.ct2 import ThreadLayout

    # CTranslate2's own defaults are one translator (inter_threads=1) with intra_threads=0 (its choice).
    replicas, intra = (1, 0) if layout == "default" else (int(part) for part in layout.split("x"))
    runner.use_layout(ThreadLayout(replicas, intra))
    return runner


def own_peak_mb() -> float:
    """This process's own peak RSS: VmHWM belongs to the address space, which exec replaces.

    getrusage's ru_maxrss is not: Linux carries it over fork and exec, so every child reported at
    least the parent's peak, and every row showed the same figure.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def spawn(mode: Mode, args: argparse.Namespace, prepare: bool = False) -> Result | None:
    """Run one mode in a fresh process (own memory peak, own allocator); `prepare`: load (convert) only."""
    from summarizer.speed import RUNTIME_MARKER, runtime_environment

    env = {key: value for key, value in os.environ.items()
           if key not in {"LD_PRELOAD", "OMP_WAIT_POLICY", RUNTIME_MARKER}}
    if mode.runtime:
        env = runtime_environment(args.allocator, env) or env
    if mode.isa:
        env["CT2_FORCE_CPU_ISA"] = mode.isa
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        command = [sys.executable, __file__, "--child", json.dumps(asdict(mode)), "--result", out.name,
                   "--articles", str(args.articles if mode.batch > 1 else args.latency_articles),
                   "--threads", str(args.threads), "--keep", str(args.keep),
                   "--cache-dir", str(args.cache_dir)]
        if prepare:
            command[command.index("--articles") + 1] = "0"
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(f"  {mode.name} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        return Result(**json.load(out))


def spawn_gemm_rate(args: argparse.Namespace) -> GemmRate | None:
    """Measure CTranslate2's int8 matrix-product rate in a fresh process with the ct2 modes' runtime."""
    from summarizer.speed import RUNTIME_MARKER, runtime_environment

    env = {key: value for key, value in os.environ.items()
           if key not in {"LD_PRELOAD", "OMP_WAIT_POLICY", RUNTIME_MARKER}}
    env = runtime_environment(args.allocator, env) or env
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        command = [sys.executable, __file__, "--gemm-rate", "--result", out.name, "--threads", str(args.threads),
                   "--cache-dir", str(args.cache_dir)]
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(f"  {GEMM_RATE} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        return GemmRate(**json.load(out))


def gemm_operations(mode: Mode, models: dict[str, BenchModel], keep: int) -> float:
    """Matrix-product operations of one article (summary + translation) in this mode's model shapes."""
    summary = Seq2SeqShape.of(load_config(SUMMARY_CONFIG))
    translation = Seq2SeqShape.of(load_config(TRANSLATION_CONFIG))
    summary_vocab = keep if mode.trim else models["summary"].vocab_size
    return (summary.operations(SUMMARY_INPUT_TOKENS, SUMMARY_TOKENS, BEAMS, summary_vocab)
            + translation.operations(TRANSLATION_INPUT_TOKENS, TRANSLATION_TOKENS, BEAMS,
                                     models["translation"].vocab_size))


class RoundLock:
    """Holds `path` with flock(2) for one round, so other timed runs on the machine wait only that long."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: Any = None

    def __enter__(self) -> RoundLock:
        if self.path is not None:
            self._file = open(self.path, "a", encoding="ascii")  # closed in __exit__
            fcntl.flock(self._file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock
            self._file = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 articles, batch 2, one round, fewer modes")
    parser.add_argument("--articles", type=int, default=8, help="articles per batched configuration")
    parser.add_argument("--latency-articles", type=int, default=2,
                        help="articles per one-at-a-time configuration (the naive one is slow)")
    parser.add_argument("--batch", type=int, default=8, help="batch size of the throughput modes")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over all modes; medians are printed")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads of the transformers modes and of the int8 GEMM rate (CTranslate2 "
                             "modes use newsbot's layout or their own, see Mode.layout)")
    parser.add_argument("--keep", type=int, default=64000,
                        help="summary output tokens kept by trimming (mT5 Latin-script pieces, estimated)")
    parser.add_argument("--allocator", choices=["auto", "tcmalloc", "jemalloc", "system"], default="auto",
                        help="MODEL_ALLOCATOR of the modes with newsbot's runtime (+rt)")
    parser.add_argument("--modes", default="", help="comma-separated mode names to run (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "newsbot-bench-models")
    parser.add_argument("--lock", type=Path, help="flock this file during each round (not between rounds)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--gemm-rate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.gemm_rate:
        rate = measure(args.cache_dir / "int8-gemm-rate", args.threads)
        Path(args.result).write_text(json.dumps(asdict(rate)), encoding="utf-8")
        return
    models = {"summary": ensure_model(SUMMARY_CONFIG, args.cache_dir),
              "translation": ensure_model(TRANSLATION_CONFIG, args.cache_dir)}
    folders = tokenizer_folders(args.cache_dir, args.keep)
    if args.child:
        fields = json.loads(args.child)
        mode = Mode(**{**fields, "backend": Backend(fields["backend"])})
        result = run_child(mode, folders, models, args.articles, args.threads, args.cache_dir)
        Path(args.result).write_text(json.dumps(asdict(result)), encoding="utf-8")
        return
    if args.quick:
        args.articles, args.batch, args.repeat = min(args.articles, 2), min(args.batch, 2), 1
        args.latency_articles = 1
    modes = list({mode.name: mode for mode in default_modes(args.batch)}.values())  # batch 1: no twins
    if args.modes:
        wanted = {name.strip() for name in args.modes.split(",")}
        modes = [mode for mode in modes if mode.name in wanted]
    elif args.quick:
        modes = [mode for mode in modes
                 if mode.name in {"naive fp32 b1", "ct2 int8+trim b1", f"ct2 int8+trim b{args.batch}"}]
    print(f"{args.articles} articles per batched mode, {args.latency_articles} per one-at-a-time mode, 512 tokens; "
          f"summary {SUMMARY_TOKENS} tokens, translation "
          f"{TRANSLATION_INPUT_TOKENS}->{TRANSLATION_TOKENS} tokens, beam 4; torch threads {args.threads}; "
          f"trim keeps {args.keep} of {models['summary'].vocab_size}; +rt: MODEL_ALLOCATOR={args.allocator} and "
          f"OMP_WAIT_POLICY=PASSIVE (-rt: without); "
          f"{args.repeat} round(s), medians", flush=True)
    for mode in modes:
        if mode.backend is Backend.CTRANSLATE2:  # convert once, outside the timed runs (as a server does)
            spawn(mode, args, prepare=True)
    results: dict[str, list[Result]] = {mode.name: [] for mode in modes}
    rates: list[GemmRate] = []
    for round_number in range(args.repeat):
        with RoundLock(args.lock):
            rate = spawn_gemm_rate(args)
            if rate is not None:
                rates.append(rate)
                print(f"  round {round_number + 1} {GEMM_RATE}: {rate.gops:.1f} GOP/s", file=sys.stderr, flush=True)
            for mode in modes:
                result = spawn(mode, args)
                if result is not None:
                    results[mode.name].append(result)
                    print(f"  round {round_number + 1} {mode.name}: {result.ms_per_article:.0f} ms/article",
                          file=sys.stderr, flush=True)
    report(results, rates, {mode.name: mode for mode in modes}, models, args.keep)


def report(results: dict[str, list[Result]], rates: list[GemmRate], modes: dict[str, Mode],
           models: dict[str, BenchModel], keep: int) -> None:
    """Median figures per mode, the ratio to the naive baseline, and the share of the int8 GEMM rate."""
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    baseline = median([r.ms_per_article for r in results.get("naive fp32 b1", [])])
    rate = median([r.gops for r in rates])
    if rates:
        print(f"{GEMM_RATE} (CTranslate2 int8 Dense layers, {rates[0].shape}): {rate:.1f} GOP/s "
              f"(median of {len(rates)}: {', '.join(f'{r.gops:.1f}' for r in rates)})")
    print(f"{'mode':<22}{'ms/article':>11}{'summary':>9}{'transl.':>9}{'x naive':>9}{'GOP/art':>9}{'GOP/s':>7}"
          f"{'% int8':>8}{'resident MB':>13}{'peak MB':>9}{'load s':>8}{'runs':>6}  ids")
    for name, runs in results.items():
        if not runs:
            print(f"{name:<22} failed")
            continue
        total = median([r.ms_per_article for r in runs])
        operations = gemm_operations(modes[name], models, keep) / 1e9
        achieved = operations / (total / 1000)
        # The share means something only for int8 CTranslate2 modes (same kernels as the measured rate).
        int8 = modes[name].backend is Backend.CTRANSLATE2 and modes[name].precision == "int8"
        share = f"{100 * achieved / rate:>7.0f}%" if int8 and rates else f"{'-':>8}"
        print(f"{name:<22}{total:>11.0f}{median([r.summary_ms for r in runs]):>9.0f}"
              f"{median([r.translation_ms for r in runs]):>9.0f}{baseline / total:>9.1f}{operations:>9.0f}"
              f"{achieved:>7.1f}{share}"
              f"{median([r.resident_mb for r in runs]):>13.0f}{median([r.peak_mb for r in runs]):>9.0f}"
              f"{median([r.load_s for r in runs]):>8.1f}{len(runs):>6}  {'/'.join(sorted({r.ids for r in runs}))}")

if __name__ == "__main__":
    main()
