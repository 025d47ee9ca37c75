"""Run every benchmark (or those named): ``python -m tests.bench [NAME...]``.

Each ``tests/bench/bench_<name>.py`` exposes ``main() -> int`` that measures its goal and its
baseline side by side, prints a table with ratios, and returns non-zero when a goal is missed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)])
                   if m.name.startswith("bench_"))
    chosen = argv or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}\n")
        return 3
    worst = 0
    for name in chosen:
        print(f"\n== bench {name} ==", flush=True)
        worst = max(worst, importlib.import_module(f"tests.bench.bench_{name}").main())
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
