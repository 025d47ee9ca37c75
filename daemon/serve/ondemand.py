"""On-demand runs for ``GET /probe``: every wait, queueing included, inside the scrape's budget.

- The budget starts when the scrape arrives and covers waiting for a probe slot, the run and the
  answer; a scrape that gets no slot within it answers at its budget with ``probe_success`` 0 and
  the reason, never later.
- At most one run per target is in flight: concurrent scrapes of the same target wait for that
  run (each within its own budget), so 200 scrapes of one tarpit hold one slot, not all of them,
  and a slow target cannot take the slots another target's scrape needs.
- A slot is held until the run's thread has really finished (not only until a scrape gave up),
  so the number of probe threads never exceeds the number of slots and nothing queues unseen.
- A scrape within ``reuse`` seconds (``server.probe_reuse``) of a finished run of the same target gets that run's
  result: back-to-back requests (a looping client, a web page firing image loads) cannot turn
  into a stream of handshakes and XML API logins on the RMX, while Prometheus (one scrape per
  interval, HA pairs a moment apart) still sees every run.
- A scrape whose budget is shorter than the target's own deadline gets a run cut to its budget,
  and a registrar is judged against its configured deadline there (a timeout that is the caller's
  budget is ``overloaded``: no verdict). A cut run is never joined by a scrape with the full
  budget; it becomes the target's state (and is reused) only when the cut made no difference: no
  probe of it ran out of time. So one short scrape cannot put a false timeout in front of
  Prometheus, while a Prometheus whose scrape timeout is below the target's deadline (10 s, its
  default, against a 10 s deadline) still fills the metrics and pages with every conclusive run.
- Runs and results are keyed by the target's configuration, and a reload forgets them all: a scrape
  after a reload never gets or joins a run of the configuration (or the files) it replaced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import functools
import logging
import time
from collections.abc import Callable

from daemon.engine import DEADLINE_GRACE
from daemon.report import TargetReport
from daemon.serve.scheduler import TargetRunner
from daemon.serve.snapshot import TargetState
from probes.model import ErrorKind, failed
from probes.target import Settings, Target

log = logging.getLogger("rmxdiag.probe")

RUN_MARGIN = 0.3  # seconds kept after the engine's own grace, so probe deadline outcomes arrive first
SLOT_MARGIN = 0.05  # a scrape that gets no slot says so this much before its waiter gives up


class OnDemand:
    """Slots, the thread pool and the in-flight runs of ``/probe``."""

    def __init__(self, size: int, runner: TargetRunner, record: Callable[[str, TargetState], None]) -> None:
        self.size = size
        self.runner = runner
        self.record = record  # stores a finished run's result (the snapshot)
        self._slots = asyncio.Semaphore(size)
        self._pool = cf.ThreadPoolExecutor(max_workers=size, thread_name_prefix="probe")
        # (target, cut) -> its run in flight; cut: the run was cut to a caller's shorter budget
        self._runs: dict[tuple[Target, bool], asyncio.Task[TargetReport]] = {}
        self._recent: dict[Target, tuple[float, TargetReport]] = {}  # target -> (loop time, report)
        self._generation = 0  # bumped by a reload: runs of an older one record nothing

    def reset(self) -> None:
        """Forget reusable results and in-flight runs (a reload: targets or their files may have changed)."""
        self._generation += 1
        self._recent.clear()
        self._runs.clear()  # runs in flight still answer their own scrapes, and no later one

    async def probe(self, target: Target, settings: Settings, cache: dict[object, object],
                    budget: float, reuse: float = 0.0) -> TargetState:
        """The result of a run of ``target`` (shared with concurrent scrapes, and with later ones for
        ``reuse`` seconds after it finished), within ``budget`` seconds."""
        loop = asyncio.get_running_loop()
        recent = self._recent.get(target)
        if recent is not None and loop.time() - recent[0] < reuse:
            return TargetState(recent[1], time.time())
        deadline = loop.time() + budget
        cut = budget < target.deadline + DEADLINE_GRACE + RUN_MARGIN - 1e-6
        # A short scrape may join a full run (it gives up at its own budget); a full one never joins a cut run.
        task = self._runs.get((target, False)) or (self._runs.get((target, True)) if cut else None)
        if task is None:
            task = loop.create_task(self._run(target, settings, cache, budget, deadline, cut=cut))
            key = (target, cut)
            self._runs[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        try:
            report = await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - loop.time()))
        except TimeoutError:
            report = _failed(target.name, f"no result within {budget:g}s")
        return TargetState(report, time.time())

    def _forget(self, key: tuple[Target, bool], task: asyncio.Task[TargetReport]) -> None:
        if self._runs.get(key) is task:
            del self._runs[key]

    async def _run(self, target: Target, settings: Settings, cache: dict[object, object], budget: float,
                   deadline: float, *, cut: bool) -> TargetReport:
        loop = asyncio.get_running_loop()
        generation = self._generation
        try:
            async with asyncio.timeout_at(deadline - SLOT_MARGIN):
                await self._slots.acquire()
        except TimeoutError:
            # The daemon's load, not the target's fault: no verdict on the target.
            return _failed(target.name, f"no probe slot free within {budget:g}s ({self.size} on-demand runs "
                                        "of other targets in flight)", ErrorKind.OVERLOADED)
        # The engine returns at most DEADLINE_GRACE after the probe deadline: keep a margin so the
        # probes' own deadline outcomes (not the waiters' fallback) reach Prometheus.
        limited = dataclasses.replace(target, deadline=max(0.1, min(target.deadline,
                                                                    budget - DEADLINE_GRACE - RUN_MARGIN)))
        if cut:
            limited = dataclasses.replace(limited, judged_deadline=target.deadline)
        try:
            future = loop.run_in_executor(self._pool, self.runner, limited, settings, cache)
        except RuntimeError:  # the pool is shut down: the daemon is stopping
            self._slots.release()
            return _failed(target.name, "the daemon is stopping")
        future.add_done_callback(lambda _: self._slots.release())
        try:
            report = await future
        except Exception as exc:  # a bug in the engine or a probe module: one outcome, not a 500
            log.error("on-demand run of %s failed with a bug: %s", target.name, type(exc).__name__)
            log.debug("on-demand run traceback", exc_info=True)
            return TargetReport(target.name, (failed("engine", ErrorKind.PROBE_BUG,
                                                     f"internal error ({type(exc).__name__})"),))
        if (not cut or _conclusive(report)) and generation == self._generation:
            self.record(target.name, TargetState(report, time.time()))
            self._recent[target] = (loop.time(), report)
        return report

    def close(self) -> None:
        """Take no more runs; running threads end at their deadlines and are not waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        for task in list(self._runs.values()):
            task.cancel()


def _conclusive(report: TargetReport) -> bool:
    """True when no probe of the run ran out of time (what a cut budget could have changed)."""
    return not any(p.error is not None and p.error.kind in (ErrorKind.DEADLINE, ErrorKind.OVERLOADED)
                   for p in report.probes)


def _failed(name: str, why: str, kind: ErrorKind = ErrorKind.DEADLINE) -> TargetReport:
    return TargetReport(name, (failed("engine", kind, why),))
