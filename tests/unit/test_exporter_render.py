"""The exporter's own text exposition is byte for byte prometheus_client's, and reuses unchanged targets."""

from __future__ import annotations

import time
from types import MappingProxyType

from daemon.diagnosis.diagnose import diagnose
from daemon.report import TargetReport
from daemon.serve import exporter
from daemon.serve.snapshot import Snapshot, TargetState
from probes.model import ErrorKind, Finding, Metric, ProbeOutcome, ProbeStatus, Sample, Severity, failed, skipped


class _Result:
    """A probe result with samples of every per-probe family (and a value needing Go's float format)."""

    def __init__(self, big: float, position: str) -> None:
        self.big, self.position = big, position

    def to_json(self) -> dict[str, object]:
        return {}

    def text_lines(self) -> list[str]:
        return []

    def samples(self) -> list[Sample]:
        return [Sample(Metric.MTLS_PHASE_SECONDS, ("tls",), 0.00123), Sample(Metric.TLS_VERSION, ("TLSv1.3",), 1.0),
                Sample(Metric.SIP_STATUS, (), 403.0),
                Sample(Metric.CERT_NOT_AFTER, ("client", self.position), self.big),
                Sample(Metric.ACTIVE_ALARMS, ("registration",), 2.0)]


def _snapshot(stamp: float) -> Snapshot:
    mtls = ProbeOutcome("mtls", ProbeStatus.OK, 0.25, (Finding("SIP_NOT_TRUSTED", Severity.CRITICAL, "403"),),
                        result=_Result(1.7961976711980178e+09, "1"), failure=("sip", "not_trusted"))
    busy = failed("mtls", ErrorKind.OVERLOADED, "busy", 2.0)
    cert = ProbeOutcome("certificate", ProbeStatus.OK, 1e-7, (), result=_Result(float("inf"), "0"))
    reports = {
        "rmx-a": TargetReport("rmx-a", (cert, mtls, skipped("alarms")), diagnose((cert, mtls))),
        "rmx-b.x_y": TargetReport("rmx-b.x_y", (busy,), diagnose((busy,))),
    }
    states = {n: TargetState(r, stamp + i) for i, (n, r) in enumerate(reports.items())}
    return Snapshot(targets=MappingProxyType(states), order=("rmx-a", "rmx-b.x_y", "rmx-never-ran"),
                    config_ok=False, report_write_errors=3,
                    actions=MappingProxyType({("rmx-a", "SIP_NOT_TRUSTED", "dry_run"): 2}))


def test_render_is_byte_for_byte_the_client_exposition() -> None:
    """Given targets with every family, a failed and a skipped probe, actions and global state, When
    rendered, Then the text equals prometheus_client's, for /metrics and for a /probe answer."""
    snap = _snapshot(time.time())
    for global_metrics in (True, False):
        ours = exporter.render(lambda: snap, global_metrics=global_metrics)
        theirs = exporter.render_with_client(lambda: snap, global_metrics=global_metrics)
        assert ours == theirs, (ours.decode(), theirs.decode())
    for part in (b'reason="overloaded"', b"+Inf", b"1.7961976711980178e+09", b"rmxdiag_build_info"):
        assert part in exporter.render(lambda: snap), part


def test_an_unchanged_target_is_formatted_once() -> None:
    """Given a snapshot rendered once, When one target's state is replaced, Then only that one is formatted again."""
    snap = _snapshot(time.time())
    exporter.render(lambda: snap)
    before = {n: exporter._formatted[n][1] for n in ("rmx-a", "rmx-b.x_y")}
    states = dict(snap.targets)
    states["rmx-a"] = TargetState(states["rmx-a"].report, states["rmx-a"].finished + 60)
    newer = Snapshot(targets=MappingProxyType(states), order=snap.order)
    text = exporter.render(lambda: newer)
    assert exporter._formatted["rmx-b.x_y"][1] is before["rmx-b.x_y"]
    assert exporter._formatted["rmx-a"][1] is not before["rmx-a"]
    assert text == exporter.render_with_client(lambda: newer)
