"""The scheduler: every target on its interval (with jitter), bounded concurrency, hard deadlines.

Runs execute in a bounded thread pool (the engine itself bounds each probe by its deadline), so a
slow target holds one slot for at most its deadline + grace and never delays the others beyond
that; a target is never started twice at once. Results land in the snapshot through
:meth:`SnapshotHolder.put`. An exception from the runner (a bug) is logged and the target is
rescheduled: the daemon never dies of a probe.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from daemon.engine import DEADLINE_GRACE, run_target
from daemon.report import TargetReport
from daemon.serve import exporter
from daemon.serve.snapshot import SnapshotHolder, TargetState
from probes.target import Settings, Target

log = logging.getLogger("rmxdiag.scheduler")

TargetRunner = Callable[[Target, Settings, dict[Any, Any]], TargetReport]
JITTER = 0.1  # +-10% of the interval, so targets sharing an interval spread out
FIRST_RUN_SPREAD = 0.2  # seconds: the first sweep starts at once, spread over at most this


def default_runner(target: Target, settings: Settings, cache: dict[Any, Any]) -> TargetReport:
    """The production runner: every applicable probe of ``target`` through the engine."""
    return run_target(target, settings, cache=cache)


class Scheduler:
    """Runs targets when due; owns the pool the scheduled runs execute in."""

    def __init__(self, holder: SnapshotHolder, runner: TargetRunner = default_runner) -> None:
        self.holder = holder
        self.runner = runner
        self.cache: dict[Any, Any] = {}
        self.targets: dict[str, Target] = {}
        self.settings = Settings()
        self._due: dict[str, float] = {}
        self._inflight: dict[str, float] = {}  # name -> monotonic start
        self._pool: cf.ThreadPoolExecutor | None = None
        self._workers = 0
        self.last_progress = time.monotonic()
        self.runs = 0
        self.bugs = 0
        self._wake = asyncio.Event()
        self._results: collections.deque[tuple[str, TargetState]] = collections.deque()

    def apply(self, targets: tuple[Target, ...], settings: Settings, *, schedule: bool = True) -> None:
        """Adopt a (re)loaded target list; new targets run soon, kept ones keep their schedule.

        Called on the event loop only (the daemon reads a reloaded file in a thread, then adopts it
        on the loop), so :meth:`run` never sees the targets and the due times of two configs.
        ``schedule=False`` keeps the targets (for /probe and alerts) but runs none on its own.
        """
        now = time.monotonic()
        self.settings = settings
        self.targets = {t.name: t for t in targets}
        self._due = {n: self._due.get(n, now + random.uniform(0, FIRST_RUN_SPREAD))  # noqa: S311 (jitter)
                     for n in self.targets} if schedule else {}
        self.holder.set_targets(self.targets)
        self.cache.clear()  # cached parses may refer to changed files
        if self._pool is None or self._workers != settings.concurrency:
            old, self._pool = self._pool, cf.ThreadPoolExecutor(max_workers=max(1, settings.concurrency),
                                                                thread_name_prefix="sched")
            self._workers = settings.concurrency
            if old is not None:
                old.shutdown(wait=False)
        self._wake.set()

    def healthy(self) -> bool:
        """False when the pool looks wedged: a run has been in flight far beyond its deadline."""
        now = time.monotonic()
        for name, started in self._inflight.items():
            target = self.targets.get(name)
            limit = 2 * ((target.deadline if target else self.settings.deadline) + DEADLINE_GRACE) + 5
            if now - started > limit:
                return False
        return True

    def _interval(self, target: Target) -> float:
        return max(1.0, target.interval) * (1 + random.uniform(-JITTER, JITTER))  # noqa: S311 (jitter)

    def _run_one(self, target: Target, settings: Settings) -> None:
        try:
            report = self.runner(target, settings, self.cache)
        except Exception as exc:  # a bug in the engine or a probe: log it, keep scheduling
            self.bugs += 1
            log.error("run of target %s failed with a bug: %s", target.name, type(exc).__name__)
            log.debug("run bug traceback", exc_info=True)
            return
        state = TargetState(report, time.time())
        # Its /metrics lines are formatted here, not on the event loop at the next scrape (a result
        # bug costs its own samples there, logged, never the run).
        exporter.prepare(target.name, state)
        self._results.append((target.name, state))  # deque: thread-safe

    def _flush(self) -> None:
        # Swap the snapshot once for every result that arrived since the last flush.
        batch = []
        while self._results:
            batch.append(self._results.popleft())
        if batch:
            self.holder.put_many(batch)

    def _finished(self, name: str, _future: cf.Future[None]) -> None:
        self._flush()
        self._inflight.pop(name, None)
        self.runs += 1
        self.last_progress = time.monotonic()
        target = self.targets.get(name)
        if target is not None and name in self._due:
            self._due[name] = time.monotonic() + self._interval(target)
        self._wake.set()

    def _done_callback(self, loop: asyncio.AbstractEventLoop, name: str) -> Callable[[cf.Future[None]], None]:
        def done(future: cf.Future[None]) -> None:
            # The loop may already be closed at shutdown; the result no longer matters then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finished, name, future)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch due targets until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            now = time.monotonic()
            for name, due in sorted(self._due.items(), key=lambda kv: kv[1]):
                if due > now:
                    break
                if name in self._inflight or self._pool is None:
                    continue
                target = self.targets.get(name)
                if target is None:  # dropped by a reload (apply() replaces both at once; never fatal)
                    self._due.pop(name, None)
                    continue
                self._inflight[name] = now
                self._due[name] = float("inf")  # set again when the run finishes
                future = self._pool.submit(self._run_one, target, self.settings)
                future.add_done_callback(self._done_callback(loop, name))
            upcoming = min(self._due.values(), default=now + 1.0)
            self._wake.clear()
            wait = min(1.0, max(0.01, upcoming - time.monotonic()))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    def close(self) -> None:
        """Stop taking work; running probes end at their own deadlines."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
