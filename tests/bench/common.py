"""Shared helpers for benchmarks: timing, peak memory, and the result table."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class Row:
    """One line of a benchmark table: a measured figure against its goal."""

    what: str
    value: float
    unit: str
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""
    ok: bool | None = None


def machine() -> str:
    """A one-line description of the machine the figures come from."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    py = platform.python_version()
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), Python {py}"


def wall_median(argv: Sequence[str], runs: int = 11, env: dict[str, str] | None = None) -> float:
    """Median wall time of a command, in seconds (one warm-up run first)."""
    subprocess.run(list(argv), capture_output=True, env=env, check=False)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(list(argv), capture_output=True, env=env, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def installed_env() -> dict[str, str]:
    """The environment of a measured command, as an installed Python package runs: bytecode cached
    (a shell or CI may set PYTHONDONTWRITEBYTECODE, which makes every start compile every module)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def interleaved(commands: dict[str, Sequence[str]], runs: int = 11,
                env: dict[str, str] | None = None) -> dict[str, float]:
    """Median wall times of several commands measured in alternation (fair on a noisy machine)."""
    for argv in commands.values():
        subprocess.run(list(argv), capture_output=True, check=False, env=env)
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(runs):
        for key, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(list(argv), capture_output=True, check=False, env=env)
            samples[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in samples.items()}


def children_peak_rss_mib() -> float:
    """Peak RSS of the largest waited-for child process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def cpu_seconds(fn: Callable[[], object]) -> float:
    """Process CPU time (user + system) spent in ``fn``."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def print_table(title: str, rows: Sequence[Row]) -> int:
    """Print the table and return 1 when a goal is missed, else 0."""
    print(f"{title}\nmachine: {machine()}")
    header = f"{'measure':44} {'value':>12} {'baseline':>22} {'ratio':>7}  {'goal':18} ok"
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        ok = "" if r.ok is None else ("yes" if r.ok else "NO")
        print(f"{r.what:44} {r.value:>9.3f} {r.unit:2} {r.baseline:>22} {ratio:>7}  {r.goal:18} {ok}")
    return 0 if all(r.ok is not False for r in rows) else 1
