"""The immutable snapshot of the daemon's latest results, swapped atomically.

Writers (scheduler threads, reload, remediation) build a new :class:`Snapshot` under one lock;
readers (``/metrics``, ``/api/v1/report``) take the current object with one attribute read and
never see a half-updated state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from daemon.report import TargetReport

ActionKey = tuple[str, str, str]  # (target, code, outcome)


@dataclass(frozen=True)
class TargetState:
    """The latest finished run of one target and when it finished (Unix time)."""

    report: TargetReport
    finished: float


@dataclass(frozen=True)
class Snapshot:
    """Everything the exporter and the report endpoint show, frozen."""

    targets: Mapping[str, TargetState] = field(default_factory=lambda: MappingProxyType({}))
    order: tuple[str, ...] = ()  # configured target names, in config order
    config_ok: bool = True
    report_write_errors: int = 0  # stored-report writes that failed (disk full, RLIMIT_FSIZE)
    actions: Mapping[ActionKey, int] = field(default_factory=lambda: MappingProxyType({}))

    def states(self) -> list[tuple[str, TargetState]]:
        """Configured targets that have a result, in config order."""
        return [(n, self.targets[n]) for n in self.order if n in self.targets]


class SnapshotHolder:
    """Owns the current snapshot; every change replaces it as a whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = Snapshot()

    def set_targets(self, names: Iterable[str]) -> None:
        """Adopt a new target list (reload): results of removed targets vanish."""
        order = tuple(names)
        with self._lock:
            kept = {n: s for n, s in self.current.targets.items() if n in order}
            actions = {k: v for k, v in self.current.actions.items() if k[0] in order}
            self.current = replace(self.current, order=order, targets=MappingProxyType(kept),
                                   actions=MappingProxyType(actions))

    def put(self, name: str, state: TargetState) -> None:
        """Record the latest run of ``name`` (ignored when the target is no longer configured)."""
        self.put_many([(name, state)])

    def put_many(self, results: Iterable[tuple[str, TargetState]]) -> None:
        """Record several runs with one swap (the scheduler batches: one copy per batch, not per run)."""
        with self._lock:
            order = set(self.current.order)
            fresh = [(n, s) for n, s in results if n in order]
            if not fresh:
                return
            targets = dict(self.current.targets)
            targets.update(fresh)
            self.current = replace(self.current, targets=MappingProxyType(targets))

    def set_config_ok(self, ok: bool) -> None:
        """Record the outcome of the last (re)load."""
        with self._lock:
            self.current = replace(self.current, config_ok=ok)

    def count_report_write_error(self) -> None:
        """Add one failed report write (the store keeps the old reports; this makes it visible)."""
        with self._lock:
            self.current = replace(self.current, report_write_errors=self.current.report_write_errors + 1)

    def count_action(self, target: str, code: str, outcome: str) -> None:
        """Add one remediation action outcome to the counters."""
        with self._lock:
            actions = dict(self.current.actions)
            key = (target, code, outcome)
            actions[key] = actions.get(key, 0) + 1
            self.current = replace(self.current, actions=MappingProxyType(actions))
