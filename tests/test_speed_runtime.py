"""Process runtime for model work: allocator preload and passive OpenMP threads via one re-exec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from summarizer.speed import (
    RUNTIME_MARKER,
    Allocator,
    find_allocator,
    runtime_environment,
)


@pytest.fixture
def libdirs(tmp_path: Path) -> list[str]:
    """Two library folders: jemalloc in the first, tcmalloc in the second."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "libjemalloc.so.2").write_bytes(b"")
    (second / "libtcmalloc_minimal.so.4").write_bytes(b"")
    return [str(first), str(second)]


def test_auto_prefers_tcmalloc_then_jemalloc(libdirs: list[str], tmp_path: Path) -> None:
    assert find_allocator("auto", libdirs) == str(tmp_path / "b" / "libtcmalloc_minimal.so.4")
    assert find_allocator(Allocator.JEMALLOC, libdirs) == str(tmp_path / "a" / "libjemalloc.so.2")
    assert find_allocator("auto", libdirs[:1]) == str(tmp_path / "a" / "libjemalloc.so.2")
    assert find_allocator("system", libdirs) is None
    assert find_allocator("tcmalloc", libdirs[:1]) is None  # not installed: no preload, no error
    with pytest.raises(ValueError):
        find_allocator("hoard", libdirs)


def test_runtime_environment_preloads_and_sets_passive_threads(libdirs: list[str]) -> None:
    env = runtime_environment("tcmalloc", {"PATH": "/bin", "LD_PRELOAD": "/x/other.so"}, libdirs)
    assert env is not None
    assert env["LD_PRELOAD"].split(":") == [libdirs[1] + "/libtcmalloc_minimal.so.4", "/x/other.so"]
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env[RUNTIME_MARKER] == "1" and env["PATH"] == "/bin"
    # The user's own OpenMP policy wins; the restarted process never restarts again.
    assert runtime_environment("system", {"OMP_WAIT_POLICY": "ACTIVE"}, libdirs) is None
    assert runtime_environment("tcmalloc", {RUNTIME_MARKER: "1"}, libdirs) is None


def test_reexec_restarts_the_process_once_with_the_runtime() -> None:
    code = (
        "import json, os\n"
        "from summarizer.speed import reexec_with_runtime\n"
        "print('start', flush=True)\n"
        "reexec_with_runtime('auto')\n"
        f"print(json.dumps({{k: os.environ.get(k) for k in ('LD_PRELOAD', 'OMP_WAIT_POLICY', {RUNTIME_MARKER!r})}}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["start", "start"]  # ran, restarted once, did not loop
    seen = json.loads(lines[2])
    assert seen["OMP_WAIT_POLICY"] == "PASSIVE" and seen[RUNTIME_MARKER] == "1"
    assert seen["LD_PRELOAD"] == find_allocator("auto")  # None where no allocator is installed
