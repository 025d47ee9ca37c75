"""``rmxdiag run``: one troubleshooting run of every probe of the configured targets.

Prints the overall verdict first (one line, Nagios style with perfdata), then one verdict line per
target, the root-cause hints (most severe first) with their evidence and numbered fix steps, then
the details, then (when ``server.external_url`` says where the daemon serves them) the URL of each
target's page; ``--format json`` prints the JSON document, ``--format html`` one self-contained
page. The exit code is the Nagios one (3 for a bad config, which is one ``file:line:`` line).
Ctrl-C stops the run at once: the targets that finished are reported, the others as interrupted,
and the exit code is 130.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
from collections.abc import Sequence
from urllib.parse import quote

from daemon.commands._common import add_format, emit
from daemon.commands._config_arg import add_config, load
from daemon.commands._progress import progress
from daemon.report import Report, TargetReport, now_utc
from probes.model import ErrorKind, InputError, failed
from probes.target import Settings, Target

EXIT_INTERRUPTED = 130
_POLL = 0.2  # seconds between looks at the running targets (and chances for Ctrl-C to arrive)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rmxdiag run``."""
    add_config(parser)
    parser.add_argument("--target", action="append", default=[], metavar="NAME",
                        help="run only this target (repeatable; default: every configured target)")
    add_format(parser)


def execute(args: argparse.Namespace) -> int:
    """Run the selected targets and print the report; Nagios exit code (130 after Ctrl-C)."""
    config = load(args)
    unknown = [name for name in args.target if config.target(name) is None]
    if unknown:
        known = ", ".join(t.name for t in config.targets)
        raise InputError(f"--target {unknown[0]}: no such target in {config.source} (configured: {known})")
    targets = [t for t in config.targets if not args.target or t.name in args.target]
    started = now_utc()
    reports: dict[str, TargetReport] = {}
    try:
        count = len(targets)
        with progress(lambda s: f"rmxdiag: probing {count} target(s): {len(reports)} done, {s:.0f}s"):
            _run(targets, config.settings, reports)
    except KeyboardInterrupt:
        partial = [reports.get(t.name) or _interrupted(t) for t in targets]
        emit(Report(started, tuple(partial)), args.format, verbose=args.verbose, config=True)
        sys.stderr.write(f"rmxdiag: interrupted: {len(reports)} of {len(targets)} target(s) finished; "
                         "the others are reported as interrupted\n")
        sys.stderr.flush()
        # The probe threads end at their own deadlines (up to a minute): do not wait for them, and
        # end the child processes (tshark, dumpcap) they started.
        from probes import children

        children.stop_all(final=True)
        os._exit(EXIT_INTERRUPTED)
    base = config.server.external_url  # named only when the configuration says where the daemon serves
    pages = {t.name: f"{base}/targets/{quote(t.name, safe='')}" for t in targets} if base else None
    return emit(Report(started, tuple(reports[t.name] for t in targets)), args.format, pages, verbose=args.verbose,
                config=True)


def _run(targets: Sequence[Target], settings: Settings, reports: dict[str, TargetReport]) -> None:
    """Run the targets (at most ``settings.concurrency`` at once) into ``reports`` as each finishes.

    The main thread only waits in short slices, so Ctrl-C interrupts it at once.
    """
    from daemon.engine import run_target

    shared: dict[object, object] = {}
    started = now_utc()
    pool = cf.ThreadPoolExecutor(max_workers=max(1, min(settings.concurrency, len(targets) or 1)),
                                 thread_name_prefix="target")
    try:
        futures = {pool.submit(run_target, t, settings, cache=shared, now=started, on_demand=True): t
                   for t in targets}
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=_POLL)
            for future in done:
                reports[futures[future].name] = future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _interrupted(target: Target) -> TargetReport:
    from probes import applicable

    why = "interrupted (Ctrl-C) before it finished"
    return TargetReport(target.name, tuple(failed(name, ErrorKind.INTERRUPTED, why) for name in applicable(target)))
