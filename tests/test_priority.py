"""Model work runs below the conversation's CPU priority (summarizer/priority.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from summarizer import Engine, Method, Precision, SummarizerConfig
from summarizer.priority import LowPriorityThreads

from tinymodels import TinyModels, article


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def thread_nice(tid: str) -> int:
    # /proc/<pid>/task/<tid>/stat: field 19 is the nice value (after the command name in parentheses).
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[16])


def test_calls_run_on_threads_below_the_callers_priority() -> None:
    threads = LowPriorityThreads(5)
    base = own_nice()
    try:
        assert threads.call(own_nice) == min(19, base + 5)
        assert own_nice() == base  # the caller keeps its priority
    finally:
        threads.close()


def test_threads_a_model_starts_inherit_the_lowered_priority() -> None:
    threads = LowPriorityThreads(5)
    seen: list[int] = []

    def start_worker() -> None:  # as CTranslate2 or OpenMP start their own threads
        worker = threading.Thread(target=lambda: seen.append(own_nice()))
        worker.start()
        worker.join()

    try:
        threads.call(start_worker)
    finally:
        threads.close()
    assert seen == [min(19, own_nice() + 5)]


def test_nested_calls_run_in_place_and_errors_reach_the_caller() -> None:
    threads = LowPriorityThreads(3)
    try:
        outer, inner = threads.call(lambda: (threading.get_native_id(), threads.call(threading.get_native_id)))
        assert outer == inner != threading.get_native_id()

        def fail() -> None:
            raise ValueError("model failed")

        with pytest.raises(ValueError, match="model failed"):
            threads.call(fail)
    finally:
        threads.close()


def test_niceness_zero_runs_in_the_callers_thread() -> None:
    threads = LowPriorityThreads(0)
    assert threads.call(threading.get_native_id) == threading.get_native_id()


def test_engine_runs_ctranslate2_and_its_threads_at_lowered_priority(tiny_models: TinyModels, tmp_path: Path) -> None:
    engine = Engine(SummarizerConfig(summary_model=str(tiny_models.summary), precision=Precision.INT8, threads=2,
                                     num_beams=2, max_new_tokens=6, cache_dir=tmp_path, niceness=7))
    base = own_nice()
    before = set(os.listdir("/proc/self/task"))
    try:
        output = engine.summarize(article(1, sentences=3), "id")
        assert output.method is Method.SEQ2SEQ
        started = set(os.listdir("/proc/self/task")) - before
        lowered = {tid for tid in started if thread_nice(tid) == min(19, base + 7)}
        ours = str(engine.model_threads.call(threading.get_native_id))
        # Our own model thread, and the threads CTranslate2 started from it (its replicas).
        assert ours in lowered
        assert lowered - {ours}, "CTranslate2's threads kept full priority"
        assert own_nice() == base
    finally:
        engine.close()
