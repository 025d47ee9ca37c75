"""The probes: one module per probe, gathered facts handed to pure analysis.

``PROBES`` is the single registry (name -> module). Modules are imported lazily by
:func:`load` so a CLI check imports only what it runs. Each module exposes
``run(target, settings, ctx) -> ProbeOutcome`` for the scheduler and a direct entry point for
the CLI and tests.
"""

from __future__ import annotations

import importlib
from types import ModuleType

PROBES: dict[str, str] = {
    "certificate": "probes.certificate.probe",
    "mtls": "probes.mtls.probe",
    "alarms": "probes.alarms.probe",
    "capture": "probes.capture.probe",
}


def load(name: str) -> ModuleType:
    """Import the module of probe ``name`` (KeyError for an unknown name)."""
    return importlib.import_module(PROBES[name])
