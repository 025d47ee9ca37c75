"""Hints, per-target reports, the JSON report document (schema 1), the text rendering and exit codes."""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from probes.model import ProbeOutcome, ProbeStatus, Severity

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Hint:
    """A diagnosed root cause: stable code, severity, title, evidence lines and ordered fix steps."""

    code: str
    severity: Severity
    title: str
    evidence: tuple[str, ...]
    remediation: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The report's JSON shape of a hint."""
        return {
            "code": self.code,
            "severity": str(self.severity),
            "title": self.title,
            "evidence": list(self.evidence),
            "remediation": list(self.remediation),
        }


class TargetStatus(enum.StrEnum):
    """The verdict for one target (maps to the Nagios exit code)."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


_EXIT = {TargetStatus.OK: 0, TargetStatus.WARNING: 1, TargetStatus.CRITICAL: 2, TargetStatus.UNKNOWN: 3}


def sort_hints(hints: Iterable[Hint]) -> tuple[Hint, ...]:
    """Most severe first, then by code, so reports and metrics are stable."""
    return tuple(sorted(hints, key=lambda h: (-h.severity.rank, h.code)))


@dataclass(frozen=True)
class TargetReport:
    """Everything one run learnt about one target."""

    name: str
    probes: tuple[ProbeOutcome, ...]
    hints: tuple[Hint, ...] = field(default=())

    @property
    def status(self) -> TargetStatus:
        """Critical hint first; then ``unknown`` when a probe could not run (a warning must not hide
        that a check did not happen); then the worst remaining hint."""
        worst = max((h.severity.rank for h in self.hints), default=-1)
        if worst == Severity.CRITICAL.rank:
            return TargetStatus.CRITICAL
        ran = [p for p in self.probes if p.status is not ProbeStatus.SKIPPED]
        if not ran or any(p.status is ProbeStatus.FAILED for p in ran):
            return TargetStatus.UNKNOWN
        if worst == Severity.WARNING.rank:
            return TargetStatus.WARNING
        return TargetStatus.OK

    def to_json(self) -> dict[str, Any]:
        """The report's JSON shape of one target."""
        return {
            "name": self.name,
            "status": str(self.status),
            "probes": [p.to_json() for p in self.probes],
            "hints": [h.to_json() for h in self.hints],
        }


@dataclass(frozen=True)
class Report:
    """One JSON document: every target of one run."""

    generated_at: datetime
    targets: tuple[TargetReport, ...]

    def to_json(self) -> dict[str, Any]:
        """The whole JSON report document (schema 1)."""
        return {
            "schema": SCHEMA_VERSION,
            "generated_at": self.generated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "targets": [t.to_json() for t in self.targets],
        }

    @property
    def exit_code(self) -> int:
        """Nagios convention: critical 2, else unknown 3 (a check could not run), else warning 1, else 0."""
        statuses = {t.status for t in self.targets}
        for status in (TargetStatus.CRITICAL, TargetStatus.UNKNOWN, TargetStatus.WARNING):
            if status in statuses:
                return _EXIT[status]
        return 0


def now_utc() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class _Style:
    """ANSI colour only on a TTY and never when NO_COLOR is set (https://no-color.org)."""

    def __init__(self, stream: TextIO) -> None:
        self.enabled = stream.isatty() and not os.environ.get("NO_COLOR")

    def paint(self, text: str, colour: str) -> str:
        codes = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2"}
        return f"\033[{codes[colour]}m{text}\033[0m" if self.enabled else text


_STATUS_COLOUR = {TargetStatus.OK: "green", TargetStatus.WARNING: "yellow",
                  TargetStatus.CRITICAL: "red", TargetStatus.UNKNOWN: "yellow"}


def _verdict(target: TargetReport) -> str:
    status = target.status
    if status is TargetStatus.UNKNOWN:
        reasons = [f"{p.probe}: {p.error.detail}" for p in target.probes if p.error]
        more = f" (+{len(target.hints)} hint(s) below)" if target.hints else ""
        return f"UNKNOWN: {target.name}: could not run " + ("; ".join(reasons) or "any probe") + more
    if target.hints:
        head = target.hints[0]
        return f"{status.upper()}: {target.name}: {head.title} [{head.code}]" + (
            f" (+{len(target.hints) - 1} more)" if len(target.hints) > 1 else "")
    return f"OK: {target.name}: no problem found"


def render_text(report: Report, stream: TextIO | None = None) -> str:
    """The report an RMX admin reads top to bottom: verdicts, then hints with fixes, then details."""
    style = _Style(stream or sys.stdout)
    out: list[str] = []
    for target in report.targets:
        out.append(style.paint(_verdict(target), _STATUS_COLOUR[target.status]))
    for target in report.targets:
        if target.hints:
            out.append("")
            out.append(style.paint(f"Problems for {target.name}, most severe first:", "bold"))
        for number, hint in enumerate(target.hints, 1):
            colour = {"critical": "red", "warning": "yellow", "info": "dim"}[hint.severity]
            out.append("")
            out.append(f"{number}. " + style.paint(f"[{hint.severity.upper()}] {hint.code}", colour)
                       + f": {hint.title}")
            out.extend(f"   evidence: {line}" for line in hint.evidence)
            out.append("   fix:")
            out.extend(f"     {step_no}. {step}" for step_no, step in enumerate(hint.remediation, 1))
        details = _details(target.probes)
        if details:
            out.append("")
            out.append(style.paint(f"Details for {target.name}:", "bold"))
            out.extend(details)
    return "\n".join(out) + "\n"


def _details(probes: Sequence[ProbeOutcome]) -> list[str]:
    lines: list[str] = []
    for outcome in probes:
        if outcome.status is ProbeStatus.SKIPPED:
            continue
        lines.append(f"  [{outcome.probe}] {outcome.status} in {outcome.duration_seconds * 1000:.0f} ms"
                     + (f": {outcome.error.kind}: {outcome.error.detail}" if outcome.error else ""))
        if outcome.result is not None:
            lines.extend(f"    {line}" for line in outcome.result.text_lines())
    return lines


def render_json(report: Report) -> str:
    """One JSON document, newline-terminated."""
    return json.dumps(report.to_json(), indent=2, sort_keys=False) + "\n"
