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


class _Slot:
    """The context manager of the CPU slots (re-entrant per thread).

    One plain lock per slot (C-level, no Python condition variable on the uncontended path):
    a thread takes the first free one, or waits on one chosen by its identity.
    """

    def __init__(self, count: int) -> None:
        self._locks = [threading.Lock() for _ in range(count)]
        self._held = threading.local()

    def __enter__(self) -> None:
        held = self._held
        depth = getattr(held, "depth", 0)
        if depth == 0:
            for lock in self._locks:
                if lock.acquire(blocking=False):
                    held.lock = lock
                    break
            else:
                lock = self._locks[threading.get_ident() % len(self._locks)]
                lock.acquire()
                held.lock = lock
        held.depth = depth + 1

    def __exit__(self, *_: object) -> None:
        held = self._held
        held.depth -= 1
        if held.depth == 0:
            held.lock.release()


cpu_slot = _Slot(SLOTS)
