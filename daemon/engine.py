"""The engine: run the probes of one target concurrently under deadlines, then diagnose.

The CLI (`rmxdiag run`), the daemon's scheduler, the ``/probe`` endpoint, alert-driven runs and
the lab all call :func:`run_target` / :func:`run_targets`. A probe that raises becomes a
``probe_bug`` outcome (bad input a ``failed`` one of its kind) and one that overruns its deadline
a ``deadline`` outcome, here and nowhere else: the engine never lets a probe take a run down.

Probes run on one process-wide pool of reused threads (:data:`PROBE_THREADS` at most): creating
threads for every run cost more than a probe's own bookkeeping; the certificate probe (local
files, its judgement cached) runs in the caller's thread when others run beside it. A probe still queued when its
target's deadline passes never started: that is an ``overloaded`` outcome (rmxdiag was busy),
never a verdict on the target.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import probes
from daemon.diagnosis.catalogue import Firmware
from daemon.diagnosis.diagnose import diagnose
from daemon.report import Report, TargetReport, now_utc
from probes import ProbeRunner
from probes.memo import BoundedCache
from probes.model import ErrorKind, InputError, ProbeOutcome, failed, skipped
from probes.target import ProbeContext, Settings, Target

log = logging.getLogger("rmxdiag.engine")

# Grace beyond a probe's own deadline before the engine stops waiting for it.
DEADLINE_GRACE = 0.5
# A target that waited for its turn in a run still gets this share of its deadline: more than
# the share a registrar must stay silent before a timeout is its fault (probes.mtls.budget),
# which leaves the connect and the ClientHello their time.
MIN_SHARE = 0.5
# The probe a run executes in its own thread: local work (files, cached judgement) bounded by the
# deadline like every probe's; the others get the engine's overrun watch in the pool.
INLINE = "certificate"
RUN_CACHE_PER_TARGET = 16  # cache entries a run keeps per target in flight (a target makes about 8)
# Threads are created only when no idle one is free and then reused; the callers bound the work
# (targets in flight x probes per target), this only caps a runaway.
PROBE_THREADS = 2048

_pool_guard = threading.Lock()
_pool: cf.ThreadPoolExecutor | None = None


def probe_pool() -> cf.ThreadPoolExecutor:
    """The process-wide pool the probes of every run execute in (created on first use)."""
    global _pool  # noqa: PLW0603 -- one pool per process, created lazily (CLI start-up stays light)
    if _pool is None:
        with _pool_guard:
            if _pool is None:
                _pool = cf.ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="engine-probe")
    return _pool


def shutdown_probe_pool() -> None:
    """Let the pool's idle threads end (a stopping daemon must not wait for them); running probes
    end at their deadlines. The next run creates a new pool."""
    global _pool  # (see probe_pool)
    with _pool_guard:
        old, _pool = _pool, None
    if old is not None:
        old.shutdown(wait=False, cancel_futures=True)


def _submit(call: Callable[[], ProbeOutcome], name: str, target: str) -> cf.Future[ProbeOutcome]:
    try:
        return probe_pool().submit(guarded, name, call, target)
    except RuntimeError:  # the pool was shut down meanwhile (a daemon stopping): a new one takes it
        return probe_pool().submit(guarded, name, call, target)


def guarded(name: str, call: Callable[[], ProbeOutcome], target: str) -> ProbeOutcome:
    """The one envelope boundary of every probe run: bad input and bugs become failed outcomes."""
    start = time.monotonic()
    try:
        return call()
    except InputError as exc:  # bad input (or an upstream the probe explains): one line, no traceback
        return failed(name, exc.kind, str(exc), time.monotonic() - start)
    except Exception as exc:  # a probe bug is an outcome, not a crash
        log.error("probe %s on target %s failed with a bug: %s", name, target, type(exc).__name__)
        log.debug("probe bug traceback", exc_info=True)
        return failed(name, ErrorKind.PROBE_BUG, f"internal error in the {name} probe ({type(exc).__name__})",
                      time.monotonic() - start)


def run_probe(name: str, target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    """One registered probe on ``target`` in the caller's thread: skipped when it has nothing to do.

    The same envelope as :func:`run_target` (failed, never raising) without the overrun watch;
    ``ctx.deadline`` still bounds the probe's own waits.
    """
    probe = probes.get(name)
    if not probe.applies_to(target):
        return skipped(name)
    return guarded(name, functools.partial(probe.run, target, settings, ctx), target.name)


def run_target(
    target: Target,
    settings: Settings,
    *,
    cache: dict[Any, Any] | None = None,
    now: datetime | None = None,
    on_demand: bool = False,
    only: Sequence[str] | None = None,
    runners: dict[str, ProbeRunner] | None = None,
    clock: float | None = None,
) -> TargetReport:
    """Run every applicable probe of ``target`` concurrently and diagnose the outcomes.

    ``only`` restricts the probes by name; ``runners`` replaces probe entry points (tests of
    the engine itself use it to inject probes that hang or raise). ``clock``: when the
    target's deadline started counting (a run's start; default now). A target that waited for
    its turn past half of its deadline still gets half of it (:data:`MIN_SHARE`): more than a
    registrar must stay silent before a timeout is blamed on it.
    """
    names = [n for n in (list(runners) if runners else probes.applicable(target)) if only is None or n in only]
    started = time.monotonic()
    deadline = max((clock if clock is not None else started) + target.deadline, started + MIN_SHARE * target.deadline)
    ctx = ProbeContext(now=now or now_utc(), deadline=deadline,
                       cache=cache if cache is not None else {}, on_demand=on_demand)
    outcomes: dict[str, ProbeOutcome] = {}
    if names:
        calls = {n: functools.partial((runners or {}).get(n) or probes.get(n).run, target, settings, ctx)
                 for n in names}
        # The local probe runs in this thread while the others run in the pool: two thread
        # hand-offs fewer per run (each costs more CPU than the certificate probe's cached work).
        local = INLINE if INLINE in calls and len(calls) > 1 else None
        futures = {_submit(call, n, target.name): n for n, call in calls.items() if n != local}
        if local is not None:
            outcomes[local] = guarded(local, calls[local], target.name)
        done, pending = cf.wait(futures, timeout=max(0.0, deadline - time.monotonic()) + DEADLINE_GRACE)
        for future in done:
            outcomes[futures[future]] = future.result()
        for future in pending:
            name = futures[future]
            # Never wait for an overrunning probe thread (it ends at its own deadline); one that
            # never started is cancelled: the pool was saturated, which is rmxdiag's load.
            if future.cancel():
                log.warning("probe %s on target %s did not start within its %.1fs deadline (busy)", name,
                            target.name, target.deadline)
                outcomes[name] = failed(name, ErrorKind.OVERLOADED, f"not started within the {target.deadline:g}s "
                                        "deadline: rmxdiag was too busy (no verdict on the target)", target.deadline)
                continue
            log.warning("probe %s on target %s overran its %.1fs deadline", name, target.name, target.deadline)
            outcomes[name] = failed(name, ErrorKind.DEADLINE,
                                    f"no result within the {target.deadline:g}s deadline", target.deadline)
    ordered = tuple(outcomes[n] for n in names)
    return TargetReport(target.name, ordered, diagnose(ordered, Firmware(target.firmware)))


def run_targets(
    targets: Sequence[Target],
    settings: Settings,
    *,
    cache: dict[Any, Any] | None = None,
    on_demand: bool = False,
) -> Report:
    """Run several targets concurrently (at most ``settings.concurrency`` at once), all on the run's clock.

    Every target's deadline counts from the start of the run, so a run that can start every
    target within half a deadline ends within the deadline (plus the engine's grace) however many
    tarpits it meets; a target that had to wait longer for its turn still gets half of its
    deadline (:data:`MIN_SHARE`), so none goes unprobed and none is blamed for a timeout it had
    no time for.
    """
    # What one target parsed is kept while others may still share it (the same files), not for the
    # whole run: a run over 1,000 targets with their own files must not hold 1,000 TLS contexts.
    shared = cache if cache is not None else BoundedCache(RUN_CACHE_PER_TARGET * max(1, settings.concurrency))
    started = now_utc()
    clock = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=max(1, min(settings.concurrency, len(targets) or 1)),
                               thread_name_prefix="target") as pool:
        reports = list(pool.map(lambda t: run_target(t, settings, cache=shared, now=started,
                                                     on_demand=on_demand, clock=clock), targets))
    return Report(started, tuple(reports))
