"""A progress line on stderr for long waits: only on a terminal, never on a pipe or in a log."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SHOW_AFTER = 1.0  # seconds: quick commands print nothing extra
EVERY = 0.5


@contextmanager
def progress(describe: Callable[[float], str], after: float = SHOW_AFTER) -> Iterator[None]:
    """While the block runs, rewrite one stderr line with ``describe(seconds elapsed)``; erase it at the end.

    Nothing at all when stderr is not a terminal, so pipes, files and journald get no control characters.
    """
    if not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        shown = False
        while not done.wait(after if not shown else EVERY):
            shown = True
            sys.stderr.write(f"\r\033[K{describe(time.monotonic() - start)}")
            sys.stderr.flush()
        if shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    thread = threading.Thread(target=tick, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=2)
