"""The alarms probe: RMX alarms from every configured source, classified, as findings.

Sources: saved Active Alarms reports, an snmptrapd log, a syslog file (both followed like
``tail -F`` in the daemon) and the RMX XML API (state + active alarm count). Findings:
``RMX_ALARM_REGISTRATION`` (critical) and ``RMX_ALARM_CERTIFICATE`` (warning; critical when a
text says the certificate expired) are catalogue hints; ICE/revocation alarms and the XML API
count are informational (``ALARMS_*``). An alarm alone is not proof: the diagnosis rules
corroborate it with the other probes.

Entry points: :func:`run` (scheduler, through the engine) and :func:`check` (CLI and tests).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probes.alarms.lines import ParseResult
from probes.alarms.model import MEANINGS, Alarm, AlarmCategory, AlarmState, normalise, says_expired
from probes.alarms.sources import FileFormat, FollowedSource, read_file
from probes.alarms.xmlapi import McuState, XmlApiError, fetch_state
from probes.model import ErrorKind, Finding, Metric, ProbeOutcome, ProbeStatus, Sample, Severity, failed
from probes.target import ProbeContext, Settings, Target, XmlApi

PROBE = "alarms"
NOT_PROOF = ("An alarm alone is not proof: the RMX raises some alarms without a real cause; "
             "the other probes corroborate or contradict it.")
_MAX_TEXTS = 10
_MAX_SHOWN = 20  # per category in the text report


@dataclass(frozen=True)
class SourceSummary:
    """What one source gave: lines read, alarm events, what was skipped (and where)."""

    kind: str  # report | snmptrapd | syslog | xml_api
    name: str  # file path or API URL
    lines: int = 0  # lines read (only the prefiltered ones when lines_known is False)
    lines_known: bool = True
    events: int = 0  # raise/clear events (report rows, traps, syslog alarm lines)
    ignored: int = 0  # readable lines without an alarm (other syslog traffic)
    skips: Mapping[str, int] = field(default_factory=dict)
    skipped_at: tuple[int, ...] = ()
    new: int = 0  # alarms newly raised since the previous poll (followed logs only)
    missing: bool = False  # a followed log that does not exist (yet): nothing could be read

    def to_json(self) -> dict[str, Any]:
        """JSON shape."""
        return {"kind": self.kind, "name": self.name, "lines": self.lines, "lines_known": self.lines_known,
                "events": self.events,
                "ignored": self.ignored, "skipped": dict(self.skips), "skipped_at": list(self.skipped_at),
                "new": self.new, "missing": self.missing}

    def text(self) -> str:
        """One human line."""
        if self.missing:
            return f"source {self.kind} {self.name}: MISSING (the file does not exist; nothing read)"
        skipped = sum(self.skips.values())
        what = ", ".join(f"{n} {k}" for k, n in self.skips.items() if n)
        counted = f"{self.lines} lines" if self.lines_known else f"{self.lines} prefiltered lines"
        line = f"source {self.kind} {self.name}: {counted}, {self.events} alarm events"
        if self.ignored:
            line += f", {self.ignored} other lines ignored"
        if skipped:
            where = f" (first at line {', '.join(map(str, self.skipped_at))})" if self.skipped_at else ""
            line += f"; SKIPPED {skipped}: {what}{where}"
        return line


@dataclass(frozen=True)
class AlarmsResult:
    """The active RMX alarms of one target.

    ``counts`` has every category (0 included) and feeds ``rmxdiag_rmx_active_alarms{category}``.
    ``mcu`` is None when no XML API is configured.
    """

    active: tuple[Alarm, ...]
    counts: Mapping[str, int]
    sources: tuple[SourceSummary, ...]
    mcu: McuState | None = None

    def to_json(self) -> dict[str, Any]:
        """Details for the JSON report."""
        return {"active": [a.to_json() | {"meaning": a.meaning} for a in self.active],
                "counts": dict(self.counts), "sources": [s.to_json() for s in self.sources],
                "xml_api": self.mcu.to_json() if self.mcu else None, "note": NOT_PROOF}

    def samples(self) -> Iterator[Sample]:
        """Active alarms per category, every category (0 included: a cleared one drops to 0)."""
        for category in AlarmCategory:
            yield Sample(Metric.ACTIVE_ALARMS, (str(category),), float(self.counts.get(str(category), 0)))

    def text_lines(self) -> list[str]:
        """The active alarms by category with what each usually means."""
        total = sum(self.counts.values())
        lines = [f"active RMX alarms: {total} (" + ", ".join(f"{k} {v}" for k, v in self.counts.items()) + ")"]
        for category in AlarmCategory:
            alarms = [a for a in self.active if a.category is category]
            if not alarms:
                continue
            lines.append(f"{category}: {MEANINGS[category]}")
            if len(alarms) > _MAX_SHOWN:
                lines.append(f"  ({len(alarms)} active; the first {_MAX_SHOWN} are shown, JSON has all)")
            for a in alarms[:_MAX_SHOWN]:
                where = f"{a.file}:{a.line}" if a.file and a.line else (a.file or a.source)
                extra = "; ".join(x for x in (f"cs id {a.cs_id}" if a.cs_id is not None else "",
                                              f"id {a.alarm_id}" if a.alarm_id else "",
                                              f"since {a.time}" if a.time else "", where) if x)
                lines.append(f"  - {a.description} ({extra})")
                lines.append(f"    usually means: {a.meaning}")
        if self.mcu is not None:
            lines.append(f"XML API: MCU state {self.mcu.description or 'unknown'}, "
                         f"{self.mcu.active_alarms if self.mcu.active_alarms is not None else 'unknown'} "
                         "active alarms")
        lines.extend(s.text() for s in self.sources)
        lines.append(NOT_PROOF)
        return lines


def summarise(kind: str, name: str, parsed: ParseResult, new: int = 0) -> SourceSummary:
    """The summary of one parsed source."""
    return SourceSummary(kind, name, parsed.lines, parsed.lines_known, parsed.events, parsed.ignored,
                         {k: v for k, v in parsed.skips.to_json().items() if v},
                         tuple(parsed.skipped_at), new)


def merge(active_sets: Iterable[Sequence[Alarm]]) -> tuple[Alarm, ...]:
    """Union of the sources' active alarms; the same text from two sources counts once."""
    seen: dict[tuple[str, int | None], Alarm] = {}
    for alarms in active_sets:
        for a in alarms:
            if a.state is AlarmState.RAISED:
                seen.setdefault((normalise(a.description), a.cs_id), a)
    return tuple(seen.values())


def findings_for(active: Sequence[Alarm], mcu: McuState | None = None) -> tuple[Finding, ...]:
    """Findings from the active alarms (one per category) and the XML API state."""
    out: list[Finding] = []
    for category, code in ((AlarmCategory.REGISTRATION, "RMX_ALARM_REGISTRATION"),
                           (AlarmCategory.CERTIFICATE, "RMX_ALARM_CERTIFICATE"),
                           (AlarmCategory.ICE, "ALARMS_ICE"), (AlarmCategory.REVOCATION, "ALARMS_REVOCATION")):
        alarms = [a for a in active if a.category is category]
        if not alarms:
            continue
        texts = list(dict.fromkeys(a.description for a in alarms))[:_MAX_TEXTS]
        if category is AlarmCategory.REGISTRATION:
            severity = Severity.CRITICAL
        elif category is AlarmCategory.CERTIFICATE:
            severity = Severity.CRITICAL if any(says_expired(t) for t in texts) else Severity.WARNING
        else:
            severity = Severity.INFO
        cs_id = next((a.cs_id for a in alarms if a.cs_id is not None), None)
        files = list(dict.fromkeys(a.file for a in alarms if a.file))
        evidence: dict[str, Any] = {"alarm_texts": texts, "alarm_category": str(category), "count": len(alarms)}
        if cs_id is not None:
            evidence["cs_id"] = cs_id
        if files:
            evidence["file"] = ", ".join(files)
        out.append(Finding(code, severity, f"{len(alarms)} active RMX {category} alarm(s): {texts[0]}", evidence))
    if mcu is not None and mcu.active_alarms:
        out.append(Finding("ALARMS_XML_API", Severity.INFO,
                           f"the RMX XML API reports {mcu.active_alarms} active alarm(s), MCU state "
                           f"{mcu.description or 'unknown'}", {"count": mcu.active_alarms}))
    return tuple(out)


def reading_findings(sources: Sequence[SourceSummary]) -> tuple[Finding, ...]:
    """What the sources could not give: skipped lines are 'not checked' (an alarm may hide in one),
    and a file with nothing readable at all is nothing to judge (never 'no problem found')."""
    out: list[Finding] = []
    for s in sources:
        # Lines that could not be read at all; an unrecognised line was read (and is no alarm).
        unread = {k: n for k, n in s.skips.items() if n and k != "unrecognised"}
        skipped = sum(unread.values())
        if not skipped or s.missing:
            continue
        what = ", ".join(f"{n} {k}" for k, n in unread.items())
        if not s.events and not s.ignored:
            out.append(Finding("ALARMS_NOTHING_TO_JUDGE", Severity.INFO,
                               f"{s.name}: no readable {s.kind} line ({skipped} skipped: {what})",
                               {"nothing_to_judge": True, "file": s.name, "skipped": unread}))
            continue
        where = f" from line {s.skipped_at[0]}" if s.skipped_at else ""
        out.append(Finding("ALARMS_SKIPPED", Severity.INFO, f"{s.name}: {skipped} line(s) skipped ({what})",
                           {"unchecked": f"{skipped} skipped line(s) of {s.name} ({what}{where})",
                            "file": s.name, "skipped": unread}))
    return tuple(out)


def outcome(active: Sequence[Alarm], sources: Sequence[SourceSummary], mcu: McuState | None,
            started: float) -> ProbeOutcome:
    """The probe envelope for a set of active alarms."""
    counts = {str(c): sum(1 for a in active if a.category is c) for c in AlarmCategory}
    result = AlarmsResult(tuple(active), counts, tuple(sources), mcu)
    return ProbeOutcome(PROBE, ProbeStatus.OK, time.monotonic() - started,
                        findings_for(active, mcu) + reading_findings(sources), result=result)


def check(files: Sequence[Path], xml_api: XmlApi | None = None, fmt: FileFormat | None = None,
          deadline: float | None = None) -> ProbeOutcome:
    """Direct entry point (CLI, tests): whole files + optional XML API. InputError for bad files."""
    started = time.monotonic()
    actives, sources = [], []
    for path in files:
        kind, parsed = read_file(path, fmt)
        actives.append(parsed.active.alarms())
        sources.append(summarise(str(kind), str(path), parsed))
    mcu = None
    if xml_api is not None:
        try:
            mcu = fetch_state(xml_api, deadline)
        except XmlApiError as exc:
            return failed(PROBE, exc.kind, str(exc), time.monotonic() - started)
        sources.append(SourceSummary("xml_api", _url(xml_api)))
    return outcome(merge(actives), sources, mcu, started)


def _url(api: XmlApi) -> str:
    from probes.httpclient import shown_url

    return shown_url(api.url)


def run(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    """Scheduler entry point: followed logs keep their state across runs (XmlApiError, InputError)."""
    started = time.monotonic()
    src = target.alarms
    actives: list[Sequence[Alarm]] = []
    sources: list[SourceSummary] = []
    for path in src.report_files:
        _deadline(ctx)
        kind, parsed = read_file(path, FileFormat.REPORT)
        actives.append(parsed.active.alarms())
        sources.append(summarise(str(kind), str(path), parsed))
    for fmt, log_path in ((FileFormat.SNMPTRAPD, src.snmptrapd_log), (FileFormat.SYSLOG, src.syslog_file)):
        if log_path is None:
            continue
        _deadline(ctx)
        if ctx.on_demand:  # a one-off run reads the whole file and leaves the daemon's state alone
            _kind, parsed = read_file(log_path, fmt)
            actives.append(parsed.active.alarms())
            sources.append(summarise(str(fmt), str(log_path), parsed))
            continue
        key = (PROBE, target.name, str(fmt), str(log_path))
        followed = ctx.cache.get(key)
        if not isinstance(followed, FollowedSource):
            followed = FollowedSource.open(fmt, log_path, settings.state_dir, target.name)
            ctx.cache[key] = followed
        new, parsed = followed.poll()
        actives.append(followed.active.alarms())
        summary = summarise(str(fmt), str(log_path), parsed, len(new))
        if not log_path.exists():
            summary = SourceSummary(str(fmt), str(log_path), missing=True)
        sources.append(summary)
    mcu = None
    if src.xml_api is not None:
        mcu = fetch_state(src.xml_api, ctx.deadline)
        sources.append(SourceSummary("xml_api", _url(src.xml_api)))
    return outcome(merge(actives), sources, mcu, started)


def _deadline(ctx: ProbeContext) -> None:
    if ctx.remaining() <= 0:
        raise XmlApiError(ErrorKind.DEADLINE, "deadline reached while reading alarm sources")
