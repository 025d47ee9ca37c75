"""CPU slots: at most one probe per CPU does CPU-heavy work at a time; network waits are unbounded.

With 64 targets in flight, every probe that had work to do competed for the interpreter lock at
once; the lock passes between runnable threads every few milliseconds, so the more of them
there were the more CPU went into handing it over (measured: 200 targets at concurrency 64
cost 11.6 ms of CPU each, at concurrency 8 6.5 ms) and the later each one got back to a
registrar that had answered long ago. Probes therefore take a slot around their CPU-heavy steps
(building a client context, loading and judging a certificate, each handshake step, building a
result) and never while they wait on the network, so the rest wait their turn without running.
"""

from __future__ import annotations

import os
import threading

SLOTS = max(1, os.cpu_count() or 1)
_slots = threading.BoundedSemaphore(SLOTS)


class _Slot:
    """The context manager of one CPU slot (re-entrant per thread)."""

    _held = threading.local()

    def __enter__(self) -> None:
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            _slots.acquire()
        self._held.depth = depth + 1

    def __exit__(self, *_: object) -> None:
        self._held.depth -= 1
        if self._held.depth == 0:
            _slots.release()


cpu_slot = _Slot()
