"""The first output line stays a valid, bounded Nagios line however many targets and whatever names."""

from __future__ import annotations

from daemon.diagnosis.diagnose import diagnose
from daemon.firstline import MAX_LINE, MAX_NAMED, PERF_TARGETS
from daemon.report import Report, TargetReport, now_utc, verdict_line
from probes.model import Finding, ProbeOutcome, ProbeStatus, Severity


def _critical(name: str) -> TargetReport:
    outcome = ProbeOutcome("mtls", ProbeStatus.OK, 0.01,
                           (Finding("REGISTRAR_UNREACHABLE", Severity.CRITICAL, "refused"),))
    return TargetReport(name, (outcome,), diagnose((outcome,)))


def _ok(name: str) -> TargetReport:
    return TargetReport(name, (ProbeOutcome("mtls", ProbeStatus.OK, 0.02),), ())


def test_ten_thousand_critical_targets_fit_in_one_bounded_line() -> None:
    """Given 10,000 critical targets and 5 healthy ones
    When the verdict line is built
    Then it names the first few critical targets and '+N more', its perfdata is aggregated, and
    the whole line stays under the 4 KB Nagios keeps."""
    targets = tuple(_critical(f"t{i}") for i in range(10_000)) + tuple(_ok(f"ok{i}") for i in range(5))
    report = Report(now_utc(), targets)
    line = verdict_line(report)
    status, perf = line.split(" | ")
    assert status.startswith("CRITICAL: 10000 of 10005 RMX critical (t0: REGISTRAR_UNREACHABLE; ")
    assert f"t{MAX_NAMED - 1}: REGISTRAR_UNREACHABLE; +{10_000 - MAX_NAMED} more), 5 ok" in status
    assert f"t{MAX_NAMED}:" not in status
    assert perf.split() == ["'targets'=10005;;;0", "'targets_ok'=5;;;0", "'targets_warning'=0;;;0",
                            "'targets_critical'=10000;;;0", "'targets_unknown'=0;;;0"]
    assert len(line) < MAX_LINE and "\n" not in line


def test_a_few_targets_keep_their_own_perfdata() -> None:
    """Given as many targets as the per-target perfdata threshold
    When the verdict line is built
    Then each target keeps its own labels, and the first few are named."""
    report = Report(now_utc(), tuple(_critical(f"rmx{i}") for i in range(PERF_TARGETS)))
    status, perf = verdict_line(report).split(" | ")
    assert all(f"'rmx{i}:mtls_seconds'=" in perf for i in range(PERF_TARGETS))
    assert f"rmx{MAX_NAMED - 1}: REGISTRAR_UNREACHABLE; +{PERF_TARGETS - MAX_NAMED} more)" in status


def test_names_with_pipes_newlines_and_quotes_do_not_break_the_line() -> None:
    """Given targets named with '|', a newline followed by a fake status, and a quote
    When the verdict line is built
    Then there is exactly one '|' (the perfdata separator), no newline, and quoted labels stay quoted."""
    report = Report(now_utc(), (_critical("a|b"), _critical("x\nOK: fake"), _ok("it's")))
    line = verdict_line(report)
    assert line.count("|") == 1 and "\n" not in line
    assert "a¦b" in line and "x\\nOK: fake" in line
    assert "'it''s:mtls_seconds'=" in line


def test_an_enormous_name_is_cut() -> None:
    """Given one target whose name is 100,000 characters
    When the verdict line is built
    Then the line stays bounded and ends its status text with an ellipsis."""
    line = verdict_line(Report(now_utc(), (_critical("n" * 100_000),)))
    status = line.split(" | ")[0]
    assert status.endswith("…") and len(line) < MAX_LINE
