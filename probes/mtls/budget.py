"""Whose fault is a deadline that passed: the registrar's, or rmxdiag's own load.

Load never becomes a diagnosis. When a probe's deadline passes, the registrar is blamed (a
timeout, a stall) only when it verifiably had its time; a probe that ran out of time because
rmxdiag or the run was busy (it waited for its turn, other probes held the interpreter or the
CPUs while the registrar's answer sat unread) says so with :attr:`Reason.OVERLOADED
<probes.mtls.outcome.Reason.OVERLOADED>`, which maps to no hint and an UNKNOWN verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# A deadline that passed is the registrar's fault only when the registrar was seen silent for at
# least this share of the probe's deadline (nothing readable or writable since we last did I/O),
# or when the probe had its time and the CPU; otherwise rmxdiag (or the run) was too busy to
# give the registrar its turn, and the probe says so (Reason.OVERLOADED), never blaming it.
SILENCE_SHARE = 0.4
BUSY_SHARE = 0.5  # other threads of this process used at least half a CPU while the probe ran


class DeadlineExpired(Exception):
    """The overall probe deadline passed; ``silent``: for how long the peer had verifiably said nothing.

    Set by the wait the deadline passed in: a ``poll`` that returned nothing for that long (what
    arrived meanwhile would have woken it). 0 when the deadline passed while the probe was not
    waiting on the network (it was busy, or it got to its wait too late).
    """

    def __init__(self, silent: float = 0.0) -> None:
        super().__init__()
        self.silent = silent


@dataclass(frozen=True)
class Busy:
    """What is needed to tell, when a deadline passes, whether rmxdiag or the registrar was slow."""

    started: float  # monotonic start of the probe
    budget: float  # the probe's deadline in seconds as configured (a late start leaves it less)
    cpu: float  # process CPU time when the attempt started
    own: float  # this thread's CPU time then
    at: float  # monotonic time then

    @classmethod
    def now(cls, deadline: float, started: float | None = None, budget: float | None = None) -> Busy:
        """The counters at the start of an attempt (``started``: the probe's start, default now)."""
        at = time.monotonic()
        first = started if started is not None else at
        return cls(first, budget if budget is not None else deadline - first, time.process_time(),
                   time.thread_time(), at)

    def overloaded(self, exc: DeadlineExpired, deadline: float) -> bool:
        """True when the deadline passed because rmxdiag was busy, not because the registrar was slow.

        The registrar is blamed when it was verifiably silent for at least 40 % of the probe's
        deadline at the end (a wait on its socket that nothing woke). Otherwise
        the probe is overloaded when it started with less than that share of its deadline left (it
        waited for its turn) or when other work of this process used the CPU meanwhile; a probe
        that had its time and the CPU to itself blames the registrar (a server dripping bytes or
        flooding provisional answers keeps the probe itself busy: that is its fault).
        """
        now = time.monotonic()
        if exc.silent >= SILENCE_SHARE * self.budget:
            return False
        if deadline - self.started < SILENCE_SHARE * self.budget:
            return True
        others = (time.process_time() - self.cpu) - (time.thread_time() - self.own)
        return others >= BUSY_SHARE * max(1e-3, now - self.at)
