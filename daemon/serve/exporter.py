"""The Prometheus exporter: ONE custom collector over the immutable snapshot.

Each scrape builds fresh metric families from the snapshot object it read once, so targets that
vanished on reload vanish from ``/metrics`` and a scrape never sees half an update. Registries
are always created here (never prometheus_client's global default). Label values come only from
the config (target names) and closed enums (probe names, phases, stages, reasons, hint codes,
severities, alarm categories, action outcomes): free text never reaches a label.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.core import Metric as MetricFamily
from prometheus_client.registry import Collector

from daemon import __version__
from daemon.serve.snapshot import Snapshot, TargetState
from probes.model import Metric, ProbeStatus

log = logging.getLogger("rmxdiag.exporter")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Families:
    """The metric families of one scrape, in the order the README's metrics table lists them."""

    def __init__(self) -> None:
        g = GaugeMetricFamily
        self.success = g("rmxdiag_probe_success", "1 when the probe ran and found nothing critical",
                         labels=["target", "probe"])
        self.duration = g("rmxdiag_probe_duration_seconds", "Wall time of the probe's last run",
                          labels=["target", "probe"])
        self.failure = g("rmxdiag_probe_failure_info", "Where and why the probe's last run failed (closed enums)",
                         labels=["target", "probe", "stage", "reason"])
        self.phase = g(Metric.MTLS_PHASE_SECONDS.value, "Duration of each phase of the MTLS probe",
                       labels=["target", "phase"])
        self.tls = g(Metric.TLS_VERSION.value, "TLS version negotiated with the registrar",
                     labels=["target", "version"])
        self.sip = g(Metric.SIP_STATUS.value, "SIP status code of the OPTIONS answer", labels=["target"])
        self.not_after = g(Metric.CERT_NOT_AFTER.value,
                           "notAfter of each certificate of the RMX (client) and Front End (server) chains",
                           labels=["target", "role", "position"])
        self.hint = g("rmxdiag_hint_active", "1 for each diagnosed hint", labels=["target", "code", "severity"])
        self.alarms = g(Metric.ACTIVE_ALARMS.value, "Active RMX alarms per category", labels=["target", "category"])
        self.last_run = g("rmxdiag_last_run_timestamp_seconds", "When the target's last run finished",
                          labels=["target"])
        self.actions = CounterMetricFamily("rmxdiag_remediation_actions",
                                           "Remediation actions by outcome (dry_run, ok, failed, timeout)",
                                           labels=["target", "code", "outcome"])
        # The families a probe result's samples land in (probes.model.Metric names them).
        self.by_metric = {Metric.MTLS_PHASE_SECONDS: self.phase, Metric.TLS_VERSION: self.tls,
                          Metric.SIP_STATUS: self.sip, Metric.CERT_NOT_AFTER: self.not_after,
                          Metric.ACTIVE_ALARMS: self.alarms}

    def all(self) -> list[MetricFamily]:
        return [self.success, self.duration, self.failure, self.phase, self.tls, self.sip, self.not_after,
                self.hint, self.alarms, self.last_run, self.actions]


def _add_target(f: _Families, name: str, state: TargetState) -> None:
    seen: set[tuple[Metric, tuple[str, ...]]] = set()
    for outcome in state.report.probes:
        if outcome.status is ProbeStatus.SKIPPED:
            continue
        f.success.add_metric([name, outcome.probe], 1.0 if outcome.healthy else 0.0)
        f.duration.add_metric([name, outcome.probe], outcome.duration_seconds)
        if outcome.failure is not None:
            f.failure.add_metric([name, outcome.probe, outcome.failure[0], outcome.failure[1]], 1.0)
        elif outcome.error is not None:
            f.failure.add_metric([name, outcome.probe, "probe", str(outcome.error.kind)], 1.0)
        if outcome.result is None:
            continue
        try:
            for sample in outcome.result.samples():
                # One series per label set: the first probe in report order wins (the certificate
                # probe's view of the RMX chain over the mtls probe's).
                if (sample.metric, sample.labels) not in seen:
                    seen.add((sample.metric, sample.labels))
                    f.by_metric[sample.metric].add_metric([name, *sample.labels], sample.value)
        except Exception as exc:  # a result bug must cost its own samples, never the scrape
            log.warning("skipping %s result metrics of %s: %s", outcome.probe, name, type(exc).__name__)
            log.debug("result samples traceback", exc_info=True)
    for hint in state.report.hints:
        f.hint.add_metric([name, hint.code, str(hint.severity)], 1.0)
    f.last_run.add_metric([name], state.finished)


class SnapshotCollector(Collector):
    """Renders the metrics contract from whatever snapshot ``source`` returns at scrape time."""

    def __init__(self, source: Callable[[], Snapshot], *, global_metrics: bool = True) -> None:
        self._source = source
        self._global = global_metrics

    def collect(self) -> Iterator[MetricFamily]:
        """Fresh families from one snapshot read."""
        snap = self._source()
        f = _Families()
        for name, state in snap.states():
            _add_target(f, name, state)
        for (target, code, outcome), count in sorted(snap.actions.items()):
            f.actions.add_metric([target, code, outcome], float(count))
        yield from f.all()
        if self._global:
            reload_ok = GaugeMetricFamily("rmxdiag_config_last_reload_successful",
                                          "1 when the last configuration (re)load succeeded")
            reload_ok.add_metric([], 1.0 if snap.config_ok else 0.0)
            yield reload_ok
            write_errors = CounterMetricFamily("rmxdiag_report_write_errors",
                                               "Troubleshooting reports that could not be stored (disk full...)")
            write_errors.add_metric([], float(snap.report_write_errors))
            yield write_errors
            build = InfoMetricFamily("rmxdiag_build", "rmxdiag build information")
            build.add_metric([], {"version": __version__})
            yield build


def render(source: Callable[[], Snapshot], *, global_metrics: bool = True) -> bytes:
    """The text exposition of ``source``'s snapshot, through a fresh registry."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source, global_metrics=global_metrics))
    return generate_latest(registry)
