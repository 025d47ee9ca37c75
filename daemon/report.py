"""Hints, per-target reports, the JSON report document (schema 1), the verdict line and exit codes.

The pieces every view shares live here so the text report, the JSON document and other renderers
say the same thing: :func:`verdict_line` (the first line of every subcommand, Nagios style with
perfdata), :func:`target_verdict`, :func:`probe_summary` (what a probe ran and found) and
:func:`evidence_sentence` (one plain sentence per piece of evidence, kept on each :class:`Hint`).
The text rendering itself is :mod:`daemon.textreport`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from daemon.firstline import MAX_LINE, PERF_TARGETS, named, perf_label, status_text
from probes.model import Finding, Metric, ProbeOutcome, ProbeStatus, Severity

SCHEMA_VERSION = 1

# How reports name the probes in sentences (``certificate+mtls``: a fact derived from both).
PROBE_LABELS = {"certificate": "Certificate check", "mtls": "Handshake test", "alarms": "RMX alarms",
                "capture": "Capture", "preflight": "Pre-flight check", "csr": "Request check", "pfx": "PFX check",
                "extract": "Extraction"}


def probe_label(probe: str) -> str:
    """The name a sentence gives a probe (or a fact two probes derived together)."""
    return " + ".join(PROBE_LABELS.get(p, p) for p in probe.split("+"))


def evidence_sentence(probe: str, message: str) -> str:
    """One plain sentence for one piece of evidence: who saw it, then what (no key=value)."""
    text = " ".join(message.split())
    if text and text[-1] not in ".!?":
        text += "."
    return f"{probe_label(probe)}: {text[:1].upper()}{text[1:]}"


@dataclass(frozen=True)
class Hint:
    """A diagnosed root cause: stable code, severity, title, evidence and ordered fix steps.

    ``evidence``: one line per observation with its facts as key=value (JSON, ``-v``);
    ``sentences``: the same observations as plain sentences (the text report); ``fix_on``: where
    the fix goes (:class:`daemon.diagnosis.catalogue.FixPlace` values); ``probes``: the probes
    whose observations agree on this cause, out of ``probes_ran`` that ran (0: not known).
    """

    code: str
    severity: Severity
    title: str
    evidence: tuple[str, ...]
    remediation: tuple[str, ...]
    sentences: tuple[str, ...] = ()
    fix_on: tuple[str, ...] = ()
    probes: tuple[str, ...] = ()
    probes_ran: int = 0

    def to_json(self) -> dict[str, Any]:
        """The report's JSON shape of a hint (schema 1 keys, then the added ones)."""
        return {
            "code": self.code,
            "severity": str(self.severity),
            "title": self.title,
            "evidence": list(self.evidence),
            "remediation": list(self.remediation),
            "sentences": list(self.sentences or self.evidence),
            "fix_on": list(self.fix_on),
            "confidence": {"probes": list(self.probes), "agreeing": len(self.probes), "ran": self.probes_ran},
        }

    def where_sentence(self) -> str:
        """Where the fix goes, as a sentence ('' when the catalogue says nothing)."""
        return where_sentence(self.fix_on)

    def confidence_sentence(self) -> str:
        """How sure rmxdiag is: how many probes agree ('' when not known)."""
        if not self.probes:
            return ""
        names = ", ".join(probe_label(p) for p in self.probes)
        count = len(self.probes)
        if self.probes_ran > 1 and count > 1:
            return f"How sure: {count} of the {self.probes_ran} probes that ran agree ({names})."
        if self.probes_ran > 1:
            return f"How sure: seen by 1 of the {self.probes_ran} probes that ran ({names})."
        return f"How sure: seen by the one probe that ran ({names})."


def where_sentence(fix_on: Sequence[str]) -> str:
    """'Fix on the Front End and the RMX.' for FixPlace values ('' for none)."""
    from daemon.diagnosis.catalogue import FixPlace

    places = [FixPlace(p).label for p in fix_on]
    if not places:
        return ""
    listed = places[0] if len(places) == 1 else ", ".join(places[:-1]) + " and " + places[-1]
    return f"Fix on {listed}."


class TargetStatus(enum.StrEnum):
    """The verdict for one target (maps to the Nagios exit code)."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


_EXIT = {TargetStatus.OK: 0, TargetStatus.WARNING: 1, TargetStatus.CRITICAL: 2, TargetStatus.UNKNOWN: 3}


def sort_hints(hints: Iterable[Hint], symptoms: frozenset[str] = frozenset()) -> tuple[Hint, ...]:
    """Most severe first; at one severity root causes before the ``symptoms`` they produce; then by code."""
    return tuple(sorted(hints, key=lambda h: (-h.severity.rank, h.code in symptoms, h.code)))


def unchecked(findings: Iterable[Finding], config: bool = False) -> list[str]:
    """What a probe says it did not check, each with the option (or configuration key) that checks it.

    Probes mark such informational findings with evidence ``unchecked`` (what), ``option`` (the
    command-line option) and ``config_key`` (the configuration key).
    """
    out = []
    for f in findings:
        what = f.evidence.get("unchecked")
        if not what:
            continue
        how = f.evidence.get("config_key") if config else f.evidence.get("option")
        how = f"{how}: in the configuration" if config and how else how
        item = f"{what} (give {how})" if how else str(what)
        if item not in out:
            out.append(item)
    return out


def nothing_to_judge(outcome: ProbeOutcome) -> str | None:
    """What the probe saw instead when it ran but had nothing to judge (None: it judged something)."""
    return next((f.message for f in outcome.findings if f.evidence.get("nothing_to_judge")), None)


@dataclass(frozen=True)
class TargetReport:
    """Everything one run learnt about one target."""

    name: str
    probes: tuple[ProbeOutcome, ...]
    hints: tuple[Hint, ...] = field(default=())

    @property
    def status(self) -> TargetStatus:
        """Critical hint first; then ``unknown`` when a probe could not run or no probe that ran had
        anything to judge (a warning must not hide that a check did not happen); then the worst hint."""
        worst = max((h.severity.rank for h in self.hints), default=-1)
        if worst == Severity.CRITICAL.rank:
            return TargetStatus.CRITICAL
        ran = [p for p in self.probes if p.status is not ProbeStatus.SKIPPED]
        if not ran or any(p.status is ProbeStatus.FAILED for p in ran):
            return TargetStatus.UNKNOWN
        if worst < Severity.WARNING.rank and all(nothing_to_judge(p) for p in ran):
            return TargetStatus.UNKNOWN
        if worst == Severity.WARNING.rank:
            return TargetStatus.WARNING
        return TargetStatus.OK

    def unchecked(self, config: bool = False) -> list[str]:
        """What the probes of this target did not check, and what checks it."""
        return unchecked((f for p in self.probes for f in p.findings), config)

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

    @property
    def status(self) -> TargetStatus:
        """The overall verdict: the status whose exit code the report has."""
        return next(s for s, code in _EXIT.items() if code == self.exit_code)


def now_utc() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def _codes(target: TargetReport, severity: Severity | None = None) -> str:
    hints = [h for h in target.hints if severity is None or h.severity is severity]
    shown = [h.code for h in hints[:2]]
    return ", ".join(shown) + (f" +{len(hints) - 2}" if len(hints) > 2 else "")


def _could_not_run(target: TargetReport) -> str:
    reasons = [f"{p.probe}: {p.error.detail}" for p in target.probes if p.error]
    if reasons:
        return "could not run " + "; ".join(reasons)
    seen = [f"{p.probe}: {text}" for p in target.probes if (text := nothing_to_judge(p))]
    if seen:
        return "nothing to judge (" + "; ".join(seen) + ")"
    return "could not run any probe"


def target_verdict(target: TargetReport, config: bool = False) -> str:
    """One target's verdict: ``STATUS: name: head hint [CODE] (+N more)``, what could not run or was
    not checked. No perfdata (see :func:`verdict_line`)."""
    status = target.status
    missing = target.unchecked(config)
    not_checked = f"; not checked: {', '.join(missing)}" if missing else ""
    if status is TargetStatus.UNKNOWN:
        more = f" (+{len(target.hints)} hint(s) below)" if target.hints else ""
        return f"UNKNOWN: {target.name}: {_could_not_run(target)}{more}{not_checked}"
    if target.hints:
        head = target.hints[0]
        return (f"{status.upper()}: {target.name}: {head.title} [{head.code}]"
                + (f" (+{len(target.hints) - 1} more)" if len(target.hints) > 1 else "") + not_checked)
    if missing:
        return f"OK: {target.name}: no problem found in what was checked{not_checked}"
    return f"OK: {target.name}: no problem found"


def _summary(report: Report, config: bool) -> str:
    """The overall verdict of several targets: how many are in the worst state, and why."""
    worst = report.status
    total = len(report.targets)
    parts = []
    for status in (TargetStatus.CRITICAL, TargetStatus.UNKNOWN, TargetStatus.WARNING, TargetStatus.OK):
        members = [t for t in report.targets if t.status is status]
        if not members:
            continue
        label = {TargetStatus.UNKNOWN: "could not be checked"}.get(status, str(status))
        why = ""
        if status is not TargetStatus.OK:  # at most a few named per state (daemon.firstline)
            items = [f"{t.name}: {_could_not_run(t)}" if status is TargetStatus.UNKNOWN
                     else f"{t.name}: {_codes(t, Severity(str(status)))}" for t in members]
            why = f" ({named(items)})"
        lead = f"{len(members)} of {total} RMX" if status is worst else f"{len(members)}"
        parts.append(f"{lead} {label}{why}")
    missing = sorted({item for t in report.targets for item in t.unchecked(config)})
    tail = f"; not checked: {', '.join(missing)}" if missing and worst is TargetStatus.OK else ""
    return f"{worst.upper()}: " + ", ".join(parts) + tail


def verdict_line(report: Report, *, config: bool = False, perf: bool = True) -> str:
    """The first line of every subcommand: the overall verdict, then Nagios perfdata after ``|``.

    One target: :func:`target_verdict`. Several: ``CRITICAL: 1 of 2 RMX critical (rmx-branch:
    CERT_CHAIN_INCOMPLETE), 1 ok``. ``config``: name configuration keys instead of options in
    what was not checked.
    """
    if len(report.targets) == 1:
        line = target_verdict(report.targets[0], config)
    elif not report.targets:
        line = "UNKNOWN: no target"
    else:
        line = _summary(report, config)
    line = status_text(line)
    data = perfdata(report) if perf else ""
    if len(line) + 3 + len(data) > MAX_LINE:
        data = aggregate_perfdata(report)
    return f"{line} | {data}" if data else line


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def perfdata(report: Report) -> str:
    """Nagios performance data: ``'label'=value[UOM];[warn];[crit];[min];[max]``, space separated.

    Probe durations and MTLS phases in seconds, days until the RMX and the Front End certificates
    expire, active RMX alarms per category. Labels carry the target name when there are several;
    beyond :data:`daemon.firstline.PERF_TARGETS` targets: :func:`aggregate_perfdata`.
    """
    if len(report.targets) > PERF_TARGETS:
        return aggregate_perfdata(report)
    items: dict[str, str] = {}
    prefix_needed = len(report.targets) > 1
    now = report.generated_at.timestamp()
    for target in report.targets:
        prefix = f"{target.name}:" if prefix_needed else ""

        def add(label: str, text: str, prefix: str = prefix) -> None:
            items.setdefault(perf_label(f"{prefix}{label}"), text.rstrip(";"))  # trailing empty fields may be left out

        for outcome in target.probes:
            if outcome.status is ProbeStatus.SKIPPED:
                continue
            add(f"{outcome.probe}_seconds", f"{_number(outcome.duration_seconds, 6)}s;;;0")
            if outcome.result is None:
                continue
            for sample in outcome.result.samples():
                if sample.metric is Metric.MTLS_PHASE_SECONDS:
                    add(f"mtls_{sample.labels[0]}_seconds", f"{_number(sample.value, 6)}s;;;0")
                elif sample.metric is Metric.CERT_NOT_AFTER and sample.labels[1] == "0":
                    whose = "rmx" if sample.labels[0] == "client" else "fe"
                    add(f"{whose}_cert_days", f"{_number((sample.value - now) / 86400, 1)};;;")
                elif sample.metric is Metric.ACTIVE_ALARMS:
                    add(f"alarms_{sample.labels[0]}", f"{_number(sample.value, 0)};;;0")
    return " ".join(f"{label}={value}" for label, value in items.items())


def aggregate_perfdata(report: Report) -> str:
    """Perfdata of many targets: how many are in each state, and the nearest certificate expiry."""
    counts = {status: 0 for status in TargetStatus}
    for target in report.targets:
        counts[target.status] += 1
    items = [f"'targets'={len(report.targets)};;;0"] + [f"'targets_{s}'={n};;;0" for s, n in counts.items()]
    now = report.generated_at.timestamp()
    expiry = [s.value for t in report.targets for o in t.probes if o.result is not None
              for s in o.result.samples() if s.metric is Metric.CERT_NOT_AFTER and s.labels == ("client", "0")]
    if expiry:
        items.append(f"'rmx_cert_days_min'={_number((min(expiry) - now) / 86400, 1)}")
    return " ".join(items)


def probe_summary(outcome: ProbeOutcome, config: bool = False) -> str:
    """What one probe ran and found, in words that agree with the verdict ('' for a skipped probe)."""
    head = f"[{outcome.probe}]"
    took = f"{outcome.duration_seconds * 1000:.0f} ms"
    if outcome.status is ProbeStatus.SKIPPED:
        return ""
    if outcome.status is ProbeStatus.FAILED or outcome.error is not None:
        error = outcome.error
        why = f" ({error.kind}): {error.detail}" if error else ""
        return f"{head} could not run, stopped after {took}{why}"
    problems = [f for f in outcome.findings if f.severity is not Severity.INFO]
    if problems:
        found = ", ".join(dict.fromkeys(f"{f.code} ({f.severity})" for f in problems))
        return f"{head} ran in {took} and found {found}"
    seen = nothing_to_judge(outcome)
    if seen:
        return f"{head} ran in {took} but had nothing to judge: {seen}"
    missing = unchecked(outcome.findings, config)
    return f"{head} ran in {took} and found no problem" + (f"; not checked: {', '.join(missing)}" if missing else "")


def render_text(report: Report, stream: TextIO | None = None, *, verbose: bool = False, config: bool = False,
                width: int | None = None, intro: Sequence[str] = ()) -> str:
    """The report an RMX admin reads top to bottom (see :mod:`daemon.textreport`)."""
    from daemon.textreport import render

    return render(report, stream, verbose=verbose, config=config, width=width, intro=intro)


def render_json(report: Report) -> str:
    """One JSON document, newline-terminated."""
    return json.dumps(report.to_json(), indent=2, sort_keys=False) + "\n"


def error_document(kind: str, detail: str) -> str:
    """The JSON document of a run that could not happen (schema 1 with an ``error`` instead of targets)."""
    return json.dumps({"schema": SCHEMA_VERSION, "error": {"kind": kind, "detail": detail}}, indent=2) + "\n"


def evidence_facts(evidence: Mapping[str, Any]) -> str:
    """A finding's evidence as ``key=value`` pairs (what ``-v`` and the JSON hint evidence show)."""
    return ", ".join(f"{k}={_short(v)}" for k, v in evidence.items() if v not in (None, "", [], {}))


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items() if v is not None) + "}"
    return str(value)


def worst_first(targets: Sequence[TargetReport]) -> list[TargetReport]:
    """Targets ordered by their exit code, worst first (critical, unknown, warning, ok), stable."""
    rank = {TargetStatus.CRITICAL: 0, TargetStatus.UNKNOWN: 1, TargetStatus.WARNING: 2, TargetStatus.OK: 3}
    return sorted(targets, key=lambda t: rank[t.status])
