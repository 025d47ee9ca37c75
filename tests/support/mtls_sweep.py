"""Probe many targets at once under one absolute deadline (the reliability tests and the bench)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from daemon.engine import guarded
from probes.model import ErrorKind, ProbeOutcome, failed
from probes.mtls import probe as mtls
from probes.mtls.tls import ClientSpec
from probes.target import Registrar


@dataclass(frozen=True)
class SweepJob:
    """One target of a sweep: its registrars and client spec."""

    name: str
    registrars: tuple[Registrar, ...]
    spec: ClientSpec
    from_host: str | None = None
    nameserver: tuple[str, int] | None = None  # A/AAAA lookups there instead of getaddrinfo


def _one(job: SweepJob, deadline: float, cache: dict[Any, Any]) -> ProbeOutcome:
    started = time.monotonic()
    if started >= deadline:
        # Queued behind slow targets until the shared deadline: the sweep's load, never "unreachable".
        return failed(mtls.NAME, ErrorKind.OVERLOADED, f"{job.name}: not started before the sweep deadline")
    # The engine's envelope: one bad target (bad files, a bug) must not sink the sweep.
    return guarded(mtls.NAME, lambda: mtls.probe(job.registrars, job.spec, deadline=deadline, cache=cache,
                                                 from_host=job.from_host, nameserver=job.nameserver), job.name)


def sweep(jobs: Sequence[SweepJob], *, deadline_seconds: float, concurrency: int = 64,
          cache: dict[Any, Any] | None = None) -> list[ProbeOutcome]:
    """Probe every job with at most ``concurrency`` in flight; all share ONE absolute deadline.

    Jobs waiting for a worker keep the same deadline, so the whole sweep ends by
    ``deadline_seconds`` plus scheduling slack however many tarpits it meets. Outcomes are in
    job order. The client context cache is shared, so certificates are parsed once.
    """
    deadline = time.monotonic() + deadline_seconds
    shared = cache if cache is not None else {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="rmxdiag-mtls") as pool:
        futures = [pool.submit(_one, job, deadline, shared) for job in jobs]
        return [f.result() for f in futures]
