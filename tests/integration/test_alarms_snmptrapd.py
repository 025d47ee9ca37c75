"""RMX alarms end to end through a REAL snmptrapd receiving traps from the real snmptrap CLI."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.engine import run_probe
from probes.alarms import probe as alarms
from probes.alarms.model import AlarmCategory, AlarmState
from probes.alarms.snmp import parse_snmptrapd
from probes.target import AlarmSources, ProbeContext, Settings, Target
from tests.support.alarms import snmptrapd

pytestmark = pytest.mark.peer

HANDSHAKE = "SIP TLS: Registration handshake failure"
EXPIRED = "Security mode failed – Certificate expired"  # non-ASCII: snmptrapd logs it as Hex-STRING


def test_raise_and_clear_through_real_snmptrapd(tmp_path: Path) -> None:
    with snmptrapd(tmp_path) as trapd:
        # Given the RMX raises two alarms (Fault traps 5012) and clears the first (Clear trap 15012)
        trapd.send(5012, HANDSHAKE, index=7)
        trapd.send(5013, EXPIRED, index=8, status=2)
        trapd.send(15012, HANDSHAKE, index=7, status=0)
        trapd.wait_for(3)
    # When the log is parsed
    result = parse_snmptrapd(trapd.log.read_bytes(), str(trapd.log))
    # Then the events come back in order with index, state, level and decoded time
    events = [(a.alarm_id, a.state, a.description) for a in result.alarms]
    assert events == [("7", AlarmState.RAISED, HANDSHAKE), ("8", AlarmState.RAISED, EXPIRED),
                      ("7", AlarmState.CLEARED, HANDSHAKE)]
    assert result.alarms[0].level == "major" and result.alarms[1].level == "minor"
    assert result.alarms[0].time == "2026-11-26T12:30:45"
    # And the probe's active set holds only the certificate alarm, critical because it expired
    outcome = alarms.check([trapd.log])
    assert outcome.result is not None
    assert outcome.result.to_json()["counts"]["certificate"] == 1
    assert outcome.result.to_json()["counts"]["registration"] == 0
    (finding,) = outcome.findings
    assert finding.code == "RMX_ALARM_CERTIFICATE" and finding.severity == "critical"
    assert finding.evidence["alarm_texts"] == [EXPIRED] and finding.evidence["file"] == str(trapd.log)


def test_daemon_follows_the_live_trap_log(tmp_path: Path) -> None:
    # Given the scheduler runs the probe against a live snmptrapd log, with a state directory
    with snmptrapd(tmp_path) as trapd:
        target = Target("rmx1", alarms=AlarmSources(snmptrapd_log=trapd.log))
        settings = Settings(state_dir=tmp_path / "state")
        ctx = ProbeContext(datetime.now(UTC), time.monotonic() + 30)
        first = run_probe("alarms", target, settings, ctx)
        assert first.status == "ok" and not first.findings
        # When a registration alarm is raised
        trapd.send(5012, "SIP TLS: no response from Registration server (cs id2)", index=11)
        trapd.wait_for(1)
        second = run_probe("alarms", target, settings, ctx)
        (finding,) = second.findings
        assert finding.code == "RMX_ALARM_REGISTRATION" and finding.evidence["cs_id"] == 2
        assert second.result is not None and second.result.to_json()["sources"][0]["new"] == 1
        # And a restarted daemon (fresh cache) still knows it, without reporting it as new
        restarted = run_probe("alarms", target, settings, ProbeContext(datetime.now(UTC), time.monotonic() + 30))
        assert [f.code for f in restarted.findings] == ["RMX_ALARM_REGISTRATION"]
        assert restarted.result is not None and restarted.result.to_json()["sources"][0]["new"] == 0
        # When it is cleared, Then nothing stays active
        trapd.send(15012, "SIP TLS: no response from Registration server (cs id2)", index=11, status=0)
        trapd.wait_for(2)
        cleared = run_probe("alarms", target, settings, ctx)
        assert cleared.findings == ()
        assert cleared.result is not None
        assert cleared.result.to_json()["counts"][str(AlarmCategory.REGISTRATION)] == 0


def test_snmpv1_traps_raise_and_clear(tmp_path: Path) -> None:
    # Given an RMX configured for SNMPv1 traps: the specific trap number says raise or clear
    with snmptrapd(tmp_path) as trapd:
        trapd.send(5012, "SIP TLS: Registration transport error", index=9, v1=True)
        trapd.send(5013, "SIP TLS: Certificate is about to expire", index=10, v1=True)
        trapd.send(15012, "SIP TLS: Registration transport error", index=9, status=0, v1=True)
        trapd.wait_for(3)
    result = parse_snmptrapd(trapd.log.read_bytes())
    assert [(a.alarm_id, a.state) for a in result.alarms] == [
        ("9", AlarmState.RAISED), ("10", AlarmState.RAISED), ("9", AlarmState.CLEARED)]
    outcome = alarms.check([trapd.log])
    assert [(f.code, str(f.severity)) for f in outcome.findings] == [("RMX_ALARM_CERTIFICATE", "warning")]


def test_daemon_follows_across_a_real_logrotate_of_the_trap_log(tmp_path: Path) -> None:
    # Given the daemon follows snmptrapd's log and saved its state after one alarm
    with snmptrapd(tmp_path) as trapd:
        target = Target("rmx1", alarms=AlarmSources(snmptrapd_log=trapd.log))
        settings = Settings(state_dir=tmp_path / "state")
        trapd.send(5012, "SIP TLS: Registration handshake failure", index=1)
        trapd.wait_for(1)
        first = run_probe("alarms", target, settings, ProbeContext(datetime.now(UTC), time.monotonic() + 30))
        assert [f.code for f in first.findings] == ["RMX_ALARM_REGISTRATION"]
        # When, while the daemon is down, a certificate alarm lands in the old file, logrotate
        # renames it, snmptrapd reopens (SIGHUP) and the handshake alarm is cleared in the new file
        trapd.send(5013, "SIP TLS: Certificate is about to expire", index=2, status=2)
        trapd.wait_for(2)
        rotated = trapd.log.with_name("traps.log.1")
        trapd.log.rename(rotated)
        trapd.reopen_log()
        deadline = time.monotonic() + 10
        while not trapd.log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        trapd.send(15012, "SIP TLS: Registration handshake failure", index=1, status=0)
        trapd.wait_for(1)
        restarted = run_probe("alarms", target, settings, ProbeContext(datetime.now(UTC), time.monotonic() + 30))
    # Then nothing was missed (the old file was drained first) and the cleared alarm is gone
    assert [f.code for f in restarted.findings] == ["RMX_ALARM_CERTIFICATE"]
    assert restarted.result is not None and restarted.result.to_json()["sources"][0]["new"] == 1


def test_one_binding_per_line_layout_of_the_admin_guide(tmp_path: Path) -> None:
    """Given snmptrapd printing each trap one `OID = value` binding per line without value types (the
    layout of the RMX administrator's guide and of MIB browsers), When a raise, a certificate alarm and a
    clear are logged and parsed, Then each trap is one alarm with its index, state, level and time."""
    with snmptrapd(tmp_path, "-OQ", "-F", "%B [%b]:\n%V\n%v\n") as trapd:
        trapd.send(5012, HANDSHAKE, index=7)
        trapd.send(5014, "SIP TLS: Certificate files are missing", index=9, status=3)
        trapd.send(15012, HANDSHAKE, index=7, status=0)
        trapd.wait_for(3)
    text = trapd.log.read_text()
    assert "\tiso." not in text and f'.13885.9.1.1.2.1.1 = "{HANDSHAKE}"' in text  # really one per line
    result = parse_snmptrapd(trapd.log.read_bytes(), str(trapd.log))
    assert [(a.alarm_id, a.state, a.description, a.category) for a in result.alarms] == [
        ("7", AlarmState.RAISED, HANDSHAKE, AlarmCategory.REGISTRATION),
        ("9", AlarmState.RAISED, "SIP TLS: Certificate files are missing", AlarmCategory.CERTIFICATE),
        ("7", AlarmState.CLEARED, HANDSHAKE, AlarmCategory.REGISTRATION)]
    assert result.alarms[0].level == "major" and result.alarms[0].time == "2026-11-26T12:30:45"
    # And the probe reads the file as a trap log: only the certificate alarm is still active
    outcome = alarms.check([trapd.log])
    assert outcome.result is not None and outcome.result.to_json()["counts"]["certificate"] == 1
