"""The probes: one package per probe, gathered facts handed to pure analysis.

Every probe satisfies :class:`Probe`:

- ``name``: its stable name (report key, metric label value);
- ``applies_to(target)``: whether the target gives it work. It lives in the probe package's light
  ``__init__`` so the configuration and the CLI can ask without importing cryptography or
  pyshark;
- ``findings``: every finding code it can emit (hint codes and informational ones), declared in
  that light ``__init__`` too; a unit test holds the declaration to the package's source, and
  the README's routing table (finding -> reported hint) is generated from it;
- ``run(target, settings, ctx)``: the scheduler's entry point, bounded by ``ctx.deadline``. It may
  raise :class:`~probes.model.InputError` for bad input; the engine (``daemon.engine``) turns that,
  and any other exception (a probe bug), into a failed outcome in one place, so no probe repeats
  that envelope. The heavy module (``probes/<name>/probe.py``) is imported on the first run;
- its result dataclass turns itself into metric samples (:meth:`probes.model.ProbeResult.samples`).

:data:`PROBES` is the single registry, in report order: adding a probe is one package (its
``__init__`` exposes ``PROBE``) and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from probes.model import ProbeOutcome
from probes.target import ProbeContext, Settings, Target

# name -> light package exposing ``PROBE``; the order is the report order.
PROBES: dict[str, str] = {
    "certificate": "probes.certificate",
    "mtls": "probes.mtls",
    "alarms": "probes.alarms",
    "capture": "probes.capture",
}

ProbeRunner = Callable[[Target, Settings, ProbeContext], ProbeOutcome]


@runtime_checkable
class Probe(Protocol):
    """What the engine, the configuration and the exporter know of a probe."""

    @property
    def name(self) -> str:
        """The probe's stable name."""
        ...

    @property
    def findings(self) -> frozenset[str]:
        """Every finding code this probe can emit."""
        ...

    def applies_to(self, target: Target) -> bool:
        """True when ``target`` configures something for this probe."""
        ...

    def run(self, target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        """One run within ``ctx.deadline``; InputError for bad input (the engine wraps it)."""
        ...


@dataclass(frozen=True)
class LazyProbe:
    """A :class:`Probe` whose heavy module (``run``) is imported on the first run only."""

    name: str
    applies: Callable[[Target], bool]
    module: str  # exposes run(target, settings, ctx) -> ProbeOutcome
    findings: frozenset[str]

    def applies_to(self, target: Target) -> bool:
        """True when ``target`` configures something for this probe."""
        return self.applies(target)

    def run(self, target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        """Import the probe module (once) and run it."""
        runner: ProbeRunner = importlib.import_module(self.module).run
        return runner(target, settings, ctx)


def get(name: str) -> Probe:
    """The probe called ``name`` (KeyError for an unknown name); imports only its light package."""
    probe: Probe = importlib.import_module(PROBES[name]).PROBE
    return probe


def applicable(target: Target) -> list[str]:
    """The probes that have something to do for ``target``, in report order."""
    return [name for name in PROBES if get(name).applies_to(target)]
