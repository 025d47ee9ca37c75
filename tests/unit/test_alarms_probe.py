"""The alarms probe's scheduler entry point (through the engine): sources, findings, samples, never raising."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.engine import run_probe
from probes.alarms import probe as alarms
from probes.model import ErrorKind, Metric, ProbeStatus
from probes.target import AlarmSources, ProbeContext, SecretFile, Settings, Target, XmlApi

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alarms"


def _ctx(seconds: float = 10.0, on_demand: bool = False) -> ProbeContext:
    return ProbeContext(datetime.now(UTC), time.monotonic() + seconds, on_demand=on_demand)


def test_not_configured_is_skipped(tmp_path: Path) -> None:
    assert run_probe("alarms", Target("t"), Settings(state_dir=tmp_path), _ctx()).status is ProbeStatus.SKIPPED


def test_report_and_followed_syslog_give_findings_and_counts(tmp_path: Path) -> None:
    # Given a saved report and a syslog file followed by the daemon
    syslog = tmp_path / "rmx.log"
    shutil.copy(FIXTURES / "syslog_5424.log", syslog)
    target = Target("rmx-hq", alarms=AlarmSources(report_files=(FIXTURES / "report_tabs.txt",), syslog_file=syslog))
    settings = Settings(state_dir=tmp_path / "state")
    ctx = _ctx()
    outcome = run_probe("alarms", target, settings, ctx)
    # Then registration is critical with cs id and both files as evidence, counts cover every category
    assert outcome.status is ProbeStatus.OK
    codes = {f.code: f for f in outcome.findings}
    reg = codes["RMX_ALARM_REGISTRATION"]
    assert reg.severity == "critical" and reg.evidence["cs_id"] == 1 and reg.evidence["count"] == 2
    assert codes["RMX_ALARM_CERTIFICATE"].severity == "critical"  # "Certificate has expired" in syslog
    assert codes["ALARMS_ICE"].severity == "info"
    assert outcome.result is not None
    doc = outcome.result.to_json()
    # The same handshake text in report and syslog counts once
    assert doc["counts"] == {"registration": 2, "certificate": 1, "ice": 2, "revocation": 0, "other": 1}
    lines = outcome.result.text_lines()
    assert lines[-1].startswith("An alarm alone is not proof")
    # When the syslog is rotated and the alarm cleared in the new file
    syslog.rename(tmp_path / "rmx.log.1")
    syslog.write_text("<134>1 2026-11-26T22:00:00Z rmx1 RMX - - - SIP TLS: Certificate has expired cleared\n")
    again = run_probe("alarms", target, settings, ctx)
    assert "RMX_ALARM_CERTIFICATE" not in {f.code for f in again.findings}


def test_bad_sources_fail_with_a_kind_never_raise(tmp_path: Path) -> None:
    # Given a report path that is a directory, Then a FILE_UNREADABLE outcome, no exception
    target = Target("t", alarms=AlarmSources(report_files=(tmp_path,)))
    outcome = run_probe("alarms", target, Settings(state_dir=tmp_path), _ctx())
    assert outcome.status is ProbeStatus.FAILED and outcome.error is not None
    assert outcome.error.kind is ErrorKind.FILE_UNREADABLE and str(tmp_path) in outcome.error.detail


def test_expired_deadline_fails_as_deadline(tmp_path: Path) -> None:
    target = Target("t", alarms=AlarmSources(report_files=(FIXTURES / "report_tabs.txt",)))
    outcome = run_probe("alarms", target, Settings(state_dir=tmp_path), _ctx(seconds=-1))
    assert outcome.error is not None and outcome.error.kind is ErrorKind.DEADLINE


def test_unreachable_xml_api_fails_upstream(tmp_path: Path) -> None:
    for name in ("u", "p"):
        (tmp_path / name).write_text(name)
        (tmp_path / name).chmod(0o600)
    api = XmlApi("http://127.0.0.1:9/", SecretFile(tmp_path / "u"), SecretFile(tmp_path / "p"), timeout=1)
    outcome = run_probe("alarms", Target("t", alarms=AlarmSources(xml_api=api)), Settings(state_dir=tmp_path), _ctx())
    assert outcome.error is not None and outcome.error.kind is ErrorKind.UPSTREAM


def test_probe_bug_is_wrapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(alarms, "read_file", boom)
    target = Target("t", alarms=AlarmSources(report_files=(FIXTURES / "report_tabs.txt",)))
    outcome = run_probe("alarms", target, Settings(state_dir=tmp_path), _ctx())
    assert outcome.error is not None and outcome.error.kind is ErrorKind.PROBE_BUG


def test_on_demand_runs_leave_the_daemon_state_alone(tmp_path: Path) -> None:
    syslog = tmp_path / "rmx.log"
    shutil.copy(FIXTURES / "syslog_3164.log", syslog)
    target = Target("t", alarms=AlarmSources(syslog_file=syslog))
    outcome = run_probe("alarms", target, Settings(state_dir=tmp_path / "state"), _ctx(on_demand=True))
    assert {f.code for f in outcome.findings} == {"RMX_ALARM_REGISTRATION", "RMX_ALARM_CERTIFICATE"}
    assert not (tmp_path / "state").exists()


def test_missing_followed_log_is_said_plainly(tmp_path: Path) -> None:
    target = Target("t", alarms=AlarmSources(snmptrapd_log=tmp_path / "not-yet.log"))
    outcome = run_probe("alarms", target, Settings(state_dir=tmp_path / "state"), _ctx())
    assert outcome.status is ProbeStatus.OK and outcome.result is not None
    assert any("MISSING" in line for line in outcome.result.text_lines())


def test_samples_cover_every_category(tmp_path: Path) -> None:
    # Given a report with two certificate alarms
    target = Target("t", alarms=AlarmSources(report_files=(FIXTURES / "report_title_crlf.txt",)))
    outcome = run_probe("alarms", target, Settings(state_dir=tmp_path), _ctx())
    # Then every category has a sample (0 included: a cleared category drops to 0 instead of vanishing)
    assert outcome.result is not None
    assert [(s.metric, s.labels, s.value) for s in outcome.result.samples()] == [
        (Metric.ACTIVE_ALARMS, (c,), n) for c, n in (("registration", 0.0), ("certificate", 2.0), ("ice", 0.0),
                                                       ("revocation", 0.0), ("other", 0.0))]
    # And a target without alarm sources has no result to sample
    assert run_probe("alarms", Target("t"), Settings(state_dir=tmp_path), _ctx()).result is None


def test_followed_log_that_is_a_fifo_fails_cleanly(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "traps.log"
    os.mkfifo(fifo)
    target = Target("t", alarms=AlarmSources(snmptrapd_log=fifo))
    outcome = run_probe("alarms", target, Settings(state_dir=tmp_path / "state"), _ctx())
    assert outcome.error is not None and outcome.error.kind is ErrorKind.FILE_UNREADABLE
    assert "not a regular file" in outcome.error.detail
