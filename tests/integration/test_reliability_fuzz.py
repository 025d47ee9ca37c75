"""A short atheris run per parser boundary (tests/support/fuzz_targets.py), each in its own process.

Bounded by libFuzzer's -max_total_time and -runs; seeded with the well-formed inputs so the
mutations start from realistic files. A crash (an exception past the boundary) fails the test
with the libFuzzer report and the crashing input saved under the test's tmp_path.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import fuzz_targets
from tests.support.peers import IN_CI

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 2  # per harness: 7 harnesses (plus ~2 s start-up each) stay near 30 s in CI


@pytest.fixture(scope="module")
def atheris_available() -> None:
    """Given atheris (the `fuzz` extra: make installs it where a wheel exists); missing: fails in CI, skips locally."""
    if importlib.util.find_spec("atheris") is None:
        message = "atheris is not installed (no wheel for this platform? pip install -e '.[fuzz]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_atheris_finds_no_escaping_exception(name: str, tmp_path: Path, atheris_available: None) -> None:
    """Given a parser boundary and its seeds, When fuzzed for 2 s, Then libFuzzer reports no crash."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(fuzz_targets.seeds()[name]):
        (corpus / f"seed{index}").write_bytes(seed)
    argv = [sys.executable, "-m", "tests.support.fuzz_run", name, f"-max_total_time={SECONDS}", "-runs=200000",
            "-seed=1", "-max_len=8192", "-rss_limit_mb=1024", f"-artifact_prefix={tmp_path}/", str(corpus)]
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=SECONDS + 30)
    report = proc.stderr.decode("utf-8", "replace")
    done = [line for line in report.splitlines() if "DONE" in line or line.startswith("Done ")]
    print(name, *done[-2:])
    # On failure show the Python traceback atheris printed (the crash file may be cleaned up later).
    assert proc.returncode == 0, report[report.find("Uncaught Python exception"):][:4000] or report[-3000:]
    assert done, report[-2000:]  # libFuzzer really ran to its bound
    assert not list(tmp_path.glob("crash-*"))
