"""Probe many targets at once under one absolute deadline (reused by the daemon scheduler and the bench)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from probes.model import ErrorKind, InputError, ProbeOutcome, failed
from probes.mtls import probe as mtls
from probes.mtls.tls import ClientSpec
from probes.target import Registrar

log = logging.getLogger(__name__)


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
        # Queued behind slow targets until the shared deadline: say so, never "unreachable".
        return failed(mtls.NAME, ErrorKind.DEADLINE, f"{job.name}: not started before the sweep deadline")
    try:
        return mtls.probe(job.registrars, job.spec, deadline=deadline, cache=cache, from_host=job.from_host,
                          nameserver=job.nameserver)
    except InputError as exc:
        return failed(mtls.NAME, exc.kind, str(exc), time.monotonic() - started)
    except Exception as exc:  # one bad target must not sink the sweep
        log.debug("mtls sweep bug for %s", job.name, exc_info=True)
        return failed(mtls.NAME, ErrorKind.PROBE_BUG, f"{type(exc).__name__} in the mtls probe",
                      time.monotonic() - started)


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
