"""Diagnosis: pure rules from the findings of all probes of one target to hints.

No I/O, no clock, no globals: everything a rule needs is in its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from daemon.catalogue import CATALOGUE, Firmware, remediation
from daemon.report import Hint, sort_hints
from probes.model import Finding, ProbeOutcome, Severity


def evidence_line(probe: str, finding: Finding) -> str:
    """One human-readable evidence line: which probe saw what, with its key facts."""
    facts = ", ".join(f"{k}={_short(v)}" for k, v in finding.evidence.items() if v not in (None, "", [], {}))
    return f"{probe}: {finding.message}" + (f" ({facts})" if facts else "")


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def diagnose(outcomes: Iterable[ProbeOutcome], firmware: Firmware = Firmware.V8) -> tuple[Hint, ...]:
    """One hint per catalogue code seen among the findings, with every piece of evidence."""
    grouped: dict[str, list[tuple[str, Finding]]] = {}
    for outcome in outcomes:
        for finding in outcome.findings:
            if finding.code in CATALOGUE:
                grouped.setdefault(finding.code, []).append((outcome.probe, finding))
    hints = []
    for code, seen in grouped.items():
        spec = CATALOGUE[code]
        severity = max((f.severity for _, f in seen), key=lambda s: s.rank, default=Severity.INFO)
        hints.append(Hint(code, severity, spec.title,
                          tuple(evidence_line(p, f) for p, f in seen),
                          tuple(remediation(code, firmware))))
    return sort_hints(hints)
