"""The scheduler: a slow target never delays the others, a bug never stops it, reload is clean."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from daemon.report import TargetReport
from daemon.serve.scheduler import Scheduler
from daemon.serve.snapshot import SnapshotHolder
from probes.target import Settings, Target

RELEASE = threading.Event()


def _runner(target: Target, settings: Settings, cache: dict[Any, Any]) -> TargetReport:
    if target.name == "slow":
        RELEASE.wait(5)
    if target.name == "buggy":
        raise RuntimeError("bug in a probe module")
    return TargetReport(target.name, ())


async def _run_for(scheduler: Scheduler, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


def test_slow_and_buggy_targets_do_not_hold_up_the_others() -> None:
    # Given a slow target, a buggy one and two fast ones, on a 1 s interval and 2 slots
    holder = SnapshotHolder()
    scheduler = Scheduler(holder, _runner)
    targets = tuple(Target(n, interval=1.0) for n in ("slow", "buggy", "fast-a", "fast-b"))
    scheduler.apply(targets, Settings(concurrency=2))
    try:
        # When it runs for 2.5 s
        asyncio.run(_run_for(scheduler, 2.5))
    finally:
        RELEASE.set()
        scheduler.close()
    # Then the fast targets have results, the bug was counted, the slow one never ran twice at once
    snap = holder.current
    assert {"fast-a", "fast-b"} <= set(snap.targets)
    assert "buggy" not in snap.targets and scheduler.bugs >= 1
    assert scheduler.runs >= 4


def test_reload_drops_removed_targets_from_the_snapshot() -> None:
    # Given results for two targets
    holder = SnapshotHolder()
    scheduler = Scheduler(holder, _runner)
    scheduler.apply((Target("fast-a"), Target("fast-b")), Settings())
    asyncio.run(_run_for(scheduler, 0.6))
    assert set(holder.current.targets) == {"fast-a", "fast-b"}
    # When the config drops one
    scheduler.apply((Target("fast-a"),), Settings())
    scheduler.close()
    # Then it vanishes from the snapshot (and so from /metrics)
    assert set(holder.current.targets) == {"fast-a"} and holder.current.order == ("fast-a",)


def test_scheduler_health_flags_a_wedged_run() -> None:
    # Given a run in flight far beyond its deadline
    scheduler = Scheduler(SnapshotHolder(), _runner)
    scheduler.apply((Target("t", deadline=1.0),), Settings())
    scheduler._inflight["t"] = time.monotonic() - 60
    # Then the scheduler is not healthy (the watchdog stops pinging)
    assert not scheduler.healthy()
    scheduler._inflight.clear()
    assert scheduler.healthy()
    scheduler.close()


def test_schedule_off_runs_nothing_on_its_own() -> None:
    # Given scheduling turned off (a /probe-only, Prometheus-sharded daemon)
    holder = SnapshotHolder()
    scheduler = Scheduler(holder, _runner)
    scheduler.apply((Target("fast-a"),), Settings(), schedule=False)
    # When the loop runs
    asyncio.run(_run_for(scheduler, 0.5))
    scheduler.close()
    # Then the target is known (for /probe) but was never run
    assert holder.current.order == ("fast-a",) and not holder.current.targets and scheduler.runs == 0
