"""``rmxdiag run``: one troubleshooting run of every probe of the configured targets.

Prints a verdict line per target first, then the root-cause hints (most severe first) with their
evidence and numbered fix steps, then the details, then (when ``server.external_url`` says where
the daemon serves them) the URL of each target's page; ``--format json`` prints the JSON
document, ``--format html`` one self-contained page. The exit code is the Nagios one (3 for a bad
config, which is one ``file:line:`` line).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from daemon.commands._common import add_format, emit
from daemon.commands._config_arg import add_config, load
from daemon.config.load import ConfigError

EXIT_UNKNOWN = 3
PROGRESS_AFTER = 1.0  # seconds: quick runs print nothing extra


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rmxdiag run``."""
    add_config(parser)
    parser.add_argument("--target", action="append", default=[], metavar="NAME",
                        help="run only this target (repeatable; default: every configured target)")
    add_format(parser)


def execute(args: argparse.Namespace) -> int:
    """Run the selected targets and print the report; Nagios exit code."""
    from daemon.engine import run_targets

    try:
        config = load(args)
    except ConfigError as exc:
        sys.stderr.write(f"rmxdiag: error: {exc}\n")
        return EXIT_UNKNOWN
    unknown = [name for name in args.target if config.target(name) is None]
    if unknown:
        known = ", ".join(t.name for t in config.targets)
        sys.stderr.write(f"rmxdiag: error: --target {unknown[0]}: no such target in {config.source} "
                         f"(configured: {known})\n")
        return EXIT_UNKNOWN
    targets = [t for t in config.targets if not args.target or t.name in args.target]
    with _progress(len(targets)):
        report = run_targets(targets, config.settings, on_demand=True)
    base = config.server.external_url  # named only when the configuration says where the daemon serves
    pages = {t.name: f"{base}/targets/{quote(t.name, safe='')}" for t in targets} if base else None
    return emit(report, args.format, pages)


@contextmanager
def _progress(count: int) -> Iterator[None]:
    """A progress line on stderr, only on a terminal and only once a run lasts over a second."""
    if not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        shown = False
        while not done.wait(PROGRESS_AFTER if not shown else 0.5):
            shown = True
            sys.stderr.write(f"\rrmxdiag: probing {count} target(s)... {time.monotonic() - start:.0f}s ")
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
