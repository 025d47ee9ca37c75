"""The engine: concurrent probes, deadlines and probe bugs never take a run down."""

from __future__ import annotations

import threading
import time

from daemon.engine import DEADLINE_GRACE, run_target
from probes import applicable
from probes.model import ErrorKind, Finding, ProbeOutcome, ProbeStatus, Severity
from probes.target import AlarmSources, CertificateSource, ProbeContext, Registrar, Settings, Target

STOP = threading.Event()


def _healthy(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    return ProbeOutcome("certificate", ProbeStatus.OK, 0.001,
                        (Finding("CERT_NO_CDP", Severity.WARNING, "no CDP"),))


def _hangs(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    STOP.wait(30)
    return ProbeOutcome("mtls", ProbeStatus.OK, 30.0)


def _raises(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    raise RuntimeError("boom")


def test_applicable_follows_the_target_configuration() -> None:
    # Given a target with a certificate and a registrar but no alarms/capture
    target = Target("t", certificate=CertificateSource("pem"), registrars=(Registrar("fe"),))
    # Then only the certificate and mtls probes apply
    assert applicable(target) == ["certificate", "mtls"]
    assert applicable(Target("t", alarms=AlarmSources(report_files=()))) == []


def test_a_hanging_and_a_buggy_probe_do_not_stop_the_run() -> None:
    # Given three probes: healthy, hanging past the deadline, raising
    target = Target("rmx", deadline=0.5)
    # (the reference: a run of the healthy probe alone, what the engine's own work costs right now)
    start = time.monotonic()
    run_target(target, Settings(), runners={"certificate": _healthy})
    reference = time.monotonic() - start
    start = time.monotonic()
    try:
        report = run_target(target, Settings(),
                            runners={"certificate": _healthy, "mtls": _hangs, "alarms": _raises})
    finally:
        STOP.set()
    elapsed = time.monotonic() - start
    # Then the run ends near the deadline with each outcome classified
    by_name = {p.probe: p for p in report.probes}
    assert elapsed < target.deadline + DEADLINE_GRACE + max(0.5, 10 * reference), (elapsed, reference)
    assert by_name["certificate"].status is ProbeStatus.OK
    assert by_name["mtls"].error is not None and by_name["mtls"].error.kind is ErrorKind.DEADLINE
    assert by_name["alarms"].error is not None and by_name["alarms"].error.kind is ErrorKind.PROBE_BUG
    assert [h.code for h in report.hints] == ["CERT_NO_CDP"]
